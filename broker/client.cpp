#include "client.hpp"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>

#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "broker.hpp"
#include "shmfd/asio_transport.hpp"
#include "shmfd/verify.hpp"
#include "shmfd/wire.hpp"

namespace shmfd::broker {
namespace {

using Code = proto::ErrorCode;
constexpr std::size_t kMaxClientName = 64;
constexpr auto kLinger = std::chrono::seconds(2);

std::string message_name(proto::Message::Which which) {
  using M = proto::Message;
  switch (which) {
    case M::HELLO:
      return "Hello";
    case M::WELCOME:
      return "Welcome";
    case M::ADVERTISE:
      return "Advertise";
    case M::SUBSCRIBE:
      return "Subscribe";
    case M::PUBLISH:
      return "Publish";
    case M::DELIVER:
      return "Deliver";
    case M::RELEASE:
      return "Release";
    case M::END_OF_STREAM:
      return "EndOfStream";
    case M::ERROR:
      return "Error";
    case M::ADVERTISED:
      return "Advertised";
    case M::SUBSCRIBED:
      return "Subscribed";
    case M::REGISTER_POOL:
      return "RegisterPool";
    case M::POOL_REGISTERED:
      return "PoolRegistered";
    case M::POOL_ATTACH:
      return "PoolAttach";
    case M::SLOT_FREE:
      return "SlotFree";
    case M::INTROSPECT:
      return "Introspect";
    case M::BROKER_STATE:
      return "BrokerState";
    case M::UNSUBSCRIBE:
      return "Unsubscribe";
    case M::UNSUBSCRIBED:
      return "Unsubscribed";
    case M::UNADVERTISE:
      return "Unadvertise";
    case M::UNADVERTISED:
      return "Unadvertised";
    case M::CREDIT:
      return "Credit";
  }
  return "message type " + std::to_string(static_cast<unsigned>(which));
}

// A peer's text made safe for a log line or an Error: at most `max` bytes, each byte outside
// printable ASCII (NUL among them) shown as '?'.
std::string printable(std::string_view text, std::size_t max = kMaxTopicLength) {
  std::string out(text.substr(0, max));
  for (char& c : out) {
    if (c < ' ' || c > '~') c = '?';
  }
  return out;
}

}  // namespace

std::size_t Subscription::queued_frames() const {
  return static_cast<std::size_t>(std::count_if(
      pending.begin(), pending.end(), [](const Pending& p) { return p.frame != nullptr; }));
}

Client::Client(Broker& broker, std::uint64_t id, Socket socket, PeerCredentials credentials)
    : broker_(broker),
      id_(id),
      socket_(std::move(socket)),
      credentials_(credentials),
      reader_wake_(broker.io()),
      writer_wake_(broker.io()),
      linger_(broker.io()) {
  connected_at_ = std::chrono::steady_clock::now();
  rate_refill_ = connected_at_;
  rate_budget_ = static_cast<double>(broker_.options().limits.max_message_rate);
  identity_.uid = credentials_.uid;
  identity_.gids.push_back(credentials_.gid);
  // Supplementary groups as the kernel recorded them at connect (Linux 4.13).
  std::vector<gid_t> groups(64);
  socklen_t len = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
  if (::getsockopt(socket_.native_handle(), SOL_SOCKET, SO_PEERGROUPS, groups.data(), &len) == 0) {
    groups.resize(len / sizeof(gid_t));
    identity_.gids.insert(identity_.gids.end(), groups.begin(), groups.end());
  }
  std::ifstream comm("/proc/" + std::to_string(credentials_.pid) + "/comm");
  std::getline(comm, command_);
}

std::string Client::describe() const {
  return "client " + std::to_string(id_) + " (pid " + std::to_string(credentials_.pid) + ", uid " +
         std::to_string(credentials_.uid) + (name_.empty() ? std::string() : ", '" + name_ + "'") +
         ")";
}

void Client::start() {
  auto self = shared_from_this();
  const auto on_exit = [self](const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      self->broker_.log().error(self->describe() + ": internal error: " + ex.what());
    }
    self->close("internal error");
  };
  // A connection that never says Hello must not hold its slot forever.
  linger_.expires_after(std::chrono::milliseconds(broker_.options().limits.hello_timeout_ms));
  linger_.async_wait([self](std::error_code ec) {
    if (!ec && !self->greeted_) {
      self->close("no Hello within " +
                  std::to_string(self->broker_.options().limits.hello_timeout_ms) + " ms");
    }
  });
  asio::co_spawn(
      broker_.io(), [self] { return self->read_loop(); }, on_exit);
  asio::co_spawn(
      broker_.io(), [self] { return self->write_loop(); }, on_exit);
}

void Client::close(const std::string& why) {
  if (closed_ || close_requested_) return;
  close_requested_ = true;
  reader_wake_.cancel();  // a reader held back by backpressure or the rate limit stops now
  asio::post(broker_.io(), [self = shared_from_this(), why] { self->close_now(why); });
}

void Client::close_now(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  broker_.log().info(describe() + " disconnected: " + why);
  leave_topics();
  replies_.clear();
  slot_frees_.clear();
  stalled_.reset();
  if (socket_.is_open()) {
    // Closing with unread messages makes the kernel report ECONNRESET to the client before
    // the replies already sent to it, so it could not read why it was cut off. Stop it
    // sending first (SHUT_RD makes its sends fail with EPIPE), then discard what it sent.
    const int fd = socket_.native_handle();
    ::shutdown(fd, SHUT_RDWR);
    MessageBuffer sink(broker_.options().limits.max_message_bytes);
    for (int i = 0; i < 4096; ++i) {
      auto m = receive_message(fd, sink.bytes(), kMaxFdsPerMessage, IoMode::non_blocking);
      if (m && m->status != RecvStatus::message) break;  // its fds, if any, close here
      if (!m && !m.error().is(Errc::fds_truncated) && !m.error().is(Errc::message_truncated) &&
          !m.error().is(Errc::empty_message)) {
        break;
      }
    }
  }
  std::error_code ignored;
  socket_.close(ignored);
  reader_wake_.cancel();
  writer_wake_.cancel();
  linger_.cancel();
  broker_.remove_client(*this);
}

