// docs/PROTOCOL.md's producer, consumer and pool rules, spoken by hand: each test is named
// after the section whose rules it exercises (Producing_, Sequences_, Consuming_, Pools_).
#include <gtest/gtest.h>

#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/raw_client.hpp"

namespace shmfd {
namespace {

using Code = proto::ErrorCode;
using M = proto::Message;
using testing::RawClient;
using testing::Received;
using testing::sealed_memfd;

class ProtocolFlowTest : public testing::FdLeakTest {
 protected:
  void SetUp() override {
    FdLeakTest::SetUp();
    broker_ = std::make_unique<testing::InProcessBroker>();
  }
  void TearDown() override {
    broker_.reset();
    FdLeakTest::TearDown();
  }
  RawClient producer(const std::string& topic,
                     proto::Guarantee guarantee = proto::Guarantee::SEALED) {
    RawClient c = RawClient::greeted(broker_->path(), "producer");
    c.advertise(topic, proto::LayoutKind::BLOB, guarantee);
    Received r = c.next();
    EXPECT_TRUE(r.is(M::ADVERTISED)) << r;
    return c;
  }
  RawClient consumer(const std::string& topic, std::uint32_t depth = 0) {
    RawClient c = RawClient::greeted(broker_->path(), "consumer");
    c.subscribe(topic, depth);
    Received r = c.next();
    EXPECT_TRUE(r.is(M::SUBSCRIBED)) << r;
    return c;
  }
  // Registers a pool of `slots` pages; returns its id.
  std::uint32_t register_pool(RawClient& c, const std::string& topic, std::uint32_t slots) {
    auto buffer = WritableBuffer::create("pool", slots * page_);
    auto pool = std::move(*buffer).into_pool();
    c.register_pool(topic, pool->fd(), slots, page_);
    Received r = c.next();
    EXPECT_TRUE(r.is(M::POOL_REGISTERED)) << r;
    return r.pool;
  }

