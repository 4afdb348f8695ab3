// Services (protocol version 6, docs/PROTOCOL.md section 16): servers offer named services,
// callers call them with a frame, and each call goes to the server of its service with the
// fewest calls in flight (ties in turn). The broker verifies request and response frames as it
// verifies a Publish, gives each call an id of its own toward the server, and ends every call
// it routed: with the server's last response, or with a named failure (no server, busy, its
// deadline, its server gone, cancelled) the moment it happens. Like the router, it only posts
// to outboxes and returns refusals as values: no socket, no session.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "client_state.hpp"
#include "closer.hpp"
#include "log.hpp"
#include "options.hpp"
#include "refusal.hpp"
#include "registry.hpp"
#include "shmfd/protocol.hpp"
#include "shmfd/unique_fd.hpp"

namespace shmfd::broker {

class Services {
 public:
  using Clock = std::chrono::steady_clock;

  Services(const Options& options, const Logger& log, CloserPtr closer);

  Outcome offer(ClientState& server, proto::Offer::Reader offer);
  Outcome withdraw(ClientState& server, proto::Withdraw::Reader withdraw);
  Outcome call(ClientState& caller, proto::Call::Reader call, std::vector<UniqueFd>& fds);
  Outcome respond(ClientState& server, proto::Respond::Reader respond, std::vector<UniqueFd>& fds);
  Outcome cancel_call(ClientState& caller, proto::CancelCall::Reader cancel);

  // The client has gone: its calls' servers get Cancel (callerGone), its offers' calls fail
  // with serverGone, and nothing of it is kept.
  void leave(ClientState& client);
  // Ends every call whose deadline is not after `now` (deadline to the caller, Cancel to the
  // server).
  void expire(Clock::time_point now);
  std::optional<Clock::time_point> next_deadline() const;
  // A server whose responses fill a caller's queue is not read until the caller takes them
  // (backpressure, as for a block-producer subscriber).
  bool must_hold(const ClientState& server) const { return held_.count(server.id) != 0; }
  // Ends an event: servers held for a caller that has read enough are read again.
  void settle(Wakeups& wakeups);

  // For shmfdctl (introspection.cpp).
  struct ServerView {
    std::uint64_t client = 0;
    std::uint32_t max_in_flight = 0;
    std::uint32_t in_flight = 0;
    std::uint64_t calls = 0;  // routed to it
  };
  struct ServiceView {
    std::string name;
    std::vector<ServerView> servers;
    std::size_t waiting = 0;
    std::uint64_t calls = 0;                // received
    std::uint64_t failed = 0;               // ended by a failure, of any kind
    std::vector<std::uint64_t> latency_us;  // of the last calls answered, oldest first
  };
  std::vector<ServiceView> view() const;
  // Nothing kept: no service, no call, nothing remembered of any client (once all have left).
  bool empty() const {
    return services_.empty() && calls_.empty() && by_caller_.empty() && caller_in_flight_.empty() &&
           deadlines_.empty() && ended_.empty() && held_.empty();
  }
  // Responses to calls that had ended (crossing a Cancel: legal, dropped) and to calls never
  // sent to their server (refused, a strike).
  std::uint64_t late_responses() const { return late_responses_; }
  std::uint64_t forged_responses() const { return forged_responses_; }

 private:
  struct Service;
  struct Server {
    ClientState* client = nullptr;
    Service* service = nullptr;
    std::uint32_t max_in_flight = 0;
    std::uint32_t in_flight = 0;
    std::uint64_t calls = 0;
  };
  struct Service {
    std::string name;
    std::vector<std::unique_ptr<Server>> servers;  // in the order they offered
    std::size_t turn = 0;                          // where the next tie is broken
    std::deque<std::uint64_t> waiting;             // calls with whenBusy = wait, oldest first
    std::uint64_t calls = 0;
    std::uint64_t failed = 0;
    std::deque<std::uint64_t> latency_us;  // the last kLatencyWindow answered calls
  };
  struct Call {
    std::uint64_t id = 0;           // the broker's, toward the server
    std::uint64_t caller_call = 0;  // the caller's
    ClientState* caller = nullptr;
    Service* service = nullptr;
    Server* server = nullptr;  // null while waiting
    Clock::time_point received;
    Clock::time_point deadline;
    FramePtr request;  // until it is sent to a server (null: a call without a frame)
  };

  // call() and respond() but for giving back a slot they did not take.
  Outcome place_call(ClientState& caller, proto::Call::Reader call, std::vector<UniqueFd>& fds);
  Outcome answer(ClientState& server, proto::Respond::Reader respond, std::vector<UniqueFd>& fds);
  // A SlotFree for the slot of the sender's pool that `frame` names, unless the broker holds it:
  // what a client gets back for a slot sent in a message the broker did not take.
  static void give_back(ClientState& sender, bool has_frame, proto::Frame::Reader frame);
  Service* find(const std::string& name);
  // `client`'s offer of `s` (null: none, or no such service).
  static Server* server_of(Service* s, const ClientState& client);
  // Routes `call` (not yet at a server): true when a server took it.
  bool dispatch(Call& call);
  Server* pick(Service& service);
  // Sends waiting calls of `service` to servers with room.
  void drain_waiting(Service& service);
  // Ends call `id`: the caller gets `error` (CallError none: nothing, its last response went
  // already); the server, if any, is told with `cancel` when set.
  void end(std::uint64_t id, proto::CallError error, const std::string& message,
           std::optional<proto::CancelReason> cancel);
  // Removes `server` from its service: its calls fail with serverGone; a service left with no
  // server fails its waiting calls with noServer and is forgotten.
  void remove_server(Server* server, const std::string& why);
  // The frame of a Call or Respond: verified as a Publish's; null when it has none.
  tl::expected<FramePtr, Refusal> take_frame(ClientState& sender, bool has_frame,
                                             proto::Frame::Reader frame, std::vector<UniqueFd>& fds,
                                             const std::string& service, std::uint64_t call);
  // The same for a frame in a slot of the sender's pool for calls (section 16).
  tl::expected<FramePtr, Refusal> take_slot(ClientState& sender, proto::Frame::Reader frame,
                                            std::vector<UniqueFd>& fds, const std::string& service,
                                            std::uint64_t call);
  // Fills `out` for `frame` and posts `message` to `to`: with the frame's fd, or, for a slot,
  // after its pool's PoolAttach and with the frame counted as held by `to` (call_frames).
  static void post_with_frame(ClientState& to, capnp::MessageBuilder& message,
                              proto::Frame::Builder out, FramePtr frame);
  void post_response(ClientState& caller, std::uint64_t caller_call, bool last,
                     const FramePtr& frame, proto::CallError error, const std::string& message);
  void remember_ended(std::uint64_t server_client, std::uint64_t id);

  const Options& options_;
  const Logger& log_;
  CloserPtr closer_;
  std::map<std::string, std::unique_ptr<Service>, std::less<>> services_;
  std::map<std::uint64_t, Call> calls_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> by_caller_;
  std::map<std::uint64_t, std::uint32_t> caller_in_flight_;  // by the caller's client id
  std::set<std::pair<Clock::time_point, std::uint64_t>> deadlines_;
  // Calls that ended while at a server, per server client: a Respond to one is dropped, not
  // refused. Bounded: the oldest are forgotten first.
  std::map<std::uint64_t, std::set<std::uint64_t>> ended_;
  std::map<std::uint64_t, ClientState*> held_;  // server client id -> the caller it waits for
  std::uint64_t next_call_ = 1;
  std::uint64_t late_responses_ = 0;
  std::uint64_t forged_responses_ = 0;
};

}  // namespace shmfd::broker
