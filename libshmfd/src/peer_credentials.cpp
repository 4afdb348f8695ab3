#include "shmfd/peer_credentials.hpp"

#include <sys/socket.h>

#include <string>

namespace shmfd {

Result<PeerCredentials> peer_credentials(int socket) {
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(socket, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return fail_errno(errno, "getsockopt(socket " + std::to_string(socket) + ", SO_PEERCRED)");
  }
  return PeerCredentials{cred.pid, cred.uid, cred.gid};
}

}  // namespace shmfd
