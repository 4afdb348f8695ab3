// Channels (shmfd/wire/channel.hpp): frames and releases through two single-writer pages, the
// wake-ups, and what a hostile peer can and cannot do through its own page. A hostile peer is
// played by writing its page directly (OwnPage::data()), as a real one would.
#include "shmfd/wire/channel.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "shmfd/verify.hpp"
#include "support/fd_count.hpp"

namespace shmfd {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Mappings of channel pages in this process.
std::size_t channel_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::size_t count = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("shmfd:channel-") != std::string::npos) ++count;
  }
  return count;
}

// The page the peer gets: the broker passes a read-only reopening of the owner's memfd.
Result<PeerPage> peer_of(const OwnPage& page) {
  auto fd = reopen_read_only(page.fd());
  if (!fd) return fail(std::move(fd.error()));
  return PeerPage::accept(std::move(*fd), page.side(), page.meta_bytes());
}

// Offsets of the page format (channel.cpp, docs/PROTOCOL.md), for playing a hostile peer.
constexpr std::size_t kIndexAt = 64;
constexpr std::size_t kReleasesAt = 192;
constexpr std::size_t kRingAt = 256;

void poke(std::byte* page, std::size_t at, std::uint32_t v) {
  std::memcpy(page + at, &v, sizeof v);
}

struct Pair {
  std::unique_ptr<ChannelWriter> writer;
  std::unique_ptr<ChannelReader> reader;
  // Raw pointers to the pages each side owns, to play the hostile side.
  std::byte* producer_page = nullptr;
  std::byte* consumer_page = nullptr;
};

Pair make_pair(std::uint32_t capacity, std::uint32_t meta_bytes = 0) {
  auto p = OwnPage::create(ChannelSide::producer, capacity, meta_bytes);
  auto c = OwnPage::create(ChannelSide::consumer, capacity);
  EXPECT_TRUE(p && c);
  auto p_peer = peer_of(*p);
  auto c_peer = peer_of(*c);
  EXPECT_TRUE(p_peer) << p_peer.error().message();
  EXPECT_TRUE(c_peer) << c_peer.error().message();
  Pair pair;
  pair.producer_page = p->data();
  pair.consumer_page = c->data();
  pair.writer = std::make_unique<ChannelWriter>(std::move(*p), std::move(*c_peer));
  pair.reader = std::make_unique<ChannelReader>(std::move(*c), std::move(*p_peer));
  return pair;
}

FrameShapes shapes() {
  FrameShapes s;
  s.add_pool(1, 8, 4096);
  s.add_layout(0, 4096);
  s.add_layout(1, 64);
  return s;
}

Descriptor frame(std::uint32_t slot, std::uint64_t sequence, std::uint32_t layout = 1) {
  return Descriptor{1, slot, layout, sequence, 1000 + sequence, 0};
}

class ChannelTest : public testing::FdLeakTest {
 protected:
  void SetUp() override {
    FdLeakTest::SetUp();
    mappings_ = channel_mappings();
  }
  void TearDown() override {
    EXPECT_EQ(channel_mappings(), mappings_) << "the test leaked channel mappings";
    FdLeakTest::TearDown();
  }
  std::size_t mappings_ = 0;
};

TEST_F(ChannelTest, PagesAreSealedSoThePeerCannotWriteThem) {
  auto own = OwnPage::create(ChannelSide::producer);
  ASSERT_TRUE(own) << own.error().message();
  EXPECT_EQ(channel_page_bytes(ChannelSide::producer, 256), 4096U * 5);
  auto peer_fd = reopen_read_only(own->fd());
  ASSERT_TRUE(peer_fd);
  // Neither the peer's fd nor even the owner's can make a new writable mapping or write(2).
  for (int fd : {peer_fd->get(), own->fd()}) {
    void* w = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    EXPECT_EQ(w, MAP_FAILED);
    const char byte = 1;
    EXPECT_LT(::pwrite(fd, &byte, 1, 64), 0);
    EXPECT_NE(::ftruncate(fd, 4096), 0);
  }
  auto verified = verify_buffer(peer_fd->get(), Guarantee::pool, 4096);
  EXPECT_TRUE(verified) << verified.error().message();
}

// What `shmfdctl memfds` and /proc show: "shmfd:" once, then what the memfd is.
TEST_F(ChannelTest, PagesAndBellsAreNamedForWhatTheyAre) {
  const auto name_of = [](int fd) {
    char link[256] = {};
    const ssize_t n =
        ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), link, sizeof link - 1);
    return n > 0 ? std::string(link, static_cast<std::size_t>(n)) : std::string();
  };
  auto producer = OwnPage::create(ChannelSide::producer, 2);
  auto consumer = OwnPage::create(ChannelSide::consumer, 2);
  auto bell = OwnBell::create();
  ASSERT_TRUE(producer && consumer && bell);
  EXPECT_EQ(name_of(producer->fd()), "/memfd:shmfd:channel-producer,size=4096 (deleted)");
  EXPECT_EQ(name_of(consumer->fd()), "/memfd:shmfd:channel-consumer,size=4096 (deleted)");
  EXPECT_EQ(name_of(bell->fd()), "/memfd:shmfd:bell,size=4096 (deleted)");
}

