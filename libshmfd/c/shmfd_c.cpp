// The C API (shmfd.h) over the C++ client library: handles own a Producer or Consumer, errors
// become the thread's last error, and no exception leaves a function.
#include "shmfd.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>

#include "c_api.hpp"
#include "error_table.hpp"  // libshmfd/src: the names of the codes, shared with C++ and Python

namespace {

using shmfd::Errc;

// The header's codes are Errc's values: checked here, so neither can drift from the other.
static_assert(static_cast<int>(Errc::not_memfd) == SHMFD_E_NOT_MEMFD);
static_assert(static_cast<int>(Errc::huge_pages_unavailable) == SHMFD_E_HUGE_PAGES_UNAVAILABLE);
static_assert(static_cast<int>(Errc::empty_message) == SHMFD_E_EMPTY_MESSAGE);
static_assert(static_cast<int>(Errc::layout_unknown_format) == SHMFD_E_LAYOUT_UNKNOWN_FORMAT);
static_assert(static_cast<int>(Errc::layout_out_of_bounds) == SHMFD_E_LAYOUT_OUT_OF_BOUNDS);
static_assert(static_cast<int>(Errc::invalid_topic_name) == SHMFD_E_INVALID_TOPIC_NAME);
static_assert(static_cast<int>(Errc::broker_refused) == SHMFD_E_BROKER_REFUSED);
static_assert(static_cast<int>(Errc::disconnected) == SHMFD_E_DISCONNECTED);
static_assert(static_cast<int>(Errc::no_free_slot) == SHMFD_E_NO_FREE_SLOT);
static_assert(static_cast<int>(Errc::invalid_argument) == SHMFD_E_INVALID_ARGUMENT);
static_assert(static_cast<int>(Errc::limit_exceeded) == SHMFD_E_LIMIT_EXCEEDED);
static_assert(static_cast<int>(shmfd::BrokerErrc::bad_sequence) == SHMFD_BROKER_BAD_SEQUENCE);
static_assert(static_cast<int>(shmfd::BrokerErrc::invalid_metadata) ==
              SHMFD_BROKER_INVALID_METADATA);
static_assert(static_cast<int>(Errc::invalid_metadata) == SHMFD_E_INVALID_METADATA);
static_assert(static_cast<int>(Errc::call_failed) == SHMFD_E_CALL_FAILED);
static_assert(static_cast<int>(shmfd::BrokerErrc::invalid_call) == SHMFD_BROKER_INVALID_CALL);
static_assert(static_cast<int>(shmfd::BrokerErrc::permission_denied) ==
              SHMFD_BROKER_PERMISSION_DENIED);
static_assert(static_cast<int>(shmfd::PixelFormat::gray16) == SHMFD_PIXEL_GRAY16);
static_assert(static_cast<int>(shmfd::SampleFormat::f64) == SHMFD_SAMPLE_F64);
static_assert(static_cast<int>(shmfd::DType::f64) == SHMFD_DTYPE_F64);
static_assert(static_cast<int>(shmfd::LayoutKind::tensor) == SHMFD_LAYOUT_TENSOR);
static_assert(SHMFD_MAX_PLANES == shmfd::kMaxPlanes &&
              SHMFD_MAX_TENSOR_RANK == shmfd::kMaxTensorRank);
static_assert(sizeof(shmfd_layout) == 8 + 32 * 8, "shmfd_layout's size is part of the ABI");
static_assert(sizeof(shmfd_slot) == 40, "shmfd_slot's size is part of the ABI");

}  // namespace

