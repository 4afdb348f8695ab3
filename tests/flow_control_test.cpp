// Flow control as users meet it: one consumer process stopped with SIGSTOP must not slow the
// producer or the healthy consumers of a drop-oldest topic, pool or sealed; and a live source
// held back keeps its cadence afterwards instead of catching up in a burst. Written against
// behaviour (rates and arrival times), not the broker's internals.
#include <poll.h>
#include <signal.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/program.hpp"
#include "support/raw_client.hpp"

namespace shmfd {
namespace {

using Clock = std::chrono::steady_clock;

// A consumer on its own thread that takes every frame and releases it at once.
class HealthyConsumer {
 public:
  HealthyConsumer(const std::string& path, const std::string& topic) {
    auto c = Consumer::connect(path, "healthy");
    if (!c || !c->subscribe(topic)) throw std::runtime_error("healthy consumer");
    consumer_.emplace(std::move(*c));
    thread_ = std::thread([this] { run(); });
  }
  ~HealthyConsumer() {
    stop_ = true;
    thread_.join();
  }
  std::uint64_t frames() const { return frames_; }

 private:
  void run() {
    while (!stop_) {
      pollfd p{consumer_->native_handle(), POLLIN, 0};
      if (::poll(&p, 1, 20) <= 0) continue;
      for (;;) {
        auto event = consumer_->try_receive();
        if (!event || !*event) break;
        if (std::holds_alternative<Frame>(**event)) ++frames_;
      }
    }
  }

