// docs/MIGRATING.md's samples, run: every ```cpp block of the guide, extracted in order into
// migrating_samples.cpp at build time, and each sample called here against a broker. The guide
// leaves the program's own work (draw, use) to the reader; these paint each frame with its
// number and check what a reader sees.
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "migrating_samples.cpp"  // NOLINT: the guide's samples, one translation unit
#include "support/broker_fixture.hpp"
#include "support/broker_harness.hpp"

namespace migrating {
namespace {
std::mutex seen_mutex;
std::vector<int> seen;  // per frame used: its byte value, or -1 for a frame not all one value
}  // namespace

void draw(std::span<std::byte> bytes, std::uint64_t n) {
  std::memset(bytes.data(), static_cast<int>(n % 256), bytes.size());
}
void use(std::span<const std::byte> bytes) {
  int value = bytes.empty() ? -1 : std::to_integer<int>(bytes[0]);
  for (std::byte b : bytes) {
    if (std::to_integer<int>(b) != value) value = -1;
  }
  std::lock_guard lock(seen_mutex);
  seen.push_back(value);
}
}  // namespace migrating

namespace shmfd {
namespace {

using namespace std::chrono_literals;

class MigratingTest : public testing::BrokerFixture {
 protected:
  void SetUp() override {
    BrokerFixture::SetUp();
    std::lock_guard lock(migrating::seen_mutex);
    migrating::seen.clear();
  }
  static std::vector<int> seen() {
    std::lock_guard lock(migrating::seen_mutex);
    return migrating::seen;
  }
  bool subscribed(const char* topic) {
    return broker().wait_until([topic](broker::Broker& b) {
      const broker::Topic* t = b.registry().find(topic);
      return t != nullptr && !t->subscribers.empty();
    });
  }
};

// Section 1: the producer's frames reach the reader whole and in order. The reader is
// drop-oldest (the default): a producer that outruns it drops frames for it, never the last
// ones it could still read.
TEST_F(MigratingTest, PublishFramesReachReadFrames) {
  constexpr std::uint64_t kFrames = 20;
  Status read;
  std::thread reader([&] { read = migrating::read_frames(socket(), kFrames); });
  ASSERT_TRUE(subscribed("camera/0"));
  const Status published = migrating::publish_frames(socket(), kFrames);
  reader.join();
  ASSERT_TRUE(published) << published.error().message();
  ASSERT_TRUE(read) << read.error().message();
  const std::vector<int> frames = seen();
  ASSERT_FALSE(frames.empty()) << "the reader got no frame";
  for (std::size_t i = 0; i < frames.size(); ++i) {
    EXPECT_GE(frames[i], 1) << "frame " << i << " is not one the producer painted whole";
    EXPECT_LE(frames[i], static_cast<int>(kFrames));
    if (i > 0) {
      EXPECT_GT(frames[i], frames[i - 1]) << "out of order";
    }
  }
}

// Section 2: a free slot is filled and published; with none free, the sample returns at once
// and publishes nothing.
TEST_F(MigratingTest, FillWhenFreePublishesOnlyWhenASlotIsFree) {
  auto producer = Producer::connect(socket(), "camera");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("camera/0", LayoutKind::blob, Guarantee::pool));
  auto pool = producer->create_pool("camera/0", 4096, 2);
  ASSERT_TRUE(pool);
  auto consumer = Consumer::connect(socket(), "viewer");
  ASSERT_TRUE(consumer && consumer->subscribe("camera/0"));
  const Layout layout = blob_layout(4096);

  ASSERT_TRUE(migrating::fill_when_free(*producer, *pool, layout));
  auto first = consumer->receive_for(5s);
  ASSERT_TRUE(first && *first && std::holds_alternative<Frame>(**first));
  EXPECT_EQ(std::get<Frame>(**first).sequence(), 1U);
  EXPECT_EQ(std::to_integer<int>(std::get<Frame>(**first).bytes()[0]), 0);

