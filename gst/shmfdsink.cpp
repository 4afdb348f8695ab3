// shmfdsink: publishes the buffers it gets on a shmfd topic (see gst/README.md).

#include <gst/base/gstbasesink.h>
#include <gst/video/video.h>

#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "caps.hpp"
#include "elements.hpp"
#include "sink_core.hpp"

GST_DEBUG_CATEGORY_STATIC(shmfdsink_debug);
#define GST_CAT_DEFAULT shmfdsink_debug

namespace shmfd::gst {

struct ShmfdSink {
  GstBaseSink parent;
  struct State* state;
};

struct ShmfdSinkClass {
  GstBaseSinkClass parent_class;
};

struct State {
  std::mutex settings_mu;
  SinkSettings settings;
  std::shared_ptr<SinkCore> core;  // from start() to stop()
  StreamFormat format;
  std::atomic<bool> unlocked{false};
  bool copy_logged = false;
  TopicOptions options;  // what set_caps advertised: the caps' frame rate
  bool crop_logged = false;
};

G_DEFINE_TYPE(ShmfdSink, shmfd_sink, GST_TYPE_BASE_SINK)

namespace {

enum {
  PROP_0,
  PROP_SOCKET_PATH,
  PROP_TOPIC,
  PROP_GUARANTEE,
  PROP_SLOTS,
  PROP_HUGE_PAGES,
  PROP_RECONNECT,
  PROP_COPIES,
  PROP_PUBLISHED,
};

ShmfdSink* as_sink(gpointer p) {
  return static_cast<ShmfdSink*>(p);
}

void set_property(GObject* object, guint id, const GValue* value, GParamSpec* pspec) {
  State& s = *as_sink(object)->state;
  std::lock_guard lock(s.settings_mu);
  switch (id) {
    case PROP_SOCKET_PATH:
      s.settings.socket_path = g_value_get_string(value) ? g_value_get_string(value) : "";
      break;
    case PROP_TOPIC:
      s.settings.topic = g_value_get_string(value) ? g_value_get_string(value) : "";
      break;
    case PROP_GUARANTEE:
      s.settings.guarantee = static_cast<Guarantee>(g_value_get_enum(value));
      break;
    case PROP_SLOTS:
      s.settings.slots = g_value_get_uint(value);
      break;
    case PROP_HUGE_PAGES:
      s.settings.huge_pages = g_value_get_boolean(value);
      break;
    case PROP_RECONNECT:
      s.settings.reconnect = g_value_get_boolean(value);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

void get_property(GObject* object, guint id, GValue* value, GParamSpec* pspec) {
  State& s = *as_sink(object)->state;
  std::lock_guard lock(s.settings_mu);
  switch (id) {
    case PROP_SOCKET_PATH:
      g_value_set_string(value, s.settings.socket_path.c_str());
      break;
    case PROP_TOPIC:
      g_value_set_string(value, s.settings.topic.c_str());
      break;
    case PROP_GUARANTEE:
      g_value_set_enum(value, static_cast<gint>(s.settings.guarantee));
      break;
    case PROP_SLOTS:
      g_value_set_uint(value, s.settings.slots);
      break;
    case PROP_HUGE_PAGES:
      g_value_set_boolean(value, s.settings.huge_pages);
      break;
    case PROP_RECONNECT:
      g_value_set_boolean(value, s.settings.reconnect);
      break;
    case PROP_COPIES:
      g_value_set_uint64(value, s.core ? s.core->copies.load() : 0);
      break;
    case PROP_PUBLISHED:
      g_value_set_uint64(value, s.core ? s.core->published.load() : 0);
      break;
    default:
      G_OBJECT_WARN_INVALID_PROPERTY_ID(object, id, pspec);
  }
}

gboolean start(GstBaseSink* base) {
  State& s = *as_sink(base)->state;
  SinkSettings settings;
  {
    std::lock_guard lock(s.settings_mu);
    settings = s.settings;
  }
  if (settings.topic.empty()) {
    GST_ELEMENT_ERROR(base, RESOURCE, SETTINGS, ("No topic: set shmfdsink's topic property."),
                      (nullptr));
    return FALSE;
  }
  settings.client_name = std::string("gst:") + GST_OBJECT_NAME(base);
  auto core = SinkCore::connect(settings);
  if (!core) {
    GST_ELEMENT_ERROR(base, RESOURCE, OPEN_WRITE,
                      ("Cannot connect to the shmfd broker at %s.", settings.socket_path.c_str()),
                      ("%s", core.error().message().c_str()));
    return FALSE;
  }
  std::lock_guard lock(s.settings_mu);
  s.core = std::move(*core);
  s.format = {};
  s.copy_logged = false;
  return TRUE;
}

gboolean stop(GstBaseSink* base) {
  State& s = *as_sink(base)->state;
  std::shared_ptr<SinkCore> core;
  {
    std::lock_guard lock(s.settings_mu);
    core = std::move(s.core);
  }
  // Subscribers get EndOfStream now, or when upstream frees the last buffer of our pool; the
  // connection closes when the last buffer over a slot is gone.
  if (core) (void)core->end_of_stream();
  return TRUE;
}

std::shared_ptr<SinkCore> core_of(GstBaseSink* base) {
  State& s = *as_sink(base)->state;
  std::lock_guard lock(s.settings_mu);
  return s.core;
}

gboolean set_caps(GstBaseSink* base, GstCaps* caps) {
  State& s = *as_sink(base)->state;
  auto format = stream_format(caps);
  if (!format) {
    GST_ELEMENT_ERROR(base, STREAM, FORMAT,
                      ("shmfd cannot carry these caps: %s", format.error().message().c_str()),
                      ("caps: %" GST_PTR_FORMAT, static_cast<void*>(caps)));
    return FALSE;
  }
  auto core = core_of(base);
  if (!core) return FALSE;
  // The caps' frame rate is the topic's nominal rate (shmfdsrc's caps say it again).
  TopicOptions options;
  if (format->kind == LayoutKind::image && GST_VIDEO_INFO_FPS_N(&format->video) > 0 &&
      GST_VIDEO_INFO_FPS_D(&format->video) > 0) {
    options.frame_rate = {static_cast<std::uint32_t>(GST_VIDEO_INFO_FPS_N(&format->video)),
                          static_cast<std::uint32_t>(GST_VIDEO_INFO_FPS_D(&format->video))};
  }
  if (auto ok = core->advertise(format->kind, options); !ok) {
    GST_ELEMENT_ERROR(base, RESOURCE, WRITE,
                      ("The shmfd broker refused topic \"%s\": %s", core->settings().topic.c_str(),
                       ok.error().message().c_str()),
                      (nullptr));
    return FALSE;
  }
  s.format = *format;
  s.options = options;
  return TRUE;
}

// What the sink takes: first video/x-raw and audio/x-raw in the formats shmfd knows (so an
// upstream that can make one of them negotiates it), then anything else: other media types go
// out as blobs, and raw video or audio in a format shmfd lacks fails in set_caps, naming it.
GstCaps* known_caps() {
  static GstStaticCaps caps = GST_STATIC_CAPS(
      GST_VIDEO_CAPS_MAKE("{ RGBA, BGRA, RGB, NV12, I420, YUY2, GRAY8, GRAY16_LE }")
      "; audio/x-raw, format=(string){ U8, S16LE, S32LE, F32LE, F64LE }, rate=(int)[1, MAX], "
      "channels=(int)[1, 256], layout=(string){ interleaved, non-interleaved }");
  return gst_static_caps_get(&caps);
}

GstCaps* get_caps(GstBaseSink*, GstCaps* filter) {
  if (!filter || gst_caps_is_any(filter)) return gst_caps_new_any();
  GstCaps* known = known_caps();
  GstCaps* out = gst_caps_intersect_full(filter, known, GST_CAPS_INTERSECT_FIRST);
  gst_caps_unref(known);
  return gst_caps_merge(out, gst_caps_ref(filter));
}

gboolean propose_allocation(GstBaseSink* base, GstQuery* query) {
  GstCaps* caps = nullptr;
  gboolean need_pool = FALSE;
  gst_query_parse_allocation(query, &caps, &need_pool);
  gst_query_add_allocation_meta(query, GST_VIDEO_META_API_TYPE, nullptr);
  auto core = core_of(base);
  if (!caps || !core || core->settings().guarantee != Guarantee::pool) return TRUE;
  auto format = stream_format(caps);
  if (!format || format->kind != LayoutKind::image) return TRUE;  // audio, blobs: copied
  const auto size = static_cast<guint>(GST_VIDEO_INFO_SIZE(&format->video));
  GstBufferPool* pool = shmfd_buffer_pool_new(core, GST_ELEMENT(base));
  GstStructure* config = gst_buffer_pool_get_config(pool);
  gst_buffer_pool_config_set_params(config, caps, size, 0, 0);
  gst_buffer_pool_config_add_option(config, GST_BUFFER_POOL_OPTION_VIDEO_META);
  if (!gst_buffer_pool_set_config(pool, config)) {
    gst_object_unref(pool);
    return TRUE;
  }
  gst_query_add_allocation_pool(query, need_pool ? pool : nullptr, size, 0, 0);
  gst_object_unref(pool);
  return TRUE;
}

// What a frame carries of `buffer` (protocol version 5): its PTS, DTS and duration as they are
// (the producer's stream time), its flags, and its GstVideoCropMeta. The capture time is the
// publish time: when the frame entered shmfd, on CLOCK_MONOTONIC.
FrameMeta buffer_meta(GstBaseSink* base, State& s, GstBuffer* buffer) {
  FrameMeta meta;
  if (GST_BUFFER_PTS_IS_VALID(buffer)) meta.pts = GST_BUFFER_PTS(buffer);
  if (GST_BUFFER_DTS_IS_VALID(buffer)) meta.dts = GST_BUFFER_DTS(buffer);
  if (GST_BUFFER_DURATION_IS_VALID(buffer)) meta.duration = GST_BUFFER_DURATION(buffer);
  const auto flag = [&](GstBufferFlags gst, FrameFlag ours) {
    if (GST_BUFFER_FLAG_IS_SET(buffer, gst)) meta.flags |= static_cast<std::uint32_t>(ours);
  };
  flag(GST_BUFFER_FLAG_DISCONT, FrameFlag::discontinuity);
  flag(GST_BUFFER_FLAG_CORRUPTED, FrameFlag::corrupted);
  flag(GST_BUFFER_FLAG_DELTA_UNIT, FrameFlag::delta_unit);
  flag(GST_BUFFER_FLAG_GAP, FrameFlag::gap);
  flag(GST_BUFFER_FLAG_MARKER, FrameFlag::marker);
  if (s.format.kind != LayoutKind::image) return meta;
  if (const GstVideoCropMeta* crop = gst_buffer_get_video_crop_meta(buffer)) {
    const std::uint64_t width = GST_VIDEO_INFO_WIDTH(&s.format.video);
    const std::uint64_t height = GST_VIDEO_INFO_HEIGHT(&s.format.video);
    if (crop->width > 0 && crop->height > 0 && std::uint64_t{crop->x} + crop->width <= width &&
        std::uint64_t{crop->y} + crop->height <= height) {
      meta.crop = Crop{crop->x, crop->y, crop->width, crop->height};
    } else if (!s.crop_logged) {
      s.crop_logged = true;
      GST_WARNING_OBJECT(
          base,
          "a GstVideoCropMeta (%u,%u %ux%u) does not lie inside the %" G_GUINT64_FORMAT
          "x%" G_GUINT64_FORMAT " image: frames go without it",
          crop->x, crop->y, crop->width, crop->height, width, height);
    }
  }
  return meta;
}

GstFlowReturn publish_error(GstBaseSink* base, const SinkCore& core, const Error& e) {
  post_publish_error(GST_ELEMENT(base), core, e);
  return GST_FLOW_ERROR;
}

// Copies `buffer` into a free slot (or, for Guarantee::sealed, a fresh memfd) and publishes it.
GstFlowReturn publish_copy(GstBaseSink* base, SinkCore& core, GstBuffer* buffer,
                           const FrameMeta& meta) {
  const std::uint64_t ts = 0;  // the publish time
  State& s = *as_sink(base)->state;
  const StreamFormat& format = s.format;
  if (!s.copy_logged) {
    s.copy_logged = true;
    GST_WARNING_OBJECT(base,
                       "buffers come from outside shmfdsink's pool: each is copied into shared "
                       "memory (the copies property counts them)");
  }
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) {
    GST_ELEMENT_ERROR(base, RESOURCE, READ, ("Cannot read a buffer."), (nullptr));
    return GST_FLOW_ERROR;
  }
  std::unique_ptr<GstMapInfo, std::function<void(GstMapInfo*)>> unmap(
      &map, [buffer](GstMapInfo* m) { gst_buffer_unmap(buffer, m); });
  // A video frame is copied into GStreamer's default arrangement, whatever strides it had.
  const bool video = format.kind == LayoutKind::image;
  const gsize size = video ? GST_VIDEO_INFO_SIZE(&format.video) : map.size;
  auto layout = video ? buffer_layout(format, nullptr, size) : buffer_layout(format, buffer, size);
  if (!layout) {
    GST_ELEMENT_ERROR(
        base, STREAM, FORMAT,
        ("A buffer's layout cannot be expressed: %s", layout.error().message().c_str()), (nullptr));
    return GST_FLOW_ERROR;
  }
  core.copies.fetch_add(1, std::memory_order_relaxed);
  auto fill = [&](std::span<std::byte> dst) -> std::string {
    if (!video) {
      std::memcpy(dst.data(), map.data, map.size);
      return {};
    }
    GstVideoFrame in, out;
    GstBuffer* wrapper = gst_buffer_new_wrapped_full(static_cast<GstMemoryFlags>(0), dst.data(),
                                                     dst.size(), 0, size, nullptr, nullptr);
    auto* info = const_cast<GstVideoInfo*>(&format.video);
    bool ok = gst_video_frame_map(&in, info, buffer, GST_MAP_READ);
    if (ok) {
      ok = gst_video_frame_map(&out, info, wrapper, GST_MAP_WRITE);
      if (ok) {
        ok = gst_video_frame_copy(&out, &in);
        gst_video_frame_unmap(&out);
      }
      gst_video_frame_unmap(&in);
    }
    gst_buffer_unref(wrapper);
    if (ok) return {};
    return "a video buffer of " + std::to_string(map.size) + " bytes does not match its caps";
  };
  if (core.settings().guarantee == Guarantee::sealed) {
    auto sent = core.publish_sealed(*layout, ts, meta, fill);
    return sent ? GST_FLOW_OK : publish_error(base, core, sent.error());
  }
  auto pool = core.pool_for(size);
  if (!pool) return publish_error(base, core, pool.error());
  auto slot = core.acquire(*pool, false, [&s] { return s.unlocked.load(); });
  if (!slot) return publish_error(base, core, slot.error());
  if (!*slot) return GST_FLOW_FLUSHING;
  if (std::string why = fill((*slot)->bytes); !why.empty()) {
    core.discard(**slot);
    GST_ELEMENT_ERROR(base, STREAM, FORMAT, ("%s", why.c_str()), (nullptr));
    return GST_FLOW_ERROR;
  }
  auto sent = core.publish(**slot, *layout, ts, meta);
  return sent ? GST_FLOW_OK : publish_error(base, core, sent.error());
}

GstFlowReturn render(GstBaseSink* base, GstBuffer* buffer) {
  State& s = *as_sink(base)->state;
  auto core = core_of(base);
  if (!core) return GST_FLOW_FLUSHING;
  if (auto ok = core->advertise(s.format.kind, s.options); !ok) {  // again after an end of stream
    return publish_error(base, *core, ok.error());
  }
  const FrameMeta meta = buffer_meta(base, s, buffer);
  // A buffer of our pool: its one memory is a slot, filled in place. Publish it.
  if (gst_buffer_n_memory(buffer) == 1 && s.format.kind == LayoutKind::image) {
    GstMapInfo map;
    if (gst_buffer_map(buffer, &map, GST_MAP_READ)) {
      auto slot = core->lent_unpublished(map.data);
      const gsize size = map.size;
      gst_buffer_unmap(buffer, &map);
      if (slot) {
        auto layout = buffer_layout(s.format, buffer, size);
        if (!layout) {
          GST_ELEMENT_ERROR(
              base, STREAM, FORMAT,
              ("A buffer's layout cannot be expressed: %s", layout.error().message().c_str()),
              (nullptr));
          return GST_FLOW_ERROR;
        }
        auto sent = core->publish(*slot, *layout, 0, meta);
        return sent ? GST_FLOW_OK : publish_error(base, *core, sent.error());
      }
    }
  }
  return publish_copy(base, *core, buffer, meta);
}

gboolean event(GstBaseSink* base, GstEvent* e) {
  if (GST_EVENT_TYPE(e) == GST_EVENT_EOS) {
    if (auto core = core_of(base)) {
      if (auto ok = core->end_of_stream(); !ok) {
        GST_ELEMENT_WARNING(base, RESOURCE, WRITE, ("Cannot end the stream on the broker."),
                            ("%s", ok.error().message().c_str()));
      }
    }
  }
  return GST_BASE_SINK_CLASS(shmfd_sink_parent_class)->event(base, e);
}

gboolean unlock(GstBaseSink* base) {
  State& s = *as_sink(base)->state;
  s.unlocked = true;
  if (auto core = core_of(base)) core->wake();
  return TRUE;
}

gboolean unlock_stop(GstBaseSink* base) {
  as_sink(base)->state->unlocked = false;
  return TRUE;
}

void finalize(GObject* object) {
  delete as_sink(object)->state;
  G_OBJECT_CLASS(shmfd_sink_parent_class)->finalize(object);
}

}  // namespace

void shmfd_sink_class_init(ShmfdSinkClass* klass) {
  GST_DEBUG_CATEGORY_INIT(shmfdsink_debug, "shmfdsink", 0, "shmfd sink");
  auto* object = G_OBJECT_CLASS(klass);
  auto* element = GST_ELEMENT_CLASS(klass);
  auto* sink = GST_BASE_SINK_CLASS(klass);
  object->set_property = set_property;
  object->get_property = get_property;
  object->finalize = finalize;
  install_connection_properties(object, PROP_SOCKET_PATH, PROP_TOPIC, PROP_RECONNECT,
                                "The topic to publish on (required)",
                                "Connect again to a broker that went away (restarted) and go on; "
                                "otherwise a lost broker is an error");
  g_object_class_install_property(
      object, PROP_GUARANTEE,
      g_param_spec_enum("guarantee", "Guarantee",
                        "pool: frames are slots of a shared pool, written in place by upstream "
                        "(zero-copy); sealed: each frame is copied into its own memfd, sealed "
                        "against writes, that a subscriber may keep for good",
                        guarantee_get_type(), static_cast<gint>(Guarantee::pool), kSetting));
  g_object_class_install_property(
      object, PROP_SLOTS,
      g_param_spec_uint("slots", "Slots",
                        "Frames in the pool: enough for every subscriber's queue depth plus the "
                        "frames upstream fills meanwhile",
                        2, 1024, 8, kSetting));
  g_object_class_install_property(
      object, PROP_HUGE_PAGES,
      g_param_spec_boolean("huge-pages", "Huge pages",
                           "Put frames on huge pages (falls back to normal pages when none are "
                           "reserved)",
                           FALSE, kSetting));
  g_object_class_install_property(
      object, PROP_COPIES,
      g_param_spec_uint64("copies", "Copies",
                          "Buffers copied into shared memory because they did not come from "
                          "shmfdsink's pool (0 when upstream writes in place)",
                          0, G_MAXUINT64, 0, kStatistic));
  g_object_class_install_property(
      object, PROP_PUBLISHED,
      g_param_spec_uint64("published", "Published", "Frames published so far", 0, G_MAXUINT64, 0,
                          kStatistic));

  gst_element_class_set_static_metadata(
      element, "shmfd sink", "Sink/Video/Audio",
      "Publishes buffers on a shmfd topic: shared memory, verified by the broker, zero-copy",
      "shmfd developers");
  static GstStaticPadTemplate sink_template =
      GST_STATIC_PAD_TEMPLATE("sink", GST_PAD_SINK, GST_PAD_ALWAYS, GST_STATIC_CAPS_ANY);
  gst_element_class_add_static_pad_template(element, &sink_template);

  sink->start = start;
  sink->stop = stop;
  sink->set_caps = set_caps;
  sink->get_caps = get_caps;
  sink->propose_allocation = propose_allocation;
  sink->render = render;
  sink->event = event;
  sink->unlock = unlock;
  sink->unlock_stop = unlock_stop;
}

void shmfd_sink_init(ShmfdSink* self) {
  self->state = new State();
  self->state->settings.socket_path = default_socket_path();
}

GType shmfdsink_get_type() {
  return shmfd_sink_get_type();
}

}  // namespace shmfd::gst
