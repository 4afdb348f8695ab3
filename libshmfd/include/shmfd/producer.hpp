// Producer: publishes frames on topics through shmfd-broker.
//
//   auto producer = shmfd::Producer::connect(socket_path, "camera");
//   producer->advertise("cam0", shmfd::LayoutKind::image);
//   auto layout = *shmfd::image_layout(shmfd::PixelFormat::rgba8, 1920, 1080);
//   auto buffer = producer->allocate("cam0", layout);   // a writable memfd of the right size
//   draw(buffer->bytes());
//   producer->publish("cam0", std::move(*buffer), layout);  // sealed here, then sent
//
// Publishing is one message with one fd; the frame is never copied. With a block-producer
// subscriber that is full, publish() waits (the broker stops reading until there is room).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmfd/channel.hpp"
#include "shmfd/connection.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/message_buffer.hpp"
#include "shmfd/protocol.hpp"

namespace shmfd {

namespace detail {
struct ProducerIncoming;
}  // namespace detail

enum class Wait { block, fail_fast };

// A pool slot acquired for writing: fill `bytes`, then publish it.
struct Slot {
  std::uint32_t pool = 0;
  std::uint32_t index = 0;
  std::span<std::byte> bytes;
};

// A frame sealed and encoded, ready to send; what try_send and the Asio form retry with.
struct PreparedFrame {
  std::string topic;
  std::uint64_t sequence = 0;
  std::optional<SealedBuffer> buffer;  // empty for a pool slot: no fd travels
  EncodedMessage message;
};

class Producer {
 public:
  static Result<Producer> connect(const std::string& socket_path = default_socket_path(),
                                  std::string_view client_name = "producer",
                                  Channels channels = Channels::automatic);

  // Declares this client the producer of `topic` (waits for the broker's answer).
  Status advertise(std::string_view topic, LayoutKind kind, Guarantee level = Guarantee::sealed);

  // Stops producing `topic` without disconnecting (waits for the broker's answer): its
  // subscribers get EndOfStream, and its pools are unregistered and unmapped here (frames of
  // them that consumers still hold stay intact: the pages live on in the consumers' mappings).
  // Another client may then advertise the topic, or this one again, afresh.
  Status unadvertise(std::string_view topic);

  // A writable buffer big enough for `layout`, named after the topic.
  Result<WritableBuffer> allocate(std::string_view topic, const Layout& layout,
                                  MemfdOptions options = {});

  // Seals `buffer` and publishes it with `layout`. timestamp_ns 0 means now (CLOCK_MONOTONIC).
  // Returns the frame's sequence number. The broker refuses bad frames asynchronously: such a
  // refusal is returned by the next publish() (or poll_errors()), and names the sequence.
  Result<std::uint64_t> publish(std::string_view topic, WritableBuffer buffer, const Layout& layout,
                                std::uint64_t timestamp_ns = 0);

  // The two halves of publish(), for event loops: seal + encode, then a non-blocking send
  // (nullopt: the socket is full, wait until it is writable and call again).
  Result<PreparedFrame> prepare(std::string_view topic, WritableBuffer buffer, const Layout& layout,
                                std::uint64_t timestamp_ns = 0);
  Result<std::optional<std::uint64_t>> try_send(PreparedFrame& frame);

  // Whether the publish window is full: a frame with its own buffer waits for the broker's
  // Credit (try_send returns nullopt; an event loop then waits for the socket to be readable).
  bool window_full() const noexcept;

  // Refusals the broker has sent so far (non-blocking).
  Result<std::vector<Error>> poll_errors();

  // --- Pools: the fast path. One memfd of N slots is registered once; each frame is then one
  // small message and no fd, and consumers keep the pool mapped. ---