TEST_F(ChannelTest, BadPagesAreRefusedNamingWhy) {
  EXPECT_TRUE(OwnPage::create(ChannelSide::producer, 3).error().is(Errc::invalid_argument));
  EXPECT_TRUE(OwnPage::create(ChannelSide::producer, 1).error().is(Errc::invalid_argument));

  // A pipe is not a page.
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  UniqueFd writer_end(fds[1]);
  auto pipe = PeerPage::accept(UniqueFd(fds[0]), ChannelSide::producer);
  ASSERT_FALSE(pipe);
  EXPECT_TRUE(pipe.error().is(Errc::not_memfd)) << pipe.error().message();

  // An unsealed memfd could change size or be rewritten by anyone holding it.
  auto loose = create_memfd("loose", 4096 * 5);
  ASSERT_TRUE(loose);
  auto unsealed = PeerPage::accept(std::move(*loose), ChannelSide::producer);
  ASSERT_FALSE(unsealed);
  EXPECT_TRUE(unsealed.error().is(Errc::missing_seals)) << unsealed.error().message();

  // A consumer's page offered as a producer's.
  auto consumer = OwnPage::create(ChannelSide::consumer);
  ASSERT_TRUE(consumer);
  auto fd = reopen_read_only(consumer->fd());
  ASSERT_TRUE(fd);
  auto wrong_side = PeerPage::accept(std::move(*fd), ChannelSide::producer);
  ASSERT_FALSE(wrong_side);
  EXPECT_TRUE(wrong_side.error().is(Errc::malformed_message));
  EXPECT_NE(wrong_side.error().message().find("is not a producer page"), std::string::npos)
      << wrong_side.error().message();

  // A header that claims a bigger ring than the page holds (sealed before the lie is found).
  auto liar = WritableBuffer::create("liar", 4096 * 5);
  ASSERT_TRUE(liar);
  const std::uint32_t header[4] = {0x50444653, 1, 1024, 64};
  std::memcpy(liar->bytes().data(), header, sizeof header);
  auto sealed = std::move(*liar).into_pool();
  ASSERT_TRUE(sealed);
  auto liar_fd = reopen_read_only(sealed->fd());
  ASSERT_TRUE(liar_fd);
  auto too_small = PeerPage::accept(std::move(*liar_fd), ChannelSide::producer);
  ASSERT_FALSE(too_small);
  EXPECT_TRUE(too_small.error().is(Errc::invalid_size)) << too_small.error().message();
}

TEST_F(ChannelTest, FramesArriveInOrderAndReleasesFreeExactlyTheSlotsHeld) {
  auto pair = make_pair(8);
  const auto s = shapes();
  EXPECT_FALSE(pair.reader->readable());
  for (std::uint32_t i = 0; i < 3; ++i) ASSERT_TRUE(*pair.writer->publish(frame(i, 10 + i)));
  EXPECT_EQ(pair.writer->held(), 3U);
  EXPECT_TRUE(pair.reader->readable());
  for (std::uint32_t i = 0; i < 3; ++i) {
    auto d = pair.reader->next(s);
    ASSERT_TRUE(d);
    EXPECT_EQ(d->slot, i);
    EXPECT_EQ(d->sequence, 10 + i);
    EXPECT_EQ(d->timestamp_ns, 1010 + i);
  }
  EXPECT_FALSE(pair.reader->next(s));

  ASSERT_TRUE(pair.reader->release(1, 1, 11));
  ASSERT_TRUE(pair.reader->release(1, 0, 10));
  std::vector<std::uint32_t> freed;
  EXPECT_EQ(pair.writer->collect_releases([&](std::uint32_t pool, std::uint32_t slot) {
    EXPECT_EQ(pool, 1U);
    freed.push_back(slot);
  }),
            2U);
  EXPECT_EQ(freed, (std::vector<std::uint32_t>{1, 0}));
  EXPECT_EQ(pair.writer->held(), 1U);
  EXPECT_TRUE(pair.writer->holds(1, 2));
  EXPECT_EQ(pair.writer->bogus_releases(), 0U);
}

