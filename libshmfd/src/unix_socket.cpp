#include "shmfd/wire/unix_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

namespace shmfd {
namespace {

Result<sockaddr_un> make_address(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return fail_errno(ENAMETOOLONG, "socket path \"" + path + "\" (" + std::to_string(path.size()) +
                                        " bytes; 1 to " +
                                        std::to_string(sizeof(addr.sun_path) - 1) + " allowed)");
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return addr;
}

Result<UniqueFd> new_socket() {
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno(errno, "socket(AF_UNIX, SOCK_SEQPACKET)");
  return fd;
}

int connect_to(int fd, const sockaddr_un& addr) {
  return retry_eintr(
      [&] { return ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)); });
}

// What is at `path` now: nothing, a live listener, a stale socket file, or something else.
enum class Occupant { none, live, stale, not_a_socket };

Occupant occupant(const std::string& path, const sockaddr_un& addr) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return Occupant::none;
  if (!S_ISSOCK(st.st_mode)) return Occupant::not_a_socket;
  auto probe = new_socket();
  if (!probe) return Occupant::live;  // cannot tell: leave it alone
  return connect_to(probe->get(), addr) == 0 || errno != ECONNREFUSED ? Occupant::live
                                                                      : Occupant::stale;
}

}  // namespace

Result<UniqueFd> listen_seqpacket(const std::string& path, ListenOptions options) {
  auto addr = make_address(path);
  if (!addr) return fail(std::move(addr.error()));
  const Occupant found = occupant(path, *addr);
  switch (found) {
    case Occupant::live:
      return fail_errno(EADDRINUSE, "listen on " + path + ": another process is already listening");
    case Occupant::not_a_socket:
      return fail_errno(EEXIST, "listen on " + path + ": the path exists and is not a socket");
    case Occupant::none:
    case Occupant::stale:
      break;  // a stale file is replaced below
  }

  // Bound under a temporary name and renamed into place, so that the path never names a
  // socket that does not listen yet. A path too long for that suffix (the limit is the
  // user's path, not ours) is bound directly, the stale file removed first.
  std::string temp = path + ".new." + std::to_string(::getpid());
  const bool direct = temp.size() >= sizeof(sockaddr_un::sun_path);
  if (direct) {
    temp = path;
    if (found == Occupant::stale) ::unlink(path.c_str());
  }
  auto temp_addr = make_address(temp);
  if (!temp_addr) return fail(std::move(temp_addr.error()));
  auto fd = new_socket();
  if (!fd) return fd;
  if (!direct) ::unlink(temp.c_str());  // left over from a crash of this very pid number
  if (::bind(fd->get(), reinterpret_cast<const sockaddr*>(&*temp_addr), sizeof(*temp_addr)) != 0) {
    return fail_errno(errno, "bind(" + temp + ")");
  }
  const auto cleanup_error = [&](const std::string& what) {
    const int err = errno;
    ::unlink(temp.c_str());
    return fail_errno(err, what);
  };
  if (::chmod(temp.c_str(), options.mode) != 0) return cleanup_error("chmod(" + temp + ")");
  if (::listen(fd->get(), options.backlog) != 0) return cleanup_error("listen(" + temp + ")");
  if (!direct && ::rename(temp.c_str(), path.c_str()) != 0) {
    return cleanup_error("rename(" + temp + ", " + path + ")");
  }
  return fd;
}

Result<UniqueFd> connect_seqpacket(const std::string& path) {
  auto addr = make_address(path);
  if (!addr) return fail(std::move(addr.error()));
  auto fd = new_socket();
  if (!fd) return fd;
  if (connect_to(fd->get(), *addr) != 0) return fail_errno(errno, "connect(" + path + ")");
  return fd;
}

}  // namespace shmfd
