// Credentials of the process at the other end of a connected AF_UNIX socket, as the kernel
// recorded them at connect(2) (SO_PEERCRED): they cannot be forged by the peer.
#pragma once

#include <sys/types.h>

#include "shmfd/error.hpp"

namespace shmfd {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

Result<PeerCredentials> peer_credentials(int socket);

}  // namespace shmfd
