// BrokerLink: a client's link to shmfd-broker, the one piece under Producer and Consumer. It owns
// the connection (Hello and Welcome, the doorbell), knows when the socket is due a read, sends
// in order what receive handlers and other threads could not send themselves, waits for
// answers while handing every other message on, connects again after a lost broker, and makes
// the pages of the channel handshake (docs/PROTOCOL.md, section 14). What a message *means*
// stays with Producer and Consumer: the link only reads, sends and keeps order.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "release_queue.hpp"
#include "shmfd/connection.hpp"
#include "shmfd/protocol.hpp"
#include "shmfd/wire/channel.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::detail {

// How often a client on channels reads its socket though its doorbell is quiet: how long it
// may take to notice that the broker has gone (a broker that died rings no bell).
inline constexpr auto kSocketCheck = std::chrono::milliseconds(100);

// A channel the broker asked this client for a page of, until the peer's page comes
// (ChannelOpen) or the channel closes first.
struct AskedChannel {
  std::string topic;
  std::uint32_t depth = 0;
  Backpressure policy = Backpressure::drop_oldest;
  OwnPage page;
  bool consumer_skips = false;   // a producer's: it may put frames beyond the depth
  std::uint32_t meta_bytes = 0;  // the producer page's metadata entries (ChannelRequest.metaBytes)
};

class BrokerLink {
 public:
  // `frames_share`: a consumer's link, whose frames keep the connection open while they live
  // and queue their releases in it from any thread (SharedConnection).
  static Result<BrokerLink> open(std::string socket_path, std::string_view client_name,
                                 Channels channels, bool frames_share);

  Connection& connection() noexcept { return shared_->connection; }
  const Connection& connection() const noexcept { return shared_->connection; }
  const std::shared_ptr<SharedConnection>& shared() const noexcept { return shared_; }
  const PeerBell* bell() const noexcept { return shared_->connection.bell(); }
  std::uint32_t bell_seen() const noexcept { return bell_seen_; }
  // For a wait on channels: ends when a frame is released on another thread.
  LocalWake release_wake() noexcept;

  // Sends `message` after whatever is queued (blocking; or non_blocking: would_block when the
  // socket is full, with nothing lost: what was queued stays queued).
  Result<SendStatus> send(capnp::MessageBuilder& message, std::span<const int> fds = {},
                          IoMode mode = IoMode::blocking);
  Result<SendStatus> send(std::span<const std::byte> bytes, std::span<const int> fds = {},
                          IoMode mode = IoMode::blocking);
  // Keeps `message` (with a copy of `fd`, if one) to go out before anything this link sends or
  // reads next: what a receive handler has to say, since no handler writes the socket.
  Status queue(capnp::MessageBuilder& message, int fd = -1);
  // Sends what is queued, then the releases of frames dropped on other threads (blocking).
  Status flush();

  // One message (flushing first); nullopt when non_blocking and nothing is there. A consumer's
  // blocking read also wakes for releases queued on other threads, sends them and reads on.
  Result<std::optional<ReceivedMessage>> receive(IoMode mode);
  std::span<const std::byte> bytes(const ReceivedMessage& m) const {
    return shared_->connection.message(m);
  }
  // Sleeps until the socket is readable or `deadline`; on a consumer's link, a frame released
  // on another thread ends the sleep too, and its release is sent.
  Status wait_readable(std::chrono::steady_clock::time_point deadline);
  // Receives one message and decodes it with `read(proto::Message::Reader, fds)`, which returns
  // a Result<R>: a Result<std::optional<R>>, nullopt as for receive().
  template <typename Read>
  auto read(IoMode mode, Read&& read_message);

  // Whether the socket is due a read: always without channels; with them, when the doorbell
  // rang since the last look or kSocketCheck passed. Counts as looked.
  bool socket_due() noexcept;
  // Every message there now, each through `handle(reader, fds) -> Status`; then the queue.
  template <typename Handle>
  Status drain(Handle&& handle);
  // drain() if socket_due(): one load when nothing came.
  template <typename Handle>
  Status poll(Handle&& handle) {
    return socket_due() ? drain(handle) : Status{};
  }
  // Reads (blocking) until `done(reader) -> Result<bool>` holds for one message; each message
  // goes through `handle` first, so nothing that comes meanwhile is lost.
  template <typename Handle, typename Done>
  Status wait_for(Handle&& handle, Done&& done);

  // A consumer's calls (InCall): releases of its frames are then left to the call.
  void enter_call() noexcept;
  void leave_call() noexcept;

