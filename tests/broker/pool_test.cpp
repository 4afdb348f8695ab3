// Pools end to end: slots are reused only when every subscriber has let go, and nothing a
// consumer holds is ever rewritten.
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <deque>
#include <fstream>
#include <future>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/stamped_slots.hpp"

namespace shmfd {
namespace {

using testing::stamp;
using testing::stamped_with;

constexpr std::size_t kSlotBytes = 16 * 1024;

// A producer with an advertised pool topic and a pool of `slots` slots.
struct PoolProducer {
  Producer producer;
  std::uint32_t pool;
};

Result<PoolProducer> pool_producer(const std::string& path, const std::string& topic,
                                   std::uint32_t slots, std::size_t slot_bytes = kSlotBytes) {
  auto producer = Producer::connect(path, "pool-producer");
  if (!producer) return fail(std::move(producer.error()));
  if (auto ok = producer->advertise(topic, LayoutKind::blob, Guarantee::pool); !ok) {
    return fail(std::move(ok.error()));
  }
  auto pool = producer->create_pool(topic, slot_bytes, slots);
  if (!pool) return fail(std::move(pool.error()));
  return PoolProducer{std::move(*producer), *pool};
}

// Acquires a slot, stamps it for the next sequence and publishes it.
Result<std::uint64_t> publish_stamped(PoolProducer& p, const std::string& topic,
                                      std::uint64_t sequence, Wait wait = Wait::block) {
  auto slot = p.producer.acquire(p.pool, wait);
  if (!slot) return fail(std::move(slot.error()));
  stamp(slot->bytes, sequence);
  return p.producer.publish(topic, *slot, blob_layout(slot->bytes.size()));
}

Frame receive_frame(Consumer& consumer) {
  auto event = consumer.receive();
  EXPECT_TRUE(event) << event.error().message();
  EXPECT_TRUE(event && std::holds_alternative<Frame>(*event));
  return std::move(std::get<Frame>(*event));
}

class PoolTest : public testing::FdLeakTest {};

TEST_F(PoolTest, ReuseIsSafeUnderFanOutWithConsumersHoldingFramesForRandomTimes) {
  testing::InProcessBroker broker;
  constexpr std::uint64_t kFrames = 10000;
  constexpr std::uint32_t kDepth = 4;
  std::vector<Consumer> consumers;
  for (int i = 0; i < 3; ++i) {
    auto c = Consumer::connect(broker.path(), "verifier" + std::to_string(i));
    ASSERT_TRUE(c);
    ASSERT_TRUE(c->subscribe("reuse", kDepth, Backpressure::block_producer));
    consumers.push_back(std::move(*c));
  }
  struct Report {
    std::uint64_t frames = 0, corrupt = 0, in_pool = 0;
    std::string error;
  };
  std::vector<Report> reports(consumers.size());
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < consumers.size(); ++i) {
    threads.emplace_back([&, i] {
      std::mt19937 rng(static_cast<unsigned>(i) + 7);
      std::deque<Frame> held;  // released in random order, after random numbers of frames
      Report& r = reports[i];
      for (;;) {
        // Holding `depth` frames would stop delivery to us: keep at most depth - 1.
        while (held.size() >= kDepth - 1 || (!held.empty() && rng() % 3 == 0)) {
          for (const Frame& f : held) r.corrupt += !stamped_with(f.bytes(), f.sequence());
          held.erase(held.begin() + static_cast<std::ptrdiff_t>(rng() % held.size()));
        }
        auto event = consumers[i].receive();
        if (!event) {
          r.error = event.error().message();
          return;
        }
        if (std::holds_alternative<EndOfStream>(*event)) break;
        Frame& frame = std::get<Frame>(*event);
        ++r.frames;
        r.in_pool += frame.in_pool();
        r.corrupt += !stamped_with(frame.bytes(), frame.sequence());
        held.push_back(std::move(frame));
      }
      for (const Frame& f : held) r.corrupt += !stamped_with(f.bytes(), f.sequence());
    });
  }
  {
    // Each consumer may pin depth - 1 = 3 frames it holds while waiting for the next one, and
    // they can be at different positions: 3 x 3 distinct slots, plus one to make progress.
    auto p = pool_producer(broker.path(), "reuse", 10);
    ASSERT_TRUE(p) << p.error().message();
    for (std::uint64_t seq = 1; seq <= kFrames; ++seq) {
      auto sent = publish_stamped(*p, "reuse", seq);
      ASSERT_TRUE(sent) << sent.error().message();
    }
  }
  for (auto& t : threads) t.join();
  for (const Report& r : reports) {
    EXPECT_EQ(r.error, "");
    EXPECT_EQ(r.frames, kFrames);
    EXPECT_EQ(r.in_pool, kFrames);
    EXPECT_EQ(r.corrupt, 0U);
  }
}

TEST_F(PoolTest, ASlotComesBackOnlyAfterEverySubscriberReleasedIt) {
  testing::InProcessBroker broker;
  auto a = Consumer::connect(broker.path(), "a");
  auto b = Consumer::connect(broker.path(), "b");
  ASSERT_TRUE(a && b);
  ASSERT_TRUE(a->subscribe("one-slot"));
  ASSERT_TRUE(b->subscribe("one-slot"));
  auto p = pool_producer(broker.path(), "one-slot", 1);
  ASSERT_TRUE(p) << p.error().message();

  // Round 1: A lets go first; round 2: B does. Either way the slot stays busy until both have.
  for (std::uint64_t seq = 1; seq <= 2; ++seq) {
    ASSERT_TRUE(publish_stamped(*p, "one-slot", seq));  // waits for the slot from the last round
    std::optional<Frame> from_a(receive_frame(*a));
    std::optional<Frame> from_b(receive_frame(*b));
    auto& first = seq == 1 ? from_a : from_b;
    auto& second = seq == 1 ? from_b : from_a;
    first.reset();
    auto early = p->producer.acquire(p->pool, Wait::fail_fast);
    ASSERT_FALSE(early) << "slot handed out while a subscriber still holds it";
    EXPECT_TRUE(early.error().is(Errc::no_free_slot));
    EXPECT_TRUE(stamped_with(second->bytes(), seq));
    second.reset();
  }
  auto slot = p->producer.acquire(p->pool, Wait::block);
  ASSERT_TRUE(slot) << slot.error().message();
  EXPECT_EQ(slot->index, 0U);
}

TEST_F(PoolTest, ExhaustionFailsFastOrWaitsAndResumesOnRelease) {
  testing::InProcessBroker broker;
  auto consumer = Consumer::connect(broker.path());
  ASSERT_TRUE(consumer);
  // Block-producer: frames queued for it keep their slots (drop-oldest would give them up).
  ASSERT_TRUE(consumer->subscribe("full", 4, Backpressure::block_producer));
  auto p = pool_producer(broker.path(), "full", 2);
  ASSERT_TRUE(p);
  ASSERT_TRUE(publish_stamped(*p, "full", 1));
  ASSERT_TRUE(publish_stamped(*p, "full", 2));
  // A subscription holds at most one frame of a 2-slot pool; frame 2 waits in the broker.
  std::optional<Frame> one(receive_frame(*consumer));

  auto none = p->producer.acquire(p->pool, Wait::fail_fast);
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(Errc::no_free_slot));
  EXPECT_NE(none.error().message().find("all 2 slots are held"), std::string::npos);
  auto unknown = p->producer.acquire(p->pool + 100, Wait::fail_fast);
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(unknown.error().is(Errc::invalid_argument)) << unknown.error().message();

