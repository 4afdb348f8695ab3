// Regressions for what an independent client, written from the schema alone, found: a broker
// crash, fds that passed verification but could not be mapped, an unbounded queue, topic names
// cut at NUL (protocol_test.cpp), a subscriber that refused others' pixels, unclear errors.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "shmfd/producer.hpp"
#include "support/broker_fixture.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/program.hpp"
#include "support/raw_client.hpp"

namespace shmfd {
namespace {

using Code = proto::ErrorCode;
using M = proto::Message;
using testing::RawClient;
using testing::Received;
using testing::sealed_memfd;

// Reopens `fd` through /proc with `flags` (O_WRONLY, O_PATH): what a hostile producer sends.
UniqueFd reopen(int fd, int flags) {
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  return UniqueFd(::open(link.c_str(), flags | O_CLOEXEC));
}

class HostileClientTest : public testing::BrokerFixture {};

// A client whose replies pass --max-queued-messages in the middle of a Subscribe to a topic
// with a kept last frame used to make on_subscribe read its destroyed subscription (SIGSEGV;
// ASan reports the use after free). Closing now happens after the event, and the broker
// serves on. The flood alternates Subscribe and Unsubscribe, so the reply that passes the limit
// is one of the two; a second flooder shifted by one message makes sure a Subscribe's is.
TEST_F(HostileClientTest, ClosingAClientInsideItsOwnHandlerIsDeferred) {
  broker::Options options;
  options.keep_last_frame = true;
  options.limits.max_pending_replies = 4;
  options.limits.max_message_rate = 0;
  start_broker(options);
  RawClient producer = RawClient::greeted(socket());
  producer.advertise("T");
  ASSERT_TRUE(producer.next().is(M::ADVERTISED));
  auto frame = sealed_memfd(64);
  producer.publish_fd("T", 1, frame.fd(), 64);

  for (int shift : {0, 1}) {
    RawClient flooder = RawClient::greeted(socket());
    if (shift == 1) flooder.advertise("shift");
    // The broker stops reading it once it is cut off: sends then fail, which ends the flood.
    for (int i = 0; i < 5000; ++i) {
      if (i % 2 == 0) {
        flooder.subscribe("T", 1);
      } else {
        flooder.unsubscribe("T");
      }
    }
    bool closed = false;
    for (int i = 0; i < 20000 && !closed; ++i) {
      Received r = flooder.next();
      ASSERT_FALSE(r.timed_out);
      closed = r.closed;
    }
    EXPECT_TRUE(closed) << "shift " << shift;
  }
  // The broker is alive and routes T's kept frame to a new subscriber.
  RawClient late = RawClient::greeted(socket());
  late.subscribe("T");
  EXPECT_TRUE(late.next().is(M::SUBSCRIBED));
  Received r = late.next();
  EXPECT_TRUE(r.is(M::DELIVER)) << r;
  EXPECT_EQ(r.sequence, 1U);
}

// A write-only or O_PATH reopen of a sealed memfd cannot be mapped PROT_READ by a consumer:
// refused as notReadable (O_PATH used to be answered `internal`), for frames and for pools.
TEST_F(HostileClientTest, AnFdThatCannotBeMappedReadOnlyIsRefused) {
  RawClient producer = RawClient::greeted(socket());
  producer.advertise("cam");
  ASSERT_TRUE(producer.next().is(M::ADVERTISED));
  auto frame = sealed_memfd(64);
  std::uint64_t sequence = 1;
  for (int flags : {O_WRONLY, O_PATH}) {
    UniqueFd sent = reopen(frame.fd(), flags);
    ASSERT_TRUE(sent);
    producer.publish_fd("cam", sequence++, sent.get(), 64);
    Received r = producer.next();
    EXPECT_TRUE(r.is_error(Code::NOT_READABLE)) << r;
    EXPECT_NE(r.message.find(flags == O_PATH ? "O_PATH" : "O_WRONLY"), std::string::npos)
        << r.message;
  }
  RawClient pools = RawClient::greeted(socket());
  pools.advertise("pool", proto::LayoutKind::BLOB, proto::Guarantee::POOL);
  ASSERT_TRUE(pools.next().is(M::ADVERTISED));
  auto buffer = WritableBuffer::create("pool", 4096);
  auto pool = std::move(*buffer).into_pool();
  UniqueFd write_only = reopen(pool->fd(), O_WRONLY);
  pools.register_pool("pool", write_only.get(), 1, 4096);
  EXPECT_TRUE(pools.next().is_error(Code::NOT_READABLE));
}

// What a consumer receives is the broker's own read-only open of the memfd: it cannot be
// mapped for writing whatever the seals, and does not share the producer's status flags.
TEST_F(HostileClientTest, ConsumersGetAReadOnlyFileDescriptionOfTheirOwn) {
  RawClient consumer = RawClient::greeted(socket());
  consumer.subscribe("cam");
  consumer.subscribe("pool");
  ASSERT_TRUE(consumer.next().is(M::SUBSCRIBED));
  ASSERT_TRUE(consumer.next().is(M::SUBSCRIBED));
  RawClient producer = RawClient::greeted(socket());
  producer.advertise("cam");
  producer.advertise("pool", proto::LayoutKind::BLOB, proto::Guarantee::POOL);
  ASSERT_TRUE(producer.next().is(M::ADVERTISED));
  ASSERT_TRUE(producer.next().is(M::ADVERTISED));
  auto frame = sealed_memfd(4096);
  producer.publish_fd("cam", 1, frame.fd(), 4096);
  auto buffer = WritableBuffer::create("pool", 4096);
  auto pool = std::move(*buffer).into_pool();
  producer.register_pool("pool", pool->fd(), 1, 4096);
  Received registered = producer.next();
  ASSERT_TRUE(registered.is(M::POOL_REGISTERED)) << registered;
  ASSERT_EQ(::fcntl(pool->fd(), F_SETFL, O_NONBLOCK), 0);  // the producer's flag
  producer.publish_slot("pool", 1, registered.pool, 0, 64);

  std::vector<int> received;
  Received deliver = consumer.next();
  ASSERT_TRUE(deliver.is(M::DELIVER)) << deliver;
  ASSERT_EQ(deliver.fds.size(), 1U);
  EXPECT_EQ(deliver.guarantee, proto::Guarantee::SEALED) << "the level the broker verified";
  Received attach = consumer.next();
  ASSERT_TRUE(attach.is(M::POOL_ATTACH)) << attach;
  ASSERT_EQ(attach.fds.size(), 1U);
  Received slot = consumer.next();
  ASSERT_TRUE(slot.is(M::DELIVER)) << slot;
  EXPECT_EQ(slot.guarantee, proto::Guarantee::POOL);
  for (int fd : {deliver.fds[0].get(), attach.fds[0].get()}) {
    const int flags = ::fcntl(fd, F_GETFL);
    EXPECT_EQ(flags & O_ACCMODE, O_RDONLY);
    EXPECT_EQ(flags & O_NONBLOCK, 0) << "shares the producer's file description";
    errno = 0;
    EXPECT_EQ(::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), MAP_FAILED);
    EXPECT_EQ(errno, EACCES);
    void* map = ::mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
    EXPECT_NE(map, MAP_FAILED);
    if (map != MAP_FAILED) ::munmap(map, 4096);
  }
}

// A pool producer that republishes a slot with no subscriber and never reads its socket used to
// make the broker queue one SlotFree per publish, without bound. Pending notices are one per
// slot at most, and the client is not disconnected for them.
TEST_F(HostileClientTest, SlotFreeNoticesAreBoundedByTheSlots) {
  RawClient producer = RawClient::greeted(socket());
  producer.advertise("pool", proto::LayoutKind::BLOB, proto::Guarantee::POOL);
  ASSERT_TRUE(producer.next().is(M::ADVERTISED));
  auto buffer = WritableBuffer::create("pool", 4096);
  auto pool = std::move(*buffer).into_pool();
  producer.register_pool("pool", pool->fd(), 1, 4096);
  Received registered = producer.next();
  ASSERT_TRUE(registered.is(M::POOL_REGISTERED));
  constexpr int kPublishes = 20000;
  for (int i = 1; i <= kPublishes; ++i) {
    producer.publish_slot("pool", static_cast<std::uint64_t>(i), registered.pool, 0, 64);
  }
  producer.introspect();  // its answer overtakes queued notices: count on after it
  int slot_frees = 0;
  bool answered = false;
  for (;;) {
    Received r = producer.next(answered ? 500 : 5000);
    if (answered && r.timed_out) break;  // half a second of quiet: nothing more is queued
    ASSERT_FALSE(r.closed || r.timed_out) << r;
    if (r.is(M::BROKER_STATE)) {
      answered = true;
      continue;
    }
    ASSERT_TRUE(r.is(M::SLOT_FREE)) << r;
    ++slot_frees;
  }
  // What the socket buffer took before the broker queued, plus one: far below one per publish.
  EXPECT_LT(slot_frees, kPublishes / 10);
  EXPECT_GE(slot_frees, 1);
}

// A message with more fds than a message may carry: the kernel drops the surplus, so the error
// says what the limit is rather than counting what survived.
TEST_F(HostileClientTest, TooManyFdsSaysSo) {
  RawClient producer = RawClient::greeted(socket());
  producer.advertise("cam");
  ASSERT_TRUE(producer.next().is(M::ADVERTISED));
  auto frame = sealed_memfd(64);
  std::vector<int> fds(kMaxFdsPerMessage, frame.fd());
  producer.publish_fd("cam", 1, frame.fd(), 64, fds);
  Received r = producer.next();
  EXPECT_TRUE(r.is_error(Code::WRONG_FD_COUNT)) << r;
  EXPECT_NE(r.message.find("more fds than a message may (at most 1)"), std::string::npos)
      << r.message;
}

// When the broker dies, a sealed-frame publish says so in the words every receive uses.
TEST_F(HostileClientTest, APublishAfterTheBrokerDiedSaysTheBrokerClosedTheConnection) {
  testing::SubprocessBroker broker;
  auto producer = Producer::connect(broker.path(), "pub");
  ASSERT_TRUE(producer) << producer.error().message();
  ASSERT_TRUE(producer->advertise("cam", LayoutKind::blob));
  broker.stop(SIGKILL);
  Result<std::uint64_t> sent = 1;
  for (int i = 0; i < 3 && sent; ++i) {
    auto buffer = producer->allocate("cam", blob_layout(64));
    ASSERT_TRUE(buffer);
    sent = producer->publish("cam", std::move(*buffer), blob_layout(64));
  }
  ASSERT_FALSE(sent);
  EXPECT_TRUE(sent.error().is(Errc::disconnected)) << sent.error().message();
  EXPECT_EQ(sent.error().message(), "the broker closed the connection");
}

// Runs shmfd-sub with `extra` arguments for 3 frames of `topic`, publishing 3 frames of an RGBA
// image that is not shmfd-pub's test pattern once it has subscribed; returns its exit status.
int run_sub_on_foreign_frames(const std::string& socket, const std::string& topic,
                              std::vector<std::string> extra) {
  std::vector<std::string> args{SHMFD_SUB_BIN, "--socket", socket, "--topic",
                                topic,         "--frames", "3"};
  args.insert(args.end(), extra.begin(), extra.end());
  testing::Program sub(args);
  if (!sub.wait_for("subscribed")) return -1;
  auto producer = Producer::connect(socket, "third-party");
  if (producer && producer->advertise(topic, LayoutKind::image)) {
    const auto layout = *image_layout(PixelFormat::rgba8, 16, 8);
    for (int i = 0; i < 3; ++i) {
      auto buffer = producer->allocate(topic, layout);  // zeros: not the test pattern
      if (buffer) (void)producer->publish(topic, std::move(*buffer), layout);
    }
  }
  return sub.wait();
}

// shmfd-sub is a general-purpose subscriber: anyone's frames are fine. The pattern check is
// opt-in (--check-pattern) and then fails on frames that are not shmfd-pub's.
TEST_F(HostileClientTest, ShmfdSubTakesAnyonesPixelsAndChecksThePatternOnlyWhenAsked) {
  testing::SubprocessBroker broker;
  ASSERT_TRUE(broker.listening());
  EXPECT_EQ(run_sub_on_foreign_frames(broker.path(), "foreign/a", {}), 0);
  EXPECT_EQ(run_sub_on_foreign_frames(broker.path(), "foreign/b", {"--check-pattern"}), 1);
}

}  // namespace
}  // namespace shmfd
