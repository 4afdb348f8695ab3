// shmfd-broker: routes verified memfd frames from producers to consumers by topic.
//
// Started by hand it listens on --socket (holding PATH.lock so that two brokers never share
// a path). Started by systemd (shmfd-broker.socket) it takes the listening socket systemd
// passes (sd_listen_fds), tells systemd when it is ready (sd_notify), and leaves the socket
// file to systemd. SIGHUP reloads the --policy file; SIGINT and SIGTERM stop it cleanly.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include "broker.hpp"
#include "policy.hpp"
#include "shmfd/protocol.hpp"
#include "shmfd/wire/unix_socket.hpp"

namespace {

using namespace shmfd::broker;

int die(int status, const std::string& what) {
  std::fprintf(stderr, "shmfd-broker: %s\n", what.c_str());
  return status;
}

// The socket systemd passed, if it passed one: exactly one listening SOCK_SEQPACKET Unix
// socket. Its path (for the log) goes into `path`.
shmfd::Result<std::optional<shmfd::UniqueFd>> activated_socket(std::string& path) {
  const int n = sd_listen_fds(1);  // 1: unset LISTEN_FDS, so children do not inherit them
  if (n < 0) return shmfd::fail_errno(-n, "sd_listen_fds");
  if (n == 0) return std::optional<shmfd::UniqueFd>();
  if (n > 1) {
    return shmfd::fail(shmfd::Errc::invalid_configuration,
                       "systemd passed " + std::to_string(n) +
                           " sockets; shmfd-broker takes one (ListenSequentialPacket=)");
  }
  shmfd::UniqueFd fd(SD_LISTEN_FDS_START);
  if (sd_is_socket_unix(fd.get(), SOCK_SEQPACKET, 1, nullptr, 0) <= 0) {
    return shmfd::fail(shmfd::Errc::invalid_configuration,
                       "the socket systemd passed is not a listening SOCK_SEQPACKET Unix socket "
                       "(use ListenSequentialPacket= in the .socket unit)");
  }
  ::fcntl(fd.get(), F_SETFD, FD_CLOEXEC);
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&addr), &len) == 0 &&
      len > offsetof(sockaddr_un, sun_path) && addr.sun_path[0] != '\0') {
    path = addr.sun_path;
  }
  return std::optional<shmfd::UniqueFd>(std::move(fd));
}

// PATH.lock, held for the broker's life: a second broker on the same path fails here, at
// once, instead of racing the first for the socket file.
shmfd::Result<shmfd::UniqueFd> lock_path(const std::string& socket_path) {
  const std::string lock = socket_path + ".lock";
  shmfd::UniqueFd fd(::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return shmfd::fail_errno(errno, "open(" + lock + ")");
  if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return shmfd::fail_errno(EADDRINUSE, "listen on " + socket_path +
                                               ": another shmfd-broker is running there (it "
                                               "holds " +
                                               lock + ")");
    }
    return shmfd::fail_errno(errno, "flock(" + lock + ")");
  }
  return fd;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parse_options(std::vector<std::string>(argv, argv + argc));
  if (!parsed) return die(2, parsed.error().message());
  if (!*parsed) return 0;  // --help
  Options options = std::move(**parsed);
  const Logger log(options.log_level);
  const auto load_policy = [&]() -> shmfd::Status {
    if (options.policy_path.empty()) return {};
    auto policy = Policy::load(options.policy_path);
    if (!policy) return shmfd::fail(std::move(policy.error()));
    options.policy = std::make_shared<const Policy>(std::move(*policy));
    return {};
  };
  if (auto loaded = load_policy(); !loaded) return die(2, loaded.error().message());
  if (auto note = fit_limits_to_fd_budget(options.limits); !note.empty()) log.warn(note);
  ::signal(SIGPIPE, SIG_IGN);  // sends use MSG_NOSIGNAL; this covers anything else

  std::string activated_path;
  auto activated = activated_socket(activated_path);
  if (!activated) return die(1, "socket activation: " + activated.error().message());
  shmfd::UniqueFd listener;
  shmfd::UniqueFd lock;
  struct stat ours {};
  const bool by_systemd = activated->has_value();
  if (by_systemd) {
    listener = std::move(**activated);
    if (!activated_path.empty()) options.socket_path = activated_path;
  } else {
    // What to do when the path cannot be used: a non-root user without XDG_RUNTIME_DIR gets
    // the system path by default, which only root may create.
    const std::string hint =
        ::geteuid() != 0 && std::getenv("XDG_RUNTIME_DIR") == nullptr &&
                options.socket_path == shmfd::default_socket_path()
            ? " (XDG_RUNTIME_DIR is not set, so a non-root broker defaults to the system path " +
                  options.socket_path + "; set XDG_RUNTIME_DIR or pass --socket PATH)"
            : " (pass --socket PATH to listen elsewhere)";
    // The socket's directory (e.g. /run/shmfd) is created if missing, readable by all.
    const std::filesystem::path dir = std::filesystem::path(options.socket_path).parent_path();
    std::error_code ec;
    if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
      std::filesystem::create_directories(dir, ec);
      if (ec) {
        return die(
            1, "cannot create the socket's directory " + dir.string() + ": " + ec.message() + hint);
      }
    }
    auto locked = lock_path(options.socket_path);
    if (!locked) {
      return die(1, "cannot listen: " + locked.error().message() +
                        (locked.error().is(std::errc::address_in_use) ? "" : hint));
    }
    lock = std::move(*locked);
    auto listening = shmfd::listen_seqpacket(options.socket_path, {options.socket_mode, 128});
    if (!listening) {
      return die(1, "cannot listen: " + listening.error().message() +
                        (listening.error().is(std::errc::address_in_use) ? "" : hint));
    }
    listener = std::move(*listening);
    ::stat(options.socket_path.c_str(), &ours);
  }

  asio::io_context io(1);
  Broker broker(io, options, std::move(listener));
  asio::signal_set stops(io, SIGINT, SIGTERM);
  asio::signal_set hangups(io, SIGHUP);
  stops.async_wait([&](std::error_code error, int signal_number) {
    if (error) return;
    log.info(std::string("received ") + (signal_number == SIGINT ? "SIGINT" : "SIGTERM") +
             ", shutting down");
    sd_notify(0, "STOPPING=1");
    hangups.cancel();  // the last pending wait: io.run() returns once the clients are closed
    broker.shutdown();
    // Remove the socket file only if it is still ours (systemd's stays systemd's).
    struct stat now {};
    if (!by_systemd && ::stat(options.socket_path.c_str(), &now) == 0 &&
        now.st_ino == ours.st_ino && now.st_dev == ours.st_dev) {
      ::unlink(options.socket_path.c_str());
    }
  });
  std::function<void()> on_hangup = [&] {
    hangups.async_wait([&](std::error_code error, int) {
      if (error) return;
      if (options.policy_path.empty()) {
        log.info("received SIGHUP; there is no --policy to reload");
      } else {
        sd_notify(0, "RELOADING=1");
        if (auto loaded = load_policy(); !loaded) {
          log.error("received SIGHUP; keeping the policy in force: " + loaded.error().message());
        } else {
          broker.set_policy(options.policy);
          log.info("received SIGHUP; reloaded the policy from " + options.policy_path);
        }
        sd_notify(0, "READY=1");
      }
      on_hangup();
    });
  };
  on_hangup();
  broker.start();
  std::fprintf(stderr, "shmfd-broker: listening on %s%s\n", options.socket_path.c_str(),
               by_systemd ? " (socket from systemd)" : "");
  sd_notify(0, "READY=1");
  io.run();
  log.info("stopped");
  return 0;
}
