// Every bad request gets an Error naming what was wrong, its fds are closed, and the client
// stays connected (until it keeps misbehaving past the limit).
#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "shmfd/connection.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_fixture.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/frames.hpp"
#include "support/hostile_messages.hpp"

namespace shmfd {
namespace {

using Code = proto::ErrorCode;

struct Refusal {
  Code code;
  std::string message;
  std::string topic;
  std::uint64_t sequence;
};

class BrokerRefusalTest : public testing::BrokerFixture {
 protected:
  broker::Options options() override {
    broker::Options o;
    o.limits.max_message_bytes = 4096;
    o.limits.max_errors_per_client = 100;
    return o;
  }
  void SetUp() override {
    BrokerFixture::SetUp();
    auto c = Connection::open(socket(), "raw");
    ASSERT_TRUE(c) << c.error().message();
    conn_ = std::make_unique<Connection>(std::move(*c));
    advertise("cam", LayoutKind::blob, Guarantee::sealed);
  }
  void TearDown() override {
    conn_.reset();
    BrokerFixture::TearDown();
  }

  void advertise(const std::string& topic, LayoutKind kind, Guarantee level) {
    capnp::MallocMessageBuilder m;
    auto a = m.initRoot<proto::Message>().initAdvertise();
    a.setTopic(topic);
    a.setKind(to_proto(kind));
    a.setGuarantee(to_proto(level));
    ASSERT_TRUE(send_message(*conn_, m));
    auto reply = next();
    ASSERT_TRUE(reply.is_advertised) << reply.refusal.message;
  }

  void send_publish(const std::vector<int>& fds, const Layout& layout, std::uint64_t seq,
                    const std::string& topic = "cam", std::uint32_t fd_index = 0) {
    capnp::MallocMessageBuilder m;
    auto p = m.initRoot<proto::Message>().initPublish();
    p.setTopic(topic);
    auto f = p.initFrame();
    f.setFd(fd_index);
    f.setSequence(seq);
    layout_to_proto(layout, f.initLayout());
    ASSERT_TRUE(send_message(*conn_, m, fds));
  }

  struct Reply {
    bool is_advertised = false;
    bool is_error = false;
    bool disconnected = false;
    Refusal refusal{};
  };
  Reply next() {
    Reply out;
    auto r = conn_->receive();
    if (!r) {
      out.disconnected = r.error().is(Errc::disconnected);
      return out;
    }
    (void)decode_message<
        proto::Message>(conn_->message(*r), [&](proto::Message::Reader m) -> Status {
      out.is_advertised = m.isAdvertised();
      if (m.isError()) {
        out.is_error = true;
        auto e = m.getError();
        out.refusal = {e.getCode(), e.getMessage().cStr(), e.getTopic().cStr(), e.getSequence()};
      }
      return {};
    });
    return out;
  }
  Refusal refusal() {
    Reply r = next();
    EXPECT_TRUE(r.is_error) << "expected an Error";
    return r.refusal;
  }

  // After a refusal the connection still works: a good frame reaches a subscriber.
  void expect_still_served() {
    auto consumer = Consumer::connect(socket(), "check");
    ASSERT_TRUE(consumer);
    ASSERT_TRUE(consumer->subscribe("cam"));
    auto buffer = WritableBuffer::create("good", 64);
    ASSERT_TRUE(buffer);
    auto sealed = std::move(*buffer).seal();
    ASSERT_TRUE(sealed);
    send_publish({sealed->fd()}, blob_layout(64), 77);
    auto event = consumer->receive();
    ASSERT_TRUE(event) << event.error().message();
    ASSERT_TRUE(std::holds_alternative<Frame>(*event));
    EXPECT_EQ(std::get<Frame>(*event).sequence(), 77U);
  }