  // Creates a pool of `slot_count` slots of at least `slot_bytes` each (rounded up to whole
  // pages, or huge pages, so every slot starts on a page boundary), seals it at the pool level
  // and registers it for `topic`, which must be advertised with Guarantee::pool.
  // Returns the pool's id.
  Result<std::uint32_t> create_pool(std::string_view topic, std::size_t slot_bytes,
                                    std::uint32_t slot_count, MemfdOptions options = {});
  // A free slot to write into. A slot is free again only once every subscriber has released
  // the frame last published in it. Wait::block waits for that; Wait::fail_fast returns
  // Errc::no_free_slot.
  Result<Slot> acquire(std::uint32_t pool, Wait wait = Wait::block);
  // Non-blocking acquire for event loops: nullopt when no slot is free yet.
  Result<std::optional<Slot>> try_acquire(std::uint32_t pool);
  // Publishes an acquired slot; `layout` is relative to the slot and must fit in it.
  Result<std::uint64_t> publish(std::string_view topic, const Slot& slot, const Layout& layout,
                                std::uint64_t timestamp_ns = 0);
  // The encoding half of publish(slot), for try_send.
  Result<PreparedFrame> prepare(std::string_view topic, const Slot& slot, const Layout& layout,
                                std::uint64_t timestamp_ns = 0);
  // Gives back an acquired slot that will not be published (an error, say, before it was
  // filled): it is free again. Errc::invalid_argument if `slot` is not acquired.
  Status discard(const Slot& slot);
  std::size_t slot_size(std::uint32_t pool) const;
  std::size_t free_slots(std::uint32_t pool) const;

  // From now on, a lost broker is connected to again (with the waits of `options`) by the
  // blocking calls (publish, acquire, poll_errors), which then go on as if nothing happened:
  // topics are advertised again, each pool is registered again as a fresh memfd (consumers
  // may still read the old one; a slot acquired before is copied over when published), and
  // sequence numbers continue, so consumers can count what was lost. The fd of
  // native_handle() changes; try_send does not reconnect.
  void reconnect_on_loss(ReconnectOptions options = {}) { reconnect_ = options; }
  // How many times this producer has reconnected.
  std::uint64_t reconnects() const noexcept { return reconnects_; }

  int native_handle() const noexcept { return connection_.fd(); }
  // Whether this producer's connection takes channels (Channels::automatic and a broker that
  // offers them). Pool frames to a consumer on a channel then never touch the socket.
  bool uses_channels() const noexcept { return connection_.bell() != nullptr; }
  // Channels to consumers open now.
  std::size_t channels() const noexcept { return channels_.size(); }

 private:
  enum class SlotState { free, acquired, published };
  // A channel to one consumer (docs/PROTOCOL.md, section 14).
  struct ChannelOut {
    std::uint32_t id = 0;
    std::string topic;
    std::uint32_t depth = 0;
    Backpressure policy = Backpressure::drop_oldest;
    std::uint64_t dropped = 0;  // frames not put on it: its consumer held its whole depth
    bool closing = false;       // the consumer unsubscribed: kept until it released every slot
    // Closed when dropped, whyever: the consumer then knows that no frame follows.
    struct CloseAndDelete {
      void operator()(ChannelWriter* w) const noexcept {
        w->close();
        delete w;
      }
    };
    std::unique_ptr<ChannelWriter, CloseAndDelete> writer;
  };
  // A channel the broker asked for, waiting for the consumer's page (ChannelOpen).
  struct ChannelAsked {
    std::string topic;
    std::uint32_t depth = 0;
    Backpressure policy = Backpressure::drop_oldest;
    OwnPage page;
  };
  struct TopicLayouts {
    std::vector<std::pair<Layout, std::uint32_t>> ids;  // defined with the broker
    std::uint32_t next = 1;
  };
  struct PoolState {
    std::string topic;
    PoolBuffer buffer;
    std::size_t slot_size = 0;
    std::vector<SlotState> slots;
    std::vector<std::uint64_t> sequence;  // of the frame last published in each slot
    std::vector<bool> broker_busy;        // published through the broker, no SlotFree yet
    std::uint32_t next_free = 0;          // where acquire looks first
    std::uint32_t broker_id = 0;          // the broker's id (the caller's may differ)
    MemfdOptions options;
    std::vector<PoolBuffer> retired;  // earlier buffers, kept while slots into them may live
  };
  struct Advertised {
    LayoutKind kind;
    Guarantee level;
  };

