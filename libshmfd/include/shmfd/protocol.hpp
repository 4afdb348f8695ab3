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

// A topic name is 1 to 255 bytes of printable ASCII without spaces ("camera/front", "audio.0").
Status check_topic_name(std::string_view topic);

// The default broker socket: $XDG_RUNTIME_DIR/shmfd/broker.sock, or /run/shmfd/broker.sock for
// root (and when XDG_RUNTIME_DIR is unset).
std::string default_socket_path();

// An Error message from the broker as a client-side Error (Errc::broker_refused).
Error broker_error(proto::Error::Reader error);

}  // namespace shmfd