  const std::uint64_t page_ = 4096;
  std::unique_ptr<testing::InProcessBroker> broker_;
};

// §4 Producing: a Publish that succeeds gets no reply; a refusal names the frame.
TEST_F(ProtocolFlowTest, Producing_SuccessIsSilentAndARefusalNamesTheFrame) {
  RawClient p = producer("cam");
  auto good = sealed_memfd(64);
  p.publish_fd("cam", 1, good.fd(), 64);
  auto small = sealed_memfd(16);
  p.publish_fd("cam", 2, small.fd(), 64);  // the layout needs 64 bytes
  Received r = p.next();
  EXPECT_TRUE(r.is_error(Code::BUFFER_TOO_SMALL)) << r;  // frame 1 got no answer before it
  EXPECT_EQ(r.topic, "cam");
  EXPECT_EQ(r.sequence, 2U);
}

// §4 Producing: Publish needs an Advertise of this client; another's topic is topicTaken.
TEST_F(ProtocolFlowTest, Producing_OnlyTheAdvertisingClientPublishes) {
  RawClient p = producer("cam");
  RawClient other = RawClient::greeted(broker_->path());
  auto buffer = sealed_memfd(64);
  other.publish_fd("cam", 1, buffer.fd(), 64);
  Received r = other.next();
  EXPECT_TRUE(r.is_error(Code::UNKNOWN_TOPIC)) << r;
  other.advertise("cam");
  r = other.next();
  EXPECT_TRUE(r.is_error(Code::TOPIC_TAKEN)) << r;
}

// §4 Producing: advertising again is idempotent; changing kind or guarantee is refused.
TEST_F(ProtocolFlowTest, Producing_AdvertisingAgain) {
  RawClient p = producer("cam");
  p.advertise("cam");
  EXPECT_TRUE(p.next().is(M::ADVERTISED));
  p.advertise("cam", proto::LayoutKind::IMAGE);
  Received r = p.next();
  EXPECT_TRUE(r.is_error(Code::ALREADY_ADVERTISED)) << r;
  p.advertise("cam", proto::LayoutKind::BLOB, proto::Guarantee::POOL);
  EXPECT_TRUE(p.next().is_error(Code::ALREADY_ADVERTISED));
}

// §4 Producing: Unadvertise ends the stream for subscribers and frees the topic.
TEST_F(ProtocolFlowTest, Producing_UnadvertiseEndsTheStreamAndFreesTheTopic) {
  RawClient p = producer("cam");
  RawClient c = consumer("cam");
  p.unadvertise("cam");
  Received r = p.next();
  ASSERT_TRUE(r.is(M::UNADVERTISED)) << r;
  EXPECT_EQ(r.topic, "cam");
  r = c.next();
  EXPECT_TRUE(r.is(M::END_OF_STREAM)) << r;
  EXPECT_NE(r.message.find("stopped producing"), std::string::npos) << r.message;
  RawClient next = producer("cam");  // the topic is free for anyone
  auto buffer = sealed_memfd(64);
  next.publish_fd("cam", 1, buffer.fd(), 64);
  r = c.next();
  EXPECT_TRUE(r.is(M::DELIVER)) << r;  // the subscription outlived the producer
  p.unadvertise("cam");
  EXPECT_TRUE(p.next().is_error(Code::UNKNOWN_TOPIC));
}

// §4 Producing: a producer may have publishWindow fd frames unacknowledged; the broker credits
// them in halves as it reads them. Pool frames take no credit.
TEST_F(ProtocolFlowTest, Producing_CreditCoversTheFramesTheBrokerRead) {
  RawClient p(broker_->path());
  Received welcome = p.next_any();
  ASSERT_TRUE(welcome.is(M::WELCOME)) << welcome;
  EXPECT_EQ(welcome.window, 8U);
  p.advertise("cam");
  ASSERT_TRUE(p.next_any().is(M::ADVERTISED));
  auto buffer = sealed_memfd(64);
  for (std::uint64_t s = 1; s <= 4; ++s) p.publish_fd("cam", s, buffer.fd(), 64);
  Received credit = p.next_any();
  ASSERT_TRUE(credit.is(M::CREDIT)) << credit;
  EXPECT_EQ(credit.credit, 4U);
  p.publish_fd("cam", 5, buffer.fd(), 64);  // refused, and still read: it counts
  p.publish_fd("cam", 5, buffer.fd(), 64);
  p.publish_fd("cam", 6, buffer.fd(), 64);
  p.publish_fd("cam", 7, buffer.fd(), 64);
  EXPECT_TRUE(p.next_any().is_error(Code::BAD_SEQUENCE));
  credit = p.next_any();
  ASSERT_TRUE(credit.is(M::CREDIT)) << credit;
  EXPECT_EQ(credit.credit, 4U);
}

// §5 Sequences: chosen by the producer, from 1, strictly increasing; a new producer (or the
// same after Unadvertise) starts afresh.
TEST_F(ProtocolFlowTest, Sequences_ZeroDuplicatesAndDecreasesAreRefused) {
  RawClient p = producer("cam");
  auto buffer = sealed_memfd(64);
  p.publish_fd("cam", 0, buffer.fd(), 64);
  EXPECT_TRUE(p.next().is_error(Code::BAD_SEQUENCE));
  p.publish_fd("cam", 10, buffer.fd(), 64);
  p.publish_fd("cam", 10, buffer.fd(), 64);
  Received r = p.next();
  EXPECT_TRUE(r.is_error(Code::BAD_SEQUENCE)) << r;
  EXPECT_EQ(r.sequence, 10U);
  p.publish_fd("cam", 9, buffer.fd(), 64);
  EXPECT_TRUE(p.next().is_error(Code::BAD_SEQUENCE));
  p.publish_fd("cam", 11, buffer.fd(), 64);  // gaps are fine
  p.unadvertise("cam");
  ASSERT_TRUE(p.next().is(M::UNADVERTISED));
  p.advertise("cam");
  ASSERT_TRUE(p.next().is(M::ADVERTISED));
  p.publish_fd("cam", 1, buffer.fd(), 64);
  p.introspect();
  EXPECT_TRUE(p.next().is(M::BROKER_STATE));  // no refusal came first
}

// §6 Consuming: subscribing before the topic exists; subscribing twice.
TEST_F(ProtocolFlowTest, Consuming_SubscribeBeforeTheProducerAndTwice) {
  RawClient c = consumer("later");
  c.subscribe("later");
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::ALREADY_SUBSCRIBED)) << r;
  RawClient p = producer("later");
  auto buffer = sealed_memfd(64);
  p.publish_fd("later", 1, buffer.fd(), 64);
  r = c.next();
  ASSERT_TRUE(r.is(M::DELIVER)) << r;
  EXPECT_EQ(r.fds.size(), 1U);
}

