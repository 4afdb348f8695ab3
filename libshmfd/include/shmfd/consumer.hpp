/// @file
/// Consumer: subscribes to topics and receives frames that map the producer's very pages.
///
/// @code
/// auto consumer = shmfd::Consumer::connect(socket_path, "viewer");
/// consumer->subscribe("cam0");
/// for (;;) {
///   auto event = consumer->receive();
///   if (!event) break;                                   // error or broker gone
///   if (auto* frame = std::get_if<shmfd::Frame>(&*event)) use(frame->layout(), frame->bytes());
///   else break;                                          // EndOfStream: the producer left
/// }
/// @endcode
///
/// A Frame owns a read-only mapping and its layout; dropping it unmaps and tells the broker the
/// frame is released, which makes room in this subscriber's queue. Frames from a pool share one
/// mapping of the whole pool, made once when the pool is first seen and kept for its life
/// (also after the producer left, for as long as a frame of it is held).
///
/// With reconnect_on_loss(), a broker that goes away (restarted, upgraded) is connected to
/// again and every subscription renewed; receive() then returns a Reconnected event, and the
/// frames lost meanwhile are counted in the next frames' dropped() where the producer's
/// sequence numbers tell (a producer that reconnects too keeps its numbering).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "shmfd/connection.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/mapping.hpp"
#include "shmfd/protocol.hpp"

namespace shmfd {

namespace detail {
struct ChannelIn;
struct ConsumerState;
struct FrameBuilder;
struct PoolView;
struct SharedConnection;
}  // namespace detail

/// A frame may be dropped (released) on any thread, also while another thread is in a call on
/// its consumer. The thread that drops it sends the release itself (non-blocking) while the
/// consumer is idle or only waiting for its socket; during the consumer's other calls it is
/// queued, and that call sends it (a receive() waiting on channels is woken for it). No
/// release waits for a frame that cannot come without it. Everything else about a Frame is for
/// one thread at a time.
class Frame {
 public:
  /// Takes `other`'s frame; `other` holds none after.
  Frame(Frame&&) noexcept = default;
  /// Releases this one's frame, then takes `other`'s.
  Frame& operator=(Frame&& other) noexcept;
  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;
  /// Releases the frame (see the class): its slot may be written again once every subscriber
  /// released it.
  ~Frame();

  /// The topic it was published on.
  const std::string& topic() const noexcept { return topic_; }
  /// The producer's number for it, from 1, one more for each frame it published on the topic:
  /// a gap is frames this subscriber did not get.
  std::uint64_t sequence() const noexcept { return sequence_; }
  std::uint64_t timestamp_ns() const noexcept { return timestamp_ns_; }  ///< CLOCK_MONOTONIC
  /// Frames this subscriber missed so far: dropped by the broker (drop-oldest policy), and
  /// lost while reconnecting to a restarted broker (see Consumer::reconnect_on_loss).
  std::uint64_t dropped() const noexcept { return dropped_; }
  /// What the bytes hold, verified against them by the broker (or, on a channel, by this
  /// library) before the frame was handed over.
  const Layout& layout() const noexcept { return layout_; }
  /// What the frame carries beside its bytes (protocol version 5): pts, dts, duration, flags,
  /// a crop, a user header (a view into the frame, valid while it lives). Checked by the broker
  /// against its topic's options; empty() for a frame that carries none.
  const FrameMeta& meta() const noexcept { return meta_ ? meta_->meta : kNoMeta; }
  /// The frame's buffer (or pool slot), read-only; the layout says where the data lies in it.
  std::span<const std::byte> bytes() const noexcept { return view_; }
  /// Whether the frame is a slot of a pool (else a buffer of its own).
  bool in_pool() const noexcept { return pool_ != nullptr; }
  /// The mapping of bytes(), shared: the pages stay mapped while the handle lives, also after
  /// the frame is dropped (and so released). For bindings whose views of the bytes may outlive
  /// the frame, such as Python's arrays. Once the frame is released, a pool frame's bytes may
  /// change: the producer may write its slot again.
  std::shared_ptr<const void> keep_mapped();

 private:
  friend struct detail::FrameBuilder;
  Frame() = default;
  void release() noexcept;

