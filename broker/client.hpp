// One connected client of the broker: a reader coroutine that decodes, validates and routes its
// requests, and a writer coroutine that sends its replies and frame deliveries without ever
// blocking the broker (a client that does not read only fills its own queues).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <capnp/message.h>
#include <chrono>

#include <asio/awaitable.hpp>
#include <asio/generic/seq_packet_protocol.hpp>
#include <asio/steady_timer.hpp>

#include "policy.hpp"
#include "shmfd/peer_credentials.hpp"
#include "shmfd/transport.hpp"
#include "topic.hpp"

namespace shmfd::broker {

class Broker;

class Client : public std::enable_shared_from_this<Client> {
 public:
  using Socket = asio::generic::seq_packet_protocol::socket;

  Client(Broker& broker, std::uint64_t id, Socket socket, PeerCredentials credentials);

  void start();
  // Disconnects the client after the event being handled: no handler, of this client or of
  // another, ever runs on with state that closing destroyed (its subscriptions, pools, queues).
  // From the request on, the client is not read and nothing more is queued for it. Idempotent.
  void close(const std::string& why);
  // Leaves every topic and closes the socket at once; the coroutines end on their own. Only
  // from outside any handler: the posted step of close(), and Broker::shutdown.
  void close_now(const std::string& why);

  // Called when a subscription of a topic this client produces has drained, so a producer held
  // back by a block-producer subscriber can read on.
  void wake_reader();
  void wake_writer();
  // Queues a frame (or the end of stream) for one of this client's subscriptions.
  void enqueue(Subscription& sub, Pending entry);

  // Tells this producer that `slot` of its pool is free again.
  void slot_free(std::uint32_t pool, std::uint32_t slot);
  // Reports a consumer holding a frame past the hold deadline, and disconnects it as
  // Limits::stuck says; closes one that has not taken its final replies within a check.
  void check_holds(std::chrono::steady_clock::time_point now);

  std::string describe() const;  // "client 3 (pid 1234, uid 0, 'cam')"
  // Introspection: this client's row, and the pool slots it holds (pool id -> slots).
  void describe_into(proto::ClientInfo::Builder info,
                     std::chrono::steady_clock::time_point now) const;
  void count_pool_slots(std::map<std::uint32_t, std::uint32_t>& slots) const;
  // The pools this client registered, and those of frames it holds (their producer may be gone).
  void collect_pools(std::map<std::uint32_t, const PoolRecord*>& pools) const;
  std::uint64_t id() const { return id_; }
  // The peer closed its end and left nothing unread: it is gone, though the reader has not
  // seen the end of file yet.
  bool hung_up_with_nothing_unread();

 private:
  asio::awaitable<void> read_loop();
  asio::awaitable<void> write_loop();

  void handle(std::span<const std::byte> bytes, std::vector<UniqueFd> fds);
  void on_hello(proto::Hello::Reader hello);
  void on_advertise(proto::Advertise::Reader advertise);
  void on_subscribe(proto::Subscribe::Reader subscribe);
  void on_publish(proto::Publish::Reader publish, std::vector<UniqueFd>& fds);
  void on_release(proto::Release::Reader release);
  void on_unsubscribe(proto::Unsubscribe::Reader unsubscribe);
  void on_unadvertise(proto::Unadvertise::Reader unadvertise);
  // Gives up `topic`: its subscribers get EndOfStream with `why`, its pools are unregistered
  // (frames of them still held keep their slots) and the topic is free for another producer.
  void stop_producing(Topic* topic, const std::string& why);
  void on_introspect();
  // Whether the policy lets this client use `right` on `topic` (root and the broker's uid may
  // do anything); refuses with PERMISSION_DENIED when not.
  bool permitted(Right right, const std::string& topic);
  void on_register_pool(proto::RegisterPool::Reader reg, std::vector<UniqueFd>& fds);
  // The checks and routing of a frame in a pool slot (on_publish's pool half).
  void publish_slot(Topic& topic, proto::Frame::Reader frame, const Layout& layout);

