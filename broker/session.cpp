#include "session.hpp"

#include <linux/sockios.h>
#include <poll.h>
#include <sys/ioctl.h>

#include <algorithm>

#include <asio/co_spawn.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "shmfd/wire/asio_transport.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::broker {
namespace {

using Code = proto::ErrorCode;
constexpr std::size_t kMaxClientName = 64;
constexpr auto kLinger = std::chrono::seconds(2);
// Messages read from one client in a row before the others get a turn.
constexpr std::size_t kBurst = 16;
// Messages of a disconnected client discarded before its socket closes (shutdown_and_drain).
constexpr std::size_t kDrainOnClose = 4096;

}  // namespace

Session::Session(SessionHost& host, std::uint64_t id, Socket socket, const PeerIdentity& who)
    : host_(host),
      socket_(std::move(socket)),
      client_(id, who, host.options().limits, host.log(), host.wakeups()),
      rate_(host.options().limits.max_message_rate),
      reader_wake_(host.io()),
      writer_wake_(host.io()),
      linger_(host.io()) {
  client_.hung_up = [this] { return hung_up_with_nothing_unread(); };
}

void Session::start() {
  host_.router().join(client_);
  auto self = shared_from_this();
  const auto on_exit = [self](const std::exception_ptr& e) {
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      self->host_.log().error(self->client_.describe() + ": internal error: " + ex.what());
    }
    self->close("internal error");
  };
  // A connection that never says Hello must not hold its slot forever.
  const auto timeout = host_.options().limits.hello_timeout_ms;
  linger_.expires_after(std::chrono::milliseconds(timeout));
  linger_.async_wait([self, timeout](std::error_code ec) {
    if (!ec && self->state_ == State::awaiting_hello) {
      self->close("no Hello within " + std::to_string(timeout) + " ms");
    }
  });
  asio::co_spawn(
      host_.io(), [self] { return self->read_loop(); }, on_exit);
  asio::co_spawn(
      host_.io(), [self] { return self->write_loop(); }, on_exit);
}

void Session::close(const std::string& why) {
  if (state_ == State::close_posted || state_ == State::closed) return;
  state_ = State::close_posted;
  client_.outbox.set_mode(Outbox::Mode::closed);
  reader_wake_.cancel();  // a reader held back by backpressure or the rate limit stops now
  asio::post(host_.io(), [self = shared_from_this(), why] { self->close_now(why); });
}

void Session::close_now(const std::string& why) {
  if (state_ == State::closed) return;
  state_ = State::closed;
  host_.log().info(client_.describe() + " disconnected: " + why);
  host_.router().leave(client_);
  host_.router().remove(client_);
  client_.outbox.set_mode(Outbox::Mode::closed);
  stalled_.reset();
  if (socket_.is_open()) shutdown_and_drain(socket_.native_handle(), kDrainOnClose);
  std::error_code ignored;
  socket_.close(ignored);
  reader_wake_.cancel();
  writer_wake_.cancel();
  linger_.cancel();
  host_.session_closed(client_.id);
  host_.flush();  // what leaving queued for others: ends of stream, freed slots
}

void Session::wake_reader() {
  reader_wake_.cancel();
}

void Session::wake_writer() {
  client_.outbox.flushed();
  // With the write loop parked and nothing stalled before it, send right here, at the end of
  // the event that queued the message: it leaves without a trip through the scheduler (and
  // its epoll_wait).
  if (writer_idle_ && !stalled_ && reading() && !writer_gone_) {
    flush_now();
    return;
  }
  writer_wake_.cancel();
}

std::optional<asio::steady_timer::time_point> Session::held_until() {
  // Block-producer backpressure: while a subscriber of one of our topics is full, leave our
  // messages in the socket; the producer's sends then block in its own process. The
  // --max-message-rate works the same way: past it, the next message waits in the socket
  // until the client's budget has room again. Nothing is lost, and nothing is read early.
  if (host_.router().must_hold(client_)) return asio::steady_timer::time_point::max();
  const auto now = std::chrono::steady_clock::now();
  if (const auto wait = rate_.wait(now); wait.count() > 0) return now + wait;
  return std::nullopt;
}