  auto waiting = std::async(std::launch::async, [&] { return p->producer.acquire(p->pool); });
  EXPECT_EQ(waiting.wait_for(std::chrono::milliseconds(50)), std::future_status::timeout)
      << "acquire returned while every slot was held";
  one.reset();
  auto slot = waiting.get();
  ASSERT_TRUE(slot) << slot.error().message();
  std::optional<Frame> two(receive_frame(*consumer));
  EXPECT_TRUE(stamped_with(two->bytes(), 2));
}

TEST_F(PoolTest, DropOldestReleasesTheSlotsItDrops) {
  testing::InProcessBroker broker;
  auto slow = Consumer::connect(broker.path(), "slow");
  ASSERT_TRUE(slow);
  ASSERT_TRUE(slow->subscribe("drop", 1, Backpressure::drop_oldest));
  auto p = pool_producer(broker.path(), "drop", 3);
  ASSERT_TRUE(p);
  for (std::uint64_t seq = 1; seq <= 50; ++seq) {
    // The slow consumer holds at most 2 slots (1 delivered, 1 queued); dropped ones come back.
    auto sent = publish_stamped(*p, "drop", seq);
    ASSERT_TRUE(sent) << sent.error().message();
  }
  ASSERT_TRUE(p->producer.advertise("sync", LayoutKind::blob));  // all 50 routed
  {
    // Delivered before the queue filled (frame 1, or 2 if 1 was still queued when 2 came).
    Frame first = receive_frame(*slow);
    EXPECT_LT(first.sequence(), 50U);
    EXPECT_TRUE(stamped_with(first.bytes(), first.sequence()));
  }  // released: the window of 1 has room for the newest frame
  Frame last = receive_frame(*slow);
  EXPECT_EQ(last.sequence(), 50U);
  EXPECT_TRUE(stamped_with(last.bytes(), 50));
  EXPECT_EQ(last.dropped(), 48U) << "every frame is delivered or counted as dropped";
}

