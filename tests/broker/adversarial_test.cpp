// Clients that misbehave on purpose. In every case the broker keeps serving a well-behaved
// client, and the process's fd count (broker and clients both live here) returns to baseline.
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/resource.h>

#include <cstring>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "shmfd/connection.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/wire/unix_socket.hpp"
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
    ASSERT_TRUE(producer->advertise(topic, LayoutKind::blob));
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
  ASSERT_TRUE(deaf->subscribe("firehose", 2, Backpressure::drop_oldest));
  auto producer = Producer::connect(broker.path());
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("firehose", LayoutKind::blob));
  // The deaf consumer reads nothing: the producer is never held back, and the broker keeps at
  // most its depth of frames for it.
  for (std::uint64_t seq = 1; seq <= 2000; ++seq) {
    ASSERT_TRUE(testing::publish_pattern(*producer, "firehose", seq, 64));
  }
  ASSERT_TRUE(producer->advertise("sync", LayoutKind::blob));
  expect_still_serving(broker.path());

  // When it finally reads, it gets the one frame that was on its way (a drop-oldest
  // subscription's prefetch of 1) and what its queue held, newest last, and a drop count that
  // accounts for every other frame.
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
  EXPECT_EQ(received, 3U);  // the prefetch of 1 and a queue of 2
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
    // This test runs as root, the broker's operator, who is admitted a few beyond the limit.
    for (std::size_t i = 0; i < broker::kOperatorReserve; ++i) {
      auto c = Connection::open(broker.path(), "operator");
      ASSERT_TRUE(c) << c.error().message();
      clients.push_back(std::move(*c));
    }
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

TEST_F(AdversarialTest, TwoHundredFiftyThreeFdsOfMixedKindsAreAllClosed) {
  testing::InProcessBroker broker;
  auto conn = Connection::open(broker.path(), "fd-bomb");
  ASSERT_TRUE(conn);
  std::vector<UniqueFd> owned;
  std::vector<int> raw;
  for (std::size_t i = 0; i < kMaxFdsPerMessage; ++i) {
    int fd = -1;
    switch (i % 4) {
      case 0:
        fd = ::eventfd(0, EFD_CLOEXEC);
        break;
      case 1:
        fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
        break;
      case 2: {
        auto m = create_memfd("bomb", 4096);
        fd = m ? m->release() : -1;
        break;
      }
      default: {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) == 0) {
          ::close(p[0]);
          fd = p[1];
        }
      }
    }
    ASSERT_GE(fd, 0);
    owned.emplace_back(fd);
    raw.push_back(fd);
  }
  capnp::MallocMessageBuilder m;
  m.initRoot<proto::Message>().initPublish().setTopic("x");
  ASSERT_TRUE(send_message(*conn, m, raw));
  owned.clear();  // our copies go; whatever the broker kept would show in the fd count
  auto reply = conn->receive();
  ASSERT_TRUE(reply);
  auto text = decode_message<proto::Message>(conn->message(*reply), [](proto::Message::Reader r) {
    return Result<std::string>(r.isError() ? r.getError().getMessage().cStr() : "");
  });
  ASSERT_TRUE(text);
  EXPECT_NE(text->find("more fds than a message may (at most 1)"), std::string::npos) << *text;
  expect_still_serving(broker.path());
}

TEST_F(AdversarialTest, InvalidCapnProtoInValidFramingGetsErrorsThenADisconnect) {
  testing::InProcessBroker broker;
  auto conn = Connection::open(broker.path(), "garbage");
  ASSERT_TRUE(conn);
  std::mt19937_64 rng(7);
  int errors = 0;
  bool disconnected = false;
  for (int i = 0; i < 40 && !disconnected; ++i) {
    // A plausible segment table around random words: the decoder has to look inside.
    std::vector<std::uint64_t> words(2 + rng() % 16);
    for (auto& w : words) w = rng();
    const std::uint32_t header[2] = {0, static_cast<std::uint32_t>(words.size() - 1)};
    std::memcpy(words.data(), header, 8);
    auto sent = send_message(conn->fd(),
                             {reinterpret_cast<const std::byte*>(words.data()), words.size() * 8});
    if (!sent) break;  // the broker already hung up
    auto r = conn->receive();
    if (!r) {
      disconnected = r.error().is(Errc::disconnected);
      break;
    }
    ++errors;
  }
  EXPECT_GE(errors, 1);
  EXPECT_TRUE(broker.wait_until([](broker::Broker& b) { return b.stats().clients == 0; }))
      << "a client that keeps sending garbage is cut off after --max-errors";
  expect_still_serving(broker.path());
}

TEST_F(AdversarialTest, AProducerFloodingFasterThanItsConsumerLosesOnlyCountedFrames) {
  testing::InProcessBroker broker;
  auto consumer = Consumer::connect(broker.path(), "slow");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("flood", 2, Backpressure::drop_oldest));
  constexpr std::uint64_t kFrames = 5000;
  std::uint64_t received = 0, last_dropped = 0, bad = 0;
  std::thread reader([&] {
    for (;;) {
      auto event = consumer->receive();
      if (!event || std::holds_alternative<EndOfStream>(*event)) return;
      const Frame& f = std::get<Frame>(*event);
      bad += !testing::holds_pattern(f);
      ++received;
      last_dropped = f.dropped();
    }
  });
  {
    auto producer = Producer::connect(broker.path(), "flood");
    ASSERT_TRUE(producer);
    ASSERT_TRUE(producer->advertise("flood", LayoutKind::blob));
    for (std::uint64_t seq = 1; seq <= kFrames; ++seq) {
      ASSERT_TRUE(testing::publish_pattern(*producer, "flood", seq, 1024));
    }
  }
  reader.join();
  EXPECT_EQ(bad, 0U);
  EXPECT_EQ(received + last_dropped, kFrames) << "every frame delivered or counted as dropped";
  expect_still_serving(broker.path());
}

}  // namespace
}  // namespace shmfd
