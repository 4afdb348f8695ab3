// Pool frames on channels through a real broker (docs/PROTOCOL.md, section 14): set up by
// default, never passing through the broker once open, in order across the handover from the
// broker's path, beside consumers that stay on the broker, and given back when a consumer dies.
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/wire/channel.hpp"
#include "support/broker_fixture.hpp"
#include "support/broker_harness.hpp"
#include "support/channels.hpp"
#include "support/fd_count.hpp"
#include "support/frames.hpp"

namespace shmfd {
namespace {

using Clock = std::chrono::steady_clock;
using testing::channels_open;

// Fills `slot` with the test pattern of `sequence` and publishes it.
Result<std::uint64_t> publish_slot(Producer& producer, std::uint32_t pool, const std::string& topic,
                                   std::uint64_t sequence, std::size_t size) {
  auto slot = producer.acquire(pool);
  if (!slot) return fail(std::move(slot.error()));
  for (std::size_t i = 0; i < size; ++i) slot->bytes[i] = testing::pattern_byte(sequence, i);
  return producer.publish(topic, *slot, blob_layout(size));
}

class ChannelPathTest : public testing::BrokerFixture {};

TEST_F(ChannelPathTest, PoolFramesTakeTheChannelAndNotTheBroker) {
  auto consumer = Consumer::connect(socket(), "viewer");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->uses_channels());
  ASSERT_TRUE(consumer->subscribe("cam", 4, Backpressure::block_producer));
  auto producer = Producer::connect(socket(), "camera");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("cam", 8192, 4);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(channels_open(*producer, {&*consumer}, 1)) << "no channel opened";

  // Every subscriber is on a channel: the producer was told to send no Publish.
  auto routed = broker().wait_until([](broker::Broker& b) {
    const broker::Topic* t = b.registry().find("cam");
    return t != nullptr && !t->via_broker;
  });
  ASSERT_TRUE(routed) << "the broker still routes the topic";
  std::uint64_t seen_by_broker = 0;
  broker().wait_until([&](broker::Broker& b) {
    seen_by_broker = b.registry().find("cam")->frames;
    return true;
  });

  constexpr std::uint64_t kFrames = 500;
  std::size_t fds_before = 0;
  std::thread source([&] {
    for (std::uint64_t i = 1; i <= kFrames; ++i) {
      auto sent = publish_slot(*producer, *pool, "cam", i, 8192);
      ASSERT_TRUE(sent) << sent.error().message();
      ASSERT_EQ(*sent, i);
    }
  });
  std::uint64_t last = 0, wrong = 0;
  while (last < kFrames) {
    auto event = consumer->receive();
    ASSERT_TRUE(event) << event.error().message();
    const Frame& frame = std::get<Frame>(*event);
    ASSERT_EQ(frame.sequence(), last + 1) << "in order, none lost (block-producer)";
    EXPECT_EQ(frame.dropped(), 0U);
    EXPECT_TRUE(frame.in_pool());
    if (!testing::holds_pattern(frame)) ++wrong;
    last = frame.sequence();
    if (last == 10) fds_before = testing::open_fd_count();
  }
  source.join();
  EXPECT_EQ(wrong, 0U);
  EXPECT_EQ(testing::open_fd_count(), fds_before) << "fds grew while frames flowed";
  // The broker saw none of them pass (it delivered none), and counts them from the channel's
  // pages (at its next hold check, a quarter of the deadline): every frame and byte.
  std::uint64_t after = 0, bytes = 0, delivered = 0, channel_read = 0;
  broker().wait_until([&](broker::Broker& b) {
    const broker::Topic* t = b.registry().find("cam");
    after = t->frames;
    bytes = t->bytes;
    const broker::Subscription* s = t->subscribers.front();
    delivered = s->delivered;
    if (s->on_channel()) {
      channel_read = channel_progress(*s->channel->producer_page, *s->channel->consumer_page).read;
    }
    return after == seen_by_broker + kFrames;
  });
  EXPECT_EQ(delivered, 0U) << "pool frames went through the broker";
  EXPECT_EQ(after, seen_by_broker + kFrames) << "the topic's counter missed frames on the channel";
  EXPECT_EQ(bytes, (seen_by_broker + kFrames) * 8192U);
  EXPECT_EQ(channel_read, kFrames);
  EXPECT_EQ(consumer->channel_refusals(), 0U);
}

TEST_F(ChannelPathTest, ASubscriberThatJoinsMidStreamGetsEveryFrameInOrderAcrossTheHandover) {
  auto producer = Producer::connect(socket(), "camera");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("cam", 4096, 8);
  ASSERT_TRUE(pool);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> published{0};
  std::atomic<bool> on_channel{false};  // the Producer is the source thread's alone
  std::thread source([&] {
    for (std::uint64_t i = 1; !stop; ++i) {
      auto sent = publish_slot(*producer, *pool, "cam", i, 4096);
      if (!sent) return;
      published = i;
      on_channel = producer->channels() == 1;
    }
  });
  while (published < 50) std::this_thread::yield();
  // Joins while frames flow: the first come through the broker, then the channel takes over.
  auto consumer = Consumer::connect(socket(), "late");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("cam", 4, Backpressure::block_producer));
  std::uint64_t first = 0, last = 0, wrong = 0, from_channel_after = 0;
  for (int n = 0; n < 2000; ++n) {
    auto event = consumer->receive();
    ASSERT_TRUE(event) << event.error().message();
    const Frame& frame = std::get<Frame>(*event);
    if (first == 0) first = frame.sequence();
    if (last != 0) {
      ASSERT_EQ(frame.sequence(), last + 1) << "out of order or lost across the handover";
    }
    last = frame.sequence();
    if (!testing::holds_pattern(frame)) ++wrong;
    if (on_channel) ++from_channel_after;
  }
  stop = true;
  // A producer held back by this block-producer consumer goes on once it has gone.
  { Consumer gone = std::move(*consumer); }
  source.join();
  EXPECT_EQ(wrong, 0U);
  EXPECT_GT(from_channel_after, 0U) << "the channel never opened";
}

