/// @file
/// Services: a Server offers a named service, a Caller calls it with a frame and gets a frame
/// back, both verified by the broker on the way (docs/services.md; protocol version 6).
///
/// @code
/// // A worker.
/// auto server = shmfd::Server::connect(socket_path, "blur-worker");
/// server->offer("blur");
/// while (auto event = server->receive()) {
///   auto* request = std::get_if<shmfd::Request>(&*event);
///   if (request == nullptr) continue;                 // a Cancel: the caller gave up
///   auto out = shmfd::WritableBuffer::create("blurred", request->frame->bytes().size());
///   blur(request->frame->bytes(), out->bytes());
///   server->respond(*request, std::move(*out), request->frame->layout());
/// }
///
/// // A caller.
/// auto caller = shmfd::Caller::connect(socket_path, "app");
/// auto reply = caller->call("blur", std::move(buffer), layout, {.deadline = 200ms});
/// if (!reply && reply.error().is(shmfd::CallErrc::server_gone)) { /* call again */ }
/// use(reply->frame->bytes());
/// @endcode
///
/// The broker sends each call to the server of the service with the fewest calls in flight
/// (ties in turn), and ends every call it routed: with the server's last response, or with a
/// CallErrc the moment the call fails (no server, busy, its deadline, its server gone). A
/// caller that dies costs its server a Cancel; a server that never answers costs its callers
/// their deadlines.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "shmfd/connection.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/error.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/slot.hpp"

namespace shmfd {

namespace detail {
struct CallerState;
struct ServerState;
}  // namespace detail

/// What a call does when every server of its service has its most calls in flight.
enum class WhenBusy {
  fail,  ///< fails at once with CallErrc::busy
  wait,  ///< waits in the broker until a server has room, or its deadline passes
};

/// How a call is made.
struct CallOptions {
  /// How long the call may take in all, from the broker's receipt of it; 0: the broker's
  /// longest (--max-call-deadline-ms, 60 s by default), which also caps a longer one.
  std::chrono::milliseconds deadline{0};
  WhenBusy when_busy = WhenBusy::fail;  ///< at a busy service: fail at once, or wait
};

/// One response to a call: a frame (mapped read-only, verified by the broker), or none for a
/// response of no bytes. `last`: no more responses come for the call.
struct Response {
  std::optional<Frame> frame;  ///< the server's frame; none for a response of no bytes
  bool last = true;            ///< no more responses come for the call
};

/// A caller's number for a call it started (Caller::start), unique among its calls.
using CallId = std::uint64_t;

/// A client that calls services. Move-only; one thread at a time calls it (a Frame it returned
/// may be dropped on any thread). Errors of a call: Errc::call_failed with a CallErrc (is()
/// tells which: no_server, busy, deadline, server_gone, server_error, cancelled),
/// Errc::broker_refused with a BrokerErrc for a request the broker refused (its frame, its
/// service name, a policy without `call`), Errc::disconnected once the broker is gone (every
/// call in flight fails so), Errc::invalid_argument for a call id this caller has no call of.
class Caller {
 public:
  /// Connects to the broker at `socket_path` as `client_name`. Errors as Consumer::connect, and
  /// Errc::broker_refused with BrokerErrc::protocol_version from a broker without services
  /// (protocol version below 6).
  static Result<Caller> connect(const std::string& socket_path = default_socket_path(),
                                std::string_view client_name = "caller");
  /// Takes `other`'s connection and calls; `other` must not be used after, but may be destroyed.
  Caller(Caller&&) noexcept;
  /// Disconnects this one (as the destructor does), then takes `other`'s.
  Caller& operator=(Caller&& other) noexcept;
  Caller(const Caller&) = delete;
  Caller& operator=(const Caller&) = delete;
  /// Disconnects: the servers of its calls in flight get a Cancel.
  ~Caller();

  /// Calls `service` with `buffer` (sealed here, so that no one can change it; the server maps
  /// it read-only) and waits for the response. A server that answers with a stream gets only
  /// its first response taken here: the call is then cancelled (use start() and next() for
  /// streams).
  Result<Response> call(std::string_view service, WritableBuffer buffer, const Layout& layout,
                        const CallOptions& options = {}, const FrameMeta& meta = {});
  /// Calls `service` with a slot of this caller's pool (create_pool(), acquire()): no fd and no
  /// fresh memory per call. The server maps the pool once and reads the slot in place; the slot
  /// is busy until the server lets go of the request's frame (acquire() waits for that).
  Result<Response> call(std::string_view service, const Slot& slot, const Layout& layout,
                        const CallOptions& options = {}, const FrameMeta& meta = {});
  /// A call with no frame (a request of no bytes).
  Result<Response> call(std::string_view service, const CallOptions& options = {});

