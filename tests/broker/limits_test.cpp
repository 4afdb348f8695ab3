// Per-client resource limits: each one refused with an error that names its flag, without
// touching any other client, and without leaking an fd.
#include <chrono>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "options.hpp"
#include "shmfd/connection.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/frames.hpp"

namespace shmfd {
namespace {

using namespace std::chrono_literals;

using LimitsTest = testing::FdLeakTest;

bool names(const Error& e, const std::string& what) {
  return e.message().find(what) != std::string::npos;
}

// Every refusal the producer has been sent so far, waiting (bounded) for at least one.
std::vector<Error> wait_for_errors(Producer& producer) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::vector<Error> all;
  while (all.empty() && std::chrono::steady_clock::now() < deadline) {
    auto errors = producer.poll_errors();
    if (!errors) break;
    all = std::move(*errors);
    if (all.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return all;
}

TEST_F(LimitsTest, PinnedBytesBoundPoolsAndQueuedFramesPerClient) {
  broker::Options options;
  options.limits.max_pinned_bytes = 64 * 1024;
  testing::InProcessBroker broker(options);

  auto producer = Producer::connect(broker.path(), "pinner");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("pool", LayoutKind::blob, Guarantee::pool));
  ASSERT_TRUE(producer->create_pool("pool", 4096, 12));  // 48 KiB of 64
  auto second = producer->create_pool("pool", 4096, 8);  // 32 KiB more
  ASSERT_FALSE(second);
  EXPECT_TRUE(names(second.error(), "--max-pinned-bytes")) << second.error().message();
  EXPECT_TRUE(names(second.error(), "49152 bytes")) << second.error().message();

  // Fresh frames queued for a consumer that does not read count too: the third 12 KiB frame
  // would pass 64 KiB at the latest (the first may still be in the middle of its send).
  auto consumer = Consumer::connect(broker.path(), "sleeper");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("fresh", 1));
  ASSERT_TRUE(producer->advertise("fresh", LayoutKind::blob));
  std::vector<Error> refused;
  for (std::uint64_t seq = 1; seq <= 3; ++seq) {
    auto sent = testing::publish_pattern(*producer, "fresh", seq, 12288);
    if (!sent) refused.push_back(sent.error());
  }
  if (refused.empty()) refused = wait_for_errors(*producer);
  ASSERT_FALSE(refused.empty());
  EXPECT_TRUE(names(refused.front(), "--max-pinned-bytes")) << refused.front().message();

  // Once the consumer has taken what was queued, the bytes are the producer's to use again.
  for (;;) {
    auto event = consumer->try_receive();
    ASSERT_TRUE(event) << event.error().message();
    if (!*event) break;
    ASSERT_TRUE(std::holds_alternative<Frame>(**event));
    EXPECT_TRUE(testing::holds_pattern(std::get<Frame>(**event)));
  }
  broker.stats();  // a round trip through the broker's thread: it has caught up
  std::uint64_t next = 4;
  bool accepted = false;
  for (int attempt = 0; attempt < 50 && !accepted; ++attempt, ++next) {
    ASSERT_TRUE(testing::publish_pattern(*producer, "fresh", next, 8192));
    auto event = consumer->receive();
    accepted = event.has_value();
    if (accepted) {
      EXPECT_TRUE(testing::holds_pattern(std::get<Frame>(*event)));
    }
  }
  EXPECT_TRUE(accepted) << "a frame within the limit is delivered";

