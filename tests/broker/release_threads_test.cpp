// Frames released on other threads while the consumer's thread receives (issue 31). Worker
// threads take each frame, check it and drop it; the receiving thread never drops one. With
// block-producer at depth 2 the broker (or the channel) sends nothing more until frames are
// released, so every frame arriving proves that releases from other threads reach the
// producer while the receiver waits: on a channel (the ring, from any thread), and through the
// socket (queued, and the waiting receive woken to send them). Runs under TSan in CI.
#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/stamped_slots.hpp"

namespace shmfd {
namespace {

enum class Path { channel, pool_via_broker, sealed };

std::string path_name(const ::testing::TestParamInfo<Path>& info) {
  switch (info.param) {
    case Path::channel:
      return "poolOnAChannel";
    case Path::pool_via_broker:
      return "poolThroughTheBroker";
    case Path::sealed:
      return "sealedThroughTheBroker";
  }
  return "unknown";
}

// Frames handed from the receiving thread to the workers.
class Handoff {
 public:
  void put(Frame frame) {
    {
      std::lock_guard lock(mutex_);
      frames_.push_back(std::move(frame));
    }
    ready_.notify_one();
  }
  std::optional<Frame> take() {
    std::unique_lock lock(mutex_);
    ready_.wait(lock, [&] { return !frames_.empty() || closed_; });
    if (frames_.empty()) return std::nullopt;
    Frame f = std::move(frames_.front());
    frames_.pop_front();
    return f;
  }
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Frame> frames_;
  bool closed_ = false;
};

class ReleaseThreadsTest : public testing::FdLeakTest,
                           public ::testing::WithParamInterface<Path> {};

TEST_P(ReleaseThreadsTest, FramesReleasedOnOtherThreadsWhileOneReceives) {
  const Path path = GetParam();
  constexpr std::uint64_t kFrames = 400;
  constexpr std::size_t kBytes = 4096;
  testing::InProcessBroker broker;
  auto connected = Consumer::connect(broker.path(), "receiver",
                                     path == Path::channel ? Channels::automatic : Channels::off);
  ASSERT_TRUE(connected) << connected.error().message();
  std::optional<Consumer> consumer(std::move(*connected));
  ASSERT_EQ(consumer->uses_channels(), path == Path::channel);
  ASSERT_TRUE(consumer->subscribe("handoff", 2, Backpressure::block_producer));
  auto producer = Producer::connect(broker.path(), "source");
  ASSERT_TRUE(producer) << producer.error().message();
  const bool pooled = path != Path::sealed;
  ASSERT_TRUE(producer->advertise("handoff", LayoutKind::blob,
                                  pooled ? Guarantee::pool : Guarantee::sealed));
  std::uint32_t pool = 0;
  if (pooled) {
    auto created = producer->create_pool("handoff", kBytes, 4);
    ASSERT_TRUE(created) << created.error().message();
    pool = *created;
  }

  std::atomic<bool> source_failed{false};
  std::thread source([&] {
    const Layout layout = blob_layout(kBytes);
    for (std::uint64_t i = 1; i <= kFrames && !source_failed; ++i) {
      Result<std::uint64_t> sent = std::uint64_t{0};
      if (pooled) {
        auto slot = producer->acquire(pool);
        if (!slot) {
          source_failed = true;
          break;
        }
        testing::stamp(slot->bytes, i);
        sent = producer->publish("handoff", *slot, layout);
      } else {
        auto buffer = producer->allocate("handoff", layout);
        if (!buffer) {
          source_failed = true;
          break;
        }
        testing::stamp(buffer->bytes(), i);
        sent = producer->publish("handoff", std::move(*buffer), layout);
      }
      if (!sent) source_failed = true;
    }
  });

  Handoff handoff;
  std::atomic<std::uint64_t> checked{0}, wrong{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < 3; ++w) {
    workers.emplace_back([&] {
      while (auto frame = handoff.take()) {
        if (!testing::stamped_with(frame->bytes(), frame->sequence())) ++wrong;
        ++checked;
      }  // the frame is dropped here, on this thread
    });
  }

  // The receiving thread: a wait ends only when something comes. Without the wake-up, the
  // frames the workers dropped would stay unreleased while it waits, and nothing would come:
  // the bound below turns that deadlock into a failure.
  std::uint64_t received = 0;
  std::string failure;
  while (received < kFrames) {
    auto event = consumer->receive_for(std::chrono::seconds(20));
    if (!event) {
      failure = event.error().message();
      break;
    }
    if (!*event) {
      failure = "nothing came for 20 s after " + std::to_string(received) + " frames";
      break;
    }
    auto* frame = std::get_if<Frame>(&**event);
    if (frame == nullptr) {
      failure = "an event other than a frame";
      break;
    }
    EXPECT_EQ(frame->sequence(), received + 1);
    EXPECT_EQ(frame->dropped(), 0U);
    ++received;
    handoff.put(std::move(*frame));
  }
  handoff.close();
  for (auto& w : workers) w.join();
  if (!failure.empty()) source_failed = true;  // stop the source if it still waits
  consumer.reset();                            // a blocked source is let go: its consumer is gone
  source.join();
  EXPECT_TRUE(failure.empty()) << failure;
  EXPECT_EQ(received, kFrames);
  EXPECT_EQ(checked.load(), received);
  EXPECT_EQ(wrong.load(), 0U);
}

INSTANTIATE_TEST_SUITE_P(Paths, ReleaseThreadsTest,
                         ::testing::Values(Path::channel, Path::pool_via_broker, Path::sealed),
                         path_name);

}  // namespace
}  // namespace shmfd
