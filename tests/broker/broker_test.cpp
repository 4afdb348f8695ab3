// The broker in-process, driven by the client library: fan-out, backpressure, refusals, limits.
// The test process holds both sides, so FdLeakTest proves neither leaks an fd.
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/frames.hpp"

namespace shmfd {
namespace {

using testing::holds_pattern;
using testing::InProcessBroker;
using testing::publish_pattern;

struct ConsumerReport {
  std::uint64_t frames = 0;
  std::uint64_t bad_bytes = 0;
  std::uint64_t out_of_order = 0;
  std::uint64_t wrong_size = 0;
  std::uint64_t last_dropped = 0;
  bool ended = false;
  std::string error;
};

// Receives until end of stream, checking each frame's bytes, order and layout size.
ConsumerReport drain(Consumer& consumer, const std::vector<std::size_t>& sizes) {
  ConsumerReport report;
  std::uint64_t last = 0;
  for (;;) {
    auto event = consumer.receive();
    if (!event) {
      report.error = event.error().message();
      return report;
    }
    if (std::holds_alternative<EndOfStream>(*event)) {
      report.ended = true;
      return report;
    }
    const Frame& frame = std::get<Frame>(*event);
    ++report.frames;
    report.bad_bytes += !holds_pattern(frame);
    report.out_of_order += frame.sequence() <= last;
    last = frame.sequence();
    const auto& blob = std::get<BlobLayout>(frame.layout());
    report.wrong_size += blob.size != sizes[(frame.sequence() - 1) % sizes.size()];
    report.last_dropped = frame.dropped();
  }
}

class BrokerTest : public testing::FdLeakTest {};

// 1 producer, 3 block-policy consumers, 1000 frames of four sizes through the broker at `path`.
void expect_fan_out_intact(const std::string& path) {
  const std::vector<std::size_t> sizes{64, 4096, 100 * 1000, 1 << 20};
  constexpr std::uint64_t kFrames = 1000;

  std::vector<Consumer> consumers;
  for (int i = 0; i < 3; ++i) {
    auto c = Consumer::connect(path, "consumer" + std::to_string(i));
    ASSERT_TRUE(c) << c.error().message();
    auto depth = c->subscribe("fanout", 4, Backpressure::block_producer);
    ASSERT_TRUE(depth) << depth.error().message();
    EXPECT_EQ(*depth, 4U);
    consumers.push_back(std::move(*c));
  }
  std::vector<ConsumerReport> reports(consumers.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < consumers.size(); ++i) {
    threads.emplace_back([&, i] { reports[i] = drain(consumers[i], sizes); });
  }
  {
    auto producer = Producer::connect(path, "producer");
    ASSERT_TRUE(producer) << producer.error().message();
    ASSERT_TRUE(producer->advertise("fanout", LayoutKind::blob));
    for (std::uint64_t seq = 1; seq <= kFrames; ++seq) {
      auto sent = publish_pattern(*producer, "fanout", seq, sizes[(seq - 1) % sizes.size()]);
      ASSERT_TRUE(sent) << sent.error().message();
      ASSERT_EQ(*sent, seq);
    }
  }  // the producer leaves: every consumer gets end of stream after the last frame
  for (auto& t : threads) t.join();
  for (const auto& r : reports) {
    EXPECT_EQ(r.error, "");
    EXPECT_TRUE(r.ended);
    EXPECT_EQ(r.frames, kFrames);
    EXPECT_EQ(r.bad_bytes, 0U);
    EXPECT_EQ(r.out_of_order, 0U);
    EXPECT_EQ(r.wrong_size, 0U);
    EXPECT_EQ(r.last_dropped, 0U);
  }
}

TEST_F(BrokerTest, EveryConsumerGetsEveryFrameIntactUnderBlockPolicy) {
  InProcessBroker broker;
  expect_fan_out_intact(broker.path());
}

TEST_F(BrokerTest, EveryConsumerGetsEveryFrameIntactThroughTheBrokerProgram) {
  testing::SubprocessBroker broker;
  ASSERT_TRUE(broker.listening()) << broker.output();
  expect_fan_out_intact(broker.path());
}

TEST_F(BrokerTest, DropOldestLosesOnlyOldFramesOfTheSlowConsumerAndCountsExactly) {
  InProcessBroker broker;
  constexpr std::uint64_t kFrames = 100;
  auto slow = Consumer::connect(broker.path(), "slow");
  auto fast = Consumer::connect(broker.path(), "fast");
  ASSERT_TRUE(slow && fast);
  ASSERT_EQ(*slow->subscribe("live", 2, Backpressure::drop_oldest), 2U);
  ASSERT_TRUE(fast->subscribe("live", 4, Backpressure::block_producer));

  ConsumerReport fast_report;
  std::thread fast_thread([&] { fast_report = drain(*fast, {256}); });
  {
    auto producer = Producer::connect(broker.path(), "producer");
    ASSERT_TRUE(producer);
    ASSERT_TRUE(producer->advertise("live", LayoutKind::blob));
    for (std::uint64_t seq = 1; seq <= kFrames; ++seq) {
      ASSERT_TRUE(publish_pattern(*producer, "live", seq, 256));
    }
  }
  fast_thread.join();
  EXPECT_EQ(fast_report.frames, kFrames);  // the block-policy consumer lost nothing
  EXPECT_EQ(fast_report.last_dropped, 0U);

  // Only now does the slow consumer read. It gets the first frame sent to it (a drop-oldest
  // subscription has one on its way: its prefetch) and the newest ones queued; everything
  // between was dropped, and counted.
  std::vector<std::uint64_t> got;
  std::uint64_t dropped = 0;
  for (;;) {
    auto event = slow->receive();
    ASSERT_TRUE(event) << event.error().message();
    if (std::holds_alternative<EndOfStream>(*event)) break;
    const Frame& frame = std::get<Frame>(*event);
    EXPECT_TRUE(holds_pattern(frame));
    got.push_back(frame.sequence());
    dropped = frame.dropped();
  }
  ASSERT_FALSE(got.empty());
  EXPECT_TRUE(std::is_sorted(got.begin(), got.end()));
  EXPECT_EQ(got.back(), kFrames) << "the newest frame must not be the one dropped";
  EXPECT_EQ(got.size() + dropped, kFrames) << "every frame is either delivered or counted";
  EXPECT_EQ(got.size(), 3U);  // the prefetch of 1 + a queue of 2
}

TEST_F(BrokerTest, LateSubscriberGetsTheLastFrameOnlyWithKeepLastFrame) {
  broker::Options options;
  options.keep_last_frame = true;
  InProcessBroker broker(options);
  auto producer = Producer::connect(broker.path());
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("state", LayoutKind::blob));
  ASSERT_TRUE(publish_pattern(*producer, "state", 1, 32));
  ASSERT_TRUE(publish_pattern(*producer, "state", 2, 32));
  // The broker handles a client's messages in order: once this answer arrives, both frames
  // have been routed.
  ASSERT_TRUE(producer->advertise("sync", LayoutKind::blob));

  auto late = Consumer::connect(broker.path());
  ASSERT_TRUE(late);
  ASSERT_TRUE(late->subscribe("state"));
  auto event = late->receive();
  ASSERT_TRUE(event) << event.error().message();
  ASSERT_TRUE(std::holds_alternative<Frame>(*event));
  EXPECT_EQ(std::get<Frame>(*event).sequence(), 2U);
}

}  // namespace
}  // namespace shmfd
