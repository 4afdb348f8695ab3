#include "memfds.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <fstream>
#include <map>
#include <sstream>

namespace shmfd::ctl {
namespace {

constexpr std::string_view kPrefix = "/memfd:";
constexpr std::string_view kDeleted = " (deleted)";

std::string link_target(const std::string& path) {
  std::array<char, 512> buf{};
  const ssize_t n = ::readlink(path.c_str(), buf.data(), buf.size() - 1);
  return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
}

// "/memfd:shmfd:cam0,size=64 (deleted)" -> "shmfd:cam0,size=64"
std::string memfd_name(std::string path) {
  path.erase(0, kPrefix.size());
  if (path.size() >= kDeleted.size() &&
      path.compare(path.size() - kDeleted.size(), kDeleted.size(), kDeleted) == 0) {
    path.erase(path.size() - kDeleted.size());
  }
  return path;
}

std::vector<pid_t> all_pids() {
  std::vector<pid_t> pids;
  if (DIR* d = ::opendir("/proc")) {
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] >= '1' && e->d_name[0] <= '9') pids.push_back(std::atoi(e->d_name));
    }
    ::closedir(d);
  }
  return pids;
}

using Key = std::pair<dev_t, ino_t>;

struct Scan {
  std::map<Key, MemfdInfo> found;
  std::size_t unreadable = 0;

  MemfdHolder& holder(MemfdInfo& info, pid_t pid, const std::string& command) {
    for (auto& h : info.holders) {
      if (h.pid == pid) return h;
    }
    info.holders.push_back(MemfdHolder{pid, command, {}, false});
    return info.holders.back();
  }

  void fds_of(pid_t pid, const std::string& command) {
    const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) {
      if (errno == EACCES) ++unreadable;
      return;
    }
    while (const dirent* e = ::readdir(d)) {
      if (e->d_name[0] == '.') continue;
      const std::string path = dir + "/" + e->d_name;
      const std::string target = link_target(path);
      if (target.rfind(kPrefix, 0) != 0) continue;
      struct stat st {};
      if (::stat(path.c_str(), &st) != 0) continue;
      MemfdInfo& info = found[{st.st_dev, st.st_ino}];
      info.inode = st.st_ino;
      info.name = memfd_name(target);
      info.size = static_cast<std::uint64_t>(st.st_size);
      info.allocated = static_cast<std::uint64_t>(st.st_blocks) * 512;
      if (info.seals < 0) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
          info.seals = ::fcntl(fd, F_GET_SEALS);
          ::close(fd);
        }
      }
      holder(info, pid, command).fds.push_back(std::atoi(e->d_name));
    }
    ::closedir(d);
  }

  void maps_of(pid_t pid, const std::string& command) {
    std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
    std::string line;
    while (std::getline(maps, line)) {
      const auto at = line.find(kPrefix);
      if (at == std::string::npos) continue;
      std::istringstream in(line);
      std::string range, perms, offset, device;
      std::uint64_t inode = 0;
      in >> range >> perms >> offset >> device >> inode;
      unsigned major = 0, minor = 0;
      std::sscanf(device.c_str(), "%x:%x", &major, &minor);
      MemfdInfo& info = found[{makedev(major, minor), static_cast<ino_t>(inode)}];
      if (info.name.empty()) {
        info.inode = inode;
        info.name = memfd_name(line.substr(at));
        // Mapped but no fd open: its size is still readable through map_files (root).
        struct stat st {};
        if (::stat(("/proc/" + std::to_string(pid) + "/map_files/" + range).c_str(), &st) == 0) {
          info.size = static_cast<std::uint64_t>(st.st_size);
          info.allocated = static_cast<std::uint64_t>(st.st_blocks) * 512;
        }
      }
      holder(info, pid, command).maps = true;
    }
  }
};

}  // namespace

std::vector<MemfdInfo> scan_memfds(const std::vector<pid_t>& pids, std::size_t* unreadable) {
  Scan scan;
  for (pid_t pid : pids.empty() ? all_pids() : pids) {
    std::string command;
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::getline(comm, command);
    scan.fds_of(pid, command);
    scan.maps_of(pid, command);
  }
  std::vector<MemfdInfo> out;
  for (auto& [key, info] : scan.found) {
    std::sort(info.holders.begin(), info.holders.end(),
              [](const MemfdHolder& a, const MemfdHolder& b) { return a.pid < b.pid; });
    out.push_back(std::move(info));
  }
  std::sort(out.begin(), out.end(),
            [](const MemfdInfo& a, const MemfdInfo& b) { return a.size > b.size; });
  if (unreadable != nullptr) *unreadable = scan.unreadable;
  return out;
}

}  // namespace shmfd::ctl