void Client::wake_reader() {
  reader_wake_.cancel();
}
void Client::wake_writer() {
  // With the write loop parked and nothing stalled before it, send right here: the message
  // leaves without a trip through the scheduler (and its epoll_wait). Not while handling this
  // client's own message: a reply to it must leave after the fds it carried are closed, so a
  // refused producer knows the broker holds none of them.
  if (writer_idle_ && !stalled_ && !flushing_ && !handling_ && !closed_ && !close_requested_ &&
      !writer_gone_ && !close_after_replies_) {
    flush_now();
    return;
  }
  writer_wake_.cancel();
}

asio::awaitable<void> Client::read_loop() {
  MessageBuffer buffer(broker_.options().limits.max_message_bytes);
  while (!closed_ && !close_requested_ && !close_after_replies_) {
    // Block-producer backpressure: while a subscriber of one of our topics is full, leave our
    // messages in the socket; the producer's sends then block in its own process. The
    // --max-message-rate works the same way: past it, the next message waits in the socket
    // until the client's budget has room again. Nothing is lost, and nothing is read early.
    for (;;) {
      if (closed_ || close_requested_) break;
      if (must_hold_producer()) {
        reader_wake_.expires_at(asio::steady_timer::time_point::max());
      } else if (const auto wait = time_until_rate_allows(); wait.count() > 0) {
        reader_wake_.expires_after(wait);
      } else {
        break;
      }
      std::error_code ec;
      co_await reader_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    }
    if (closed_ || close_requested_) break;
    auto received = co_await async_receive_message(socket_, buffer.bytes(), 1, asio::use_awaitable);
    if (closed_) break;
    if (!received) {
      const Error& e = received.error();
      if (e.is(Errc::fds_truncated) || e.is(Errc::message_truncated) || e.is(Errc::empty_message)) {
        // Every fd it carried is closed already.
        refuse(e.is(Errc::empty_message) ? Code::MALFORMED_MESSAGE : wire_error_code(e),
               e.message());
        continue;
      }
      close("receive failed: " + e.message());
      break;
    }
    if (received->status == RecvStatus::peer_closed) {
      close("connection closed by the client");
      break;
    }
    if (broker_.options().limits.max_message_rate != 0) rate_budget_ -= 1.0;
    handling_ = true;
    handle(buffer.bytes(received->size), std::move(received->fds));
    handling_ = false;
  }
}

std::chrono::nanoseconds Client::time_until_rate_allows() {
  const std::uint64_t rate = broker_.options().limits.max_message_rate;
  if (rate == 0) return std::chrono::nanoseconds(0);
  const double per_second = static_cast<double>(rate);
  const auto now = std::chrono::steady_clock::now();
  const std::chrono::duration<double> elapsed = now - rate_refill_;
  rate_refill_ = now;
  // At most one second's worth is saved up: bursts up to the rate pass at once.
  rate_budget_ = std::min(per_second, rate_budget_ + elapsed.count() * per_second);
  if (rate_budget_ >= 1.0) return std::chrono::nanoseconds(0);
  const double seconds = (1.0 - rate_budget_) / per_second;
  return std::chrono::nanoseconds(static_cast<std::int64_t>(seconds * 1e9) + 1);
}

bool Client::within_pinned_limit(std::uint64_t bytes, const std::string& topic,
                                 std::uint64_t sequence) {
  const std::uint64_t limit = broker_.options().limits.max_pinned_bytes;
  const std::uint64_t pinned = account_->pinned_bytes;
  if (bytes <= limit && pinned <= limit - bytes) return true;
  refuse(Code::LIMIT_EXCEEDED,
         "the broker already holds " + std::to_string(pinned) +
             " bytes of this client's buffers; " + std::to_string(bytes) +
             " more would pass the broker's --max-pinned-bytes " + std::to_string(limit),
         topic, sequence);
  return false;
}

void Client::flush_now() {
  flushing_ = true;
  for (;;) {
    Outgoing out;
    if (!next_outgoing(out.words, out.fd, out.keep)) break;
    const auto fds = out.fd >= 0 ? std::span<const int>(&out.fd, 1) : std::span<const int>();
    auto sent =
        send_message(socket_.native_handle(), as_bytes(out.words), fds, IoMode::non_blocking);
    if (sent && *sent == SendStatus::sent) continue;
    // Would block, or failed: the write loop waits for room, or reports the failure.
    stalled_ = std::move(out);
    writer_wake_.cancel();
    break;
  }
  flushing_ = false;
}

asio::awaitable<void> Client::write_loop() {
  while (!closed_) {
    Outgoing out;  // out.keep holds out.fd open until the send completes
    if (stalled_) {
      out = std::move(*stalled_);
      stalled_.reset();
    } else if (!next_outgoing(out.words, out.fd, out.keep)) {
      if (close_after_replies_) {
        close("disconnected by the broker");
        break;
      }
      writer_wake_.expires_at(asio::steady_timer::time_point::max());
      std::error_code ec;
      writer_idle_ = true;
      co_await writer_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      writer_idle_ = false;
      continue;
    }
    const auto fds = out.fd >= 0 ? std::span<const int>(&out.fd, 1) : std::span<const int>();
    auto sent = co_await async_send_message(socket_, as_bytes(out.words), fds, asio::use_awaitable);
    if (closed_) break;
    if (!sent) {
      const Error& e = sent.error();
      if (e.is(std::errc::broken_pipe) || e.is(std::errc::connection_reset)) {
        // The client has gone, but messages it sent before may still wait in its socket
        // (frames of a block-producer topic must not be lost): the reader drains them and
        // closes at end of file.
        writer_gone_ = true;
        replies_.clear();
        stalled_.reset();
        if (close_after_replies_) {
          close("gone before reading its final error");  // its reader has stopped already
          break;
        }
        reader_wake_.cancel();
        break;
      }
      close("send failed: " + e.message());
      break;
    }
  }
}

