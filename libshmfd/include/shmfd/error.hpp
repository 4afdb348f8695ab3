/// @file
/// Errors as values: every failure a caller can meet in normal operation (a peer's bad fd, a
/// truncated message, EAGAIN, a layout that does not fit) comes back as an Error inside a
/// Result<T>, with an error_code for programs and a message for people that names the
/// operation and its arguments, e.g. `memfd_create("shmfd:cam0,size=33177600"): Too many open
/// files`.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <tl/expected.hpp>

namespace shmfd {

/// shmfd's own failure kinds. Operating-system failures keep their errno in std::generic_category.
/// A new code goes last, with its row in src/error_table.hpp (names, C constant, message).
enum class Errc {
  // Verification of a received fd (verify.hpp).
  not_memfd = 1,     ///< not a memfd: a pipe, socket, regular or tmpfs file, device, ...
  missing_seals,     ///< a memfd without the seals its guarantee level needs
  buffer_too_small,  ///< a memfd smaller than its layout's extent
  not_readable,      ///< its access mode (O_WRONLY, O_PATH) does not allow a read-only mapping
  // Buffer creation (memfd.hpp).
  invalid_size,            ///< a buffer of 0 bytes, or too large to round to pages
  huge_pages_unavailable,  ///< huge pages asked for and none free (vm.nr_hugepages)
  // Transport: a peer's message over the socket.
  too_many_fds,       ///< a message with more fds than kFdsPerMessage
  fds_truncated,      ///< the kernel cut the fds off (MSG_CTRUNC)
  message_truncated,  ///< a message longer than the receiver accepts (MSG_TRUNC)
  empty_message,      ///< a message of 0 bytes
  // Layout validation (layout.hpp): one code per rule so callers and tests can tell them apart.
  layout_unknown_format,    ///< a pixel format, sample format or dtype no one has
  layout_bad_dimensions,    ///< no pixels, channels or rate; an odd yuyv width; too high a rank
  layout_plane_count,       ///< plane_count is not what the pixel format has
  layout_stride_too_small,  ///< a plane's stride is shorter than its row
  layout_plane_too_small,   ///< a plane's size does not hold its rows
  layout_planes_overlap,    ///< two planes share bytes
  layout_overflow,          ///< the size arithmetic overflows 64 bits
  layout_out_of_bounds,     ///< the layout describes bytes past the end of its buffer
  // Wire decoding (a peer's bytes).
  malformed_message,      ///< not a valid message of the protocol (Cap'n Proto or its rules)
  fd_index_out_of_range,  ///< a message names an fd it did not carry
  invalid_topic_name,     ///< a topic name check_topic_name() refuses
  // Client library (producer.hpp, consumer.hpp).
  broker_refused,      ///< the broker answered with an Error message (its BrokerErrc says why)
  protocol_violation,  ///< the broker sent something the protocol does not allow here
  disconnected,        ///< the broker closed the connection
  no_free_slot,        ///< every slot of a pool is held (acquire with Wait::fail_fast)
  /// The caller's own mistake: an argument the API does not take here (a pool id that is not
  /// the producer's, a slot of another pool, a layout that does not fit its slot).
  invalid_argument,
  /// Start-up configuration: a command-line option, a policy file, a socket systemd passed.
  invalid_configuration,
  limit_exceeded,  ///< a configured limit was reached (the broker's --max-topics)
  /// A frame's metadata or a topic's options break a rule of frame_meta.hpp (unknown flags, a
  /// crop outside the image, a user header larger than the topic allows, ...).
  invalid_metadata,
  /// A call to a service failed (protocol version 6): its CallErrc says why (no server, busy,
  /// deadline, server gone, ...). Every CallErrc error is also this.
  call_failed,
};

/// Why the broker refused a request: the code of its Error message (docs/PROTOCOL.md, "Errors"),
/// in a category of its own ("shmfd.broker"), so a caller tests `error.is(BrokerErrc::...)`
/// instead of matching text. Every such error is also Errc::broker_refused. The values are the
/// wire's, in its order (protocol.cpp checks each at compile time).
enum class BrokerErrc {
  protocol_version,   ///< Hello with a version below the broker's oldest
  malformed_message,  ///< not a valid message: bad framing, pointers, limits, enum values
  not_memfd,          ///< the fd is not a memfd
  missing_seals,      ///< the memfd lacks seals its guarantee needs (the message lists them)
  buffer_too_small,   ///< the memfd is smaller than the layout's extent, or than its pool
  invalid_layout,     ///< a layout rule broken, a layout of the wrong kind, a bad slot size
  limit_exceeded,     ///< a limit of the broker's (the message names its flag), or too many strikes
  unknown_topic,      ///< publish, register a pool or unadvertise on a topic not this client's
  permission_denied,  ///< the policy does not grant the right, or does not admit the uid
  internal,           ///< a fault of the broker itself; no client input produces it
  topic_taken,        ///< advertise of a topic another client produces
  not_readable,       ///< the fd is O_WRONLY or O_PATH, or its mode forbids reading
  invalid_topic_name,  ///< a topic name check_topic_name() refuses
  unexpected_message,  ///< a message out of turn (Hello twice, one only the broker sends, ...)
  already_subscribed,  ///< subscribe to a topic this client is subscribed to
  not_subscribed,      ///< release or unsubscribe where this client is not subscribed
  not_held,            ///< release of a frame this client does not hold
  slot_busy,           ///< publish into a pool slot that has not been freed
  unknown_pool,        ///< a pool that is not this client's for the topic, or a slot past its end
  guarantee_mismatch,  ///< a pool on a topic advertised with Guarantee::sealed
  wrong_fd_count,      ///< a message with fds it does not take, or without the one it needs
  already_advertised,  ///< advertise again with another kind or guarantee
  bad_sequence,        ///< sequence 0, or not above the last one the topic accepted
  invalid_metadata,    ///< frame metadata or topic options that break a rule (version 5)
  invalid_call,        ///< a call id in use, a response or cancel for no such call (version 6)
};

/// Why a call to a service failed (Caller, protocol version 6), in a category of its own
/// ("shmfd.call"): test `error.is(CallErrc::server_gone)`. Every such error is also
/// Errc::call_failed. The values are the wire's CallError (docs/PROTOCOL.md, section 16).
enum class CallErrc {
  no_server = 1,  ///< no client offers the service: start one, or retry later
  busy,           ///< every server (or this caller) at its bound of calls in flight
  deadline,       ///< the call's deadline passed; the server was told to drop it
  server_gone,    ///< the server died or withdrew with the call in flight: retry elsewhere
  server_error,   ///< the server answered with an error, or a response the broker refused
  cancelled,      ///< this caller cancelled the call
};

}  // namespace shmfd

