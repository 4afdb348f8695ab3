/// @file
/// Asio forms of Producer, Consumer, Caller and Server, for programs built around an
/// io_context. Completion handlers receive a Result (errors are values), with any completion
/// token: a callback, asio::use_awaitable, asio::use_future, ...
///
/// @code
/// auto blocking = shmfd::Consumer::connect(path, "viewer", shmfd::Channels::off);
/// auto consumer = shmfd::AsyncConsumer::create(io.get_executor(), std::move(*blocking));
/// auto event = co_await consumer->async_receive(asio::use_awaitable);   // Result<Event>
///
/// auto caller = shmfd::AsyncCaller::create(io.get_executor(), std::move(*blocking_caller));
/// // A callback:
/// caller->async_call("blur", std::move(buffer), layout, {}, [](shmfd::Result<shmfd::Response> r) {
///   if (r) show(r->frame->bytes());
/// });
/// // A future (the io_context run by another thread):
/// auto future = caller->async_call("ping", asio::use_future);
/// // A coroutine:
/// auto reply = co_await caller->async_call("blur", std::move(b), layout, {}, asio::use_awaitable);
/// @endcode
#pragma once

#include <fcntl.h>

#include <functional>
#include <map>
#include <memory>
#include <string_view>
#include <utility>

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/error.hpp>
#include <asio/posix/stream_descriptor.hpp>
#include <asio/post.hpp>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/service.hpp"
#include "shmfd/wire/asio_transport.hpp"

namespace shmfd {

namespace detail {
// An Asio readiness watcher on a duplicate of `fd`: Asio owns (and closes) the duplicate, the
// client keeps its own fd.
inline Result<asio::posix::stream_descriptor> watcher(const asio::any_io_executor& executor,
                                                      int fd) {
  const int dup = ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) return fail_errno(errno, "fcntl(" + std::to_string(fd) + ", F_DUPFD_CLOEXEC)");
  return asio::posix::stream_descriptor(executor, dup);
}

// Completes with Result<T> once `poll` (non-blocking, returning Result<std::optional<T>>: nullopt
// while there is nothing yet) has a value or an error, waiting for `readiness` to be readable in
// between.
template <typename T, typename Poll, typename Token>
auto async_poll_readable(asio::posix::stream_descriptor& readiness, Poll poll, Token&& token) {
  auto attempt = [poll = std::move(poll)](int) mutable -> std::optional<Result<T>> {
    auto r = poll();
    if (!r) return Result<T>(tl::unexpect, std::move(r.error()));
    if (!*r) return std::nullopt;
    return Result<T>(std::move(**r));
  };
  return async_when_ready<Result<T>>(readiness, asio::posix::stream_descriptor::wait_read,
                                     std::move(attempt), token);
}
}  // namespace detail

/// A Consumer on an Asio executor: async_receive() waits on the socket without blocking a
/// thread. Calls and completions run on the executor's threads, one at a time (use a strand on
/// a multi-threaded io_context), and the object must stay in place (not moved) while an
/// operation is in progress.
class AsyncConsumer {
 public:
  /// `consumer` must be connected with Channels::off: this waits on its socket, and pool frames
  /// on a channel do not come through it.
  static Result<AsyncConsumer> create(const asio::any_io_executor& executor, Consumer consumer) {
    if (consumer.uses_channels()) {
      return fail(Errc::invalid_argument,
                  "AsyncConsumer needs a Consumer connected with Channels::off: it waits on the "
                  "socket, and frames on channels do not come through it");
    }
    auto readiness = detail::watcher(executor, consumer.native_handle());
    if (!readiness) return fail(std::move(readiness.error()));
    return AsyncConsumer(std::move(consumer), std::move(*readiness));
  }

  /// The blocking Consumer inside, for subscribe() and the rest (from the executor's thread).
  Consumer& consumer() noexcept { return consumer_; }

  /// Completes with Result<Event> once a frame or end of stream has arrived.
  template <typename Token>
  auto async_receive(Token&& token) {
    return detail::async_poll_readable<Event>(
        readiness_, [this] { return consumer_.try_receive(); }, std::forward<Token>(token));
  }

