/// @file
/// Producer: publishes frames on topics through shmfd-broker.
///
/// @code
/// auto producer = shmfd::Producer::connect(socket_path, "camera");
/// producer->advertise("cam0", shmfd::LayoutKind::image);
/// auto layout = *shmfd::image_layout(shmfd::PixelFormat::rgba8, 1920, 1080);
/// auto buffer = producer->allocate("cam0", layout);   // a writable memfd of the right size
/// draw(buffer->bytes());
/// producer->publish("cam0", std::move(*buffer), layout);  // sealed here, then sent
/// @endcode
///
/// Publishing is one message with one fd; the frame is never copied. With a block-producer
/// subscriber that is full, publish() waits (the broker stops reading until there is room).
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

#include "shmfd/connection.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/protocol.hpp"
#include "shmfd/slot.hpp"
#include "shmfd/wire/message_buffer.hpp"

namespace shmfd {

namespace detail {
struct ProducerState;
}  // namespace detail

/// A frame sealed and encoded, ready to send; what try_send and the Asio form retry with.
struct PreparedFrame {
  std::string topic;                   ///< the topic it goes to
  std::uint64_t sequence = 0;          ///< its sequence number, what try_send returns
  std::optional<SealedBuffer> buffer;  ///< empty for a pool slot: no fd travels
  EncodedMessage message;              ///< the Publish message, encoded
};

/// A client that advertises topics and publishes frames on them: buffers of their own (sealed
/// memfds) or slots of pools. Move-only, one thread at a time. Errors of its calls:
/// Errc::broker_refused with the broker's BrokerErrc (is() tells which), Errc::disconnected once
/// the broker is gone, Errc::invalid_argument for an argument it does not take (a pool that is
/// not its own, a layout that does not fit), Errc::protocol_violation for a broker that broke
/// the protocol, and the system's.
class Producer {
 public:
  /// Takes `other`'s connection, topics and pools; `other` must not be used after, but may be
  /// destroyed.
  Producer(Producer&&) noexcept;
  /// Closes this one's connection (as the destructor does), then takes `other`'s.
  Producer& operator=(Producer&&) noexcept;
  /// Disconnects: the topics' subscribers get EndOfStream; frames they hold stay intact.
  ~Producer();

  /// Connects to the broker at `socket_path` as `client_name` (shown by shmfdctl) and completes
  /// the handshake. Errors: the socket's (std::errc::no_such_file_or_directory: no broker
  /// there; permission_denied), Errc::broker_refused (a uid the broker does not admit, too many
  /// clients, a protocol version it does not speak), Errc::disconnected.
  static Result<Producer> connect(const std::string& socket_path = default_socket_path(),
                                  std::string_view client_name = "producer",
                                  Channels channels = Channels::automatic);

  /// Declares this client the producer of `topic` (waits for the broker's answer).
  Status advertise(std::string_view topic, LayoutKind kind, Guarantee level = Guarantee::sealed);
  /// The same, with what the topic declares about its frames' metadata (protocol version 5):
  /// the largest user header, its schema's name, the nominal frame rate, whether timestamps are
  /// required. Errors beside advertise()'s: Errc::invalid_metadata for options that break a rule
  /// (check_topic_options()), Errc::invalid_argument when the broker is older than version 5.
  Status advertise(std::string_view topic, LayoutKind kind, Guarantee level,
                   const TopicOptions& options);

  /// Stops producing `topic` without disconnecting (waits for the broker's answer): its
  /// subscribers get EndOfStream, and its pools are unregistered and unmapped here (frames of
  /// them that consumers still hold stay intact: the pages live on in the consumers' mappings).
  /// Another client may then advertise the topic, or this one again, afresh.
  Status unadvertise(std::string_view topic);

  /// A writable buffer big enough for `layout`, named after the topic.
  Result<WritableBuffer> allocate(std::string_view topic, const Layout& layout,
                                  MemfdOptions options = {});

  /// Seals `buffer` and publishes it with `layout`. timestamp_ns 0 means now (CLOCK_MONOTONIC).
  /// Returns the frame's sequence number. The broker refuses bad frames asynchronously: such a
  /// refusal is returned by the next publish() (or poll_errors()), and names the sequence.
  Result<std::uint64_t> publish(std::string_view topic, WritableBuffer buffer, const Layout& layout,
                                std::uint64_t timestamp_ns = 0);
  /// The same, with `meta`: pts, dts, duration, flags, a crop, a user header (version 5). It is
  /// checked here as the broker will check it (check_frame_meta() against the topic's options):
  /// a frame that breaks a rule is not sent, Errc::invalid_metadata.
  Result<std::uint64_t> publish(std::string_view topic, WritableBuffer buffer, const Layout& layout,
                                const FrameMeta& meta, std::uint64_t timestamp_ns = 0);