TEST_F(ChannelTest, AFullRingOrAConsumerHoldingCapacitySlotsStopsPublishing) {
  auto pair = make_pair(4);
  const auto s = shapes();
  for (std::uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(*pair.writer->publish(frame(i, i + 1)));
  EXPECT_FALSE(*pair.writer->publish(frame(4, 5)));  // ring full
  ASSERT_TRUE(pair.reader->next(s));
  EXPECT_FALSE(*pair.writer->publish(frame(4, 5)));  // room in the ring, but 4 slots held
  ASSERT_TRUE(pair.reader->release(1, 0, 1));
  EXPECT_EQ(pair.writer->collect_releases([](std::uint32_t, std::uint32_t) {}), 1U);
  EXPECT_TRUE(*pair.writer->publish(frame(4, 5)));
}

TEST_F(ChannelTest, PublishingASlotTheConsumerStillHoldsIsRefused) {
  auto pair = make_pair(8);
  ASSERT_TRUE(*pair.writer->publish(frame(2, 1)));
  auto again = pair.writer->publish(frame(2, 2));
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(Errc::invalid_argument)) << again.error().message();
}

TEST_F(ChannelTest, ReleasesOfSlotsNotHeldAreIgnoredAndCounted) {
  auto pair = make_pair(8);
  const auto s = shapes();
  ASSERT_TRUE(*pair.writer->publish(frame(3, 7)));
  ASSERT_TRUE(pair.reader->next(s));
  ASSERT_TRUE(pair.reader->release(1, 4, 7));  // a slot it was never given
  ASSERT_TRUE(pair.reader->release(1, 3, 6));  // the right slot, an old sequence
  ASSERT_TRUE(pair.reader->release(2, 3, 7));  // another pool
  ASSERT_TRUE(pair.reader->release(1, 3, 7));  // the real one
  ASSERT_TRUE(pair.reader->release(1, 3, 7));  // twice
  int freed = 0;
  EXPECT_EQ(pair.writer->collect_releases([&](std::uint32_t, std::uint32_t) { ++freed; }), 1U);
  EXPECT_EQ(freed, 1);
  EXPECT_EQ(pair.writer->bogus_releases(), 4U);
  EXPECT_EQ(pair.writer->held(), 0U);
}

TEST_F(ChannelTest, HostileDescriptorsAreSkippedCountedAndNamed) {
  auto pair = make_pair(8);
  FrameShapes s;
  s.add_pool(1, 8, 4096);
  s.add_layout(0, 4096);
  s.add_layout(2, 8192);  // larger than a slot
  // Each rule broken once, then a good frame.
  ASSERT_TRUE(*pair.writer->publish(Descriptor{9, 0, 0, 1, 0, 0}));  // unknown pool
  ASSERT_TRUE(*pair.writer->publish(Descriptor{1, 8, 0, 2, 0, 0}));  // slot out of range
  ASSERT_TRUE(*pair.writer->publish(Descriptor{1, 1, 1, 3, 0, 0}));  // unknown layout
  ASSERT_TRUE(
      *pair.writer->publish(Descriptor{1, 2, 7, 4, 0, 0}));  // unknown layout, past the table
  ASSERT_TRUE(*pair.writer->publish(Descriptor{1, 3, 2, 5, 0, 0}));  // layout beyond the slot
  ASSERT_TRUE(*pair.writer->publish(Descriptor{1, 4, 0, 6, 0, 0}));  // fine
  auto d = pair.reader->next(s);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sequence, 6U);
  EXPECT_EQ(pair.reader->refusals(), 5U);
  ASSERT_TRUE(pair.reader->last_refusal());
  EXPECT_TRUE(pair.reader->last_refusal()->is(Errc::malformed_message));
  EXPECT_EQ(pair.reader->last_refusal()->message(),
            "frame 5: layout 2 reaches 8192 bytes, slots of pool 1 hold 4096");
  EXPECT_FALSE(pair.reader->broken());
}

TEST_F(ChannelTest, AnyLayoutIdIsOneEntryAndTheLastDefinitionHolds) {
  auto pair = make_pair(8);
  FrameShapes s;
  s.add_pool(1, 8, 4096);
  s.add_layout(0xFFFFFFFFU, 8192);  // a table indexed by id would need 4 billion entries
  s.add_layout(0xFFFFFFFFU, 64);    // defined again: the new extent replaces the old
  ASSERT_TRUE(*pair.writer->publish(Descriptor{1, 0, 0xFFFFFFFFU, 1, 0, 0}));
  ASSERT_TRUE(*pair.writer->publish(Descriptor{1, 1, 0xFFFFFFFEU, 2, 0, 0}));
  auto d = pair.reader->next(s);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->layout, 0xFFFFFFFFU);
  EXPECT_FALSE(pair.reader->next(s));
  EXPECT_EQ(pair.reader->last_refusal()->message(), "frame 2: unknown layout 4294967294");
}

