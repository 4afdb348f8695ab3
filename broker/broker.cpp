#include "broker.hpp"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "client.hpp"
#include "shmfd/transport.hpp"
#include "shmfd/wire.hpp"

namespace shmfd::broker {
namespace {

// Fds the broker needs besides its clients: the listener, the signal pipe, stdio, epoll.
constexpr std::size_t kReservedFds = 32;

// Tells a client it cannot be served, then drains what it already sent: closing a unix socket
// with unread data makes the peer's next recv fail with ECONNRESET instead of reading why.
void refuse_connection(int fd, proto::ErrorCode code, const std::string& why) {
  ControlMessageBuilder message;
  auto error = message.initRoot<proto::Message>().initError();
  error.setCode(code);
  error.setMessage(why);
  const auto words = encode_message(message);
  (void)send_message(fd, as_bytes(words), {}, IoMode::non_blocking);
  // Closing with its Hello unread would make the kernel report ECONNRESET to the client
  // before our Error: stop it sending (its send gets EPIPE), then discard what it sent.
  ::shutdown(fd, SHUT_RDWR);
  MessageBuffer sink(256);
  for (int i = 0; i < 8; ++i) {
    auto m = receive_message(fd, sink.bytes(), 0, IoMode::non_blocking);  // fds: closed
    if (m && m->status != RecvStatus::message) break;
  }
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
  const std::size_t per_client = 2 + limits.max_queued_fds_per_client + limits.max_pools_per_client;
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
      listener_(io),
      hold_check_(io) {
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
    auto clients = clients_;  // check_holds may disconnect
    for (auto& [id, client] : clients) client->check_holds(now);
    schedule_hold_check();
  });
}

void Broker::shutdown() {
  if (stopped_) return;
  stopped_ = true;
  std::error_code ignored;
  listener_.close(ignored);
  hold_check_.cancel();
  auto clients = clients_;  // close_now() removes each from clients_
  for (auto& [id, client] : clients) client->close_now("broker shutting down");
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
    const auto credentials = peer_credentials(fd);
    const PeerCredentials cred = credentials ? *credentials : PeerCredentials{};
    if (!options_.policy && cred.uid != 0 && cred.uid != ::geteuid()) {
      const std::string why = "only uid " + std::to_string(::geteuid()) +
                              " and root may use this broker; it needs --policy to admit uid " +
                              std::to_string(cred.uid);
      log_.warn("refused a connection from pid " + std::to_string(cred.pid) + ": " + why);
      refuse_connection(fd, proto::ErrorCode::PERMISSION_DENIED, why);
      continue;
    }
    // A full broker still lets its operator in (root and its own uid, for shmfdctl), up to
    // kOperatorReserve connections beyond the limit; the fd budget counts them.
    const bool operator_uid = cred.uid == 0 || cred.uid == ::geteuid();
    const std::size_t cap =
        options_.limits.max_clients + (operator_uid ? kOperatorReserve : std::size_t{0});
    if (clients_.size() >= cap) {
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
    Client::Socket socket(io_);
    std::error_code ec;
    socket.assign(asio::generic::seq_packet_protocol(AF_UNIX, SOCK_SEQPACKET), owned.get(), ec);
    if (ec) {
      log_.error("cannot use an accepted socket: " + ec.message());
      continue;
    }
    (void)owned.release();
    const std::uint64_t id = next_client_id_++;
    auto client = std::make_shared<Client>(*this, id, std::move(socket), cred);
    clients_.emplace(id, client);
    client->start();
  }
}

Result<Topic*> Broker::topic(const std::string& name) {
  if (Topic* t = find_topic(name)) return t;
  if (topics_.size() >= options_.limits.max_topics) {
    return fail(Errc::malformed_message, "the broker has reached its limit of " +
                                             std::to_string(options_.limits.max_topics) +
                                             " topics (--max-topics)");
  }
  auto t = std::make_unique<Topic>();
  t->name = name;
  Topic* raw = t.get();
  topics_.emplace(name, std::move(t));
  return raw;
}

Topic* Broker::find_topic(const std::string& name) {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second.get();
}

void Broker::release_topic(Topic* topic) {
  if (topic->producer == nullptr && topic->subscribers.empty()) topics_.erase(topic->name);
}

void Broker::remove_client(Client& client) {
  clients_.erase(client.id());
}

void Broker::fill_state(proto::BrokerState::Builder state) const {
  const auto now = std::chrono::steady_clock::now();
  state.setBrokerPid(static_cast<std::uint32_t>(::getpid()));
  state.setUptimeNs(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - started_at_).count()));

  auto topics = state.initTopics(static_cast<unsigned>(topics_.size()));
  unsigned i = 0;
  for (const auto& [name, topic] : topics_) {
    auto t = topics[i++];
    t.setName(name);
    t.setKind(topic->kind);
    t.setGuarantee(to_proto(topic->guarantee));
    t.setProducer(topic->producer != nullptr ? topic->producer->id() : 0);
    t.setFrames(topic->frames);
    t.setBytes(topic->bytes);
    auto subs = t.initSubscribers(static_cast<unsigned>(topic->subscribers.size()));
    unsigned j = 0;
    for (const Subscription* sub : topic->subscribers) {
      auto s = subs[j++];
      s.setClient(sub->client->id());
      s.setQueueDepth(sub->depth);
      s.setBackpressure(sub->policy);
      s.setQueued(static_cast<std::uint32_t>(sub->queued_frames()));
      s.setInFlight(static_cast<std::uint32_t>(sub->in_flight.size()));
      s.setDelivered(sub->delivered);
      s.setDropped(sub->dropped);
    }
  }

  auto clients = state.initClients(static_cast<unsigned>(clients_.size()));
  i = 0;
  // Pools are found through their producers and through the frames subscribers hold.
  std::map<std::uint32_t, std::map<std::uint64_t, std::uint32_t>> holders;
  std::map<std::uint32_t, const PoolRecord*> pools;
  for (const auto& [id, client] : clients_) {
    client->describe_into(clients[i++], now);
    std::map<std::uint32_t, std::uint32_t> slots;
    client->count_pool_slots(slots);
    for (auto [pool, n] : slots) holders[pool][id] = n;
    client->collect_pools(pools);
  }
  auto out = state.initPools(static_cast<unsigned>(pools.size()));
  i = 0;
  for (const auto& [id, pool] : pools) {
    auto p = out[i++];
    p.setId(id);
    p.setTopic(pool->topic);
    p.setOwner(pool->owner != nullptr ? pool->owner->id() : 0);
    p.setSlotCount(pool->slot_count);
    p.setSlotSize(pool->slot_size);
    p.setSlotsBusy(
        static_cast<std::uint32_t>(std::count(pool->busy.begin(), pool->busy.end(), true)));
    const auto& h = holders[id];
    auto list = p.initHolders(static_cast<unsigned>(h.size()));
    unsigned k = 0;
    for (auto [client, n] : h) {
      list[k].setClient(client);
      list[k].setSlots(n);
      ++k;
    }
  }
}

}  // namespace shmfd::broker
