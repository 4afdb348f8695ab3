/// @file
/// A seccomp-bpf allow list for a shmfd client in steady state: once it has connected, offered
/// or subscribed and set up what it needs, a sandboxed worker locks itself to the system calls
/// that receiving, mapping, answering and publishing frames take, and nothing else (no open, no
/// socket, no connect, no exec). docs/sandboxing.md lists the calls and why each is there.
///
/// @code
/// auto server = shmfd::Server::connect(socket_path, "blur-worker");
/// server->offer("blur");
/// if (auto locked = shmfd::restrict_syscalls(); !locked) die(locked.error().message());
/// while (auto event = server->receive()) { ... }   // as before: nothing else changes
/// @endcode
///
/// The filter is the kernel's (seccomp, through Debian's libseccomp): it holds for every thread
/// of the process and every child it forks, cannot be lifted, and sets no_new_privs first (so no
/// privilege is needed). In a build with AddressSanitizer or ThreadSanitizer, the calls their
/// runtimes make are allowed too (sanitizer_syscalls()); in any other build they are not.
#pragma once

#include <string>
#include <vector>

#include "shmfd/error.hpp"

namespace shmfd {

/// What the kernel does to a system call outside the list.
enum class SyscallViolation {
  kill_process,  ///< the whole process dies of SIGSYS at once (the default: nothing runs on)
  fail_eperm,    ///< the call fails with EPERM, and the process goes on
  log,           ///< the call is allowed and the kernel logs it (audit): to find what is missing
};

/// What restrict_syscalls() allows beyond the steady state, and what it does to the rest.
struct SyscallPolicy {
  /// More system calls, by name as in `man 2 syscalls` ("openat", "epoll_wait").
  std::vector<std::string> allow{};
  /// Allow starting threads after the lock (clone, clone3, set_robust_list, rseq, and what the
  /// C library's thread start takes). Off: a sandboxed worker starts its threads before.
  bool threads = false;
  SyscallViolation on_violation = SyscallViolation::kill_process;  ///< outside the list
};

/// The system calls a Producer, Consumer, Caller or Server makes after set-up, whether frames
/// come through the broker or on channels: socket messages (sendmsg, recvmsg), waiting (poll,
/// futex, futex_waitv), mapping and verifying frames (mmap, munmap, fstat, fstatfs, fcntl,
/// readlink of /proc/self/fd), making frames (memfd_create, ftruncate), memory, time, and
/// exit. Sorted by name.
std::vector<std::string> steady_state_syscalls();

/// The extra calls allowed in this build for its sanitizer runtime (AddressSanitizer,
/// ThreadSanitizer): empty in a build without one.
std::vector<std::string> sanitizer_syscalls();

/// Everything `policy` allows: steady_state_syscalls(), the sanitizer's, the threads' and
/// `policy.allow`, sorted, each once.
std::vector<std::string> allowed_syscalls(const SyscallPolicy& policy = {});

/// Locks this process to allowed_syscalls(policy), for good: sets no_new_privs, then installs a
/// seccomp filter on every thread. Errors: Errc::invalid_argument naming a system call in
/// `policy.allow` this machine does not know (nothing is installed then), the system's
/// (EINVAL from a kernel without seccomp filters).
Status restrict_syscalls(const SyscallPolicy& policy = {});

}  // namespace shmfd
