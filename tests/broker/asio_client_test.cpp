// The Asio forms of Producer, Consumer, Caller and Server against an in-process broker: in
// coroutines, with callbacks and with futures.
#include "shmfd/asio_client.hpp"

#include <sys/socket.h>

#include <future>
#include <thread>

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/use_future.hpp>

#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/frames.hpp"

namespace shmfd {
namespace {

// Receives `frames` frames, counting those whose bytes hold their pattern (and, with
// `from_pool`, that came from a pool slot).
asio::awaitable<void> receive_frames(AsyncConsumer& consumer, std::uint64_t frames, bool from_pool,
                                     std::uint64_t& received, std::uint64_t& intact,
                                     std::string& error) {
  while (received < frames) {
    auto event = co_await consumer.async_receive(asio::use_awaitable);
    if (!event || !std::holds_alternative<Frame>(*event)) {
      error = event ? "unexpected end of stream" : event.error().message();
      co_return;
    }
    const Frame& frame = std::get<Frame>(*event);
    intact += frame.in_pool() == from_pool && testing::holds_pattern(frame);
    ++received;
  }
}

class AsioClientTest : public testing::FdLeakTest {};

TEST_F(AsioClientTest, CoroutinesPublishAndReceiveUnderBackpressure) {
  testing::InProcessBroker broker;
  asio::io_context io;
  constexpr std::uint64_t kFrames = 200;

  auto consumer = Consumer::connect(broker.path(), "async-consumer", Channels::off);
  ASSERT_TRUE(consumer);
  // Depth 2 with block-producer: the producer has to wait for the consumer many times.
  ASSERT_TRUE(consumer->subscribe("async", 2, Backpressure::block_producer));
  auto async_consumer = AsyncConsumer::create(io.get_executor(), std::move(*consumer));
  ASSERT_TRUE(async_consumer) << async_consumer.error().message();

  auto producer = Producer::connect(broker.path(), "async-producer", Channels::off);
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("async", LayoutKind::blob));
  // A tiny send buffer: once the broker stops reading, the producer's socket is full after a
  // few frames and async_publish must wait for writability instead of blocking the thread.
  const int small = 4096;
  ASSERT_EQ(::setsockopt(producer->native_handle(), SOL_SOCKET, SO_SNDBUF, &small, sizeof small),
            0);
  auto async_producer = AsyncProducer::create(io.get_executor(), std::move(*producer));
  ASSERT_TRUE(async_producer) << async_producer.error().message();

  std::uint64_t published = 0, received = 0, intact = 0;
  std::string error;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (std::uint64_t seq = 1; seq <= kFrames; ++seq) {
          const Layout layout = blob_layout(64 * 1024);
          auto buffer = async_producer->producer().allocate("async", layout);
          if (!buffer) co_return;
          for (std::size_t i = 0; i < buffer->bytes().size(); ++i) {
            buffer->bytes()[i] = testing::pattern_byte(seq, i);
          }
          auto sent = co_await async_producer->async_publish("async", std::move(*buffer), layout,
                                                             asio::use_awaitable);
          if (!sent) {
            error = sent.error().message();
            co_return;
          }
          ++published;
        }
      },
      asio::detached);
  asio::co_spawn(io, receive_frames(*async_consumer, kFrames, false, received, intact, error),
                 asio::detached);
  io.run();

  EXPECT_EQ(error, "");
  EXPECT_EQ(published, kFrames);
  EXPECT_EQ(received, kFrames);
  EXPECT_EQ(intact, kFrames);
}

TEST_F(AsioClientTest, PoolSlotsAreAcquiredAndPublishedWithoutBlockingTheThread) {
  testing::InProcessBroker broker;
  asio::io_context io;
  constexpr std::uint64_t kFrames = 300;
  auto consumer = Consumer::connect(broker.path(), "async-consumer", Channels::off);
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("async-pool", 2, Backpressure::block_producer));
  auto async_consumer = AsyncConsumer::create(io.get_executor(), std::move(*consumer));
  ASSERT_TRUE(async_consumer);
  auto producer = Producer::connect(broker.path(), "async-producer", Channels::off);
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("async-pool", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("async-pool", 4096, 3);
  ASSERT_TRUE(pool) << pool.error().message();
  auto async_producer = AsyncProducer::create(io.get_executor(), std::move(*producer));
  ASSERT_TRUE(async_producer);

  std::uint64_t published = 0, received = 0, intact = 0;
  std::string error;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (std::uint64_t seq = 1; seq <= kFrames; ++seq) {
          // With 3 slots and a consumer on the same thread, this has to wait for SlotFree.
          auto slot = co_await async_producer->async_acquire(*pool, asio::use_awaitable);
          if (!slot) {
            error = slot.error().message();
            co_return;
          }
          for (std::size_t i = 0; i < slot->bytes.size(); ++i) {
            slot->bytes[i] = testing::pattern_byte(seq, i);
          }
          auto sent = co_await async_producer->async_publish(
              "async-pool", *slot, blob_layout(slot->bytes.size()), asio::use_awaitable);
          if (!sent) {
            error = sent.error().message();
            co_return;
          }
          ++published;
        }
      },
      asio::detached);
  asio::co_spawn(io, receive_frames(*async_consumer, kFrames, true, received, intact, error),
                 asio::detached);
  io.run();

  EXPECT_EQ(error, "");
  EXPECT_EQ(published, kFrames);
  EXPECT_EQ(received, kFrames);
  EXPECT_EQ(intact, kFrames);
}