TEST_F(PoolTest, MappingsOutliveTheProducer) {
  testing::InProcessBroker broker;
  auto consumer = Consumer::connect(broker.path());
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("gone"));
  std::optional<Frame> held;
  {
    auto p = pool_producer(broker.path(), "gone", 2);
    ASSERT_TRUE(p);
    ASSERT_TRUE(publish_stamped(*p, "gone", 1));
    held.emplace(receive_frame(*consumer));
  }  // the producer disconnects
  auto end = consumer->receive();
  ASSERT_TRUE(end && std::holds_alternative<EndOfStream>(*end));
  EXPECT_TRUE(stamped_with(held->bytes(), 1)) << "the kernel keeps the pages while mapped";
}

// A producer that publishes a frame and exits with a SlotFree unread makes the kernel report
// ECONNRESET to the broker ahead of that frame. The frame must still reach its subscribers.
TEST_F(PoolTest, TheLastFrameArrivesThoughItsProducerLeftWithSlotFreeUnread) {
  testing::InProcessBroker broker;
  auto holder = Consumer::connect(broker.path(), "holder");
  auto reader = Consumer::connect(broker.path(), "reader");
  ASSERT_TRUE(holder && reader);
  ASSERT_TRUE(holder->subscribe("held", 1, Backpressure::block_producer));
  ASSERT_TRUE(reader->subscribe("last"));
  auto made = pool_producer(broker.path(), "last", 2);
  ASSERT_TRUE(made) << made.error().message();
  std::optional<PoolProducer> p(std::move(*made));
  ASSERT_TRUE(p->producer.advertise("held", LayoutKind::blob, Guarantee::sealed));
  const auto publish_held = [&] {
    auto buffer = p->producer.allocate("held", blob_layout(4096));
    ASSERT_TRUE(buffer) << buffer.error().message();
    ASSERT_TRUE(p->producer.publish("held", std::move(*buffer), blob_layout(4096)));
  };

  ASSERT_TRUE(publish_stamped(*p, "last", 1));
  std::optional<Frame> first(receive_frame(*reader));
  // The holder gets one frame and reads no more: the second one stops the broker reading us.
  publish_held();
  publish_held();
  ASSERT_TRUE(publish_stamped(*p, "last", 2));  // waits in the broker's socket
  first.reset();  // its SlotFree comes back to the producer, which never reads it
  pollfd slot_free{p->producer.native_handle(), POLLIN, 0};
  ASSERT_EQ(::poll(&slot_free, 1, 5000), 1);
  p.reset();  // exits with the SlotFree unread

  // The holder lets go; the broker reads the producer's last frame, then its end of file.
  receive_frame(*holder);  // and released at once
  auto event = reader->receive();
  ASSERT_TRUE(event) << event.error().message();
  ASSERT_TRUE(std::holds_alternative<Frame>(*event)) << "the producer's last frame was lost";
  const Frame& last = std::get<Frame>(*event);
  EXPECT_EQ(last.sequence(), 2U);
  EXPECT_TRUE(stamped_with(last.bytes(), 2));
  auto end = reader->receive();
  ASSERT_TRUE(end) << end.error().message();
  EXPECT_TRUE(std::holds_alternative<EndOfStream>(*end));
}

TEST_F(PoolTest, LayoutMustFitTheSlotAndPoolsNeedThePoolGuarantee) {
  testing::InProcessBroker broker;
  auto p = pool_producer(broker.path(), "fit", 1, 4096);
  ASSERT_TRUE(p);
  auto slot = p->producer.acquire(p->pool);
  ASSERT_TRUE(slot);
  auto too_big = p->producer.publish("fit", *slot, blob_layout(4097));
  ASSERT_FALSE(too_big);
  EXPECT_TRUE(too_big.error().is(Errc::layout_out_of_bounds));

  auto sealed_topic = Producer::connect(broker.path());
  ASSERT_TRUE(sealed_topic);
  ASSERT_TRUE(sealed_topic->advertise("immutable", LayoutKind::blob, Guarantee::sealed));
  auto refused = sealed_topic->create_pool("immutable", 4096, 2);
  ASSERT_FALSE(refused);
  EXPECT_NE(refused.error().message().find("pools need the pool guarantee"), std::string::npos)
      << refused.error().message();
}

