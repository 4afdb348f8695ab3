#include "broker.hpp"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "access.hpp"
#include "shmfd/wire/peer_credentials.hpp"
#include "shmfd/wire/transport.hpp"

namespace shmfd::broker {
namespace {

// Fds the broker needs besides its clients: the listener, the signal pipe, stdio, epoll.
constexpr std::size_t kReservedFds = 32;

// Tells a client it cannot be served, and closes so that it reads why (shutdown_and_drain).
void refuse_connection(int fd, proto::ErrorCode code, const std::string& why) {
  ControlMessageBuilder message;
  auto error = message.initRoot<proto::Message>().initError();
  error.setCode(code);
  error.setMessage(why);
  const auto words = encode_message(message);
  (void)send_message(fd, words.bytes(), {}, IoMode::non_blocking);
  shutdown_and_drain(fd, 8);
}

}  // namespace

std::string fit_limits_to_fd_budget(Limits& limits) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return "getrlimit(RLIMIT_NOFILE) failed";
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  // Per client: its socket, one message's fd being received, and its queue of frames. Each
  // topic may also keep its last frame.
  // Its socket and doorbell, its queued frames, its pools, and for services a request fd per
  // call in flight and about as many responses queued (services.cpp holds a server past that).
  const std::size_t per_client = 2 + limits.max_queued_fds_per_client +
                                 limits.max_pools_per_client + 2 * limits.max_calls_in_flight;
  const std::size_t fixed = kReservedFds + limits.max_topics + kOperatorReserve * per_client;
  const auto budget = static_cast<std::size_t>(rl.rlim_cur);
  if (budget <= fixed + per_client) {
    limits.max_clients = 1;
    return "RLIMIT_NOFILE " + std::to_string(budget) +
           " is too small for the limits; serving 1 client";
  }
  const std::size_t fit = (budget - fixed) / per_client;
  if (fit >= limits.max_clients) return {};
  const std::string line = "RLIMIT_NOFILE " + std::to_string(budget) + " fits " +
                           std::to_string(fit) + " clients, not " +
                           std::to_string(limits.max_clients) + "; lowering --max-clients";
  limits.max_clients = fit;
  return line;
}

Broker::Broker(asio::io_context& io, Options options, UniqueFd listener)
    : io_(io),
      options_(std::move(options)),
      log_(options_.log_level),
      registry_(options_.limits.max_topics),
      router_(registry_, options_, log_, closer_, wakeups_),
      receive_buffer_(options_.limits.max_message_bytes),
      listener_(io),
      hold_check_(io),
      call_deadline_(io) {
  listener_.assign(listener.release());
  listener_.non_blocking(true);
}

Broker::~Broker() {
  try {
    shutdown();
  } catch (...) {
    // Only logging can throw (allocation); the sockets close in their destructors anyway.
  }
}

void Broker::start() {
  accept_loop();
  schedule_hold_check();
}

void Broker::schedule_hold_check() {
  const std::uint64_t deadline = options_.limits.hold_deadline_ms;
  if (deadline == 0 || stopped_) return;
  // Checking four times per deadline reports a stuck consumer at most 25% late.
  hold_check_.expires_after(std::chrono::milliseconds(std::max<std::uint64_t>(deadline / 4, 1)));
  hold_check_.async_wait([this](std::error_code ec) {
    if (ec || stopped_) return;
    const auto now = std::chrono::steady_clock::now();
    for (auto& [id, session] : sessions_) session->check_holds(now);  // closes are posted
    router_.count_channel_frames();
    flush();
    schedule_hold_check();
  });
}

void Broker::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  std::error_code ignored;
  listener_.close(ignored);
  hold_check_.cancel();
  call_deadline_.cancel();
  auto sessions = sessions_;  // close_now() removes each from sessions_
  for (auto& [id, session] : sessions) session->close_now("broker shutting down");
}

void Broker::accept_loop() {
  listener_.async_wait(asio::posix::stream_descriptor::wait_read, [this](std::error_code ec) {
    if (ec || stopped_) return;
    accept_one();
    accept_loop();
  });
}

