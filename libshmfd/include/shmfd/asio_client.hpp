/// @file
/// Asio forms of Producer and Consumer, for programs built around an io_context. Completion
/// handlers receive a Result (errors are values), with any completion token: a callback,
/// asio::use_awaitable, asio::use_future, ...
///
/// @code
/// auto blocking = shmfd::Consumer::connect(path, "viewer", shmfd::Channels::off);
/// auto consumer = shmfd::AsyncConsumer::create(io.get_executor(), std::move(*blocking));
/// auto event = co_await consumer->async_receive(asio::use_awaitable);   // Result<Event>
/// @endcode
#pragma once

#include <fcntl.h>

#include <memory>
#include <string_view>

#include <asio/any_io_executor.hpp>
#include <asio/posix/stream_descriptor.hpp>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
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
    auto attempt = [this](int) -> std::optional<Result<Event>> {
      auto r = consumer_.try_receive();
      if (!r) return Result<Event>(tl::unexpect, std::move(r.error()));
      if (!*r) return std::nullopt;
      return Result<Event>(std::move(**r));
    };
    return detail::async_when_ready<Result<Event>>(
        readiness_, asio::posix::stream_descriptor::wait_read, std::move(attempt), token);
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
    auto attempt = [this, pool](int) -> std::optional<Result<Slot>> {
      auto r = producer_.try_acquire(pool);
      if (!r) return Result<Slot>(tl::unexpect, std::move(r.error()));
      if (!*r) return std::nullopt;  // wait for the broker's SlotFree
      return Result<Slot>(**r);
    };
    return detail::async_when_ready<Result<Slot>>(
        readiness_, asio::posix::stream_descriptor::wait_read, std::move(attempt), token);
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

}  // namespace shmfd