TEST_F(PoolTest, AConsumerHoldingASlotPastTheDeadlineIsDisconnectedAndTheSlotReturns) {
  broker::Options options;
  options.limits.hold_deadline_ms = 50;
  options.limits.stuck = broker::StuckPolicy::always;
  testing::InProcessBroker broker(options);
  auto stuck = Consumer::connect(broker.path(), "stuck");
  ASSERT_TRUE(stuck);
  ASSERT_TRUE(stuck->subscribe("deadline"));
  auto p = pool_producer(broker.path(), "deadline", 1);
  ASSERT_TRUE(p);
  ASSERT_TRUE(publish_stamped(*p, "deadline", 1));
  Frame held = receive_frame(*stuck);

  // Keep holding; the broker reports it, then cuts the consumer off, which frees the slot.
  auto event = stuck->receive();
  ASSERT_FALSE(event);
  EXPECT_TRUE(event.error().is(Errc::broker_refused)) << event.error().message();
  EXPECT_NE(event.error().message().find("for more than 50 ms"), std::string::npos)
      << event.error().message();
  auto slot = p->producer.acquire(p->pool, Wait::block);
  ASSERT_TRUE(slot) << slot.error().message();
  EXPECT_TRUE(stamped_with(held.bytes(), 1)) << "our mapping stays valid after the cut";
}

// kill -9 needs a real process; forking a process that runs an in-process broker thread is
// unsafe, so this one uses the broker program.
TEST(PoolProcessTest, AConsumerKilledWhileHoldingSlotsGivesThemBack) {
  testing::SubprocessBroker broker;
  ASSERT_TRUE(broker.listening()) << broker.output();
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  if (child == 0) {
    auto consumer = Consumer::connect(broker.path(), "hoarder");
    if (!consumer || !consumer->subscribe("hoard", 4)) ::_exit(1);
    (void)!::write(ready[1], "s", 1);  // subscribed
    std::vector<Frame> hoard;
    for (int i = 0; i < 2; ++i) {
      auto event = consumer->receive();
      if (!event || !std::holds_alternative<Frame>(*event)) ::_exit(2);
      hoard.push_back(std::move(std::get<Frame>(*event)));
    }
    (void)!::write(ready[1], "h", 1);  // holding two slots: its window of a 3-slot pool
    for (;;) ::pause();
  }
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  auto p = pool_producer(broker.path(), "hoard", 3);
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_TRUE(publish_stamped(*p, "hoard", 1));
  ASSERT_TRUE(publish_stamped(*p, "hoard", 2));
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  EXPECT_TRUE(p->producer.acquire(p->pool, Wait::fail_fast));   // the slot it cannot hold
  EXPECT_FALSE(p->producer.acquire(p->pool, Wait::fail_fast));  // the two it holds

  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  // Both slots come back, and the producer keeps going.
  for (std::uint64_t seq = 3; seq <= 20; ++seq) {
    auto sent = publish_stamped(*p, "hoard", seq);
    ASSERT_TRUE(sent) << sent.error().message();
  }
  ::close(ready[0]);
  ::close(ready[1]);
}

}  // namespace
}  // namespace shmfd

namespace shmfd {
namespace {

// Size and Rss (bytes) of this process's mapping that contains `address`, from /proc/self/smaps.
std::pair<std::uint64_t, std::uint64_t> mapping_size_and_rss(const void* address) {
  std::ifstream smaps("/proc/self/smaps");
  const auto at = reinterpret_cast<std::uintptr_t>(address);
  bool inside = false;
  std::uint64_t size = 0, rss = 0;
  for (std::string line; std::getline(smaps, line);) {
    std::uintptr_t begin = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &begin, &end) == 2 &&
        line.find(':') > line.find(' ')) {
      if (inside) break;
      inside = at >= begin && at < end;
      continue;
    }
    if (!inside) continue;
    unsigned long long kb = 0;
    if (std::sscanf(line.c_str(), "Size: %llu kB", &kb) == 1) size = kb * 1024;
    if (std::sscanf(line.c_str(), "Rss: %llu kB", &kb) == 1) rss = kb * 1024;
  }
  return {size, rss};
}

