// One client connection: a read loop that takes its messages, answers Hello and hands every
// other request to the router, and a write loop that sends what its outbox holds without ever
// blocking the broker (a client that does not read only fills its own queues). A refusal
// becomes an Error reply and a strike here; past --max-errors, or on a final refusal, the
// client is disconnected once it has read why.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/generic/seq_packet_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include "client_state.hpp"
#include "log.hpp"
#include "options.hpp"
#include "outbox.hpp"
#include "quota.hpp"
#include "refusal.hpp"
#include "router.hpp"
#include "shmfd/wire/peer_credentials.hpp"

namespace shmfd::broker {

// What a session needs from the broker that owns it (Broker implements it).
class SessionHost {
 public:
  virtual asio::io_context& io() = 0;
  virtual const Options& options() const = 0;
  virtual const Logger& log() const = 0;
  virtual Router& router() = 0;
  virtual Wakeups& wakeups() = 0;
  // One receive buffer of --max-message-bytes for every session: a message is received and
  // handled before the event loop runs anything else, so none needs a buffer of its own.
  virtual std::span<std::byte> receive_buffer() = 0;
  // Ends an event: sends what it queued, wakes what it unblocked, closes what it condemned.
  virtual void flush() = 0;
  virtual void session_closed(std::uint64_t id) = 0;

 protected:
  ~SessionHost() = default;
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  using Socket = asio::generic::seq_packet_protocol::socket;

  Session(SessionHost& host, std::uint64_t id, Socket socket, const PeerIdentity& who);

  void start();
  // Disconnects the client after the event being handled (from then on it is not read and
  // nothing more is queued for it). Idempotent.
  void close(const std::string& why);
  // Leaves every topic and closes the socket at once; the coroutines end on their own. Only
  // from outside any handler: the posted step of close(), the read loop at end of file, and
  // Broker::shutdown.
  void close_now(const std::string& why);
  // The router unblocked this client's messages (a block-producer subscriber drained).
  void wake_reader();
  // The outbox has something to send: sent here if the socket takes it, else by the writer.
  void wake_writer();
  // The hold deadline (judge_holds), and the bound on how long a disconnected client may
  // take to read its final error.
  void check_holds(std::chrono::steady_clock::time_point now);
  std::uint64_t id() const { return client_.id; }
  // The peer closed its end and left nothing unread: it is gone, though the read loop may not
  // have seen the end of file yet.
  bool hung_up_with_nothing_unread();  // native_handle() is not const in Asio

 private:
  enum class State {
    awaiting_hello,
    open,
    closing,       // the final error is queued: closed once the client has read it
    close_posted,  // close() was called; close_now() will run
    closed,
  };
  bool reading() const { return state_ == State::awaiting_hello || state_ == State::open; }

  asio::awaitable<void> read_loop();
  asio::awaitable<void> write_loop();
  // Until when the client's messages stay unread: a block-producer subscriber of its topics is
  // full (until woken), or it is past its message rate. nullopt: read now.
  std::optional<asio::steady_timer::time_point> held_until();
  void handle(std::span<const std::byte> bytes, std::vector<UniqueFd> fds);
  Outcome dispatch(proto::Message::Reader message, std::vector<UniqueFd>& fds);
  Outcome hello(proto::Hello::Reader hello);
  // Offer, Withdraw, Call, Respond and CancelCall (version 6).
  Outcome services(proto::Message::Reader m, std::vector<UniqueFd>& fds);
  void refuse(const Refusal& refusal);
  // Stops routing the client and lets it read its final error for a moment.
  void begin_closing();
  // Sends what the outbox has while the socket takes it without blocking; the first message
  // it does not take is kept for the write loop.
  void flush_now();

  SessionHost& host_;
  Socket socket_;
  ClientState client_;
  State state_ = State::awaiting_hello;
  bool writer_gone_ = false;    // the peer stopped reading for good (EPIPE)
  bool writer_idle_ = false;    // the write loop waits for writer_wake_
  bool final_checked_ = false;  // check_holds saw State::closing once already
  std::size_t errors_ = 0;
  RateBudget rate_;
  std::optional<Outgoing> stalled_;  // taken from the outbox, not sent yet: goes first
  asio::steady_timer reader_wake_;
  asio::steady_timer writer_wake_;
  asio::steady_timer linger_;  // the Hello deadline, then the final error's
};

}  // namespace shmfd::broker