  // From now on a lost broker is connected to again (recovered()).
  void reconnect_on_loss(ReconnectOptions options) noexcept { reconnect_ = options; }
  bool reconnects_on_loss() const noexcept { return reconnect_.has_value(); }
  std::uint64_t reconnects() const noexcept { return reconnects_; }
  // If `error` is a lost broker and this link reconnects on loss: connects again (waiting as
  // the options say) and calls `renew`, which sets up again what the client had; a broker lost
  // again meanwhile starts it over. true then; else `error` (or why reconnecting failed).
  Result<bool> recovered(const Error& error, const std::function<Status()>& renew);

  // The channel handshake: a ChannelRequest is answered with a fresh page of the side it asks
  // for (the ChannelPage is queued), kept until take_asked() for its ChannelOpen.
  Status answer_channel_request(proto::ChannelRequest::Reader request);
  std::optional<AskedChannel> take_asked(std::uint32_t channel);
  void forget_asked(std::uint32_t channel) { asked_.erase(channel); }
  void forget_asked_of(std::string_view topic);

 private:
  struct Queued {
    EncodedMessage message;
    UniqueFd fd;
  };
  BrokerLink(std::shared_ptr<SharedConnection> shared, std::string socket_path,
             std::string client_name, Channels channels, bool frames_share)
      : shared_(std::move(shared)),
        socket_path_(std::move(socket_path)),
        client_name_(std::move(client_name)),
        channels_(channels),
        frames_share_(frames_share) {}
  static Result<std::shared_ptr<SharedConnection>> connect(const std::string& socket_path,
                                                           std::string_view client_name,
                                                           Channels channels, bool frames_share,
                                                           const ReconnectOptions* retry);
  Result<std::optional<ReceivedMessage>> sleep_for_message();

  std::shared_ptr<SharedConnection> shared_;
  std::string socket_path_;
  std::string client_name_;
  Channels channels_ = Channels::automatic;
  bool frames_share_ = false;
  std::optional<ReconnectOptions> reconnect_;
  std::uint64_t reconnects_ = 0;
  std::deque<Queued> queued_;
  std::uint32_t bell_seen_ = 0;
  std::chrono::steady_clock::time_point socket_read_{};
  std::map<std::uint32_t, AskedChannel> asked_;
  bool in_call_ = false;
};

// RAII for BrokerLink::enter_call and leave_call, around each of a consumer's calls. A
// reconnect during the call moves the call to the new connection (recovered()).
class InCall {
 public:
  explicit InCall(BrokerLink& link) noexcept : link_(&link) { link_->enter_call(); }
  ~InCall() { link_->leave_call(); }
  InCall(const InCall&) = delete;
  InCall& operator=(const InCall&) = delete;

 private:
  BrokerLink* link_;
};

template <typename Read>
auto BrokerLink::read(IoMode mode, Read&& read_message) {
  using R = typename decltype(read_message(std::declval<proto::Message::Reader>(),
                                           std::declval<std::vector<UniqueFd>&>()))::value_type;
  using Out = Result<std::optional<R>>;
  auto m = receive(mode);
  if (!m) return Out(tl::unexpect, std::move(m.error()));
  if (!*m) return Out(std::optional<R>());
  auto decoded = decode_message<proto::Message>(
      bytes(**m), [&](proto::Message::Reader r) { return read_message(r, (*m)->fds); });
  if (!decoded) return Out(tl::unexpect, std::move(decoded.error()));
  return Out(std::optional<R>(std::move(*decoded)));
}

template <typename Handle>
Status BrokerLink::drain(Handle&& handle) {
  for (;;) {
    auto m = receive(IoMode::non_blocking);
    if (!m) return fail(std::move(m.error()));
    if (!*m) return flush();
    auto ok = decode_message<proto::Message>(
        bytes(**m), [&](proto::Message::Reader r) { return handle(r, (*m)->fds); });
    if (!ok) return ok;
  }
}

template <typename Handle, typename Done>
Status BrokerLink::wait_for(Handle&& handle, Done&& done) {
  for (;;) {
    auto m = receive(IoMode::blocking);
    if (!m) return fail(std::move(m.error()));
    auto finished =
        decode_message<proto::Message>(bytes(**m), [&](proto::Message::Reader r) -> Result<bool> {
          if (auto ok = handle(r, (*m)->fds); !ok) return fail(std::move(ok.error()));
          return done(r);
        });
    if (!finished) return fail(std::move(finished.error()));
    if (*finished) return flush();
  }
}

}  // namespace shmfd::detail