// §6 Consuming: every Deliver is released by (topic, sequence); the consumer holds at most its
// depth, so one that never releases gets nothing more.
TEST_F(ProtocolFlowTest, Consuming_ReleasesOpenTheWindow) {
  RawClient c = consumer("cam", 1);
  RawClient p = producer("cam");
  auto buffer = sealed_memfd(64);
  p.publish_fd("cam", 1, buffer.fd(), 64);
  p.publish_fd("cam", 2, buffer.fd(), 64);
  Received first = c.next();
  ASSERT_TRUE(first.is(M::DELIVER)) << first;
  c.introspect();  // frame 2 waits in the broker until frame 1 is released
  EXPECT_TRUE(c.next().is(M::BROKER_STATE));
  c.release("cam", 1);
  Received second = c.next();
  ASSERT_TRUE(second.is(M::DELIVER)) << second;
  EXPECT_EQ(second.sequence, 2U);
}

// §6 Prefetch and Read (version 4): with a prefetch of 1, one Deliver is out at a time; the
// rest wait in the broker, which keeps the newest queueDepth; a Read or a Release lets the
// next one go, the oldest of the newest.
TEST_F(ProtocolFlowTest, Consuming_APrefetchKeepsTheRestInTheBrokerWhereTheNewestAreKept) {
  RawClient c = RawClient::greeted(broker_->path(), "consumer");
  c.subscribe("cam", 3, proto::Backpressure::DROP_OLDEST, 1);
  ASSERT_TRUE(c.next().is(M::SUBSCRIBED));
  RawClient p = producer("cam");
  for (std::uint64_t s = 1; s <= 6; ++s) {
    auto buffer = sealed_memfd(64);
    p.publish_fd("cam", s, buffer.fd(), 64);
  }
  Received r = c.next();
  ASSERT_TRUE(r.is(M::DELIVER)) << r;
  EXPECT_EQ(r.sequence, 1U);
  EXPECT_TRUE(c.next(300).timed_out) << "a second Deliver while the first is unread";
  c.read("cam", 1);
  r = c.next();
  ASSERT_TRUE(r.is(M::DELIVER)) << r;
  EXPECT_EQ(r.sequence, 4U) << "not the oldest of the newest 3";
  EXPECT_EQ(r.dropped, 2U);
  EXPECT_TRUE(c.next(300).timed_out);
  c.release("cam", 1);
  EXPECT_TRUE(c.next(300).timed_out) << "frame 4 is neither read nor released";
  c.release("cam", 4);  // a released frame was read
  r = c.next();
  ASSERT_TRUE(r.is(M::DELIVER)) << r;
  EXPECT_EQ(r.sequence, 5U);
}

// §6 Prefetch and Read: a count beyond what was delivered, or on a topic the client does not
// subscribe to, is refused and named; a version-3 connection may not send Read at all.
TEST_F(ProtocolFlowTest, Consuming_BadReadsAreNamed) {
  RawClient c = RawClient::greeted(broker_->path(), "consumer");
  c.subscribe("cam", 2, proto::Backpressure::DROP_OLDEST, 1);
  ASSERT_TRUE(c.next().is(M::SUBSCRIBED));
  c.read("cam", 1);
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::MALFORMED_MESSAGE)) << r;
  EXPECT_NE(r.message.find("Read of 1 frames of 'cam', but 0 were delivered"), std::string::npos)
      << r.message;
  c.read("other", 0);
  EXPECT_TRUE(c.next().is_error(Code::NOT_SUBSCRIBED));
  RawClient old(broker_->path(), 3);
  r = old.next();
  ASSERT_TRUE(r.is(M::WELCOME)) << r;
  EXPECT_EQ(r.version, 3U) << "the broker still speaks version 3";
  old.read("cam", 0);
  r = old.next();
  EXPECT_TRUE(r.is_error(Code::UNEXPECTED_MESSAGE)) << r;
  EXPECT_NE(r.message.find("protocol version 3"), std::string::npos) << r.message;
}

// §6 EndOfStream.dropped (version 4): the subscription's drops up to the end.
TEST_F(ProtocolFlowTest, Consuming_TheEndOfStreamCountsEveryDrop) {
  RawClient c = RawClient::greeted(broker_->path(), "consumer");
  c.subscribe("cam", 1, proto::Backpressure::DROP_OLDEST, 1);
  ASSERT_TRUE(c.next().is(M::SUBSCRIBED));
  RawClient p = producer("cam");
  for (std::uint64_t s = 1; s <= 5; ++s) {
    auto buffer = sealed_memfd(64);
    p.publish_fd("cam", s, buffer.fd(), 64);
  }
  p.unadvertise("cam");
  ASSERT_TRUE(p.next().is(M::UNADVERTISED));
  Received r = c.next();
  ASSERT_TRUE(r.is(M::DELIVER)) << r;
  EXPECT_EQ(r.sequence, 1U);
  c.release("cam", 1);  // its window of 1 has room, and frame 1 counts as read
  r = c.next();
  ASSERT_TRUE(r.is(M::DELIVER)) << r;
  EXPECT_EQ(r.sequence, 5U);
  EXPECT_EQ(r.dropped, 3U);
  r = c.next();
  ASSERT_TRUE(r.is(M::END_OF_STREAM)) << r;
  EXPECT_EQ(r.dropped, 3U);
}
// §6 Consuming: releasing what is not held, or where not subscribed, has its own code.
TEST_F(ProtocolFlowTest, Consuming_BadReleasesAreNamed) {
  RawClient c = consumer("cam");
  c.release("cam", 5);
  EXPECT_TRUE(c.next().is_error(Code::NOT_HELD));
  c.release("elsewhere", 5);
  EXPECT_TRUE(c.next().is_error(Code::NOT_SUBSCRIBED));
  c.unsubscribe("elsewhere");
  EXPECT_TRUE(c.next().is_error(Code::NOT_SUBSCRIBED));
}