TEST_F(ChannelPathTest, AConsumerOnTheBrokerAndOneOnAChannelBothGetEveryFrame) {
  auto on_channel = Consumer::connect(socket(), "channel");
  auto on_broker = Consumer::connect(socket(), "socket", Channels::off);
  ASSERT_TRUE(on_channel && on_broker);
  ASSERT_FALSE(on_broker->uses_channels());
  ASSERT_TRUE(on_channel->subscribe("cam", 2, Backpressure::block_producer));
  ASSERT_TRUE(on_broker->subscribe("cam", 2, Backpressure::block_producer));
  auto producer = Producer::connect(socket(), "camera");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("cam", 4096, 3);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(channels_open(*producer, {&*on_channel}, 1));
  constexpr std::uint64_t kFrames = 300;
  std::thread source([&] {
    for (std::uint64_t i = 1; i <= kFrames; ++i) {
      auto sent = publish_slot(*producer, *pool, "cam", i, 4096);
      ASSERT_TRUE(sent) << sent.error().message();
    }
  });
  // A slot comes back only once both let go: each frame read is checked after the other
  // consumer has read further (a slot reused early would show another frame's bytes).
  std::uint64_t wrong = 0;
  for (std::uint64_t i = 1; i <= kFrames; ++i) {
    auto a = on_channel->receive();
    auto b = on_broker->receive();
    ASSERT_TRUE(a && b);
    const Frame& fa = std::get<Frame>(*a);
    const Frame& fb = std::get<Frame>(*b);
    ASSERT_EQ(fa.sequence(), i);
    ASSERT_EQ(fb.sequence(), i);
    if (!testing::holds_pattern(fa) || !testing::holds_pattern(fb)) ++wrong;
  }
  source.join();
  EXPECT_EQ(wrong, 0U);
}

// receive_for sleeps until its deadline when nothing comes. (It once compared the deadline
// with the coarse clock, which lags: waitv, on the precise clock, then returned at once, over
// and over, for up to a tick of every wait.)
TEST_F(ChannelPathTest, AnIdleTimedReceiveOnAChannelSleepsInsteadOfSpinning) {
  auto consumer = Consumer::connect(socket(), "viewer");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("cam", 4, Backpressure::block_producer));
  auto producer = Producer::connect(socket(), "camera");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::blob, Guarantee::pool));
  ASSERT_TRUE(producer->create_pool("cam", 4096, 4));
  ASSERT_TRUE(channels_open(*producer, {&*consumer}, 1)) << "no channel opened";
  const auto thread_cpu = [] {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
  };
  const auto cpu0 = thread_cpu();
  const auto wall0 = Clock::now();
  for (int i = 0; i < 30; ++i) {
    auto event = consumer->receive_for(std::chrono::milliseconds(10));
    ASSERT_TRUE(event);
    ASSERT_FALSE(*event);
  }
  const auto cpu = thread_cpu() - cpu0;
  const auto wall = Clock::now() - wall0;
  EXPECT_GE(wall, std::chrono::milliseconds(300));
  // Spinning for a tick (4 ms at HZ=250) of each 10 ms wait would be some 120 ms; sleeping
  // costs well under a millisecond a wait, even under TSan. Half the spin tells them apart.
  EXPECT_LT(cpu, std::chrono::milliseconds(60))
      << std::chrono::duration_cast<std::chrono::microseconds>(cpu).count() << " µs of CPU in "
      << std::chrono::duration_cast<std::chrono::milliseconds>(wall).count() << " ms";
}

TEST_F(ChannelPathTest, AConsumerKilledWhileHoldingSlotsGivesThemBack) {
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  // The consumer is a child process (forked before any page exists here), killed with SIGKILL
  // while it holds frames of a block-producer topic.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    auto consumer = Consumer::connect(socket(), "doomed");
    if (!consumer || !consumer->subscribe("cam", 3, Backpressure::block_producer)) ::_exit(2);
    std::vector<Frame> hoard;
    while (hoard.size() < 3) {
      auto e = consumer->receive();
      if (!e) ::_exit(3);
      if (auto* f = std::get_if<Frame>(&*e)) hoard.push_back(std::move(*f));
    }
    (void)!::write(ready[1], "x", 1);
    for (;;) ::pause();
  }
  ::close(ready[1]);
  auto producer = Producer::connect(socket(), "camera");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("cam", 4096, 4);
  ASSERT_TRUE(pool);
  ASSERT_TRUE(broker().wait_until([](broker::Broker& b) {
    const broker::Topic* t = b.registry().find("cam");
    return t != nullptr && !t->subscribers.empty();
  }));
  for (std::uint64_t i = 1; i <= 3; ++i) ASSERT_TRUE(publish_slot(*producer, *pool, "cam", i, 64));
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  EXPECT_EQ(producer->free_slots(*pool), 1U) << "the consumer holds three of four";
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  // The broker sees it go and tells the producer, which takes the three slots back.
  const auto until = Clock::now() + std::chrono::seconds(5);
  while (producer->free_slots(*pool) < 4 && Clock::now() < until) {
    ASSERT_TRUE(producer->poll_errors());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(producer->free_slots(*pool), 4U);
  EXPECT_EQ(producer->channels(), 0U);
}

}  // namespace
}  // namespace shmfd
