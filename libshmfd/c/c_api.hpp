// What the C API's translation units share (libshmfd/c/*.cpp): the handles behind shmfd.h's
// opaque types, the thread's last error, and the conversions of layouts. Internal: not
// installed, and nothing here is exported (c/shmfd-c.map).
#pragma once

#include <cstdint>
#include <cstring>
#include <deque>
#include <new>
#include <string>

#include "shmfd.h"
#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/service.hpp"

struct shmfd_producer {
  shmfd::Producer producer;
  std::deque<shmfd::Error> refusals;  // read by poll_errors, handed out one per call
};

struct shmfd_buffer {
  shmfd::WritableBuffer buffer;
};

struct shmfd_consumer {
  shmfd::Consumer consumer;
  bool pollable = false;
};

struct shmfd_frame {
  const shmfd::Frame* frame = nullptr;
  shmfd_layout layout{};
};

struct shmfd_caller {
  shmfd::Caller caller;
};

struct shmfd_response {
  shmfd::Response response;
  shmfd_frame frame;
};

struct shmfd_server {
  shmfd::Server server;
};

struct shmfd_request {
  shmfd::ServerEvent event;
  shmfd_frame frame;
};

struct shmfd_event {
  shmfd::Event event;
  shmfd_frame frame;
  std::string topic;
  std::string reason;
};

namespace shmfd::capi {

struct LastError {
  shmfd_status status = SHMFD_OK;
  std::string message;
  int err = 0;
  int broker = -1;  // or the shmfd_call_error of SHMFD_E_CALL_FAILED
};
extern thread_local LastError last;

// Sets the thread's last error and returns `status`.
shmfd_status set_error(shmfd_status status, std::string message, int err = 0, int broker = -1);
// The status and last error of a C++ error (its category decides which).
shmfd_status set_error(const shmfd::Error& e);
// SHMFD_E_INVALID_ARGUMENT: "function: what is NULL".
shmfd_status null_argument(const char* function, const char* what);
// SHMFD_E_INVALID_ARGUMENT naming the flags of `flags` outside `known`.
shmfd_status unknown_flags(const char* function, std::uint32_t flags, std::uint32_t known);
// A layout from C (an error naming what is wrong in it), and one to C.
shmfd_status to_cpp(const char* function, const shmfd_layout* in, shmfd::Layout& out);
shmfd_layout to_c(const shmfd::Layout& in);
shmfd::Channels channels_of(std::uint32_t flags);
std::string socket_or_default(const char* socket_path);

constexpr std::uint32_t kConnectFlags = SHMFD_RECONNECT | SHMFD_POLLABLE | SHMFD_NO_CHANNELS;

// Runs `body` (which returns an shmfd_status), turning anything thrown into an error. A
// failure's message names the call first: "shmfd_producer_connect: connect(/run/...): ...".
template <typename F>
shmfd_status guarded(const char* function, F&& body) noexcept {
  try {
    const shmfd_status status = body();
    if (status != SHMFD_OK && last.message.compare(0, std::strlen(function), function) != 0) {
      last.message.insert(0, std::string(function) + ": ");
    }
    return status;
  } catch (const std::bad_alloc&) {
    return set_error(SHMFD_E_INTERNAL, std::string(function) + ": out of memory");
  } catch (const std::exception& e) {
    return set_error(SHMFD_E_INTERNAL, std::string(function) + ": " + e.what());
  } catch (...) {
    return set_error(SHMFD_E_INTERNAL, std::string(function) + ": an unknown exception");
  }
}

// An enum value from C, or `unknown` (one past the last) when it is out of range, so the
// layout checks name it.
template <typename E>
E enum_from(long long v, int count) {
  return static_cast<E>(v >= 0 && v < count ? static_cast<int>(v) : count);
}

// shmfd_*_create_pool(): `create(MemfdOptions)` with the pool flags of `flags` (others are an
// error naming them); the pool's id to `pool_out`.
template <typename Create>
shmfd_status create_pool_with(const char* function, std::uint32_t flags, std::uint32_t* pool_out,
                              Create&& create) {
  if (!pool_out) return null_argument(function, "pool_out");
  if ((flags & ~SHMFD_POOL_HUGE_PAGES) != 0) {
    return unknown_flags(function, flags, SHMFD_POOL_HUGE_PAGES);
  }
  shmfd::MemfdOptions options;
  options.huge_pages = (flags & SHMFD_POOL_HUGE_PAGES) != 0;
  options.fall_back_to_normal_pages = options.huge_pages;
  shmfd::Result<std::uint32_t> pool = create(options);
  if (!pool) return set_error(pool.error());
  *pool_out = *pool;
  return SHMFD_OK;
}

// shmfd_*_acquire(): `acquire(Wait)`, SHMFD_NONBLOCK failing fast; the slot to `out`.
template <typename Acquire>
shmfd_status acquire_with(const char* function, std::uint32_t flags, shmfd_slot* out,
                          Acquire&& acquire) {
  if (!out) return null_argument(function, "out");
  if ((flags & ~SHMFD_NONBLOCK) != 0) return unknown_flags(function, flags, SHMFD_NONBLOCK);
  shmfd::Result<shmfd::Slot> slot =
      acquire((flags & SHMFD_NONBLOCK) ? shmfd::Wait::fail_fast : shmfd::Wait::block);
  if (!slot) return set_error(slot.error());
  *out = shmfd_slot{slot->pool,
                    slot->index,
                    reinterpret_cast<std::uint8_t*>(slot->bytes.data()),
                    slot->bytes.size(),
                    {0, 0}};
  return SHMFD_OK;
}

// A slot from C.
inline shmfd::Slot slot_of(const shmfd_slot& slot) {
  return shmfd::Slot{slot.pool, slot.index,
                     std::span(reinterpret_cast<std::byte*>(slot.data), slot.size)};
}

template <typename T>
shmfd_status layout_out(const char* function, shmfd::Result<T> made, shmfd_layout* out) {
  if (!out) return null_argument(function, "out");
  if (!made) return set_error(made.error());
  *out = to_c(shmfd::Layout(*made));
  return SHMFD_OK;
}

}  // namespace shmfd::capi