  /// A frame that came through the socket: its connection stays open while the frame lives
  /// (the broker keeps its slot), and its release is queued there.
  std::shared_ptr<detail::SharedConnection> connection_;
  std::string topic_;
  std::uint64_t sequence_ = 0;
  std::uint64_t timestamp_ns_ = 0;
  std::uint64_t dropped_ = 0;
  Layout layout_;
  Mapping mapping_;                                ///< a frame with its own buffer
  std::shared_ptr<const Mapping> shared_mapping_;  ///< the same, once keep_mapped() shared it
  std::shared_ptr<const detail::PoolView> pool_;   ///< a pool frame: the pool's mapping
  std::span<const std::byte> view_;
  std::shared_ptr<detail::ChannelIn> channel_;  ///< a frame that came on a channel
  std::uint32_t pool_id_ = 0;
  std::uint32_t slot_ = 0;
  /// A frame of a call's pool slot (a request or a response): released by its number alone.
  bool of_call_ = false;
  /// A frame's metadata and its own copy of the header, out of line: a frame without any (the
  /// usual one) moves and costs as before version 5.
  struct OwnMeta {
    FrameMeta meta;
    std::array<std::byte, 64> inline_header;  ///< meta.header's bytes, when they fit
    std::vector<std::byte> header;            ///< meta.header's bytes, when they do not
  };
  std::unique_ptr<OwnMeta> meta_;
  static inline const FrameMeta kNoMeta{};
};

/// The producer of a subscribed topic left (it unadvertised, or disconnected): no more frames
/// of it come until a producer advertises it again, which this subscription then gets.
struct EndOfStream {
  std::string topic;   ///< the topic that ended
  std::string reason;  ///< why, for people: "the producer, client 2 (pid 13440, ...), left"
  /// Frames this subscriber missed in all, counted as Frame::dropped() counts them, up to the
  /// end: more than the last frame's dropped() if frames were lost after it.
  std::uint64_t dropped = 0;
};

/// The broker went away and this consumer is connected again, every subscription renewed
/// (only with Consumer::reconnect_on_loss). Frames held from before stay valid.
struct Reconnected {
  std::chrono::milliseconds gap;  ///< from noticing the loss to being subscribed again
};

/// What Consumer::receive() returns: a frame, the end of a topic's stream, or news of a
/// reconnection.
using Event = std::variant<Frame, EndOfStream, Reconnected>;

/// A client that subscribes to topics and receives their frames, mapped read-only. Move-only.
/// One thread at a time calls it (frames it returned may be dropped on any thread: see Frame).
/// Errors of its calls: Errc::broker_refused with the broker's BrokerErrc (is() tells which),
/// Errc::disconnected once the broker is gone, Errc::protocol_violation for a broker that broke
/// the protocol, and the system's.
class Consumer {
 public:
  /// Connects to the broker at `socket_path` as `client_name` (shown by shmfdctl) and completes
  /// the handshake. Errors: the socket's (std::errc::no_such_file_or_directory: no broker
  /// there; permission_denied), Errc::broker_refused (a uid the broker does not admit, too many
  /// clients, a protocol version it does not speak), Errc::disconnected.
  static Result<Consumer> connect(const std::string& socket_path = default_socket_path(),
                                  std::string_view client_name = "consumer",
                                  Channels channels = Channels::automatic);

  /// Takes `other`'s connection and subscriptions; `other` must not be used after, but may be
  /// destroyed.
  Consumer(Consumer&&) noexcept;
  /// Closes this one's connection (as the destructor does), then takes `other`'s.
  Consumer& operator=(Consumer&& other) noexcept;
  Consumer(const Consumer&) = delete;
  Consumer& operator=(const Consumer&) = delete;
  /// Frames that came but were not received yet are released, and the connection closes (once
  /// the frames the program still holds are dropped too).
  ~Consumer();

  /// Subscribes (waits for the broker's answer). depth 0 takes the broker's default; the depth
  /// granted is returned (the broker caps it).
  Result<std::uint32_t> subscribe(std::string_view topic, std::uint32_t depth = 0,
                                  Backpressure policy = Backpressure::drop_oldest);

  /// Stops deliveries of `topic` (waits for the broker's answer). Frames of it this consumer
  /// already holds stay valid until dropped; frames of it still on their way are dropped unseen.
  /// Subscribing again later works as the first time.
  Status unsubscribe(std::string_view topic);

  /// The next frame or end of stream (blocking). Errc::disconnected when the broker is gone.
  Result<Event> receive();
  /// Non-blocking: nullopt when nothing has arrived.
  Result<std::optional<Event>> try_receive();
  /// Waits at most `timeout`: nullopt when nothing arrived by then. For loops that must also
  /// notice something else now and then (a stop flag set by a signal handler).
  Result<std::optional<Event>> receive_for(std::chrono::milliseconds timeout);

  /// From now on, a lost broker is connected to again (with the waits of `options`) and every
  /// subscription renewed, instead of receive() failing with Errc::disconnected. The fd of
  /// native_handle() changes then: an event loop must take it again after a Reconnected.
  void reconnect_on_loss(ReconnectOptions options = {});

  /// The socket. With channels (uses_channels()), pool frames do not come through it: an event
  /// loop must use Channels::off, or call try_receive() on its own schedule.
  /// A consumer whose native_handle() was asked for counts each frame of a drop-oldest or
  /// latest subscription as read when it hands it over, so that the next one comes while the
  /// program holds it (an event loop waits on the socket, not in receive()): through the broker
  /// it then gets frames up to one of its own periods older than a consumer that receives.
  int native_handle() const noexcept;
  /// Whether this consumer takes pool frames on channels (Channels::automatic and a broker that
  /// offers them).
  bool uses_channels() const noexcept;
  /// What the producer of `topic` declared about its frames (TopicOptions: the user header's
  /// size and schema, the nominal frame rate, ...), once the broker said so (protocol version 5:
  /// after subscribe() when the topic has a producer, and whenever one advertises it); nullopt
  /// before, and from an older broker.
  std::optional<TopicOptions> topic_options(std::string_view topic) const;
  /// Descriptors that producers wrote on this consumer's channels and that failed the checks
  /// (a slot out of range, a layout larger than its slot, ...): skipped, counted here.
  std::uint64_t channel_refusals() const noexcept;

 private:
  explicit Consumer(std::unique_ptr<detail::ConsumerState> state);
  /// Releases the frames queued for receive(): they hold the connection, so a consumer dropped
  /// with some would otherwise keep it open for good.
  void drop_queued() noexcept;

  std::unique_ptr<detail::ConsumerState> state_;
};

}  // namespace shmfd
