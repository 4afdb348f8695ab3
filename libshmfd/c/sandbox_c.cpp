// The C API's system-call allow list (shmfd.h, since libshmfd-c 1.3), over shmfd/sandbox.hpp.
#include <string>
#include <vector>

#include "c_api.hpp"
#include "shmfd/sandbox.hpp"

using namespace shmfd::capi;

namespace {

constexpr std::uint32_t kSandboxFlags =
    SHMFD_SANDBOX_THREADS | SHMFD_SANDBOX_EPERM | SHMFD_SANDBOX_LOG;

std::string joined(bool threads) {
  std::string out;
  for (const auto& name : shmfd::allowed_syscalls({.threads = threads})) {
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out;
}

}  // namespace

extern "C" {

shmfd_status shmfd_restrict_syscalls(const char* const* allow, size_t allow_count, uint32_t flags) {
  return guarded("shmfd_restrict_syscalls", [&] {
    if (allow == nullptr && allow_count != 0)
      return null_argument("shmfd_restrict_syscalls", "allow");
    if ((flags & ~kSandboxFlags) != 0)
      return unknown_flags("shmfd_restrict_syscalls", flags, kSandboxFlags);
    if ((flags & SHMFD_SANDBOX_EPERM) != 0 && (flags & SHMFD_SANDBOX_LOG) != 0) {
      return set_error(SHMFD_E_INVALID_ARGUMENT,
                       "shmfd_restrict_syscalls: SHMFD_SANDBOX_EPERM and SHMFD_SANDBOX_LOG exclude "
                       "each other");
    }
    shmfd::SyscallPolicy policy;
    for (size_t i = 0; i < allow_count; ++i) {
      if (allow[i] == nullptr) {
        return set_error(SHMFD_E_INVALID_ARGUMENT,
                         "shmfd_restrict_syscalls: allow[" + std::to_string(i) + "] is NULL");
      }
      policy.allow.emplace_back(allow[i]);
    }
    policy.threads = (flags & SHMFD_SANDBOX_THREADS) != 0;
    if ((flags & SHMFD_SANDBOX_EPERM) != 0)
      policy.on_violation = shmfd::SyscallViolation::fail_eperm;
    if ((flags & SHMFD_SANDBOX_LOG) != 0) policy.on_violation = shmfd::SyscallViolation::log;
    if (auto ok = shmfd::restrict_syscalls(policy); !ok) return set_error(ok.error());
    return SHMFD_OK;
  });
}

const char* shmfd_allowed_syscalls(uint32_t flags) {
  static const std::string without_threads = joined(false);
  static const std::string with_threads = joined(true);
  return (flags & SHMFD_SANDBOX_THREADS) != 0 ? with_threads.c_str() : without_threads.c_str();
}

}  // extern "C"