TEST_F(ChannelTest, AProducerHeadBeyondTheRingBreaksTheChannelForItsReaderOnly) {
  auto pair = make_pair(8);
  const auto s = shapes();
  ASSERT_TRUE(*pair.writer->publish(frame(0, 1)));
  poke(pair.producer_page, kIndexAt, 1 + 9);  // 10 frames "waiting" in a ring of 8
  EXPECT_FALSE(pair.reader->next(s));
  ASSERT_TRUE(pair.reader->broken());
  EXPECT_TRUE(pair.reader->broken()->is(Errc::malformed_message));
  EXPECT_NE(pair.reader->broken()->message().find("beyond the ring's 8 entries"), std::string::npos)
      << pair.reader->broken()->message();
  EXPECT_FALSE(pair.reader->readable());
  // Waiting on a broken channel returns at once instead of sleeping on a liar.
  const auto start = Clock::now();
  EXPECT_EQ(pair.reader->wait(Clock::now() + 5s), WaitStatus::ready);
  EXPECT_LT(Clock::now() - start, 1s);
  // A head that went backwards is the same lie, seen modulo 2^32.
  auto other = make_pair(8);
  poke(other.producer_page, kIndexAt, 0xFFFFFFF0U);
  EXPECT_FALSE(other.reader->next(s));
  EXPECT_TRUE(other.reader->broken());
}

TEST_F(ChannelTest, AConsumerTailOrReleaseCountOutOfBoundsBreaksTheChannelForItsWriterOnly) {
  auto pair = make_pair(8);
  poke(pair.consumer_page, kIndexAt, 5);  // consumed 5 of the 0 published
  auto published = pair.writer->publish(frame(0, 1));
  ASSERT_FALSE(published);
  EXPECT_TRUE(published.error().is(Errc::malformed_message)) << published.error().message();
  EXPECT_TRUE(pair.writer->broken());

  auto other = make_pair(8);
  ASSERT_TRUE(*other.writer->publish(frame(0, 1)));
  poke(other.consumer_page, kReleasesAt, 100);  // 100 releases in a ring of 8
  EXPECT_EQ(other.writer->collect_releases([](std::uint32_t, std::uint32_t) { FAIL(); }), 0U);
  ASSERT_TRUE(other.writer->broken());
  // What it held is still the producer's to take back.
  std::vector<std::uint32_t> freed;
  EXPECT_EQ(
      other.writer->reclaim_all([&](std::uint32_t, std::uint32_t slot) { freed.push_back(slot); }),
      1U);
  EXPECT_EQ(freed, std::vector<std::uint32_t>{0});
}

TEST_F(ChannelTest, ForgedReleaseEntriesFreeNothing) {
  auto pair = make_pair(8);
  ASSERT_TRUE(*pair.writer->publish(frame(5, 42)));
  // The consumer writes garbage entries straight into its ring and counts them.
  const std::uint32_t garbage[4 * 3] = {1, 6, 42, 0, 7, 5, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, 1, 2};
  std::memcpy(pair.consumer_page + kRingAt, garbage, sizeof garbage);
  poke(pair.consumer_page, kReleasesAt, 3);
  EXPECT_EQ(pair.writer->collect_releases([](std::uint32_t, std::uint32_t) { FAIL(); }), 0U);
  EXPECT_EQ(pair.writer->bogus_releases(), 3U);
  EXPECT_TRUE(pair.writer->holds(1, 5));
  EXPECT_FALSE(pair.writer->broken());
}

TEST_F(ChannelTest, CloseEndsTheStreamAfterTheLastFrameAndWakesASleeper) {
  auto pair = make_pair(8);
  const auto s = shapes();
  ASSERT_TRUE(*pair.writer->publish(frame(0, 1)));
  std::thread closer([&] {
    std::this_thread::sleep_for(50ms);
    pair.writer->close();
  });
  ASSERT_TRUE(pair.reader->next(s));
  EXPECT_FALSE(pair.reader->ended());
  const auto start = Clock::now();
  EXPECT_EQ(pair.reader->wait(Clock::now() + 10s), WaitStatus::ready);
  EXPECT_LT(Clock::now() - start, 5s);
  closer.join();
  EXPECT_TRUE(pair.reader->ended());
  EXPECT_FALSE(pair.reader->next(s));
}

TEST_F(ChannelTest, WaitTimesOutWhenNothingComes) {
  auto pair = make_pair(8);
  const auto start = Clock::now();
  EXPECT_EQ(pair.reader->wait(Clock::now() + 30ms), WaitStatus::timed_out);
  EXPECT_GE(Clock::now() - start, 30ms);
  EXPECT_EQ(pair.writer->wait(Clock::now() + 30ms), WaitStatus::timed_out);
}