/// @cond
template <>
struct std::is_error_code_enum<shmfd::Errc> : std::true_type {};
template <>
struct std::is_error_code_enum<shmfd::BrokerErrc> : std::true_type {};
template <>
struct std::is_error_code_enum<shmfd::CallErrc> : std::true_type {};
/// @endcond

namespace shmfd {

/// The category of Errc codes, named "shmfd".
const std::error_category& error_category() noexcept;
/// `e` as a std::error_code of error_category(): what lets an Errc compare with error codes.
std::error_code make_error_code(Errc e) noexcept;
/// The category of BrokerErrc codes, named "shmfd.broker".
const std::error_category& broker_category() noexcept;
/// `e` as a std::error_code of broker_category().
std::error_code make_error_code(BrokerErrc e) noexcept;

/// The category of CallErrc codes, named "shmfd.call".
const std::error_category& call_category() noexcept;
/// `e` as a std::error_code of call_category().
std::error_code make_error_code(CallErrc e) noexcept;

/// A code's name as programs spell it: "no_free_slot" for an Errc (Python's Error.code), the
/// wire's "permission-denied" for a BrokerErrc; "unknown" for a value no code has. Every name and
/// message is written once, in one table (src/error_table.hpp), that C++, C and Python share:
/// a new code gets its row there, or the build fails.
std::string_view name(Errc e) noexcept;
/// The wire's name of a broker's code: "permission-denied"; "unknown" for a value no code has.
std::string_view name(BrokerErrc e) noexcept;
/// The wire's name of a call's failure: "server-gone"; "unknown" for a value no code has.
std::string_view name(CallErrc e) noexcept;

/// A failure: a code for programs to test (is()), and a message for people that names the
/// operation and what was wrong. A value: copy it, move it, keep it, from any thread.
class Error {
 public:
  /// An error of any category with `message`.
  Error(std::error_code code, std::string message) : code_(code), message_(std::move(message)) {}
  /// One of shmfd's own.
  Error(Errc code, std::string message) : Error(make_error_code(code), std::move(message)) {}

  /// An OS failure: `context` names the call and its arguments; the errno text is appended.
  static Error system(int err, const std::string& context);

  /// The code: an Errc, a BrokerErrc, or an errno in std::generic_category.
  const std::error_code& code() const noexcept { return code_; }
  /// What went wrong, for people: the operation, its arguments, and the cause.
  const std::string& message() const noexcept { return message_; }
  /// Whether the code is `e`. Every BrokerErrc is also Errc::broker_refused, every CallErrc
  /// Errc::call_failed.
  bool is(Errc e) const noexcept {
    return code_ == make_error_code(e) ||
           (e == Errc::broker_refused && code_.category() == broker_category()) ||
           (e == Errc::call_failed && code_.category() == call_category());
  }
  /// Whether the broker refused with `e`.
  bool is(BrokerErrc e) const noexcept { return code_ == make_error_code(e); }
  /// Whether a call failed with `e`.
  bool is(CallErrc e) const noexcept { return code_ == make_error_code(e); }
  /// Whether the system failed with `e` (std::errc::no_such_file_or_directory: no broker at
  /// that path).
  bool is(std::errc e) const noexcept { return code_ == std::make_error_code(e); }

  /// Prefixes more context: Error("verify fd 7: ...") from Error("...").
  Error&& prefixed(const std::string& context) &&;

 private:
  std::error_code code_;
  std::string message_;
};

/// A T, or the Error that kept it from being made: tl::expected (the C++23 std::expected).
/// Test it (`if (!r)`), then take `*r` or `r.error()`.
template <typename T>
using Result = tl::expected<T, Error>;
/// The result of a call that returns nothing but may fail.
using Status = Result<void>;

/// An Errc failure, for a function that returns a Result: `return fail(Errc::..., "what");`.
inline tl::unexpected<Error> fail(Errc code, std::string message) {
  return tl::unexpected<Error>(Error(code, std::move(message)));
}
/// A system failure: Error::system(`err`, `context`) as a Result's error.
inline tl::unexpected<Error> fail_errno(int err, const std::string& context) {
  return tl::unexpected<Error>(Error::system(err, context));
}
/// Passes on an Error as a Result's error.
inline tl::unexpected<Error> fail(Error error) {
  return tl::unexpected<Error>(std::move(error));
}

/// Calls `syscall` until it stops failing with EINTR. Not for close(2): on Linux the fd is gone
/// even when close reports EINTR, and retrying could close an fd another thread just opened.
template <typename F>
auto retry_eintr(F&& syscall) {
  for (;;) {
    auto r = syscall();
    if (r != -1 || errno != EINTR) return r;
  }
}

}  // namespace shmfd