void Client::handle(std::span<const std::byte> bytes, std::vector<UniqueFd> fds) {
  using M = proto::Message;
  auto handled = decode_message<proto::Message>(bytes, [&](M::Reader m) -> Status {
    const auto which = m.which();
    if (!greeted_ && which != M::HELLO) {
      close_after_replies_ = true;
      refuse(Code::UNEXPECTED_MESSAGE,
             "the first message must be Hello, not " + message_name(which));
      return {};
    }
    if (which != M::PUBLISH && which != M::REGISTER_POOL && !fds.empty()) {
      refuse(Code::WRONG_FD_COUNT, message_name(which) + " takes no fds; the " +
                                       std::to_string(fds.size()) + " attached were closed");
      return {};  // `fds` closes them
    }
    if (which == M::PUBLISH && !fds.empty()) {
      // Counted on reading, whatever the answer: the producer's window is about its sends.
      if (++credit_owed_ >= credit_threshold()) wake_writer();
    }
    switch (which) {
      case M::HELLO:
        on_hello(m.getHello());
        break;
      case M::ADVERTISE:
        on_advertise(m.getAdvertise());
        break;
      case M::SUBSCRIBE:
        on_subscribe(m.getSubscribe());
        break;
      case M::PUBLISH:
        on_publish(m.getPublish(), fds);
        break;
      case M::RELEASE:
        on_release(m.getRelease());
        break;
      case M::REGISTER_POOL:
        on_register_pool(m.getRegisterPool(), fds);
        break;
      case M::INTROSPECT:
        on_introspect();
        break;
      case M::UNSUBSCRIBE:
        on_unsubscribe(m.getUnsubscribe());
        break;
      case M::UNADVERTISE:
        on_unadvertise(m.getUnadvertise());
        break;
      default:
        refuse(Code::UNEXPECTED_MESSAGE, "clients do not send " + message_name(which));
        break;
    }
    return {};
  });
  if (!handled) refuse(wire_error_code(handled.error()), handled.error().message());
}

void Client::on_hello(proto::Hello::Reader hello) {
  if (greeted_) {
    refuse(Code::UNEXPECTED_MESSAGE, "Hello sent twice");
    return;
  }
  // The client names the newest version it speaks; the connection uses the newest both speak.
  const std::uint32_t version = std::min(hello.getVersion(), kProtocolVersion);
  if (version < kMinProtocolVersion) {
    close_after_replies_ = true;
    refuse(Code::PROTOCOL_VERSION,
           "client speaks protocol version " + std::to_string(hello.getVersion()) +
               ", this broker speaks versions " + std::to_string(kMinProtocolVersion) + " to " +
               std::to_string(kProtocolVersion));
    return;
  }
  name_ = printable(view(hello.getClientName()), kMaxClientName);
  greeted_ = true;
  linger_.cancel();  // the Hello deadline
  ControlMessageBuilder message;
  auto welcome = message.initRoot<proto::Message>().initWelcome();
  welcome.setVersion(version);
  welcome.setMaxMessageBytes(
      static_cast<std::uint32_t>(broker_.options().limits.max_message_bytes));
  welcome.setMaxFdsPerMessage(1);
  welcome.setPublishWindow(broker_.options().limits.publish_window);
  reply(message);
  broker_.log().info(describe() + " connected");
}

void Client::on_advertise(proto::Advertise::Reader advertise) {
  const std::string name = text_of(advertise.getTopic());
  const auto kind = advertise.getKind();
  auto guarantee = guarantee_from_proto(advertise.getGuarantee());
  if (auto ok = check_topic_name(name); !ok)
    return refuse(Code::INVALID_TOPIC_NAME, ok.error().message(), printable(name));
  if (!guarantee) return refuse(Code::MALFORMED_MESSAGE, guarantee.error().message(), name);
  if (static_cast<unsigned>(kind) > static_cast<unsigned>(LayoutKind::TENSOR)) {
    return refuse(Code::MALFORMED_MESSAGE,
                  "unknown layout kind " + std::to_string(static_cast<unsigned>(kind)), name);
  }
  if (!permitted(Right::publish, name)) return;
  Topic* t = broker_.find_topic(name);
  if (t != nullptr && t->producer != nullptr && t->producer != this &&
      t->producer->hung_up_with_nothing_unread()) {
    // A producer restarted after a crash often advertises before the broker has read the
    // old connection's end of file: that one is gone, let the new one take over now. The old
    // client gives the topic up here and is closed after this event.
    Client* old = t->producer;
    const std::string why = "hung up (noticed when " + describe() + " advertised '" + name + "')";
    old->stop_producing(t, "the producer, " + old->describe() + ", left");
    old->close(why);
  }
  auto topic = broker_.topic(name);  // the old producer's leaving may have removed the topic
  if (!topic) return refuse(Code::LIMIT_EXCEEDED, topic.error().message(), name);
  t = *topic;
  if (t->producer == this) {
    // Advertising again is harmless when nothing changes; a topic's kind and guarantee are
    // fixed while it has a producer, since subscribers and pools rely on them.
    if (t->kind != kind || t->guarantee != *guarantee) {
      return refuse(Code::ALREADY_ADVERTISED,
                    "this client already produces '" + name + "' as " +
                        std::string(to_string(t->kind)) + ", " +
                        std::string(to_string(t->guarantee)) + "; Unadvertise it to change that",
                    name);
    }
    ControlMessageBuilder again;
    again.initRoot<proto::Message>().initAdvertised().setTopic(name);
    return reply(again);
  }
  if (t->producer != nullptr) {
    // A state conflict, not misbehaviour: it counts no strike (the rate limit bounds retries).
    return refuse(Code::TOPIC_TAKEN,
                  "topic '" + name + "' already has a producer: " + t->producer->describe(), name,
                  0, false);
  }
  t->producer = this;
  t->kind = kind;
  t->guarantee = *guarantee;
  t->last_sequence = 0;  // sequences are the producer's: a new one starts afresh
  produced_.insert(t);
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initAdvertised().setTopic(name);
  reply(message);
  broker_.log().info(describe() + " produces '" + name + "' (" + std::string(to_string(kind)) +
                     ", " + std::string(to_string(*guarantee)) + ")");
}