// A server on `io` that answers `requests` requests of "async/invert", each with its bytes
// inverted; requests with no frame get an error.
asio::awaitable<void> invert_server(AsyncServer& server, int requests, std::string& error) {
  for (int answered = 0; answered < requests;) {
    auto event = co_await server.async_receive(asio::use_awaitable);
    if (!event) {
      error = event.error().message();
      co_return;
    }
    auto* request = std::get_if<Request>(&*event);
    if (request == nullptr) continue;
    ++answered;
    if (!request->frame) {
      (void)server.server().respond_error(*request, "no frame");
      continue;
    }
    const auto in = request->frame->bytes();
    auto out = WritableBuffer::create("inverted", in.size());
    if (!out) co_return;
    for (std::size_t i = 0; i < in.size(); ++i) out->bytes()[i] = ~in[i];
    if (auto ok = server.server().respond(*request, std::move(*out), request->frame->layout());
        !ok) {
      error = ok.error().message();
    }
  }
}

WritableBuffer numbered(std::uint64_t n, std::size_t size = 4096) {
  auto buffer = WritableBuffer::create("request", size);
  EXPECT_TRUE(buffer);
  for (std::size_t i = 0; i < size; ++i) buffer->bytes()[i] = testing::pattern_byte(n, i);
  return std::move(*buffer);
}

bool inverted(const Result<Response>& r, std::uint64_t n) {
  if (!r || !r->frame || r->frame->bytes().size() != 4096) return false;
  for (std::size_t i = 0; i < 4096; ++i) {
    if (r->frame->bytes()[i] != ~testing::pattern_byte(n, i)) return false;
  }
  return true;
}

TEST_F(AsioClientTest, ManyCallsInFlightCompleteEachWithItsOwnResponse) {
  testing::InProcessBroker broker;
  asio::io_context io;
  auto server = Server::connect(broker.path(), "async-server");
  ASSERT_TRUE(server);
  ASSERT_TRUE(server->offer("async/invert", 8));
  auto async_server = AsyncServer::create(io.get_executor(), std::move(*server));
  ASSERT_TRUE(async_server);
  auto caller = Caller::connect(broker.path(), "async-caller");
  ASSERT_TRUE(caller);
  auto async_caller = AsyncCaller::create(io.get_executor(), std::move(*caller));
  ASSERT_TRUE(async_caller);

  // Six calls at once with callbacks, a seventh with no frame (the server's error), and an
  // eighth from a coroutine: the broker's bound of calls in flight per caller (8).
  constexpr std::uint64_t kCalls = 6;
  std::string error;
  asio::co_spawn(io, invert_server(*async_server, kCalls + 2, error), asio::detached);
  std::uint64_t completed = 0, right = 0;
  for (std::uint64_t n = 0; n < kCalls; ++n) {
    async_caller->async_call("async/invert", numbered(n), blob_layout(4096), CallOptions{},
                             [&, n](Result<Response> r) {
                               ++completed;
                               right += inverted(r, n);
                               if (!r) error = r.error().message();
                             });
  }
  std::string no_frame;
  async_caller->async_call(
      "async/invert", [&](Result<Response> r) { no_frame = r ? "answered" : r.error().message(); });
  bool coroutine_right = false;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto r = co_await async_caller->async_call("async/invert", numbered(99), blob_layout(4096),
                                                   CallOptions{}, asio::use_awaitable);
        coroutine_right = inverted(r, 99);
      },
      asio::detached);
  io.run();

  EXPECT_EQ(error, "");
  EXPECT_EQ(completed, kCalls);
  EXPECT_EQ(right, kCalls);
  EXPECT_TRUE(coroutine_right);
  EXPECT_NE(no_frame.find("no frame"), std::string::npos) << no_frame;
}