  explicit Producer(Connection connection) : connection_(std::move(connection)) {}
  // Reads the broker's messages if the doorbell rang since the last look (without channels:
  // always). One load when nothing came.
  Status poll_bell();
  // The checks and book-keeping of publishing `slot` (not its message): its sequence.
  Result<std::uint64_t> stage(std::string_view topic, const Slot& slot, const Layout& layout);
  // The pool of `slot` if the slot is acquired; else Errc::invalid_argument, naming `what`.
  Result<PoolState*> acquired_pool(const Slot& slot, std::string_view what);
  // Puts frame `sequence` in `slot` of `pool` on every channel of `topic`; a block-producer
  // consumer that holds its whole depth is waited for.
  Status to_channels(std::string_view topic, const PoolState& pool, std::uint32_t slot,
                     const Layout& layout, std::uint64_t sequence, std::uint64_t timestamp_ns);
  // The id of `layout` on `topic`'s channels, defined with the broker the first time.
  Result<std::uint32_t> layout_id(std::string_view topic, const Layout& layout);
  // Whether `slot` of `pool` is published and still held (by the broker or a channel).
  bool slot_held(const PoolState& pool, std::uint32_t slot) const;
  bool has_channels(std::string_view topic) const;
  bool via_broker(std::string_view topic) const;
  void forget_channels();
  Status send_advertise(std::string_view topic, LayoutKind kind, Guarantee level);
  Result<std::uint32_t> register_pool(std::string_view topic, const PoolBuffer& buffer,
                                      std::size_t slot_size, std::uint32_t slot_count);
  // Whether `error` is a lost broker this producer has now reconnected to (else: fail).
  Result<bool> recovered(const Error& error);
  Status reconnect();
  // Reads whatever the broker has sent, non-blocking (see handle).
  Status drain();
  // Reads messages (blocking) until `done` holds for one; each goes through handle first.
  template <typename Done>
  Status wait_for(Done done);
  // producer.cpp: keeps refusals in errors_, marks freed slots and counts credit.
  friend struct detail::ProducerIncoming;
  std::uint64_t next_sequence(std::string_view topic);
  Result<std::uint64_t> sent_or_refused(std::uint64_t sequence);

  Connection connection_;
  std::string socket_path_;
  std::string client_name_;
  std::optional<ReconnectOptions> reconnect_;
  std::uint64_t reconnects_ = 0;
  std::map<std::string, Advertised, std::less<>> advertised_;
  std::uint32_t next_pool_id_ = 1;
  std::map<std::uint32_t, PoolState> pools_;
  std::map<std::string, std::uint64_t, std::less<>> next_sequence_;
  std::deque<Error> errors_;
  // Frames with their own buffer sent and not yet covered by the broker's Credit: at most
  // the connection's publish window, so a producer held back by backpressure waits in
  // publish() instead of filling its socket with sealed buffers.
  std::uint32_t fd_frames_in_flight_ = 0;
  Channels channels_wanted_ = Channels::automatic;
  std::uint32_t bell_seen_ = 0;
  // When the socket was last read: a broker that died rings no bell, so it is read now and then.
  std::chrono::steady_clock::time_point socket_read_{};
  std::map<std::uint32_t, ChannelAsked> asked_;
  std::vector<ChannelOut> channels_;
  std::map<std::string, bool, std::less<>> via_broker_;  // Route; absent: true
  std::map<std::string, TopicLayouts, std::less<>> layouts_;
};

}  // namespace shmfd
