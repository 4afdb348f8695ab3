// AF_UNIX SOCK_SEQPACKET sockets bound to a path: what a broker listens on and clients connect
// to. Listening replaces a stale socket file left by a dead process, but never a live listener
// and never a file that is not a socket.
#pragma once

#include <sys/types.h>

#include <string>

#include "shmfd/error.hpp"
#include "shmfd/unique_fd.hpp"

namespace shmfd {

struct ListenOptions {
  mode_t mode = 0660;  // of the socket file: who may connect
  int backlog = 128;
};

// Binds and listens on `path`, close-on-exec. The socket file appears with `mode` already set
// (bound under a temporary name, chmod-ed, then renamed into place). Errors: a live listener
// on `path` (EADDRINUSE, "already listening"), `path` exists and is not a socket (EEXIST), the
// path is longer than sun_path allows (ENAMETOOLONG), and the OS errors of each step.
Result<UniqueFd> listen_seqpacket(const std::string& path, ListenOptions options = {});

// Connects to a SOCK_SEQPACKET listener at `path`, close-on-exec, blocking.
Result<UniqueFd> connect_seqpacket(const std::string& path);

}  // namespace shmfd
