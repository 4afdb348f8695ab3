// Errors as values: every failure a caller can meet in normal operation (a peer's bad fd, a
// truncated message, EAGAIN, a layout that does not fit) comes back as an Error inside a
// Result<T>, with an error_code for programs and a message for people that names the
// operation and its arguments, e.g. `memfd_create("shmfd:cam0,size=33177600"): Too many open
// files`.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include <tl/expected.hpp>

namespace shmfd {

// shmfd's own failure kinds. Operating-system failures keep their errno in std::generic_category.
// A new code goes last, with its row in src/error_table.hpp (names, C constant, message).
enum class Errc {
  // Verification of a received fd (verify.hpp).
  not_memfd = 1,
  missing_seals,
  buffer_too_small,
  not_readable,  // its access mode (O_WRONLY, O_PATH) does not allow a read-only mapping
  // Buffer creation (memfd.hpp).
  invalid_size,
  huge_pages_unavailable,
  // Transport (transport.hpp).
  too_many_fds,
  fds_truncated,
  message_truncated,
  empty_message,
  // Layout validation (layout.hpp): one code per rule so callers and tests can tell them apart.
  layout_unknown_format,
  layout_bad_dimensions,
  layout_plane_count,
  layout_stride_too_small,
  layout_plane_too_small,
  layout_planes_overlap,
  layout_overflow,
  layout_out_of_bounds,
  // Wire decoding (wire/wire.hpp).
  malformed_message,
  fd_index_out_of_range,
  invalid_topic_name,
  // Client library (producer.hpp, consumer.hpp).
  broker_refused,      // the broker answered with an Error message
  protocol_violation,  // the broker sent something the protocol does not allow here
  disconnected,        // the broker closed the connection
  no_free_slot,        // every slot of a pool is held (acquire with Wait::fail_fast)
  // The caller's own mistake: an argument the API does not take here (a pool id that is not
  // the producer's, a slot of another pool, a layout that does not fit its slot).
  invalid_argument,
  // Start-up configuration: a command-line option, a policy file, a socket systemd passed.
  invalid_configuration,
  limit_exceeded,  // a configured limit was reached (the broker's --max-topics)
};

// Why the broker refused a request: the code of its Error message (docs/PROTOCOL.md, "Errors"),
// in a category of its own ("shmfd.broker"), so a caller tests `error.is(BrokerErrc::...)`
// instead of matching text. Every such error is also Errc::broker_refused. The values are the
// wire's, in its order (protocol.cpp checks each at compile time).
enum class BrokerErrc {
  protocol_version,
  malformed_message,
  not_memfd,
  missing_seals,
  buffer_too_small,
  invalid_layout,
  limit_exceeded,
  unknown_topic,
  permission_denied,
  internal,
  topic_taken,
  not_readable,
  invalid_topic_name,
  unexpected_message,
  already_subscribed,
  not_subscribed,
  not_held,
  slot_busy,
  unknown_pool,
  guarantee_mismatch,
  wrong_fd_count,
  already_advertised,
  bad_sequence,
};

}  // namespace shmfd

template <>
struct std::is_error_code_enum<shmfd::Errc> : std::true_type {};
template <>
struct std::is_error_code_enum<shmfd::BrokerErrc> : std::true_type {};

namespace shmfd {

const std::error_category& error_category() noexcept;
std::error_code make_error_code(Errc e) noexcept;
const std::error_category& broker_category() noexcept;
std::error_code make_error_code(BrokerErrc e) noexcept;

// A code's name as programs spell it: "no_free_slot" for an Errc (Python's Error.code), the
// wire's "permission-denied" for a BrokerErrc; "unknown" for a value no code has. Every name and
// message is written once, in one table (src/error_table.hpp), that C++, C and Python share:
// a new code gets its row there, or the build fails.
std::string_view name(Errc e) noexcept;
std::string_view name(BrokerErrc e) noexcept;

class Error {
 public:
  Error(std::error_code code, std::string message) : code_(code), message_(std::move(message)) {}
  Error(Errc code, std::string message) : Error(make_error_code(code), std::move(message)) {}

  // An OS failure: `context` names the call and its arguments; the errno text is appended.
  static Error system(int err, const std::string& context);

  const std::error_code& code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  bool is(Errc e) const noexcept {
    return code_ == make_error_code(e) ||
           (e == Errc::broker_refused && code_.category() == broker_category());
  }
  bool is(BrokerErrc e) const noexcept { return code_ == make_error_code(e); }
  bool is(std::errc e) const noexcept { return code_ == std::make_error_code(e); }

  // Prefixes more context: Error("verify fd 7: ...") from Error("...").
  Error&& prefixed(const std::string& context) &&;

 private:
  std::error_code code_;
  std::string message_;
};

template <typename T>
using Result = tl::expected<T, Error>;
using Status = Result<void>;

inline tl::unexpected<Error> fail(Errc code, std::string message) {
  return tl::unexpected<Error>(Error(code, std::move(message)));
}
inline tl::unexpected<Error> fail_errno(int err, const std::string& context) {
  return tl::unexpected<Error>(Error::system(err, context));
}
inline tl::unexpected<Error> fail(Error error) {
  return tl::unexpected<Error>(std::move(error));
}

// Calls `syscall` until it stops failing with EINTR. Not for close(2): on Linux the fd is gone
// even when close reports EINTR, and retrying could close an fd another thread just opened.
template <typename F>
auto retry_eintr(F&& syscall) {
  for (;;) {
    auto r = syscall();
    if (r != -1 || errno != EINTR) return r;
  }
}

}  // namespace shmfd
