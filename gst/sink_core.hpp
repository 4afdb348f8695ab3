// What shmfdsink and its buffer pool share: the producer, its pools, and which slots are lent
// to GstBuffers. Every buffer of the pool and every GstMemory over a slot holds a reference, so
// the producer (and so the slots' pages) outlives them all, whatever order GStreamer frees in.
#pragma once

#include <gst/gst.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "shmfd/producer.hpp"

namespace shmfd::gst {

struct SinkSettings {
  std::string socket_path;
  std::string topic;
  std::string client_name;
  Guarantee guarantee = Guarantee::pool;
  std::uint32_t slots = 8;
  bool huge_pages = false;
  bool reconnect = false;
};

class SinkCore {
 public:
  static Result<std::shared_ptr<SinkCore>> connect(SinkSettings settings);

  const SinkSettings& settings() const noexcept { return settings_; }

  // Declares the topic (again, after an end of stream) with `kind` and `options` (the caps'
  // frame rate). A topic carries one kind.
  Status advertise(LayoutKind kind, const TopicOptions& options = {});
  // The stream ended: subscribers get EndOfStream, at once or, while GstBuffers over slots
  // are alive, when the last one goes (unadvertising unmaps the pools).
  Status end_of_stream();

  // The pool new frames of `bytes` go into (created, or a bigger one created, on demand).
  Result<std::uint32_t> pool_for(std::size_t bytes);

  // A free slot of `pool`. Blocks while every slot is held (by subscribers or by GstBuffers),
  // until `interrupted` (checked every millisecond and on wake()) says stop: nullopt then.
  Result<std::optional<Slot>> acquire(std::uint32_t pool, bool dont_wait,
                                      const std::function<bool()>& interrupted);
  void wake() { wake_.notify_all(); }

  // Slots lent to GstBuffers of the buffer pool: while one is lent, its slot is never given
  // out again, even once subscribers released it.
  GstMemory* lend(std::shared_ptr<SinkCore> self, const Slot& slot, gsize size);
  // The lent slot whose bytes begin at `data`, if it is not published yet.
  std::optional<Slot> lent_unpublished(const void* data);
  // The GstBuffer over `slot` is gone: an unpublished slot is free again.
  void give_back(const Slot& slot);

  // Publishes an acquired slot (lent or not).
  Result<std::uint64_t> publish(const Slot& slot, const Layout& layout, std::uint64_t ts,
                                const FrameMeta& meta);
  // Gives an acquired slot back unpublished (a copy that failed, say).
  void discard(const Slot& slot);
  // Publishes a fresh memfd for `layout` (Guarantee::sealed) that `fill` wrote; it is sealed
  // against writes on the way. `fill` returns an error message, empty when it succeeded.
  Result<std::uint64_t> publish_sealed(
      const Layout& layout, std::uint64_t ts, const FrameMeta& meta,
      const std::function<std::string(std::span<std::byte>)>& fill);

  std::atomic<std::uint64_t> copies{0};
  std::atomic<std::uint64_t> published{0};

 private:
  explicit SinkCore(SinkSettings settings, Producer producer)
      : settings_(std::move(settings)), producer_(std::move(producer)) {}
  using Key = std::pair<std::uint32_t, std::uint32_t>;  // pool, slot
  struct Lent {
    Slot slot;
    bool published = false;
  };
  Status unadvertise_locked();

  SinkSettings settings_;
  std::mutex mu_;
  std::condition_variable wake_;
  Producer producer_;
  std::optional<LayoutKind> advertised_;
  bool end_pending_ = false;
  std::uint32_t pool_ = 0;
  std::size_t slot_size_ = 0;
  std::map<Key, Lent> lent_;
  std::vector<Slot> parked_;  // acquired from the producer while still lent: given out next
};

// Posts `sink`'s error for `e`, met publishing (or taking a slot): the broker lost, a refusal,
// anything else, each named for the user.
void post_publish_error(GstElement* sink, const SinkCore& core, const Error& e);

// The buffer pool shmfdsink proposes upstream: its buffers are slots of the topic's pool. A
// slot it cannot take is `sink`'s error (held weakly): upstream only sees a flow error.
GType shmfd_buffer_pool_get_type();
GstBufferPool* shmfd_buffer_pool_new(std::shared_ptr<SinkCore> core, GstElement* sink);

}  // namespace shmfd::gst
