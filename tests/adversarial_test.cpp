// Clients that misbehave on purpose. In every case the broker keeps serving a well-behaved
// client, and the process's fd count (broker and clients both live here) returns to baseline.
#include <sys/resource.h>

#include <gtest/gtest.h>

#include "shmfd/connection.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/unix_socket.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/frames.hpp"

namespace shmfd {
namespace {

class AdversarialTest : public testing::FdLeakTest {
 protected:
  // A well-behaved producer and consumer exchange one frame on a fresh topic.
  static void expect_still_serving(const std::string& path) {
    static int round = 0;
    const std::string topic = "healthy/" + std::to_string(++round);
    auto consumer = Consumer::connect(path, "healthy-consumer");
    ASSERT_TRUE(consumer) << consumer.error().message();
    ASSERT_TRUE(consumer->subscribe(topic));
    auto producer = Producer::connect(path, "healthy-producer");
    ASSERT_TRUE(producer) << producer.error().message();
    ASSERT_TRUE(producer->advertise(topic, LayoutKind::BLOB));
    ASSERT_TRUE(testing::publish_pattern(*producer, topic, 1, 256));
    auto event = consumer->receive();
    ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
    EXPECT_TRUE(testing::holds_pattern(std::get<Frame>(*event)));
  }
};

TEST_F(AdversarialTest, AConnectionThatNeverSaysHelloIsClosed) {
  broker::Options options;
  options.limits.hello_timeout_ms = 100;
  testing::InProcessBroker broker(options);
  auto silent = connect_seqpacket(broker.path());
  ASSERT_TRUE(silent);
  expect_still_serving(broker.path());
  MessageBuffer buf;
  auto m = receive_message(silent->get(), buf.bytes(), 0);  // blocks until the broker hangs up
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->status, RecvStatus::peer_closed);
  EXPECT_TRUE(broker.wait_until([](broker::Broker& b) { return b.stats().clients == 0; }));
}

TEST_F(AdversarialTest, AConsumerThatNeverReadsNeverBlocksTheBroker) {
  testing::InProcessBroker broker;
  auto deaf = Consumer::connect(broker.path(), "deaf");
  ASSERT_TRUE(deaf);
  ASSERT_TRUE(deaf->subscribe("firehose", 2, Backpressure::DROP_OLDEST));
  auto producer = Producer::connect(broker.path());
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("firehose", LayoutKind::BLOB));
  // The deaf consumer reads nothing: the producer is never held back, and the broker keeps at
  // most its depth of frames for it.
  for (std::uint64_t seq = 1; seq <= 2000; ++seq) {
    ASSERT_TRUE(testing::publish_pattern(*producer, "firehose", seq, 64));
  }
  ASSERT_TRUE(producer->advertise("sync", LayoutKind::BLOB));
  expect_still_serving(broker.path());

  // When it finally reads, it gets what its window and queue held, newest last, and a drop
  // count that accounts for every other frame.
  std::uint64_t received = 0;
  for (;;) {
    auto event = deaf->receive();
    ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
    const Frame& f = std::get<Frame>(*event);
    ++received;
    if (f.sequence() == 2000) {
      EXPECT_EQ(received + f.dropped(), 2000U);
      break;
    }
  }
  EXPECT_EQ(received, 4U);  // a window of 2 and a queue of 2
}

TEST_F(AdversarialTest, AThousandConnectionsAtOnceThenAllGone) {
  rlimit rl{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  const rlimit saved = rl;
  rl.rlim_cur = rl.rlim_max;  // 1000 clients + their 1000 broker sockets live in this process
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &rl), 0);
  if (rl.rlim_cur < 2200) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << rl.rlim_cur << " < 2200";
  {
    broker::Options options;
    options.limits.max_clients = 1000;
    testing::InProcessBroker broker(options);
    std::vector<Connection> clients;
    for (int i = 0; i < 1000; ++i) {
      auto c = Connection::open(broker.path(), "crowd");
      ASSERT_TRUE(c) << i << ": " << c.error().message();
      clients.push_back(std::move(*c));
    }
    EXPECT_EQ(broker.stats().clients, 1000U);
    auto extra = Connection::open(broker.path(), "one-too-many");
    ASSERT_FALSE(extra);
    EXPECT_NE(extra.error().message().find("limit of 1000 clients"), std::string::npos);
    clients.clear();
    EXPECT_TRUE(broker.wait_until([](broker::Broker& b) { return b.stats().clients == 0; }));
    expect_still_serving(broker.path());
  }
  ::setrlimit(RLIMIT_NOFILE, &saved);
}

TEST_F(AdversarialTest, ConnectAndDisconnectInATightLoop) {
  testing::InProcessBroker broker;
  for (int i = 0; i < 2000; ++i) {
    if (i % 2 == 0) {
      auto c = Connection::open(broker.path(), "flicker");
      ASSERT_TRUE(c) << c.error().message();
    } else {
      auto raw = connect_seqpacket(broker.path());  // gone before saying anything
      ASSERT_TRUE(raw);
    }
  }
  EXPECT_TRUE(broker.wait_until([](broker::Broker& b) { return b.stats().clients == 0; }));
  expect_still_serving(broker.path());
}

}  // namespace
}  // namespace shmfd