// §6 Consuming: Unsubscribe stops deliveries; frames held stay held and may still be released.
TEST_F(ProtocolFlowTest, Consuming_UnsubscribeKeepsHeldFramesUntilReleased) {
  RawClient p = producer("pool", proto::Guarantee::POOL);
  const std::uint32_t pool = register_pool(p, "pool", 2);
  RawClient c = consumer("pool");
  p.publish_slot("pool", 1, pool, 0, 64);
  ASSERT_TRUE(c.next().is(M::POOL_ATTACH));
  ASSERT_TRUE(c.next().is(M::DELIVER));
  c.unsubscribe("pool");
  Received r = c.next();
  ASSERT_TRUE(r.is(M::UNSUBSCRIBED)) << r;
  p.publish_slot("pool", 2, pool, 1, 64);  // not delivered: slot 1 is free at once
  r = p.next();
  EXPECT_TRUE(r.is(M::SLOT_FREE) && r.slot == 1) << r;
  c.release("pool", 1);  // still held after Unsubscribed
  r = p.next();
  EXPECT_TRUE(r.is(M::SLOT_FREE) && r.slot == 0) << r;
  c.release("pool", 1);
  EXPECT_TRUE(c.next().is_error(Code::NOT_SUBSCRIBED));
  // Subscribing again: the pool's fd comes again before its first frame.
  c.subscribe("pool");
  ASSERT_TRUE(c.next().is(M::SUBSCRIBED));
  p.publish_slot("pool", 3, pool, 0, 64);
  r = c.next();
  EXPECT_TRUE(r.is(M::POOL_ATTACH)) << r;
  EXPECT_EQ(r.fds.size(), 1U);
  EXPECT_TRUE(c.next().is(M::DELIVER));
}

// §7 Pools: registration needs the pool guarantee; frames name a pool of this client and a
// slot that SlotFree has given back.
TEST_F(ProtocolFlowTest, Pools_EachMistakeHasItsCode) {
  RawClient sealed = producer("sealed");
  {
    auto buffer = WritableBuffer::create("pool", page_);
    auto pool = std::move(*buffer).into_pool();
    sealed.register_pool("sealed", pool->fd(), 1, page_);
    EXPECT_TRUE(sealed.next().is_error(Code::GUARANTEE_MISMATCH));
  }
  RawClient p = producer("pool", proto::Guarantee::POOL);
  const std::uint32_t pool = register_pool(p, "pool", 2);
  RawClient c = consumer("pool");
  p.publish_slot("pool", 1, pool + 100, 0, 64);
  EXPECT_TRUE(p.next_not_slot_free().is_error(Code::UNKNOWN_POOL));
  p.publish_slot("pool", 2, pool, 2, 64);
  EXPECT_TRUE(p.next_not_slot_free().is_error(Code::UNKNOWN_POOL));
  p.publish_slot("pool", 3, pool, 0, 64);
  p.publish_slot("pool", 4, pool, 0, 64);  // slot 0 is held by the consumer
  Received r = p.next_not_slot_free();
  EXPECT_TRUE(r.is_error(Code::SLOT_BUSY)) << r;
  EXPECT_EQ(r.sequence, 4U);
  auto buffer = sealed_memfd(64);
  p.send(
      [&](M::Builder m) {
        auto f = m.initPublish();
        f.setTopic("pool");
        auto frame = f.initFrame();
        frame.setSequence(6);
        frame.setPool(pool);
        layout_to_proto(blob_layout(64), frame.initLayout());
      },
      {buffer.fd()});
  EXPECT_TRUE(p.next_not_slot_free().is_error(Code::WRONG_FD_COUNT));
}

}  // namespace
}  // namespace shmfd