  // Another client's budget is its own.
  auto other = Producer::connect(broker.path(), "other");
  ASSERT_TRUE(other);
  ASSERT_TRUE(other->advertise("pool2", LayoutKind::blob, Guarantee::pool));
  EXPECT_TRUE(other->create_pool("pool2", 4096, 16));
}

TEST_F(LimitsTest, SlotsHeldStopsDeliveryUntilARelease) {
  broker::Options options;
  options.limits.max_slots_held = 2;
  testing::InProcessBroker broker(options);
  // Through the broker (a consumer without channels): the broker stops delivering, and says so.
  auto consumer = Consumer::connect(broker.path(), "hoarder", Channels::off);
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("slots", 4));
  auto producer = Producer::connect(broker.path(), "pool-producer");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("slots", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("slots", 4096, 8);
  ASSERT_TRUE(pool);
  for (int i = 0; i < 3; ++i) {
    auto slot = producer->acquire(*pool);
    ASSERT_TRUE(slot);
    ASSERT_TRUE(producer->publish("slots", *slot, blob_layout(64)));
  }
  auto first = consumer->receive();
  auto second = consumer->receive();
  ASSERT_TRUE(first && second);
  auto held = consumer->receive();
  ASSERT_FALSE(held) << "a third slot while holding two";
  EXPECT_TRUE(names(held.error(), "--max-slots-held")) << held.error().message();
  { Frame done = std::move(std::get<Frame>(*first)); }  // released as it goes
  auto third = consumer->receive();
  ASSERT_TRUE(third) << third.error().message();
  EXPECT_EQ(std::get<Frame>(*third).sequence(), 3U);
}

TEST_F(LimitsTest, SlotsHeldBoundsAChannelConsumersWindow) {
  broker::Options options;
  options.limits.max_slots_held = 2;
  testing::InProcessBroker broker(options);
  auto consumer = Consumer::connect(broker.path(), "hoarder");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("slots", 4, Backpressure::block_producer));
  auto producer = Producer::connect(broker.path(), "pool-producer");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("slots", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("slots", 4096, 8);
  ASSERT_TRUE(pool);
  // The channel opens once both sides have read the broker's request.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (producer->channels() == 0 && std::chrono::steady_clock::now() < until) {
    (void)consumer->receive_for(std::chrono::milliseconds(5));
    (void)producer->poll_errors();
  }
  ASSERT_EQ(producer->channels(), 1U) << "no channel";
  const auto publish = [&] {
    auto slot = producer->acquire(*pool);
    ASSERT_TRUE(slot);
    ASSERT_TRUE(producer->publish("slots", *slot, blob_layout(64)));
  };
  std::thread source([&] {
    for (int i = 0; i < 3; ++i) publish();
  });
  // On a channel the producer enforces the window: two frames, and the third only once one
  // of them is released (block-producer: the producer waits for it).
  std::vector<Frame> held;
  while (held.size() < 2) {
    auto e = consumer->receive();
    ASSERT_TRUE(e) << e.error().message();
    if (auto* f = std::get_if<Frame>(&*e)) held.push_back(std::move(*f));
  }
  auto none = consumer->receive_for(std::chrono::milliseconds(200));
  ASSERT_TRUE(none) << none.error().message();
  EXPECT_FALSE(*none) << "a third slot while holding two";
  held.erase(held.begin());
  auto third = consumer->receive_for(std::chrono::seconds(5));
  source.join();
  ASSERT_TRUE(third && *third);
  EXPECT_EQ(std::get<Frame>(**third).sequence(), 3U);
}

TEST_F(LimitsTest, AStuckBlockProducerSubscriberIsCutOffAndItsProducerGoesOn) {
  broker::Options options;
  options.limits.hold_deadline_ms = 100;
  options.limits.stuck = broker::StuckPolicy::always;
  testing::InProcessBroker broker(options);
  auto stuck = Consumer::connect(broker.path(), "stuck");
  ASSERT_TRUE(stuck);
  ASSERT_TRUE(stuck->subscribe("held", 1, Backpressure::block_producer));
  auto producer = Producer::connect(broker.path(), "held-back");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("held", LayoutKind::blob));
  // One in flight, one queued, then the producer is held until the stuck consumer is cut off.
  for (std::uint64_t seq = 1; seq <= 5; ++seq) {
    ASSERT_TRUE(testing::publish_pattern(*producer, "held", seq, 64));
  }
  EXPECT_TRUE(broker.wait_until([](broker::Broker& b) { return b.stats().clients == 1; }));
  // What it was sent before the cut, then why, then the end of the connection.
  bool told_why = false;
  for (int i = 0; i < 8; ++i) {
    auto event = stuck->receive();
    if (event) continue;
    if (event.error().is(Errc::disconnected)) break;
    told_why = event.error().message().find("block-producer subscription") != std::string::npos;
  }
  EXPECT_TRUE(told_why);
}

