// shmfdctl: what the broker and every process hold, like ipcs for memfds.
//
//   shmfdctl [--socket PATH] [--json] status|topics|clients|pools|services
//   shmfdctl [--socket PATH] top [--interval SECONDS] [--count N]
//   shmfdctl [--json] memfds [PID...]          (works without the broker)
#include <poll.h>
#include <signal.h>
#include <sys/shm.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "machine_view.hpp"
#include "memfds.hpp"
#include "shm.hpp"
#include "shmfd/connection.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/protocol.hpp"
#include "shmfd/wire/parse.hpp"
#include "shmfd/wire/wire.hpp"
#include "table.hpp"

namespace {

using namespace shmfd;
using namespace shmfd::ctl;
using nlohmann::json;

constexpr std::size_t kMaxStateBytes = 4 << 20;

const char* kUsage = R"(Usage: shmfdctl [--socket PATH] [--json] COMMAND
  status               the broker: pid, uptime, topics, clients, pools, bytes pinned
  topics               each topic: kind, producer, frames, bytes, subscribers, drops
  clients              each client: pid, uid, command, role, connected for, bytes pinned
  pools                each pool: slots, slot size, slots held and by whom
  services             each service: its servers and their calls in flight, calls
                       waiting, calls and failures, latency p50/p90/p99/max
  top [--interval S] [--count N]
                       a refreshing view with rates, until q or Ctrl+C
  memfds [PID...]      every memfd (or those of PIDs): size, seals, holders, mappers;
                       works without the broker
  shm [--remove-orphans [--yes]]
                       all shared memory on the machine: System V segments, tmpfs and
                       /dev/shm files, memfds, set against Shmem in /proc/meminfo, with
                       orphans flagged and the command that removes each; kernel.shm*
                       limits; works without the broker. --remove-orphans removes the
                       orphans you own, after asking (--yes: without asking)
exit status: 0 ok, 1 no broker or another failure, 2 usage, 3 permission denied
options:
  --json               machine-readable output
  --socket PATH        the broker's socket (default: )";

// The end of the usage text: the default socket, by rule and where this runs.
std::string usage_end() {
  return default_socket_rule(23) + ";\n" + std::string(23, ' ') + "here " + default_socket_path() +
         ")";
}

[[noreturn]] void die(int code, const std::string& message) {
  std::fprintf(stderr, "shmfdctl: %s\n", message.c_str());
  std::exit(code);
}

// The broker's state as JSON: one reader for every subcommand.
json fetch_state(const std::string& socket) {
  auto conn = Connection::open(socket, "shmfdctl", kMaxStateBytes);
  if (!conn) {
    if (conn.error().is(std::errc::no_such_file_or_directory) ||
        conn.error().is(std::errc::connection_refused)) {
      die(1, "no broker is running at " + socket + " (" + conn.error().message() +
                 "); start shmfd-broker or pass --socket");
    }
    if (conn.error().is(BrokerErrc::permission_denied)) {
      die(3, conn.error().message());
    }
    if (conn.error().is(std::errc::permission_denied)) {
      die(3, "permission denied: cannot connect to " + socket + " (" + conn.error().message() +
                 "); the broker's socket mode and user decide who may");
    }
    die(1, conn.error().message());
  }
  capnp::MallocMessageBuilder request;
  request.initRoot<proto::Message>().initIntrospect();
  if (auto sent = send_message(*conn, request); !sent) die(1, sent.error().message());
  auto reply = conn->receive();
  if (!reply) die(1, reply.error().message());
  json out;
  auto ok = decode_message<proto::Message>(
      conn->message(*reply), [&](proto::Message::Reader m) -> Status {
        if (m.isError()) return fail(broker_error(m.getError()));
        if (!m.isBrokerState())
          return fail(Errc::protocol_violation, "unexpected answer to Introspect");
        auto s = m.getBrokerState();
        out["broker_pid"] = s.getBrokerPid();
        out["uptime_s"] = static_cast<double>(s.getUptimeNs()) / 1e9;
        out["topics"] = json::array();
        for (auto t : s.getTopics()) {
          json subs = json::array();
          for (auto sub : t.getSubscribers()) {
            auto policy = backpressure_from_proto(sub.getBackpressure());
            subs.push_back({{"client", sub.getClient()},
                            {"queue_depth", sub.getQueueDepth()},
                            {"backpressure", policy ? std::string(to_string(*policy)) : "?"},
                            {"queued", sub.getQueued()},
                            {"in_flight", sub.getInFlight()},
                            {"delivered", sub.getDelivered()},
                            {"dropped", sub.getDropped()},
                            {"channel", sub.getChannel()}});
          }
          auto guarantee = guarantee_from_proto(t.getGuarantee());
          auto kind = layout_kind_from_proto(t.getKind());
          out["topics"].push_back(
              {{"name", text_of(t.getName())},
               {"kind", kind ? std::string(to_string(*kind)) : "?"},
               {"guarantee", guarantee ? std::string(to_string(*guarantee)) : "?"},
               {"producer", t.getProducer()},
               {"frames", t.getFrames()},
               {"channel_frames", t.getChannelFrames()},
               {"bytes", t.getBytes()},
               {"subscribers", subs}});
        }
        out["clients"] = json::array();
        for (auto c : s.getClients()) {
          const char* role = c.getProduces() > 0 && c.getSubscribes() > 0 ? "producer+consumer"
                             : c.getProduces() > 0                        ? "producer"
                             : c.getSubscribes() > 0                      ? "consumer"
                                                                          : "idle";
          out["clients"].push_back({{"id", c.getId()},
                                    {"pid", c.getPid()},
                                    {"uid", c.getUid()},
                                    {"gid", c.getGid()},
                                    {"name", text_of(c.getName())},
                                    {"command", text_of(c.getCommand())},
                                    {"role", role},
                                    {"connected_s", static_cast<double>(c.getConnectedNs()) / 1e9},
                                    {"bytes_pinned", c.getBytesPinned()}});
        }
        out["pools"] = json::array();
        for (auto p : s.getPools()) {
          json holders = json::array();
          for (auto h : p.getHolders())
            holders.push_back({{"client", h.getClient()}, {"slots", h.getSlots()}});
          out["pools"].push_back({{"id", p.getId()},
                                  {"topic", text_of(p.getTopic())},
                                  {"owner", p.getOwner()},
                                  {"slot_count", p.getSlotCount()},
                                  {"slot_size", p.getSlotSize()},
                                  {"slots_busy", p.getSlotsBusy()},
                                  {"holders", holders}});
        }
        out["services"] = json::array();
        for (auto v : s.getServices()) {
          json servers = json::array();
          for (auto server : v.getServers()) {
            servers.push_back({{"client", server.getClient()},
                               {"max_in_flight", server.getMaxInFlight()},
                               {"in_flight", server.getInFlight()},
                               {"calls", server.getCalls()}});
          }
          out["services"].push_back({{"name", text_of(v.getName())},
                                     {"servers", servers},
                                     {"waiting", v.getWaiting()},
                                     {"calls", v.getCalls()},
                                     {"failed", v.getFailed()},
                                     {"answered", v.getAnswered()},
                                     {"latency_p50_us", v.getLatencyP50Us()},
                                     {"latency_p90_us", v.getLatencyP90Us()},
                                     {"latency_p99_us", v.getLatencyP99Us()},
                                     {"latency_max_us", v.getLatencyMaxUs()}});
        }
        // A client that offers a service is a server too (a caller holds nothing to show).
        for (auto& c : out["clients"]) {
          const bool serves =
              std::any_of(out["services"].begin(), out["services"].end(), [&](const json& service) {
                return std::any_of(service["servers"].begin(), service["servers"].end(),
                                   [&](const json& server) { return server["client"] == c["id"]; });
              });
          if (!serves) continue;
          c["role"] = c["role"] == "idle" ? "server" : c["role"].get<std::string>() + "+server";
        }
        return {};
      });
  if (!ok) {
    die(ok.error().message().find("permission-denied") != std::string::npos ? 3 : 1,
        ok.error().message());
  }
  return out;
}

std::string str(const json& j) {
  return j.is_string() ? j.get<std::string>() : j.dump();
}

std::string client_label(const json& state, std::uint64_t id) {
  if (id == 0) return "-";
  for (const auto& c : state["clients"]) {
    if (c["id"] == id)
      return std::to_string(id) + " (pid " + str(c["pid"]) + " " + str(c["command"]) + ")";
  }
  return std::to_string(id);
}

// What `status` shows, as JSON: the table's figures, with frames and bytes summed over topics
// and the bytes pinned over clients.
json status_of(const json& s) {
  std::uint64_t pinned = 0, frames = 0, bytes = 0;
  for (const auto& c : s["clients"]) pinned += c["bytes_pinned"].get<std::uint64_t>();
  for (const auto& t : s["topics"]) {
    frames += t["frames"].get<std::uint64_t>();
    bytes += t["bytes"].get<std::uint64_t>();
  }
  return {{"broker_pid", s["broker_pid"]},
          {"uptime_s", s["uptime_s"]},
          {"topics", s["topics"].size()},
          {"clients", s["clients"].size()},
          {"pools", s["pools"].size()},
          {"frames", frames},
          {"bytes", bytes},
          {"bytes_pinned", pinned}};
}

void show_status(const json& s) {
  const json st = status_of(s);
  char uptime[32];
  std::snprintf(uptime, sizeof uptime, "%.0f s", st["uptime_s"].get<double>());
  print_table({"BROKER PID", "UPTIME", "TOPICS", "CLIENTS", "POOLS", "FRAMES", "BYTES", "PINNED"},
              {{str(st["broker_pid"]), uptime, str(st["topics"]), str(st["clients"]),
                str(st["pools"]), str(st["frames"]), human_bytes(st["bytes"].get<std::uint64_t>()),
                human_bytes(st["bytes_pinned"].get<std::uint64_t>())}});
}

void show_topics(const json& s) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& t : s["topics"]) {
    std::uint64_t dropped = 0;
    std::string subs;
    for (const auto& sub : t["subscribers"]) {
      dropped += sub["dropped"].get<std::uint64_t>();
      if (!subs.empty()) subs += ", ";
      subs += str(sub["client"]) + " q" + str(sub["queued"]) + "/" + str(sub["queue_depth"]) +
              " held " + str(sub["in_flight"]) + " drop " + str(sub["dropped"]) +
              (sub["channel"].get<std::uint32_t>() != 0 ? " (channel)" : "");
    }
    rows.push_back({str(t["name"]), str(t["kind"]), str(t["guarantee"]),
                    client_label(s, t["producer"]), str(t["frames"]),
                    human_bytes(t["bytes"].get<std::uint64_t>()), std::to_string(dropped),
                    subs.empty() ? "-" : subs});
  }
  print_table(
      {"TOPIC", "KIND", "GUARANTEE", "PRODUCER", "FRAMES", "BYTES", "DROPPED", "SUBSCRIBERS"},
      rows);
}

