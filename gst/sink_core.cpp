#include "sink_core.hpp"

#include <gst/video/gstvideometa.h>
#include <gst/video/gstvideopool.h>

#include <chrono>
#include <cstring>

#include "caps.hpp"

namespace shmfd::gst {

Result<std::shared_ptr<SinkCore>> SinkCore::connect(SinkSettings settings) {
  auto producer = Producer::connect(settings.socket_path, settings.client_name);
  if (!producer) return fail(std::move(producer.error()));
  if (settings.reconnect) producer->reconnect_on_loss();
  return std::shared_ptr<SinkCore>(new SinkCore(std::move(settings), std::move(*producer)));
}

Status SinkCore::advertise(LayoutKind kind, const TopicOptions& options) {
  std::lock_guard lock(mu_);
  end_pending_ = false;
  if (advertised_ == kind) return {};
  if (advertised_) {
    return fail(Errc::invalid_argument,
                "topic \"" + settings_.topic + "\" carries " +
                    std::string(to_string(*advertised_)) + " frames; the stream now has " +
                    std::string(to_string(kind)) +
                    " caps (a topic carries one kind: restart the pipeline)");
  }
  if (auto ok = producer_.advertise(settings_.topic, kind, settings_.guarantee, options); !ok) {
    return ok;
  }
  advertised_ = kind;
  return {};
}

Status SinkCore::unadvertise_locked() {
  end_pending_ = false;
  if (!advertised_) return {};
  advertised_.reset();
  pool_ = 0;
  slot_size_ = 0;
  parked_.clear();
  return producer_.unadvertise(settings_.topic);
}

Status SinkCore::end_of_stream() {
  std::lock_guard lock(mu_);
  if (!lent_.empty()) {
    end_pending_ = true;
    return {};
  }
  return unadvertise_locked();
}

Result<std::uint32_t> SinkCore::pool_for(std::size_t bytes) {
  std::lock_guard lock(mu_);
  if (pool_ != 0 && slot_size_ >= bytes) return pool_;
  MemfdOptions options;
  options.huge_pages = settings_.huge_pages;
  options.fall_back_to_normal_pages = true;
  auto pool = producer_.create_pool(settings_.topic, bytes, settings_.slots, options);
  if (!pool) return fail(std::move(pool.error()));
  pool_ = *pool;
  slot_size_ = producer_.slot_size(pool_);
  return pool_;
}

Result<std::optional<Slot>> SinkCore::acquire(std::uint32_t pool, bool dont_wait,
                                              const std::function<bool()>& interrupted) {
  std::unique_lock lock(mu_);
  for (;;) {
    if (interrupted()) return std::optional<Slot>();
    // A slot subscribers released while its GstBuffer was still alive, now gone too.
    for (auto it = parked_.begin(); it != parked_.end(); ++it) {
      if (it->pool == pool && !lent_.contains({it->pool, it->index})) {
        Slot s = *it;
        parked_.erase(it);
        return std::optional<Slot>(s);
      }
    }
    auto slot = producer_.try_acquire(pool);
    if (!slot) return fail(std::move(slot.error()));
    if (*slot) {
      if (!lent_.contains({(*slot)->pool, (*slot)->index})) return slot;
      parked_.push_back(**slot);
      continue;
    }
    if (dont_wait) return std::optional<Slot>();
    // Subscribers hold every slot. Their releases come on channels or as broker messages,
    // which try_acquire reads; a millisecond between looks costs nothing while starved.
    wake_.wait_for(lock, std::chrono::milliseconds(1));
  }
}

namespace {

// What a GstMemory over a slot keeps alive: the producer, whose mapping the slot is.
struct MemoryHold {
  std::shared_ptr<SinkCore> core;
};

}  // namespace

GstMemory* SinkCore::lend(std::shared_ptr<SinkCore> self, const Slot& slot, gsize size) {
  {
    std::lock_guard lock(mu_);
    lent_[{slot.pool, slot.index}] = Lent{slot, false};
  }
  auto* hold = new MemoryHold{std::move(self)};
  return gst_memory_new_wrapped(static_cast<GstMemoryFlags>(0), slot.bytes.data(),
                                slot.bytes.size(), 0, size, hold,
                                [](gpointer p) { delete static_cast<MemoryHold*>(p); });
}

std::optional<Slot> SinkCore::lent_unpublished(const void* data) {
  std::lock_guard lock(mu_);
  for (auto& [key, lent] : lent_) {
    if (lent.slot.bytes.data() == data && !lent.published) return lent.slot;
  }
  return std::nullopt;
}

void SinkCore::give_back(const Slot& slot) {
  std::lock_guard lock(mu_);
  auto it = lent_.find({slot.pool, slot.index});
  if (it == lent_.end()) return;
  if (!it->second.published) (void)producer_.discard(slot);
  lent_.erase(it);
  wake_.notify_all();
  if (lent_.empty() && end_pending_) (void)unadvertise_locked();
}

Result<std::uint64_t> SinkCore::publish(const Slot& slot, const Layout& layout, std::uint64_t ts,
                                        const FrameMeta& meta) {
  std::lock_guard lock(mu_);
  auto sequence = producer_.publish(settings_.topic, slot, layout, meta, ts);
  if (auto it = lent_.find({slot.pool, slot.index}); it != lent_.end()) {
    it->second.published = true;
  }
  if (sequence) published.fetch_add(1, std::memory_order_relaxed);
  return sequence;
}

void SinkCore::discard(const Slot& slot) {
  std::lock_guard lock(mu_);
  (void)producer_.discard(slot);
}

Result<std::uint64_t> SinkCore::publish_sealed(
    const Layout& layout, std::uint64_t ts, const FrameMeta& meta,
    const std::function<std::string(std::span<std::byte>)>& fill) {
  std::lock_guard lock(mu_);
  MemfdOptions options;
  options.huge_pages = settings_.huge_pages;
  auto buffer = producer_.allocate(settings_.topic, layout, options);
  if (!buffer && settings_.huge_pages) buffer = producer_.allocate(settings_.topic, layout);
  if (!buffer) return fail(std::move(buffer.error()));
  if (std::string why = fill(buffer->bytes()); !why.empty()) {
    return fail(Errc::invalid_argument, std::move(why));
  }
  auto sequence = producer_.publish(settings_.topic, std::move(*buffer), layout, meta, ts);
  if (sequence) published.fetch_add(1, std::memory_order_relaxed);
  return sequence;
}

void post_publish_error(GstElement* sink, const SinkCore& core, const Error& e) {
  if (e.is(Errc::disconnected)) {
    GST_ELEMENT_ERROR(sink, RESOURCE, WRITE,
                      ("Lost the shmfd broker at %s.", core.settings().socket_path.c_str()),
                      ("%s", e.message().c_str()));
  } else if (e.is(Errc::broker_refused)) {
    GST_ELEMENT_ERROR(sink, RESOURCE, WRITE,
                      ("The shmfd broker refused a frame of topic \"%s\": %s",
                       core.settings().topic.c_str(), e.message().c_str()),
                      (nullptr));
  } else {
    GST_ELEMENT_ERROR(
        sink, STREAM, FAILED,
        ("Cannot publish on topic \"%s\": %s", core.settings().topic.c_str(), e.message().c_str()),
        (nullptr));
  }
}

// --- The buffer pool ---

struct ShmfdBufferPool {
  GstBufferPool parent;
  std::shared_ptr<SinkCore>* core;
  GstVideoInfo info;
  std::uint32_t pool;
  GWeakRef sink;  // whose error a slot it cannot take is
};

struct ShmfdBufferPoolClass {
  GstBufferPoolClass parent_class;
};

G_DEFINE_TYPE(ShmfdBufferPool, shmfd_buffer_pool, GST_TYPE_BUFFER_POOL)

namespace {

ShmfdBufferPool* as_pool(GstBufferPool* p) {
  return reinterpret_cast<ShmfdBufferPool*>(p);
}

GQuark slot_quark() {
  static const GQuark q = g_quark_from_static_string("shmfd-slot");
  return q;
}

const gchar** pool_options(GstBufferPool*) {
  static const gchar* options[] = {GST_BUFFER_POOL_OPTION_VIDEO_META, nullptr};
  return options;
}

gboolean pool_set_config(GstBufferPool* pool, GstStructure* config) {
  GstCaps* caps = nullptr;
  guint size = 0, min = 0, max = 0;
  if (!gst_buffer_pool_config_get_params(config, &caps, &size, &min, &max) || !caps) return FALSE;
  if (!gst_video_info_from_caps(&as_pool(pool)->info, caps)) return FALSE;
  return GST_BUFFER_POOL_CLASS(shmfd_buffer_pool_parent_class)->set_config(pool, config);
}

gboolean pool_start(GstBufferPool* pool) {
  ShmfdBufferPool* self = as_pool(pool);
  auto id = (*self->core)->pool_for(GST_VIDEO_INFO_SIZE(&self->info));
  if (!id) {
    GST_ERROR_OBJECT(pool, "no shmfd pool: %s", id.error().message().c_str());
    return FALSE;
  }
  self->pool = *id;
  return TRUE;  // nothing is preallocated: each acquire takes a free slot
}

gboolean pool_stop(GstBufferPool*) {
  return TRUE;
}

GstFlowReturn pool_acquire(GstBufferPool* pool, GstBuffer** buffer,
                           GstBufferPoolAcquireParams* params) {
  ShmfdBufferPool* self = as_pool(pool);
  const bool dont_wait = params && (params->flags & GST_BUFFER_POOL_ACQUIRE_FLAG_DONTWAIT);
  auto slot = (*self->core)->acquire(self->pool, dont_wait, [pool] {
    return GST_BUFFER_POOL_IS_FLUSHING(pool) != 0;
  });
  if (!slot) {
    GST_ERROR_OBJECT(pool, "no slot: %s", slot.error().message().c_str());
    // Upstream would report only "Internal data stream error": the sink says what happened.
    if (auto* sink = static_cast<GstElement*>(g_weak_ref_get(&self->sink))) {
      post_publish_error(sink, **self->core, slot.error());
      gst_object_unref(sink);
    }
    return GST_FLOW_ERROR;
  }
  if (!*slot)
    return dont_wait && !GST_BUFFER_POOL_IS_FLUSHING(pool) ? GST_FLOW_EOS : GST_FLOW_FLUSHING;
  const std::shared_ptr<SinkCore>& core = *self->core;
  GstBuffer* out = gst_buffer_new();
  gst_buffer_append_memory(out, core->lend(core, **slot, GST_VIDEO_INFO_SIZE(&self->info)));
  GstVideoInfo& info = self->info;
  gst_buffer_add_video_meta_full(out, GST_VIDEO_FRAME_FLAG_NONE, GST_VIDEO_INFO_FORMAT(&info),
                                 GST_VIDEO_INFO_WIDTH(&info), GST_VIDEO_INFO_HEIGHT(&info),
                                 GST_VIDEO_INFO_N_PLANES(&info), info.offset, info.stride);
  auto* slot_copy = new Slot(**slot);
  gst_mini_object_set_qdata(GST_MINI_OBJECT(out), slot_quark(), slot_copy,
                            [](gpointer p) { delete static_cast<Slot*>(p); });
  *buffer = out;
  return GST_FLOW_OK;
}

void pool_reset(GstBufferPool*, GstBuffer*) {}

void pool_release(GstBufferPool* pool, GstBuffer* buffer) {
  auto* slot = static_cast<Slot*>(gst_mini_object_get_qdata(GST_MINI_OBJECT(buffer), slot_quark()));
  if (slot) (*as_pool(pool)->core)->give_back(*slot);
  // Not kept for reuse: the slot goes back to the producer, and the next acquire wraps
  // whichever slot is free then. (buffer->pool is NULL here, so this frees it.)
  gst_buffer_unref(buffer);
}

void pool_flush_start(GstBufferPool* pool) {
  (*as_pool(pool)->core)->wake();
}

void pool_finalize(GObject* object) {
  g_weak_ref_clear(&reinterpret_cast<ShmfdBufferPool*>(object)->sink);
  delete reinterpret_cast<ShmfdBufferPool*>(object)->core;
  G_OBJECT_CLASS(shmfd_buffer_pool_parent_class)->finalize(object);
}

}  // namespace

void shmfd_buffer_pool_class_init(ShmfdBufferPoolClass* klass) {
  auto* pool = GST_BUFFER_POOL_CLASS(klass);
  G_OBJECT_CLASS(klass)->finalize = pool_finalize;
  pool->get_options = pool_options;
  pool->set_config = pool_set_config;
  pool->start = pool_start;
  pool->stop = pool_stop;
  pool->acquire_buffer = pool_acquire;
  pool->reset_buffer = pool_reset;
  pool->release_buffer = pool_release;
  pool->flush_start = pool_flush_start;
}

void shmfd_buffer_pool_init(ShmfdBufferPool* self) {
  self->core = new std::shared_ptr<SinkCore>();
  gst_video_info_init(&self->info);
  self->pool = 0;
  g_weak_ref_init(&self->sink, nullptr);
}

GstBufferPool* shmfd_buffer_pool_new(std::shared_ptr<SinkCore> core, GstElement* sink) {
  auto* pool = static_cast<ShmfdBufferPool*>(g_object_new(shmfd_buffer_pool_get_type(), nullptr));
  *pool->core = std::move(core);
  g_weak_ref_set(&pool->sink, sink);
  gst_object_ref_sink(pool);
  return GST_BUFFER_POOL(pool);
}

}  // namespace shmfd::gst
