#include "shm.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

namespace shmfd::ctl {
namespace {

std::uint64_t read_number(const std::string& path) {
  std::ifstream in(path);
  std::uint64_t n = 0;
  in >> n;
  return n;
}

std::uint64_t shmem_bytes() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib) {
    std::getline(in, unit);
    if (key == "Shmem:") return kib * 1024;
  }
  return 0;
}

// /proc/sysvipc/shm: "key shmid perms size cpid lpid nattch uid gid cuid cgid atime dtime
// ctime rss swap", one segment a line after the header.
std::vector<SysvSegment> sysv_segments() {
  std::vector<SysvSegment> out;
  std::ifstream in("/proc/sysvipc/shm");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream f(line);
    SysvSegment s;
    std::uint64_t gid = 0, cuid = 0, cgid = 0, atime = 0, dtime = 0, ctime = 0;
    std::string perms;
    if (!(f >> s.key >> s.id >> perms >> s.size >> s.creator >> s.last >> s.attached >> s.uid >>
          gid >> cuid >> cgid >> atime >> dtime >> ctime >> s.rss >> s.swap)) {
      continue;
    }
    const unsigned mode = static_cast<unsigned>(std::stoul(perms, nullptr, 8));
    s.perms = mode & 0777;
    s.marked_for_removal = (mode & 01000) != 0;  // SHM_DEST
    s.orphan = s.attached == 0 && !s.marked_for_removal;
    out.push_back(s);
  }
  return out;
}

std::vector<TmpfsMount> tmpfs_mounts() {
  std::vector<TmpfsMount> out;
  std::ifstream in("/proc/self/mounts");
  std::string device, path, type, rest;
  while (in >> device >> path >> type && std::getline(in, rest)) {
    if (type != "tmpfs") continue;
    bool seen = false;
    for (const auto& m : out) seen = seen || m.path == path;
    struct statvfs vfs {};
    if (seen || ::statvfs(path.c_str(), &vfs) != 0) continue;
    out.push_back({path, static_cast<std::uint64_t>(vfs.f_blocks) * vfs.f_frsize,
                   static_cast<std::uint64_t>(vfs.f_blocks - vfs.f_bfree) * vfs.f_frsize});
  }
  return out;
}

void walk(const std::string& dir, const std::string& mount, std::vector<TmpfsFile>& out,
          std::size_t& budget, dev_t device) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  const std::time_t now = std::time(nullptr);
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == ".." || budget == 0) continue;
    const std::string path = (dir == "/" ? "" : dir) + "/" + name;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0 || st.st_dev != device) continue;  // other mounts
    if (S_ISDIR(st.st_mode)) {
      walk(path, mount, out, budget, device);
    } else if (S_ISREG(st.st_mode)) {
      --budget;
      TmpfsFile f;
      f.path = path;
      f.mount = mount;
      f.uid = st.st_uid;
      f.size = static_cast<std::uint64_t>(st.st_size);
      f.allocated = static_cast<std::uint64_t>(st.st_blocks) * 512;
      f.age_s = static_cast<std::int64_t>(now - st.st_mtime);
      out.push_back(std::move(f));
    }
  }
  ::closedir(d);
}

// Who holds or maps each file, from every process's fds and maps (one pass over /proc).
void find_holders(std::vector<TmpfsFile>& files, std::size_t& unreadable) {
  std::map<std::string, TmpfsFile*> by_path;
  for (auto& f : files) by_path[f.path] = &f;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return;
  while (const dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    const pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    const std::string base = std::string("/proc/") + e->d_name;
    std::string command;
    std::getline(std::ifstream(base + "/comm") >> std::ws, command);
    const auto holder = [&](TmpfsFile& f) -> Holder& {
      for (auto& h : f.holders) {
        if (h.pid == pid) return h;
      }
      f.holders.push_back({pid, command, false, false});
      return f.holders.back();
    };
    if (DIR* fds = ::opendir((base + "/fd").c_str())) {
      while (const dirent* fd = ::readdir(fds)) {
        if (fd->d_name[0] == '.') continue;
        std::array<char, 4096> target{};
        const ssize_t n =
            ::readlink((base + "/fd/" + fd->d_name).c_str(), target.data(), target.size() - 1);
        if (n <= 0) continue;
        auto it = by_path.find(std::string(target.data(), static_cast<std::size_t>(n)));
        if (it != by_path.end()) holder(*it->second).fd = true;
      }
      ::closedir(fds);
    } else if (errno == EACCES) {
      ++unreadable;
      continue;
    }
    std::ifstream maps(base + "/maps");
    std::string line;
    while (std::getline(maps, line)) {
      const auto slash = line.find('/');
      if (slash == std::string::npos) continue;
      auto it = by_path.find(line.substr(slash));
      if (it != by_path.end()) holder(*it->second).maps = true;
    }
  }
  ::closedir(proc);
}

}  // namespace

ShmReport scan_shm(std::size_t max_files) {
  ShmReport r;
  r.sysv = sysv_segments();
  r.mounts = tmpfs_mounts();
  for (const auto& m : r.mounts) {
    struct stat st {};
    if (::stat(m.path.c_str(), &st) != 0) continue;
    std::size_t budget = max_files;
    walk(m.path, m.path, r.files, budget, st.st_dev);
  }
  find_holders(r.files, r.unreadable);
  for (auto& f : r.files) {
    // Only /dev/shm holds shm_open objects; files elsewhere on tmpfs (/run) are state that
    // is meant to stay without a holder.
    f.orphan = f.holders.empty() && f.path.rfind("/dev/shm/", 0) == 0;
  }
  std::size_t memfd_unreadable = 0;
  r.memfds = scan_memfds({}, &memfd_unreadable);
  for (const auto& m : r.memfds) r.memfd_allocated += m.allocated;
  r.unreadable = std::max(r.unreadable, memfd_unreadable);
  r.shmem = shmem_bytes();
  r.shmmax = read_number("/proc/sys/kernel/shmmax");
  r.shmall = read_number("/proc/sys/kernel/shmall");
  r.shmmni = read_number("/proc/sys/kernel/shmmni");
  r.page_size = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  return r;
}

}  // namespace shmfd::ctl