void show_clients(const json& s) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& c : s["clients"]) {
    char since[32];
    std::snprintf(since, sizeof since, "%.0f s", c["connected_s"].get<double>());
    rows.push_back({str(c["id"]), str(c["pid"]), str(c["uid"]), str(c["command"]), str(c["name"]),
                    str(c["role"]), since, human_bytes(c["bytes_pinned"].get<std::uint64_t>())});
  }
  print_table({"ID", "PID", "UID", "COMMAND", "NAME", "ROLE", "CONNECTED", "PINNED"}, rows);
}

void show_pools(const json& s) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : s["pools"]) {
    std::string holders;
    for (const auto& h : p["holders"]) {
      if (!holders.empty()) holders += ", ";
      holders += client_label(s, h["client"]) + ": " + str(h["slots"]);
    }
    // A pool with no topic carries its owner's requests or responses (services).
    const std::string topic = str(p["topic"]).empty() ? "(calls)" : str(p["topic"]);
    rows.push_back({str(p["id"]), topic, client_label(s, p["owner"]), str(p["slot_count"]),
                    human_bytes(p["slot_size"].get<std::uint64_t>()), str(p["slots_busy"]),
                    holders.empty() ? "-" : holders});
  }
  print_table({"POOL", "TOPIC", "OWNER", "SLOTS", "SLOT SIZE", "BUSY", "HELD BY"}, rows);
}

