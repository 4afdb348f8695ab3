// shmfdctl: what the broker and every process hold, like ipcs for memfds.
//
//   shmfdctl [--socket PATH] [--json] status|topics|clients|pools
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

#include "memfds.hpp"
#include "shm.hpp"
#include "shmfd/connection.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/parse.hpp"
#include "shmfd/protocol.hpp"

namespace {

using namespace shmfd;
using nlohmann::json;

constexpr std::size_t kMaxStateBytes = 4 << 20;

const char* kUsage = R"(Usage: shmfdctl [--socket PATH] [--json] COMMAND
  status               the broker: pid, uptime, topics, clients, pools, bytes pinned
  topics               each topic: kind, producer, frames, bytes, subscribers, drops
  clients              each client: pid, uid, command, role, connected for, bytes pinned
  pools                each pool: slots, slot size, slots held and by whom
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
    if (conn.error().message().find("[permission-denied]") != std::string::npos) {
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
  if (auto sent = conn->send(request); !sent) die(1, sent.error().message());
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
            subs.push_back({{"client", sub.getClient()},
                            {"queue_depth", sub.getQueueDepth()},
                            {"backpressure", sub.getBackpressure() == Backpressure::DROP_OLDEST
                                                 ? "drop-oldest"
                                                 : "block-producer"},
                            {"queued", sub.getQueued()},
                            {"in_flight", sub.getInFlight()},
                            {"delivered", sub.getDelivered()},
                            {"dropped", sub.getDropped()}});
          }
          auto guarantee = guarantee_from_proto(t.getGuarantee());
          out["topics"].push_back(
              {{"name", text_of(t.getName())},
               {"kind", std::string(to_string(t.getKind()))},
               {"guarantee", guarantee ? std::string(to_string(*guarantee)) : "?"},
               {"producer", t.getProducer()},
               {"frames", t.getFrames()},
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
        return {};
      });
  if (!ok) {
    die(ok.error().message().find("permission-denied") != std::string::npos ? 3 : 1,
        ok.error().message());
  }
  return out;
}

// Prints rows as columns aligned to their widest cell.
void print_table(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> width(header.size());
  for (std::size_t i = 0; i < header.size(); ++i) width[i] = header[i].size();
  for (const auto& r : rows) {
    for (std::size_t i = 0; i < r.size(); ++i) width[i] = std::max(width[i], r[i].size());
  }
  const auto line = [&](const std::vector<std::string>& cells) {
    std::string out;
    for (std::size_t i = 0; i < cells.size(); ++i) {
      out += cells[i];
      if (i + 1 < cells.size()) out += std::string(width[i] - cells[i].size() + 2, ' ');
    }
    std::printf("%s\n", out.c_str());
  };
  line(header);
  for (const auto& r : rows) line(r);
}

std::string human_bytes(std::uint64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
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

void show_status(const json& s) {
  std::uint64_t pinned = 0, frames = 0;
  for (const auto& c : s["clients"]) pinned += c["bytes_pinned"].get<std::uint64_t>();
  for (const auto& t : s["topics"]) frames += t["frames"].get<std::uint64_t>();
  char uptime[32];
  std::snprintf(uptime, sizeof uptime, "%.0f s", s["uptime_s"].get<double>());
  print_table({"BROKER PID", "UPTIME", "TOPICS", "CLIENTS", "POOLS", "FRAMES", "PINNED"},
              {{str(s["broker_pid"]), uptime, std::to_string(s["topics"].size()),
                std::to_string(s["clients"].size()), std::to_string(s["pools"].size()),
                std::to_string(frames), human_bytes(pinned)}});
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
              " held " + str(sub["in_flight"]) + " drop " + str(sub["dropped"]);
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
    rows.push_back({str(p["id"]), str(p["topic"]), client_label(s, p["owner"]),
                    str(p["slot_count"]), human_bytes(p["slot_size"].get<std::uint64_t>()),
                    str(p["slots_busy"]), holders.empty() ? "-" : holders});
  }
  print_table({"POOL", "TOPIC", "OWNER", "SLOTS", "SLOT SIZE", "BUSY", "HELD BY"}, rows);
}

json memfds_json(const std::vector<ctl::MemfdInfo>& found) {
  json out = json::array();
  for (const auto& m : found) {
    json holders = json::array();
    for (const auto& h : m.holders) {
      holders.push_back({{"pid", h.pid}, {"command", h.command}, {"fds", h.fds}, {"maps", h.maps}});
    }
    out.push_back(
        {{"inode", m.inode},
         {"name", m.name},
         {"size", m.size},
         {"seals", m.seals < 0 ? json(nullptr) : json(seal_names(static_cast<unsigned>(m.seals)))},
         {"holders", holders}});
  }
  return out;
}

