// The router without sockets: requests go in as Cap'n Proto messages, and what comes out is
// read from each client's outbox at the end of the "event", as the session would send it.
// Fan-out, drop-oldest, block-producer, release counting, and a client leaving at each point.
#include "router.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/memfd.hpp"
#include "shmfd/wire/wire.hpp"
#include "support/fd_count.hpp"

namespace shmfd::broker {
namespace {

using M = proto::Message;
using Code = proto::ErrorCode;

// One message out of an outbox, with the fields these tests look at.
struct Out {
  M::Which which = M::HELLO;
  std::string topic;
  std::uint64_t sequence = 0;
  std::uint32_t pool = 0;
  std::uint32_t slot = 0;
  std::uint64_t dropped = 0;
  Code code = Code::INTERNAL;
  bool has_fd = false;
};

UniqueFd dup_fd(int fd) {
  return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

class RouterTest : public ::testing::Test {
 protected:
  RouterTest() { options_.limits.max_message_rate = 0; }
  ~RouterTest() override {
    // As the broker does when connections close: nothing routed refers to them afterwards.
    for (auto& c : clients_) sut_.remove(*c);
  }

  ClientState& client() {
    const PeerIdentity me{{::getpid(), ::getuid(), ::getgid()}, {::getgid()}};
    clients_.push_back(
        std::make_unique<ClientState>(next_id_++, me, options_.limits, log_, wakeups_));
    sut_.join(*clients_.back());
    return *clients_.back();
  }

  Outcome advertise(ClientState& c, const std::string& topic, bool pool) {
    ControlMessageBuilder m;
    auto a = m.initRoot<M>().initAdvertise();
    a.setTopic(topic);
    a.setKind(proto::LayoutKind::BLOB);
    a.setGuarantee(pool ? proto::Guarantee::POOL : proto::Guarantee::SEALED);
    return sut_.advertise(c, m.getRoot<M>().asReader().getAdvertise());
  }
  Outcome subscribe(ClientState& c, const std::string& topic, std::uint32_t depth,
                    Backpressure policy = Backpressure::drop_oldest) {
    ControlMessageBuilder m;
    auto s = m.initRoot<M>().initSubscribe();
    s.setTopic(topic);
    s.setQueueDepth(depth);
    s.setBackpressure(to_proto(policy));
    return sut_.subscribe(c, m.getRoot<M>().asReader().getSubscribe());
  }
  // Registers a pool of `slots` pages for `topic`; its id, or 0.
  std::uint32_t register_pool(ClientState& c, const std::string& topic, std::uint32_t slots) {
    const std::size_t page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
    auto buffer = WritableBuffer::create("router-test", page * slots);
    auto pool = std::move(*buffer).into_pool();
    ControlMessageBuilder m;
    auto r = m.initRoot<M>().initRegisterPool();
    r.setTopic(topic);
    r.setSlotCount(slots);
    r.setSlotSize(page);
    r.setFd(0);
    std::vector<UniqueFd> fds;
    fds.push_back(dup_fd(pool->fd()));
    if (!sut_.register_pool(c, m.getRoot<M>().asReader().getRegisterPool(), fds)) return 0;
    for (const Out& o : drain(c)) {
      if (o.which == M::POOL_REGISTERED) return o.pool;
    }
    return 0;
  }
  Outcome publish_slot(ClientState& c, const std::string& topic, std::uint32_t pool,
                       std::uint32_t slot, std::uint64_t sequence) {
    ControlMessageBuilder m;
    auto p = m.initRoot<M>().initPublish();
    p.setTopic(topic);
    auto f = p.initFrame();
    f.setSequence(sequence);
    f.setPool(pool);
    f.setSlot(slot);
    layout_to_proto(blob_layout(64), f.initLayout());
    std::vector<UniqueFd> none;
    return sut_.publish(c, m.getRoot<M>().asReader().getPublish(), none);
  }
  Outcome publish_fd(ClientState& c, const std::string& topic, std::uint64_t sequence) {
    auto buffer = WritableBuffer::create("router-test", 4096);
    auto sealed = std::move(*buffer).seal();
    ControlMessageBuilder m;
    auto p = m.initRoot<M>().initPublish();
    p.setTopic(topic);
    auto f = p.initFrame();
    f.setSequence(sequence);
    f.setFd(0);
    layout_to_proto(blob_layout(4096), f.initLayout());
    std::vector<UniqueFd> fds;
    fds.push_back(dup_fd(sealed->fd()));
    return sut_.publish(c, m.getRoot<M>().asReader().getPublish(), fds);
  }
  Outcome release(ClientState& c, const std::string& topic, std::uint64_t sequence) {
    ControlMessageBuilder m;
    auto r = m.initRoot<M>().initRelease();
    r.setTopic(topic);
    r.setSequence(sequence);
    return sut_.release(c, m.getRoot<M>().asReader().getRelease());
  }

  // A producer of the pool topic "cam" with a pool of `slots` pages, and a drop-oldest
  // consumer of depth 4 whose Subscribed reply has been read.
  struct PoolTopic {
    ClientState& producer;
    ClientState& consumer;
    std::uint32_t pool;
  };
  PoolTopic pool_topic(std::uint32_t slots) {
    ClientState& producer = client();
    ClientState& consumer = client();
    EXPECT_TRUE(advertise(producer, "cam", true));
    EXPECT_TRUE(subscribe(consumer, "cam", 4));
    const std::uint32_t pool = register_pool(producer, "cam", slots);
    EXPECT_NE(pool, 0U);
    drain(consumer);
    return {producer, consumer, pool};
  }

  // Everything `c`'s outbox would send at the end of an event, as Broker::flush does it:
  // what is ready goes first, then the router settles (a dry pool takes back the slots of
  // frames still queued), and what that produced goes too. Other clients' outboxes are not
  // sent: as if their sockets were full.
  std::vector<Out> drain(ClientState& c) {
    std::vector<Out> out;
    take(c, out);
    sut_.settle();
    take(c, out);
    c.outbox.flushed();
    return out;
  }
  void take(ClientState& c, std::vector<Out>& out) {
    Outgoing next;
    while (c.outbox.next(next)) {
      Out o;
      o.has_fd = next.fd >= 0;
      auto decoded = decode_message<M>(next.words.bytes(), [&](M::Reader m) -> Status {
        o.which = m.which();
        switch (o.which) {
          case M::DELIVER:
            o.topic = text_of(m.getDeliver().getTopic());
            o.sequence = m.getDeliver().getFrame().getSequence();
            o.pool = m.getDeliver().getFrame().getPool();
            o.slot = m.getDeliver().getFrame().getSlot();
            o.dropped = m.getDeliver().getDropped();
            break;
          case M::POOL_ATTACH:
            o.pool = m.getPoolAttach().getPool();
            break;
          case M::POOL_REGISTERED:
            o.pool = m.getPoolRegistered().getPool();
            break;
          case M::SLOT_FREE:
            o.pool = m.getSlotFree().getPool();
            o.slot = m.getSlotFree().getSlot();
            break;
          case M::END_OF_STREAM:
            o.topic = text_of(m.getEndOfStream().getTopic());
            break;
          case M::ERROR:
            o.code = m.getError().getCode();
            break;
          default:
            break;
        }
        return {};
      });
      EXPECT_TRUE(decoded) << decoded.error().message();
      out.push_back(o);
      next = Outgoing{};
    }
  }
  static std::vector<M::Which> kinds(const std::vector<Out>& out) {
    std::vector<M::Which> k;
    for (const Out& o : out) k.push_back(o.which);
    return k;
  }
  static std::size_t count(const std::vector<Out>& out, M::Which which) {
    return static_cast<std::size_t>(
        std::count_if(out.begin(), out.end(), [&](const Out& o) { return o.which == which; }));
  }
  const Subscription& subscription(ClientState& c, const std::string& topic) {
    return *c.subscriptions.at(topic);
  }

  Options options_;
  Logger log_{LogLevel::error};
  Registry registry_{16};
  Wakeups wakeups_;
  Router sut_{registry_, options_, log_, nullptr, wakeups_};
  std::uint64_t next_id_ = 1;
  std::deque<std::unique_ptr<ClientState>> clients_;
};

TEST_F(RouterTest, FanOutDeliversOnePoolFrameToEverySubscriberAndFreesTheSlotAfterTheLastRelease) {
  ClientState& producer = client();
  ClientState& a = client();
  ClientState& b = client();
  ASSERT_TRUE(advertise(producer, "cam", true));
  ASSERT_TRUE(subscribe(a, "cam", 4));
  ASSERT_TRUE(subscribe(b, "cam", 4));
  const std::uint32_t pool = register_pool(producer, "cam", 2);
  ASSERT_NE(pool, 0U);
  drain(a);
  drain(b);

  ASSERT_TRUE(publish_slot(producer, "cam", pool, 0, 1));

  for (ClientState* c : {&a, &b}) {
    const auto out = drain(*c);
    ASSERT_EQ(kinds(out), (std::vector<M::Which>{M::POOL_ATTACH, M::DELIVER}));
    EXPECT_TRUE(out[0].has_fd);
    EXPECT_EQ(out[1].sequence, 1U);
    EXPECT_EQ(out[1].slot, 0U);
    EXPECT_FALSE(out[1].has_fd);
  }
  ASSERT_TRUE(release(a, "cam", 1));
  EXPECT_EQ(count(drain(producer), M::SLOT_FREE), 0U) << "b still holds the slot";
  ASSERT_TRUE(release(b, "cam", 1));
  const auto freed = drain(producer);
  ASSERT_EQ(kinds(freed), (std::vector<M::Which>{M::SLOT_FREE}));
  EXPECT_EQ(freed[0].pool, pool);
  EXPECT_EQ(freed[0].slot, 0U);
  EXPECT_EQ(kinds(drain(a)), std::vector<M::Which>{}) << "the pool's fd goes once per client";
}

TEST_F(RouterTest, DropOldestDropsTheOldestQueuedFrameAndCountsIt) {
  const std::size_t fds_before = shmfd::testing::open_fd_count();
  {
    ClientState& producer = client();
    ClientState& consumer = client();
    ASSERT_TRUE(advertise(producer, "cam", false));
    ASSERT_TRUE(subscribe(consumer, "cam", 2));
    drain(consumer);

    for (std::uint64_t seq = 1; seq <= 3; ++seq) ASSERT_TRUE(publish_fd(producer, "cam", seq));

    const auto out = drain(consumer);
    ASSERT_EQ(kinds(out), (std::vector<M::Which>{M::DELIVER, M::DELIVER}));
    EXPECT_EQ(out[0].sequence, 2U);
    EXPECT_EQ(out[0].dropped, 1U);
    EXPECT_TRUE(out[0].has_fd);
    EXPECT_EQ(out[1].sequence, 3U);
    EXPECT_EQ(subscription(consumer, "cam").dropped, 1U);
    for (auto& c : clients_) sut_.remove(*c);
    clients_.clear();
  }
  EXPECT_EQ(shmfd::testing::open_fd_count(), fds_before) << "the dropped frame's fd is closed";
}

TEST_F(RouterTest, BlockProducerHoldsItsProducerUntilTheQueueDrains) {
  ClientState& producer = client();
  ClientState& consumer = client();
  ASSERT_TRUE(advertise(producer, "cam", false));
  ASSERT_TRUE(subscribe(consumer, "cam", 1, Backpressure::block_producer));
  drain(consumer);
  wakeups_.take();

  ASSERT_TRUE(publish_fd(producer, "cam", 1));
  EXPECT_TRUE(sut_.must_hold(producer));
  const auto out = drain(consumer);

  ASSERT_EQ(kinds(out), (std::vector<M::Which>{M::DELIVER}));
  EXPECT_FALSE(sut_.must_hold(producer));
  const auto batch = wakeups_.take();
  EXPECT_NE(std::find(batch.readers.begin(), batch.readers.end(), producer.id), batch.readers.end())
      << "the producer's reader is woken";
}

TEST_F(RouterTest, ADryPoolTakesBackTheSlotsQueuedForDropOldestSubscribersThatAreBehind) {
  ClientState& producer = client();
  ClientState& behind = client();
  ASSERT_TRUE(advertise(producer, "cam", true));
  ASSERT_TRUE(subscribe(behind, "cam", 4));
  const std::uint32_t pool = register_pool(producer, "cam", 2);

  ASSERT_TRUE(publish_slot(producer, "cam", pool, 0, 1));
  ASSERT_TRUE(publish_slot(producer, "cam", pool, 1, 2));  // the pool is dry; nothing was sent

  const auto freed = drain(producer);  // the end of the event settles the dry pool
  EXPECT_EQ(count(freed, M::SLOT_FREE), 2U);
  EXPECT_EQ(subscription(behind, "cam").dropped, 2U);
  EXPECT_EQ(count(drain(behind), M::DELIVER), 0U);
}

TEST_F(RouterTest, AFrameDeliveredBeforeTheEventEndsIsNotTakenBack) {
  auto [producer, consumer, pool] = pool_topic(1);

  ASSERT_TRUE(publish_slot(producer, "cam", pool, 0, 1));
  const auto out = drain(consumer);  // delivered, then settled

  EXPECT_EQ(count(out, M::DELIVER), 1U);
  EXPECT_EQ(count(drain(producer), M::SLOT_FREE), 0U);
  EXPECT_EQ(subscription(consumer, "cam").dropped, 0U);
}

TEST_F(RouterTest, AConsumerLeavingFreesTheSlotsItHeldAndThoseQueuedForIt) {
  auto [producer, consumer, pool] = pool_topic(4);
  ASSERT_TRUE(publish_slot(producer, "cam", pool, 0, 1));
  ASSERT_EQ(count(drain(consumer), M::DELIVER), 1U);       // slot 0 held
  ASSERT_TRUE(publish_slot(producer, "cam", pool, 1, 2));  // slots 1 and 2 queued
  ASSERT_TRUE(publish_slot(producer, "cam", pool, 2, 3));
  ASSERT_EQ(count(drain(producer), M::SLOT_FREE), 0U);

  sut_.leave(consumer);

  const auto freed = drain(producer);
  EXPECT_EQ(count(freed, M::SLOT_FREE), 3U);
  EXPECT_TRUE(registry_.find("cam")->subscribers.empty());
}

TEST_F(RouterTest, AProducerLeavingEndsTheStreamAfterItsQueuedFrames) {
  ClientState& producer = client();
  ClientState& consumer = client();
  ASSERT_TRUE(advertise(producer, "cam", false));
  ASSERT_TRUE(subscribe(consumer, "cam", 4));
  drain(consumer);
  ASSERT_TRUE(publish_fd(producer, "cam", 1));

  sut_.leave(producer);

  const auto out = drain(consumer);
  ASSERT_EQ(kinds(out), (std::vector<M::Which>{M::DELIVER, M::END_OF_STREAM}));
  EXPECT_EQ(registry_.find("cam")->producer, nullptr);
}

TEST_F(RouterTest, AProducerLeavingWhileItsSlotIsHeldLeavesTheSlotToTheConsumer) {
  auto [producer, consumer, pool] = pool_topic(2);
  ASSERT_TRUE(publish_slot(producer, "cam", pool, 0, 1));
  ASSERT_EQ(count(drain(consumer), M::DELIVER), 1U);

  sut_.leave(producer);
  ASSERT_TRUE(release(consumer, "cam", 1));  // the slot's SlotFree goes nowhere

  EXPECT_EQ(count(drain(consumer), M::END_OF_STREAM), 1U);
  EXPECT_EQ(count(drain(producer), M::SLOT_FREE), 0U);
}

TEST_F(RouterTest, RefusalsAreValuesAndChangeNothing) {
  auto [producer, consumer, pool] = pool_topic(2);

  const auto unknown = publish_slot(consumer, "cam", pool, 0, 1);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().code, Code::UNKNOWN_TOPIC);
  const auto not_held = release(consumer, "cam", 7);
  ASSERT_FALSE(not_held);
  EXPECT_EQ(not_held.error().code, Code::NOT_HELD);
  EXPECT_EQ(not_held.error().sequence, 7U);
  const auto bad_slot = publish_slot(producer, "cam", pool, 2, 1);
  ASSERT_FALSE(bad_slot);
  EXPECT_EQ(bad_slot.error().code, Code::UNKNOWN_POOL);

  EXPECT_TRUE(drain(consumer).empty()) << "the router replies with nothing: the session does";
  EXPECT_TRUE(drain(producer).empty());
  EXPECT_EQ(registry_.find("cam")->frames, 0U);
}

TEST_F(RouterTest, APoolSlotCannotBePublishedAgainUntilEveryHolderReleasedIt) {
  auto [producer, consumer, pool] = pool_topic(2);
  ASSERT_TRUE(publish_slot(producer, "cam", pool, 0, 1));
  drain(consumer);

  const auto busy = publish_slot(producer, "cam", pool, 0, 2);
  ASSERT_FALSE(busy);
  EXPECT_EQ(busy.error().code, Code::SLOT_BUSY);
  ASSERT_TRUE(release(consumer, "cam", 1));
  EXPECT_TRUE(publish_slot(producer, "cam", pool, 0, 2));
}

TEST_F(RouterTest, ResubscribingSendsThePoolsFdAgain) {
  auto [producer, consumer, pool] = pool_topic(3);
  ASSERT_TRUE(publish_slot(producer, "cam", pool, 0, 1));
  ASSERT_EQ(count(drain(consumer), M::POOL_ATTACH), 1U);
  ASSERT_TRUE(release(consumer, "cam", 1));
  ControlMessageBuilder m;
  m.initRoot<M>().initUnsubscribe().setTopic("cam");
  ASSERT_TRUE(sut_.unsubscribe(consumer, m.getRoot<M>().asReader().getUnsubscribe()));
  ASSERT_TRUE(subscribe(consumer, "cam", 4));

  ASSERT_TRUE(publish_slot(producer, "cam", pool, 1, 2));

  EXPECT_EQ(kinds(drain(consumer)),
            (std::vector<M::Which>{M::UNSUBSCRIBED, M::SUBSCRIBED, M::POOL_ATTACH, M::DELIVER}));
}

}  // namespace
}  // namespace shmfd::broker