  /// The two halves of publish(), for event loops: seal + encode, then a non-blocking send
  /// (nullopt: the socket is full, wait until it is writable and call again).
  Result<PreparedFrame> prepare(std::string_view topic, WritableBuffer buffer, const Layout& layout,
                                std::uint64_t timestamp_ns = 0);
  /// prepare() with metadata, as publish() takes it.
  Result<PreparedFrame> prepare(std::string_view topic, WritableBuffer buffer, const Layout& layout,
                                const FrameMeta& meta, std::uint64_t timestamp_ns = 0);
  /// Sends a prepared frame without blocking: its sequence once sent, nullopt when the socket
  /// or the publish window is full (see window_full()); then call again with the same frame.
  Result<std::optional<std::uint64_t>> try_send(PreparedFrame& frame);

  /// Whether the publish window is full: a frame with its own buffer waits for the broker's
  /// Credit (try_send returns nullopt; an event loop then waits for the socket to be readable).
  bool window_full() const noexcept;

  /// Refusals the broker has sent so far (non-blocking).
  Result<std::vector<Error>> poll_errors();

  // --- Pools: the fast path. One memfd of N slots is registered once; each frame is then one
  // small message and no fd, and consumers keep the pool mapped. ---

  /// Creates a pool of `slot_count` slots of at least `slot_bytes` each (rounded up to whole
  /// pages, or huge pages, so every slot starts on a page boundary), seals it at the pool level
  /// and registers it for `topic`, which must be advertised with Guarantee::pool.
  /// Returns the pool's id.
  Result<std::uint32_t> create_pool(std::string_view topic, std::size_t slot_bytes,
                                    std::uint32_t slot_count, MemfdOptions options = {});
  /// A free slot to write into. A slot is free again only once every subscriber has released
  /// the frame last published in it. Wait::block waits for that; Wait::fail_fast returns
  /// Errc::no_free_slot.
  Result<Slot> acquire(std::uint32_t pool, Wait wait = Wait::block);
  /// Non-blocking acquire for event loops: nullopt when no slot is free yet.
  Result<std::optional<Slot>> try_acquire(std::uint32_t pool);
  /// Publishes an acquired slot; `layout` is relative to the slot and must fit in it.
  Result<std::uint64_t> publish(std::string_view topic, const Slot& slot, const Layout& layout,
                                std::uint64_t timestamp_ns = 0);
  /// Publishes an acquired slot with `meta` (see the publish() of a buffer with metadata).
  Result<std::uint64_t> publish(std::string_view topic, const Slot& slot, const Layout& layout,
                                const FrameMeta& meta, std::uint64_t timestamp_ns = 0);
  /// The encoding half of publish(slot), for try_send.
  Result<PreparedFrame> prepare(std::string_view topic, const Slot& slot, const Layout& layout,
                                std::uint64_t timestamp_ns = 0);
  /// prepare() of a slot with metadata.
  Result<PreparedFrame> prepare(std::string_view topic, const Slot& slot, const Layout& layout,
                                const FrameMeta& meta, std::uint64_t timestamp_ns = 0);
  /// Gives back an acquired slot that will not be published (an error, say, before it was
  /// filled): it is free again. Errc::invalid_argument if `slot` is not acquired.
  Status discard(const Slot& slot);
  /// The size of each slot of `pool` in bytes (whole pages); 0 for a pool that is not this
  /// producer's.
  std::size_t slot_size(std::uint32_t pool) const;
  /// Slots of `pool` free now (neither acquired here nor held by a consumer); 0 for a pool that
  /// is not this producer's.
  std::size_t free_slots(std::uint32_t pool) const;

  /// From now on, a lost broker is connected to again (with the waits of `options`) by the
  /// blocking calls (publish, acquire, poll_errors), which then go on as if nothing happened:
  /// topics are advertised again, each pool is registered again as a fresh memfd (consumers
  /// may still read the old one; a slot acquired before is copied over when published), and
  /// sequence numbers continue, so consumers can count what was lost. The fd of
  /// native_handle() changes; try_send does not reconnect.
  void reconnect_on_loss(ReconnectOptions options = {});
  /// How many times this producer has reconnected.
  std::uint64_t reconnects() const noexcept;

  /// The socket, for an event loop to wait on (connect with Channels::off: releases of frames
  /// on channels do not come through it). It changes when the producer reconnects.
  int native_handle() const noexcept;
  /// Whether this producer's connection takes channels (Channels::automatic and a broker that
  /// offers them). Pool frames to a consumer on a channel then never touch the socket.
  bool uses_channels() const noexcept;
  /// Channels to consumers open now.
  std::size_t channels() const noexcept;

 private:
  explicit Producer(std::unique_ptr<detail::ProducerState> state);
  /// The link, the pools and their slots, the channels: libshmfd's own (src/producer.cpp).
  std::unique_ptr<detail::ProducerState> state_;
};

}  // namespace shmfd
