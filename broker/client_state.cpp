#include "client_state.hpp"

#include <fstream>

namespace shmfd::broker {

ClientState::ClientState(std::uint64_t client_id, const PeerIdentity& who, const Limits& limits,
                         const Logger& log, Wakeups& wakeups)
    : id(client_id),
      credentials(who.credentials),
      identity{who.credentials.uid, who.groups},
      outbox(*this, limits, log, wakeups) {
  std::ifstream comm("/proc/" + std::to_string(credentials.pid) + "/comm");
  std::getline(comm, command);
}

std::string ClientState::describe() const {
  return "client " + std::to_string(id) + " (pid " + std::to_string(credentials.pid) + ", uid " +
         std::to_string(credentials.uid) + (name.empty() ? std::string() : ", '" + name + "'") +
         ")";
}

}  // namespace shmfd::broker
