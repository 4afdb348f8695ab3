#include "client_state.hpp"

#include <sys/types.h>

#include <fstream>

namespace shmfd::broker {

namespace {

// The client's command: its comm, which the kernel cuts to 15 characters, or, when it was cut,
// the name of the program it ran (argv[0] without its directory) if that begins with the comm
// ("shmfd-dds-bridge", not "shmfd-dds-bridg"). Both are the client's to set; neither is trusted.
std::string command_of(pid_t pid) {
  constexpr std::size_t kCommMax = 15, kMax = 64;
  const std::string proc = "/proc/" + std::to_string(pid);
  std::string comm;
  std::ifstream comm_file(proc + "/comm");
  std::getline(comm_file, comm);
  if (comm.size() < kCommMax) return comm;
  std::ifstream cmdline_file(proc + "/cmdline", std::ios::binary);
  std::string argv0;
  std::getline(cmdline_file, argv0, '\0');
  if (const auto slash = argv0.rfind('/'); slash != std::string::npos) argv0.erase(0, slash + 1);
  if (argv0.size() > comm.size() && argv0.compare(0, comm.size(), comm) == 0) {
    return argv0.substr(0, kMax);
  }
  return comm;
}

}  // namespace

ClientState::ClientState(std::uint64_t client_id, const PeerIdentity& who, const Limits& limits,
                         const Logger& log, Wakeups& wakeups)
    : id(client_id),
      credentials(who.credentials),
      identity{who.credentials.uid, who.groups},
      outbox(*this, limits, log, wakeups) {
  command = command_of(credentials.pid);
}

std::string ClientState::describe() const {
  return "client " + std::to_string(id) + " (pid " + std::to_string(credentials.pid) + ", uid " +
         std::to_string(credentials.uid) + (name.empty() ? std::string() : ", '" + name + "'") +
         ")";
}

}  // namespace shmfd::broker
