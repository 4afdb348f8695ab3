// Producer: publishes frames on topics through shmfd-broker.
//
//   auto producer = shmfd::Producer::connect(socket_path, "camera");
//   producer->advertise("cam0", shmfd::LayoutKind::IMAGE);
//   auto layout = *shmfd::image_layout(shmfd::PixelFormat::rgba8, 1920, 1080);
//   auto buffer = producer->allocate("cam0", layout);   // a writable memfd of the right size
//   draw(buffer->bytes());
//   producer->publish("cam0", std::move(*buffer), layout);  // sealed here, then sent
//
// Publishing is one message with one fd; the frame is never copied. With a block-producer
// subscriber that is full, publish() waits (the broker stops reading until there is room).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shmfd/connection.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/protocol.hpp"

namespace shmfd {

// A frame sealed and encoded, ready to send; what try_send and the Asio form retry with.
struct PreparedFrame {
  std::string topic;
  std::uint64_t sequence = 0;
  SealedBuffer buffer;
  kj::Array<capnp::word> message;
};

class Producer {
 public:
  static Result<Producer> connect(const std::string& socket_path = default_socket_path(),
                                  std::string_view client_name = "producer");

  // Declares this client the producer of `topic` (waits for the broker's answer).
  Status advertise(std::string_view topic, LayoutKind kind, Guarantee level = Guarantee::sealed);

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

  // Refusals the broker has sent so far (non-blocking).
  Result<std::vector<Error>> poll_errors();

  int native_handle() const noexcept { return connection_.fd(); }

 private:
  explicit Producer(Connection connection) : connection_(std::move(connection)) {}
  // Reads whatever the broker has sent, non-blocking, keeping refusals in errors_.
  Status drain();

  Connection connection_;
  std::map<std::string, std::uint64_t, std::less<>> next_sequence_;
  std::deque<Error> errors_;
};

}  // namespace shmfd