// Both sides sleep whenever they must (ring of 4 and 4 slots, so the producer waits for
// releases and the consumer for frames, in lockstep). A lost wake-up shows as a wait that runs
// into its deadline: with the wake deduplicated once per epoch but without the caught-up check,
// about one run in three of 200 000 frames lost one here.
TEST_F(ChannelTest, StreamingWithBothSidesSleepingLosesNoWakeUp) {
  auto pair = make_pair(4);
  FrameShapes s;
  s.add_pool(1, 4, 4096);
  s.add_layout(1, 64);
  constexpr std::uint64_t kFrames = 200000;
  std::atomic<std::int64_t> longest_wait_us{0};
  const auto timed_wait = [&](auto& side) {
    const auto start = Clock::now();
    side.wait(Clock::now() + 3s);
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start);
    std::int64_t seen = longest_wait_us.load();
    while (us.count() > seen && !longest_wait_us.compare_exchange_weak(seen, us.count())) {
    }
  };
  std::thread consumer([&] {
    std::uint64_t expected = 1;
    while (expected <= kFrames) {
      if (auto d = pair.reader->next(s)) {
        if (d->sequence != expected)
          ADD_FAILURE() << "frame " << d->sequence << " for " << expected;
        ++expected;
        if (!pair.reader->release(d->pool, d->slot, d->sequence))
          ADD_FAILURE() << "release ring full";
        continue;
      }
      timed_wait(*pair.reader);
    }
  });
  std::vector<bool> free_slot(4, true);
  for (std::uint64_t seq = 1; seq <= kFrames;) {
    pair.writer->collect_releases(
        [&](std::uint32_t, std::uint32_t slot) { free_slot[slot] = true; });
    const auto slot = std::find(free_slot.begin(), free_slot.end(), true) - free_slot.begin();
    if (slot < 4) {
      auto ok = pair.writer->publish(frame(static_cast<std::uint32_t>(slot), seq));
      ASSERT_TRUE(ok) << ok.error().message();
      ASSERT_TRUE(*ok);  // a free slot means room: 4 slots, a ring of 4
      free_slot[static_cast<std::size_t>(slot)] = false;
      ++seq;
      continue;
    }
    timed_wait(*pair.writer);
  }
  consumer.join();
  // A wake-up takes microseconds; 1 s is a wait that nobody ended.
  EXPECT_LT(longest_wait_us.load(), 1'000'000) << "a wake-up was lost";
  EXPECT_EQ(pair.reader->refusals(), 0U);
  EXPECT_EQ(pair.writer->bogus_releases(), 0U);
}

TEST_F(ChannelTest, WaitvWakesOnAnyOfSeveralChannels) {
  auto a = make_pair(8);
  auto b = make_pair(8);
  std::array<ChannelReader*, 2> readers{a.reader.get(), b.reader.get()};
  std::thread producer([&] {
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(*b.writer->publish(frame(0, 1)));
  });
  const auto start = Clock::now();
  EXPECT_EQ(waitv(readers, Clock::now() + 10s), WaitStatus::ready);
  EXPECT_LT(Clock::now() - start, 5s);
  producer.join();
  EXPECT_FALSE(a.reader->readable());
  EXPECT_TRUE(b.reader->readable());
}

TEST_F(ChannelTest, AWriterWaitsForReleasesFromAnyOfItsConsumers) {
  auto a = make_pair(8);
  auto b = make_pair(8);
  const auto s = shapes();
  ASSERT_TRUE(*a.writer->publish(frame(0, 1)));
  ASSERT_TRUE(*b.writer->publish(frame(0, 1)));
  ASSERT_TRUE(a.reader->next(s));
  ASSERT_TRUE(b.reader->next(s));
  std::array<ChannelWriter*, 2> writers{a.writer.get(), b.writer.get()};
  std::thread releaser([&] {
    std::this_thread::sleep_for(50ms);
    ASSERT_TRUE(b.reader->release(1, 0, 1));
  });
  // The consumers' reads came after the last publish: progress, so no sleep yet.
  EXPECT_EQ(waitv(writers, Clock::now() + 10s), WaitStatus::ready);
  ASSERT_TRUE(a.writer->publish(frame(1, 2)));
  ASSERT_TRUE(b.writer->publish(frame(1, 2)));
  const auto start = Clock::now();
  EXPECT_EQ(waitv(writers, Clock::now() + 10s), WaitStatus::ready);
  EXPECT_LT(Clock::now() - start, 5s);
  releaser.join();
  EXPECT_EQ(b.writer->collect_releases([](std::uint32_t, std::uint32_t) {}), 1U);
}

