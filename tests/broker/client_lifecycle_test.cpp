// The client library's ways out short of disconnecting: Consumer::unsubscribe and
// Producer::unadvertise, with pools, held frames and a second round.
#include <optional>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_fixture.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/frames.hpp"

namespace shmfd {
namespace {

class ClientLifecycleTest : public testing::BrokerFixture {};

Result<std::uint64_t> publish_slot(Producer& producer, std::uint32_t pool, std::byte value) {
  auto slot = producer.acquire(pool);
  if (!slot) return fail(std::move(slot.error()));
  std::fill(slot->bytes.begin(), slot->bytes.end(), value);
  return producer.publish("pool", *slot, blob_layout(64));
}

TEST_F(ClientLifecycleTest, AConsumerDroppedWithFramesNotYetReceivedClosesItsConnection) {
  auto producer = Producer::connect(socket(), "queued-producer");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("queued", LayoutKind::blob));
  ASSERT_TRUE(producer->advertise("later", LayoutKind::blob));
  {
    auto consumer = Consumer::connect(socket(), "queued-consumer");
    ASSERT_TRUE(consumer);
    ASSERT_TRUE(consumer->subscribe("queued", 4));
    for (int i = 0; i < 3; ++i) {
      auto buffer = producer->allocate("queued", blob_layout(64));
      ASSERT_TRUE(buffer);
      ASSERT_TRUE(producer->publish("queued", std::move(*buffer), blob_layout(64)));
    }
    ASSERT_TRUE(broker().wait_until(
        [](broker::Broker& b) { return b.registry().find("queued")->frames == 3; }));
    // Its answer comes after the three frames (sent as the broker took each), which wait
    // inside the consumer meanwhile.
    ASSERT_TRUE(consumer->subscribe("later", 4));
  }  // dropped without receiving them
  EXPECT_TRUE(broker().wait_until([](broker::Broker& b) { return b.stats().clients == 1; }))
      << "the consumer's connection stayed open";
}

TEST_F(ClientLifecycleTest, UnsubscribeKeepsHeldFramesAndSubscribingAgainWorks) {
  auto producer = Producer::connect(socket(), "producer");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("pool", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("pool", 64, 2);
  ASSERT_TRUE(pool) << pool.error().message();
  auto consumer = Consumer::connect(socket(), "consumer");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("pool"));

  ASSERT_TRUE(publish_slot(*producer, *pool, std::byte{7}));
  auto event = consumer->receive();
  ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
  std::optional<Frame> held(std::move(std::get<Frame>(*event)));
  auto ok = consumer->unsubscribe("pool");
  ASSERT_TRUE(ok) << ok.error().message();
  // The held frame is intact, and its slot stays busy until it is dropped.
  EXPECT_EQ(held->bytes()[0], std::byte{7});
  ASSERT_TRUE(publish_slot(*producer, *pool, std::byte{8}));  // nobody subscribed: freed
  auto other = producer->acquire(*pool, Wait::block);         // so that slot comes back...
  ASSERT_TRUE(other) << other.error().message();
  EXPECT_EQ(producer->free_slots(*pool), 0U);  // ... while the held frame keeps its own
  held.reset();
  // Once the frame is dropped (released after Unsubscribed), its slot comes back too.
  auto again = producer->acquire(*pool, Wait::block);
  ASSERT_TRUE(again) << again.error().message();
  EXPECT_NE(again->index, other->index);

  ASSERT_TRUE(consumer->subscribe("pool"));  // its pool fd comes again
  std::fill(again->bytes.begin(), again->bytes.end(), std::byte{9});
  auto published = producer->publish("pool", *again, blob_layout(64));
  ASSERT_TRUE(published) << published.error().message();
  auto next = consumer->receive();
  ASSERT_TRUE(next) << next.error().message();
  ASSERT_TRUE(std::holds_alternative<Frame>(*next));
  EXPECT_EQ(std::get<Frame>(*next).bytes()[0], std::byte{9});
}

TEST_F(ClientLifecycleTest, UnadvertiseEndsTheStreamAndAnotherProducerTakesOver) {
  auto consumer = Consumer::connect(socket(), "consumer");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("cam"));
  auto first = Producer::connect(socket(), "first");
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->advertise("cam", LayoutKind::blob));
  ASSERT_TRUE(testing::publish_pattern(*first, "cam", 1, 256));
  auto ok = first->unadvertise("cam");
  ASSERT_TRUE(ok) << ok.error().message();
  auto frame = consumer->receive();
  ASSERT_TRUE(frame && std::holds_alternative<Frame>(*frame));
  auto end = consumer->receive();
  ASSERT_TRUE(end && std::holds_alternative<EndOfStream>(*end));
  EXPECT_NE(std::get<EndOfStream>(*end).reason.find("stopped producing"), std::string::npos);

  auto second = Producer::connect(socket(), "second");
  ASSERT_TRUE(second);
  ASSERT_TRUE(second->advertise("cam", LayoutKind::blob));
  ASSERT_TRUE(testing::publish_pattern(*second, "cam", 1, 256));
  auto next = consumer->receive();
  ASSERT_TRUE(next && std::holds_alternative<Frame>(*next));
  EXPECT_TRUE(testing::holds_pattern(std::get<Frame>(*next)));
  EXPECT_FALSE(first->unadvertise("cam"));  // no longer its topic
}

}  // namespace
}  // namespace shmfd