namespace shmfd::capi {

thread_local LastError last;

shmfd_status set_error(shmfd_status status, std::string message, int err, int broker) {
  last.status = status;
  last.message = std::move(message);
  last.err = err;
  last.broker = broker;
  return status;
}

static_assert(static_cast<int>(shmfd::CallErrc::no_server) == SHMFD_CALL_NO_SERVER);
static_assert(static_cast<int>(shmfd::CallErrc::cancelled) == SHMFD_CALL_CANCELLED);

shmfd_status set_error(const shmfd::Error& e) {
  const std::error_code& code = e.code();
  if (code.category() == shmfd::error_category()) {
    return set_error(static_cast<shmfd_status>(code.value()), e.message());
  }
  if (code.category() == shmfd::broker_category()) {
    return set_error(SHMFD_E_BROKER_REFUSED, e.message(), 0, code.value());
  }
  if (code.category() == shmfd::call_category()) {
    return set_error(SHMFD_E_CALL_FAILED, e.message(), 0, code.value());
  }
  if (code.category() == std::generic_category() || code.category() == std::system_category()) {
    return set_error(SHMFD_E_SYSTEM, e.message(), code.value());
  }
  return set_error(SHMFD_E_INTERNAL, e.message());
}

shmfd_status null_argument(const char* function, const char* what) {
  return set_error(SHMFD_E_INVALID_ARGUMENT, std::string(function) + ": " + what + " is NULL");
}

shmfd_status to_cpp(const char* function, const shmfd_layout* in, shmfd::Layout& out) {
  if (!in) return null_argument(function, "layout");
  switch (in->kind) {
    case SHMFD_LAYOUT_BLOB:
      out = shmfd::BlobLayout{in->blob.offset, in->blob.size};
      return SHMFD_OK;
    case SHMFD_LAYOUT_IMAGE: {
      shmfd::ImageLayout l;
      l.format = enum_from<shmfd::PixelFormat>(in->format, 8);
      l.width = in->image.width;
      l.height = in->image.height;
      l.plane_count = in->image.plane_count;
      for (std::size_t i = 0; i < shmfd::kMaxPlanes; ++i) {
        l.planes[i] = {in->image.planes[i].offset, in->image.planes[i].stride,
                       in->image.planes[i].size};
      }
      out = l;
      return SHMFD_OK;
    }
    case SHMFD_LAYOUT_AUDIO: {
      shmfd::AudioLayout l;
      l.format = enum_from<shmfd::SampleFormat>(in->format, 5);
      l.sample_rate = in->audio.sample_rate;
      l.channels = in->audio.channels;
      l.frames = in->audio.frames;
      l.planar = in->audio.planar != 0;
      l.offset = in->audio.offset;
      l.plane_stride = in->audio.plane_stride;
      out = l;
      return SHMFD_OK;
    }
    case SHMFD_LAYOUT_TENSOR: {
      shmfd::TensorLayout l;
      l.dtype = enum_from<shmfd::DType>(in->format, 12);
      l.offset = in->tensor.offset;
      l.rank = in->tensor.rank;
      for (std::size_t i = 0; i < shmfd::kMaxTensorRank; ++i) {
        l.shape[i] = in->tensor.shape[i];
        l.strides[i] = in->tensor.strides[i];
      }
      out = l;
      return SHMFD_OK;
    }
    default:
      return set_error(SHMFD_E_INVALID_ARGUMENT,
                       std::string(function) + ": layout kind " + std::to_string(in->kind) +
                           " is none of blob (0), image (1), audio (2), tensor (3)");
  }
}

shmfd_layout to_c(const shmfd::Layout& in) {
  shmfd_layout out{};
  out.kind = static_cast<std::uint32_t>(shmfd::layout_kind(in));
  std::visit(
      [&](const auto& l) {
        using T = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<T, shmfd::BlobLayout>) {
          out.blob.offset = l.offset;
          out.blob.size = l.size;
        } else if constexpr (std::is_same_v<T, shmfd::ImageLayout>) {
          out.format = static_cast<std::uint32_t>(l.format);
          out.image.width = l.width;
          out.image.height = l.height;
          out.image.plane_count = l.plane_count;
          for (std::size_t i = 0; i < shmfd::kMaxPlanes; ++i) {
            out.image.planes[i] = {l.planes[i].offset, l.planes[i].stride, l.planes[i].size};
          }
        } else if constexpr (std::is_same_v<T, shmfd::AudioLayout>) {
          out.format = static_cast<std::uint32_t>(l.format);
          out.audio.sample_rate = l.sample_rate;
          out.audio.channels = l.channels;
          out.audio.frames = l.frames;
          out.audio.planar = l.planar ? 1 : 0;
          out.audio.offset = l.offset;
          out.audio.plane_stride = l.plane_stride;
        } else {
          out.format = static_cast<std::uint32_t>(l.dtype);
          out.tensor.offset = l.offset;
          out.tensor.rank = l.rank;
          for (std::size_t i = 0; i < shmfd::kMaxTensorRank; ++i) {
            out.tensor.shape[i] = l.shape[i];
            out.tensor.strides[i] = l.strides[i];
          }
        }
      },
      in);
  return out;
}

shmfd::Channels channels_of(std::uint32_t flags) {
  return (flags & (SHMFD_POLLABLE | SHMFD_NO_CHANNELS)) != 0 ? shmfd::Channels::off
                                                             : shmfd::Channels::automatic;
}