  std::optional<Consumer> consumer_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> frames_{0};
  std::thread thread_;
};

struct Produced {
  std::uint64_t ticks = 0;
  std::uint64_t published = 0;
};

// Publishes 64x64 RGBA frames at `fps` for `ticks` ticks: from `pool` (a tick with no free
// slot publishes nothing), or a sealed memfd each when `pool` is 0.
Produced produce(Producer& producer, const std::string& topic, std::uint32_t pool,
                 std::uint64_t fps, std::uint64_t ticks) {
  const auto layout = *image_layout(PixelFormat::rgba8, 64, 64);
  const auto period = std::chrono::nanoseconds(1'000'000'000 / static_cast<std::int64_t>(fps));
  Produced out;
  auto next = Clock::now();
  for (; out.ticks < ticks; ++out.ticks) {
    if (pool != 0) {
      auto slot = producer.try_acquire(pool);
      if (slot && *slot && producer.publish(topic, **slot, layout)) ++out.published;
    } else {
      auto buffer = producer.allocate(topic, layout);
      if (buffer && producer.publish(topic, std::move(*buffer), layout)) ++out.published;
    }
    next += period;
    std::this_thread::sleep_until(next);
  }
  return out;
}

class FlowControlTest : public testing::FdLeakTest,
                        public ::testing::WithParamInterface<bool /* pool */> {
 protected:
  void SetUp() override {
    FdLeakTest::SetUp();
    broker_ = std::make_unique<testing::InProcessBroker>();
  }
  void TearDown() override {
    broker_.reset();
    FdLeakTest::TearDown();
  }
  std::unique_ptr<testing::InProcessBroker> broker_;
};

// The README's setup: shmfd-sub at the default depth (4, drop-oldest) and a pool of 4 slots.
// One shmfd-sub is stopped for the whole run; the producer and the healthy consumer keep their
// rate (before pool windows, the stopped consumer pinned all 4 slots and both starved).
TEST_P(FlowControlTest, AStoppedDropOldestConsumerSlowsNoOne) {
  const bool pooled = GetParam();
  testing::Program stopped({SHMFD_SUB_BIN, "--socket", broker_->path(), "--topic", "c"});
  ASSERT_TRUE(stopped.wait_for("subscribed")) << stopped.output();
  stopped.signal(SIGSTOP);
  HealthyConsumer healthy(broker_->path(), "c");
  auto producer = Producer::connect(broker_->path(), "producer");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(
      producer->advertise("c", LayoutKind::IMAGE, pooled ? Guarantee::pool : Guarantee::sealed));
  std::uint32_t pool = 0;
  if (pooled) {
    auto created = producer->create_pool("c", 64 * 64 * 4, 4);
    ASSERT_TRUE(created) << created.error().message();
    pool = *created;
  }
  const Produced produced = produce(*producer, "c", pool, 100, 200);  // two seconds
  // Let the last frames arrive (bounded), then compare.
  const auto deadline = Clock::now() + std::chrono::seconds(2);
  while (healthy.frames() < produced.published && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_GE(produced.published, produced.ticks * 9 / 10)
      << "the producer was held back: " << produced.published << " of " << produced.ticks;
  EXPECT_GE(healthy.frames(), produced.published * 9 / 10)
      << "the healthy consumer got " << healthy.frames() << " of " << produced.published;
  stopped.signal(SIGCONT);
}

INSTANTIATE_TEST_SUITE_P(PoolAndSealed, FlowControlTest, ::testing::Bool(),
                         [](const auto& param_info) {
                           return param_info.param ? "pool" : "sealed";
                         });

// A live source held back by a block-producer consumer keeps its cadence once let go: the
// ticks it missed are skipped, not published in a burst.
TEST(LivePacingTest, ALiveSourceDoesNotCatchUpInABurst) {
  testing::InProcessBroker broker;
  auto consumer = Consumer::connect(broker.path(), "slow");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("live", 1, Backpressure::BLOCK_PRODUCER));
  testing::Program pub({SHMFD_PUB_BIN, "--socket", broker.path(), "--topic", "live", "--fps", "50",
                        "--pool", "2", "--width", "64", "--height", "64"});
  auto first = consumer->receive();
  ASSERT_TRUE(first && std::holds_alternative<Frame>(*first));
  std::this_thread::sleep_for(std::chrono::seconds(1));  // the stall: 50 ticks pass
  const auto resumed = Clock::now();
  first->emplace<EndOfStream>();  // drops the held frame, which releases it
  std::vector<Clock::duration> arrivals;
  while (Clock::now() - resumed < std::chrono::milliseconds(600)) {
    auto event = consumer->receive();
    ASSERT_TRUE(event) << event.error().message();
    arrivals.push_back(Clock::now() - resumed);
  }
  const auto early = std::count_if(arrivals.begin(), arrivals.end(),
                                   [](auto t) { return t < std::chrono::milliseconds(300); });
  // At 50 fps, 300 ms hold 15 ticks (plus the frame queued during the stall); a burst would
  // deliver the 50 missed frames as fast as they are released.
  EXPECT_LE(early, 22) << "frames in the first 300 ms after the stall";
  EXPECT_GE(early, 8);
}

// A stopped block-producer subscriber holds the producer back in publish(), with a bounded
// number of sealed buffers in flight: not hundreds queued in its socket outside every limit.
TEST(InFlightTest, AHeldBackProducerWaitsWithABoundedNumberOfFramesInFlight) {
  testing::InProcessBroker broker;
  auto stopped =
      std::make_unique<testing::RawClient>(testing::RawClient::greeted(broker.path(), "stopped"));
  stopped->subscribe("block", 1, proto::Backpressure::BLOCK_PRODUCER);  // and never reads again
  auto producer = Producer::connect(broker.path(), "producer");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("block", LayoutKind::BLOB));
  std::atomic<std::uint64_t> published{0};
  std::thread publisher([&] {
    const Layout layout = blob_layout(1 << 20);
    for (int i = 0; i < 300; ++i) {
      auto buffer = producer->allocate("block", layout);
      if (!buffer || !producer->publish("block", std::move(*buffer), layout)) return;
      ++published;
    }
  });
  // Wait until it stops making progress (bounded), then count.
  std::uint64_t last = ~std::uint64_t{0};
  for (int i = 0; i < 100 && published != last; ++i) {
    last = published;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const std::uint64_t held = published;
  // The window (8), the subscriber's depth (1), the frame it was sent, and the one read past
  // the full queue; before the window, the socket took a few hundred.
  EXPECT_LE(held, 8U + 1U + 1U + 2U) << "frames the producer got out while held back";
  stopped.reset();  // the subscriber goes; the producer is let go and finishes
  publisher.join();
  EXPECT_EQ(published, 300U);
}

}  // namespace
}  // namespace shmfd