 private:
  AsyncConsumer(Consumer consumer, asio::posix::stream_descriptor readiness)
      : consumer_(std::move(consumer)), readiness_(std::move(readiness)) {}

  Consumer consumer_;
  asio::posix::stream_descriptor readiness_;
};

/// A Producer on an Asio executor: async_publish() and async_acquire() wait for room or a
/// free slot without blocking a thread. The same rules as AsyncConsumer: one operation at a
/// time, on the executor's threads, and the object stays in place meanwhile.
class AsyncProducer {
 public:
  /// `producer` must be connected with Channels::off, as for AsyncConsumer.
  static Result<AsyncProducer> create(const asio::any_io_executor& executor, Producer producer) {
    if (producer.uses_channels()) {
      return fail(Errc::invalid_argument,
                  "AsyncProducer needs a Producer connected with Channels::off: it waits on the "
                  "socket, and releases on channels do not come through it");
    }
    auto readiness = detail::watcher(executor, producer.native_handle());
    if (!readiness) return fail(std::move(readiness.error()));
    return AsyncProducer(std::move(producer), std::move(*readiness));
  }

  /// The blocking Producer inside, for advertise(), create_pool() and the rest (from the
  /// executor's thread).
  Producer& producer() noexcept { return producer_; }

  /// Seals and publishes `buffer`; completes with Result<std::uint64_t> (the sequence) once the
  /// frame is sent, waiting without blocking the thread while backpressure holds the socket.
  template <typename Token>
  auto async_publish(std::string_view topic, WritableBuffer buffer, const Layout& layout,
                     Token&& token) {
    auto frame = std::make_shared<Result<PreparedFrame>>(
        producer_.prepare(topic, std::move(buffer), layout));
    return send_prepared(std::move(frame), std::forward<Token>(token));
  }

  /// A free slot of `pool`, waiting without blocking the thread while all are held.
  template <typename Token>
  auto async_acquire(std::uint32_t pool, Token&& token) {
    // Nothing free: wait for the broker's SlotFree.
    return detail::async_poll_readable<Slot>(
        readiness_, [this, pool] { return producer_.try_acquire(pool); },
        std::forward<Token>(token));
  }

  /// Publishes an acquired slot; completes with Result<std::uint64_t> once sent.
  template <typename Token>
  auto async_publish(std::string_view topic, const Slot& slot, const Layout& layout,
                     Token&& token) {
    auto frame = std::make_shared<Result<PreparedFrame>>(producer_.prepare(topic, slot, layout));
    return send_prepared(std::move(frame), std::forward<Token>(token));
  }

 private:
  template <typename Token>
  auto send_prepared(std::shared_ptr<Result<PreparedFrame>> frame, Token&& token) {
    auto attempt = [this, frame](int) -> std::optional<Result<std::uint64_t>> {
      if (!*frame) return Result<std::uint64_t>(tl::unexpect, frame->error());
      auto r = producer_.try_send(**frame);
      if (!r) return Result<std::uint64_t>(tl::unexpect, std::move(r.error()));
      if (!*r) return std::nullopt;
      return Result<std::uint64_t>(**r);
    };
    // A full socket waits for room; a full publish window waits for the broker's Credit.
    auto wait = [this] {
      return producer_.window_full() ? asio::posix::stream_descriptor::wait_read
                                     : asio::posix::stream_descriptor::wait_write;
    };
    return detail::async_when_ready<Result<std::uint64_t>>(readiness_, std::move(wait),
                                                           std::move(attempt), token);
  }

  AsyncProducer(Producer producer, asio::posix::stream_descriptor readiness)
      : producer_(std::move(producer)), readiness_(std::move(readiness)) {}

  Producer producer_;
  asio::posix::stream_descriptor readiness_;
};