void show_memfds(const std::vector<ctl::MemfdInfo>& found) {
  std::vector<std::vector<std::string>> rows;
  for (const auto& m : found) {
    std::string holders;
    for (const auto& h : m.holders) {
      if (!holders.empty()) holders += ", ";
      holders += std::to_string(h.pid) + " " + h.command + " (";
      std::string what;
      for (int fd : h.fds) what += (what.empty() ? "fd " : ",") + std::to_string(fd);
      if (h.maps) what += what.empty() ? "maps" : " + maps";
      holders += what + ")";
    }
    rows.push_back({std::to_string(m.inode), m.name, human_bytes(m.size),
                    m.seals < 0 ? "?" : seal_names(static_cast<unsigned>(m.seals)), holders});
  }
  print_table({"INODE", "NAME", "SIZE", "SEALS", "HELD BY"}, rows);
}

volatile sig_atomic_t g_stop = 0;

// Refreshes the topic table with rates until q, Ctrl+C or `count` refreshes.
json holders_json(const std::vector<ctl::Holder>& holders) {
  json out = json::array();
  for (const auto& h : holders) {
    out.push_back({{"pid", h.pid}, {"command", h.command}, {"fd", h.fd}, {"maps", h.maps}});
  }
  return out;
}

// What `shmfdctl shm` reports, as numbers: every kind, the reconciliation and the limits.
struct ShmTotals {
  std::uint64_t sysv = 0, sysv_size = 0, tmpfs = 0, memfds = 0;
  std::int64_t unaccounted = 0;
};

ShmTotals totals_of(const ctl::ShmReport& r) {
  ShmTotals t;
  for (const auto& s : r.sysv) {
    t.sysv += s.rss;
    t.sysv_size += s.size;
  }
  for (const auto& m : r.mounts) t.tmpfs += m.used;
  t.memfds = r.memfd_allocated;
  t.unaccounted =
      static_cast<std::int64_t>(r.shmem) - static_cast<std::int64_t>(t.sysv + t.tmpfs + t.memfds);
  return t;
}

json shm_json(const ctl::ShmReport& r) {
  const ShmTotals t = totals_of(r);
  json sysv = json::array(), files = json::array(), mounts = json::array();
  for (const auto& s : r.sysv) {
    sysv.push_back(
        {{"key", s.key},
         {"id", s.id},
         {"uid", s.uid},
         {"perms", s.perms},
         {"size", s.size},
         {"rss", s.rss},
         {"swap", s.swap},
         {"attached", s.attached},
         {"creator_pid", s.creator},
         {"last_pid", s.last},
         {"marked_for_removal", s.marked_for_removal},
         {"orphan", s.orphan},
         {"remove_with", s.orphan ? json("ipcrm -m " + std::to_string(s.id)) : json(nullptr)}});
  }
  for (const auto& f : r.files) {
    files.push_back({{"path", f.path},
                     {"mount", f.mount},
                     {"uid", f.uid},
                     {"size", f.size},
                     {"allocated", f.allocated},
                     {"age_s", f.age_s},
                     {"holders", holders_json(f.holders)},
                     {"orphan", f.orphan},
                     {"remove_with", f.orphan ? json("rm " + f.path) : json(nullptr)}});
  }
  for (const auto& m : r.mounts) {
    mounts.push_back({{"path", m.path}, {"size", m.size}, {"used", m.used}});
  }
  return {{"sysv", sysv},
          {"tmpfs_files", files},
          {"tmpfs_mounts", mounts},
          {"memfds", memfds_json(r.memfds)},
          {"reconciliation",
           {{"shmem", r.shmem},
            {"sysv_resident", t.sysv},
            {"tmpfs_used", t.tmpfs},
            {"memfds_allocated", t.memfds},
            {"unaccounted", t.unaccounted},
            {"unreadable_processes", r.unreadable}}},
          {"limits",
           {{"shmmax", r.shmmax},
            {"shmall_pages", r.shmall},
            {"shmmni", r.shmmni},
            {"page_size", r.page_size},
            {"sysv_segments", r.sysv.size()},
            {"sysv_bytes", t.sysv_size}}}};
}

