/// @file
/// The broker protocol's shared vocabulary for broker and clients, in C++ terms: version, layout
/// kinds, backpressure policies, topic names, the default socket. wire/protocol.hpp converts
/// these to and from the schema's types. Every function here is pure and thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "shmfd/error.hpp"
#include "shmfd/layout.hpp"

namespace shmfd {

/// proto/protocol.capnp's protocolVersion and minProtocolVersion (wire_protocol.cpp checks).
inline constexpr std::uint32_t kProtocolVersion = 6;
/// The oldest protocol version this library and the broker still speak.
inline constexpr std::uint32_t kMinProtocolVersion = 2;
/// The longest topic name, in bytes.
inline constexpr std::size_t kMaxTopicLength = 255;
/// A message that carries an fd carries exactly this many (docs/PROTOCOL.md): every receiver
/// accepts at most this many, and refuses a message that needs one and came without it.
inline constexpr std::size_t kFdsPerMessage = 1;

/// What a topic carries: the alternative of Layout that every frame on it has.
enum class LayoutKind : std::uint8_t { blob, image, audio, tensor };

/// What happens when a subscriber falls behind (docs: which to pick).
enum class Backpressure : std::uint8_t {
  /// Live media: the newest `depth` frames are kept, and each frame received is the oldest of
  /// them; older ones are dropped, and counted in Frame::dropped().
  drop_oldest,
  /// No loss: the producer waits until the subscriber has room.
  block_producer,
  /// Previews and inference: always the newest frame (drop-oldest with a depth of 1, which is
  /// what the broker and shmfdctl show for it).
  latest,
};

/// The kind of `layout`: which alternative of Layout it holds.
LayoutKind layout_kind(const Layout& layout) noexcept;
/// The kind's name as the wire and the tools spell it: "image".
std::string_view to_string(LayoutKind kind) noexcept;
/// The policy's name as the tools spell it: "drop-oldest".
std::string_view to_string(Backpressure policy) noexcept;

/// A topic name is 1 to 255 bytes, each one of A-Z a-z 0-9 . _ - / : ("camera/front",
/// "audio.0"); anything else is Errc::invalid_topic_name, naming the first bad byte. The broker
/// compares names as bytes: '/' and ".." have no meaning of their own, and no glob character
/// can occur in a name, so a policy pattern always means the same thing (docs/PROTOCOL.md).
bool is_topic_byte(char c) noexcept;
/// Checks `topic` against those rules: Errc::invalid_topic_name, naming the rule broken.
Status check_topic_name(std::string_view topic);

/// The default broker socket: $XDG_RUNTIME_DIR/shmfd/broker.sock, or /run/shmfd/broker.sock for
/// root (and when XDG_RUNTIME_DIR is unset).
std::string default_socket_path();
/// That rule in words, for the programs' --help: two lines, the second indented by `indent`.
inline std::string default_socket_rule(std::size_t indent) {
  return "$XDG_RUNTIME_DIR/shmfd/broker.sock,\n" + std::string(indent, ' ') +
         "or /run/shmfd/broker.sock as root or without XDG_RUNTIME_DIR";
}

/// Whether a Producer or Consumer takes pool frames on channels (docs/PROTOCOL.md, section 14):
/// shared rings between producer and consumer that the broker sets up and verifies, and that
/// pool frames then take without passing through the broker. `automatic` uses them when the
/// broker offers them, unless the environment sets SHMFD_CHANNELS=0. `off` keeps every frame on
/// the socket, which an event loop that waits on native_handle() needs (AsyncProducer and
/// AsyncConsumer).
enum class Channels : std::uint8_t { automatic, off };

}  // namespace shmfd
