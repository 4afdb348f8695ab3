// Live consumers get the newest frames (issue 32): a slow drop-oldest consumer receives the oldest
// of the newest `depth` frames published, never an older one; a latest consumer the newest; and
// every frame is either received or counted as dropped, up to and with the end of stream. On a
// channel, through the broker with pool frames, and through the broker with sealed frames.
// Freshness is asserted in sequence numbers (how many frames were published after the one
// received), with one thread playing producer and consumer in turn, so a slow machine changes
// nothing. bench/suite/freshness.py measures the same in milliseconds.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
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

  // The consumer falls behind by `burst` frames again and again, holding its frame while the
  // producer publishes them, then asks for the next: for each frame received, how many frames
  // were published after it. One thread plays both sides, so nothing is published while a
  // frame is on its way and the count is exact, however slow the machine.
  std::vector<std::uint64_t> fall_behind(Producer& producer, Consumer& consumer, int rounds,
                                         int burst) {
    std::vector<std::uint64_t> behind;
    std::uint64_t published = 0;
    // Through the broker, a frame counts as published once the broker has read it (a Publish
    // may wait in the producer's socket while the broker's thread is not running).
    auto publish_next = [&] {
      auto sent = publish(producer, ++published);
      EXPECT_TRUE(sent) << sent.error().message();
      if (sent && GetParam() != Path::channel) {
        EXPECT_TRUE(broker().wait_until([&](broker::Broker& b) {
          const broker::Topic* t = b.registry().find(kTopic);
          return t != nullptr && t->frames >= published;
        })) << "the broker did not read frame "
            << published;
      }
      return static_cast<bool>(sent);
    };
    if (!publish_next()) return behind;
    std::optional<Frame> held;
    for (int round = 0; round < rounds; ++round) {
      // Nothing fresh may be left (the ring held only older frames): the next one published is.
      std::optional<Event> event;
      for (int tries = 0; tries < 100 && !event; ++tries) {
        held.reset();  // done with it: released
        auto got = consumer.receive_for(tries == 0 ? milliseconds(200) : milliseconds(50));
        if (!got) {
          ADD_FAILURE() << got.error().message();
          return behind;
        }
        event = std::move(*got);
        if (!event && !publish_next()) return behind;
      }
      auto* frame = event ? std::get_if<Frame>(&*event) : nullptr;
      if (frame == nullptr) {
        ADD_FAILURE() << "round " << round << ": no frame";
        return behind;
      }
      EXPECT_TRUE(testing::holds_pattern(*frame)) << "frame " << frame->sequence();
      behind.push_back(published - frame->sequence());
      held = std::move(*frame);
      for (int i = 0; i < burst; ++i) {
        if (!publish_next()) return behind;  // while the consumer holds its frame
      }
    }
    return behind;
  }

  std::uint32_t pool_ = 0;
};

// The consumer falls ten frames behind each time: the frame it gets next must still be among
// the newest `depth` published.
TEST_P(FreshnessTest, ASlowDropOldestConsumerGetsTheOldestOfTheNewestDepth) {
  constexpr std::uint32_t kDepth = 4;
  auto consumer = Consumer::connect(socket(), "preview", channels());
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe(kTopic, kDepth, Backpressure::drop_oldest));
  // 16 slots: the channel can carry twice the depth behind the held frame, and spare one.
  Producer producer = make_producer(16);
  wait_for_channel(producer, *consumer);
  const auto behind = fall_behind(producer, *consumer, 20, 10);
  ASSERT_EQ(behind.size(), 20U);
  for (std::size_t i = 0; i < behind.size(); ++i) {
    EXPECT_LT(behind[i], kDepth) << "frame " << i << " had " << behind[i]
                                 << " newer frames published before it was received";
  }
  // Not every frame was the newest: the oldest of the newest `depth`, as drop-oldest promises.
  EXPECT_GT(*std::max_element(behind.begin(), behind.end()), 0U);
}

TEST_P(FreshnessTest, ALatestConsumerGetsTheNewestFrame) {
  auto consumer = Consumer::connect(socket(), "preview", channels());
  ASSERT_TRUE(consumer);
  auto granted = consumer->subscribe(kTopic, 0, Backpressure::latest);
  ASSERT_TRUE(granted);
  EXPECT_EQ(*granted, 1U) << "latest is drop-oldest with a depth of 1";
  Producer producer = make_producer(8);
  wait_for_channel(producer, *consumer);
  const auto behind = fall_behind(producer, *consumer, 20, 10);
  ASSERT_EQ(behind.size(), 20U);
  for (std::size_t i = 0; i < behind.size(); ++i) {
    EXPECT_EQ(behind[i], 0U) << "frame " << i << " had " << behind[i]
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
    // The producer put at least its first frames where this consumer can read them: the
    // newest of those come before the end, not all skipped for frames that never come.
    EXPECT_GE(received, 1U) << "every frame was lost at the end of the stream";
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