void show_shm(const ctl::ShmReport& r) {
  const ShmTotals t = totals_of(r);
  std::printf("System V segments (/proc/sysvipc/shm):\n");
  std::vector<std::vector<std::string>> rows;
  for (const auto& s : r.sysv) {
    char key[32];
    std::snprintf(key, sizeof key, "0x%08llx", static_cast<unsigned long long>(s.key));
    char perms[8];
    std::snprintf(perms, sizeof perms, "%03o", s.perms);
    rows.push_back({key, std::to_string(s.id), std::to_string(s.uid), perms, human_bytes(s.size),
                    human_bytes(s.rss), std::to_string(s.attached),
                    std::to_string(s.creator) + "/" + std::to_string(s.last),
                    s.marked_for_removal ? "marked for removal"
                    : s.orphan           ? "ORPHAN: ipcrm -m " + std::to_string(s.id)
                                         : ""});
  }
  print_table({"KEY", "ID", "UID", "PERMS", "SIZE", "RESIDENT", "ATTACHED", "CPID/LPID", "NOTE"},
              rows);
  std::printf("\nFiles on tmpfs (shm_open objects live in /dev/shm):\n");
  rows.clear();
  for (const auto& f : r.files) {
    std::string holders;
    for (const auto& h : f.holders) {
      if (!holders.empty()) holders += ", ";
      holders += std::to_string(h.pid) + " " + h.command +
                 (h.fd && h.maps ? " (fd + maps)"
                  : h.fd         ? " (fd)"
                                 : " (maps)");
    }
    rows.push_back({f.path, std::to_string(f.uid), human_bytes(f.size), human_bytes(f.allocated),
                    holders.empty() ? "-" : holders,
                    f.orphan ? "ORPHAN, " + std::to_string(f.age_s) + " s old: rm " + f.path : ""});
  }
  print_table({"PATH", "UID", "SIZE", "ALLOCATED", "HELD BY", "NOTE"}, rows);
  std::printf("\nmemfds (by process: shmfdctl memfds):\n");
  show_memfds(r.memfds);
  std::printf("\nShmem in /proc/meminfo: %s\n", human_bytes(r.shmem).c_str());
  std::printf("  System V segments, resident:  %s\n", human_bytes(t.sysv).c_str());
  std::printf("  tmpfs mounts, used:           %s\n", human_bytes(t.tmpfs).c_str());
  std::printf("  memfds, allocated:            %s\n", human_bytes(t.memfds).c_str());
  std::printf(
      "  not accounted for:            %s%s\n", t.unaccounted < 0 ? "-" : "",
      human_bytes(static_cast<std::uint64_t>(t.unaccounted < 0 ? -t.unaccounted : t.unaccounted))
          .c_str());
  std::printf(
      "    (shared anonymous mappings, which have no file to find; memfds and unlinked files "
      "of processes it could not read%s; GPU and driver buffers; memfd pages also counted "
      "in swap)\n",
      r.unreadable != 0 ? (": " + std::to_string(r.unreadable) + " here").c_str() : "");
  std::printf("\nLimits:\n");
  std::printf("  kernel.shmmax  %s per segment (largest here: %s)\n", human_bytes(r.shmmax).c_str(),
              human_bytes(r.sysv.empty() ? 0
                                         : std::max_element(r.sysv.begin(), r.sysv.end(),
                                                            [](const auto& a, const auto& b) {
                                                              return a.size < b.size;
                                                            })
                                               ->size)
                  .c_str());
  std::printf("  kernel.shmall  %llu pages of %llu bytes in all (in use: %llu pages)\n",
              static_cast<unsigned long long>(r.shmall),
              static_cast<unsigned long long>(r.page_size),
              static_cast<unsigned long long>((t.sysv_size + r.page_size - 1) / r.page_size));
  std::printf("  kernel.shmmni  %llu segments (in use: %zu)\n",
              static_cast<unsigned long long>(r.shmmni), r.sysv.size());
  for (const auto& m : r.mounts) {
    std::printf("  tmpfs %-22s %s of %s used\n", m.path.c_str(), human_bytes(m.used).c_str(),
                human_bytes(m.size).c_str());
  }
  if (r.unreadable != 0) {
    std::printf("\nAs uid %u this could not read %zu processes; run as root to see everything.\n",
                static_cast<unsigned>(::geteuid()), r.unreadable);
  }
}

