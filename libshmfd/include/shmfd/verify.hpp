/// @file
/// Verification of an fd received from someone else. Never trust a peer's word for what an fd
/// is: a pipe or socket would block the mapper, a regular file or an unsealed memfd can be
/// truncated under a reader (SIGBUS) or rewritten after it was checked. Both functions are
/// thread-safe.
#pragma once

#include <cstdint>

#include "shmfd/error.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/unique_fd.hpp"

namespace shmfd {

/// What verify_buffer() found out about an fd.
struct VerifiedBuffer {
  std::uint64_t size = 0;       ///< bytes, fixed forever by the seals
  unsigned seals = 0;           ///< F_SEAL_* bits as the kernel reports them
  bool huge_pages = false;      ///< backed by hugetlbfs
  std::uint64_t page_size = 0;  ///< st_blksize: 4096, or the huge page size
};

/// Checks that `fd` is a memfd (Errc::not_memfd otherwise: pipes, sockets, regular and tmpfs
/// files, devices such as /dev/zero, eventfds, ...), that it can be mapped read-only
/// (Errc::not_readable for O_WRONLY and O_PATH fds), that it carries the seals `level` needs
/// (Errc::missing_seals), and that it holds at least `extent` bytes (Errc::buffer_too_small).
Result<VerifiedBuffer> verify_buffer(int fd, Guarantee level, std::uint64_t extent);

/// A new, read-only open file description of the same memfd (through /proc/self/fd). The broker
/// forwards this instead of the producer's own fd: a consumer's fd then cannot write whatever
/// the seals, and shares no status flags (O_NONBLOCK, offset) with the producer's.
Result<UniqueFd> reopen_read_only(int fd);

}  // namespace shmfd
