// Finds every memfd on the machine (or of given processes) through /proc, without the broker:
// who holds an fd to it and who maps it. The tool that finds a leak.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace shmfd::ctl {

struct MemfdHolder {
  pid_t pid = 0;
  std::string command;
  std::vector<int> fds;  // its fds to the memfd
  bool maps = false;     // it has the memfd mapped
};

struct MemfdInfo {
  std::uint64_t inode = 0;
  std::string name;  // without the "memfd:" prefix, e.g. "shmfd:cam0/pool,size=33554432"
  std::uint64_t size = 0;
  std::uint64_t allocated = 0;  // st_blocks * 512: the pages it has (what Shmem counts)
  int seals = -1;               // F_SEAL_* bits, -1 when no fd to it could be opened
  std::vector<MemfdHolder> holders;
};

// All processes when `pids` is empty. Processes that vanish are skipped; those whose fds this
// user may not read (another user's, without root) are skipped and counted in `unreadable`.
std::vector<MemfdInfo> scan_memfds(const std::vector<pid_t>& pids,
                                   std::size_t* unreadable = nullptr);

}  // namespace shmfd::ctl
