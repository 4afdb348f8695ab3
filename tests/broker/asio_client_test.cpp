// The Asio forms of Producer and Consumer against an in-process broker, in coroutines.
#include "shmfd/asio_client.hpp"

#include <sys/socket.h>

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

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

}  // namespace
}  // namespace shmfd
