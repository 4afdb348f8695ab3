#include "shmfd/error.hpp"

#include <cstring>

namespace shmfd {
namespace detail {
std::string broker_code_name(int code);  // protocol.cpp: the wire's name of an ErrorCode
}  // namespace detail
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmfd"; }
  std::string message(int ev) const override {
    switch (static_cast<Errc>(ev)) {
      case Errc::not_memfd:
        return "not a memfd";
      case Errc::missing_seals:
        return "memfd lacks required seals";
      case Errc::buffer_too_small:
        return "buffer smaller than its layout";
      case Errc::not_readable:
        return "fd cannot be mapped read-only";
      case Errc::invalid_size:
        return "invalid buffer size";
      case Errc::huge_pages_unavailable:
        return "no free huge pages";
      case Errc::too_many_fds:
        return "too many file descriptors in one message";
      case Errc::fds_truncated:
        return "file descriptors truncated (MSG_CTRUNC)";
      case Errc::message_truncated:
        return "message truncated (MSG_TRUNC)";
      case Errc::empty_message:
        return "empty message";
      case Errc::layout_unknown_format:
        return "layout: unknown format";
      case Errc::layout_bad_dimensions:
        return "layout: bad dimensions";
      case Errc::layout_plane_count:
        return "layout: wrong plane count";
      case Errc::layout_stride_too_small:
        return "layout: stride smaller than a row";
      case Errc::layout_plane_too_small:
        return "layout: plane smaller than its rows";
      case Errc::layout_planes_overlap:
        return "layout: planes overlap";
      case Errc::layout_overflow:
        return "layout: size arithmetic overflows";
      case Errc::layout_out_of_bounds:
        return "layout: extends past the buffer";
      case Errc::malformed_message:
        return "malformed message";
      case Errc::fd_index_out_of_range:
        return "fd index out of range";
      case Errc::invalid_topic_name:
        return "invalid topic name";
      case Errc::broker_refused:
        return "refused by the broker";
      case Errc::protocol_violation:
        return "protocol violation";
      case Errc::disconnected:
        return "disconnected from the broker";
      case Errc::no_free_slot:
        return "no free slot in the pool";
      case Errc::invalid_argument:
        return "invalid argument";
      case Errc::invalid_configuration:
        return "invalid configuration";
      case Errc::limit_exceeded:
        return "limit exceeded";
    }
    return "unknown shmfd error " + std::to_string(ev);
  }
};

class BrokerCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmfd.broker"; }
  // The wire's name for the code ("permission-denied"): what docs/PROTOCOL.md lists.
  std::string message(int ev) const override { return detail::broker_code_name(ev); }
};

}  // namespace

const std::error_category& broker_category() noexcept {
  static const BrokerCategory category;
  return category;
}

std::error_code make_error_code(BrokerErrc e) noexcept {
  return {static_cast<int>(e), broker_category()};
}

const std::error_category& error_category() noexcept {
  static const Category category;
  return category;
}

std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), error_category()};
}

Error Error::system(int err, const std::string& context) {
  return Error(std::error_code(err, std::generic_category()), context + ": " + std::strerror(err));
}

Error&& Error::prefixed(const std::string& context) && {
  message_ = context + ": " + message_;
  return std::move(*this);
}

}  // namespace shmfd
