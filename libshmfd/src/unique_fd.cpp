#include "shmfd/unique_fd.hpp"

#include <fcntl.h>
#include <unistd.h>

namespace shmfd {

void UniqueFd::reset(int fd) noexcept {
  if (fd_ >= 0 && fd_ != fd) {
    // Never retried: Linux releases the fd even when close() reports EINTR (close(2), NOTES).
    ::close(fd_);
  }
  fd_ = fd;
}

Result<UniqueFd> UniqueFd::duplicate() const {
  int fd = ::fcntl(fd_, F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return fail_errno(errno, "fcntl(" + std::to_string(fd_) + ", F_DUPFD_CLOEXEC)");
  return UniqueFd(fd);
}

}  // namespace shmfd
