#include "options.hpp"

#include <cstdio>
#include <limits>

#include "shmfd/protocol.hpp"
#include "shmfd/wire/parse.hpp"

namespace shmfd::broker {

std::string usage(const std::string& program) {
  const Limits d;
  return "Usage: " + program + R"( [options]

Routes sealed memfd frames from producers to consumers by topic, verifying every fd and
layout before a consumer sees it.

  --socket PATH              listening socket (default: )" +
         default_socket_rule(29) + ";\n" + std::string(29, ' ') + "here " + default_socket_path() +
         R"()
  --socket-mode MODE         octal mode of the socket file (default: 0660)
  --policy FILE              who may publish, subscribe, introspect (default: only root
                             and the broker's own uid may connect; see docs/security.md)
  --log-level LEVEL          error, warn, info or debug (default: info)
  --keep-last-frame          give late subscribers the topic's latest frame
  --max-clients N            (default: )" +
         std::to_string(d.max_clients) + R"()
  --max-topics N             (default: )" +
         std::to_string(d.max_topics) + R"()
  --max-subscriptions N      per client (default: )" +
         std::to_string(d.max_subscriptions_per_client) + R"()
  --max-message-bytes N      largest message accepted (default: )" +
         std::to_string(d.max_message_bytes) + R"()
  --max-queued-fds N         frames queued in the broker per client (default: )" +
         std::to_string(d.max_queued_fds_per_client) + R"()
  --default-queue-depth N    for subscribers that ask for 0 (default: )" +
         std::to_string(d.default_queue_depth) + R"()
  --max-queue-depth N        cap on a subscriber's queue depth (default: )" +
         std::to_string(d.max_queue_depth) + R"()
  --max-errors N             refused requests before a client is disconnected (default: )" +
         std::to_string(d.max_errors_per_client) + R"()
  --max-pools N              pools per producer (default: )" +
         std::to_string(d.max_pools_per_client) + R"()
  --max-pinned-bytes N       bytes of pools and queued frames the broker holds from one
                             client (default: )" +
         std::to_string(d.max_pinned_bytes) + R"()
  --max-slots-held N         pool slots one consumer may hold unreleased (default: )" +
         std::to_string(d.max_slots_held) + R"()
  --max-queued-messages N    replies waiting for a client that does not read them before
                             it is disconnected (default: )" +
         std::to_string(d.max_pending_replies) + R"()
  --max-message-rate N       messages per second the broker reads from one client; the
                             rest wait in its socket (0: no limit; default: )" +
         std::to_string(d.max_message_rate) + R"()
  --publish-window N         frames with an fd a producer may have sent and the broker not
                             yet read (default: )" +
         std::to_string(d.publish_window) + R"()
  --max-pool-slots N         slots per pool (default: )" +
         std::to_string(d.max_pool_slots) + R"()
  --hold-deadline-ms N       report a consumer holding a pool slot, or a frame of a
                             block-producer subscription, longer (0: never; default: )" +
         std::to_string(d.hold_deadline_ms) + R"()
  --stuck-policy P           what else befalls it: log (nothing), pool-dry (default: it is
                             disconnected if it is a drop-oldest subscriber holding a slot
                             of a pool left with no free slot), always (disconnected)
  --disconnect-stuck         the same as --stuck-policy always
  --max-calls-in-flight N    calls one caller may have in flight, and one server of a
                             service (default: )" +
         std::to_string(d.max_calls_in_flight) + R"()
  --max-call-deadline-ms N   the longest deadline a call may have; a call that names none
                             gets it (default: )" +
         std::to_string(d.max_call_deadline_ms) + R"()
  --hello-timeout-ms N       close connections that say no Hello in time (default: )" +
         std::to_string(d.hello_timeout_ms) + R"()
  --help                     this text

Stops cleanly on SIGINT or SIGTERM, removing its socket file. SIGHUP reloads the --policy
file (a policy with a mistake is reported and the one in force kept). A second broker on the
same socket path is refused: each holds PATH.lock while it runs.

Under systemd (shmfd-broker.socket and shmfd-broker.service) it takes the listening socket
systemd passes instead of --socket, reports readiness with sd_notify, and leaves the socket
file to systemd. Clients may connect before it runs; systemd starts it on the first one.
)";
}

Result<std::optional<Options>> parse_options(const std::vector<std::string>& args) {
  Options o;
  o.socket_path = default_socket_path();
  constexpr std::uint64_t kBig = 1U << 30;
  for (std::size_t i = 1; i < args.size(); ++i) {
    const std::string& flag = args[i];
    if (flag == "--help" || flag == "-h") {
      std::fputs(usage("shmfd-broker").c_str(), stdout);
      return std::optional<Options>();
    }
    if (flag == "--keep-last-frame") {
      o.keep_last_frame = true;
      continue;
    }
    if (flag == "--disconnect-stuck") {
      o.limits.stuck = StuckPolicy::always;
      continue;
    }
    if (i + 1 >= args.size()) {
      return fail(Errc::invalid_configuration,
                  "unknown option or missing value: " + flag + " (see --help)");
    }
    const std::string& value = args[++i];
    const auto number = [&](std::uint64_t min, std::uint64_t max) {
      return parse_number(flag, value, min, max);
    };
    Result<std::uint64_t> n = std::uint64_t{0};
    if (flag == "--socket") {
      o.socket_path = value;
    } else if (flag == "--policy") {
      o.policy_path = value;
    } else if (flag == "--socket-mode") {
      n = parse_number(flag, value, 0, 0777, 8);
      if (n) o.socket_mode = static_cast<mode_t>(*n);
    } else if (flag == "--log-level") {
      if (value == "error")
        o.log_level = LogLevel::error;
      else if (value == "warn")
        o.log_level = LogLevel::warn;
      else if (value == "info")
        o.log_level = LogLevel::info;
      else if (value == "debug")
        o.log_level = LogLevel::debug;
      else
        return fail(Errc::invalid_configuration,
                    "--log-level: '" + value + "' is not error, warn, info or debug");
    } else if (flag == "--stuck-policy") {
      if (value == "log")
        o.limits.stuck = StuckPolicy::log;
      else if (value == "pool-dry")
        o.limits.stuck = StuckPolicy::pool_dry;
      else if (value == "always")
        o.limits.stuck = StuckPolicy::always;
      else
        return fail(Errc::invalid_configuration,
                    "--stuck-policy: '" + value + "' is not log, pool-dry or always");
    } else if (flag == "--max-clients") {
      if ((n = number(1, kBig))) o.limits.max_clients = *n;
    } else if (flag == "--max-topics") {
      if ((n = number(1, kBig))) o.limits.max_topics = *n;
    } else if (flag == "--max-subscriptions") {
      if ((n = number(1, kBig))) o.limits.max_subscriptions_per_client = *n;
    } else if (flag == "--max-message-bytes") {
      if ((n = number(256, 16U << 20))) o.limits.max_message_bytes = *n;
    } else if (flag == "--max-queued-fds") {
      if ((n = number(1, kBig))) o.limits.max_queued_fds_per_client = *n;
    } else if (flag == "--default-queue-depth") {
      if ((n = number(1, 1U << 16))) o.limits.default_queue_depth = static_cast<std::uint32_t>(*n);
    } else if (flag == "--max-queue-depth") {
      if ((n = number(1, 1U << 16))) o.limits.max_queue_depth = static_cast<std::uint32_t>(*n);
    } else if (flag == "--max-errors") {
      if ((n = number(0, kBig))) o.limits.max_errors_per_client = *n;
    } else if (flag == "--max-pools") {
      if ((n = number(0, 1024))) o.limits.max_pools_per_client = *n;
    } else if (flag == "--max-pinned-bytes") {
      if ((n = number(4096, 1ULL << 50))) o.limits.max_pinned_bytes = *n;
    } else if (flag == "--max-slots-held") {
      if ((n = number(1, 1U << 20))) o.limits.max_slots_held = static_cast<std::uint32_t>(*n);
    } else if (flag == "--max-queued-messages") {
      if ((n = number(1, kBig))) o.limits.max_pending_replies = *n;
    } else if (flag == "--publish-window") {
      if ((n = number(2, 1024))) o.limits.publish_window = static_cast<std::uint32_t>(*n);
    } else if (flag == "--max-message-rate") {
      if ((n = number(0, kBig))) o.limits.max_message_rate = *n;
    } else if (flag == "--max-pool-slots") {
      if ((n = number(1, 1U << 16))) o.limits.max_pool_slots = static_cast<std::uint32_t>(*n);
    } else if (flag == "--max-calls-in-flight") {
      if ((n = number(1, 1024))) o.limits.max_calls_in_flight = static_cast<std::uint32_t>(*n);
    } else if (flag == "--max-call-deadline-ms") {
      if ((n = number(1, 1ULL << 32))) o.limits.max_call_deadline_ms = *n;
    } else if (flag == "--hello-timeout-ms") {
      if ((n = number(1, 1ULL << 40))) o.limits.hello_timeout_ms = *n;
    } else if (flag == "--hold-deadline-ms") {
      if ((n = number(0, 1ULL << 40))) o.limits.hold_deadline_ms = *n;
    } else {
      return fail(Errc::invalid_configuration, "unknown option: " + flag + " (see --help)");
    }
    if (!n) return fail(std::move(n.error()));
  }
  if (o.limits.default_queue_depth > o.limits.max_queue_depth) {
    o.limits.default_queue_depth = o.limits.max_queue_depth;
  }
  return std::optional<Options>(std::move(o));
}

}  // namespace shmfd::broker