std::string socket_or_default(const char* socket_path) {
  return socket_path ? std::string(socket_path) : shmfd::default_socket_path();
}

shmfd_status unknown_flags(const char* function, std::uint32_t flags, std::uint32_t known) {
  return set_error(
      SHMFD_E_INVALID_ARGUMENT, std::string(function) + ": unknown flags 0x" + [&] {
        char buf[16];
        std::snprintf(buf, sizeof buf, "%x", flags & ~known);
        return std::string(buf);
      }());
}

}  // namespace shmfd::capi

using namespace shmfd::capi;
extern "C" {

// ---- Errors ----

shmfd_status shmfd_last_error(void) {
  return last.status;
}
const char* shmfd_last_error_message(void) {
  return last.message.c_str();
}
int shmfd_last_error_errno(void) {
  return last.status == SHMFD_E_SYSTEM ? last.err : 0;
}
int shmfd_last_broker_error(void) {
  return last.status == SHMFD_E_BROKER_REFUSED ? last.broker : -1;
}
int shmfd_last_call_error(void) {
  return last.status == SHMFD_E_CALL_FAILED ? last.broker : 0;
}

const char* shmfd_status_name(int status) {
  switch (status) {
    case SHMFD_OK:
      return "SHMFD_OK";
    case SHMFD_E_SYSTEM:
      return "SHMFD_E_SYSTEM";
    case SHMFD_E_INTERNAL:
      return "SHMFD_E_INTERNAL";
    default:
      break;
  }
  // The others are shmfd::Errc's values (checked above): their names are in its one table.
  // Every c_name is a literal, so data() is a NUL-terminated string that lives for good.
  if (const auto* info = shmfd::detail::errc_info(status)) return info->c_name.data();
  return "unknown shmfd_status";
}

size_t shmfd_default_socket_path(char* buf, size_t size) {
  try {
    const std::string path = shmfd::default_socket_path();
    if (buf && size > 0) {
      const std::size_t n = std::min(path.size(), size - 1);
      std::memcpy(buf, path.data(), n);
      buf[n] = '\0';
    }
    return path.size();
  } catch (...) {
    if (buf && size > 0) buf[0] = '\0';
    return 0;
  }
}

// ---- Layouts ----

shmfd_status shmfd_image_layout(int format, uint32_t width, uint32_t height, uint32_t row_alignment,
                                shmfd_layout* out) {
  return guarded("shmfd_image_layout", [&] {
    return layout_out(
        "shmfd_image_layout",
        shmfd::image_layout(enum_from<shmfd::PixelFormat>(format, 8), width, height, row_alignment),
        out);
  });
}

shmfd_status shmfd_audio_layout(int format, uint32_t sample_rate, uint32_t channels,
                                uint64_t frames, int planar, shmfd_layout* out) {
  return guarded("shmfd_audio_layout", [&] {
    return layout_out("shmfd_audio_layout",
                      shmfd::audio_layout(enum_from<shmfd::SampleFormat>(format, 5), sample_rate,
                                          channels, frames, planar != 0),
                      out);
  });
}

shmfd_status shmfd_tensor_layout(int dtype, uint32_t rank, const uint64_t* shape,
                                 shmfd_layout* out) {
  return guarded("shmfd_tensor_layout", [&] {
    if (!shape && rank > 0) return null_argument("shmfd_tensor_layout", "shape");
    return layout_out("shmfd_tensor_layout",
                      shmfd::tensor_layout(enum_from<shmfd::DType>(dtype, 12),
                                           std::span<const std::uint64_t>(shape, shape ? rank : 0)),
                      out);
  });
}

shmfd_status shmfd_blob_layout(uint64_t size, shmfd_layout* out) {
  return guarded("shmfd_blob_layout", [&] {
    return layout_out("shmfd_blob_layout",
                      shmfd::Result<shmfd::BlobLayout>(shmfd::blob_layout(size)), out);
  });
}

shmfd_status shmfd_layout_check(const shmfd_layout* layout, uint64_t buffer_size) {
  return guarded("shmfd_layout_check", [&] {
    shmfd::Layout l;
    if (auto s = to_cpp("shmfd_layout_check", layout, l); s != SHMFD_OK) return s;
    auto ok = shmfd::validate_layout(l, buffer_size);
    return ok ? SHMFD_OK : set_error(ok.error());
  });
}

uint64_t shmfd_layout_extent(const shmfd_layout* layout) {
  std::uint64_t extent = 0;
  guarded("shmfd_layout_extent", [&] {
    shmfd::Layout l;
    if (auto s = to_cpp("shmfd_layout_extent", layout, l); s != SHMFD_OK) return s;
    auto e = shmfd::layout_extent(l);
    if (!e) return set_error(e.error());
    extent = *e;
    return SHMFD_OK;
  });
  return extent;
}

// ---- Producer ----

shmfd_status shmfd_producer_connect(const char* socket_path, const char* client_name,
                                    uint32_t flags, shmfd_producer** out) {
  return guarded("shmfd_producer_connect", [&] {
    if (!out) return null_argument("shmfd_producer_connect", "out");
    if ((flags & ~(SHMFD_RECONNECT | SHMFD_NO_CHANNELS)) != 0) {
      return unknown_flags("shmfd_producer_connect", flags, SHMFD_RECONNECT | SHMFD_NO_CHANNELS);
    }
    auto p = shmfd::Producer::connect(socket_or_default(socket_path),
                                      client_name ? client_name : "producer", channels_of(flags));
    if (!p) return set_error(p.error());
    if (flags & SHMFD_RECONNECT) p->reconnect_on_loss();
    *out = new shmfd_producer{std::move(*p), {}};
    return SHMFD_OK;
  });
}

void shmfd_producer_close(shmfd_producer* producer) {
  delete producer;
}

shmfd_status shmfd_producer_advertise(shmfd_producer* producer, const char* topic, int kind,
                                      int guarantee) {
  return guarded("shmfd_producer_advertise", [&] {
    if (!producer) return null_argument("shmfd_producer_advertise", "producer");
    if (!topic) return null_argument("shmfd_producer_advertise", "topic");
    if (kind < SHMFD_LAYOUT_BLOB || kind > SHMFD_LAYOUT_TENSOR) {
      return set_error(SHMFD_E_INVALID_ARGUMENT, "shmfd_producer_advertise(\"" +
                                                     std::string(topic) + "\"): layout kind " +
                                                     std::to_string(kind) +
                                                     " is none of blob (0), image (1), audio (2), "
                                                     "tensor (3)");
    }
    if (guarantee != SHMFD_GUARANTEE_SEALED && guarantee != SHMFD_GUARANTEE_POOL) {
      return set_error(SHMFD_E_INVALID_ARGUMENT,
                       "shmfd_producer_advertise(\"" + std::string(topic) + "\"): guarantee " +
                           std::to_string(static_cast<int>(guarantee)) + " is unknown");
    }
    auto ok = producer->producer.advertise(
        topic, static_cast<shmfd::LayoutKind>(kind),
        guarantee == SHMFD_GUARANTEE_POOL ? shmfd::Guarantee::pool : shmfd::Guarantee::sealed);
    return ok ? SHMFD_OK : set_error(ok.error());
  });
}

shmfd_status shmfd_producer_unadvertise(shmfd_producer* producer, const char* topic) {
  return guarded("shmfd_producer_unadvertise", [&] {
    if (!producer) return null_argument("shmfd_producer_unadvertise", "producer");
    if (!topic) return null_argument("shmfd_producer_unadvertise", "topic");
    auto ok = producer->producer.unadvertise(topic);
    return ok ? SHMFD_OK : set_error(ok.error());
  });
}

shmfd_status shmfd_producer_create_pool(shmfd_producer* producer, const char* topic,
                                        size_t slot_bytes, uint32_t slot_count, uint32_t flags,
                                        uint32_t* pool_out) {
  return guarded("shmfd_producer_create_pool", [&] {
    if (!producer) return null_argument("shmfd_producer_create_pool", "producer");
    if (!topic) return null_argument("shmfd_producer_create_pool", "topic");
    return create_pool_with(
        "shmfd_producer_create_pool", flags, pool_out, [&](const shmfd::MemfdOptions& options) {
          return producer->producer.create_pool(topic, slot_bytes, slot_count, options);
        });
  });
}

shmfd_status shmfd_producer_acquire(shmfd_producer* producer, uint32_t pool, uint32_t flags,
                                    shmfd_slot* out) {
  return guarded("shmfd_producer_acquire", [&] {
    if (!producer) return null_argument("shmfd_producer_acquire", "producer");
    return acquire_with("shmfd_producer_acquire", flags, out,
                        [&](shmfd::Wait wait) { return producer->producer.acquire(pool, wait); });
  });
}

shmfd_status shmfd_producer_publish_slot(shmfd_producer* producer, const char* topic,
                                         const shmfd_slot* slot, const shmfd_layout* layout,
                                         uint64_t timestamp_ns, uint64_t* sequence_out) {
  return guarded("shmfd_producer_publish_slot", [&] {
    if (!producer) return null_argument("shmfd_producer_publish_slot", "producer");
    if (!topic) return null_argument("shmfd_producer_publish_slot", "topic");
    if (!slot) return null_argument("shmfd_producer_publish_slot", "slot");
    shmfd::Layout l;
    if (auto s = to_cpp("shmfd_producer_publish_slot", layout, l); s != SHMFD_OK) return s;
    auto sequence = producer->producer.publish(topic, slot_of(*slot), l, timestamp_ns);
    if (!sequence) return set_error(sequence.error());
    if (sequence_out) *sequence_out = *sequence;
    return SHMFD_OK;
  });
}

shmfd_status shmfd_producer_allocate(shmfd_producer* producer, const char* topic, size_t size,
                                     shmfd_buffer** out) {
  return guarded("shmfd_producer_allocate", [&] {
    if (!producer) return null_argument("shmfd_producer_allocate", "producer");
    if (!topic) return null_argument("shmfd_producer_allocate", "topic");
    if (!out) return null_argument("shmfd_producer_allocate", "out");
    auto buffer = producer->producer.allocate(topic, shmfd::blob_layout(size));
    if (!buffer) return set_error(buffer.error());
    *out = new shmfd_buffer{std::move(*buffer)};
    return SHMFD_OK;
  });
}

uint8_t* shmfd_buffer_data(shmfd_buffer* buffer) {
  return buffer ? reinterpret_cast<std::uint8_t*>(buffer->buffer.bytes().data()) : nullptr;
}

size_t shmfd_buffer_size(const shmfd_buffer* buffer) {
  return buffer ? buffer->buffer.size() : 0;
}

void shmfd_buffer_free(shmfd_buffer* buffer) {
  delete buffer;
}

shmfd_status shmfd_producer_publish_buffer(shmfd_producer* producer, const char* topic,
                                           shmfd_buffer* buffer, const shmfd_layout* layout,
                                           uint64_t timestamp_ns, uint64_t* sequence_out) {
  // Consumed whatever happens, as the header says.
  std::unique_ptr<shmfd_buffer> owned(buffer);
  return guarded("shmfd_producer_publish_buffer", [&] {
    if (!producer) return null_argument("shmfd_producer_publish_buffer", "producer");
    if (!topic) return null_argument("shmfd_producer_publish_buffer", "topic");
    if (!owned) return null_argument("shmfd_producer_publish_buffer", "buffer");
    shmfd::Layout l;
    if (auto s = to_cpp("shmfd_producer_publish_buffer", layout, l); s != SHMFD_OK) return s;
    auto sequence = producer->producer.publish(topic, std::move(owned->buffer), l, timestamp_ns);
    if (!sequence) return set_error(sequence.error());
    if (sequence_out) *sequence_out = *sequence;
    return SHMFD_OK;
  });
}

shmfd_status shmfd_producer_poll_error(shmfd_producer* producer) {
  return guarded("shmfd_producer_poll_error", [&] {
    if (!producer) return null_argument("shmfd_producer_poll_error", "producer");
    if (producer->refusals.empty()) {
      auto errors = producer->producer.poll_errors();
      if (!errors) return set_error(errors.error());
      for (auto& e : *errors) producer->refusals.push_back(std::move(e));
    }
    if (producer->refusals.empty()) return SHMFD_OK;
    const shmfd::Error e = std::move(producer->refusals.front());
    producer->refusals.pop_front();
    return set_error(e);
  });
}

// ---- Consumer ----

shmfd_status shmfd_consumer_connect(const char* socket_path, const char* client_name,
                                    uint32_t flags, shmfd_consumer** out) {
  return guarded("shmfd_consumer_connect", [&] {
    if (!out) return null_argument("shmfd_consumer_connect", "out");
    if ((flags & ~kConnectFlags) != 0) {
      return unknown_flags("shmfd_consumer_connect", flags, kConnectFlags);
    }
    auto c = shmfd::Consumer::connect(socket_or_default(socket_path),
                                      client_name ? client_name : "consumer", channels_of(flags));
    if (!c) return set_error(c.error());
    if (flags & SHMFD_RECONNECT) c->reconnect_on_loss();
    *out = new shmfd_consumer{std::move(*c), (flags & SHMFD_POLLABLE) != 0};
    return SHMFD_OK;
  });
}

void shmfd_consumer_close(shmfd_consumer* consumer) {
  delete consumer;
}

shmfd_status shmfd_consumer_subscribe(shmfd_consumer* consumer, const char* topic, uint32_t depth,
                                      int policy, uint32_t* depth_out) {
  return guarded("shmfd_consumer_subscribe", [&] {
    if (!consumer) return null_argument("shmfd_consumer_subscribe", "consumer");
    if (!topic) return null_argument("shmfd_consumer_subscribe", "topic");
    if (policy != SHMFD_DROP_OLDEST && policy != SHMFD_BLOCK_PRODUCER && policy != SHMFD_LATEST) {
      return set_error(SHMFD_E_INVALID_ARGUMENT,
                       "shmfd_consumer_subscribe(\"" + std::string(topic) + "\"): backpressure " +
                           std::to_string(static_cast<int>(policy)) +
                           " is none of SHMFD_DROP_OLDEST (0), SHMFD_BLOCK_PRODUCER (1) and "
                           "SHMFD_LATEST (2)");
    }
    auto granted = consumer->consumer.subscribe(
        topic, depth,
        policy == SHMFD_BLOCK_PRODUCER ? shmfd::Backpressure::block_producer
        : policy == SHMFD_LATEST       ? shmfd::Backpressure::latest
                                       : shmfd::Backpressure::drop_oldest);
    if (!granted) return set_error(granted.error());
    if (depth_out) *depth_out = *granted;
    return SHMFD_OK;
  });
}

shmfd_status shmfd_consumer_unsubscribe(shmfd_consumer* consumer, const char* topic) {
  return guarded("shmfd_consumer_unsubscribe", [&] {
    if (!consumer) return null_argument("shmfd_consumer_unsubscribe", "consumer");
    if (!topic) return null_argument("shmfd_consumer_unsubscribe", "topic");
    auto ok = consumer->consumer.unsubscribe(topic);
    return ok ? SHMFD_OK : set_error(ok.error());
  });
}

shmfd_status shmfd_consumer_receive(shmfd_consumer* consumer, int timeout_ms, shmfd_event** out) {
  return guarded("shmfd_consumer_receive", [&] {
    if (!consumer) return null_argument("shmfd_consumer_receive", "consumer");
    if (!out) return null_argument("shmfd_consumer_receive", "out");
    *out = nullptr;
    std::optional<shmfd::Event> event;
    if (timeout_ms < 0) {
      auto e = consumer->consumer.receive();
      if (!e) return set_error(e.error());
      event = std::move(*e);
    } else {
      auto e = timeout_ms == 0
                   ? consumer->consumer.try_receive()
                   : consumer->consumer.receive_for(std::chrono::milliseconds(timeout_ms));
      if (!e) return set_error(e.error());
      event = std::move(*e);
    }
    if (!event) return SHMFD_OK;
    auto made = std::make_unique<shmfd_event>(shmfd_event{std::move(*event), {}, {}, {}});
    if (auto* frame = std::get_if<shmfd::Frame>(&made->event)) {
      made->frame.frame = frame;
      made->frame.layout = to_c(frame->layout());
      made->topic = frame->topic();
    } else if (auto* end = std::get_if<shmfd::EndOfStream>(&made->event)) {
      made->topic = end->topic;
      made->reason = end->reason;
    }
    *out = made.release();
    return SHMFD_OK;
  });
}

shmfd_status shmfd_consumer_fd(const shmfd_consumer* consumer, int* fd_out) {
  return guarded("shmfd_consumer_fd", [&] {
    if (!consumer) return null_argument("shmfd_consumer_fd", "consumer");
    if (!fd_out) return null_argument("shmfd_consumer_fd", "fd_out");
    if (!consumer->pollable) {
      return set_error(SHMFD_E_INVALID_ARGUMENT,
                       "shmfd_consumer_fd: this consumer was connected without SHMFD_POLLABLE, so "
                       "its pool frames come on shared-memory channels that no fd signals; "
                       "connect with SHMFD_POLLABLE to poll it");
    }
    *fd_out = consumer->consumer.native_handle();
    return SHMFD_OK;
  });
}

uint64_t shmfd_consumer_refusals(const shmfd_consumer* consumer) {
  return consumer ? consumer->consumer.channel_refusals() : 0;
}

shmfd_event_kind shmfd_event_get_kind(const shmfd_event* event) {
  if (!event) return SHMFD_EVENT_NONE;
  if (std::holds_alternative<shmfd::EndOfStream>(event->event)) return SHMFD_EVENT_END_OF_STREAM;
  if (std::holds_alternative<shmfd::Reconnected>(event->event)) return SHMFD_EVENT_RECONNECTED;
  return SHMFD_EVENT_FRAME;
}

const char* shmfd_event_topic(const shmfd_event* event) {
  return event ? event->topic.c_str() : "";
}

const char* shmfd_event_reason(const shmfd_event* event) {
  return event ? event->reason.c_str() : "";
}

uint64_t shmfd_event_dropped(const shmfd_event* event) {
  if (event == nullptr) return 0;
  if (const auto* frame = std::get_if<shmfd::Frame>(&event->event)) return frame->dropped();
  if (const auto* end = std::get_if<shmfd::EndOfStream>(&event->event)) return end->dropped;
  return 0;
}

const shmfd_frame* shmfd_event_frame(const shmfd_event* event) {
  return event && event->frame.frame ? &event->frame : nullptr;
}

void shmfd_event_free(shmfd_event* event) {
  delete event;
}

const uint8_t* shmfd_frame_data(const shmfd_frame* frame) {
  return frame ? reinterpret_cast<const std::uint8_t*>(frame->frame->bytes().data()) : nullptr;
}

size_t shmfd_frame_size(const shmfd_frame* frame) {
  return frame ? frame->frame->bytes().size() : 0;
}

const shmfd_layout* shmfd_frame_layout(const shmfd_frame* frame) {
  return frame ? &frame->layout : nullptr;
}

uint64_t shmfd_frame_sequence(const shmfd_frame* frame) {
  return frame ? frame->frame->sequence() : 0;
}

uint64_t shmfd_frame_timestamp_ns(const shmfd_frame* frame) {
  return frame ? frame->frame->timestamp_ns() : 0;
}

uint64_t shmfd_frame_dropped(const shmfd_frame* frame) {
  return frame ? frame->frame->dropped() : 0;
}

int shmfd_frame_in_pool(const shmfd_frame* frame) {
  return frame && frame->frame->in_pool() ? 1 : 0;
}

}  // extern "C"

