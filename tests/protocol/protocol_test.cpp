// The wire protocol as docs/PROTOCOL.md specifies it, spoken by hand (support/raw_client.hpp):
// each test exercises rules of one section of the spec and is named after it (Framing_...,
// Handshake_..., TopicNames_...). Producing, consuming and pools are in protocol_flow_test.cpp.
#include <capnp/serialize.h>
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

class ProtocolTest : public testing::FdLeakTest {
 protected:
  void SetUp() override {
    FdLeakTest::SetUp();
    broker::Options options;
    options.limits.max_message_bytes = 4096;
    broker_ = std::make_unique<testing::InProcessBroker>(options);
  }
  void TearDown() override {
    broker_.reset();
    FdLeakTest::TearDown();
  }
  // The client is still served: a request gets its answer.
  static void expect_served(RawClient& c) {
    c.advertise("still/served");
    Received r = c.next();
    EXPECT_TRUE(r.is(M::ADVERTISED)) << r;
  }

  std::unique_ptr<testing::InProcessBroker> broker_;
};

// §1 Framing: standard framing (segment table) is required; `capnp encode --flat` output, which
// has none, is refused as malformed.
TEST_F(ProtocolTest, Framing_AMessageWithoutASegmentTableIsRefused) {
  RawClient c = RawClient::greeted(broker_->path());
  capnp::MallocMessageBuilder m;
  m.initRoot<M>().initAdvertise().setTopic("flat");
  auto segments = m.getSegmentsForOutput();
  ASSERT_EQ(segments.size(), 1U);
  const auto words = segments[0];  // the bare segment: what `capnp encode --flat` prints
  ASSERT_TRUE(c.send_bytes(
      {reinterpret_cast<const std::byte*>(words.begin()), words.size() * sizeof(capnp::word)}));
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::MALFORMED_MESSAGE)) << r;
  expect_served(c);
}

// §1 Framing: a message may have several segments.
TEST_F(ProtocolTest, Framing_AMessageOfSeveralSegmentsIsAccepted) {
  RawClient c = RawClient::greeted(broker_->path());
  // A first segment of 2 words forces the rest of the message into further segments.
  capnp::MallocMessageBuilder m(2, capnp::AllocationStrategy::FIXED_SIZE);
  auto a = m.initRoot<M>().initAdvertise();
  a.setTopic("several/segments");
  ASSERT_GT(m.getSegmentsForOutput().size(), 1U);
  const auto words = capnp::messageToFlatArray(m);
  ASSERT_TRUE(c.send_bytes(std::as_bytes(std::span(words.begin(), words.size()))));
  Received r = c.next();
  EXPECT_TRUE(r.is(M::ADVERTISED)) << r;
  EXPECT_EQ(r.topic, "several/segments");
}

// §1 Framing: one datagram, one whole message; trailing bytes are refused.
TEST_F(ProtocolTest, Framing_BytesAfterTheMessageAreRefused) {
  RawClient c = RawClient::greeted(broker_->path());
  capnp::MallocMessageBuilder m;
  m.initRoot<M>().initAdvertise().setTopic("trailing");
  auto words = capnp::messageToFlatArray(m);
  std::vector<capnp::word> longer(words.begin(), words.end());
  longer.push_back({});
  ASSERT_TRUE(c.send_bytes(
      {reinterpret_cast<const std::byte*>(longer.data()), longer.size() * sizeof(capnp::word)}));
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::MALFORMED_MESSAGE)) << r;
  expect_served(c);
}

// §1 Framing and §12 Limits: a datagram over Welcome.maxMessageBytes is refused unread.
TEST_F(ProtocolTest, Framing_ADatagramOverTheSizeLimitIsRefused) {
  RawClient c(broker_->path());
  Received welcome = c.next();
  ASSERT_TRUE(welcome.is(M::WELCOME));
  std::vector<std::byte> big(welcome.max_message_bytes + 8);
  ASSERT_TRUE(c.send_bytes(big));
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::LIMIT_EXCEEDED)) << r;
  expect_served(c);
}