void Client::on_subscribe(proto::Subscribe::Reader subscribe) {
  const std::string name = text_of(subscribe.getTopic());
  const auto policy = subscribe.getBackpressure();
  const Limits& limits = broker_.options().limits;
  if (auto ok = check_topic_name(name); !ok)
    return refuse(Code::INVALID_TOPIC_NAME, ok.error().message(), printable(name));
  if (policy != Backpressure::DROP_OLDEST && policy != Backpressure::BLOCK_PRODUCER) {
    return refuse(Code::MALFORMED_MESSAGE,
                  "unknown backpressure policy " + std::to_string(static_cast<unsigned>(policy)),
                  name);
  }
  if (!permitted(Right::subscribe, name)) return;
  auto existing = subscriptions_.find(name);
  if (existing != subscriptions_.end() && existing->second->topic != nullptr) {
    return refuse(Code::ALREADY_SUBSCRIBED, "already subscribed to '" + name + "'", name);
  }
  if (existing == subscriptions_.end() &&
      subscriptions_.size() >= limits.max_subscriptions_per_client) {
    return refuse(Code::LIMIT_EXCEEDED,
                  "a client may hold at most " +
                      std::to_string(limits.max_subscriptions_per_client) +
                      " subscriptions (--max-subscriptions)",
                  name);
  }
  const std::uint32_t requested = subscribe.getQueueDepth();
  const std::uint32_t depth =
      requested == 0 ? limits.default_queue_depth : std::min(requested, limits.max_queue_depth);
  // A block-producer queue can hold one frame past its depth (the one read before it filled).
  std::size_t queued = depth + 1;
  for (const auto& [other, sub] : subscriptions_) {
    if (other != name) queued += sub->depth + 1;
  }
  if (queued > limits.max_queued_fds_per_client) {
    return refuse(Code::LIMIT_EXCEEDED,
                  "queue depth " + std::to_string(depth) + " would let this client have " +
                      std::to_string(queued) + " frames queued in the broker; the limit is " +
                      std::to_string(limits.max_queued_fds_per_client) + " (--max-queued-fds)",
                  name);
  }
  auto topic = broker_.topic(name);
  if (!topic) return refuse(Code::LIMIT_EXCEEDED, topic.error().message(), name);

  // Subscribing again after Unsubscribe takes up the old entry: the frames it still holds
  // stay held, and count against the new depth.
  if (existing == subscriptions_.end()) {
    existing = subscriptions_.emplace(name, std::make_unique<Subscription>()).first;
  }
  Subscription& s = *existing->second;
  s.topic = *topic;
  s.client = this;
  s.depth = depth;
  s.policy = policy;
  (*topic)->subscribers.push_back(&s);

  ControlMessageBuilder message;
  auto subscribed = message.initRoot<proto::Message>().initSubscribed();
  subscribed.setTopic(name);
  subscribed.setQueueDepth(depth);
  reply(message);
  broker_.log().info(
      describe() + " subscribes to '" + name + "' (depth " + std::to_string(depth) +
      (policy == Backpressure::DROP_OLDEST ? ", drop-oldest)" : ", block-producer)"));
  if (broker_.options().keep_last_frame && s.topic->last) enqueue(s, Pending{s.topic->last, {}});
}

void Client::on_publish(proto::Publish::Reader publish, std::vector<UniqueFd>& fds) {
  const std::string name = text_of(publish.getTopic());
  const auto frame = publish.getFrame();
  const std::uint64_t sequence = frame.getSequence();
  const std::uint64_t timestamp = frame.getTimestampNs();
  const std::uint32_t fd_number = frame.getFd();
  auto layout = layout_from_proto(frame.getLayout());

  Topic* t = broker_.find_topic(name);
  if (t == nullptr || t->producer != this) {
    return refuse(Code::UNKNOWN_TOPIC,
                  "publish on '" + printable(name) + "', which this client has not advertised",
                  printable(name), sequence);
  }
  if (!layout)
    return refuse(wire_error_code(layout.error()), layout.error().message(), name, sequence);
  if (sequence == 0 || sequence <= t->last_sequence) {
    // Releases name a frame by (topic, sequence): two frames held under one sequence could
    // not be told apart, and 0 means "no frame" in an Error.
    return refuse(Code::BAD_SEQUENCE,
                  "frame sequence " + std::to_string(sequence) +
                      (sequence == 0 ? std::string(" is reserved; sequences start at 1")
                                     : " is not greater than this producer's last on '" + name +
                                           "', " + std::to_string(t->last_sequence)),
                  name, sequence);
  }
  if (frame.getPool() != 0) {
    if (!fds.empty()) {
      return refuse(Code::WRONG_FD_COUNT,
                    "a frame in a pool slot carries no fd; the " + std::to_string(fds.size()) +
                        " attached were closed",
                    name, sequence);
    }
    return publish_slot(*t, frame, *layout);
  }
  if (fds.size() != 1) {
    return refuse(
        Code::WRONG_FD_COUNT,
        "a Publish carries exactly one fd, this one carried " + std::to_string(fds.size()), name,
        sequence);
  }
  auto index = fd_index(fd_number, fds.size());
  if (!index) return refuse(Code::WRONG_FD_COUNT, index.error().message(), name, sequence);
  if (layout_kind(*layout) != t->kind) {
    return refuse(Code::INVALID_LAYOUT,
                  "topic '" + name + "' carries " + std::string(to_string(t->kind)) +
                      " layouts, this frame has a " + std::string(to_string(layout_kind(*layout))) +
                      " layout",
                  name, sequence);
  }
  auto extent = layout_extent(*layout);
  if (!extent) return refuse(Code::INVALID_LAYOUT, extent.error().message(), name, sequence);
  auto verified = verify_buffer(fds[*index].get(), t->guarantee, *extent);
  if (!verified) {
    return refuse(wire_error_code(verified.error()), verified.error().message(), name, sequence);
  }
  const bool kept = !t->subscribers.empty() || broker_.options().keep_last_frame;
  // Only a frame the broker keeps pins memory (with no subscriber it is closed right away).
  if (kept && !within_pinned_limit(verified->size, name, sequence)) return;
  t->last_sequence = sequence;
  ++t->frames;
  t->bytes += *extent;
  if (!kept) {
    // Its last close may free the whole buffer: off the event loop when that is slow.
    DeferredFd(std::move(fds[*index]), broker_.closer(), verified->size);
    return;
  }
  // Consumers get a read-only open of the memfd of the broker's own, not the producer's file
  // description: it cannot write whatever the seals, and shares no flags with the producer's.
  auto read_only = reopen_read_only(fds[*index].get());
  if (!read_only) {
    return refuse(wire_error_code(read_only.error()), read_only.error().message(), name, sequence);
  }

  auto record = std::make_shared<FrameRecord>();
  record->fd = DeferredFd(std::move(*read_only), broker_.closer(), verified->size);
  record->layout = *layout;
  record->sequence = sequence;
  record->timestamp_ns = timestamp;
  record->bytes = verified->size;
  record->charge = Charge(account_, verified->size);
  FramePtr shared = std::move(record);
  if (broker_.options().keep_last_frame) t->last = shared;  // fd frames only: never a pool slot
  for (Subscription* sub : t->subscribers) sub->client->enqueue(*sub, Pending{shared, {}});
  if (broker_.log().enabled(LogLevel::debug)) {
    broker_.log().debug(describe() + " published frame " + std::to_string(sequence) + " of '" +
                        name + "' (" + std::to_string(verified->size) + " bytes) to " +
                        std::to_string(t->subscribers.size()) + " subscribers");
  }
}