  /// Starts a call without waiting: its responses are taken with next(). For streams, and for
  /// several calls in flight at once (the broker bounds them: --max-calls-in-flight).
  Result<CallId> start(std::string_view service, WritableBuffer buffer, const Layout& layout,
                       const CallOptions& options = {}, const FrameMeta& meta = {});
  /// The same with a slot of this caller's pool.
  Result<CallId> start(std::string_view service, const Slot& slot, const Layout& layout,
                       const CallOptions& options = {}, const FrameMeta& meta = {});
  /// A call with no frame, started without waiting.
  Result<CallId> start(std::string_view service, const CallOptions& options = {});

  /// Creates a pool for requests: one memfd of `slot_count` slots of at least `slot_bytes`
  /// (whole pages), sealed and registered once (the broker verifies it then). Its id, for
  /// acquire(). Errors as Producer::create_pool(); Errc::broker_refused with
  /// BrokerErrc::limit_exceeded past the broker's --max-pools.
  Result<std::uint32_t> create_pool(std::size_t slot_bytes, std::uint32_t slot_count,
                                    MemfdOptions options = {});
  /// A free slot of `pool`, writable here. A slot sent in a call is free again once its server
  /// has dropped the request's frame (or the broker did not take it): Wait::block waits for
  /// that, reading the broker meanwhile; Wait::fail_fast returns Errc::no_free_slot.
  Result<Slot> acquire(std::uint32_t pool, Wait wait = Wait::block);
  /// Non-blocking acquire for event loops: nullopt when no slot is free yet.
  Result<std::optional<Slot>> try_acquire(std::uint32_t pool);
  /// Gives back an acquired slot that will not be sent.
  Status discard(const Slot& slot);
  /// Slots of `pool` free now (0 for a pool this caller does not have).
  std::size_t free_slots(std::uint32_t pool) const;
  /// The next response of call `id` (blocking): a failure of the call is its error. After the
  /// last response (or the error), the call is over and `id` unknown (Errc::invalid_argument).
  Result<Response> next(CallId id);
  /// The same, waiting at most `timeout`: nullopt when nothing came by then.
  Result<std::optional<Response>> next_for(CallId id, std::chrono::milliseconds timeout);
  /// Gives up call `id`: its server is told, responses still on their way are dropped, and
  /// `id` is unknown after. A call that ended meanwhile is not an error.
  Status cancel(CallId id);
  /// Calls started and not over.
  std::size_t in_flight() const noexcept;

  /// From now on, a lost broker is connected to again (with the waits of `options`) at the next
  /// start() or call(); calls in flight at the loss fail with Errc::disconnected.
  void reconnect_on_loss(ReconnectOptions options = {});
  /// The socket, for an event loop: readable when a response may have come (then call
  /// next_for() with a timeout of 0).
  int native_handle() const noexcept;