// Drop-oldest (issue 32): the reader takes the oldest of the newest `depth` frames offered, and
// hands the older ones back unseen, counted.
TEST_F(ChannelTest, NextFreshSkipsToTheNewestDepthAndHandsTheSlotsBack) {
  auto pair = make_pair(8);
  const auto s = shapes();
  for (std::uint32_t i = 0; i < 4; ++i) ASSERT_TRUE(*pair.writer->publish(frame(i, i + 1)));
  auto d = pair.reader->next_fresh(s, 2);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sequence, 3U) << "not the oldest of the newest 2";
  EXPECT_EQ(pair.reader->skipped(), 2U);
  std::vector<std::uint32_t> freed;
  pair.writer->collect_releases([&](std::uint32_t, std::uint32_t slot) { freed.push_back(slot); });
  EXPECT_EQ(freed, (std::vector<std::uint32_t>{0, 1}));
  EXPECT_TRUE(pair.writer->holds(1, 2));
  d = pair.reader->next_fresh(s, 2);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sequence, 4U);
  EXPECT_FALSE(pair.reader->next_fresh(s, 2));  // nothing more
}

// Frames the producer dropped for the consumer count as offered: what waits in the ring may be
// stale although it is all there is, and then nothing is taken.
TEST_F(ChannelTest, NextFreshCountsTheFramesTheProducerDropped) {
  auto pair = make_pair(8);
  const auto s = shapes();
  ASSERT_TRUE(*pair.writer->publish(frame(0, 1)));
  ASSERT_TRUE(*pair.writer->publish(frame(1, 2)));
  pair.writer->missed(3);  // frames 3, 4 and 5 were not put on the channel
  EXPECT_EQ(pair.reader->producer_dropped(), 3U);
  EXPECT_FALSE(pair.reader->next_fresh(s, 2)) << "frames 1 and 2 are not among the newest 2";
  EXPECT_EQ(pair.reader->skipped(), 2U);
  Descriptor next = frame(2, 6);
  next.dropped = 3;
  ASSERT_TRUE(*pair.writer->publish(next));
  auto d = pair.reader->next_fresh(s, 2);
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sequence, 6U);
}

TEST_F(ChannelTest, NextFreshKeepsTheOlderFrameWhenItCannotBeReleased) {
  auto pair = make_pair(2);
  const auto s = shapes();
  ASSERT_TRUE(*pair.writer->publish(frame(0, 1)));
  ASSERT_TRUE(*pair.writer->publish(frame(1, 2)));
  ASSERT_TRUE(pair.reader->next(s));
  ASSERT_TRUE(pair.reader->next(s));
  ASSERT_TRUE(pair.reader->release(1, 0, 1));
  ASSERT_TRUE(pair.reader->release(1, 1, 2));
  EXPECT_EQ(pair.writer->collect_releases([](std::uint32_t, std::uint32_t) {}), 2U);
  ASSERT_TRUE(*pair.writer->publish(frame(0, 3)));
  ASSERT_TRUE(*pair.writer->publish(frame(1, 4)));
  poke(pair.producer_page, kReleasesAt, 0);  // the producer "forgets" it read both releases
  auto d = pair.reader->next_fresh(s, 1);    // no room to release frame 3: it is not skipped
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sequence, 3U);
  EXPECT_EQ(pair.reader->skipped(), 0U);
  auto next = pair.reader->next(s);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->sequence, 4U);
}

TEST_F(ChannelTest, TheWriterKnowsHowLongItsOldestSlotIsHeld) {
  auto pair = make_pair(8);
  const auto s = shapes();
  EXPECT_FALSE(pair.writer->oldest_hold());
  // Bracketed by the clock on both sides of each publish, so a thread preempted between two
  // lines (a loaded machine, a sanitizer) cannot move a time across a bound.
  const auto before = Clock::now();
  ASSERT_TRUE(*pair.writer->publish(frame(0, 1)));
  const auto after_first = Clock::now();
  std::this_thread::sleep_for(5ms);
  const auto before_second = Clock::now();
  ASSERT_TRUE(*pair.writer->publish(frame(1, 2)));
  const auto oldest = pair.writer->oldest_hold();
  ASSERT_TRUE(oldest);
  EXPECT_GE(*oldest, before);
  EXPECT_LE(*oldest, after_first);
  ASSERT_TRUE(pair.reader->next(s));
  ASSERT_TRUE(pair.reader->release(1, 0, 1));
  pair.writer->collect_releases([](std::uint32_t, std::uint32_t) {});
  ASSERT_TRUE(pair.writer->oldest_hold());
  EXPECT_GE(*pair.writer->oldest_hold(), before_second);
}

TEST_F(ChannelTest, ADoorbellEndsAWaitOnChannels) {
  auto bell = OwnBell::create();
  ASSERT_TRUE(bell) << bell.error().message();
  auto fd = reopen_read_only(bell->fd());
  ASSERT_TRUE(fd);
  auto peer = PeerBell::accept(std::move(*fd));
  ASSERT_TRUE(peer) << peer.error().message();
  auto pair = make_pair(8);
  std::array<ChannelReader*, 1> readers{pair.reader.get()};

  const std::uint32_t seen = peer->count();
  EXPECT_EQ(waitv(readers, &*peer, seen, Clock::now() + 20ms), WaitStatus::timed_out);
  std::thread ringer([&] {
    std::this_thread::sleep_for(50ms);
    bell->ring();
  });
  const auto start = Clock::now();
  EXPECT_EQ(waitv(readers, &*peer, seen, Clock::now() + 10s), WaitStatus::ready);
  EXPECT_LT(Clock::now() - start, 5s);
  ringer.join();
  EXPECT_EQ(peer->count(), seen + 1);
  // Rung before the wait began: the wait returns at once.
  bell->ring();
  EXPECT_EQ(waitv(readers, &*peer, seen + 1, Clock::now() + 10s), WaitStatus::ready);
}

