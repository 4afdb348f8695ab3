#include "shmfd/wire/peer_credentials.hpp"

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

Result<PeerIdentity> peer_identity(int socket) {
  auto credentials = peer_credentials(socket);
  if (!credentials) return fail(std::move(credentials.error()));
  PeerIdentity who{*credentials, {credentials->gid}};
  // NGROUPS_MAX is 65536, but a process in more than 64 groups is rare: ask again with the
  // size the kernel reports (ERANGE) rather than allocating for the worst case every time.
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(socket, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
      groups.resize(len / sizeof(gid_t));
      who.groups.insert(who.groups.end(), groups.begin(), groups.end());
      break;
    }
    if (errno != ERANGE) break;
    groups.resize(len / sizeof(gid_t));
  }
  return who;
}

}  // namespace shmfd
