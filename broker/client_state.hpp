// What the router knows of one client: who it is, what it produces and subscribes to, what it
// is charged for, and its outbox. No socket: the session (session.hpp) owns that, and the
// router's unit tests make ClientStates without one.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "outbox.hpp"
#include "policy.hpp"
#include "registry.hpp"
#include "shmfd/wire/peer_credentials.hpp"

namespace shmfd::broker {

struct ClientState {
  ClientState(std::uint64_t client_id, const PeerIdentity& who, const Limits& limits,
              const Logger& log, Wakeups& wakeups);
  ClientState(const ClientState&) = delete;
  ClientState& operator=(const ClientState&) = delete;

  std::string describe() const;  // "client 3 (pid 1234, uid 0, 'cam')"

  const std::uint64_t id;
  const PeerCredentials credentials;
  const Identity identity;  // uid and every group, for the policy
  std::string name;         // from Hello, made printable
  std::string command;      // /proc/PID/comm at connect
  const std::chrono::steady_clock::time_point connected_at = std::chrono::steady_clock::now();
  const AccountPtr account = std::make_shared<Account>();

  // Active subscriptions, and unsubscribed ones whose held frames are not all released yet
  // (Subscription::topic == nullptr): those only take Releases.
  std::map<std::string, std::unique_ptr<Subscription>, std::less<>> subscriptions;
  std::set<Topic*> produced;
  std::map<std::uint32_t, PoolPtr> pools;  // registered by this client as producer
  // Version 6: frames in pool slots sent to it in Requests and Responses, by the number the
  // broker gave each (the frame's sequence), until it releases them (a Release with no topic);
  // and the pools for calls attached to it, whose `attached` lists it until it leaves.
  std::map<std::uint64_t, InFlight> call_frames;
  std::uint64_t call_frames_sent = 0;
  std::vector<std::weak_ptr<PoolRecord>> call_pools_attached;
  Outbox outbox;
  // Protocol version 3 with channels: the client's doorbell, rung after each message sent to
  // it (session.cpp).
  bool channels = false;
  std::uint32_t version = 0;  // the protocol version of the connection (Welcome's)
  std::optional<OwnBell> bell;
  // Whether the peer has hung up and left nothing unread, though the session has not read
  // its end of file yet (set by the session; unset in tests).
  std::function<bool()> hung_up;
};

}  // namespace shmfd::broker