// §1 Framing: each message carries exactly the fds it refers to; any other count is
// wrongFdCount, and every fd that came is closed (the fixture counts them).
TEST_F(ProtocolTest, Framing_EachMessageCarriesExactlyItsFds) {
  RawClient c = RawClient::greeted(broker_->path());
  c.advertise("cam");
  ASSERT_TRUE(c.next().is(M::ADVERTISED));
  auto a = testing::sealed_memfd(64);
  auto b = testing::sealed_memfd(64);
  c.publish_fd("cam", 1, a.fd(), 64, {a.fd(), b.fd()});  // two fds
  EXPECT_TRUE(c.next().is_error(Code::WRONG_FD_COUNT));
  c.send([](M::Builder m) {  // no fd
    auto p = m.initPublish();
    p.setTopic("cam");
    p.initFrame().setSequence(2);
    layout_to_proto(blob_layout(64), p.getFrame().initLayout());
  });
  EXPECT_TRUE(c.next().is_error(Code::WRONG_FD_COUNT));
  c.send(
      [](M::Builder m) {  // an index past the fds that came
        auto p = m.initPublish();
        p.setTopic("cam");
        p.initFrame().setFd(1);
        p.getFrame().setSequence(3);
        layout_to_proto(blob_layout(64), p.getFrame().initLayout());
      },
      {a.fd()});
  EXPECT_TRUE(c.next().is_error(Code::WRONG_FD_COUNT));
  c.send([](M::Builder m) { m.initSubscribe().setTopic("cam"); }, {a.fd()});
  EXPECT_TRUE(c.next().is_error(Code::WRONG_FD_COUNT));
  expect_served(c);
}

// §1 Framing: unknown enum values never alias a known one.
TEST_F(ProtocolTest, Framing_UnknownEnumValuesAreRefused) {
  RawClient c = RawClient::greeted(broker_->path());
  c.advertise("cam", static_cast<proto::LayoutKind>(9));
  EXPECT_TRUE(c.next().is_error(Code::MALFORMED_MESSAGE));
  c.advertise("cam", proto::LayoutKind::BLOB, static_cast<proto::Guarantee>(7));
  EXPECT_TRUE(c.next().is_error(Code::MALFORMED_MESSAGE));
  c.subscribe("cam", 0, static_cast<proto::Backpressure>(5));
  EXPECT_TRUE(c.next().is_error(Code::MALFORMED_MESSAGE));
  expect_served(c);
}

// §2 Handshake: Hello first, or the connection is refused and closed.
TEST_F(ProtocolTest, Handshake_TheFirstMessageMustBeHello) {
  RawClient c(broker_->path(), /*version=*/0);
  c.advertise("early");
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::UNEXPECTED_MESSAGE)) << r;
  EXPECT_NE(r.message.find("first message must be Hello"), std::string::npos) << r.message;
  EXPECT_TRUE(c.next().closed);
}

// §2 Handshake: a second Hello is refused; the connection stays.
TEST_F(ProtocolTest, Handshake_HelloTwiceIsRefused) {
  RawClient c = RawClient::greeted(broker_->path());
  c.send([](M::Builder m) { m.initHello().setVersion(kProtocolVersion); });
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::UNEXPECTED_MESSAGE)) << r;
  expect_served(c);
}

// §2 Versions: Welcome names the version in use (the lower of the two) and the limits.
TEST_F(ProtocolTest, Handshake_ANewerClientIsAnsweredWithTheBrokersVersion) {
  RawClient c(broker_->path(), kProtocolVersion + 5);
  Received r = c.next();
  ASSERT_TRUE(r.is(M::WELCOME)) << r;
  EXPECT_EQ(r.version, kProtocolVersion);
  EXPECT_EQ(r.max_message_bytes, 4096U);
  EXPECT_EQ(r.max_fds, 1U);
  expect_served(c);
}