/// A Caller on an Asio executor, with any number of calls in flight at once: each
/// async_call() completes with its own Result<Response> (a failed call: its CallErrc, as for
/// Caller::call()), with a callback, asio::use_future or asio::use_awaitable. Calls and
/// completions run on the executor's threads, one at a time (use a strand on a multi-threaded
/// io_context). Destroying it ends every operation still waiting with
/// asio::error::operation_aborted, and disconnects (their servers get a Cancel).
class AsyncCaller {
 public:
  /// Takes `caller` (connected, with no calls in flight) onto `executor`. Errors: the system's,
  /// from duplicating its socket for the executor's reactor.
  static Result<AsyncCaller> create(const asio::any_io_executor& executor, Caller caller) {
    auto readiness = detail::watcher(executor, caller.native_handle());
    if (!readiness) return fail(std::move(readiness.error()));
    return AsyncCaller(std::make_shared<State>(std::move(caller), std::move(*readiness)));
  }
  /// Takes `other`'s caller and calls waiting; `other` must not be used after.
  AsyncCaller(AsyncCaller&&) noexcept = default;
  /// Ends this one's calls (as the destructor does), then takes `other`'s.
  AsyncCaller& operator=(AsyncCaller&& other) noexcept {
    if (this != &other) {
      close();
      state_ = std::move(other.state_);
    }
    return *this;
  }
  ~AsyncCaller() { close(); }

  /// The blocking Caller inside, for start() and cancel() (from the executor's thread).
  Caller& caller() noexcept { return state_->caller; }

  /// Calls `service` with `buffer`; completes with Result<Response>: its first response (the
  /// rest of a stream is cancelled, as Caller::call() does) or its failure.
  template <typename Token>
  auto async_call(std::string_view service, WritableBuffer buffer, const Layout& layout,
                  const CallOptions& options, Token&& token) {
    return initiate(state_->caller.start(service, std::move(buffer), layout, options), true,
                    std::forward<Token>(token));
  }
  /// Calls `service` with a slot of the caller's pool (caller().create_pool(), and
  /// caller().try_acquire() or acquire() to get it).
  template <typename Token>
  auto async_call(std::string_view service, const Slot& slot, const Layout& layout,
                  const CallOptions& options, Token&& token) {
    return initiate(state_->caller.start(service, slot, layout, options), true,
                    std::forward<Token>(token));
  }
  /// A call with no frame.
  template <typename Token>
  auto async_call(std::string_view service, const CallOptions& options, Token&& token) {
    return initiate(state_->caller.start(service, options), true, std::forward<Token>(token));
  }
  /// The same, with the default options.
  template <typename Token>
  auto async_call(std::string_view service, Token&& token) {
    return async_call(service, CallOptions{}, std::forward<Token>(token));
  }
  /// The next response of call `id` (Caller::start()), for streams: completes with
  /// Result<Response> as Caller::next() returns it. One async_next() per call at a time.
  template <typename Token>
  auto async_next(CallId id, Token&& token) {
    return initiate(Result<CallId>(id), false, std::forward<Token>(token));
  }

 private:
  using Handler = std::function<void(Result<Response>)>;
  struct Waiting {
    Handler complete;
    bool first_only = false;  // async_call: its first response, and the call is over
  };
  struct State {
    State(Caller c, asio::posix::stream_descriptor r)
        : caller(std::move(c)), readiness(std::move(r)) {}
    Caller caller;
    asio::posix::stream_descriptor readiness;
    std::map<CallId, Waiting> waiting;
    bool armed = false;   // a wait for readability is on
    bool closed = false;  // the AsyncCaller is gone
  };

  explicit AsyncCaller(std::shared_ptr<State> state) : state_(std::move(state)) {}

