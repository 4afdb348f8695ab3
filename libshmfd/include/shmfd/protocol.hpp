// The broker protocol's shared vocabulary for broker and clients: version, topic names, layout
// kinds, and the mapping between shmfd errors and the wire's ErrorCode.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "shmfd/error.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/proto/protocol.capnp.h"

namespace shmfd {

inline constexpr std::uint32_t kProtocolVersion = proto::PROTOCOL_VERSION;
inline constexpr std::uint32_t kMinProtocolVersion = proto::MIN_PROTOCOL_VERSION;
inline constexpr std::size_t kMaxTopicLength = 255;

using LayoutKind = proto::LayoutKind;
using Backpressure = proto::Backpressure;

LayoutKind layout_kind(const Layout& layout) noexcept;
std::string_view to_string(LayoutKind kind) noexcept;
std::string_view to_string(proto::ErrorCode code) noexcept;

proto::Guarantee to_proto(Guarantee level) noexcept;
Result<Guarantee> guarantee_from_proto(proto::Guarantee level);

// The wire code for a refusal caused by `error` (a verification, layout or decoding failure).
proto::ErrorCode wire_error_code(const Error& error) noexcept;

// A topic name is 1 to 255 bytes, each one of A-Z a-z 0-9 . _ - / : ("camera/front",
// "audio.0"); anything else is Errc::invalid_topic_name, naming the first bad byte. The broker
// compares names as bytes: '/' and ".." have no meaning of their own, and no glob character
// can occur in a name, so a policy pattern always means the same thing (docs/PROTOCOL.md).
bool is_topic_byte(char c) noexcept;
Status check_topic_name(std::string_view topic);

// The default broker socket: $XDG_RUNTIME_DIR/shmfd/broker.sock, or /run/shmfd/broker.sock for
// root (and when XDG_RUNTIME_DIR is unset).
std::string default_socket_path();

// "Publish", "SlotFree": a message type as docs/PROTOCOL.md names it, for errors and logs.
std::string message_name(proto::Message::Which which);

// An Error message from the broker as a client-side Error (Errc::broker_refused).
Error broker_error(proto::Error::Reader error);

}  // namespace shmfd
