// docs/PROTOCOL.md's numbers and formulas: queue depths and drops (§6), pool sizes (§7), seal
// values (§9), layout formulas (§10), limits (§12) and introspection (§13). Each test is
// named after its section.
#include <fcntl.h>

#include <gtest/gtest.h>

#include "shmfd/guarantee.hpp"
#include "shmfd/layout.hpp"
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

class ProtocolRulesTest : public testing::FdLeakTest {
 protected:
  void start(broker::Options options = {}) {
    broker_ = std::make_unique<testing::InProcessBroker>(options);
  }
  void TearDown() override {
    broker_.reset();
    FdLeakTest::TearDown();
  }
  std::unique_ptr<testing::InProcessBroker> broker_;
};

// §6: depth 0 asks for the default (4); a larger depth is capped at --max-queue-depth (32).
TEST_F(ProtocolRulesTest, Consuming_QueueDepthDefaultAndCap) {
  start();
  RawClient c = RawClient::greeted(broker_->path());
  c.subscribe("a", 0);
  Received r = c.next();
  ASSERT_TRUE(r.is(M::SUBSCRIBED));
  EXPECT_EQ(r.depth, 4U);
  c.subscribe("b", 1000);
  r = c.next();
  ASSERT_TRUE(r.is(M::SUBSCRIBED));
  EXPECT_EQ(r.depth, 32U);
}

// §6: drop-oldest drops the oldest waiting frame, and Deliver.dropped counts the drops; back to
// back ends of stream are merged into one.
TEST_F(ProtocolRulesTest, Consuming_DropsAreCountedAndEndsOfStreamMerged) {
  start();
  RawClient c = RawClient::greeted(broker_->path());
  c.subscribe("cam", 1);
  ASSERT_TRUE(c.next().is(M::SUBSCRIBED));
  RawClient p = RawClient::greeted(broker_->path());
  p.advertise("cam");
  ASSERT_TRUE(p.next().is(M::ADVERTISED));
  auto buffer = sealed_memfd(64);
  for (std::uint64_t s = 1; s <= 4; ++s) p.publish_fd("cam", s, buffer.fd(), 64);
  for (int round = 0; round < 3; ++round) {  // three ends of stream while 1 is held
    p.unadvertise("cam");
    ASSERT_TRUE(p.next().is(M::UNADVERTISED));
    p.advertise("cam");
    ASSERT_TRUE(p.next().is(M::ADVERTISED));
  }
  Received first = c.next();
  ASSERT_TRUE(first.is(M::DELIVER)) << first;
  EXPECT_EQ(first.sequence, 1U);
  c.release("cam", 1);
  // Frames 2 and 3 were dropped for 4 (depth 1), then the ends of stream merged into one.
  Received last = c.next();
  ASSERT_TRUE(last.is(M::DELIVER)) << last;
  EXPECT_EQ(last.sequence, 4U);
  EXPECT_EQ(last.dropped, 2U);
  c.release("cam", 4);
  EXPECT_TRUE(c.next().is(M::END_OF_STREAM));
  c.introspect();
  EXPECT_TRUE(c.next().is(M::BROKER_STATE));  // no second EndOfStream before the answer
}

// §7: a slot size must be a multiple of the memfd's page size, and the pool must fit the memfd.
TEST_F(ProtocolRulesTest, Pools_SlotSizesArePagesAndThePoolFitsTheMemfd) {
  start();
  RawClient p = RawClient::greeted(broker_->path());
  p.advertise("pool", proto::LayoutKind::BLOB, proto::Guarantee::POOL);
  ASSERT_TRUE(p.next().is(M::ADVERTISED));
  auto buffer = WritableBuffer::create("pool", 2 * 4096);
  auto pool = std::move(*buffer).into_pool();
  p.register_pool("pool", pool->fd(), 2, 4000);
  EXPECT_TRUE(p.next().is_error(Code::INVALID_LAYOUT));
  p.register_pool("pool", pool->fd(), 3, 4096);
  EXPECT_TRUE(p.next().is_error(Code::BUFFER_TOO_SMALL));
  p.register_pool("pool", pool->fd(), 0, 4096);
  EXPECT_TRUE(p.next().is_error(Code::LIMIT_EXCEEDED));
  p.register_pool("pool", pool->fd(), 2, 4096);
  Received r = p.next();
  ASSERT_TRUE(r.is(M::POOL_REGISTERED)) << r;
  EXPECT_NE(r.pool, 0U);
}

// §9: the seal values and sets the spec gives as numbers.
TEST(ProtocolSealsTest, Seals_TheNumbersInTheSpec) {
  EXPECT_EQ(F_SEAL_SEAL, 0x1);
  EXPECT_EQ(F_SEAL_SHRINK, 0x2);
  EXPECT_EQ(F_SEAL_GROW, 0x4);
  EXPECT_EQ(F_SEAL_WRITE, 0x8);
  EXPECT_EQ(F_SEAL_FUTURE_WRITE, 0x10);
  EXPECT_EQ(F_ADD_SEALS, 1033);
  EXPECT_EQ(F_GET_SEALS, 1034);
  EXPECT_EQ(required_seals(Guarantee::sealed), 0xfU);
  EXPECT_EQ(required_seals(Guarantee::pool), 0x17U);
  EXPECT_EQ(missing_seals(Guarantee::pool, 0xfU), 0U);  // WRITE stands in for FUTURE_WRITE
}

