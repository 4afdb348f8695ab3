// Consumer: subscribes to topics and receives frames that map the producer's very pages.
//
//   auto consumer = shmfd::Consumer::connect(socket_path, "viewer");
//   consumer->subscribe("cam0");
//   for (;;) {
//     auto event = consumer->receive();
//     if (!event) break;                                   // error or broker gone
//     if (auto* frame = std::get_if<shmfd::Frame>(&*event)) use(frame->layout(), frame->bytes());
//     else break;                                          // EndOfStream: the producer left
//   }
//
// A Frame owns a read-only mapping and its layout; dropping it unmaps and tells the broker the
// frame is released, which makes room in this subscriber's queue. Frames from a pool share one
// mapping of the whole pool, made once when the pool is first seen and kept for its life
// (also after the producer left, for as long as a frame of it is held).
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "shmfd/connection.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/mapping.hpp"
#include "shmfd/protocol.hpp"

namespace shmfd {

namespace detail {
struct ConsumerLink;
struct PoolView;
}  // namespace detail

class Frame {
 public:
  Frame(Frame&&) noexcept = default;
  Frame& operator=(Frame&& other) noexcept;
  Frame(const Frame&) = delete;
  Frame& operator=(const Frame&) = delete;
  ~Frame();

  const std::string& topic() const noexcept { return topic_; }
  std::uint64_t sequence() const noexcept { return sequence_; }
  std::uint64_t timestamp_ns() const noexcept { return timestamp_ns_; }  // CLOCK_MONOTONIC
  // Frames the broker dropped for this subscriber so far (drop-oldest policy).
  std::uint64_t dropped() const noexcept { return dropped_; }
  const Layout& layout() const noexcept { return layout_; }
  // The frame's buffer (or pool slot), read-only; the layout says where the data lies in it.
  std::span<const std::byte> bytes() const noexcept { return view_; }
  // Whether the frame is a slot of a pool (else a buffer of its own).
  bool in_pool() const noexcept { return pool_ != nullptr; }

 private:
  friend class Consumer;
  Frame() = default;
  void release() noexcept;

  std::shared_ptr<detail::ConsumerLink> link_;
  std::string topic_;
  std::uint64_t sequence_ = 0;
  std::uint64_t timestamp_ns_ = 0;
  std::uint64_t dropped_ = 0;
  Layout layout_;
  Mapping mapping_;                               // a frame with its own buffer
  std::shared_ptr<const detail::PoolView> pool_;  // a pool frame: the pool's mapping
  std::span<const std::byte> view_;
};

struct EndOfStream {
  std::string topic;
  std::string reason;
};

using Event = std::variant<Frame, EndOfStream>;

class Consumer {
 public:
  static Result<Consumer> connect(const std::string& socket_path = default_socket_path(),
                                  std::string_view client_name = "consumer");

  // Subscribes (waits for the broker's answer). depth 0 takes the broker's default; the depth
  // granted is returned (the broker caps it).
  Result<std::uint32_t> subscribe(std::string_view topic, std::uint32_t depth = 0,
                                  Backpressure policy = Backpressure::DROP_OLDEST);

  // Stops deliveries of `topic` (waits for the broker's answer). Frames of it this consumer
  // already holds stay valid until dropped; frames of it still on their way are dropped unseen.
  // Subscribing again later works as the first time.
  Status unsubscribe(std::string_view topic);

  // The next frame or end of stream (blocking). Errc::disconnected when the broker is gone.
  Result<Event> receive();
  // Non-blocking: nullopt when nothing has arrived.
  Result<std::optional<Event>> try_receive();

  int native_handle() const noexcept;

 private:
  // One message from the broker, decoded.
  struct Incoming {
    std::optional<Event> event;
    std::optional<Error> error;  // a refusal
    bool subscribed = false;     // a Subscribed answer for `topic` with `depth`
    bool unsubscribed = false;   // an Unsubscribed answer for `topic`
    std::string topic;
    std::uint32_t depth = 0;
  };

  explicit Consumer(std::shared_ptr<detail::ConsumerLink> link) : link_(std::move(link)) {}
  Result<std::optional<Event>> next(IoMode mode);
  Result<Incoming> read_one(IoMode mode);
  static Result<std::shared_ptr<const detail::PoolView>> attach_pool(
      proto::PoolAttach::Reader attach, const std::vector<UniqueFd>& fds);

  std::shared_ptr<detail::ConsumerLink> link_;
};

}  // namespace shmfd