TEST_F(AsioClientTest, CallsInPoolSlotsCompleteEachWithItsOwnResponse) {
  testing::InProcessBroker broker;
  asio::io_context io;
  auto server = Server::connect(broker.path(), "async-server");
  ASSERT_TRUE(server);
  ASSERT_TRUE(server->offer("async/invert", 8));
  auto async_server = AsyncServer::create(io.get_executor(), std::move(*server));
  ASSERT_TRUE(async_server);
  auto caller = Caller::connect(broker.path(), "async-caller");
  ASSERT_TRUE(caller);
  auto pool = caller->create_pool(4096, 4);
  ASSERT_TRUE(pool);
  auto async_caller = AsyncCaller::create(io.get_executor(), std::move(*caller));
  ASSERT_TRUE(async_caller);

  constexpr std::uint64_t kCalls = 4;  // one slot each
  std::string error;
  asio::co_spawn(io, invert_server(*async_server, kCalls, error), asio::detached);
  std::uint64_t completed = 0, right = 0;
  for (std::uint64_t n = 0; n < kCalls; ++n) {
    auto slot = async_caller->caller().try_acquire(*pool);
    ASSERT_TRUE(slot && *slot);
    for (std::size_t i = 0; i < 4096; ++i) (*slot)->bytes[i] = testing::pattern_byte(n, i);
    async_caller->async_call("async/invert", **slot, blob_layout(4096), CallOptions{},
                             [&, n](Result<Response> r) {
                               ++completed;
                               right += inverted(r, n);
                               if (!r) error = r.error().message();
                             });
  }
  io.run();
  EXPECT_EQ(error, "");
  EXPECT_EQ(completed, kCalls);
  EXPECT_EQ(right, kCalls);
}

TEST_F(AsioClientTest, CallsWithFuturesAndStreamsAndNamedFailures) {
  testing::InProcessBroker broker;
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });

  // A blocking server on a thread of its own: one stream of three responses, then holds the
  // next request until `finished`.
  std::promise<void> finished;
  std::thread serving([&] {
    auto server = Server::connect(broker.path(), "stream-server");
    ASSERT_TRUE(server);
    ASSERT_TRUE(server->offer("async/stream"));
    auto event = server->receive();
    ASSERT_TRUE(event);
    auto* request = std::get_if<Request>(&*event);
    ASSERT_NE(request, nullptr);
    for (std::uint64_t i = 0; i < 3; ++i) {
      ASSERT_TRUE(server->respond(*request, numbered(i), blob_layout(4096), i == 2));
    }
    finished.get_future().wait();
  });

  // Everything on the io_context's thread: post, then wait on a future.
  auto on_io = [&](auto f) {
    std::promise<decltype(f())> done;
    asio::post(io, [&] { done.set_value(f()); });
    return done.get_future().get();
  };
  auto caller = Caller::connect(broker.path(), "future-caller");
  ASSERT_TRUE(caller);
  auto made = AsyncCaller::create(io.get_executor(), std::move(*caller));
  ASSERT_TRUE(made);
  auto async_caller = std::make_unique<AsyncCaller>(std::move(*made));

  // No server: a named failure, through a future.
  auto failed =
      on_io([&] { return async_caller->async_call("async/nobody", asio::use_future); }).get();
  ASSERT_FALSE(failed);
  EXPECT_TRUE(failed.error().is(CallErrc::no_server)) << failed.error().message();

  // A stream: start() on the blocking Caller inside, then async_next() until the last.
  Result<CallId> id = fail(Errc::invalid_argument, "not started");
  for (int tries = 0; tries < 500; ++tries) {
    id = on_io([&] {
      return async_caller->caller().start("async/stream", CallOptions{.when_busy = WhenBusy::wait});
    });
    ASSERT_TRUE(id);
    auto first = on_io([&] { return async_caller->async_next(*id, asio::use_future); }).get();
    if (!first && first.error().is(CallErrc::no_server)) {  // the server is not there yet
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    ASSERT_TRUE(first && first->frame) << (first ? "no frame" : first.error().message());
    EXPECT_EQ(first->frame->bytes()[7], testing::pattern_byte(0, 7));
    EXPECT_FALSE(first->last);
    break;
  }
  auto second = on_io([&] { return async_caller->async_next(*id, asio::use_future); }).get();
  auto third = on_io([&] { return async_caller->async_next(*id, asio::use_future); }).get();
  ASSERT_TRUE(second && third);
  EXPECT_EQ(second->frame->bytes()[5], testing::pattern_byte(1, 5));
  EXPECT_FALSE(second->last);
  EXPECT_TRUE(third->last);
  // Over: its id is unknown now.
  auto over = on_io([&] { return async_caller->async_next(*id, asio::use_future); }).get();
  ASSERT_FALSE(over);
  EXPECT_TRUE(over.error().is(Errc::invalid_argument));

  // A call still waiting when the AsyncCaller goes completes with operation_aborted.
  std::future<Result<Response>> pending = on_io([&] {
    return async_caller->async_call(
        "async/stream",
        CallOptions{.deadline = std::chrono::seconds(30), .when_busy = WhenBusy::wait},
        asio::use_future);
  });
  on_io([&] {
    async_caller.reset();
    return 0;
  });
  auto aborted = pending.get();
  finished.set_value();
  serving.join();
  ASSERT_FALSE(aborted);
  EXPECT_EQ(aborted.error().code(), asio::error::make_error_code(asio::error::operation_aborted))
      << aborted.error().message();

  work.reset();
  runner.join();
}

}  // namespace
}  // namespace shmfd
