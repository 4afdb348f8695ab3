// BrokerState for shmfdctl: every topic with its subscribers, every client, every pool with
// who holds its slots, every service with its servers and latency. Reads the registry and the
// clients; changes nothing.
#pragma once

#include <cstdint>
#include <map>

#include "registry.hpp"
#include "services.hpp"
#include "shmfd/wire/protocol.hpp"

namespace shmfd::broker {

struct ClientState;

void fill_state(proto::BrokerState::Builder state, const Registry& registry,
                const Services& services, const std::map<std::uint64_t, ClientState*>& clients);

}  // namespace shmfd::broker
