// Who is at the other end of a connected AF_UNIX socket, as the kernel recorded it at
// connect(2): SO_PEERCRED for the pid, uid and primary gid, SO_PEERGROUPS (Linux 4.13) for the
// supplementary groups. The peer cannot forge either.
#pragma once

#include <sys/types.h>

#include <vector>

#include "shmfd/error.hpp"

namespace shmfd {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

Result<PeerCredentials> peer_credentials(int socket);

// The credentials and every group of the peer: what an access policy judges.
struct PeerIdentity {
  PeerCredentials credentials;
  std::vector<gid_t> groups;  // the primary group first, then the supplementary ones
};

// Fails only when SO_PEERCRED does; a kernel without SO_PEERGROUPS gives the primary group.
Result<PeerIdentity> peer_identity(int socket);

}  // namespace shmfd