void Client::on_release(proto::Release::Reader release) {
  const std::string name = text_of(release.getTopic());
  const std::uint64_t sequence = release.getSequence();
  auto it = subscriptions_.find(name);
  if (it == subscriptions_.end()) {
    return refuse(Code::NOT_SUBSCRIBED,
                  "release on '" + printable(name) +
                      "', where this client is not subscribed and holds no frame",
                  printable(name), sequence);
  }
  auto& in_flight = it->second->in_flight;
  auto frame = std::find_if(in_flight.begin(), in_flight.end(),
                            [sequence](const InFlight& f) { return f.sequence == sequence; });
  if (frame == in_flight.end()) {
    return refuse(Code::NOT_HELD,
                  "release of frame " + std::to_string(sequence) + " on '" + name +
                      "', which this client does not hold",
                  name, sequence);
  }
  if (frame->pool_frame && --slots_held_ < broker_.options().limits.max_slots_held) {
    told_slots_held_ = false;
  }
  if (broker_.log().enabled(LogLevel::debug)) {
    broker_.log().debug(describe() + " released frame " + std::to_string(sequence) + " of '" +
                        name + "'");
  }
  in_flight.erase(frame);  // a pool frame's slot is freed here if this was the last holder
  if (it->second->topic == nullptr && in_flight.empty()) subscriptions_.erase(it);  // unsubscribed
  wake_writer();
}

void Client::on_unsubscribe(proto::Unsubscribe::Reader unsubscribe) {
  const std::string name = text_of(unsubscribe.getTopic());
  auto it = subscriptions_.find(name);
  if (it == subscriptions_.end() || it->second->topic == nullptr) {
    return refuse(Code::NOT_SUBSCRIBED,
                  "unsubscribe from '" + printable(name) + "', where this client is not subscribed",
                  printable(name));
  }
  Subscription& sub = *it->second;
  Topic* t = sub.topic;
  std::erase(t->subscribers, &sub);
  sub.topic = nullptr;
  sub.pending.clear();  // frames queued here are dropped (a pool slot frees if this held it last)
  // The consumer may unmap the topic's pools now: a later subscription gets their fds again.
  std::erase_if(attached_pools_, [&](const auto& pool) { return pool.second == name; });
  if (sub.in_flight.empty()) subscriptions_.erase(it);
  if (t->producer != nullptr) t->producer->wake_reader();
  broker_.release_topic(t);
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initUnsubscribed().setTopic(name);
  reply(message);
  broker_.log().info(describe() + " unsubscribed from '" + name + "'");
}

void Client::on_unadvertise(proto::Unadvertise::Reader unadvertise) {
  const std::string name = text_of(unadvertise.getTopic());
  Topic* t = broker_.find_topic(name);
  if (t == nullptr || t->producer != this) {
    return refuse(Code::UNKNOWN_TOPIC,
                  "unadvertise '" + printable(name) + "', which this client does not produce",
                  printable(name));
  }
  stop_producing(t, "the producer, " + describe() + ", stopped producing it");
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initUnadvertised().setTopic(name);
  reply(message);
  broker_.log().info(describe() + " no longer produces '" + name + "'");
}

void Client::stop_producing(Topic* t, const std::string& why) {
  t->producer = nullptr;
  t->last.reset();
  for (Subscription* s : t->subscribers) s->client->enqueue(*s, Pending{nullptr, why});
  produced_.erase(t);
  // Pools live on while frames of them are queued or held; their freed slots go nowhere now.
  for (auto it = pools_.begin(); it != pools_.end();) {
    if (it->second->topic != t->name) {
      ++it;
      continue;
    }
    const std::uint32_t id = it->first;
    it->second->owner = nullptr;
    std::erase_if(slot_frees_, [id](const auto& free) { return free.first == id; });
    it = pools_.erase(it);
  }
  broker_.release_topic(t);
}

void Client::on_register_pool(proto::RegisterPool::Reader reg, std::vector<UniqueFd>& fds) {
  const std::string name = text_of(reg.getTopic());
  const std::uint32_t slots = reg.getSlotCount();
  const std::uint64_t slot_size = reg.getSlotSize();
  const Limits& limits = broker_.options().limits;
  Topic* t = broker_.find_topic(name);
  if (t == nullptr || t->producer != this) {
    return refuse(Code::UNKNOWN_TOPIC,
                  "pool for '" + printable(name) + "', which this client has not advertised",
                  printable(name));
  }
  if (t->guarantee != Guarantee::pool) {
    return refuse(Code::GUARANTEE_MISMATCH,
                  "topic '" + name +
                      "' was advertised with the sealed guarantee; "
                      "pools need the pool guarantee",
                  name);
  }
  if (pools_.size() >= limits.max_pools_per_client) {
    return refuse(Code::LIMIT_EXCEEDED,
                  "a client may register at most " + std::to_string(limits.max_pools_per_client) +
                      " pools (--max-pools)",
                  name);
  }
  if (fds.size() != 1) {
    return refuse(
        Code::WRONG_FD_COUNT,
        "a RegisterPool carries exactly one fd, this one carried " + std::to_string(fds.size()),
        name);
  }
  auto index = fd_index(reg.getFd(), fds.size());
  if (!index) return refuse(Code::WRONG_FD_COUNT, index.error().message(), name);
  if (slots == 0 || slots > limits.max_pool_slots) {
    return refuse(Code::LIMIT_EXCEEDED,
                  "a pool has 1 to " + std::to_string(limits.max_pool_slots) +
                      " slots (--max-pool-slots), not " + std::to_string(slots),
                  name);
  }
  std::uint64_t total = 0;
  if (slot_size == 0 || __builtin_mul_overflow(slot_size, std::uint64_t{slots}, &total)) {
    return refuse(Code::INVALID_LAYOUT,
                  "slot size " + std::to_string(slot_size) + " x " + std::to_string(slots) +
                      " slots is not a size",
                  name);
  }
  auto verified = verify_buffer(fds[*index].get(), Guarantee::pool, total);
  if (!verified) return refuse(wire_error_code(verified.error()), verified.error().message(), name);
  if (slot_size % verified->page_size != 0) {
    return refuse(Code::INVALID_LAYOUT,
                  "slot size " + std::to_string(slot_size) +
                      " is not a multiple of the pool's page size " +
                      std::to_string(verified->page_size),
                  name);
  }
  if (!within_pinned_limit(verified->size, name, 0)) return;
  // As for fd frames: consumers get a read-only open of the broker's own.
  auto read_only = reopen_read_only(fds[*index].get());
  if (!read_only)
    return refuse(wire_error_code(read_only.error()), read_only.error().message(), name);
  auto pool = std::make_shared<PoolRecord>();
  pool->charge = Charge(account_, verified->size);
  pool->id = broker_.next_pool_id();
  pool->topic = name;
  pool->fd = DeferredFd(std::move(*read_only), broker_.closer());
  pool->slot_count = slots;
  pool->slot_size = slot_size;
  pool->owner = this;
  pool->busy.assign(slots, false);
  pool->free_queued.assign(slots, false);
  pools_.emplace(pool->id, pool);

  ControlMessageBuilder message;
  auto registered = message.initRoot<proto::Message>().initPoolRegistered();
  registered.setTopic(name);
  registered.setPool(pool->id);
  reply(message);
  broker_.log().info(describe() + " registered pool " + std::to_string(pool->id) + " for '" + name +
                     "': " + std::to_string(slots) + " slots of " + std::to_string(slot_size) +
                     " bytes" + (verified->huge_pages ? " (huge pages)" : ""));
}