std::string microseconds(const json& us) {
  const auto v = us.get<std::uint64_t>();
  char out[32];
  if (v < 10000) {
    std::snprintf(out, sizeof out, "%llu us", static_cast<unsigned long long>(v));
  } else {
    std::snprintf(out, sizeof out, "%.1f ms", static_cast<double>(v) / 1000.0);
  }
  return out;
}

void show_services(const json& s) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& v : s["services"]) {
    std::string servers;
    for (const auto& server : v["servers"]) {
      if (!servers.empty()) servers += ", ";
      servers += client_label(s, server["client"]) + ": " + str(server["in_flight"]) + "/" +
                 str(server["max_in_flight"]);
    }
    const bool any = v["answered"].get<std::uint64_t>() > 0;
    rows.push_back({str(v["name"]), servers.empty() ? "-" : servers, str(v["waiting"]),
                    str(v["calls"]), str(v["failed"]),
                    any ? microseconds(v["latency_p50_us"]) : "-",
                    any ? microseconds(v["latency_p90_us"]) : "-",
                    any ? microseconds(v["latency_p99_us"]) : "-",
                    any ? microseconds(v["latency_max_us"]) : "-"});
  }
  print_table({"SERVICE", "SERVERS (IN FLIGHT/MAX)", "WAITING", "CALLS", "FAILED", "P50", "P90",
               "P99", "MAX"},
              rows);
}