// A consumer maps a pool once and reads its slots again and again: every page is present from
// the start (MAP_POPULATE), so no frame pays the pool's first-touch faults.
TEST_F(PoolTest, AConsumerMapsAPoolWithEveryPagePresent) {
  testing::InProcessBroker broker;
  auto consumer = Consumer::connect(broker.path(), "populated");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("populated"));
  auto p = pool_producer(broker.path(), "populated", 8, 256 * 1024);
  ASSERT_TRUE(p) << p.error().message();
  ASSERT_TRUE(publish_stamped(*p, "populated", 1));
  Frame frame = receive_frame(*consumer);
  const auto [size, rss] = mapping_size_and_rss(frame.bytes().data());
  EXPECT_EQ(size, 8U * 256 * 1024);
  EXPECT_EQ(rss, size) << "pages of the pool were left to fault in on first touch";
}

TEST_F(PoolTest, ADiscardedSlotIsFreeAgainAndOnlyAnAcquiredOneCanBeDiscarded) {
  testing::InProcessBroker broker;
  auto p = pool_producer(broker.path(), "discard", 2);
  ASSERT_TRUE(p) << p.error().message();
  auto a = p->producer.acquire(p->pool, Wait::fail_fast);
  auto b = p->producer.acquire(p->pool, Wait::fail_fast);
  ASSERT_TRUE(a && b);
  auto none = p->producer.acquire(p->pool, Wait::fail_fast);
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(Errc::no_free_slot));
  ASSERT_TRUE(p->producer.discard(*a));
  auto again = p->producer.acquire(p->pool, Wait::fail_fast);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_EQ(again->index, a->index);
  auto twice = p->producer.discard(*a);
  ASSERT_TRUE(twice);  // acquired again above: `a` and `again` are the same slot
  auto not_acquired = p->producer.discard(*a);
  ASSERT_FALSE(not_acquired);
  EXPECT_TRUE(not_acquired.error().is(Errc::invalid_argument));
  EXPECT_NE(not_acquired.error().message().find("is not acquired"), std::string::npos);
}

TEST_F(PoolTest, KeepMappedHoldsAFramesPagesAfterTheFrameAndItsProducerAreGone) {
  testing::InProcessBroker broker;
  auto consumer = Consumer::connect(broker.path(), "keeper");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("kept", 2, Backpressure::block_producer));
  ASSERT_TRUE(consumer->subscribe("kept-sealed", 2, Backpressure::block_producer));
  std::shared_ptr<const void> pool_pages, sealed_pages;
  const std::byte* pool_bytes = nullptr;
  const std::byte* sealed_bytes = nullptr;
  {
    auto p = pool_producer(broker.path(), "kept", 2);
    ASSERT_TRUE(p);
    ASSERT_TRUE(publish_stamped(*p, "kept", 1));
    auto sealed = Producer::connect(broker.path(), "sealed");
    ASSERT_TRUE(sealed);
    ASSERT_TRUE(sealed->advertise("kept-sealed", LayoutKind::blob));
    auto buffer = sealed->allocate("kept-sealed", blob_layout(4096));
    ASSERT_TRUE(buffer);
    std::memset(buffer->bytes().data(), 0x77, 4096);
    ASSERT_TRUE(sealed->publish("kept-sealed", std::move(*buffer), blob_layout(4096)));
    for (int i = 0; i < 2; ++i) {
      Frame frame = receive_frame(*consumer);
      if (frame.in_pool()) {
        pool_pages = frame.keep_mapped();
        pool_bytes = frame.bytes().data();
      } else {
        sealed_pages = frame.keep_mapped();
        sealed_bytes = frame.bytes().data();
      }
    }  // both frames dropped: released
  }    // both producers gone
  // The pool goes once no frame of it is held; the handle keeps its pages mapped.
  for (int i = 0; i < 3; ++i) {
    auto e = consumer->receive_for(std::chrono::milliseconds(200));
    ASSERT_TRUE(e);
  }
  ASSERT_TRUE(pool_pages && sealed_pages);
  EXPECT_TRUE(stamped_with(std::span(pool_bytes, kSlotBytes), 1));
  EXPECT_EQ(sealed_bytes[4095], std::byte{0x77});
}

}  // namespace
}  // namespace shmfd
