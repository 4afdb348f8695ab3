// A helper process started by a host with its end of a SOCK_SEQPACKET socketpair as fd 3, as
// the sandbox and plugin examples run untrusted code, and a readable account of how it ended.
#pragma once

#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "shmfd/wire/transport.hpp"

namespace shmfd::examples {

struct Child {
  pid_t pid = -1;
  UniqueFd sock;  // the host's end
};

// The path of a program installed beside the running one (build/bin/).
inline std::string sibling_program(const std::string& name) {
  return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / name).string();
}

inline Result<Child> spawn_child(const std::string& binary, std::vector<std::string> args) {
  auto pair = make_seqpacket_pair();
  if (!pair) return fail(std::move(pair.error()));
  args.insert(args.begin(), binary);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return fail_errno(errno, "fork");
  if (pid == 0) {
    ::dup2(pair->second.get(), 3);  // dup2 clears close-on-exec on fd 3; everything else closes
    ::execv(binary.c_str(), argv.data());
    ::_exit(127);
  }
  return Child{pid, std::move(pair->first)};
}

// Kills (if still running) and reaps the child; returns how it ended.
inline std::string reap(pid_t pid) {
  int status = 0;
  ::kill(pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    if (sig == SIGSYS) return "killed by SIGSYS (a forbidden system call)";
    if (sig == SIGKILL) return "killed (SIGKILL)";
    const char* name = ::sigabbrev_np(sig);
    return std::string("crashed (SIG") + (name != nullptr ? name : std::to_string(sig)) + ")";
  }
  return "exited with status " + std::to_string(WEXITSTATUS(status));
}

}  // namespace shmfd::examples
