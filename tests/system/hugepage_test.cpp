// Huge pages change vm.nr_hugepages, which is machine-wide: these tests live in their own
// executable, which ctest runs under a RESOURCE_LOCK, never alongside each other.
#include <array>
#include <iostream>
#include <string>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/verify.hpp"
#include "support/broker_harness.hpp"
#include "support/bytes.hpp"
#include "support/fd_count.hpp"
#include "support/hugepages.hpp"
#include "support/stamped_slots.hpp"

namespace shmfd {
namespace {

class HugePageTest : public testing::FdLeakTest {};

using testing::fill;
using testing::holds_pattern;

// One test for both cases: vm.nr_hugepages is machine-wide, and ctest runs tests in parallel
// processes, so two tests changing it could race.
TEST_F(HugePageTest, HugePagesFailClearlyWhenNoneAreFreeAndWorkWhenReserved) {
  {
    testing::HugePageReservation none(0);
    if (none.ok() || testing::read_nr_hugepages() == 0) {
      auto sut = WritableBuffer::create("huge", 4096, MemfdOptions{.huge_pages = true});
      ASSERT_FALSE(sut);
      EXPECT_TRUE(sut.error().is(Errc::huge_pages_unavailable)) << sut.error().message();
      EXPECT_NE(sut.error().message().find("vm.nr_hugepages"), std::string::npos);
    } else {
      std::cout << "[ NOTE     ] huge pages are reserved and this process cannot release them "
                   "(not root): the no-huge-pages error is not exercised\n";
    }
  }
  testing::HugePageReservation two(2);
  if (!two.ok()) GTEST_SKIP() << "cannot reserve 2 huge pages (needs root and free memory)";
  auto writable = WritableBuffer::create("huge", 4096, MemfdOptions{.huge_pages = true});
  ASSERT_TRUE(writable) << writable.error().message();
  EXPECT_EQ(writable->size(), 2U << 20);
  fill(writable->bytes(), 5);
  auto sut = std::move(*writable).seal();
  ASSERT_TRUE(sut) << sut.error().message();
  auto verified = verify_buffer(sut->fd(), Guarantee::sealed, 4096);
  ASSERT_TRUE(verified) << verified.error().message();
  EXPECT_TRUE(verified->huge_pages);
  auto view = sut->map();
  ASSERT_TRUE(view) << view.error().message();
  EXPECT_TRUE(holds_pattern(view->bytes(), 5));
}

TEST_F(HugePageTest, HugePagePoolCarriesFramesThroughTheBroker) {
  testing::HugePageReservation reserve(8);
  if (!reserve.ok()) GTEST_SKIP() << "cannot reserve 8 huge pages (needs root and free memory)";
  testing::InProcessBroker broker;
  auto consumer = Consumer::connect(broker.path());
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("huge", 2, Backpressure::block_producer));
  auto producer = Producer::connect(broker.path());
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("huge", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("huge", 100 * 1000, 3, MemfdOptions{.huge_pages = true});
  ASSERT_TRUE(pool) << pool.error().message();
  EXPECT_EQ(producer->slot_size(*pool), 2U << 20) << "each slot starts on a huge page boundary";
  for (std::uint64_t seq = 1; seq <= 20; ++seq) {
    auto slot = producer->acquire(*pool);
    ASSERT_TRUE(slot) << slot.error().message();
    testing::stamp(slot->bytes, seq);
    ASSERT_TRUE(producer->publish("huge", *slot, blob_layout(slot->bytes.size())));
    auto event = consumer->receive();
    ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
    EXPECT_TRUE(testing::stamped_with(std::get<Frame>(*event).bytes(), seq));
  }
}

TEST_F(HugePageTest, APoolFallsBackToNormalPagesOnlyWhenAskedTo) {
  const MemfdOptions strict{.huge_pages = true};
  const MemfdOptions lenient{.huge_pages = true, .fall_back_to_normal_pages = true};
  testing::InProcessBroker broker;
  auto producer = Producer::connect(broker.path());
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("maybe-huge", LayoutKind::blob, Guarantee::pool));
  {
    testing::HugePageReservation none(0);
    if (!none.ok()) GTEST_SKIP() << "cannot set vm.nr_hugepages to 0 (needs root)";
    auto refused = producer->create_pool("maybe-huge", 100 * 1000, 3, strict);
    ASSERT_FALSE(refused);
    EXPECT_TRUE(refused.error().is(Errc::huge_pages_unavailable)) << refused.error().message();
    auto fallen_back = producer->create_pool("maybe-huge", 100 * 1000, 3, lenient);
    ASSERT_TRUE(fallen_back) << fallen_back.error().message();
    EXPECT_EQ(producer->slot_size(*fallen_back), 102400U) << "whole normal pages";
  }
  testing::HugePageReservation some(8);
  if (!some.ok()) GTEST_SKIP() << "cannot reserve 8 huge pages (needs root and free memory)";
  auto huge = producer->create_pool("maybe-huge", 100 * 1000, 3, lenient);
  ASSERT_TRUE(huge) << huge.error().message();
  EXPECT_EQ(producer->slot_size(*huge), 2U << 20) << "huge pages when there are enough";
}

}  // namespace
}  // namespace shmfd