void Client::publish_slot(Topic& t, proto::Frame::Reader frame, const Layout& layout) {
  const std::uint64_t sequence = frame.getSequence();
  const std::uint32_t id = frame.getPool();
  const std::uint32_t slot = frame.getSlot();
  auto it = pools_.find(id);
  if (it == pools_.end() || it->second->topic != t.name) {
    return refuse(
        Code::UNKNOWN_POOL,
        "pool " + std::to_string(id) + " is not one of this client's pools for '" + t.name + "'",
        t.name, sequence);
  }
  PoolRecord& pool = *it->second;
  if (slot >= pool.slot_count) {
    return refuse(Code::UNKNOWN_POOL,
                  "slot " + std::to_string(slot) + " of pool " + std::to_string(id) +
                      ", a pool of " + std::to_string(pool.slot_count) + " slots",
                  t.name, sequence);
  }
  if (pool.busy[slot]) {
    return refuse(Code::SLOT_BUSY,
                  "slot " + std::to_string(slot) + " of pool " + std::to_string(id) +
                      " is still held by a consumer; publish it again only after SlotFree",
                  t.name, sequence);
  }
  if (layout_kind(layout) != t.kind) {
    return refuse(Code::INVALID_LAYOUT,
                  "topic '" + t.name + "' carries " + std::string(to_string(t.kind)) +
                      " layouts, this frame has a " + std::string(to_string(layout_kind(layout))) +
                      " layout",
                  t.name, sequence);
  }
  auto extent = validate_layout(layout, pool.slot_size);
  if (!extent) {
    return refuse(
        Code::INVALID_LAYOUT,
        "slot of " + std::to_string(pool.slot_size) + " bytes: " + extent.error().message(), t.name,
        sequence);
  }
  pool.busy[slot] = true;
  t.last_sequence = sequence;
  auto record = std::make_shared<FrameRecord>();
  record->layout = layout;
  record->sequence = sequence;
  record->timestamp_ns = frame.getTimestampNs();
  record->pool = it->second;
  record->slot = slot;
  record->bytes = pool.slot_size;
  ++t.frames;
  t.bytes += *extent;
  {
    FramePtr shared = std::move(record);
    for (Subscription* sub : t.subscribers) sub->client->enqueue(*sub, Pending{shared, {}});
  }  // with no subscriber that was the last reference: the slot is free again right here
  if (broker_.log().enabled(LogLevel::debug)) {
    broker_.log().debug(describe() + " published frame " + std::to_string(sequence) + " of '" +
                        t.name + "' (slot " + std::to_string(slot) + " of pool " +
                        std::to_string(pool.id) + ") to " + std::to_string(t.subscribers.size()) +
                        " subscribers");
  }
  if (pool.all_busy()) {
    // The producer has no slot left. Frames only queued for drop-oldest subscribers that are
    // behind give theirs up (counted as drops): such a subscriber holds back no one beyond
    // the slots it holds, and those are bounded by its pool window (topic.hpp).
    for (Subscription* sub : t.subscribers) {
      if (sub->policy == Backpressure::DROP_OLDEST) sub->drop_queued_frames_of(pool);
    }
    // Still dry: the slots are held (or queued for block-producer subscribers). check_holds
    // judges holders stuck past the deadline by how long this lasts.
    if (pool.all_busy() && !pool.dry_since) pool.dry_since = std::chrono::steady_clock::now();
  }
}

void Client::on_introspect() {
  // Only the broker's own user and root may see everyone's topics and processes.
  if (!permitted(Right::introspect, "")) return;
  ControlMessageBuilder message;
  broker_.fill_state(message.initRoot<proto::Message>().initBrokerState());
  reply(message);
}

bool Client::permitted(Right right, const std::string& topic) {
  if (credentials_.uid == 0 || credentials_.uid == ::geteuid()) return true;
  const auto& policy = broker_.options().policy;
  if (policy && policy->allows(identity_, right, topic)) return true;
  const std::string what = right == Right::introspect
                               ? "introspect the broker"
                               : std::string(to_string(right)) + " on '" + topic + "'";
  refuse(
      Code::PERMISSION_DENIED,
      "uid " + std::to_string(credentials_.uid) + " may not " + what +
          (policy ? " (no rule of the broker's policy grants it)" : " (the broker has no policy)"),
      topic);
  return false;
}

void Client::describe_into(proto::ClientInfo::Builder info,
                           std::chrono::steady_clock::time_point now) const {
  info.setId(id_);
  info.setPid(credentials_.pid);
  info.setUid(credentials_.uid);
  info.setGid(credentials_.gid);
  info.setName(name_);
  info.setCommand(command_);
  info.setConnectedNs(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(now - connected_at_).count()));
  info.setProduces(static_cast<std::uint32_t>(produced_.size()));
  info.setSubscribes(static_cast<std::uint32_t>(
      std::count_if(subscriptions_.begin(), subscriptions_.end(),
                    [](const auto& entry) { return entry.second->topic != nullptr; })));
  std::uint64_t pinned = 0;
  for (const auto& [name, sub] : subscriptions_) {
    for (const Pending& p : sub->pending) pinned += p.frame ? p.frame->bytes : 0;
    for (const InFlight& f : sub->in_flight) pinned += f.pool_frame ? f.pool_frame->bytes : 0;
  }
  info.setBytesPinned(pinned);
}