  // The reader holds the first slot; this program holds the other.
  auto other = producer->acquire(*pool, Wait::fail_fast);
  ASSERT_TRUE(other) << other.error().message();
  const Status none_free = migrating::fill_when_free(*producer, *pool, layout);
  ASSERT_TRUE(none_free) << none_free.error().message();
  auto nothing = consumer->receive_for(200ms);
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(*nothing) << "published with no slot free";
  ASSERT_TRUE(producer->discard(*other));
}

// Section 3: a sealed buffer handed over a socket is verified and read; an unsealed one, or one
// shorter than promised, is refused with a clear error before anything maps it.
TEST_F(MigratingTest, HandOverReadOnlyVerifiesWhatItReceives) {
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd a(pair[0]), b(pair[1]);

  ASSERT_TRUE(migrating::hand_over_read_only(a.get(), 8192));
  const Status received = migrating::receive_read_only(b.get(), 8192);
  ASSERT_TRUE(received) << received.error().message();
  EXPECT_EQ(seen(), std::vector<int>{1});

  ASSERT_TRUE(migrating::hand_over_read_only(a.get(), 4096));
  const Status short_one = migrating::receive_read_only(b.get(), 8192);
  ASSERT_FALSE(short_one);
  EXPECT_TRUE(short_one.error().is(Errc::buffer_too_small)) << short_one.error().message();

  auto unsealed = WritableBuffer::create("unsealed", 8192);
  ASSERT_TRUE(unsealed);
  const int fd = unsealed->fd();
  const char header = 'F';
  ASSERT_TRUE(send_message(a.get(), std::as_bytes(std::span(&header, 1)), std::span(&fd, 1)));
  const Status writable = migrating::receive_read_only(b.get(), 8192);
  ASSERT_FALSE(writable);
  EXPECT_TRUE(writable.error().is(Errc::missing_seals)) << writable.error().message();
  EXPECT_EQ(seen().size(), 1U) << "a refused buffer was used";
}

// Section 4: after the sample, a producer and a consumer go on through a broker's restart.
TEST_F(MigratingTest, SurviveBrokerRestartsKeepsBothGoing) {
  testing::TempDir dir;  // outlives both brokers: the path stays the same
  const std::string path = dir.path() + "/broker.sock";
  auto broker = std::make_unique<testing::SubprocessBroker>(std::vector<std::string>{}, path);
  ASSERT_TRUE(broker->listening()) << broker->output();
  auto producer = Producer::connect(path, "camera", Channels::off);
  auto consumer = Consumer::connect(path, "viewer", Channels::off);
  ASSERT_TRUE(producer && consumer);
  ASSERT_TRUE(producer->advertise("camera/0", LayoutKind::blob));
  ASSERT_TRUE(consumer->subscribe("camera/0"));
  migrating::survive_broker_restarts(*producer, *consumer);

  broker->stop(SIGKILL);
  broker = std::make_unique<testing::SubprocessBroker>(std::vector<std::string>{}, path);
  ASSERT_TRUE(broker->listening()) << broker->output();

  bool reconnected = false, frame = false;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!frame && std::chrono::steady_clock::now() < deadline) {
    auto buffer = producer->allocate("camera/0", blob_layout(4096));
    ASSERT_TRUE(buffer) << buffer.error().message();
    auto sent = producer->publish("camera/0", std::move(*buffer), blob_layout(4096));
    ASSERT_TRUE(sent) << sent.error().message();
    for (auto event = consumer->receive_for(50ms); event && *event;
         event = consumer->receive_for(0ms)) {
      if (std::holds_alternative<Reconnected>(**event)) reconnected = true;
      if (std::holds_alternative<Frame>(**event)) frame = reconnected;
    }
  }
  EXPECT_TRUE(reconnected) << "the consumer did not report its reconnection";
  EXPECT_TRUE(frame) << "no frame came after the restart";
  EXPECT_EQ(producer->reconnects(), 1U);
}

// Section 5: the 4K pool is made, huge pages or not, with slots that hold an NV12 frame.
TEST_F(MigratingTest, PoolFor4kHoldsAn4kFrame) {
  auto producer = Producer::connect(socket(), "camera");
  ASSERT_TRUE(producer);
  ASSERT_TRUE(producer->advertise("camera/4k", LayoutKind::image, Guarantee::pool));
  auto pool = migrating::pool_for_4k(*producer);
  ASSERT_TRUE(pool) << pool.error().message();
  const auto layout = image_layout(PixelFormat::nv12, 3840, 2160);
  EXPECT_GE(producer->slot_size(*pool), *layout_extent(*layout));
  EXPECT_EQ(producer->free_slots(*pool), 5U);
}

}  // namespace
}  // namespace shmfd