  // A refused request: an Error to the client, a log line, and a strike towards the limit.
  // `strike`: whether it counts towards max_errors_per_client. Past the limit the client stops
  // being routed and is closed, both after the current event, so a caller may go on using its
  // state (it should still return at once).
  void refuse(proto::ErrorCode code, const std::string& message, const std::string& topic = {},
              std::uint64_t sequence = 0, bool strike = true);
  // Queues a message for the client; past --max-queued-messages the client is closed (after the
  // event, see close()) for not reading its replies.
  void reply(capnp::MessageBuilder& message);
  bool must_hold_producer() const;
  std::uint32_t credit_threshold() const;  // half the publish window
  // Charges `bytes` more to this client's account, or refuses naming --max-pinned-bytes.
  bool within_pinned_limit(std::uint64_t bytes, const std::string& topic, std::uint64_t sequence);
  // Refills this client's --max-message-rate budget; how long until it holds a whole message.
  std::chrono::nanoseconds time_until_rate_allows();
  // The next message for the writer: a reply, else a frame or end of stream of a subscription
  // (preceded, the first time a pool is used, by its PoolAttach). `fd` is -1 or the fd to
  // send, kept open by `keep`.
  bool next_outgoing(kj::Array<capnp::word>& words, int& fd, std::shared_ptr<const void>& keep);
  // Sends what next_outgoing() has while the socket takes it without blocking; the first
  // message it does not take becomes stalled_, for the write loop.
  void flush_now();
  void leave_topics();
  void released(Subscription& sub);

  Broker& broker_;
  std::uint64_t id_;
  Socket socket_;
  PeerCredentials credentials_;
  Identity identity_;  // uid and all groups, for the policy
  std::string name_;
  std::string command_;  // /proc/PID/comm at connect
  std::chrono::steady_clock::time_point connected_at_;
  bool greeted_ = false;
  bool close_requested_ = false;  // close() was called; close_now() is posted
  bool closed_ = false;
  bool close_after_replies_ = false;
  bool final_replies_checked_ = false;  // check_holds saw close_after_replies_ once already
  bool writer_gone_ = false;            // the peer stopped reading for good (EPIPE)
  std::size_t errors_ = 0;
  AccountPtr account_ = std::make_shared<Account>();
  std::uint32_t slots_held_ = 0;  // pool frames delivered and not released
  bool told_slots_held_ = false;  // the client was told it is at --max-slots-held
  double rate_budget_ = 0;        // messages the broker may read from it now (a token bucket)
  std::chrono::steady_clock::time_point rate_refill_;
  std::deque<kj::Array<capnp::word>> replies_;
  // SlotFree notices not yet sent, at most one per slot (PoolRecord::free_queued): however
  // often a producer republishes a slot without reading, this never outgrows its pools.
  std::deque<std::pair<std::uint32_t, std::uint32_t>> slot_frees_;
  // Fd-carrying Publishes read and not yet acknowledged: one Credit covers them all, sent once
  // they reach half the publish window (so at most one is ever owed).
  std::uint32_t credit_owed_ = 0;
  struct Outgoing {
    kj::Array<capnp::word> words;
    int fd = -1;
    std::shared_ptr<const void> keep;  // holds `fd` open until it is sent
  };
  std::optional<Outgoing> stalled_;  // taken by flush_now(), not sent yet: goes first
  bool writer_idle_ = false;         // the write loop waits for writer_wake_
  bool flushing_ = false;
  bool handling_ = false;  // read_loop is handling a message of this client
  // Active subscriptions, and unsubscribed ones whose held frames are not all released yet
  // (Subscription::topic == nullptr): those only take Releases.
  std::map<std::string, std::unique_ptr<Subscription>, std::less<>> subscriptions_;
  std::size_t next_subscription_ = 0;  // round-robin position for fairness between topics
  std::set<Topic*> produced_;
  std::map<std::uint32_t, PoolPtr> pools_;  // registered by this client as producer
  // Pools whose fd this client has received, with their topics.
  std::map<std::uint32_t, std::string> attached_pools_;
  asio::steady_timer reader_wake_;
  asio::steady_timer writer_wake_;
  asio::steady_timer linger_;  // bounds how long a client being disconnected may take to read
};

}  // namespace shmfd::broker