  std::unique_ptr<Connection> conn_;
};

UniqueFd memfd_with_seals(std::size_t size, unsigned seals) {
  auto fd = create_memfd("refusal", size);
  EXPECT_TRUE(fd);
  if (seals != 0) {
    EXPECT_EQ(::fcntl(fd->get(), F_ADD_SEALS, seals), 0);
  }
  return std::move(*fd);
}

TEST_F(BrokerRefusalTest, UnsealedMemfd) {
  UniqueFd fd = memfd_with_seals(64, 0);
  send_publish({fd.get()}, blob_layout(64), 5);
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::MISSING_SEALS);
  EXPECT_NE(r.message.find("lacks"), std::string::npos) << r.message;
  EXPECT_EQ(r.topic, "cam");
  EXPECT_EQ(r.sequence, 5U);
  expect_still_served();
}

TEST_F(BrokerRefusalTest, ShrinkableMemfd) {
  UniqueFd fd = memfd_with_seals(64, F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  send_publish({fd.get()}, blob_layout(64), 6);
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::MISSING_SEALS);
  EXPECT_NE(r.message.find("F_SEAL_SHRINK"), std::string::npos) << r.message;
  expect_still_served();
}

TEST_F(BrokerRefusalTest, NonMemfd) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  UniqueFd read_end(p[0]), write_end(p[1]);
  send_publish({write_end.get()}, blob_layout(64), 7);
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::NOT_MEMFD);
  EXPECT_NE(r.message.find("is a pipe, not a memfd"), std::string::npos) << r.message;
  // The broker closed its copy: with ours gone, the read end sees EOF.
  write_end.reset();
  char c;
  EXPECT_EQ(::read(read_end.get(), &c, 1), 0);
  expect_still_served();
}

TEST_F(BrokerRefusalTest, HugeSizedBuffer) {
  // A sealed memfd of 1 TiB costs its sender nothing (it is sparse), but every consumer would
  // map all of it and the broker would keep it alive: refused at the pinned-bytes limit.
  auto consumer = Consumer::connect(socket(), "would-map-it");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("cam"));
  auto fd = create_memfd("huge", 4096);
  ASSERT_TRUE(fd);
  ASSERT_EQ(::ftruncate(fd->get(), off_t{1} << 40), 0);
  ASSERT_EQ(::fcntl(fd->get(), F_ADD_SEALS, required_seals(Guarantee::sealed)), 0);
  send_publish({fd->get()}, blob_layout(64), 9);
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::LIMIT_EXCEEDED);
  EXPECT_NE(r.message.find("--max-pinned-bytes"), std::string::npos) << r.message;
  expect_still_served();
}

TEST_F(BrokerRefusalTest, LayoutBiggerThanTheBuffer) {
  UniqueFd fd = memfd_with_seals(64, required_seals(Guarantee::sealed));
  send_publish({fd.get()}, blob_layout(65), 8);
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::BUFFER_TOO_SMALL);
  EXPECT_NE(r.message.find("holds 64 bytes but its layout needs 65"), std::string::npos)
      << r.message;
  expect_still_served();
}

TEST_F(BrokerRefusalTest, InvalidLayoutAndWrongKind) {
  UniqueFd fd = memfd_with_seals(1 << 20, required_seals(Guarantee::sealed));
  send_publish({fd.get()}, BlobLayout{~0ULL, 2}, 9);
  EXPECT_EQ(refusal().code, Code::INVALID_LAYOUT);
  send_publish({fd.get()}, *image_layout(PixelFormat::gray8, 16, 16), 10);
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::INVALID_LAYOUT);
  EXPECT_NE(r.message.find("carries blob layouts"), std::string::npos) << r.message;
  expect_still_served();
}

TEST_F(BrokerRefusalTest, PublishWithoutAdvertising) {
  UniqueFd fd = memfd_with_seals(64, required_seals(Guarantee::sealed));
  send_publish({fd.get()}, blob_layout(64), 11, "other");
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::UNKNOWN_TOPIC);
  EXPECT_EQ(r.topic, "other");
}

