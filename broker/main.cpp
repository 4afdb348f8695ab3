// shmfd-broker: routes verified memfd frames from producers to consumers by topic.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include "broker.hpp"
#include "policy.hpp"
#include "shmfd/unix_socket.hpp"

int main(int argc, char** argv) {
  using namespace shmfd::broker;
  auto parsed = parse_options(std::vector<std::string>(argv, argv + argc));
  if (!parsed) {
    std::fprintf(stderr, "shmfd-broker: %s\n", parsed.error().message().c_str());
    return 2;
  }
  if (!*parsed) return 0;  // --help
  Options options = std::move(**parsed);
  const Logger log(options.log_level);
  if (!options.policy_path.empty()) {
    auto policy = Policy::load(options.policy_path);
    if (!policy) {
      std::fprintf(stderr, "shmfd-broker: %s\n", policy.error().message().c_str());
      return 2;
    }
    options.policy = std::make_shared<const Policy>(std::move(*policy));
  }
  if (auto note = fit_limits_to_fd_budget(options.limits); !note.empty()) log.warn(note);
  ::signal(SIGPIPE, SIG_IGN);  // sends use MSG_NOSIGNAL; this covers anything else

  // The socket's directory (e.g. /run/shmfd) is created if missing, readable by all.
  const std::filesystem::path dir = std::filesystem::path(options.socket_path).parent_path();
  std::error_code ec;
  if (!dir.empty()) std::filesystem::create_directories(dir, ec);
  auto listener = shmfd::listen_seqpacket(options.socket_path, {options.socket_mode, 128});
  if (!listener) {
    std::fprintf(stderr, "shmfd-broker: cannot listen: %s\n", listener.error().message().c_str());
    return 1;
  }
  struct stat ours {};
  ::stat(options.socket_path.c_str(), &ours);

  asio::io_context io(1);
  Broker broker(io, options, std::move(*listener));
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](std::error_code error, int signal_number) {
    if (error) return;
    log.info(std::string("received ") + (signal_number == SIGINT ? "SIGINT" : "SIGTERM") +
             ", shutting down");
    broker.shutdown();
    // Remove the socket file only if it is still ours.
    struct stat now {};
    if (::stat(options.socket_path.c_str(), &now) == 0 && now.st_ino == ours.st_ino &&
        now.st_dev == ours.st_dev) {
      ::unlink(options.socket_path.c_str());
    }
  });
  broker.start();
  std::fprintf(stderr, "shmfd-broker: listening on %s\n", options.socket_path.c_str());
  io.run();
  log.info("stopped");
  return 0;
}
