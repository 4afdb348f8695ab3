// System calls made on the whole machine while a scenario runs: the kernel's raw_syscalls:
// sys_enter tracepoint, counted (not traced) on every CPU with perf_event_open, as
// `perf stat -a -e raw_syscalls:sys_enter` counts. Counting costs nothing per call, unlike
// strace, which stops the process at each one and so changes when it sleeps.
//
// Machine-wide means every process of the scenario (producer, consumers, broker, RouDi) and
// whatever else runs meanwhile; on an idle machine that is a few hundred calls a second.
// Needs root or kernel.perf_event_paranoid <= -1 and tracefs; otherwise unavailable(), with
// the reason.
#pragma once

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

namespace bench {

class SyscallCounter {
 public:
  SyscallCounter() {
    std::uint64_t id = 0;
    for (const char* path : {"/sys/kernel/tracing/events/raw_syscalls/sys_enter/id",
                             "/sys/kernel/debug/tracing/events/raw_syscalls/sys_enter/id"}) {
      if (std::ifstream in(path); in >> id) break;
    }
    if (id == 0) {
      why_ = "no tracefs: raw_syscalls:sys_enter was not found";
      return;
    }
    const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
    for (long cpu = 0; cpu < cpus; ++cpu) {
      perf_event_attr attr{};
      attr.type = PERF_TYPE_TRACEPOINT;
      attr.size = sizeof attr;
      attr.config = id;
      attr.disabled = 1;
      const long fd = ::syscall(SYS_perf_event_open, &attr, -1, static_cast<int>(cpu), -1,
                                PERF_FLAG_FD_CLOEXEC);
      if (fd < 0) {
        why_ = std::string("perf_event_open: ") + std::strerror(errno) +
               " (needs root, or kernel.perf_event_paranoid <= -1)";
        close_all();
        return;
      }
      fds_.push_back(static_cast<int>(fd));
    }
  }
  ~SyscallCounter() { close_all(); }
  SyscallCounter(const SyscallCounter&) = delete;
  SyscallCounter& operator=(const SyscallCounter&) = delete;

  const std::optional<std::string>& unavailable() const { return why_; }

  void start() {
    for (int fd : fds_) {
      ::ioctl(fd, PERF_EVENT_IOC_RESET, 0);
      ::ioctl(fd, PERF_EVENT_IOC_ENABLE, 0);
    }
  }
  // The calls since start(), on every CPU.
  std::uint64_t stop() {
    std::uint64_t total = 0;
    for (int fd : fds_) {
      ::ioctl(fd, PERF_EVENT_IOC_DISABLE, 0);
      std::uint64_t n = 0;
      if (::read(fd, &n, sizeof n) == sizeof n) total += n;
    }
    return total;
  }

 private:
  void close_all() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }
  std::vector<int> fds_;
  std::optional<std::string> why_;
};

}  // namespace bench