void Client::count_pool_slots(std::map<std::uint32_t, std::uint32_t>& slots) const {
  for (const auto& [name, sub] : subscriptions_) {
    for (const Pending& p : sub->pending) {
      if (p.frame && p.frame->pool) ++slots[p.frame->pool->id];
    }
    for (const InFlight& f : sub->in_flight) {
      if (f.pool_frame) ++slots[f.pool_frame->pool->id];
    }
  }
}

void Client::collect_pools(std::map<std::uint32_t, const PoolRecord*>& pools) const {
  for (const auto& [id, pool] : pools_) pools[id] = pool.get();
  for (const auto& [name, sub] : subscriptions_) {
    for (const Pending& p : sub->pending) {
      if (p.frame && p.frame->pool) pools[p.frame->pool->id] = p.frame->pool.get();
    }
    for (const InFlight& f : sub->in_flight) {
      if (f.pool_frame) pools[f.pool_frame->pool->id] = f.pool_frame->pool.get();
    }
  }
}

void PoolRecord::release_slot(std::uint32_t slot) {
  busy[slot] = false;
  dry_since.reset();
  if (owner != nullptr) owner->slot_free(id, slot);
}

void Client::slot_free(std::uint32_t pool, std::uint32_t slot) {
  if (closed_ || close_requested_ || writer_gone_) return;
  auto it = pools_.find(pool);
  if (it == pools_.end() || it->second->free_queued[slot]) return;  // one notice says it all
  it->second->free_queued[slot] = true;
  slot_frees_.emplace_back(pool, slot);
  wake_writer();
}

void Client::check_holds(std::chrono::steady_clock::time_point now) {
  if (closed_ || close_requested_) return;
  if (close_after_replies_) {
    // Closing once its last replies are out; a consumer that does not read may never take
    // them (its socket full). One check interval is all it gets.
    if (final_replies_checked_) close("did not read its final error");
    final_replies_checked_ = true;
    return;
  }
  const Limits& limits = broker_.options().limits;
  const auto deadline = std::chrono::milliseconds(limits.hold_deadline_ms);
  for (auto& [name, sub] : subscriptions_) {
    for (InFlight& f : sub->in_flight) {
      if (now - f.since < deadline) continue;
      // A held pool slot is memory its producer cannot reuse; a frame held by a block-producer
      // subscriber holds its producer back. A fresh frame held otherwise costs no one else.
      if (!f.pool_frame && sub->policy != Backpressure::BLOCK_PRODUCER) continue;
      const std::string where = f.pool_frame
                                    ? "slot " + std::to_string(f.pool_frame->slot) + " of pool " +
                                          std::to_string(f.pool_frame->pool->id)
                                    : std::string("a block-producer subscription");
      const std::string what = describe() + " has held frame " + std::to_string(f.sequence) +
                               " of '" + name + "' (" + where + ") for more than " +
                               std::to_string(limits.hold_deadline_ms) + " ms";
      if (!f.reported) {
        f.reported = true;
        broker_.log().warn(what);
      }
      // Judged again at every check: a pool can run dry long after the hold was reported.
      std::string why;
      if (limits.stuck == StuckPolicy::always) {
        why = what + "; disconnecting";
      } else if (limits.stuck == StuckPolicy::pool_dry && f.pool_frame &&
                 sub->policy == Backpressure::DROP_OLDEST) {
        const auto& dry = f.pool_frame->pool->dry_since;
        if (dry && now - *dry >= deadline / 4) {
          why = what + ", and the pool has had no free slot for " +
                std::to_string(
                    std::chrono::duration_cast<std::chrono::milliseconds>(now - *dry).count()) +
                " ms; disconnecting";
        }
      }
      if (!why.empty()) {
        // Disconnecting clears subscriptions_: leave the loops first.
        const std::string topic = name;
        const std::uint64_t sequence = f.sequence;
        close_after_replies_ = true;
        refuse(Code::LIMIT_EXCEEDED, why, topic, sequence);
        return;
      }
    }
  }
}

void Client::enqueue(Subscription& sub, Pending entry) {
  if (entry.frame != nullptr && sub.policy == Backpressure::DROP_OLDEST) {
    while (sub.queued_frames() >= sub.depth) {
      auto oldest = std::find_if(sub.pending.begin(), sub.pending.end(),
                                 [](const Pending& p) { return p.frame != nullptr; });
      if (broker_.log().enabled(LogLevel::debug)) {
        broker_.log().debug("dropped frame " + std::to_string(oldest->frame->sequence) + " for " +
                            describe() + " (drop-oldest, queue of " + std::to_string(sub.depth) +
                            " full)");
      }
      sub.pending.erase(oldest);  // its fd closes here unless another queue still holds it
      ++sub.dropped;
    }
  }
  if (entry.frame == nullptr && !sub.pending.empty() && sub.pending.back().frame == nullptr) {
    // Back-to-back ends of stream (a producer that comes and goes while this consumer does
    // not read) say no more than the last: keep one, so the queue stays bounded by its depth.
    sub.pending.back() = std::move(entry);
  } else {
    sub.pending.push_back(std::move(entry));
  }
  wake_writer();
}

std::uint32_t Client::credit_threshold() const {
  return std::max<std::uint32_t>(1, broker_.options().limits.publish_window / 2);
}

bool Client::must_hold_producer() const {
  for (const Topic* t : produced_) {
    for (const Subscription* s : t->subscribers) {
      if (s->blocks_producer()) return true;
    }
  }
  return false;
}

