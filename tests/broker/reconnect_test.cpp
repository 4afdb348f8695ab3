// Surviving a broker restart (issue 16): a producer and a consumer with reconnect_on_loss()
// go on through a broker killed with SIGKILL and started again on the same path. The consumer
// is told (a Reconnected event), and every frame is accounted for: received, or counted in
// dropped() (the producer keeps its sequence numbers, so the gap shows what was lost).
#include <signal.h>

#include <atomic>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"

namespace shmfd {
namespace {

// Fds counted: the old connections, the retired pool memfds and the old frames all go.
class ReconnectTest : public testing::FdLeakTest,
                      public ::testing::WithParamInterface<bool /* pool */> {};

TEST_P(ReconnectTest, ProducerAndConsumerGoOnThroughABrokerRestart) {
  const bool pooled = GetParam();
  testing::TempDir dir;
  const std::string path = dir.path() + "/broker.sock";
  auto broker = std::make_unique<testing::SubprocessBroker>(std::vector<std::string>{}, path);
  ASSERT_TRUE(broker->listening()) << broker->output();

  auto consumer = Consumer::connect(path, "survivor");
  ASSERT_TRUE(consumer);
  consumer->reconnect_on_loss({std::chrono::milliseconds(10), std::chrono::milliseconds(100)});
  ASSERT_TRUE(consumer->subscribe("restart", 8));
  auto producer = Producer::connect(path, "survivor");
  ASSERT_TRUE(producer);
  producer->reconnect_on_loss({std::chrono::milliseconds(10), std::chrono::milliseconds(100)});
  ASSERT_TRUE(producer->advertise("restart", LayoutKind::blob,
                                  pooled ? Guarantee::pool : Guarantee::sealed));
  std::uint32_t pool = 0;
  if (pooled) {
    auto created = producer->create_pool("restart", 4096, 8);
    ASSERT_TRUE(created) << created.error().message();
    pool = *created;
  }

  constexpr std::uint64_t kFrames = 600;
  std::atomic<std::uint64_t> published{0};
  std::atomic<bool> failed{false};
  std::string failure;
  std::thread source([&] {
    const Layout layout = blob_layout(4096);
    for (std::uint64_t i = 1; i <= kFrames; ++i) {
      Result<std::uint64_t> sent = std::uint64_t{0};
      if (pooled) {
        auto slot = producer->acquire(pool);
        if (!slot) {
          failure = slot.error().message();
          failed = true;
          return;
        }
        std::memset(slot->bytes.data(), static_cast<int>(i % 251), 4096);
        sent = producer->publish("restart", *slot, layout);
      } else {
        auto buffer = producer->allocate("restart", layout);
        if (buffer) std::memset(buffer->bytes().data(), static_cast<int>(i % 251), 4096);
        sent = buffer ? producer->publish("restart", std::move(*buffer), layout)
                      : Result<std::uint64_t>(fail(std::move(buffer.error())));
      }
      if (!sent) {
        failure = sent.error().message();
        failed = true;
        return;
      }
      EXPECT_EQ(*sent, i) << "sequence numbers continue through the restart";
      published = i;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  });

  std::uint64_t received = 0, dropped = 0, last = 0, reconnects = 0, wrong = 0;
  bool restarted = false;
  while (last < kFrames && !failed) {
    if (!restarted && received >= 100) {
      broker->stop(SIGKILL);  // mid-stream, frames in flight; its socket file stays
      broker = std::make_unique<testing::SubprocessBroker>(std::vector<std::string>{}, path);
      ASSERT_TRUE(broker->listening()) << broker->output();
      restarted = true;
    }
    auto event = consumer->receive();
    ASSERT_TRUE(event) << event.error().message();
    if (std::holds_alternative<Reconnected>(*event)) {
      ++reconnects;
      continue;
    }
    if (std::holds_alternative<EndOfStream>(*event)) continue;  // the producer's old session
    const Frame& frame = std::get<Frame>(*event);
    EXPECT_GT(frame.sequence(), last);
    last = frame.sequence();
    dropped = frame.dropped();
    ++received;
    for (std::byte b : frame.bytes()) {
      if (std::to_integer<std::uint64_t>(b) != frame.sequence() % 251) ++wrong;
    }
  }
  source.join();
  ASSERT_FALSE(failed) << failure;
  EXPECT_EQ(published, kFrames);
  EXPECT_EQ(reconnects, 1U);
  EXPECT_EQ(received + dropped, kFrames) << received << " received, " << dropped << " counted lost";
  EXPECT_EQ(wrong, 0U) << "bytes of a frame were wrong";
  EXPECT_GE(producer->reconnects(), 1U);
}

INSTANTIATE_TEST_SUITE_P(PoolAndSealed, ReconnectTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "pool" : "sealed";
                         });

// Without reconnect_on_loss, the loss is an error, as before.
TEST(ReconnectOffTest, WithoutItALostBrokerIsAnError) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/broker.sock";
  testing::SubprocessBroker broker({}, path);
  ASSERT_TRUE(broker.listening()) << broker.output();
  auto consumer = Consumer::connect(path, "plain");
  ASSERT_TRUE(consumer && consumer->subscribe("t"));
  broker.stop(SIGKILL);
  auto event = consumer->receive();
  ASSERT_FALSE(event);
  EXPECT_TRUE(event.error().is(Errc::disconnected)) << event.error().message();
}

}  // namespace
}  // namespace shmfd