// Removes the orphans of `r` that the caller owns (root: all), after asking unless `yes`.
// Each is checked again just before: a segment someone attached meanwhile is kept.
int remove_orphans(const ctl::ShmReport& r, bool yes) {
  const uid_t me = ::geteuid();
  std::vector<const ctl::SysvSegment*> segments;
  std::vector<const ctl::TmpfsFile*> files;
  std::size_t refused = 0;
  for (const auto& s : r.sysv) {
    if (!s.orphan) continue;
    if (me != 0 && s.uid != me) {
      std::printf("not removing segment %d: owned by uid %u, not you\n", s.id,
                  static_cast<unsigned>(s.uid));
      ++refused;
      continue;
    }
    segments.push_back(&s);
  }
  for (const auto& f : r.files) {
    if (!f.orphan) continue;
    if (me != 0 && f.uid != me) {
      std::printf("not removing %s: owned by uid %u, not you\n", f.path.c_str(),
                  static_cast<unsigned>(f.uid));
      ++refused;
      continue;
    }
    files.push_back(&f);
  }
  if (segments.empty() && files.empty()) {
    std::printf("no orphans of yours to remove%s\n",
                refused != 0 ? (" (" + std::to_string(refused) + " of others)").c_str() : "");
    return 0;
  }
  for (const auto* s : segments) {
    std::printf("orphan: System V segment %d, %s (ipcrm -m %d)\n", s->id,
                human_bytes(s->size).c_str(), s->id);
  }
  for (const auto* f : files) {
    std::printf("orphan: %s, %s, %lld s old (rm %s)\n", f->path.c_str(),
                human_bytes(f->allocated).c_str(), static_cast<long long>(f->age_s),
                f->path.c_str());
  }
  if (!yes) {
    std::printf("Remove these %zu orphans? [y/N] ", segments.size() + files.size());
    std::fflush(stdout);
    char answer[16] = {};
    if (std::fgets(answer, sizeof answer, stdin) == nullptr ||
        (answer[0] != 'y' && answer[0] != 'Y')) {
      std::printf("nothing removed\n");
      return 1;
    }
  }
  int status = 0;
  for (const auto* s : segments) {
    shmid_ds ds{};
    if (::shmctl(s->id, IPC_STAT, &ds) != 0 || ds.shm_nattch != 0) {
      std::printf("kept segment %d: it is attached again, or gone\n", s->id);
      continue;
    }
    if (::shmctl(s->id, IPC_RMID, nullptr) != 0) {
      std::printf("could not remove segment %d: %s\n", s->id, std::strerror(errno));
      status = 1;
      continue;
    }
    std::printf("removed segment %d\n", s->id);
  }
  for (const auto* f : files) {
    if (::unlink(f->path.c_str()) != 0) {
      std::printf("could not remove %s: %s\n", f->path.c_str(), std::strerror(errno));
      status = 1;
      continue;
    }
    std::printf("removed %s\n", f->path.c_str());
  }
  return status;
}

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
      const auto frames = t["frames"].get<std::uint64_t>();
      const auto bytes = t["bytes"].get<std::uint64_t>();
      auto prev = last.count(name) != 0 ? last[name] : std::make_pair(frames, bytes);
      last[name] = {frames, bytes};
      std::uint64_t dropped = 0;
      for (const auto& sub : t["subscribers"]) dropped += sub["dropped"].get<std::uint64_t>();
      char fps[32], mbs[32];
      std::snprintf(fps, sizeof fps, "%.1f", static_cast<double>(frames - prev.first) / interval);
      std::snprintf(mbs, sizeof mbs, "%.1f",
                    static_cast<double>(bytes - prev.second) / interval / 1e6);
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
      std::printf("%s%s)\n", kUsage, default_socket_path().c_str());
      return 0;
    } else {
      args.push_back(a);
    }
  }
  if (args.empty()) die(2, std::string("missing command\n") + kUsage + default_socket_path() + ")");
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
  if (command != "status" && command != "topics" && command != "clients" && command != "pools") {
    die(2, "unknown command '" + command + "' (status, topics, clients, pools, top, memfds, shm)");
  }
  if (args.size() > 1) die(2, command + " takes no arguments, not '" + args[1] + "'");
  const json state = fetch_state(socket);
  if (as_json) {
    json out;
    if (command == "status") {
      out = {{"broker_pid", state["broker_pid"]},
             {"uptime_s", state["uptime_s"]},
             {"topics", state["topics"].size()},
             {"clients", state["clients"].size()},
             {"pools", state["pools"].size()}};
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
  return 0;
}
