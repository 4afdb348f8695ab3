// Live consumers get the newest frames (issue 32): a slow drop-oldest consumer receives the oldest
// of the newest `depth` frames published, never an older one; a latest consumer the newest; and
// every frame is either received or counted as dropped, up to and with the end of stream. On a
// channel, through the broker with pool frames, and through the broker with sealed frames.
// Freshness is asserted in sequence numbers (how many frames were published after the one
// received), not in milliseconds, so a slow machine changes nothing.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_fixture.hpp"
#include "support/broker_harness.hpp"
#include "support/frames.hpp"

namespace shmfd {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum class Path { channel, broker_pool, broker_sealed };

std::string path_name(const ::testing::TestParamInfo<Path>& info) {
  switch (info.param) {
    case Path::channel:
      return "channel";
    case Path::broker_pool:
      return "brokerPool";
    case Path::broker_sealed:
      return "brokerSealed";
  }
  return "unknown";
}

class FreshnessTest : public testing::BrokerFixture, public ::testing::WithParamInterface<Path> {
 protected:
  static constexpr std::size_t kSize = 4096;
  static constexpr char kTopic[] = "live";

  bool pool() const { return GetParam() != Path::broker_sealed; }
  Channels channels() const {
    return GetParam() == Path::channel ? Channels::automatic : Channels::off;
  }

  // A producer of kTopic with a pool of `slots` (pool paths), connected after the consumer.
  Producer make_producer(std::uint32_t slots) {
    auto producer = Producer::connect(socket(), "camera", channels());
    EXPECT_TRUE(producer) << producer.error().message();
    EXPECT_TRUE(producer->advertise(kTopic, LayoutKind::blob,
                                    pool() ? Guarantee::pool : Guarantee::sealed));
    if (pool()) {
      auto p = producer->create_pool(kTopic, kSize, slots);
      EXPECT_TRUE(p) << p.error().message();
      pool_ = *p;
    }
    return std::move(*producer);
  }

  Result<std::uint64_t> publish(Producer& producer, std::uint64_t sequence) {
    if (!pool()) return testing::publish_pattern(producer, kTopic, sequence, kSize);
    auto slot = producer.acquire(pool_);
    if (!slot) return fail(std::move(slot.error()));
    for (std::size_t i = 0; i < kSize; ++i) slot->bytes[i] = testing::pattern_byte(sequence, i);
    return producer.publish(kTopic, *slot, blob_layout(kSize));
  }

  // On the channel path, waits (reading both sides) until the channel carries the frames.
  void wait_for_channel(Producer& producer, Consumer& consumer) {
    if (GetParam() != Path::channel) return;
    const auto until = Clock::now() + std::chrono::seconds(20);
    while (producer.channels() < 1 && Clock::now() < until) {
      (void)consumer.receive_for(milliseconds(2));
      (void)producer.poll_errors();
    }
    ASSERT_GE(producer.channels(), 1U) << "no channel opened";
    ASSERT_TRUE(broker().wait_until([](broker::Broker& b) {
      const broker::Topic* t = b.registry().find(kTopic);
      return t != nullptr && !t->via_broker;
    })) << "the broker still routes the topic";
  }

  // A producer publishing every `period` on its own thread until stop(); `latest` is the
  // sequence of the newest frame published.
  void start_publishing(Producer& producer, milliseconds period) {
    source_ = std::thread([this, &producer, period] {
      for (std::uint64_t s = 1; !stop_.load(); ++s) {
        auto sent = publish(producer, s);
        if (!sent) {
          failure_ = sent.error().message();
          return;
        }
        latest_.store(s);
        std::this_thread::sleep_for(period);
      }
    });
  }
  void stop_publishing() {
    stop_.store(true);
    if (source_.joinable()) source_.join();
    EXPECT_EQ(failure_, "") << "the producer failed";
  }

