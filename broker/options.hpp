// shmfd-broker's configuration: every limit has a default and a command-line flag.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "shmfd/error.hpp"
#include "shmfd/wire/message_buffer.hpp"

namespace shmfd::broker {

enum class LogLevel { error, warn, info, debug };

// What happens to a consumer past the hold deadline (always logged once per frame).
enum class StuckPolicy {
  log,  // nothing more
  // Disconnected while it holds back someone who did not choose to wait for it: a drop-oldest
  // subscriber holding a slot of a pool that has had no free slot for a quarter of the
  // deadline. A lone drop-oldest subscriber cannot empty a pool (its pool window leaves a
  // slot), so this cuts off only consumers stuck together, or one holding a tiny pool.
  pool_dry,
  always,  // disconnected, whatever it holds (a block-producer subscriber too)
};

struct Limits {
  std::size_t max_clients = 256;
  std::size_t max_topics = 256;
  std::size_t max_subscriptions_per_client = 64;
  std::size_t max_message_bytes = kMaxMessageBytes;
  // Frames the broker may hold queued for one client, summed over its subscriptions: each is
  // an open fd in the broker.
  std::size_t max_queued_fds_per_client = 64;
  std::uint32_t default_queue_depth = 4;
  std::uint32_t max_queue_depth = 32;
  // Refused requests a client may make before it is disconnected.
  std::size_t max_errors_per_client = 16;
  // Replies waiting for a client that does not read them before it is disconnected.
  std::size_t max_pending_replies = 256;
  std::size_t max_pools_per_client = 16;
  // Bytes of the buffers the broker holds from one client: its registered pools and its fresh
  // frames still queued anywhere. They stay in memory as long as the broker holds them, even
  // after the client has gone, so one client cannot make the broker pin the machine's memory.
  std::uint64_t max_pinned_bytes = std::uint64_t{2} << 30;
  // Pool slots one consumer may hold (delivered, not yet released) over all its subscriptions.
  // At the limit the broker stops delivering pool frames to it until it releases one.
  std::uint32_t max_slots_held = 256;
  // Messages the broker reads from one client per second (bursts of up to a second's worth
  // pass at once); past it, the client's messages wait in its socket, and its sends block like
  // any other backpressure. Nothing is refused or lost. 0: unlimited.
  std::uint64_t max_message_rate = 100000;
  // Fd-carrying Publishes a producer may have sent that the broker has not yet read (and
  // acknowledged with Credit): what bounds a producer's frames in flight in the kernel when a
  // block-producer subscriber or the message rate holds it back.
  std::uint32_t publish_window = 8;
  std::uint32_t max_pool_slots = 1024;
  // A consumer holding a pool slot, or a frame of a block-producer subscription, longer than
  // this is reported (0: never), and disconnected as `stuck` says.
  std::uint64_t hold_deadline_ms = 5000;
  // A connection that has not said Hello by then is closed (it holds a client slot and an fd).
  std::uint64_t hello_timeout_ms = 5000;
  StuckPolicy stuck = StuckPolicy::pool_dry;
  // Services (version 6): calls one caller may have in flight, and one server per service
  // (each is an fd the broker may hold for it: a request not yet sent, a response not yet read).
  std::uint32_t max_calls_in_flight = 8;
  // The longest deadline a call may ask for; a call that asks for none gets this one.
  std::uint64_t max_call_deadline_ms = 60000;
};

class Policy;

struct Options {
  std::string socket_path;
  // Who may publish, subscribe and introspect (policy.hpp). Without one, only root and the
  // broker's own uid may connect.
  std::string policy_path;
  std::shared_ptr<const Policy> policy;
  mode_t socket_mode = 0660;
  LogLevel log_level = LogLevel::info;
  bool keep_last_frame = false;  // deliver a topic's latest frame to late subscribers
  Limits limits;
};

std::string usage(const std::string& program);

// Parses argv. Returns nullopt after printing --help; errors name the flag and the value.
Result<std::optional<Options>> parse_options(const std::vector<std::string>& args);

}  // namespace shmfd::broker
