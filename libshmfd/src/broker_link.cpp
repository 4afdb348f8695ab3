// BrokerLink: the connection, ordering, answers, reconnects and channel pages that Producer and
// Consumer share (broker_link.hpp).
#include "broker_link.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <climits>

namespace shmfd::detail {

Result<std::shared_ptr<SharedConnection>> BrokerLink::connect(const std::string& socket_path,
                                                              std::string_view client_name,
                                                              Channels channels, bool frames_share,
                                                              const ReconnectOptions* retry) {
  const bool want = channels == Channels::automatic && channels_wanted();
  auto connection = retry != nullptr
                        ? Connection::reopen(socket_path, client_name, *retry, want)
                        : Connection::open(socket_path, client_name, kMaxMessageBytes, want);
  if (!connection) return fail(std::move(connection.error()));
  // Only a consumer's frames queue releases; a producer's link never sleeps on the queue, and
  // spends no eventfd on it.
  auto releases =
      frames_share ? ReleaseQueue::create() : Result<ReleaseQueue>(ReleaseQueue::unused());
  if (!releases) return fail(std::move(releases.error()));
  return std::make_shared<SharedConnection>(std::move(*connection), std::move(*releases));
}

Result<BrokerLink> BrokerLink::open(std::string socket_path, std::string_view client_name,
                                    Channels channels, bool frames_share) {
  auto shared = connect(socket_path, client_name, channels, frames_share, nullptr);
  if (!shared) return fail(std::move(shared.error()));
  return BrokerLink(std::move(*shared), std::move(socket_path), std::string(client_name), channels,
                    frames_share);
}

LocalWake BrokerLink::release_wake() noexcept {
  if (!frames_share_) return {};
  const auto& word = shared_->releases.word();
  return {&word, word.load(std::memory_order_acquire)};
}

Result<SendStatus> BrokerLink::send(capnp::MessageBuilder& message, std::span<const int> fds,
                                    IoMode mode) {
  auto words = encode_message(message);
  return send(words.bytes(), fds, mode);
}

Result<SendStatus> BrokerLink::send(std::span<const std::byte> bytes, std::span<const int> fds,
                                    IoMode mode) {
  if (mode == IoMode::blocking) {
    if (auto ok = flush(); !ok) return fail(std::move(ok.error()));
  } else {
    // Non-blocking: what is queued goes first, or this waits behind it.
    while (!queued_.empty()) {
      const Queued& q = queued_.front();
      const int fd = q.fd.get();
      auto sent = connection().send(q.message.bytes(),
                                    fd >= 0 ? std::span(&fd, 1) : std::span<const int>(), mode);
      if (!sent || *sent == SendStatus::would_block) return sent;
      queued_.pop_front();
    }
  }
  return connection().send(bytes, fds, mode);
}

Status BrokerLink::queue(capnp::MessageBuilder& message, int fd) {
  UniqueFd copy;
  if (fd >= 0) {
    // Its own copy: the owner of `fd` may close it before the message goes out (a channel that
    // closes while its page waits here).
    const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return fail_errno(errno, "dup of fd " + std::to_string(fd) + " to send");
    copy = UniqueFd(dup);
  }
  queued_.push_back({encode_message(message), std::move(copy)});
  return {};
}

Status BrokerLink::flush() {
  while (!queued_.empty()) {
    const Queued& q = queued_.front();
    const int fd = q.fd.get();
    auto sent =
        connection().send(q.message.bytes(), fd >= 0 ? std::span(&fd, 1) : std::span<const int>());
    if (!sent && sent.error().is(Errc::disconnected)) {
      // The broker has gone: that shows when the socket is read further, perhaps after a last
      // Error that says why, which a failure here would hide.
      queued_.clear();
      break;
    }
    if (!sent) return fail(std::move(sent.error()));
    queued_.pop_front();
  }
  if (!frames_share_) return {};
  for (const auto& release : shared_->releases.take()) {
    ControlMessageBuilder message;
    auto r = message.initRoot<proto::Message>().initRelease();
    r.setTopic(release.topic);
    r.setSequence(release.sequence);
    // A broker that has gone shows on the next read, perhaps after a last Error that says why.
    auto sent = send_message(connection(), message);
    if (!sent && !sent.error().is(Errc::disconnected)) return fail(std::move(sent.error()));
    if (!sent) break;
  }
  return {};
}

Result<std::optional<ReceivedMessage>> BrokerLink::receive(IoMode mode) {
  if (auto ok = flush(); !ok) return fail(std::move(ok.error()));
  if (mode == IoMode::blocking && frames_share_) return sleep_for_message();
  auto m = connection().receive(mode);
  if (!m) return fail(std::move(m.error()));
  if (m->status == RecvStatus::would_block) return std::optional<ReceivedMessage>();
  return std::optional<ReceivedMessage>(std::move(*m));
}

// A consumer's blocking read: one recvmsg, while frames released on other threads send their
// releases themselves (SharedConnection::begin_read_only), so that none waits for this read.
Result<std::optional<ReceivedMessage>> BrokerLink::sleep_for_message() {
  const std::shared_ptr<SharedConnection> shared = shared_;
  if (!in_call_) {  // every consumer read is in a call; outside one the states would go wrong
    auto m = shared->connection.receive(IoMode::blocking);
    if (!m) return fail(std::move(m.error()));
    return std::optional<ReceivedMessage>(std::move(*m));
  }
  shared->begin_read_only();
  auto m = shared->connection.receive(IoMode::blocking);
  shared->end_read_only();
  if (!m) return fail(std::move(m.error()));
  return std::optional<ReceivedMessage>(std::move(*m));
}

Status BrokerLink::wait_readable(std::chrono::steady_clock::time_point deadline) {
  ReleaseQueue& releases = shared_->releases;
  const bool wakeable = frames_share_;
  if (wakeable && !releases.begin_sleep(ReleaseQueue::Sleep::on_poll)) return flush();
  int timeout = -1;
  if (deadline != std::chrono::steady_clock::time_point::max()) {
    const auto left =
        std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    timeout = static_cast<int>(std::clamp<std::int64_t>(left.count(), 0, INT32_MAX));
  }
  pollfd fds[2] = {{connection().fd(), POLLIN, 0}, {releases.event_fd(), POLLIN, 0}};
  const int rc = ::poll(fds, wakeable ? 2 : 1, timeout);
  const int err = errno;
  if (wakeable) releases.end_sleep();
  if (rc < 0 && err != EINTR) return fail_errno(err, "poll on the broker's socket");
  return wakeable ? flush() : Status{};
}

void BrokerLink::enter_call() noexcept {
  if (!frames_share_) return;
  shared_->enter_call();
  in_call_ = true;
}

void BrokerLink::leave_call() noexcept {
  if (!frames_share_) return;
  in_call_ = false;
  shared_->leave_call();
}

bool BrokerLink::socket_due() noexcept {
  const PeerBell* b = bell();
  if (b == nullptr) return true;
  const std::uint32_t rung = b->count();
  const auto now = coarse_now();
  if (rung == bell_seen_ && now - socket_read_ < kSocketCheck) return false;
  bell_seen_ = rung;  // read before draining: a message after the drain rings again
  socket_read_ = now;
  return true;
}

Result<bool> BrokerLink::recovered(const Error& error, const std::function<Status()>& renew) {
  if (!reconnect_ || !error.is(Errc::disconnected)) return fail(Error(error));
  for (;;) {
    auto shared = connect(socket_path_, client_name_, channels_, frames_share_, &*reconnect_);
    if (!shared) return fail(std::move(shared.error()));
    // What belonged to the old broker goes with it: its pages, its order, its doorbell. A call
    // in progress goes on on the new connection.
    if (in_call_) (*shared)->enter_call();
    if (in_call_) shared_->leave_call();
    shared_ = std::move(*shared);
    queued_.clear();
    asked_.clear();
    bell_seen_ = 0;
    socket_read_ = {};
    auto renewed = renew();
    if (renewed) {
      ++reconnects_;
      return true;
    }
    if (!renewed.error().is(Errc::disconnected)) return fail(std::move(renewed.error()));
    // Gone again already: start over.
  }
}

Status BrokerLink::answer_channel_request(proto::ChannelRequest::Reader request) {
  auto policy = backpressure_from_proto(request.getBackpressure());
  if (!policy) return fail(std::move(policy.error()).prefixed("channel request"));
  const ChannelSide side = request.getSide() == proto::ChannelSide::PRODUCER
                               ? ChannelSide::producer
                               : ChannelSide::consumer;
  // Metadata entries are in the producer's page only; the consumer checks the producer's has them.
  const std::uint32_t meta_bytes = request.getMetaBytes();
  auto page =
      OwnPage::create(side, request.getCapacity(), side == ChannelSide::producer ? meta_bytes : 0);
  if (!page) return fail(std::move(page.error()).prefixed("channel request"));
  ControlMessageBuilder message;
  auto reply = message.initRoot<proto::Message>().initChannelPage();
  reply.setChannel(request.getChannel());
  reply.setSide(request.getSide());
  reply.setFd(0);
  if (auto ok = queue(message, page->fd()); !ok) return ok;
  asked_.insert_or_assign(
      request.getChannel(),
      AskedChannel{text_of(request.getTopic()), request.getQueueDepth(), *policy, std::move(*page),
                   request.getConsumerSkips(), meta_bytes});
  return {};
}

std::optional<AskedChannel> BrokerLink::take_asked(std::uint32_t channel) {
  auto it = asked_.find(channel);
  if (it == asked_.end()) return std::nullopt;
  AskedChannel asked = std::move(it->second);
  asked_.erase(it);
  return asked;
}

void BrokerLink::forget_asked_of(std::string_view topic) {
  std::erase_if(asked_, [&](const auto& a) { return a.second.topic == topic; });
}

}  // namespace shmfd::detail
