// All shared memory on the machine in one view, without the broker: System V segments, POSIX
// shm_open files in /dev/shm and files on other tmpfs mounts, and memfds, set against Shmem
// in /proc/meminfo, with orphans (memory nobody uses that stays until removed) flagged.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "memfds.hpp"

namespace shmfd::ctl {

// A process that holds an fd to an object, or maps it.
struct Holder {
  pid_t pid = 0;
  std::string command;
  bool fd = false;
  bool maps = false;
};

struct SysvSegment {
  std::int64_t key = 0;
  int id = 0;
  uid_t uid = 0;
  unsigned perms = 0;      // the mode's permission bits
  std::uint64_t size = 0;  // as asked at shmget
  std::uint64_t rss = 0;   // resident bytes (what Shmem counts)
  std::uint64_t swap = 0;
  std::uint64_t attached = 0;  // nattch
  pid_t creator = 0, last = 0;
  bool marked_for_removal = false;  // IPC_RMID done: gone with its last detach
  bool orphan = false;              // no attachment, not marked: stays until ipcrm
};

struct TmpfsFile {
  std::string path;
  std::string mount;  // the tmpfs it is on
  uid_t uid = 0;
  std::uint64_t size = 0;
  std::uint64_t allocated = 0;  // st_blocks * 512: what it costs in Shmem
  std::int64_t age_s = 0;       // since its last change
  std::vector<Holder> holders;
  bool orphan = false;  // in /dev/shm, and no process holds or maps it
};

struct TmpfsMount {
  std::string path;
  std::uint64_t size = 0;  // its size limit
  std::uint64_t used = 0;  // allocated on it, unlinked-but-open files included
};

struct ShmReport {
  std::vector<SysvSegment> sysv;
  std::vector<TmpfsFile> files;
  std::vector<TmpfsMount> mounts;
  std::vector<MemfdInfo> memfds;
  std::uint64_t memfd_allocated = 0;
  std::uint64_t shmem = 0;   // /proc/meminfo Shmem, bytes
  std::uint64_t shmmax = 0;  // kernel.shmmax, bytes
  std::uint64_t shmall = 0;  // kernel.shmall, pages
  std::uint64_t shmmni = 0;  // kernel.shmmni, segments
  std::uint64_t page_size = 0;
  std::size_t unreadable = 0;  // processes whose fds or maps this user could not read
};

// `max_files` bounds the walk of each tmpfs mount.
ShmReport scan_shm(std::size_t max_files = 100000);

}  // namespace shmfd::ctl
