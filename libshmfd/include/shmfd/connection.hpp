/// @file
/// A client's connection to shmfd-broker: connect, say Hello, get Welcome. Producer and Consumer
/// are built on it; most programs use those instead.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include <optional>

#include "shmfd/error.hpp"
#include "shmfd/unique_fd.hpp"
#include "shmfd/wire/channel_page.hpp"
#include "shmfd/wire/message_buffer.hpp"
#include "shmfd/wire/transport.hpp"

namespace shmfd {

/// How a Producer or Consumer gets back to a broker that went away (restarted, upgraded):
/// it connects again, waiting `first_wait`, then twice as long each time up to `max_wait`,
/// and gives up with Errc::disconnected after `give_up_after` (zero: never).
struct ReconnectOptions {
  std::chrono::milliseconds first_wait{50};    ///< the first wait, doubled after each failed try
  std::chrono::milliseconds max_wait{2000};    ///< the longest wait between two tries
  std::chrono::milliseconds give_up_after{0};  ///< zero: never give up
};

/// One client connection to the broker, after the handshake: the socket, its receive buffer,
/// and what Welcome said. For tools and bindings that speak the protocol themselves
/// (shmfdctl); most programs use Producer or Consumer. Move-only, one thread at a time.
class Connection {
 public:
  /// Connects to the broker at `socket_path` and completes the handshake (blocking). Errors:
  /// the socket's (ENOENT: no broker there), Errc::broker_refused (version mismatch, client
  /// limit), Errc::disconnected.
  /// `max_message_bytes` bounds what this side accepts (shmfdctl reads large BrokerStates).
  /// `channels`: offer to take pool frames on channels (docs/PROTOCOL.md, section 14); a broker
  /// that agrees sends a doorbell (bell()).
  static Result<Connection> open(const std::string& socket_path, std::string_view client_name,
                                 std::size_t max_message_bytes = kMaxMessageBytes,
                                 bool channels = false);
  /// open() until it succeeds, with the waits of `options`; the last error once it gives up.
  static Result<Connection> reopen(const std::string& socket_path, std::string_view client_name,
                                   const ReconnectOptions& options, bool channels = false);

  /// The socket, still owned by the connection.
  int fd() const noexcept { return fd_.get(); }
  /// The largest message this side accepts.
  std::uint32_t max_message_bytes() const noexcept { return max_message_bytes_; }
  /// The protocol version the broker chose for this connection (Welcome).
  std::uint32_t version() const noexcept { return version_; }
  /// Frames with an fd this client may have sent and the broker not yet credited (Welcome).
  std::uint32_t publish_window() const noexcept { return publish_window_; }
  /// The doorbell the broker rings after each message it sends here; null when this connection
  /// does not use channels (not asked for, or a broker before protocol version 3).
  const PeerBell* bell() const noexcept { return bell_ ? &*bell_ : nullptr; }

  /// Sends one encoded message (blocking, or IoMode::non_blocking: SendStatus::would_block when
  /// the socket is full). A broker that has gone is Errc::disconnected, as on receive.
  /// send_message (wire/wire.hpp) encodes and sends a Cap'n Proto builder.
  Result<SendStatus> send(std::span<const std::byte> bytes, std::span<const int> fds = {},
                          IoMode mode = IoMode::blocking);
  /// Receives one message (accepting at most one fd) into this connection's buffer. A closed
  /// connection is Errc::disconnected.
  Result<ReceivedMessage> receive(IoMode mode = IoMode::blocking);
  /// The bytes of the last message received.
  std::span<const std::byte> message(const ReceivedMessage& m) const {
    return buffer_.bytes(m.size);
  }

 private:
  Connection(UniqueFd fd, std::size_t max_message_bytes)
      : fd_(std::move(fd)), buffer_(max_message_bytes) {}

  UniqueFd fd_;
  MessageBuffer buffer_;
  std::uint32_t max_message_bytes_ = 0;
  std::uint32_t publish_window_ = 0;
  std::uint32_t version_ = 0;
  std::optional<PeerBell> bell_;
};

/// Whether Producer and Consumer ask for channels: yes, unless the environment sets
/// SHMFD_CHANNELS=0 (every pool frame then goes through the broker, as with protocol version 2).
bool channels_wanted() noexcept;

}  // namespace shmfd
