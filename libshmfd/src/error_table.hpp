// The names of shmfd's error codes, written once: C++ messages (error.cpp), the wire's names of
// the broker's codes (wire_protocol.cpp), the C API's constant names (shmfd_c.cpp) and Python's
// exception codes (through shmfd::name) all read these tables.
#pragma once

#include <array>
#include <string_view>

#include "shmfd/error.hpp"

namespace shmfd::detail {

struct ErrcInfo {
  Errc code;
  std::string_view name;     // as programs spell it: Python's Error.code
  std::string_view c_name;   // the C API's constant
  std::string_view message;  // what error_code::message() says
};

// In the enum's order from 1: the static_assert below fails on a gap, a swap or a new code
// without its row.
inline constexpr std::array kErrcTable{
    ErrcInfo{Errc::not_memfd, "not_memfd", "SHMFD_E_NOT_MEMFD", "not a memfd"},
    ErrcInfo{Errc::missing_seals, "missing_seals", "SHMFD_E_MISSING_SEALS",
             "memfd lacks required seals"},
    ErrcInfo{Errc::buffer_too_small, "buffer_too_small", "SHMFD_E_BUFFER_TOO_SMALL",
             "buffer smaller than its layout"},
    ErrcInfo{Errc::not_readable, "not_readable", "SHMFD_E_NOT_READABLE",
             "fd cannot be mapped read-only"},
    ErrcInfo{Errc::invalid_size, "invalid_size", "SHMFD_E_INVALID_SIZE", "invalid buffer size"},
    ErrcInfo{Errc::huge_pages_unavailable, "huge_pages_unavailable",
             "SHMFD_E_HUGE_PAGES_UNAVAILABLE", "no free huge pages"},
    ErrcInfo{Errc::too_many_fds, "too_many_fds", "SHMFD_E_TOO_MANY_FDS",
             "too many file descriptors in one message"},
    ErrcInfo{Errc::fds_truncated, "fds_truncated", "SHMFD_E_FDS_TRUNCATED",
             "file descriptors truncated (MSG_CTRUNC)"},
    ErrcInfo{Errc::message_truncated, "message_truncated", "SHMFD_E_MESSAGE_TRUNCATED",
             "message truncated (MSG_TRUNC)"},
    ErrcInfo{Errc::empty_message, "empty_message", "SHMFD_E_EMPTY_MESSAGE", "empty message"},
    ErrcInfo{Errc::layout_unknown_format, "layout_unknown_format", "SHMFD_E_LAYOUT_UNKNOWN_FORMAT",
             "layout: unknown format"},
    ErrcInfo{Errc::layout_bad_dimensions, "layout_bad_dimensions", "SHMFD_E_LAYOUT_BAD_DIMENSIONS",
             "layout: bad dimensions"},
    ErrcInfo{Errc::layout_plane_count, "layout_plane_count", "SHMFD_E_LAYOUT_PLANE_COUNT",
             "layout: wrong plane count"},
    ErrcInfo{Errc::layout_stride_too_small, "layout_stride_too_small",
             "SHMFD_E_LAYOUT_STRIDE_TOO_SMALL", "layout: stride smaller than a row"},
    ErrcInfo{Errc::layout_plane_too_small, "layout_plane_too_small",
             "SHMFD_E_LAYOUT_PLANE_TOO_SMALL", "layout: plane smaller than its rows"},
    ErrcInfo{Errc::layout_planes_overlap, "layout_planes_overlap", "SHMFD_E_LAYOUT_PLANES_OVERLAP",
             "layout: planes overlap"},
    ErrcInfo{Errc::layout_overflow, "layout_overflow", "SHMFD_E_LAYOUT_OVERFLOW",
             "layout: size arithmetic overflows"},
    ErrcInfo{Errc::layout_out_of_bounds, "layout_out_of_bounds", "SHMFD_E_LAYOUT_OUT_OF_BOUNDS",
             "layout: extends past the buffer"},
    ErrcInfo{Errc::malformed_message, "malformed_message", "SHMFD_E_MALFORMED_MESSAGE",
             "malformed message"},
    ErrcInfo{Errc::fd_index_out_of_range, "fd_index_out_of_range", "SHMFD_E_FD_INDEX_OUT_OF_RANGE",
             "fd index out of range"},
    ErrcInfo{Errc::invalid_topic_name, "invalid_topic_name", "SHMFD_E_INVALID_TOPIC_NAME",
             "invalid topic name"},
    ErrcInfo{Errc::broker_refused, "broker_refused", "SHMFD_E_BROKER_REFUSED",
             "refused by the broker"},
    ErrcInfo{Errc::protocol_violation, "protocol_violation", "SHMFD_E_PROTOCOL_VIOLATION",
             "protocol violation"},
    ErrcInfo{Errc::disconnected, "disconnected", "SHMFD_E_DISCONNECTED",
             "disconnected from the broker"},
    ErrcInfo{Errc::no_free_slot, "no_free_slot", "SHMFD_E_NO_FREE_SLOT",
             "no free slot in the pool"},
    ErrcInfo{Errc::invalid_argument, "invalid_argument", "SHMFD_E_INVALID_ARGUMENT",
             "invalid argument"},
    ErrcInfo{Errc::invalid_configuration, "invalid_configuration", "SHMFD_E_INVALID_CONFIGURATION",
             "invalid configuration"},
    ErrcInfo{Errc::limit_exceeded, "limit_exceeded", "SHMFD_E_LIMIT_EXCEEDED", "limit exceeded"},
    ErrcInfo{Errc::invalid_metadata, "invalid_metadata", "SHMFD_E_INVALID_METADATA",
             "invalid frame metadata"},
    ErrcInfo{Errc::call_failed, "call_failed", "SHMFD_E_CALL_FAILED", "call failed"},
};

struct BrokerErrcInfo {
  BrokerErrc code;
  std::string_view name;  // the wire's name (docs/PROTOCOL.md, "Errors"): "permission-denied"
};

// In the enum's order from 0, which is the wire's (wire_protocol.cpp checks that).
inline constexpr std::array kBrokerErrcTable{
    BrokerErrcInfo{BrokerErrc::protocol_version, "protocol-version"},
    BrokerErrcInfo{BrokerErrc::malformed_message, "malformed-message"},
    BrokerErrcInfo{BrokerErrc::not_memfd, "not-memfd"},
    BrokerErrcInfo{BrokerErrc::missing_seals, "missing-seals"},
    BrokerErrcInfo{BrokerErrc::buffer_too_small, "buffer-too-small"},
    BrokerErrcInfo{BrokerErrc::invalid_layout, "invalid-layout"},
    BrokerErrcInfo{BrokerErrc::limit_exceeded, "limit-exceeded"},
    BrokerErrcInfo{BrokerErrc::unknown_topic, "unknown-topic"},
    BrokerErrcInfo{BrokerErrc::permission_denied, "permission-denied"},
    BrokerErrcInfo{BrokerErrc::internal, "internal"},
    BrokerErrcInfo{BrokerErrc::topic_taken, "topic-taken"},
    BrokerErrcInfo{BrokerErrc::not_readable, "not-readable"},
    BrokerErrcInfo{BrokerErrc::invalid_topic_name, "invalid-topic-name"},
    BrokerErrcInfo{BrokerErrc::unexpected_message, "unexpected-message"},
    BrokerErrcInfo{BrokerErrc::already_subscribed, "already-subscribed"},
    BrokerErrcInfo{BrokerErrc::not_subscribed, "not-subscribed"},
    BrokerErrcInfo{BrokerErrc::not_held, "not-held"},
    BrokerErrcInfo{BrokerErrc::slot_busy, "slot-busy"},
    BrokerErrcInfo{BrokerErrc::unknown_pool, "unknown-pool"},
    BrokerErrcInfo{BrokerErrc::guarantee_mismatch, "guarantee-mismatch"},
    BrokerErrcInfo{BrokerErrc::wrong_fd_count, "wrong-fd-count"},
    BrokerErrcInfo{BrokerErrc::already_advertised, "already-advertised"},
    BrokerErrcInfo{BrokerErrc::bad_sequence, "bad-sequence"},
    BrokerErrcInfo{BrokerErrc::invalid_metadata, "invalid-metadata"},
    BrokerErrcInfo{BrokerErrc::invalid_call, "invalid-call"},
};

struct CallErrcInfo {
  CallErrc code;
  std::string_view name;  // the wire's name (docs/PROTOCOL.md, section 16): "server-gone"
};

// In the enum's order from 1, which is the wire's CallError (0 is none).
inline constexpr std::array kCallErrcTable{
    CallErrcInfo{CallErrc::no_server, "no-server"},
    CallErrcInfo{CallErrc::busy, "busy"},
    CallErrcInfo{CallErrc::deadline, "deadline"},
    CallErrcInfo{CallErrc::server_gone, "server-gone"},
    CallErrcInfo{CallErrc::server_error, "server-error"},
    CallErrcInfo{CallErrc::cancelled, "cancelled"},
};

constexpr bool errc_table_in_order() {
  for (std::size_t i = 0; i < kErrcTable.size(); ++i) {
    if (static_cast<std::size_t>(kErrcTable[i].code) != i + 1) return false;
  }
  return static_cast<std::size_t>(Errc::call_failed) == kErrcTable.size();
}
static_assert(errc_table_in_order(), "kErrcTable: one row per Errc, in order");

constexpr bool broker_table_in_order() {
  for (std::size_t i = 0; i < kBrokerErrcTable.size(); ++i) {
    if (static_cast<std::size_t>(kBrokerErrcTable[i].code) != i) return false;
  }
  return static_cast<std::size_t>(BrokerErrc::invalid_call) + 1 == kBrokerErrcTable.size();
}
static_assert(broker_table_in_order(), "kBrokerErrcTable: one row per BrokerErrc, in order");

constexpr bool call_table_in_order() {
  for (std::size_t i = 0; i < kCallErrcTable.size(); ++i) {
    if (static_cast<std::size_t>(kCallErrcTable[i].code) != i + 1) return false;
  }
  return static_cast<std::size_t>(CallErrc::cancelled) == kCallErrcTable.size();
}
static_assert(call_table_in_order(), "kCallErrcTable: one row per CallErrc, in order");

// The row of `value`, or null for a value no code has.
constexpr const ErrcInfo* errc_info(int value) noexcept {
  return value >= 1 && static_cast<std::size_t>(value) <= kErrcTable.size()
             ? &kErrcTable[static_cast<std::size_t>(value) - 1]
             : nullptr;
}
constexpr const CallErrcInfo* call_errc_info(int value) noexcept {
  return value >= 1 && static_cast<std::size_t>(value) <= kCallErrcTable.size()
             ? &kCallErrcTable[static_cast<std::size_t>(value) - 1]
             : nullptr;
}
constexpr const BrokerErrcInfo* broker_errc_info(int value) noexcept {
  return value >= 0 && static_cast<std::size_t>(value) < kBrokerErrcTable.size()
             ? &kBrokerErrcTable[static_cast<std::size_t>(value)]
             : nullptr;
}

}  // namespace shmfd::detail