namespace {

std::string hex32(std::uint32_t v) {
  char out[16];
  std::snprintf(out, sizeof out, "0x%x", v);
  return out;
}

// The C metadata as the library's; SHMFD_E_INVALID_ARGUMENT for `fields` bits it does not know.
shmfd_status meta_to_cpp(const char* call, const shmfd_frame_meta* meta, shmfd::FrameMeta& out) {
  out = {};
  if (meta == nullptr) return SHMFD_OK;
  constexpr std::uint32_t kFields =
      SHMFD_META_PTS | SHMFD_META_DTS | SHMFD_META_DURATION | SHMFD_META_CROP;
  if ((meta->fields & ~kFields) != 0) {
    return set_error(SHMFD_E_INVALID_ARGUMENT, std::string(call) + ": meta->fields " +
                                                   hex32(meta->fields) + " has unknown bits");
  }
  if (meta->header == nullptr && meta->header_size != 0) return null_argument(call, "meta->header");
  if ((meta->fields & SHMFD_META_PTS) != 0) out.pts = meta->pts;
  if ((meta->fields & SHMFD_META_DTS) != 0) out.dts = meta->dts;
  if ((meta->fields & SHMFD_META_DURATION) != 0) out.duration = meta->duration;
  if ((meta->fields & SHMFD_META_CROP) != 0) {
    out.crop = shmfd::Crop{meta->crop_x, meta->crop_y, meta->crop_width, meta->crop_height};
  }
  out.flags = meta->flags;
  if (meta->header_size != 0)
    out.header = std::as_bytes(std::span(meta->header, meta->header_size));
  return SHMFD_OK;
}

}  // namespace