asio::awaitable<void> Session::read_loop() {
  std::size_t in_a_row = 0;
  while (reading()) {
    if (const auto until = held_until()) {
      reader_wake_.expires_at(*until);
      std::error_code ec;
      co_await reader_wake_.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      continue;  // woken (or the rate allows one more): judge again
    }
    if (++in_a_row > kBurst) {
      // Let the other clients have their turn.
      in_a_row = 0;
      co_await asio::post(host_.io(), asio::use_awaitable);
      if (!reading()) break;
    }
    // Received into the event loop's buffer and handled before anything else runs. Try
    // first: under load the next message is usually there, and waiting for readiness would
    // cost an epoll round trip per message.
    const auto buffer = host_.receive_buffer();
    auto received =
        receive_message(socket_.native_handle(), buffer, kFdsPerMessage, IoMode::non_blocking);
    if (received && received->status == RecvStatus::would_block) {
      std::error_code ec;
      co_await socket_.async_wait(Socket::wait_read, asio::redirect_error(asio::use_awaitable, ec));
      if (state_ == State::closed) break;
      if (ec) {
        close("waiting to read failed: " + ec.message());
        break;
      }
      in_a_row = 0;
      continue;
    }
    if (!received) {
      const Error& e = received.error();
      if (e.is(Errc::fds_truncated) || e.is(Errc::message_truncated) || e.is(Errc::empty_message)) {
        // Every fd it carried is closed already.
        const Code code = e.is(Errc::empty_message) ? Code::MALFORMED_MESSAGE : wire_error_code(e);
        refuse(Refusal{code, e.message(), {}, 0, true, false});
        host_.flush();
        continue;
      }
      close("receive failed: " + e.message());
      break;
    }
    if (received->status == RecvStatus::peer_closed) {
      // Closed at once, not after the event: a client that reconnects in a loop must not
      // find its old connections still counted against --max-clients. Nothing of this event
      // is in use here (no handler runs), so nothing closing destroys is used after.
      close_now("connection closed by the client");
      break;
    }
    rate_.spend();
    handle(std::span<const std::byte>(buffer.data(), received->size), std::move(received->fds));
    host_.flush();
  }
}

void Session::flush_now() {
  bool rang = false;
  // The client learns of what was sent from its doorbell: rung once the messages are in its
  // socket, never before (it would drain too early, and then sleep through them).
  const auto ring = [&] {
    if (rang && client_.bell) client_.bell->ring();
  };
  for (;;) {
    Outgoing out;
    if (!client_.outbox.next(out)) break;
    const auto fds = out.fd >= 0 ? std::span<const int>(&out.fd, 1) : std::span<const int>();
    auto sent = send_message(socket_.native_handle(), out.words.bytes(), fds, IoMode::non_blocking);
    if (sent && *sent == SendStatus::sent) {
      rang = true;
      continue;
    }
    ring();
    // Would block, or failed: the write loop waits for room, or reports the failure.
    stalled_ = std::move(out);
    writer_wake_.cancel();
    return;
  }
  ring();
}

