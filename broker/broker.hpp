// shmfd-broker's core: accepts clients on a SOCK_SEQPACKET listener, owns the registry, the
// router and one session per client, checks holds on a timer, and ends every event by
// flushing what it queued (Wakeups). Everything runs on one io_context thread.
//
//   session --> router --> outbox, registry, access, quota      (introspection reads both)
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include "closer.hpp"
#include "log.hpp"
#include "options.hpp"
#include "outbox.hpp"
#include "registry.hpp"
#include "router.hpp"
#include "session.hpp"
#include "shmfd/unique_fd.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::broker {

// Connections from root or the broker's own uid admitted beyond --max-clients, so that a full
// broker never locks out its operator (shmfdctl).
inline constexpr std::size_t kOperatorReserve = 4;

struct Stats {
  std::size_t clients = 0;
  std::size_t topics = 0;
};

class Broker final : private SessionHost {
 public:
  // `listener` is a listening SOCK_SEQPACKET socket (listen_seqpacket). The effective limits
  // may be lowered so the worst case fits RLIMIT_NOFILE (see fit_limits_to_fd_budget).
  Broker(asio::io_context& io, Options options, UniqueFd listener);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  void start();
  // Closes the listener and every client. Idempotent. Does not remove the socket file.
  void shutdown();

  Stats stats() const { return {sessions_.size(), registry_.topics().size()}; }
  // The services and their calls (version 6), for introspection and tests.
  const Services& services() const { return router_.services(); }
  const Options& options() const override { return options_; }
  // Replaces the access policy (on SIGHUP). Requests are judged by it from now on; what
  // clients were granted before (subscriptions, topics) stays theirs.
  void set_policy(std::shared_ptr<const Policy> policy) { options_.policy = std::move(policy); }
  const Logger& log() const override { return log_; }
  asio::io_context& io() override { return io_; }
  // Topics and their subscribers, for tests (only on the broker's thread).
  const Registry& registry() const { return registry_; }
  // Closes dropped frames and pools off the event loop (closer.hpp).
  const CloserPtr& closer() const { return closer_; }

 private:
  Router& router() override { return router_; }
  Wakeups& wakeups() override { return wakeups_; }
  std::span<std::byte> receive_buffer() override { return receive_buffer_.bytes(); }
  void flush() override;
  void session_closed(std::uint64_t id) override;

  void accept_loop();
  void accept_one();
  void retire_hung_up();
  void schedule_hold_check();

  asio::io_context& io_;
  CloserPtr closer_ = std::make_shared<Closer>();  // before anything that holds frames
  Options options_;
  Logger log_;
  Registry registry_;
  Wakeups wakeups_;
  Router router_;
  MessageBuffer receive_buffer_;
  asio::posix::stream_descriptor listener_;
  bool stopped_ = false;
  bool flushing_ = false;
  // Arms call_deadline_ for the services' next deadline, if it is earlier than the one armed.
  void arm_call_deadline();
  std::uint64_t next_client_id_ = 1;
  asio::steady_timer hold_check_;
  // The earliest deadline of a call in flight (services.hpp), when one is armed.
  asio::steady_timer call_deadline_;
  std::optional<std::chrono::steady_clock::time_point> call_armed_;
  std::unordered_map<std::uint64_t, std::shared_ptr<Session>> sessions_;
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit and lowers max_clients so that every
// client holding its socket, one message's fd in transit and its whole queue of frames still
// fits. Returns a line for the log when it had to lower anything.
std::string fit_limits_to_fd_budget(Limits& limits);

}  // namespace shmfd::broker