// §2 Versions: below the broker's oldest version: protocolVersion naming the range, then close.
TEST_F(ProtocolTest, Handshake_AnOlderClientIsToldTheRangeAndDisconnected) {
  RawClient c(broker_->path(), kMinProtocolVersion - 1);
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::PROTOCOL_VERSION)) << r;
  EXPECT_NE(r.message.find(std::to_string(kMinProtocolVersion) + " to " +
                           std::to_string(kProtocolVersion)),
            std::string::npos)
      << r.message;
  EXPECT_TRUE(c.next().closed);
}

// §2 Handshake: a connection that says no Hello in time is closed.
TEST(ProtocolDeadlineTest, Handshake_NoHelloInTimeClosesTheConnection) {
  broker::Options options;
  options.limits.hello_timeout_ms = 50;
  testing::InProcessBroker broker(options);
  RawClient c(broker.path(), /*version=*/0);
  EXPECT_TRUE(c.next().closed);
}

// §2: messages only the broker sends are refused from a client.
TEST_F(ProtocolTest, Handshake_BrokerMessagesFromAClientAreRefused) {
  RawClient c = RawClient::greeted(broker_->path());
  c.send([](M::Builder m) { m.initSlotFree().setPool(1); });
  Received r = c.next();
  EXPECT_TRUE(r.is_error(Code::UNEXPECTED_MESSAGE)) << r;
  expect_served(c);
}

// §3 Topic names: every Text is read with its full length; a NUL byte is refused, not cut at.
TEST_F(ProtocolTest, TopicNames_ANulByteIsRefusedNotCutAt) {
  RawClient c = RawClient::greeted(broker_->path());
  const std::string name("tp/nul\0hidden", 13);
  c.advertise(name);
  Received r = c.next();
  ASSERT_TRUE(r.is_error(Code::INVALID_TOPIC_NAME)) << r;
  EXPECT_NE(r.message.find("0x00 at offset 6"), std::string::npos) << r.message;
  // Nothing was advertised under the prefix: another client may take "tp/nul".
  RawClient other = RawClient::greeted(broker_->path());
  other.advertise("tp/nul");
  EXPECT_TRUE(other.next().is(M::ADVERTISED));
  c.subscribe(name);
  EXPECT_TRUE(c.next().is_error(Code::INVALID_TOPIC_NAME));
}

// §3 Topic names: 1 to 255 bytes of A-Z a-z 0-9 . _ - / : and nothing else.
TEST_F(ProtocolTest, TopicNames_OnlyTheAllowedBytesAndLengthsPass) {
  RawClient c = RawClient::greeted(broker_->path());
  const std::vector<std::string> bad{
      "", std::string(256, 'a'), "a b", "cam*", "cam?", "c[1]", "x\\y", "é", "a\tb", "a,b"};
  for (const std::string& name : bad) {
    c.advertise(name);
    Received r = c.next();
    EXPECT_TRUE(r.is_error(Code::INVALID_TOPIC_NAME)) << "'" << name << "': " << r;
  }
  const std::vector<std::string> good{std::string(255, 'z'), "a/../b", "/abs/", "Cam_0-x.y:z"};
  for (const std::string& name : good) {
    c.advertise(name);
    Received r = c.next();
    EXPECT_TRUE(r.is(M::ADVERTISED)) << "'" << name << "': " << r;
    EXPECT_EQ(r.topic, name);
  }
}

// §3 Topic names: '/' and ".." have no meaning; names are compared byte for byte.
TEST_F(ProtocolTest, TopicNames_DotDotAndSlashesAreJustBytes) {
  RawClient producer = RawClient::greeted(broker_->path());
  producer.advertise("a/../b");
  ASSERT_TRUE(producer.next().is(M::ADVERTISED));
  RawClient other = RawClient::greeted(broker_->path());
  other.advertise("b");  // not the same topic as "a/../b"
  EXPECT_TRUE(other.next().is(M::ADVERTISED));
  other.advertise("a//../b");
  EXPECT_TRUE(other.next().is(M::ADVERTISED));
}

}  // namespace
}  // namespace shmfd
