// What the broker has to send one client, and in what order: its replies first, then Credit
// and SlotFree notices, then frames and ends of stream round-robin over its subscriptions
// (each pool's PoolAttach before the pool's first frame). Posting only queues and marks the
// client in Wakeups; the session sends at the end of the event (flush), so no handler sends
// on another client's socket and no destructor sends at all.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <capnp/message.h>

#include "log.hpp"
#include "options.hpp"
#include "registry.hpp"
#include "shmfd/wire/message_buffer.hpp"

namespace shmfd::broker {

struct ClientState;

// The work the routing of one event leaves for the event loop: clients with messages to send,
// producers whose messages may be read again, clients to disconnect. Collected while an event
// is handled, carried out when it ends (Broker::flush).
class Wakeups {
 public:
  void writer(std::uint64_t client) { batch_.writers.push_back(client); }
  void reader(std::uint64_t client) { batch_.readers.push_back(client); }
  void close(std::uint64_t client, std::string why) {
    batch_.closes.emplace_back(client, std::move(why));
  }
  bool empty() const {
    return batch_.writers.empty() && batch_.readers.empty() && batch_.closes.empty();
  }
  struct Batch {
    std::vector<std::uint64_t> writers;
    std::vector<std::uint64_t> readers;
    std::vector<std::pair<std::uint64_t, std::string>> closes;
  };
  Batch take() { return std::exchange(batch_, {}); }

 private:
  Batch batch_;
};

// One message ready to send. `fd` is -1 or the fd it carries, kept open by `keep` until sent.
struct Outgoing {
  EncodedMessage words;
  int fd = -1;
  std::shared_ptr<const void> keep;
};

class Outbox {
 public:
  enum class Mode {
    everything,
    replies_only,  // the client is disconnected once its replies are out
    closed,        // nothing more is queued
  };

  Outbox(ClientState& owner, const Limits& limits, const Logger& log, Wakeups& wakeups);

  // Queues a reply; past --max-queued-messages the client is disconnected for not reading.
  void post(capnp::MessageBuilder& message);
  // The same with an fd, kept open by `keep` until sent.
  void post(capnp::MessageBuilder& message, int fd, std::shared_ptr<const void> keep);
  // Queues the PoolAttach of `pool` as a reply unless this client has it already (a channel's
  // consumer needs every pool before a descriptor names it).
  void attach_pool(const PoolPtr& pool);
  // Queues a frame (or, with a null frame, the end of the stream) for one of the client's
  // subscriptions; a full drop-oldest queue drops its oldest frame, counted.
  void enqueue(Subscription& sub, Pending entry);
  // Queues a SlotFree for a slot of the client's pool, at most one per slot.
  void slot_free(std::uint32_t pool, std::uint32_t slot);
  void forget_slot_frees_of(std::uint32_t pool);
  // An fd-carrying Publish was read: a Credit goes out once half the publish window is owed.
  void publish_read();
  // The client released a frame delivered to it (`pool_slot`: a pool frame).
  void released(bool pool_slot);
  // The client left `topic`: a later subscription gets the fds of its pools again.
  void forget_pools_of(std::string_view topic);
  // The client was told that pool `pool` is gone (PoolDetach).
  void forget_pool(std::uint32_t pool) { attached_pools_.erase(pool); }
  // Whether the client has the fd of `pool`.
  bool has_pool(std::uint32_t pool) const { return attached_pools_.count(pool) != 0; }

  void set_mode(Mode mode);
  Mode mode() const { return mode_; }
  std::size_t replies_queued() const { return replies_.size(); }
  // The next message to send, if any.
  bool next(Outgoing& out);
  // Clears the mark that puts the client in Wakeups; the session calls it as it flushes.
  void flushed() { dirty_ = false; }

 private:
  void mark_dirty();
  std::uint32_t credit_threshold() const;  // half the publish window
  bool next_delivery(Outgoing& out);

  ClientState& owner_;
  const Limits& limits_;
  const Logger& log_;
  Wakeups& wakeups_;
  Mode mode_ = Mode::everything;
  bool dirty_ = false;
  std::deque<Outgoing> replies_;
  // SlotFree notices not yet sent, at most one per slot (PoolRecord::free_queued): however
  // often a producer republishes a slot without reading, this never outgrows its pools.
  std::deque<std::pair<std::uint32_t, std::uint32_t>> slot_frees_;
  // Fd-carrying Publishes read and not yet acknowledged: one Credit covers them all, sent once
  // they reach half the publish window (so at most one is ever owed).
  std::uint32_t credit_owed_ = 0;
  std::size_t next_subscription_ = 0;  // round-robin position for fairness between topics
  std::uint32_t slots_held_ = 0;       // pool frames delivered and not released
  bool told_slots_held_ = false;       // the client was told it is at --max-slots-held
  // Pools whose fd this client has received, with their topics.
  std::map<std::uint32_t, std::string> attached_pools_;
};

}  // namespace shmfd::broker