TEST_F(BrokerRefusalTest, MoreFdsThanAllowed) {
  UniqueFd a = memfd_with_seals(64, required_seals(Guarantee::sealed));
  UniqueFd b = memfd_with_seals(64, required_seals(Guarantee::sealed));
  send_publish({a.get(), b.get()}, blob_layout(64), 12);
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::WRONG_FD_COUNT);
  EXPECT_NE(r.message.find("more fds than a message may (at most 1)"), std::string::npos)
      << r.message;
  expect_still_served();
}

TEST_F(BrokerRefusalTest, FdIndexOutOfRange) {
  UniqueFd fd = memfd_with_seals(64, required_seals(Guarantee::sealed));
  send_publish({fd.get()}, blob_layout(64), 13, "cam", 3);
  EXPECT_EQ(refusal().code, Code::WRONG_FD_COUNT);
}

TEST_F(BrokerRefusalTest, FdsOnAMessageThatTakesNone) {
  UniqueFd fd = memfd_with_seals(64, 0);
  capnp::MallocMessageBuilder m;
  m.initRoot<proto::Message>().initSubscribe().setTopic("cam");
  const int raw = fd.get();
  ASSERT_TRUE(send_message(*conn_, m, std::span(&raw, 1)));
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::WRONG_FD_COUNT);
  EXPECT_NE(r.message.find("Subscribe takes no fds"), std::string::npos) << r.message;
}

TEST_F(BrokerRefusalTest, MessageOverTheSizeLimit) {
  std::vector<std::byte> big(8192, std::byte{0});
  ASSERT_TRUE(send_message(conn_->fd(), big));
  Refusal r = refusal();
  EXPECT_EQ(r.code, Code::LIMIT_EXCEEDED);
  EXPECT_NE(r.message.find("8192 bytes exceeds"), std::string::npos) << r.message;
  expect_still_served();
}

TEST_F(BrokerRefusalTest, GarbageIsMalformed) {
  std::vector<std::byte> junk(64, std::byte{0xff});
  ASSERT_TRUE(send_message(conn_->fd(), junk));
  EXPECT_EQ(refusal().code, Code::MALFORMED_MESSAGE);
  expect_still_served();
}

TEST_F(BrokerRefusalTest, HostileCapnProtoIsRefusedAndItsFdClosed) {
  // Pointers out of bounds, a traversal bomb, a pointer cycle, absurd segment tables: each
  // in valid framing, each carrying a memfd that the broker must close.
  for (const auto& [name, bytes] : testing::hostile_messages("cam")) {
    SCOPED_TRACE(name);
    UniqueFd fd = memfd_with_seals(4096, 0);
    const int raw = fd.get();
    ASSERT_TRUE(send_message(conn_->fd(), bytes, std::span<const int>(&raw, 1)));
    Refusal r = refusal();
    // A root pointer to itself reads as an empty struct: a Hello, which takes no fds.
    EXPECT_TRUE(r.code == Code::MALFORMED_MESSAGE || r.code == Code::WRONG_FD_COUNT)
        << to_string(r.code) << ": " << r.message;
  }
  expect_still_served();
}

TEST_F(BrokerRefusalTest, TruncatedMessagesAreMalformed) {
  const auto words = testing::tensor_publish_words("cam");
  const auto bytes = words.bytes();
  for (std::size_t cut : {std::size_t{8}, bytes.size() / 2, bytes.size() - 8, bytes.size() - 1}) {
    SCOPED_TRACE(cut);
    ASSERT_TRUE(send_message(conn_->fd(), bytes.first(cut)));
    EXPECT_EQ(refusal().code, Code::MALFORMED_MESSAGE);
  }
  expect_still_served();
}