TEST_F(ChannelTest, ADoorbellPageIsVerifiedLikeAChannelPage) {
  auto page = OwnPage::create(ChannelSide::producer, 2);  // one page of 4 KiB, but not a bell
  ASSERT_TRUE(page);
  auto fd = reopen_read_only(page->fd());
  ASSERT_TRUE(fd);
  auto wrong = PeerBell::accept(std::move(*fd));
  ASSERT_FALSE(wrong);
  EXPECT_TRUE(wrong.error().is(Errc::malformed_message)) << wrong.error().message();

  auto big = OwnPage::create(ChannelSide::producer, 256);  // 5 pages
  ASSERT_TRUE(big);
  auto big_fd = reopen_read_only(big->fd());
  ASSERT_TRUE(big_fd);
  auto too_big = PeerBell::accept(std::move(*big_fd));
  ASSERT_FALSE(too_big);
  EXPECT_TRUE(too_big.error().is(Errc::invalid_size)) << too_big.error().message();

  auto loose = create_memfd("loose", 4096);
  ASSERT_TRUE(loose);
  auto unsealed = PeerBell::accept(std::move(*loose));
  ASSERT_FALSE(unsealed);
  EXPECT_TRUE(unsealed.error().is(Errc::missing_seals)) << unsealed.error().message();
}

}  // namespace
}  // namespace shmfd

