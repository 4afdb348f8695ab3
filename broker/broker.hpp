// shmfd-broker's core: accepts clients on a SOCK_SEQPACKET listener and owns the topic
// registry. Everything runs on one io_context thread; each client is a pair of coroutines
// (client.hpp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include <asio/io_context.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/steady_timer.hpp>

#include "closer.hpp"
#include "log.hpp"
#include "options.hpp"
#include "shmfd/unique_fd.hpp"
#include "topic.hpp"

namespace shmfd::broker {

class Client;

// Connections from root or the broker's own uid admitted beyond --max-clients, so that a full
// broker never locks out its operator (shmfdctl).
inline constexpr std::size_t kOperatorReserve = 4;

struct Stats {
  std::size_t clients = 0;
  std::size_t topics = 0;
};

class Broker {
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

  Stats stats() const { return {clients_.size(), topics_.size()}; }
  const Options& options() const { return options_; }
  // Replaces the access policy (on SIGHUP). Requests are judged by it from now on; what
  // clients were granted before (subscriptions, topics) stays theirs.
  void set_policy(std::shared_ptr<const Policy> policy) { options_.policy = std::move(policy); }
  const Logger& log() const { return log_; }
  asio::io_context& io() { return io_; }
  // Closes dropped frames and pools off the event loop (closer.hpp).
  const CloserPtr& closer() const { return closer_; }

  // The topic called `name`, created if needed (Errc::... limit error past max_topics).
  Result<Topic*> topic(const std::string& name);
  Topic* find_topic(const std::string& name);
  // Forgets a topic that has neither producer nor subscribers.
  void release_topic(Topic* topic);
  void remove_client(Client& client);
  std::uint32_t next_pool_id() { return next_pool_id_++; }
  // The whole registry, for shmfdctl.
  void fill_state(proto::BrokerState::Builder state) const;

 private:
  void accept_loop();
  void accept_one();
  void schedule_hold_check();

  asio::io_context& io_;
  CloserPtr closer_ = std::make_shared<Closer>();  // before anything that holds frames
  Options options_;
  Logger log_;
  asio::posix::stream_descriptor listener_;
  bool stopped_ = false;
  std::uint64_t next_client_id_ = 1;
  std::uint32_t next_pool_id_ = 1;  // 0 means "no pool" on the wire
  asio::steady_timer hold_check_;
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
  std::map<std::uint64_t, std::shared_ptr<Client>> clients_;
  std::map<std::string, std::unique_ptr<Topic>, std::less<>> topics_;
};

// Raises RLIMIT_NOFILE's soft limit to the hard limit and lowers max_clients so that every
// client holding its socket, one message's fd in transit and its whole queue of frames still
// fits. Returns a line for the log when it had to lower anything.
std::string fit_limits_to_fd_budget(Limits& limits);

}  // namespace shmfd::broker