TEST_F(BrokerRefusalTest, AnotherClientCannotTakeAProducedTopic) {
  auto other = Producer::connect(socket(), "intruder");
  ASSERT_TRUE(other);
  auto ok = other->advertise("cam", LayoutKind::blob);
  ASSERT_FALSE(ok);
  EXPECT_TRUE(ok.error().is(Errc::broker_refused));
  EXPECT_TRUE(ok.error().is(BrokerErrc::topic_taken)) << ok.error().code().message();
  EXPECT_EQ(ok.error().code().category().name(), std::string("shmfd.broker"));
  EXPECT_EQ(ok.error().code().message(), "topic-taken");
  EXPECT_FALSE(ok.error().is(BrokerErrc::permission_denied));
  EXPECT_NE(ok.error().message().find("topic-taken"), std::string::npos) << ok.error().message();
}

TEST(BrokerLimitTest, ProtocolVersionMismatchNamesBothVersions) {
  testing::InProcessBroker broker;
  auto fd = connect_seqpacket(broker.path());
  ASSERT_TRUE(fd);
  capnp::MallocMessageBuilder m;
  // Newer clients are answered with the broker's version (protocol_test.cpp); older are not.
  m.initRoot<proto::Message>().initHello().setVersion(kMinProtocolVersion - 1);
  ASSERT_TRUE(send_capnp(fd->get(), m));
  MessageBuffer buf;
  auto reply = receive_message(fd->get(), buf.bytes(), 0);
  ASSERT_TRUE(reply && reply->status == RecvStatus::message);
  auto text = decode_message<proto::Message>(buf.bytes(reply->size), [](proto::Message::Reader r) {
    return Result<std::string>(r.isError() ? r.getError().getMessage().cStr() : "");
  });
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("protocol version " + std::to_string(kMinProtocolVersion - 1)),
            std::string::npos)
      << *text;
  EXPECT_NE(text->find("speaks versions " + std::to_string(kMinProtocolVersion) + " to " +
                       std::to_string(kProtocolVersion)),
            std::string::npos);
  // ... and the broker hangs up.
  auto closed = receive_message(fd->get(), buf.bytes(), 0);
  ASSERT_TRUE(closed);
  EXPECT_EQ(closed->status, RecvStatus::peer_closed);
}

TEST(BrokerLimitTest, RepeatedMisbehaviourDisconnects) {
  broker::Options options;
  options.limits.max_errors_per_client = 3;
  testing::InProcessBroker broker(options);
  auto conn = Connection::open(broker.path(), "noisy");
  ASSERT_TRUE(conn);
  std::vector<std::byte> junk(64, std::byte{0xff});
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(send_message(conn->fd(), junk));
  int errors = 0;
  for (;;) {
    auto r = conn->receive();
    if (!r) {
      EXPECT_TRUE(r.error().is(Errc::disconnected)) << r.error().message();
      break;
    }
    ++errors;
    ASSERT_LT(errors, 10);
  }
  EXPECT_EQ(errors, 5);  // 4 refusals and the final "disconnecting"
  EXPECT_TRUE(broker.wait_until([](broker::Broker& b) { return b.stats().clients == 0; }));
}

