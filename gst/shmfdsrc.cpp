// shmfdsrc: a live source of the frames of a shmfd topic, zero-copy (see gst/README.md).
#include <gst/base/gstpushsrc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "caps.hpp"
#include "elements.hpp"
#include "shmfd/consumer.hpp"

GST_DEBUG_CATEGORY_STATIC(shmfdsrc_debug);
#define GST_CAT_DEFAULT shmfdsrc_debug

namespace shmfd::gst {
namespace {

struct SrcSettings {
  std::string socket_path;
  std::string topic;
  std::uint32_t depth = 0;
  Backpressure backpressure = Backpressure::drop_oldest;
  bool reconnect = false;
  bool producer_timestamps = false;
};

// The consumer and the frames GStreamer holds. A frame may be freed on any thread (the library
// queues its release for the consumer's next call, or wakes a receive_for() that waits); the
// consumer itself is used under `mu`.
struct SrcCore {
  std::mutex mu;
  std::optional<Consumer> consumer;
  std::uint32_t depth = 0;             // granted: frames it may hold at once
  std::atomic<std::uint32_t> lent{0};  // frames GStreamer holds now
  std::optional<std::chrono::steady_clock::time_point> ended;  // an EndOfStream came then
};

// With reconnect, an end of stream is final only if neither a frame nor a reconnection follows
// within this time: a broker that shuts down ends its producers' streams before it goes.
constexpr auto kEndGrace = std::chrono::seconds(1);

struct FrameHold {
  std::shared_ptr<SrcCore> core;
  std::optional<Frame> frame;
};

void release_frame(gpointer p) {
  auto* hold = static_cast<FrameHold*>(p);
  hold->core->lent.fetch_sub(1);
  delete hold;  // the frame's release: from whatever thread GStreamer frees the buffer on
}

}  // namespace

struct ShmfdSrc {
  GstPushSrc parent;
  struct SrcState* state;
};

struct ShmfdSrcClass {
  GstPushSrcClass parent_class;
};

struct SrcState {
  std::mutex settings_mu;
  SrcSettings settings;
  std::shared_ptr<SrcCore> core;
  std::atomic<bool> unlocked{false};
  GstCaps* caps = nullptr;            // of the last frame
  std::optional<Layout> caps_layout;  // the layout `caps` came from (streaming thread only)
  FrameRate caps_rate;                // the topic's nominal rate `caps` say (ditto)
  // Running time minus the producer's pts, fixed at the first frame with a pts (after a start,
  // an end of stream, a reconnection or a producer's discontinuity): one constant, so the
  // producer's spacing of timestamps is kept exactly (streaming thread only).
  std::optional<std::int64_t> pts_offset;
  std::atomic<std::uint64_t> received{0};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> copies{0};
  bool copy_logged = false;
};

G_DEFINE_TYPE(ShmfdSrc, shmfd_src, GST_TYPE_PUSH_SRC)

namespace {

enum {
  PROP_0,
  PROP_SOCKET_PATH,
  PROP_TOPIC,
  PROP_QUEUE_DEPTH,
  PROP_BACKPRESSURE,
  PROP_RECONNECT,
  PROP_PRODUCER_TIMESTAMPS,
  PROP_RECEIVED,
  PROP_DROPPED,
  PROP_COPIES,
};

SrcState& state_of(gpointer p) {
  return *static_cast<ShmfdSrc*>(p)->state;
}

void set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  SrcState& s = state_of(object);
  std::lock_guard lock(s.settings_mu);
  switch (id) {
    case PROP_SOCKET_PATH:
      s.settings.socket_path = g_value_get_string(value) ? g_value_get_string(value) : "";
      break;
    case PROP_TOPIC:
      s.settings.topic = g_value_get_string(value) ? g_value_get_string(value) : "";
      break;
    case PROP_QUEUE_DEPTH:
      s.settings.depth = g_value_get_uint(value);
      break;
    case PROP_BACKPRESSURE:
      s.settings.backpressure = static_cast<Backpressure>(g_value_get_enum(value));
      break;
    case PROP_RECONNECT:
      s.settings.reconnect = g_value_get_boolean(value);
      break;
    case PROP_PRODUCER_TIMESTAMPS:
      s.settings.producer_timestamps = g_value_get_boolean(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

void get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  SrcState& s = state_of(object);
  std::lock_guard lock(s.settings_mu);
  switch (id) {
    case PROP_SOCKET_PATH:
      g_value_set_string(value, s.settings.socket_path.c_str());
      break;
    case PROP_TOPIC:
      g_value_set_string(value, s.settings.topic.c_str());
      break;
    case PROP_QUEUE_DEPTH:
      g_value_set_uint(value, s.settings.depth);
      break;
    case PROP_BACKPRESSURE:
      g_value_set_enum(value, static_cast<gint>(s.settings.backpressure));
      break;
    case PROP_RECONNECT:
      g_value_set_boolean(value, s.settings.reconnect);
      break;
    case PROP_PRODUCER_TIMESTAMPS:
      g_value_set_boolean(value, s.settings.producer_timestamps);
      break;
    case PROP_RECEIVED:
      g_value_set_uint64(value, s.received.load());
      break;
    case PROP_DROPPED:
      g_value_set_uint64(value, s.dropped.load());
      break;
    case PROP_COPIES:
      g_value_set_uint64(value, s.copies.load());
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

gboolean start(GstBaseSrc* base) {
  SrcState& s = state_of(base);
  SrcSettings settings;
  {
    std::lock_guard lock(s.settings_mu);
    settings = s.settings;
  }
  if (settings.topic.empty()) {
    GST_ELEMENT_ERROR(base, RESOURCE, SETTINGS, ("No topic: set shmfdsrc's topic property."),
                      (nullptr));
    return FALSE;
  }
  auto consumer =
      Consumer::connect(settings.socket_path, std::string("gst:") + GST_OBJECT_NAME(base));
  if (!consumer) {
    GST_ELEMENT_ERROR(base, RESOURCE, OPEN_READ,
                      ("Cannot connect to the shmfd broker at %s.", settings.socket_path.c_str()),
                      ("%s", consumer.error().message().c_str()));
    return FALSE;
  }
  if (settings.reconnect) consumer->reconnect_on_loss();
  auto depth = consumer->subscribe(settings.topic, settings.depth, settings.backpressure);
  if (!depth) {
    GST_ELEMENT_ERROR(base, RESOURCE, OPEN_READ,
                      ("The shmfd broker refused the subscription to \"%s\": %s",
                       settings.topic.c_str(), depth.error().message().c_str()),
                      (nullptr));
    return FALSE;
  }
  GST_INFO_OBJECT(base, "subscribed to %s with depth %u", settings.topic.c_str(), *depth);
  auto core = std::make_shared<SrcCore>();
  core->consumer.emplace(std::move(*consumer));
  core->depth = *depth;
  std::lock_guard lock(s.settings_mu);
  s.core = std::move(core);
  s.received = 0;
  s.dropped = 0;
  s.copies = 0;
  s.copy_logged = false;
  s.pts_offset.reset();
  return TRUE;
}

gboolean stop(GstBaseSrc* base) {
  SrcState& s = state_of(base);
  std::shared_ptr<SrcCore> core;
  {
    std::lock_guard lock(s.settings_mu);
    core = std::move(s.core);
    gst_caps_replace(&s.caps, nullptr);
    s.caps_layout.reset();
  }
  if (core) {
    std::lock_guard lock(core->mu);
    core->consumer.reset();  // buffers still out release their frames when freed
  }
  return TRUE;
}

// Frames arrive whenever their producer made them: caps are set from each frame's layout.
gboolean negotiate(GstBaseSrc*) {
  return TRUE;
}

GstCaps* get_caps(GstBaseSrc* base, GstCaps* filter) {
  SrcState& s = state_of(base);
  GstCaps* caps = nullptr;
  {
    std::lock_guard lock(s.settings_mu);
    if (s.caps) caps = gst_caps_ref(s.caps);
  }
  if (!caps) caps = gst_pad_get_pad_template_caps(GST_BASE_SRC_PAD(base));
  if (filter) {
    GstCaps* both = gst_caps_intersect_full(filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref(caps);
    caps = both;
  }
  return caps;
}

// The running time of a frame captured at `timestamp_ns` (CLOCK_MONOTONIC), when the pipeline's
// clock runs on CLOCK_MONOTONIC (the system clock does); else the running time now.
GstClockTime frame_pts(GstBaseSrc* base, std::uint64_t timestamp_ns) {
  GstClock* clock = gst_element_get_clock(GST_ELEMENT(base));
  if (!clock) return GST_CLOCK_TIME_NONE;
  GstClockType type = GST_CLOCK_TYPE_REALTIME;
  if (GST_IS_SYSTEM_CLOCK(clock)) g_object_get(clock, "clock-type", &type, nullptr);
  const GstClockTime base_time = gst_element_get_base_time(GST_ELEMENT(base));
  GstClockTime at = timestamp_ns;
  if (type != GST_CLOCK_TYPE_MONOTONIC || timestamp_ns == 0) at = gst_clock_get_time(clock);
  gst_object_unref(clock);
  return at > base_time ? at - base_time : 0;
}

// The caps of frames of `layout` on a topic of nominal rate `rate` (new reference).
GstCaps* stream_caps(const Layout& layout, FrameRate rate) {
  GstCaps* caps = layout_caps(layout);
  if (std::holds_alternative<ImageLayout>(layout) && rate.num > 0 && rate.den > 0) {
    gst_caps_set_simple(caps, "framerate", GST_TYPE_FRACTION, static_cast<gint>(rate.num),
                        static_cast<gint>(rate.den), nullptr);
  }
  return caps;
}

// A producer's stream time `t` on this source's timeline: as it is, or moved by the offset.
GstClockTime stream_time(std::uint64_t t, std::optional<std::int64_t> offset) {
  if (!offset) return t;
  const std::int64_t moved = static_cast<std::int64_t>(t) + *offset;
  return moved < 0 ? GST_CLOCK_TIME_NONE : static_cast<GstClockTime>(moved);
}

// Sets the buffer's timestamps, duration, flags and crop from the frame's metadata (protocol
// version 5). A frame without a pts is stamped with its capture time's running time, as before.
void stamp(GstBaseSrc* base, SrcState& s, GstBuffer* buffer, const Frame& frame, bool keep) {
  const FrameMeta& meta = frame.meta();
  if (meta.has(FrameFlag::discontinuity)) s.pts_offset.reset();
  if (!meta.pts) {
    GST_BUFFER_PTS(buffer) = frame_pts(base, frame.timestamp_ns());
  } else if (keep) {
    GST_BUFFER_PTS(buffer) = *meta.pts;
  } else {
    if (!s.pts_offset) {
      const GstClockTime now = frame_pts(base, frame.timestamp_ns());
      if (GST_CLOCK_TIME_IS_VALID(now)) {
        s.pts_offset = static_cast<std::int64_t>(now) - static_cast<std::int64_t>(*meta.pts);
      }
    }
    GST_BUFFER_PTS(buffer) = stream_time(*meta.pts, s.pts_offset);
  }
  if (meta.dts) {
    GST_BUFFER_DTS(buffer) = keep ? *meta.dts : stream_time(*meta.dts, s.pts_offset);
  }
  if (meta.duration) GST_BUFFER_DURATION(buffer) = *meta.duration;
  const auto flag = [&](FrameFlag ours, GstBufferFlags gst) {
    if (meta.has(ours)) GST_BUFFER_FLAG_SET(buffer, gst);
  };
  flag(FrameFlag::discontinuity, GST_BUFFER_FLAG_DISCONT);
  flag(FrameFlag::corrupted, GST_BUFFER_FLAG_CORRUPTED);
  flag(FrameFlag::delta_unit, GST_BUFFER_FLAG_DELTA_UNIT);
  flag(FrameFlag::gap, GST_BUFFER_FLAG_GAP);
  flag(FrameFlag::marker, GST_BUFFER_FLAG_MARKER);
  if (meta.crop) {
    if (GstVideoCropMeta* crop = gst_buffer_add_video_crop_meta(buffer)) {
      crop->x = meta.crop->x;
      crop->y = meta.crop->y;
      crop->width = meta.crop->width;
      crop->height = meta.crop->height;
    }
  }
}

GstFlowReturn on_frame(GstBaseSrc* base, SrcCore& core, const std::shared_ptr<SrcCore>& owner,
                       Frame frame, FrameRate rate, bool keep_timestamps, GstBuffer** out) {
  SrcState& s = state_of(base);
  const Layout layout = frame.layout();
  auto span = buffer_span(layout);
  if (!span) {  // the broker verified it; this is only a safety net
    GST_ELEMENT_ERROR(base, STREAM, DECODE,
                      ("A frame's layout is invalid: %s", span.error().message().c_str()),
                      (nullptr));
    return GST_FLOW_ERROR;
  }
  // Caps are made (an allocation) only when the layout's caps-relevant part changes.
  if (!s.caps_layout || !same_caps(*s.caps_layout, layout) || !(s.caps_rate == rate)) {
    GstCaps* caps = stream_caps(layout, rate);
    bool changed = false;
    {
      std::lock_guard lock(s.settings_mu);
      if (!s.caps || !gst_caps_is_equal(s.caps, caps)) {
        gst_caps_replace(&s.caps, caps);
        changed = true;
      }
    }
    s.caps_layout = layout;
    s.caps_rate = rate;
    if (changed) {
      GST_INFO_OBJECT(base, "frames now have caps %" GST_PTR_FORMAT, static_cast<void*>(caps));
      if (!gst_base_src_set_caps(base, caps)) {
        gst_caps_unref(caps);
        GST_ELEMENT_ERROR(base, CORE, NEGOTIATION, ("Downstream does not take the frames' caps."),
                          (nullptr));
        return GST_FLOW_NOT_NEGOTIATED;
      }
    }
    gst_caps_unref(caps);
  }

  const std::uint64_t sequence = frame.sequence();
  const std::uint64_t dropped = frame.dropped();
  auto bytes = frame.bytes();
  GstBuffer* buffer = gst_buffer_new();
  stamp(base, s, buffer, frame, keep_timestamps);
  // Downstream may hold buffers for long (filesink gathers 64 KiB, encoders look ahead). Past
  // the queue depth the producer would wait for them (block-producer) or this consumer would
  // miss frames (drop-oldest): so the last free place is never lent, its frame is copied.
  if (core.lent.load() + 1 >= std::max<std::uint32_t>(core.depth, 2)) {
    if (!s.copy_logged) {
      s.copy_logged = true;
      GST_WARNING_OBJECT(base,
                         "downstream holds %u of the %u frames this source may hold: copying "
                         "frames out of shared memory until it lets go (the copies property "
                         "counts them; raise queue-depth to avoid it)",
                         core.lent.load(), core.depth);
    }
    const gsize size = span->end - span->first;
    GstMemory* copy = gst_allocator_alloc(nullptr, size, nullptr);
    GstMapInfo map;
    if (gst_memory_map(copy, &map, GST_MAP_WRITE)) {
      std::memcpy(map.data, bytes.data() + span->first, size);
      gst_memory_unmap(copy, &map);
    }
    gst_buffer_append_memory(buffer, copy);
    s.copies.fetch_add(1);
    std::lock_guard lock(core.mu);
    Frame released = std::move(frame);  // released here, under the consumer's lock
  } else {
    core.lent.fetch_add(1);
    auto* data = const_cast<std::byte*>(bytes.data());
    auto* hold = new FrameHold{owner, std::move(frame)};
    gst_buffer_append_memory(
        buffer, gst_memory_new_wrapped(GST_MEMORY_FLAG_READONLY, data, bytes.size(), span->first,
                                       span->end - span->first, hold, release_frame));
  }
  add_layout_meta(buffer, layout, span->first);
  GST_BUFFER_OFFSET(buffer) = sequence;
  const std::uint64_t before = s.dropped.exchange(dropped);
  if (dropped > before) {
    GST_BUFFER_FLAG_SET(buffer, GST_BUFFER_FLAG_DISCONT);
    GST_DEBUG_OBJECT(base, "%" G_GUINT64_FORMAT " frames dropped so far", dropped);
    GstMessage* qos =
        gst_message_new_qos(GST_OBJECT(base), TRUE, GST_BUFFER_PTS(buffer), GST_CLOCK_TIME_NONE,
                            GST_BUFFER_PTS(buffer), GST_CLOCK_TIME_NONE);
    gst_message_set_qos_stats(qos, GST_FORMAT_BUFFERS, s.received.load() + 1, dropped);
    gst_element_post_message(GST_ELEMENT(base), qos);
  }
  s.received.fetch_add(1);
  *out = buffer;
  return GST_FLOW_OK;
}

GstFlowReturn create(GstPushSrc* push, GstBuffer** out) {
  auto* base = GST_BASE_SRC(push);
  SrcState& s = state_of(push);
  std::shared_ptr<SrcCore> core;
  std::string socket_path, topic;
  bool reconnect = false;
  bool keep_timestamps = false;
  {
    std::lock_guard lock(s.settings_mu);
    core = s.core;
    socket_path = s.settings.socket_path;
    topic = s.settings.topic;
    reconnect = s.settings.reconnect;
    keep_timestamps = s.settings.producer_timestamps;
  }
  if (!core) return GST_FLOW_FLUSHING;
  for (;;) {
    if (s.unlocked) return GST_FLOW_FLUSHING;
    if (core->ended && std::chrono::steady_clock::now() - *core->ended >= kEndGrace) {
      core->ended.reset();
      return GST_FLOW_EOS;
    }
    std::optional<Event> event;
    FrameRate rate;
    {
      std::lock_guard lock(core->mu);
      auto next = core->consumer->receive_for(std::chrono::milliseconds(10));
      if (!next) {
        const Error& e = next.error();
        if (e.is(Errc::disconnected)) {
          GST_ELEMENT_ERROR(base, RESOURCE, READ,
                            ("Lost the shmfd broker at %s.", socket_path.c_str()),
                            ("%s (set reconnect=true to connect again)", e.message().c_str()));
        } else {
          GST_ELEMENT_ERROR(base, RESOURCE, READ,
                            ("Cannot receive topic \"%s\": %s", topic.c_str(), e.message().c_str()),
                            (nullptr));
        }
        return GST_FLOW_ERROR;
      }
      if (*next) event.emplace(std::move(**next));
      if (event && std::holds_alternative<Frame>(*event)) {
        if (auto options = core->consumer->topic_options(topic)) rate = options->frame_rate;
      }
    }
    if (!event) continue;
    if (auto* frame = std::get_if<Frame>(&*event)) {
      if (core->ended) GST_INFO_OBJECT(base, "the stream goes on after its end");
      core->ended.reset();
      return on_frame(base, *core, core, std::move(*frame), rate, keep_timestamps, out);
    }
    if (auto* end = std::get_if<EndOfStream>(&*event)) {
      GST_INFO_OBJECT(base, "end of stream: %s", end->reason.c_str());
      s.pts_offset.reset();  // a next producer's stream time starts anew
      if (!reconnect) return GST_FLOW_EOS;
      core->ended = std::chrono::steady_clock::now();
      continue;
    }
    if (auto* again = std::get_if<Reconnected>(&*event)) {
      core->ended.reset();
      s.pts_offset.reset();
      GST_ELEMENT_INFO(base, RESOURCE, READ,
                       ("Connected again to the shmfd broker after %lld ms.",
                        static_cast<long long>(again->gap.count())),
                       (nullptr));
    }
  }
}

gboolean unlock(GstBaseSrc* base) {
  state_of(base).unlocked = true;
  return TRUE;
}

gboolean unlock_stop(GstBaseSrc* base) {
  state_of(base).unlocked = false;
  return TRUE;
}

void finalize(GObject* object) {
  SrcState* s = static_cast<ShmfdSrc*>(static_cast<gpointer>(object))->state;
  gst_caps_replace(&s->caps, nullptr);
  delete s;
  G_OBJECT_CLASS(shmfd_src_parent_class)->finalize(object);
}

}  // namespace

void shmfd_src_class_init(ShmfdSrcClass* klass) {
  GST_DEBUG_CATEGORY_INIT(shmfdsrc_debug, "shmfdsrc", 0, "shmfd source");
  auto* object = G_OBJECT_CLASS(klass);
  auto* element = GST_ELEMENT_CLASS(klass);
  auto* base = GST_BASE_SRC_CLASS(klass);
  object->set_property = set_property;
  object->get_property = get_property;
  object->finalize = finalize;
  install_connection_properties(
      object, PROP_SOCKET_PATH, PROP_TOPIC, PROP_RECONNECT, "The topic to receive (required)",
      "Connect again to a broker that went away (restarted) and go on; "
      "otherwise a lost broker is an error. An end of stream is then final "
      "only if no frame or reconnection follows within a second (a broker "
      "that shuts down ends its producers' streams first)");
  g_object_class_install_property(
      object, PROP_QUEUE_DEPTH,
      g_param_spec_uint("queue-depth", "Queue depth",
                        "Frames that may wait for this source, held frames included (0: the "
                        "broker's default; the broker caps it)",
                        0, 4096, 0, kSetting));
  g_object_class_install_property(
      object, PROP_BACKPRESSURE,
      g_param_spec_enum("backpressure", "Backpressure",
                        "When this element falls behind: drop-oldest keeps the newest `depth` "
                        "frames (live media); block-producer makes the producer wait (no "
                        "loss); latest always takes the newest frame (previews, inference)",
                        backpressure_get_type(), static_cast<gint>(Backpressure::drop_oldest),
                        kSetting));
  g_object_class_install_property(
      object, PROP_PRODUCER_TIMESTAMPS,
      g_param_spec_boolean(
          "producer-timestamps", "Producer timestamps",
          "Give buffers the producer's pts and dts unchanged (for recording and tests). "
          "Otherwise, as a live source, they are moved onto this element's running time by one "
          "constant, fixed at the first frame (and again after a producer's discontinuity or a "
          "new producer), so their spacing and durations stay exactly the producer's. Frames "
          "without a pts are stamped with their capture time's running time",
          FALSE, kSetting));
  g_object_class_install_property(
      object, PROP_RECEIVED,
      g_param_spec_uint64("received", "Received", "Frames received so far", 0, G_MAXUINT64, 0,
                          kStatistic));
  g_object_class_install_property(
      object, PROP_DROPPED,
      g_param_spec_uint64("dropped", "Dropped",
                          "Frames of the topic this source missed: dropped because its queue "
                          "was full (drop-oldest), or lost while reconnecting. Each increase is "
                          "also posted as a QoS message and marks the next buffer DISCONT",
                          0, G_MAXUINT64, 0, kStatistic));

  g_object_class_install_property(
      object, PROP_COPIES,
      g_param_spec_uint64("copies", "Copies",
                          "Frames copied out of shared memory because downstream held all but "
                          "one of the frames this source may hold (0: every buffer maps the "
                          "producer's pages)",
                          0, G_MAXUINT64, 0, kStatistic));

  gst_element_class_set_static_metadata(
      element, "shmfd source", "Source/Video/Audio",
      "Receives the frames of a shmfd topic, zero-copy: each buffer maps the producer's pages",
      "shmfd developers");
  static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE(
      "src", GST_PAD_SRC, GST_PAD_ALWAYS,
      GST_STATIC_CAPS(GST_VIDEO_CAPS_MAKE("{ RGBA, BGRA, RGB, NV12, I420, YUY2, GRAY8, "
                                          "GRAY16_LE }") "; audio/x-raw, format=(string){ U8, "
                                                         "S16LE, S32LE, F32LE, F64LE }, "
                                                         "rate=(int)[1, MAX], "
                                                         "channels=(int)[1, 256], "
                                                         "layout=(string){ interleaved, "
                                                         "non-interleaved }; "
                                                         "application/x-shmfd-tensor; "
                                                         "application/octet-stream"));
  gst_element_class_add_static_pad_template(element, &src_template);

  base->start = start;
  base->stop = stop;
  base->negotiate = negotiate;
  base->get_caps = get_caps;
  base->unlock = unlock;
  base->unlock_stop = unlock_stop;
  GST_PUSH_SRC_CLASS(klass)->create = create;
}

void shmfd_src_init(ShmfdSrc* self) {
  self->state = new SrcState();
  self->state->settings.socket_path = default_socket_path();
  gst_base_src_set_live(GST_BASE_SRC(self), TRUE);
  gst_base_src_set_format(GST_BASE_SRC(self), GST_FORMAT_TIME);
}

GType shmfdsrc_get_type() {
  return shmfd_src_get_type();
}

}  // namespace shmfd::gst