// §10: the layout formulas, computed by hand from the spec.
TEST(ProtocolLayoutTest, Layouts_TheFormulasInTheSpec) {
  // I420 5x3: Y rows of 5 bytes x 3; U and V ceil(5/2) = 3 bytes x ceil(3/2) = 2 rows.
  ImageLayout i420{PixelFormat::i420, 5, 3, 3, {}};
  i420.planes[0] = {0, 5, 15};
  i420.planes[1] = {15, 3, 6};
  i420.planes[2] = {21, 3, 6};
  EXPECT_EQ(*layout_extent(i420), 27U);
  i420.planes[2].size = 5;  // < stride x (rows - 1) + row = 3 + 3
  EXPECT_FALSE(layout_extent(i420));
  i420.planes[2] = {20, 3, 6};  // overlaps U (15..21)
  EXPECT_FALSE(layout_extent(i420));
  // The last row needs no padding: stride 8, row 5, 3 rows: 8 x 2 + 5 = 21.
  ImageLayout gray{PixelFormat::gray8, 5, 3, 1, {}};
  gray.planes[0] = {0, 8, 21};
  EXPECT_EQ(*layout_extent(gray), 21U);
  // YUYV: 4 bytes per 2 pixels, even widths only.
  ImageLayout yuyv{PixelFormat::yuyv, 3, 1, 1, {}};
  yuyv.planes[0] = {0, 8, 8};
  EXPECT_FALSE(layout_extent(yuyv));
  // Audio planar s16, 3 channels of 100 frames, plane stride 256, offset 8:
  // 8 + 256 x 2 + 200 = 720; interleaved: 8 + 200 x 3 = 608.
  AudioLayout audio{SampleFormat::s16, 48000, 3, 100, true, 8, 256};
  EXPECT_EQ(*layout_extent(audio), 720U);
  audio.planar = false;
  EXPECT_EQ(*layout_extent(audio), 608U);
  // Tensor f32 2x3, strides 16 and 4, offset 4: 4 + (1 x 16 + 2 x 4) + 4 = 32; an empty one is
  // its offset; a broadcast stride of 0 is allowed.
  TensorLayout tensor;
  tensor.dtype = DType::f32;
  tensor.offset = 4;
  tensor.rank = 2;
  tensor.shape = {2, 3};
  tensor.strides = {16, 4};
  EXPECT_EQ(*layout_extent(tensor), 32U);
  tensor.strides = {0, 4};
  EXPECT_EQ(*layout_extent(tensor), 16U);
  tensor.shape = {0, 3};
  EXPECT_EQ(*layout_extent(tensor), 4U);
  // Blob: offset + size, overflow refused.
  EXPECT_EQ(*layout_extent(BlobLayout{10, 20}), 30U);
  EXPECT_FALSE(layout_extent(BlobLayout{~std::uint64_t{0}, 2}));
}

// §10: a frame's layout must be of the topic's kind and fit its buffer.
TEST_F(ProtocolRulesTest, Layouts_KindAndExtentAreChecked) {
  start();
  RawClient p = RawClient::greeted(broker_->path());
  p.advertise("img", proto::LayoutKind::IMAGE);
  ASSERT_TRUE(p.next().is(M::ADVERTISED));
  auto buffer = sealed_memfd(64);
  p.publish_fd("img", 1, buffer.fd(), 64);  // a blob layout on an image topic
  EXPECT_TRUE(p.next().is_error(Code::INVALID_LAYOUT));
}

// §11 and §12: strikes past --max-errors end in a last limitExceeded and a disconnect; a
// taken topic is no strike.
TEST_F(ProtocolRulesTest, Errors_StrikesEndInADisconnectButATakenTopicIsNone) {
  broker::Options options;
  options.limits.max_errors_per_client = 2;
  start(options);
  RawClient owner = RawClient::greeted(broker_->path());
  owner.advertise("taken");
  ASSERT_TRUE(owner.next().is(M::ADVERTISED));
  RawClient c = RawClient::greeted(broker_->path());
  for (int i = 0; i < 5; ++i) {
    c.advertise("taken");
    EXPECT_TRUE(c.next().is_error(Code::TOPIC_TAKEN));
  }
  for (int i = 0; i < 3; ++i) c.release("none", 1);
  EXPECT_TRUE(c.next().is_error(Code::NOT_SUBSCRIBED));
  EXPECT_TRUE(c.next().is_error(Code::NOT_SUBSCRIBED));
  EXPECT_TRUE(c.next().is_error(Code::NOT_SUBSCRIBED));
  Received last = c.next();
  EXPECT_TRUE(last.is_error(Code::LIMIT_EXCEEDED)) << last;
  EXPECT_NE(last.message.find("disconnecting"), std::string::npos);
  EXPECT_TRUE(c.next().closed);
}

// §12: a subscription past --max-subscriptions is refused, naming the flag.
TEST_F(ProtocolRulesTest, Limits_ARefusalNamesItsFlag) {
  broker::Options options;
  options.limits.max_subscriptions_per_client = 1;
  start(options);
  RawClient c = RawClient::greeted(broker_->path());
  c.subscribe("one");
  ASSERT_TRUE(c.next().is(M::SUBSCRIBED));
  c.subscribe("two");
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::LIMIT_EXCEEDED)) << r;
  EXPECT_NE(r.message.find("--max-subscriptions"), std::string::npos) << r.message;
}

// §13: Introspect is answered with BrokerState, which lists this client and its topics.
TEST_F(ProtocolRulesTest, Introspection_BrokerStateAnswersIntrospect) {
  start();
  RawClient c = RawClient::greeted(broker_->path(), "looker");
  c.subscribe("seen");
  ASSERT_TRUE(c.next().is(M::SUBSCRIBED));
  c.introspect();
  EXPECT_TRUE(c.next().is(M::BROKER_STATE));
}

}  // namespace
}  // namespace shmfd