  template <typename Token>
  auto initiate(Result<CallId> id, bool first_only, Token&& token) {
    return asio::async_initiate<Token, void(Result<Response>)>(
        [state = state_, first_only](auto handler, Result<CallId> started) {
          auto shared = std::make_shared<decltype(handler)>(std::move(handler));
          auto executor = asio::get_associated_executor(*shared, state->readiness.get_executor());
          // Completion is posted: never from inside the initiating call.
          Handler complete = [shared, executor](Result<Response> r) {
            asio::post(executor, [shared, r = std::move(r)]() mutable { (*shared)(std::move(r)); });
          };
          if (!started) {
            complete(Result<Response>(tl::unexpect, std::move(started.error())));
            return;
          }
          if (state->waiting.count(*started) != 0) {
            complete(Result<Response>(
                tl::unexpect, Error(Errc::invalid_argument, "call " + std::to_string(*started) +
                                                                " has an async_next() waiting")));
            return;
          }
          state->waiting.emplace(*started, Waiting{std::move(complete), first_only});
          // A response may be queued already (taken off the socket by another call's wait).
          asio::post(state->readiness.get_executor(), [state] { pump(state, {}); });
        },
        token, std::move(id));
  }

  // Hands every waiting call what came for it, until a pass finds nothing; then waits for the
  // socket again while calls wait.
  static void pump(const std::shared_ptr<State>& state, std::error_code ec) {
    if (state->closed || ec) {
      const Error why(ec ? ec : asio::error::make_error_code(asio::error::operation_aborted),
                      state->closed ? "the AsyncCaller was destroyed with the call waiting"
                                    : "async_wait on the caller's socket: " + ec.message());
      auto waiting = std::move(state->waiting);
      state->waiting.clear();
      for (auto& [id, w] : waiting) w.complete(Result<Response>(tl::unexpect, why));
      return;
    }
    for (bool progress = true; progress;) {
      progress = false;
      for (auto it = state->waiting.begin(); it != state->waiting.end();) {
        auto r = state->caller.next_for(it->first, std::chrono::milliseconds(0));
        if (r && !*r) {
          ++it;
          continue;
        }
        progress = true;
        Waiting w = std::move(it->second);
        const CallId id = it->first;
        it = state->waiting.erase(it);
        if (!r) {
          w.complete(Result<Response>(tl::unexpect, std::move(r.error())));
          continue;
        }
        if (w.first_only && !(*r)->last) (void)state->caller.cancel(id);
        w.complete(Result<Response>(std::move(**r)));
      }
    }
    if (!state->waiting.empty() && !state->armed) {
      state->armed = true;
      state->readiness.async_wait(asio::posix::stream_descriptor::wait_read,
                                  [state](std::error_code e) {
                                    state->armed = false;
                                    pump(state, e);
                                  });
    }
  }

  void close() {
    if (!state_) return;
    state_->closed = true;
    std::error_code ignored;
    state_->readiness.cancel(ignored);
    if (!state_->armed) pump(state_, {});
    state_.reset();
  }

  std::shared_ptr<State> state_;
};

/// A Server on an Asio executor: async_receive() waits on the socket without blocking a thread.
/// The same rules as AsyncConsumer: one async_receive() at a time, on the executor's threads,
/// and the object stays in place meanwhile. Answer with server().respond(): it sends without
/// waiting for the caller (it blocks only while the broker holds back a stream that is faster
/// than its caller reads).
class AsyncServer {
 public:
  /// Takes `server` (connected, its services offered or not) onto `executor`. Errors: the
  /// system's, from duplicating its socket for the executor's reactor.
  static Result<AsyncServer> create(const asio::any_io_executor& executor, Server server) {
    auto readiness = detail::watcher(executor, server.native_handle());
    if (!readiness) return fail(std::move(readiness.error()));
    return AsyncServer(std::move(server), std::move(*readiness));
  }

  /// The blocking Server inside, for offer(), respond() and the rest (from the executor's
  /// thread).
  Server& server() noexcept { return server_; }

  /// Completes with Result<ServerEvent> once a request or a cancel has come.
  template <typename Token>
  auto async_receive(Token&& token) {
    return detail::async_poll_readable<ServerEvent>(
        readiness_, [this] { return server_.receive_for(std::chrono::milliseconds(0)); },
        std::forward<Token>(token));
  }

 private:
  AsyncServer(Server server, asio::posix::stream_descriptor readiness)
      : server_(std::move(server)), readiness_(std::move(readiness)) {}

  Server server_;
  asio::posix::stream_descriptor readiness_;
};

}  // namespace shmfd