namespace shmfd {
namespace {

// --- Metadata on channels (version 5, docs/PROTOCOL.md section 15) ---

constexpr std::size_t kMetaAreaAt = 256;  // after the ring: kRingAt + capacity * 64

FrameMeta sample_meta(std::span<const std::byte> header) {
  FrameMeta m;
  m.pts = 5'000;
  m.dts = 4'000;
  m.duration = 1'000;
  m.flags = static_cast<std::uint32_t>(FrameFlag::delta_unit);
  m.crop = Crop{1, 2, 3, 4};
  m.header = header;
  return m;
}

TEST_F(ChannelTest, MetadataEntriesAreSizedAndCheckedLikeTheRest) {
  EXPECT_EQ(channel_meta_bytes(0), 64U);
  EXPECT_EQ(channel_meta_bytes(16), 64U);
  EXPECT_EQ(channel_meta_bytes(17), 128U);
  EXPECT_EQ(channel_meta_bytes(4096), 4160U);
  EXPECT_EQ(channel_page_bytes(ChannelSide::producer, 256, 64), 4096U * 9);
  EXPECT_TRUE(OwnPage::create(ChannelSide::consumer, 8, 64).error().is(Errc::invalid_argument));
  EXPECT_TRUE(OwnPage::create(ChannelSide::producer, 8, 100).error().is(Errc::invalid_argument));
  EXPECT_TRUE(OwnPage::create(ChannelSide::producer, 8, 8192).error().is(Errc::invalid_argument));

  // The page must have the entries the broker asked for: neither none nor others.
  auto with = OwnPage::create(ChannelSide::producer, 8, 128);
  ASSERT_TRUE(with) << with.error().message();
  for (std::uint32_t asked : {0U, 64U, 192U}) {
    auto fd = reopen_read_only(with->fd());
    ASSERT_TRUE(fd);
    auto wrong = PeerPage::accept(std::move(*fd), ChannelSide::producer, asked);
    ASSERT_FALSE(wrong) << asked;
    EXPECT_TRUE(wrong.error().is(Errc::malformed_message)) << wrong.error().message();
    EXPECT_NE(wrong.error().message().find("metadata entries of 128 bytes, asked for " +
                                           std::to_string(asked)),
              std::string::npos)
        << wrong.error().message();
  }
  auto fd = reopen_read_only(with->fd());
  ASSERT_TRUE(fd);
  EXPECT_TRUE(PeerPage::accept(std::move(*fd), ChannelSide::producer, 128));
}

TEST_F(ChannelTest, MetadataTravelsWithItsDescriptorAndIsCopiedOutOnce) {
  auto pair = make_pair(8, channel_meta_bytes(64));
  std::array<std::byte, 40> header{};
  for (std::size_t i = 0; i < header.size(); ++i) header[i] = static_cast<std::byte>(i + 1);
  const FrameMeta sent = sample_meta(header);
  ASSERT_TRUE(*pair.writer->publish(frame(0, 1), Clock::now(), &sent));
  ASSERT_TRUE(*pair.writer->publish(frame(1, 2)));  // none: as before version 5

  auto d = pair.reader->next(shapes());
  ASSERT_TRUE(d);
  ASSERT_TRUE(d->has_meta);
  // The producer rewrites the entry after the descriptor was read: the copy stays as it was.
  std::memset(pair.producer_page + kMetaAreaAt + 8 * 64, 0xff, 128);
  const FrameMeta& got = pair.reader->meta();
  EXPECT_EQ(got.pts, sent.pts);
  EXPECT_EQ(got.dts, sent.dts);
  EXPECT_EQ(got.duration, sent.duration);
  EXPECT_EQ(got.flags, sent.flags);
  EXPECT_EQ(got.crop, sent.crop);
  ASSERT_EQ(got.header.size(), header.size());
  EXPECT_TRUE(std::equal(got.header.begin(), got.header.end(), header.begin()));
  TopicOptions topic;
  topic.max_header_bytes = 64;
  EXPECT_TRUE(check_frame_meta(got, topic, *image_layout(PixelFormat::rgba8, 16, 16)));

  auto plain = pair.reader->next(shapes());
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->has_meta);
  EXPECT_EQ(pair.reader->refusals(), 0U);
}

TEST_F(ChannelTest, APageWithoutMetadataEntriesCarriesTheFrameWithoutIt) {
  // A consumer of version 4: the broker asks for no entries, and it sees no new field.
  auto pair = make_pair(8);
  const FrameMeta sent = sample_meta({});
  ASSERT_TRUE(*pair.writer->publish(frame(0, 1), Clock::now(), &sent));
  auto d = pair.reader->next(shapes());
  ASSERT_TRUE(d);
  EXPECT_FALSE(d->has_meta);
}

TEST_F(ChannelTest, HostileMetadataEntriesAreRefusedNamedAndTheirSlotsHandedBack) {
  constexpr std::uint32_t kCapacity = 8;
  const std::uint32_t meta_bytes = channel_meta_bytes(16);  // 64: a header of up to 16 bytes
  auto pair = make_pair(kCapacity, meta_bytes);
  const auto entry = [&](std::uint32_t index) {
    return pair.producer_page + kMetaAreaAt + kCapacity * 64 + (index % kCapacity) * meta_bytes;
  };
  const auto descriptor = [&](std::uint32_t index) {
    return pair.producer_page + kRingAt + (index % kCapacity) * 64;
  };
  const FrameMeta ok = sample_meta({});
  // 0: a header length beyond the entry. 1: a descriptor flag that is reserved. 2: fine.
  for (std::uint32_t i = 0; i < 3; ++i) {
    ASSERT_TRUE(*pair.writer->publish(frame(i, i + 1), Clock::now(), &ok));
  }
  poke(entry(0), 28, 17);            // header_bytes: 17 > 16
  poke(descriptor(1), 12, 1U | 2U);  // flags: has-meta and a reserved bit
  auto d = pair.reader->next(shapes());
  ASSERT_TRUE(d);
  EXPECT_EQ(d->sequence, 3U);
  EXPECT_EQ(pair.reader->refusals(), 2U);
  ASSERT_TRUE(pair.reader->last_refusal());
  EXPECT_TRUE(pair.reader->last_refusal()->is(Errc::invalid_metadata));
  EXPECT_EQ(pair.reader->last_refusal()->message(),
            "frame 2: descriptor flags 3 set reserved bits");
  // The refused frames' slots come back to the producer at once.
  std::vector<std::uint32_t> freed;
  pair.writer->collect_releases([&](std::uint32_t, std::uint32_t slot) { freed.push_back(slot); });
  EXPECT_EQ(freed, (std::vector<std::uint32_t>{0, 1}));

  // Metadata claimed on a page that has no entries.
  auto bare = make_pair(kCapacity);
  ASSERT_TRUE(*bare.writer->publish(frame(0, 1)));
  poke(bare.producer_page + kRingAt, 12, 1);
  EXPECT_FALSE(bare.reader->next(shapes()));
  ASSERT_TRUE(bare.reader->last_refusal());
  EXPECT_EQ(bare.reader->last_refusal()->message(),
            "frame 1: metadata on a channel whose page has no metadata entries");

  // The writer never puts a header larger than its entries hold.
  std::array<std::byte, 17> big{};
  FrameMeta too_big;
  too_big.header = big;
  auto refused = pair.writer->publish(frame(5, 9), Clock::now(), &too_big);
  ASSERT_FALSE(refused);
  EXPECT_TRUE(refused.error().is(Errc::invalid_argument));
}

}  // namespace
}  // namespace shmfd
