// The protocol's vocabulary in the schema's types, for code that reads and writes proto::
// messages (the broker, shmfdctl, Producer and Consumer inside): the C++ enums of protocol.hpp
// and guarantee.hpp to and from the wire's, the wire's error codes, and message names.
//
// A peer may send an enum value this build does not know (a newer schema, or malice): every
// *_from_proto returns Errc::malformed_message for it, naming the value, so an unknown value
// never aliases a known one. Each conversion is a switch without default, so an enumerator
// added on either side and not here fails the build (-Wswitch, -Werror).
#pragma once

#include <string>
#include <string_view>

#include "shmfd/error.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/proto/protocol.capnp.h"
#include "shmfd/protocol.hpp"

namespace shmfd {

proto::LayoutKind to_proto(LayoutKind kind) noexcept;
Result<LayoutKind> layout_kind_from_proto(proto::LayoutKind kind);

proto::Backpressure to_proto(Backpressure policy) noexcept;
Result<Backpressure> backpressure_from_proto(proto::Backpressure policy);

proto::Guarantee to_proto(Guarantee level) noexcept;
Result<Guarantee> guarantee_from_proto(proto::Guarantee level);

// "permission-denied": an ErrorCode as docs/PROTOCOL.md spells it.
std::string_view to_string(proto::ErrorCode code) noexcept;

// The wire code for a refusal caused by `error` (a verification, layout or decoding failure).
proto::ErrorCode wire_error_code(const Error& error) noexcept;

// "Publish", "SlotFree": a message type as docs/PROTOCOL.md names it, for errors and logs.
std::string message_name(proto::Message::Which which);

// An Error message from the broker as a client-side Error (Errc::broker_refused, and the
// BrokerErrc of its code).
Error broker_error(proto::Error::Reader error);

// What the frames of a service (version 6) may carry beside their bytes: services declare no
// options, so a user header up to kMaxUserHeaderBytes and nothing required. The broker checks
// requests and responses against it, and callers and servers check again what they receive.
const TopicOptions& service_frame_options() noexcept;

}  // namespace shmfd