void Broker::accept_one() {
  for (;;) {
    const int fd = ::accept4(listener_.native_handle(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) {
        log_.error(std::string("accept: ") + std::strerror(errno));
      }
      return;
    }
    UniqueFd owned(fd);
    const auto identity = peer_identity(fd);
    const PeerIdentity who = identity ? *identity : PeerIdentity{};
    const PeerCredentials& cred = who.credentials;
    if (auto why = connection_refused(options_.policy.get(), cred.uid)) {
      log_.warn("refused a connection from pid " + std::to_string(cred.pid) + ": " + *why);
      refuse_connection(fd, proto::ErrorCode::PERMISSION_DENIED, *why);
      continue;
    }
    // A full broker still lets its operator in (root and its own uid, for shmfdctl), up to
    // kOperatorReserve connections beyond the limit; the fd budget counts them.
    const bool operator_uid = is_operator(cred.uid);
    const std::size_t cap =
        options_.limits.max_clients + (operator_uid ? kOperatorReserve : std::size_t{0});
    // Clients that hung up but whose end of file their read loop has not reached yet still
    // count: retire those first, so a client reconnecting in a loop is not refused for its
    // own dead connections. Only at the cap, where the poll of each session pays for itself.
    if (sessions_.size() >= cap) retire_hung_up();
    if (sessions_.size() >= cap) {
      const std::string why = "the broker has reached its limit of " +
                              std::to_string(options_.limits.max_clients) +
                              " clients (--max-clients)" +
                              (operator_uid ? " and the " + std::to_string(kOperatorReserve) +
                                                  " more it keeps for root and its own user"
                                            : std::string());
      log_.warn("refused a connection from pid " + std::to_string(cred.pid) + ": " + why);
      refuse_connection(fd, proto::ErrorCode::LIMIT_EXCEEDED, why);
      continue;
    }
    Session::Socket socket(io_);
    std::error_code ec;
    socket.assign(asio::generic::seq_packet_protocol(AF_UNIX, SOCK_SEQPACKET), owned.get(), ec);
    if (ec) {
      log_.error("cannot use an accepted socket: " + ec.message());
      continue;
    }
    (void)owned.release();
    const std::uint64_t id = next_client_id_++;
    auto session =
        std::make_shared<Session>(static_cast<SessionHost&>(*this), id, std::move(socket), who);
    sessions_.emplace(id, session);
    session->start();
  }
}

void Broker::flush() {
  if (flushing_) return;  // the outer call goes on until nothing is left
  flushing_ = true;
  // Sending may queue more (a delivery unblocks a producer, a dropped frame frees a slot):
  // until nothing is left.
  do {
    while (!wakeups_.empty()) {
      auto batch = wakeups_.take();
      for (auto& [id, why] : batch.closes) {
        if (auto it = sessions_.find(id); it != sessions_.end()) it->second->close(why);
      }
      for (std::uint64_t id : batch.readers) {
        if (auto it = sessions_.find(id); it != sessions_.end()) it->second->wake_reader();
      }
      for (std::uint64_t id : batch.writers) {
        if (auto it = sessions_.find(id); it != sessions_.end()) it->second->wake_writer();
      }
    }
    router_.settle();
  } while (!wakeups_.empty());
  flushing_ = false;
  arm_call_deadline();
}

void Broker::arm_call_deadline() {
  const auto next = router_.services().next_deadline();
  if (!next || stopped_ || (call_armed_ && *call_armed_ <= *next)) return;
  call_armed_ = *next;
  call_deadline_.expires_at(*next);  // a wait for a later one ends with operation_aborted
  call_deadline_.async_wait([this](std::error_code ec) {
    if (ec || stopped_) return;
    call_armed_.reset();
    router_.services().expire(std::chrono::steady_clock::now());
    flush();  // sends the failures and Cancels, and arms the next deadline
  });
}

void Broker::retire_hung_up() {
  auto sessions = sessions_;  // close_now() removes each from sessions_
  for (auto& [id, session] : sessions) {
    if (session->hung_up_with_nothing_unread())
      session->close_now("connection closed by the client");
  }
}

void Broker::session_closed(std::uint64_t id) {
  sessions_.erase(id);
}

}  // namespace shmfd::broker