// Past --max-message-rate the broker leaves a client's messages in its socket: it paces the
// client like any other backpressure, and refuses or loses nothing.
TEST_F(LimitsTest, MessageRatePacesTheClientAndLosesNothing) {
  broker::Options options;
  options.limits.max_message_rate = 50;  // Hello and Advertise count too
  testing::InProcessBroker broker(options);
  auto consumer = Consumer::connect(broker.path(), "watcher");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("rate", 16, Backpressure::block_producer));
  auto producer = Producer::connect(broker.path(), "flooder");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("rate", LayoutKind::blob));
  constexpr std::uint64_t kFrames = 100;
  const auto start = std::chrono::steady_clock::now();
  // Published from a thread: with the publish window, a producer held back waits in publish().
  std::thread publisher([&] {
    for (std::uint64_t seq = 1; seq <= kFrames; ++seq) {
      auto sent = testing::publish_pattern(*producer, "rate", seq, 64);
      if (!sent) ADD_FAILURE() << sent.error().message();
    }
  });
  for (std::uint64_t seq = 1; seq <= kFrames; ++seq) {
    auto event = consumer->receive();
    ASSERT_TRUE(event) << event.error().message();
    ASSERT_TRUE(std::holds_alternative<Frame>(*event));
    const Frame& frame = std::get<Frame>(*event);
    EXPECT_EQ(frame.sequence(), seq);
    EXPECT_EQ(frame.dropped(), 0U);
    EXPECT_TRUE(testing::holds_pattern(frame));
  }
  // A burst of 50 passed at once (Hello and Advertise took two of it); the other 52 frames
  // took a second at 50 a second. However loaded the machine, never less.
  publisher.join();
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took.count(), 0.8) << "the broker read past --max-message-rate";
  auto errors = producer->poll_errors();
  ASSERT_TRUE(errors) << errors.error().message();
  EXPECT_TRUE(errors->empty()) << errors->front().message();
  EXPECT_EQ(broker.stats().clients, 2U) << "nobody is disconnected for its rate";
}

TEST_F(LimitsTest, AClientThatDoesNotReadItsRepliesIsDisconnected) {
  broker::Options options;
  options.limits.max_pending_replies = 8;
  testing::InProcessBroker broker(options);
  auto conn = Connection::open(broker.path(), "deaf-introspector");
  ASSERT_TRUE(conn);
  capnp::MallocMessageBuilder message;
  message.initRoot<proto::Message>().initIntrospect();
  const auto words = encode_message(message);
  // Each BrokerState reply is queued for a client that never reads; replies beyond the socket
  // buffer pile up in the broker until the limit cuts the client off.
  bool cut_off = false;
  for (int i = 0; i < 100000 && !cut_off; ++i) {
    auto sent = send_message(conn->fd(), words.bytes(), {}, IoMode::non_blocking);
    cut_off = !sent;  // EPIPE or ECONNRESET: the broker hung up
    if (sent && *sent == SendStatus::would_block) std::this_thread::sleep_for(1ms);
    if (!cut_off && i % 64 == 63) {
      cut_off = broker.stats().clients == 0;
    }
  }
  EXPECT_TRUE(broker.wait_until([](broker::Broker& b) { return b.stats().clients == 0; }));
}

TEST(LimitOptionsTest, EveryLimitHasAFlag) {
  auto parsed = broker::parse_options({"shmfd-broker", "--max-pinned-bytes", "1048576",
                                       "--max-slots-held", "7", "--max-queued-messages", "9",
                                       "--max-message-rate", "0", "--max-pools", "3",
                                       "--max-queued-fds", "11", "--publish-window", "5"});
  ASSERT_TRUE(parsed) << parsed.error().message();
  const broker::Limits& l = (*parsed)->limits;
  EXPECT_EQ(l.max_pinned_bytes, 1048576U);
  EXPECT_EQ(l.max_slots_held, 7U);
  EXPECT_EQ(l.max_pending_replies, 9U);
  EXPECT_EQ(l.max_message_rate, 0U);
  EXPECT_EQ(l.max_pools_per_client, 3U);
  EXPECT_EQ(l.max_queued_fds_per_client, 11U);
  EXPECT_EQ(l.publish_window, 5U);
  auto bad = broker::parse_options({"shmfd-broker", "--max-pinned-bytes", "12"});
  ASSERT_FALSE(bad);
  EXPECT_TRUE(names(bad.error(), "--max-pinned-bytes: '12'")) << bad.error().message();
  auto unknown = broker::parse_options({"shmfd-broker", "--max-everything", "1"});
  ASSERT_FALSE(unknown);
  EXPECT_TRUE(unknown.error().is(Errc::invalid_configuration)) << unknown.error().message();
  EXPECT_FALSE(unknown.error().is(Errc::malformed_message)) << "that is a peer's bad bytes";
}

}  // namespace
}  // namespace shmfd
