#include "machine_view.hpp"

#include <sys/shm.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "shmfd/guarantee.hpp"
#include "table.hpp"

namespace shmfd::ctl {

using nlohmann::json;

json memfds_json(const std::vector<MemfdInfo>& found) {
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

void show_memfds(const std::vector<MemfdInfo>& found) {
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

namespace {

json holders_json(const std::vector<Holder>& holders) {
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

ShmTotals totals_of(const ShmReport& r) {
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

}  // namespace

json shm_json(const ShmReport& r) {
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

void show_shm(const ShmReport& r) {
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

// Each orphan is checked again just before: a segment someone attached meanwhile is kept.
int remove_orphans(const ShmReport& r, bool yes) {
  const uid_t me = ::geteuid();
  std::vector<const SysvSegment*> segments;
  std::vector<const TmpfsFile*> files;
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

}  // namespace shmfd::ctl