asio::awaitable<void> Session::write_loop() {
  while (state_ != State::closed) {
    Outgoing out;  // out.keep holds out.fd open until the send completes
    if (stalled_) {
      out = std::move(*stalled_);
      stalled_.reset();
    } else if (!client_.outbox.next(out)) {
      if (state_ == State::closing) {
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
    auto sent = co_await async_send_message(socket_, out.words.bytes(), fds, asio::use_awaitable);
    if (state_ == State::closed) break;
    if (!sent) {
      const Error& e = sent.error();
      if (e.is(std::errc::broken_pipe) || e.is(std::errc::connection_reset)) {
        // The client has gone, but messages it sent before may still wait in its socket
        // (frames of a block-producer topic must not be lost): the reader drains them and
        // closes at end of file.
        writer_gone_ = true;
        stalled_.reset();
        if (state_ == State::closing) {
          close("gone before reading its final error");  // its reader has stopped already
          break;
        }
        client_.outbox.set_mode(Outbox::Mode::closed);
        reader_wake_.cancel();
        break;
      }
      close("send failed: " + e.message());
      break;
    }
    if (client_.bell) client_.bell->ring();
    host_.flush();  // a delivery may have made room for a held-back producer
  }
}

void Session::handle(std::span<const std::byte> bytes, std::vector<UniqueFd> fds) {
  Outcome outcome;
  auto decoded = decode_message<proto::Message>(bytes, [&](proto::Message::Reader m) -> Status {
    outcome = dispatch(m, fds);
    return {};
  });
  if (!decoded)
    outcome = shmfd::broker::refuse(wire_error_code(decoded.error()), decoded.error().message());
  // Any fd not taken is closed before the reply leaves, so a refused producer that reads its
  // Error knows the broker holds none of them.
  fds.clear();
  if (!outcome) refuse(outcome.error());
}

Outcome Session::dispatch(proto::Message::Reader m, std::vector<UniqueFd>& fds) {
  using M = proto::Message;
  const auto which = m.which();
  if (state_ == State::awaiting_hello && which != M::HELLO) {
    return tl::unexpected(final_refusal(
        Code::UNEXPECTED_MESSAGE, "the first message must be Hello, not " + message_name(which)));
  }
  if (which != M::PUBLISH && which != M::REGISTER_POOL && which != M::CHANNEL_PAGE &&
      which != M::CALL && which != M::RESPOND && !fds.empty()) {
    return shmfd::broker::refuse(Code::WRONG_FD_COUNT, message_name(which) + " takes no fds; the " +
                                                           std::to_string(fds.size()) +
                                                           " attached were closed");
  }
  if (which == M::PUBLISH && !fds.empty()) client_.outbox.publish_read();
  Router& router = host_.router();
  switch (which) {
    case M::HELLO:
      return hello(m.getHello());
    case M::ADVERTISE:
      return router.advertise(client_, m.getAdvertise());
    case M::SUBSCRIBE:
      return router.subscribe(client_, m.getSubscribe());
    case M::PUBLISH:
      return router.publish(client_, m.getPublish(), fds);
    case M::RELEASE:
      return router.release(client_, m.getRelease());
    case M::READ:
      if (client_.version < 4) {
        return shmfd::broker::refuse(Code::UNEXPECTED_MESSAGE,
                                     "Read on a connection of protocol version " +
                                         std::to_string(client_.version) + " (it needs 4)");
      }
      return router.read(client_, m.getRead());
    case M::REGISTER_POOL:
      return router.register_pool(client_, m.getRegisterPool(), fds);
    case M::INTROSPECT:
      return router.introspect(client_);
    case M::UNSUBSCRIBE:
      return router.unsubscribe(client_, m.getUnsubscribe());
    case M::UNADVERTISE:
      return router.unadvertise(client_, m.getUnadvertise());
    case M::OFFER:
    case M::WITHDRAW:
    case M::CALL:
    case M::RESPOND:
    case M::CANCEL_CALL:
      return services(m, fds);
    case M::CHANNEL_PAGE:
    case M::CHANNEL_STARTED:
    case M::DEFINE_LAYOUT:
      if (!client_.channels) {
        return shmfd::broker::refuse(
            Code::UNEXPECTED_MESSAGE,
            message_name(which) + " on a connection without channels (see Hello.channels)");
      }
      if (which == M::CHANNEL_PAGE) return router.channel_page(client_, m.getChannelPage(), fds);
      if (which == M::CHANNEL_STARTED)
        return router.channel_started(client_, m.getChannelStarted());
      return router.define_layout(client_, m.getDefineLayout());
    default:
      return shmfd::broker::refuse(Code::UNEXPECTED_MESSAGE,
                                   "clients do not send " + message_name(which));
  }
}

Outcome Session::services(proto::Message::Reader m, std::vector<UniqueFd>& fds) {
  using M = proto::Message;
  const auto which = m.which();
  if (client_.version < 6) {
    return shmfd::broker::refuse(Code::UNEXPECTED_MESSAGE,
                                 message_name(which) + " on a connection of protocol version " +
                                     std::to_string(client_.version) + " (services need 6)");
  }
  Services& services = host_.router().services();
  switch (which) {
    case M::OFFER:
      return services.offer(client_, m.getOffer());
    case M::WITHDRAW:
      return services.withdraw(client_, m.getWithdraw());
    case M::CALL:
      return services.call(client_, m.getCall(), fds);
    case M::RESPOND:
      return services.respond(client_, m.getRespond(), fds);
    default:
      return services.cancel_call(client_, m.getCancelCall());
  }
}

Outcome Session::hello(proto::Hello::Reader hello) {
  if (state_ != State::awaiting_hello) {
    return shmfd::broker::refuse(Code::UNEXPECTED_MESSAGE, "Hello sent twice");
  }
  // The client names the newest version it speaks; the connection uses the newest both speak.
  const std::uint32_t version = std::min(hello.getVersion(), kProtocolVersion);
  if (version < kMinProtocolVersion) {
    return tl::unexpected(
        final_refusal(Code::PROTOCOL_VERSION,
                      "client speaks protocol version " + std::to_string(hello.getVersion()) +
                          ", this broker speaks versions " + std::to_string(kMinProtocolVersion) +
                          " to " + std::to_string(kProtocolVersion)));
  }
  client_.name = printable(view(hello.getClientName()), kMaxClientName);
  client_.version = version;
  state_ = State::open;
  linger_.cancel();  // the Hello deadline
  const Limits& limits = host_.options().limits;
  ControlMessageBuilder message;
  auto welcome = message.initRoot<proto::Message>().initWelcome();
  welcome.setVersion(version);
  welcome.setMaxMessageBytes(static_cast<std::uint32_t>(limits.max_message_bytes));
  welcome.setMaxFdsPerMessage(1);
  welcome.setPublishWindow(limits.publish_window);
  if (version >= 3 && hello.getChannels()) {
    auto bell = OwnBell::create();
    if (!bell) {
      return tl::unexpected(final_refusal(
          Code::INTERNAL, "could not make the client's doorbell: " + bell.error().message()));
    }
    client_.bell = std::move(*bell);
    client_.channels = true;
    welcome.setDoorbell(true);
    client_.outbox.post(message, client_.bell->fd(), nullptr);
  } else {
    client_.outbox.post(message);
  }
  host_.log().info(client_.describe() + " connected");
  return {};
}

void Session::refuse(const Refusal& r) {
  if (r.strike) ++errors_;
  host_.log().warn(client_.describe() + ": refused [" + std::string(shmfd::to_string(r.code)) +
                   "]: " + r.message);
  ControlMessageBuilder builder;
  auto error = builder.initRoot<proto::Message>().initError();
  error.setCode(r.code);
  error.setMessage(r.message);
  if (!r.topic.empty()) error.setTopic(r.topic);
  error.setSequence(r.sequence);
  client_.outbox.post(builder);
  const std::size_t max_errors = host_.options().limits.max_errors_per_client;
  bool final = r.final;
  if (errors_ > max_errors && reading()) {
    ControlMessageBuilder last;
    auto bye = last.initRoot<proto::Message>().initError();
    bye.setCode(Code::LIMIT_EXCEEDED);
    bye.setMessage("more than " + std::to_string(max_errors) + " refused requests; disconnecting");
    client_.outbox.post(last);
    final = true;
  }
  if (final && reading()) begin_closing();
}

void Session::begin_closing() {
  state_ = State::closing;
  // The router is done with this client for this event (refusals are returned, not thrown
  // from inside a handler): stop routing it now.
  host_.router().leave(client_);
  client_.outbox.set_mode(Outbox::Mode::replies_only);
  reader_wake_.cancel();
  linger_.expires_after(kLinger);
  linger_.async_wait([self = shared_from_this()](std::error_code ec) {
    if (!ec) self->close("did not read its final error in time");
  });
}

void Session::check_holds(std::chrono::steady_clock::time_point now) {
  if (state_ == State::closing) {
    // Closing once its last replies are out; a consumer that does not read may never take
    // them (its socket full). One check interval is all it gets.
    if (final_checked_) close("did not read its final error");
    final_checked_ = true;
    return;
  }
  if (!reading()) return;
  if (auto stuck = judge_holds(client_, host_.options().limits, host_.log(), now)) refuse(*stuck);
}

bool Session::hung_up_with_nothing_unread() {
  if (state_ == State::closed) return false;
  const int fd = socket_.native_handle();
  pollfd p{fd, POLLRDHUP, 0};
  if (::poll(&p, 1, 0) != 1 || (p.revents & (POLLHUP | POLLRDHUP)) == 0) return false;
  int unread = 0;
  return ::ioctl(fd, SIOCINQ, &unread) == 0 && unread == 0;
}

}  // namespace shmfd::broker
