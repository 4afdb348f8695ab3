// The steady-state allow list and its seccomp filter, through libseccomp (which knows each
// architecture's numbers and writes the BPF, including the architecture check).
#include "shmfd/sandbox.hpp"

#include <seccomp.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cerrno>
#include <memory>

// A program built with a sanitizer may use a library built without one: its runtime is then
// found at run time by its entry point (weak: null when absent).
extern "C" {
[[gnu::weak]] void __asan_init();
[[gnu::weak]] void __tsan_init();
}

namespace shmfd {
namespace {

// What every client makes after set-up (docs/sandboxing.md says why each is there).
constexpr const char* kSteadyState[] = {
    "brk",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "eventfd2",
    "exit",
    "exit_group",
    "fcntl",
    "fstat",
    "fstatfs",
    "ftruncate",
    "futex",
    "futex_waitv",
    "getpid",
    "gettid",
    "gettimeofday",
    "madvise",
    "memfd_create",
    "mmap",
    "mprotect",
    "mremap",
    "munmap",
    "nanosleep",
    "newfstatat",
    "poll",
    "ppoll",
    "read",
    "readlink",
    "recvmsg",
    "restart_syscall",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_yield",
    "sendmsg",
    "write",
};

// What the C library's pthread_create takes (the first one also installs a signal handler for
// set*id), and what a new thread does first.
constexpr const char* kThreads[] = {"clone",        "clone3",         "rseq",
                                    "rt_sigaction", "rt_sigprocmask", "set_robust_list"};

// What the sanitizer runtimes make while the program runs: AddressSanitizer checks memory
// through a pipe and yields while reporting; ThreadSanitizer's runtime sleeps, yields and masks
// signals around the calls it intercepts. None of them opens anything.
constexpr const char* kSanitizers[] = {"getrusage",      "pipe2",       "prctl", "rt_sigaction",
                                       "rt_sigprocmask", "sigaltstack", "tgkill"};

bool built_with_sanitizer() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  return true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
  return true;
#endif
#endif
  return &__asan_init != nullptr || &__tsan_init != nullptr;
}

void add(std::vector<std::string>& to, const auto& names) {
  for (const char* name : names) to.emplace_back(name);
}

void sort_unique(std::vector<std::string>& names) {
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
}

std::uint32_t action(SyscallViolation v) {
  switch (v) {
    case SyscallViolation::fail_eperm:
      return SCMP_ACT_ERRNO(EPERM);
    case SyscallViolation::log:
      return SCMP_ACT_LOG;
    case SyscallViolation::kill_process:
      break;
  }
  return SCMP_ACT_KILL_PROCESS;
}

struct FilterDeleter {
  void operator()(void* ctx) const { seccomp_release(ctx); }
};

Status seccomp_failed(int rc, const std::string& what) {
  // libseccomp returns -errno.
  return fail_errno(rc < 0 ? -rc : EINVAL, what);
}

}  // namespace

std::vector<std::string> steady_state_syscalls() {
  std::vector<std::string> out;
  add(out, kSteadyState);
  sort_unique(out);
  return out;
}

std::vector<std::string> sanitizer_syscalls() {
  std::vector<std::string> out;
  if (built_with_sanitizer()) add(out, kSanitizers);
  sort_unique(out);
  return out;
}

std::vector<std::string> allowed_syscalls(const SyscallPolicy& policy) {
  std::vector<std::string> out = steady_state_syscalls();
  for (auto& name : sanitizer_syscalls()) out.push_back(std::move(name));
  if (policy.threads) add(out, kThreads);
  out.insert(out.end(), policy.allow.begin(), policy.allow.end());
  sort_unique(out);
  return out;
}

Status restrict_syscalls(const SyscallPolicy& policy) {
  const std::vector<std::string> names = allowed_syscalls(policy);
  std::vector<int> numbers;
  for (const auto& name : names) {
    const int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) {
      return fail(Errc::invalid_argument,
                  "restrict_syscalls: '" + name + "' is not a system call of this machine");
    }
    numbers.push_back(nr);
  }
  std::unique_ptr<void, FilterDeleter> filter(seccomp_init(action(policy.on_violation)));
  if (!filter) return fail(Errc::invalid_argument, "seccomp_init failed");
  // Every thread of the process, not only this one (or none, and an error).
  if (int rc = seccomp_attr_set(filter.get(), SCMP_FLTATR_CTL_TSYNC, 1); rc != 0)
    return seccomp_failed(rc, "seccomp_attr_set(SCMP_FLTATR_CTL_TSYNC)");
  for (std::size_t i = 0; i < numbers.size(); ++i) {
    if (int rc = seccomp_rule_add(filter.get(), SCMP_ACT_ALLOW, numbers[i], 0); rc != 0)
      return seccomp_failed(rc, "seccomp_rule_add(" + names[i] + ")");
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    return fail_errno(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  if (int rc = seccomp_load(filter.get()); rc != 0)
    return seccomp_failed(rc, "seccomp_load (installing the filter)");
  return {};
}

}  // namespace shmfd