volatile sig_atomic_t g_stop = 0;

// Refreshes the topic table with rates until q, Ctrl+C or `count` refreshes.
int top(const std::string& socket, double interval, std::uint64_t count) {
  ::signal(SIGINT, [](int) { g_stop = 1; });
  termios saved{};
  const bool tty = ::isatty(0) != 0 && ::tcgetattr(0, &saved) == 0;
  if (tty) {
    termios raw = saved;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    ::tcsetattr(0, TCSANOW, &raw);
  }
  std::map<std::string, std::pair<std::uint64_t, std::uint64_t>> last;  // frames, bytes
  for (std::uint64_t n = 0; !g_stop && (count == 0 || n < count); ++n) {
    const json s = fetch_state(socket);
    if (::isatty(1) != 0) std::printf("\033[H\033[2J");
    std::printf("shmfd-broker pid %s, up %.0f s, %zu clients, %zu pools (q quits)\n\n",
                str(s["broker_pid"]).c_str(), s["uptime_s"].get<double>(), s["clients"].size(),
                s["pools"].size());
    std::vector<std::vector<std::string>> rows;
    for (const auto& t : s["topics"]) {
      const std::string name = str(t["name"]);
      // Every frame, through the broker or on channels (counted from their pages).
      const auto frames = t["frames"].get<std::uint64_t>();
      const auto bytes = t["bytes"].get<std::uint64_t>();
      auto prev = last.count(name) != 0 ? last[name] : std::make_pair(frames, bytes);
      last[name] = {frames, bytes};
      std::uint64_t dropped = 0;
      for (const auto& sub : t["subscribers"]) dropped += sub["dropped"].get<std::uint64_t>();
      char fps[32], mbs[32];
      // (A topic that went and came again starts from 0.)
      const std::uint64_t new_frames = frames >= prev.first ? frames - prev.first : 0;
      const std::uint64_t new_bytes = bytes >= prev.second ? bytes - prev.second : 0;
      std::snprintf(fps, sizeof fps, "%.1f", static_cast<double>(new_frames) / interval);
      std::snprintf(mbs, sizeof mbs, "%.1f", static_cast<double>(new_bytes) / interval / 1e6);
      rows.push_back({name, client_label(s, t["producer"]), fps, mbs,
                      std::to_string(t["subscribers"].size()), std::to_string(dropped)});
    }
    print_table({"TOPIC", "PRODUCER", "FRAMES/S", "MB/S", "SUBSCRIBERS", "DROPPED"}, rows);
    std::fflush(stdout);
    if (count != 0 && n + 1 == count) break;
    pollfd in{0, POLLIN, 0};
    if (::poll(&in, tty ? 1 : 0, static_cast<int>(interval * 1000)) > 0) {
      char c = 0;
      if (::read(0, &c, 1) == 1 && (c == 'q' || c == 'Q')) break;
    }
  }
  if (tty) ::tcsetattr(0, TCSANOW, &saved);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket = default_socket_path();
  bool as_json = false;
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--socket") {
      if (i + 1 >= argc) die(2, "--socket needs a path");
      socket = argv[++i];
    } else if (a == "--json") {
      as_json = true;
    } else if (a == "--help" || a == "-h") {
      std::printf("%s%s\n", kUsage, usage_end().c_str());
      return 0;
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) die(2, std::string("missing command\n") + kUsage + usage_end());
  const std::string command = args[0];

  if (command == "memfds") {
    std::vector<pid_t> pids;
    for (std::size_t i = 1; i < args.size(); ++i) {
      auto pid = parse_number("memfds", args[i], 1, std::numeric_limits<pid_t>::max());
      if (!pid) die(2, pid.error().message() + " (a pid)");
      pids.push_back(static_cast<pid_t>(*pid));
    }
    std::size_t unreadable = 0;
    const auto found = ctl::scan_memfds(pids, &unreadable);
    if (as_json)
      std::printf("%s\n", memfds_json(found).dump(2).c_str());
    else
      show_memfds(found);
    if (unreadable != 0) {
      // Not an error: what it could see is right. But say what it could not.
      std::fprintf(stderr,
                   "shmfdctl: could not read the fds of %zu processes of other users; run as "
                   "root to see every memfd\n",
                   unreadable);
    }
    return 0;
  }
  if (command == "shm") {
    bool remove = false, yes = false;
    for (std::size_t i = 1; i < args.size(); ++i) {
      if (args[i] == "--remove-orphans")
        remove = true;
      else if (args[i] == "--yes")
        yes = true;
      else
        die(2, "shm: unknown option " + args[i] + " (--remove-orphans, --yes)");
    }
    if (yes && !remove) die(2, "shm: --yes only goes with --remove-orphans");
    const auto report = ctl::scan_shm();
    if (remove) return remove_orphans(report, yes);
    if (as_json)
      std::printf("%s\n", shm_json(report).dump(2).c_str());
    else
      show_shm(report);
    return 0;
  }
  if (command == "top") {
    if (as_json) {
      die(2,
          "top is for people and has no --json form; for scripts, poll `shmfdctl --json "
          "topics`");
    }
    double interval = 1.0;
    std::uint64_t count = 0;
    for (std::size_t i = 1; i < args.size(); i += 2) {
      if (args[i] != "--interval" && args[i] != "--count") die(2, "top: unknown option " + args[i]);
      if (i + 1 >= args.size()) die(2, "top: " + args[i] + " needs a value");
      if (args[i] == "--interval") {
        // Seconds, as digits with at most one point: 0.1 to 3600.
        const std::string& text = args[i + 1];
        const bool plain = !text.empty() && std::count(text.begin(), text.end(), '.') <= 1 &&
                           text.find_first_not_of("0123456789.") == std::string::npos;
        interval = plain ? std::strtod(text.c_str(), nullptr) : -1;
        if (!(interval >= 0.1 && interval <= 3600)) {
          die(2, "top --interval: '" + text + "' is not a number of seconds from 0.1 to 3600");
        }
      } else {
        auto n = parse_number("top --count", args[i + 1], 0, std::uint64_t{1} << 53);
        if (!n) die(2, n.error().message());
        count = *n;
      }
    }
    return top(socket, interval, count);
  }
  if (command != "status" && command != "topics" && command != "clients" && command != "pools" &&
      command != "services") {
    die(2, "unknown command '" + command +
               "' (status, topics, clients, pools, services, top, memfds, shm)");
  }
  if (args.size() > 1) die(2, command + " takes no arguments, not '" + args[1] + "'");
  const json state = fetch_state(socket);
  if (as_json) {
    json out;
    if (command == "status") {
      out = status_of(state);
    } else {
      out = state[command];
    }
    std::printf("%s\n", out.dump(2).c_str());
    return 0;
  }
  if (command == "status") show_status(state);
  if (command == "topics") show_topics(state);
  if (command == "clients") show_clients(state);
  if (command == "pools") show_pools(state);
  if (command == "services") show_services(state);
  return 0;
}