 private:
  explicit Caller(std::unique_ptr<detail::CallerState> state);
  std::unique_ptr<detail::CallerState> state_;
};

/// A call a server received: its frame (read-only), and what identifies it.
struct Request {
  std::uint64_t id = 0;      ///< the broker's number for the call (not the caller's)
  std::string service;       ///< the service called
  std::uint64_t caller = 0;  ///< the caller's client id (shmfdctl clients), for logs
  /// When the caller stops waiting: answering after it is wasted (the broker drops the
  /// response).
  std::chrono::steady_clock::time_point deadline;
  std::optional<Frame> frame;  ///< none for a request of no bytes
  /// Which of the server's connections it came on (set by the library): a response to a
  /// request from before a reconnection is dropped, since its call is over.
  std::uint64_t connection = 0;
};

/// Why a call a server was working on is over for its caller.
enum class CancelReason {
  caller_gone,  ///< the caller disconnected
  deadline,     ///< the call's deadline passed
  cancelled,    ///< the caller cancelled it (or the broker refused a response to it)
};

/// The broker's word that call `id` is over: stop working on it; a response to it is dropped.
struct Cancel {
  std::uint64_t id = 0;                           ///< the Request::id of the call
  CancelReason reason = CancelReason::cancelled;  ///< why it is over
};

/// What Server::receive() returns.
using ServerEvent = std::variant<Request, Cancel>;

/// A client that offers services and answers their calls. Move-only; one thread at a time.
/// Errors: Errc::broker_refused with a BrokerErrc (a name check_topic_name() refuses, a policy
/// without `serve`, a response frame the broker refused), Errc::disconnected, the system's.
class Server {
 public:
  /// Connects as Caller::connect does.
  static Result<Server> connect(const std::string& socket_path = default_socket_path(),
                                std::string_view client_name = "server");
  /// Takes `other`'s connection and services; `other` must not be used after, but may be
  /// destroyed.
  Server(Server&&) noexcept;
  /// Disconnects this one (as the destructor does), then takes `other`'s.
  Server& operator=(Server&& other) noexcept;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  /// Disconnects: the callers of its calls in flight get CallErrc::server_gone at once.
  ~Server();

  /// Offers `service` (waits for the broker's answer), taking at most `max_in_flight` of its
  /// calls at once (0: the broker's default, 4; the broker caps it at --max-calls-in-flight).
  /// Returns the bound granted. Offering again changes the bound.
  Result<std::uint32_t> offer(std::string_view service, std::uint32_t max_in_flight = 0);
  /// Stops offering `service` (waits for the broker's answer): its calls in flight fail for
  /// their callers with CallErrc::server_gone.
  Status withdraw(std::string_view service);

  /// The next request or cancel (blocking).
  Result<ServerEvent> receive();
  /// The same, waiting at most `timeout`: nullopt when nothing came by then.
  Result<std::optional<ServerEvent>> receive_for(std::chrono::milliseconds timeout);

  /// Answers `request` with `buffer` (sealed here). `last` = false sends one response of a
  /// stream; the stream ends with a response with `last` = true. Does not wait: a refusal by
  /// the broker (a frame it did not accept) is returned by the next respond(). A response to a
  /// call that is over (see Cancel) is dropped by the broker, and is not an error.
  Status respond(const Request& request, WritableBuffer buffer, const Layout& layout,
                 bool last = true, const FrameMeta& meta = {});
  /// Answers with a slot of this server's pool (create_pool(), acquire()): no fd and no fresh
  /// memory per response. The caller reads the slot in place; it is busy until the caller drops
  /// the response's frame.
  Status respond(const Request& request, const Slot& slot, const Layout& layout, bool last = true,
                 const FrameMeta& meta = {});
  /// A response of no bytes.
  Status respond(const Request& request, bool last = true);
  /// Ends `request` with an error: its caller gets CallErrc::server_error with `message`
  /// (printable ASCII, at most 1024 bytes kept).
  Status respond_error(const Request& request, std::string_view message);

  /// Creates a pool for responses, as Caller::create_pool() does for requests.
  Result<std::uint32_t> create_pool(std::size_t slot_bytes, std::uint32_t slot_count,
                                    MemfdOptions options = {});
  /// A free slot of `pool`: as Caller::acquire(), freed when a caller drops a response's frame.
  /// Requests that come meanwhile wait for receive().
  Result<Slot> acquire(std::uint32_t pool, Wait wait = Wait::block);
  /// Non-blocking acquire for event loops: nullopt when no slot is free yet.
  Result<std::optional<Slot>> try_acquire(std::uint32_t pool);
  /// Gives back an acquired slot that will not be sent.
  Status discard(const Slot& slot);
  /// Slots of `pool` free now (0 for a pool this server does not have).
  std::size_t free_slots(std::uint32_t pool) const;

  /// From now on, a lost broker is connected to again (with the waits of `options`) and every
  /// service offered again; receive() goes on. Requests held from before are over (their
  /// callers got CallErrc::disconnected): responses to them are dropped.
  void reconnect_on_loss(ReconnectOptions options = {});
  /// The socket, for an event loop (then call receive_for() with a timeout of 0).
  int native_handle() const noexcept;

 private:
  explicit Server(std::unique_ptr<detail::ServerState> state);
  std::unique_ptr<detail::ServerState> state_;
};

}  // namespace shmfd