extern "C" {

shmfd_status shmfd_producer_advertise_options(shmfd_producer* producer, const char* topic, int kind,
                                              int guarantee, const shmfd_topic_options* options) {
  if (options == nullptr) return shmfd_producer_advertise(producer, topic, kind, guarantee);
  return guarded("shmfd_producer_advertise_options", [&] {
    if (!producer) return null_argument("shmfd_producer_advertise_options", "producer");
    if (!topic) return null_argument("shmfd_producer_advertise_options", "topic");
    if (kind < SHMFD_LAYOUT_BLOB || kind > SHMFD_LAYOUT_TENSOR ||
        (guarantee != SHMFD_GUARANTEE_SEALED && guarantee != SHMFD_GUARANTEE_POOL)) {
      return set_error(SHMFD_E_INVALID_ARGUMENT, "shmfd_producer_advertise_options(\"" +
                                                     std::string(topic) + "\"): layout kind " +
                                                     std::to_string(kind) + " or guarantee " +
                                                     std::to_string(guarantee) + " is unknown");
    }
    shmfd::TopicOptions o;
    o.max_header_bytes = options->max_header_bytes;
    o.frame_rate = {options->frame_rate_num, options->frame_rate_den};
    o.timestamps_required = options->timestamps_required != 0;
    if (options->header_schema != nullptr) o.header_schema = options->header_schema;
    auto ok = producer->producer.advertise(
        topic, static_cast<shmfd::LayoutKind>(kind),
        guarantee == SHMFD_GUARANTEE_POOL ? shmfd::Guarantee::pool : shmfd::Guarantee::sealed, o);
    return ok ? SHMFD_OK : set_error(ok.error());
  });
}

shmfd_status shmfd_producer_publish_slot_meta(shmfd_producer* producer, const char* topic,
                                              const shmfd_slot* slot, const shmfd_layout* layout,
                                              const shmfd_frame_meta* meta, uint64_t timestamp_ns,
                                              uint64_t* sequence_out) {
  static constexpr const char* kCall = "shmfd_producer_publish_slot_meta";
  return guarded(kCall, [&] {
    if (!producer) return null_argument(kCall, "producer");
    if (!topic) return null_argument(kCall, "topic");
    if (!slot) return null_argument(kCall, "slot");
    shmfd::Layout l;
    if (auto s = to_cpp(kCall, layout, l); s != SHMFD_OK) return s;
    shmfd::FrameMeta m;
    if (auto s = meta_to_cpp(kCall, meta, m); s != SHMFD_OK) return s;
    auto sequence = producer->producer.publish(topic, slot_of(*slot), l, m, timestamp_ns);
    if (!sequence) return set_error(sequence.error());
    if (sequence_out) *sequence_out = *sequence;
    return SHMFD_OK;
  });
}

shmfd_status shmfd_producer_publish_buffer_meta(shmfd_producer* producer, const char* topic,
                                                shmfd_buffer* buffer, const shmfd_layout* layout,
                                                const shmfd_frame_meta* meta, uint64_t timestamp_ns,
                                                uint64_t* sequence_out) {
  static constexpr const char* kCall = "shmfd_producer_publish_buffer_meta";
  std::unique_ptr<shmfd_buffer> owned(buffer);  // consumed whatever happens
  return guarded(kCall, [&] {
    if (!producer) return null_argument(kCall, "producer");
    if (!topic) return null_argument(kCall, "topic");
    if (!owned) return null_argument(kCall, "buffer");
    shmfd::Layout l;
    if (auto s = to_cpp(kCall, layout, l); s != SHMFD_OK) return s;
    shmfd::FrameMeta m;
    if (auto s = meta_to_cpp(kCall, meta, m); s != SHMFD_OK) return s;
    auto sequence = producer->producer.publish(topic, std::move(owned->buffer), l, m, timestamp_ns);
    if (!sequence) return set_error(sequence.error());
    if (sequence_out) *sequence_out = *sequence;
    return SHMFD_OK;
  });
}

void shmfd_frame_get_meta(const shmfd_frame* frame, shmfd_frame_meta* out) {
  if (out == nullptr) return;
  *out = shmfd_frame_meta{};
  if (frame == nullptr) return;
  const shmfd::FrameMeta& m = frame->frame->meta();
  if (m.pts) {
    out->fields |= SHMFD_META_PTS;
    out->pts = *m.pts;
  }
  if (m.dts) {
    out->fields |= SHMFD_META_DTS;
    out->dts = *m.dts;
  }
  if (m.duration) {
    out->fields |= SHMFD_META_DURATION;
    out->duration = *m.duration;
  }
  if (m.crop) {
    out->fields |= SHMFD_META_CROP;
    out->crop_x = m.crop->x;
    out->crop_y = m.crop->y;
    out->crop_width = m.crop->width;
    out->crop_height = m.crop->height;
  }
  out->flags = m.flags;
  out->header = reinterpret_cast<const uint8_t*>(m.header.data());
  out->header_size = m.header.size();
}

}  // extern "C"
