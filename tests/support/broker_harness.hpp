// Test support: a broker on a temporary socket path, either in this process (on its own
// io_context thread) or as a real shmfd-broker subprocess.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/post.hpp>

#include "broker.hpp"
#include "shmfd/wire/unix_socket.hpp"

namespace shmfd::testing {

// A private directory for a test's socket, removed afterwards.
class TempDir {
 public:
  TempDir() {
    std::string templ = "/tmp/shmfd-test-XXXXXX";
    if (::mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~TempDir() {
    if (DIR* d = ::opendir(path_.c_str())) {
      while (const dirent* e = ::readdir(d)) {
        if (e->d_name[0] != '.') ::unlink((path_ + "/" + e->d_name).c_str());
      }
      ::closedir(d);
    }
    ::rmdir(path_.c_str());
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class InProcessBroker {
 public:
  explicit InProcessBroker(broker::Options options = {}) {
    options.socket_path = dir_.path() + "/broker.sock";
    options.log_level =
        std::getenv("SHMFD_TEST_BROKER_DEBUG") ? broker::LogLevel::debug : broker::LogLevel::error;
    path_ = options.socket_path;
    // Others may need to reach the socket (tests of access control): open the directory too.
    if ((options.socket_mode & 0007) != 0) ::chmod(dir_.path().c_str(), 0711);
    auto listener = listen_seqpacket(path_, ListenOptions{options.socket_mode, 128});
    if (!listener) throw std::runtime_error(listener.error().message());
    broker_ = std::make_unique<broker::Broker>(io_, options, std::move(*listener));
    broker_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~InProcessBroker() { stop(); }

  const std::string& path() const { return path_; }

  // Runs `f` on the broker's thread and returns its result.
  template <typename F>
  auto on_broker(F f) {
    std::packaged_task<decltype(f())()> task(std::move(f));
    auto result = task.get_future();
    asio::post(io_, [&task] { task(); });
    return result.get();
  }
  broker::Stats stats() {
    return on_broker([this] { return broker_->stats(); });
  }
  // Waits (bounded) until the broker's state satisfies `done`.
  template <typename Pred>
  bool wait_until(Pred done, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (on_broker([&] { return done(*broker_); })) return true;
      std::this_thread::yield();
    }
    return false;
  }

  void stop() {
    if (!thread_.joinable()) return;
    asio::post(io_, [this] { broker_->shutdown(); });
    thread_.join();
    broker_.reset();
  }

 private:
  TempDir dir_;
  std::string path_;
  asio::io_context io_{1};
  std::unique_ptr<broker::Broker> broker_;
  std::thread thread_;
};

// shmfd-broker as a child process; its stderr is read until "listening on".
class SubprocessBroker {
 public:
  // On `path`, or on a socket in a fresh temporary directory.
  explicit SubprocessBroker(std::vector<std::string> extra = {}, std::string path = {}) {
    path_ = path.empty() ? dir_.path() + "/broker.sock" : std::move(path);
    int err[2];
    if (::pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe2");
    // Built before fork: after fork only async-signal-safe calls are safe.
    std::vector<std::string> args{SHMFD_BROKER_BIN, "--socket", path_, "--log-level", "error"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(err[1], 2);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    ::close(err[1]);
    stderr_fd_ = err[0];
    // Read until the broker says it listens (or exits).
    while (output_.find("listening on") == std::string::npos) {
      char buf[256];
      const ssize_t n = ::read(stderr_fd_, buf, sizeof buf);
      if (n <= 0) break;
      output_.append(buf, static_cast<std::size_t>(n));
    }
  }
  ~SubprocessBroker() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(stderr_fd_);
  }

  const std::string& path() const { return path_; }
  const std::string& directory() const { return dir_.path(); }
  pid_t pid() const { return pid_; }
  // Lets other users reach the socket's directory (tests of access control).
  void open_directory() const { ::chmod(dir_.path().c_str(), 0711); }
  bool listening() const { return output_.find("listening on " + path_) != std::string::npos; }
  const std::string& output() const { return output_; }
  // Waits for the process to exit on its own; returns the waitpid status.
  int wait() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  std::size_t fd_count() const {
    std::size_t n = 0;
    if (DIR* d = ::opendir(("/proc/" + std::to_string(pid_) + "/fd").c_str())) {
      while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
      ::closedir(d);
    }
    return n;
  }
  // Waits (bounded) for the broker's fd count to equal `expected`.
  bool wait_for_fd_count(std::size_t expected) const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (std::chrono::steady_clock::now() < deadline) {
      if (fd_count() == expected) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return false;
  }

  // Sends `signal` and returns the exit status (waitpid).
  int stop(int signal) {
    ::kill(pid_, signal);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(stderr_fd_, buf, sizeof buf)) > 0)
      output_.append(buf, static_cast<std::size_t>(n));
    return status;
  }

 private:
  TempDir dir_;
  std::string path_;
  pid_t pid_ = -1;
  int stderr_fd_ = -1;
  std::string output_;
};

}  // namespace shmfd::testing
