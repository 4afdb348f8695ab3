// Test support: one of the project's programs (shmfd-sub, shmfd-pub) run as a child process,
// with its stdout and stderr (merged) read until it says it is ready, and signals to stop, continue
// or end it.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

namespace shmfd::testing {

class Program {
 public:
  // `env`: "NAME=value" entries that the program gets besides this process's environment.
  explicit Program(std::vector<std::string> args, std::vector<std::string> env = {}) {
    int err[2];
    if (::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    // Built before fork: after fork only async-signal-safe calls are safe.
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);  // later ones lose
    envp.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(err[1], 1);
      ::dup2(err[1], 2);
      ::execve(argv[0], argv.data(), envp.data());
      ::_exit(127);
    }
    ::close(err[1]);
    stderr_fd_ = err[0];
  }
  Program(const Program&) = delete;
  Program& operator=(const Program&) = delete;
  ~Program() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stderr_fd_);
  }

  // Reads its output until `text` appears (true) or the stream ends (false).
  bool wait_for(const std::string& text) {
    while (output_.find(text) == std::string::npos) {
      char buf[512];
      const ssize_t n = ::read(stderr_fd_, buf, sizeof buf);
      if (n <= 0) return false;
      output_.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }
  void signal(int sig) const { ::kill(pid_, sig); }
  // Waits for it to exit, reading its output to the end; its exit status, or -1 if a signal
  // ended it.
  int wait() {
    wait_for(std::string(1, '\0'));  // never printed: reads until end of file
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }
  const std::string& output() const { return output_; }

 private:
  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  std::string output_;
};

}  // namespace shmfd::testing