bool Client::next_outgoing(kj::Array<capnp::word>& words, int& fd,
                           std::shared_ptr<const void>& keep) {
  if (!replies_.empty()) {
    words = std::move(replies_.front());
    replies_.pop_front();
    return true;
  }
  if (credit_owed_ >= credit_threshold() && !close_after_replies_) {
    ControlMessageBuilder message;
    message.initRoot<proto::Message>().initCredit().setFrames(credit_owed_);
    credit_owed_ = 0;
    words = encode_message(message);
    return true;
  }
  while (!slot_frees_.empty() && !close_after_replies_) {
    const auto [id, slot] = slot_frees_.front();
    slot_frees_.pop_front();
    auto pool = pools_.find(id);
    if (pool == pools_.end()) continue;
    pool->second->free_queued[slot] = false;
    ControlMessageBuilder message;
    auto free = message.initRoot<proto::Message>().initSlotFree();
    free.setPool(id);
    free.setSlot(slot);
    words = encode_message(message);
    return true;
  }
  if (close_after_replies_ || subscriptions_.empty()) return false;
  // Round-robin over subscriptions so one busy topic cannot starve the others.
  const std::size_t n = subscriptions_.size();
  auto it = subscriptions_.begin();
  std::advance(it, static_cast<std::ptrdiff_t>(next_subscription_ % n));
  for (std::size_t i = 0; i < n; ++i) {
    if (it == subscriptions_.end()) it = subscriptions_.begin();
    Subscription& sub = *it->second;
    ++it;
    if (!sub.can_send()) continue;
    const FramePtr& next = sub.pending.front().frame;
    if (next && next->pool && slots_held_ >= broker_.options().limits.max_slots_held) {
      // Delivered when the consumer releases a slot; meanwhile its queue policy applies.
      if (!told_slots_held_) {
        told_slots_held_ = true;
        broker_.log().warn(describe() + ": holds " + std::to_string(slots_held_) +
                           " pool slots, the broker's --max-slots-held");
        ControlMessageBuilder builder;
        auto error = builder.initRoot<proto::Message>().initError();
        error.setCode(Code::LIMIT_EXCEEDED);
        error.setTopic(sub.topic->name);
        error.setMessage("this client holds " + std::to_string(slots_held_) +
                         " pool slots, the broker's --max-slots-held; release frames to get more");
        words = encode_message(builder);
        return true;
      }
      continue;
    }
    next_subscription_ = (next_subscription_ + i + 1) % n;

    ControlMessageBuilder message;
    auto root = message.initRoot<proto::Message>();
    const FramePtr& head = sub.pending.front().frame;
    if (head && head->pool && attached_pools_.count(head->pool->id) == 0) {
      // First frame of this pool for this client: send the pool's fd; the frame follows.
      const PoolRecord& pool = *head->pool;
      auto attach = root.initPoolAttach();
      attach.setTopic(pool.topic);
      attach.setPool(pool.id);
      attach.setSlotCount(pool.slot_count);
      attach.setSlotSize(pool.slot_size);
      attach.setFd(0);
      attached_pools_.emplace(pool.id, pool.topic);
      fd = pool.fd.get();
      keep = head->pool;
      words = encode_message(message);
      return true;
    }

    Pending entry = std::move(sub.pending.front());
    sub.pending.pop_front();
    if (entry.frame) {
      const FrameRecord& f = *entry.frame;
      auto deliver = root.initDeliver();
      deliver.setTopic(sub.topic->name);
      deliver.setDropped(sub.dropped);
      auto out = deliver.initFrame();
      out.setSequence(f.sequence);
      out.setTimestampNs(f.timestamp_ns);
      layout_to_proto(f.layout, out.initLayout());
      InFlight held{f.sequence, nullptr, std::chrono::steady_clock::now(), false};
      if (f.pool) {
        out.setPool(f.pool->id);
        out.setSlot(f.slot);
        held.pool_frame = entry.frame;  // the slot stays busy until this consumer releases
        ++slots_held_;
      } else {
        out.setFd(0);
        fd = f.fd.get();
        keep = entry.frame;
      }
      sub.in_flight.push_back(std::move(held));
      ++sub.delivered;
    } else {
      auto end = root.initEndOfStream();
      end.setTopic(sub.topic->name);
      end.setReason(entry.end_reason);
    }
    words = encode_message(message);
    if (sub.topic->producer != nullptr) sub.topic->producer->wake_reader();
    return true;
  }
  return false;
}

bool Client::hung_up_with_nothing_unread() {
  if (closed_) return false;
  pollfd p{socket_.native_handle(), POLLRDHUP, 0};
  if (::poll(&p, 1, 0) != 1 || (p.revents & (POLLHUP | POLLRDHUP)) == 0) return false;
  int unread = 0;
  return ::ioctl(socket_.native_handle(), SIOCINQ, &unread) == 0 && unread == 0;
}

void Client::refuse(proto::ErrorCode code, const std::string& message, const std::string& topic,
                    std::uint64_t sequence, bool strike) {
  if (strike) ++errors_;
  broker_.log().warn(describe() + ": refused [" + std::string(to_string(code)) + "]: " + message);
  ControlMessageBuilder builder;
  auto error = builder.initRoot<proto::Message>().initError();
  error.setCode(code);
  error.setMessage(message);
  if (!topic.empty()) error.setTopic(topic);
  error.setSequence(sequence);
  reply(builder);
  const std::size_t max_errors = broker_.options().limits.max_errors_per_client;
  if (errors_ > max_errors && !close_after_replies_) {
    ControlMessageBuilder last;
    auto bye = last.initRoot<proto::Message>().initError();
    bye.setCode(Code::LIMIT_EXCEEDED);
    bye.setMessage("more than " + std::to_string(max_errors) + " refused requests; disconnecting");
    reply(last);
    close_after_replies_ = true;
  }
  if (close_after_replies_ && !closed_ && !close_requested_) {
    // Stop routing after this event (the caller may still be using this client's state); give
    // the client a moment to read why before the socket closes.
    asio::post(broker_.io(), [self = shared_from_this()] {
      if (!self->closed_) self->leave_topics();
    });
    wake_writer();
    linger_.expires_after(kLinger);
    linger_.async_wait([self = shared_from_this()](std::error_code ec) {
      if (!ec) self->close("did not read its final error in time");
    });
  }
}

void Client::reply(capnp::MessageBuilder& message) {
  if (closed_ || close_requested_ || writer_gone_) return;
  if (replies_.size() >= broker_.options().limits.max_pending_replies) {
    close("does not read the broker's replies (" + std::to_string(replies_.size()) +
          " queued, the broker's --max-queued-messages)");
    return;
  }
  replies_.push_back(encode_message(message));
  wake_writer();
}

void Client::leave_topics() {
  const auto produced = produced_;  // stop_producing erases from produced_
  for (Topic* t : produced) stop_producing(t, "the producer, " + describe() + ", left");
  for (auto& [id, pool] : pools_) pool->owner = nullptr;  // pools of no topic (none expected)
  pools_.clear();
  slot_frees_.clear();
  for (auto& [name, sub] : subscriptions_) {
    Topic* t = sub->topic;
    if (t == nullptr) continue;  // unsubscribed already; only held frames remained
    std::erase(t->subscribers, sub.get());
    if (t->producer != nullptr) t->producer->wake_reader();
    broker_.release_topic(t);
  }
  subscriptions_.clear();
}

}  // namespace shmfd::broker
