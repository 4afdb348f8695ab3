#include "shmfd/error.hpp"

#include <cstring>

#include "error_table.hpp"

namespace shmfd {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmfd"; }
  std::string message(int ev) const override {
    if (const auto* info = detail::errc_info(ev)) return std::string(info->message);
    return "unknown shmfd error " + std::to_string(ev);
  }
};

class BrokerCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmfd.broker"; }
  // The wire's name for the code ("permission-denied"): what docs/PROTOCOL.md lists.
  std::string message(int ev) const override {
    if (const auto* info = detail::broker_errc_info(ev)) return std::string(info->name);
    return "unknown-error";
  }
};

class CallCategory : public std::error_category {
 public:
  const char* name() const noexcept override { return "shmfd.call"; }
  std::string message(int ev) const override {
    if (const auto* info = detail::call_errc_info(ev)) return std::string(info->name);
    return "unknown-call-error";
  }
};

}  // namespace

const std::error_category& call_category() noexcept {
  static const CallCategory category;
  return category;
}

std::error_code make_error_code(CallErrc e) noexcept {
  return {static_cast<int>(e), call_category()};
}

std::string_view name(CallErrc e) noexcept {
  const auto* info = detail::call_errc_info(static_cast<int>(e));
  return info != nullptr ? info->name : "unknown";
}

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

std::string_view name(Errc e) noexcept {
  const auto* info = detail::errc_info(static_cast<int>(e));
  return info != nullptr ? info->name : "unknown";
}

std::string_view name(BrokerErrc e) noexcept {
  const auto* info = detail::broker_errc_info(static_cast<int>(e));
  return info != nullptr ? info->name : "unknown";
}

Error Error::system(int err, const std::string& context) {
  return Error(std::error_code(err, std::generic_category()), context + ": " + std::strerror(err));
}

Error&& Error::prefixed(const std::string& context) && {
  message_ = context + ": " + message_;
  return std::move(*this);
}

}  // namespace shmfd
