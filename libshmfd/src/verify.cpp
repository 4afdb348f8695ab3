#include "shmfd/verify.hpp"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <array>
#include <string>

namespace shmfd {
namespace {

// What /proc/self/fd/N links to: "/memfd:shmfd:cam0,size=64 (deleted)", "pipe:[1234]",
// "anon_inode:[eventfd]", "/dev/zero". Empty when /proc is not mounted.
std::string fd_target(int fd) {
  std::array<char, 512> buf{};
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf.data(), buf.size() - 1);
  return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
}

std::string file_kind(const struct stat& st) {
  switch (st.st_mode & S_IFMT) {
    case S_IFIFO:
      return "a pipe";
    case S_IFSOCK:
      return "a socket";
    case S_IFDIR:
      return "a directory";
    case S_IFCHR:
      return "a character device";
    case S_IFBLK:
      return "a block device";
    case S_IFLNK:
      return "a symlink";
    case S_IFREG:
      return "a regular file";
    default:
      return "an anonymous kernel object";
  }
}

}  // namespace

Result<VerifiedBuffer> verify_buffer(int fd, Guarantee level, std::uint64_t extent) {
  // The success path is fstat + fstatfs + F_GET_SEALS. /proc/self/fd is read only to name the
  // fd in an error, and to tell "not a memfd" from "missing seals" when the seals are wrong.
  const auto who = [fd] {
    const std::string target = fd_target(fd);
    return "fd " + std::to_string(fd) + (target.empty() ? std::string() : " (" + target + ")");
  };

  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;  // who() reads /proc and may change errno
    return fail_errno(err, "verify " + who() + ": fstat");
  }
  if (!S_ISREG(st.st_mode)) {
    return fail(Errc::not_memfd, who() + " is " + file_kind(st) + ", not a memfd");
  }
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) {
    const int err = errno;
    return fail_errno(err, "verify " + who() + ": fstatfs");
  }
  const bool huge = fs.f_type == static_cast<decltype(fs.f_type)>(HUGETLBFS_MAGIC);
  if (fs.f_type != static_cast<decltype(fs.f_type)>(TMPFS_MAGIC) && !huge) {
    return fail(Errc::not_memfd, who() + " is a regular file on a disk filesystem, not a memfd");
  }
  // A consumer maps what it receives PROT_READ, MAP_SHARED: mmap needs an fd opened for reading
  // (EACCES otherwise), and an O_PATH fd supports neither mmap nor fcntl(F_GET_SEALS) (EBADF).
  const int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) {
    const int err = errno;
    return fail_errno(err, "verify " + who() + ": fcntl(F_GETFL)");
  }
  if ((flags & O_PATH) != 0) {
    return fail(Errc::not_readable,
                who() + " was opened with O_PATH; it cannot be mapped. Send the memfd itself");
  }
  if ((flags & O_ACCMODE) == O_WRONLY) {
    return fail(Errc::not_readable, who() +
                                        " was opened write-only (O_WRONLY); a consumer could not "
                                        "map it read-only. Send an fd opened for reading");
  }
  const int seals = ::fcntl(fd, F_GET_SEALS);
  if (seals < 0) {
    const int err = errno;
    if (err == EINVAL) return fail(Errc::not_memfd, who() + " does not support sealing");
    return fail_errno(err, "verify " + who() + ": fcntl(F_GET_SEALS)");
  }
  const unsigned have = static_cast<unsigned>(seals);
  if (const unsigned missing = missing_seals(level, have); missing != 0) {
    // Every tmpfs file that is not a memfd (shm_open, /dev/shm, O_TMPFILE) is born with
    // F_SEAL_SEAL and can never gain F_SEAL_SHRINK, so it always ends up here.
    const std::string target = fd_target(fd);
    if (st.st_nlink != 0 || (!target.empty() && target.rfind("/memfd:", 0) != 0)) {
      return fail(Errc::not_memfd,
                  who() + " is a file on tmpfs (shm_open or /dev/shm?), not a memfd");
    }
    return fail(Errc::missing_seals, who() + " lacks " + seal_names(missing) + " for the '" +
                                         std::string(to_string(level)) + "' guarantee (it has " +
                                         seal_names(have) + ")");
  }

  const auto size = static_cast<std::uint64_t>(st.st_size);
  if (size < extent) {
    return fail(Errc::buffer_too_small, who() + " holds " + std::to_string(size) +
                                            " bytes but its layout needs " +
                                            std::to_string(extent));
  }
  return VerifiedBuffer{size, have, huge, static_cast<std::uint64_t>(st.st_blksize)};
}

Result<UniqueFd> reopen_read_only(int fd) {
  // Opening /proc/self/fd/N opens the file anew (the magic link resolves to the inode), so the
  // result is a new open file description: O_RDONLY whatever `fd` was, with its own status
  // flags and offset. A memfd's inode is mode 0777 (0666 with MFD_NOEXEC_SEAL), so this works
  // for any uid that holds the fd.
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const int copy = retry_eintr([&] { return ::open(link.c_str(), O_RDONLY | O_CLOEXEC); });
  if (copy < 0 && errno == EACCES) {
    // The open checks the inode's mode against this process: a sender may have taken the
    // read bits away (fchmod) to make a buffer that nobody but itself can reopen.
    return fail(Errc::not_readable, "fd " + std::to_string(fd) +
                                        ": its file mode does not let a reader open it "
                                        "(fchmod took the read permission away)");
  }
  if (copy < 0) return fail_errno(errno, "open(\"" + link + "\", O_RDONLY)");
  return UniqueFd(copy);
}

}  // namespace shmfd