TEST(BrokerLimitTest, ATakenTopicIsNoStrikeAndACrashedProducersTopicIsFree) {
  broker::Options options;
  options.limits.max_errors_per_client = 2;
  testing::InProcessBroker broker(options);
  auto first = Producer::connect(broker.path(), "first");
  ASSERT_TRUE(first);
  ASSERT_TRUE(first->advertise("cam", LayoutKind::blob));
  auto second = Producer::connect(broker.path(), "second");
  ASSERT_TRUE(second);
  for (int i = 0; i < 10; ++i) {  // a restarted producer retrying: not misbehaviour
    auto taken = second->advertise("cam", LayoutKind::blob);
    ASSERT_FALSE(taken);
    EXPECT_NE(taken.error().message().find("topic-taken"), std::string::npos);
  }

  // The first producer is held back by a full block-producer subscriber, so the broker is not
  // reading its socket, and crashes: the broker has not seen it go, but its topic must go to
  // the next producer at once (it left nothing unread, so nothing is lost).
  auto consumer = Consumer::connect(broker.path(), "stalled");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("cam", 1, Backpressure::block_producer));
  for (std::uint64_t seq = 1; seq <= 2; ++seq) {  // one in flight, one queued: held
    ASSERT_TRUE(testing::publish_pattern(*first, "cam", seq, 64));
  }
  ASSERT_TRUE(
      broker.wait_until([](broker::Broker& b) { return b.registry().find("cam")->frames == 2; }));
  first = fail(Errc::disconnected, "crashed");  // its socket closes; the broker is not reading it
  ASSERT_TRUE(second->advertise("cam", LayoutKind::blob))
      << "the topic of a producer that hung up goes to the next one";
  ASSERT_TRUE(testing::publish_pattern(*second, "cam", 1, 64));
  // The consumer gets both frames of the first producer, its end of stream, then the second's.
  std::vector<std::string> seen;
  while (seen.size() < 4) {
    auto event = consumer->receive();
    ASSERT_TRUE(event) << event.error().message();
    if (auto* f = std::get_if<Frame>(&*event)) {
      EXPECT_TRUE(testing::holds_pattern(*f));
      seen.push_back("frame " + std::to_string(f->sequence()));
    } else {
      seen.push_back("end");
    }
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"frame 1", "frame 2", "end", "frame 1"}));
}

TEST(BrokerLimitTest, ClientLimitRefusesCleanly) {
  broker::Options options;
  options.limits.max_clients = 2;
  testing::InProcessBroker broker(options);
  // The test runs as root, the broker's operator: admitted up to kOperatorReserve beyond the
  // limit (policy_test checks that anyone else is refused at the limit itself).
  std::vector<Connection> admitted;
  for (std::size_t i = 0; i < 2 + broker::kOperatorReserve; ++i) {
    auto c = Connection::open(broker.path(), "c" + std::to_string(i));
    ASSERT_TRUE(c) << i << ": " << c.error().message();
    admitted.push_back(std::move(*c));
  }
  auto c = Connection::open(broker.path(), "one too many");
  ASSERT_FALSE(c);
  EXPECT_TRUE(c.error().is(Errc::broker_refused)) << c.error().message();
  EXPECT_NE(c.error().message().find("limit of 2 clients"), std::string::npos);
}

TEST(BrokerLimitTest, SubscriptionTopicAndQueueLimits) {
  broker::Options options;
  options.limits.max_subscriptions_per_client = 2;
  options.limits.max_topics = 3;
  options.limits.max_queue_depth = 8;
  options.limits.max_queued_fds_per_client = 15;
  testing::InProcessBroker broker(options);
  auto consumer = Consumer::connect(broker.path());
  ASSERT_TRUE(consumer);
  EXPECT_EQ(*consumer->subscribe("a", 100), 8U);  // capped
  auto too_deep = consumer->subscribe("b", 100);  // (8 + 1) + (8 + 1) > 15
  ASSERT_FALSE(too_deep);
  EXPECT_NE(too_deep.error().message().find("the limit is 15"), std::string::npos);
  EXPECT_TRUE(consumer->subscribe("b", 2));
  auto third = consumer->subscribe("c", 1);
  ASSERT_FALSE(third);
  EXPECT_NE(third.error().message().find("at most 2 subscriptions"), std::string::npos);

  auto other = Consumer::connect(broker.path());
  ASSERT_TRUE(other);
  EXPECT_TRUE(other->subscribe("c", 1));
  auto fourth_topic = other->subscribe("d", 1);
  ASSERT_FALSE(fourth_topic);
  EXPECT_NE(fourth_topic.error().message().find("limit of 3 topics"), std::string::npos);
}

}  // namespace
}  // namespace shmfd