  // Receives `frames` frames, working `work` on each: for each, how many frames were published
  // after it when it was received.
  std::vector<std::uint64_t> receive_slowly(Consumer& consumer, int frames, milliseconds work) {
    std::vector<std::uint64_t> behind;
    while (static_cast<int>(behind.size()) < frames) {
      auto event = consumer.receive_for(std::chrono::seconds(20));
      if (!event || !*event) {
        ADD_FAILURE() << "no frame: " << (event ? "timed out" : event.error().message());
        break;
      }
      auto* frame = std::get_if<Frame>(&**event);
      if (frame == nullptr) continue;
      const std::uint64_t newest = latest_.load();
      EXPECT_TRUE(testing::holds_pattern(*frame)) << "frame " << frame->sequence();
      behind.push_back(newest > frame->sequence() ? newest - frame->sequence() : 0);
      std::this_thread::sleep_for(work);  // holding the frame, like a preview or inference
    }
    return behind;
  }

  std::uint32_t pool_ = 0;
  std::thread source_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> latest_{0};
  std::string failure_;
};

// The consumer works ten producer periods on each frame: the frame it gets next must still be
// among the newest `depth` published (one more for the frame published while it received).
TEST_P(FreshnessTest, ASlowDropOldestConsumerGetsTheOldestOfTheNewestDepth) {
  constexpr std::uint32_t kDepth = 4;
  auto consumer = Consumer::connect(socket(), "preview", channels());
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe(kTopic, kDepth, Backpressure::drop_oldest));
  Producer producer = make_producer(8);
  wait_for_channel(producer, *consumer);
  start_publishing(producer, milliseconds(2));
  const auto behind = receive_slowly(*consumer, 20, milliseconds(20));
  stop_publishing();
  ASSERT_EQ(behind.size(), 20U);
  for (std::size_t i = 1; i < behind.size(); ++i) {  // the first came before it fell behind
    EXPECT_LE(behind[i], kDepth) << "frame " << i << " had " << behind[i]
                                 << " newer frames published before it was received";
  }
}

TEST_P(FreshnessTest, ALatestConsumerGetsTheNewestFrame) {
  auto consumer = Consumer::connect(socket(), "preview", channels());
  ASSERT_TRUE(consumer);
  auto granted = consumer->subscribe(kTopic, 0, Backpressure::latest);
  ASSERT_TRUE(granted);
  EXPECT_EQ(*granted, 1U) << "latest is drop-oldest with a depth of 1";
  Producer producer = make_producer(8);
  wait_for_channel(producer, *consumer);
  start_publishing(producer, milliseconds(2));
  const auto behind = receive_slowly(*consumer, 20, milliseconds(20));
  stop_publishing();
  ASSERT_EQ(behind.size(), 20U);
  for (std::size_t i = 1; i < behind.size(); ++i) {
    EXPECT_LE(behind[i], 1U) << "frame " << i << " had " << behind[i]
                             << " newer frames published before it was received";
  }
}

// The producer publishes while the consumer reads nothing, then leaves: every frame is received
// or counted, the last ones by the end of stream.
TEST_P(FreshnessTest, EveryFrameIsReceivedOrCountedUpToTheEndOfStream) {
  constexpr std::uint64_t kFrames = 12;
  auto consumer = Consumer::connect(socket(), "late", channels());
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe(kTopic, 2, Backpressure::drop_oldest));
  {
    Producer producer = make_producer(pool() && GetParam() == Path::broker_pool ? 3 : 16);
    wait_for_channel(producer, *consumer);
    for (std::uint64_t s = 1; s <= kFrames; ++s) {
      auto sent = publish(producer, s);
      ASSERT_TRUE(sent) << sent.error().message();
    }
  }  // the producer leaves
  std::uint64_t received = 0;
  std::uint64_t last_dropped = 0;
  for (;;) {
    auto event = consumer->receive_for(std::chrono::seconds(20));
    ASSERT_TRUE(event && *event) << "no end of stream";
    if (auto* frame = std::get_if<Frame>(&**event)) {
      ++received;
      last_dropped = frame->dropped();
      continue;
    }
    auto* end = std::get_if<EndOfStream>(&**event);
    ASSERT_NE(end, nullptr);
    EXPECT_GE(end->dropped, last_dropped);
    EXPECT_EQ(received + end->dropped, kFrames)
        << received << " frames received, " << end->dropped << " counted as dropped at the end";
    break;
  }
}

INSTANTIATE_TEST_SUITE_P(Paths, FreshnessTest,
                         ::testing::Values(Path::channel, Path::broker_pool, Path::broker_sealed),
                         path_name);

}  // namespace
}  // namespace shmfd
