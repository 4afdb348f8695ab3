// Any number of stuck consumers: 1, 2 or 3 shmfd-sub processes stopped with SIGSTOP one after
// another, beside a healthy consumer, under each --stuck-policy, for pool frames on channels,
// pool frames through the broker, and sealed frames. Stopped at different times, they hold
// different slots, so that two of them dry the pool:
// - on channels, a 4-slot pool (the README's): each holds its window, 3 slots, frames it had
//   not read when it stopped and frames put on its channel since;
// - through the broker, a 2-slot pool: each holds its window, 1 slot. (It holds what it was
//   sent and has not read, one frame, and the broker's queue, where drop-oldest works, the
//   rest: a 4-slot pool would take 4 of them.)
//
// What each policy promises (docs/pools-and-channels.md, "Stuck consumers"; docs/PROTOCOL.md,
// section 6):
// - pool-dry (the default): a drop-oldest consumer stuck past the hold deadline is cut off when
//   the pool has had no free slot for a quarter of it. Stopped in turn, each one dries the pool
//   and the one stopped before it goes: all but the last, whose hold never dries it alone.
// - always (--disconnect-stuck): every one holding pool slots past the deadline is cut off.
// - log: none is; two or more stall the pool for everyone, as documented.
// Sealed frames held cost no one: no policy cuts a drop-oldest consumer off for them.
//
// Asserted from the last stop's hold deadline on: the healthy consumer gets at least 90% of
// what the producer published meanwhile, and the producer publishes (or, stalled, does not);
// then the cut-off count, and every frame offered to each consumer left, received or counted
// as dropped.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/producer.hpp"
#include "support/broker_fixture.hpp"
#include "support/live_source.hpp"
#include "support/program.hpp"

namespace shmfd {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

enum class Path { channel, broker, sealed };

struct StuckCase {
  Path path;
  broker::StuckPolicy policy;
  int stopped;
};

std::string stuck_case_name(const ::testing::TestParamInfo<StuckCase>& param_info) {
  const StuckCase& c = param_info.param;
  const char* path = c.path == Path::channel  ? "poolOnChannels"
                     : c.path == Path::broker ? "poolThroughBroker"
                                              : "sealed";
  const char* policy = c.policy == broker::StuckPolicy::log        ? "log"
                       : c.policy == broker::StuckPolicy::pool_dry ? "poolDry"
                                                                   : "always";
  return std::string(path) + "_" + policy + "_" + std::to_string(c.stopped) + "stopped";
}

constexpr milliseconds kDeadline{400};
// Each consumer is stopped more than a deadline after the one before, so that one is past its
// deadline when the next dries the pool, and the newest one is not yet: the order the policy
// judges in is the order they stopped in.
constexpr milliseconds kStagger{500};
constexpr milliseconds kWindow{1200};  // measured from the last stop's deadline on
constexpr int kFps = 100;

class StuckConsumersTest : public testing::BrokerFixture,
                           public ::testing::WithParamInterface<StuckCase> {
 protected:
  broker::Options options() override {
    broker::Options o;
    o.limits.hold_deadline_ms = static_cast<std::uint32_t>(kDeadline.count());
    o.limits.stuck = GetParam().policy;
    return o;
  }
};

// A stopped shmfd-sub, and the producer's count of frames published before it was started,
// of publish() calls begun once it had subscribed (it was offered between total - begun_after
// and total - published_before frames: a frame on its way when it subscribed may miss it), and
// of frames published when it was stopped.
struct Stopped {
  std::unique_ptr<testing::Program> program;
  std::uint64_t published_before = 0;
  std::uint64_t begun_after = 0;
  std::uint64_t published_at_stop = 0;
};

TEST_P(StuckConsumersTest, HealthyConsumerKeepsTheProducersRate) {
  const StuckCase c = GetParam();
  const bool pool_frames = c.path != Path::sealed;
  testing::HealthyConsumer healthy(socket(), "stuck");
  auto connected = Producer::connect(socket(), "producer");
  ASSERT_TRUE(connected) << connected.error().message();
  std::optional<Producer> producer(std::move(*connected));  // reset to end the stream
  ASSERT_TRUE(producer->advertise("stuck", LayoutKind::image,
                                  pool_frames ? Guarantee::pool : Guarantee::sealed));
  std::uint32_t pool = 0;
  if (pool_frames) {
    auto created = producer->create_pool("stuck", 64 * 64 * 4, c.path == Path::channel ? 4 : 2);
    ASSERT_TRUE(created) << created.error().message();
    pool = *created;
  }
  testing::Progress progress;
  std::atomic<bool> stop_source{false};
  testing::Produced produced;
  std::thread source([&] {
    produced = testing::produce(*producer, "stuck", pool, kFps, std::chrono::seconds(60), &progress,
                                &stop_source);
  });
  struct StopSource {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~StopSource() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } stop_source_on_exit{stop_source, source};

  // Each runs (and releases) for a while, then stops: it holds what is on its channel or in
  // flight then, and more up to its window of the pool.
  std::vector<std::string> env;
  if (c.path == Path::broker) env.emplace_back("SHMFD_CHANNELS=0");
  std::vector<Stopped> stopped;
  Clock::time_point last_stop{};
  for (int i = 0; i < c.stopped; ++i) {
    Stopped s;
    s.published_before = progress.published;
    s.program = std::make_unique<testing::Program>(
        std::vector<std::string>{SHMFD_SUB_BIN, "--socket", socket(), "--topic", "stuck"}, env);
    ASSERT_TRUE(s.program->wait_for("subscribed")) << s.program->output();
    s.begun_after = progress.begun;
    std::this_thread::sleep_until(std::max(Clock::now() + milliseconds(200), last_stop + kStagger));
    s.program->signal(SIGSTOP);
    last_stop = Clock::now();
    s.published_at_stop = progress.published;
    stopped.push_back(std::move(s));
  }

  std::this_thread::sleep_until(last_stop + kDeadline);
  const std::uint64_t ticks_from = progress.ticks, published_from = progress.published;
  const std::uint64_t healthy_from = healthy.frames();
  std::this_thread::sleep_for(kWindow);
  const std::uint64_t ticks = progress.ticks - ticks_from;
  const std::uint64_t published = progress.published - published_from;
  const std::uint64_t received = healthy.frames() - healthy_from;

  const bool stalls = pool_frames && c.policy == broker::StuckPolicy::log && c.stopped >= 2;
  int cut_expected = 0;
  if (pool_frames && c.policy == broker::StuckPolicy::pool_dry) cut_expected = c.stopped - 1;
  if (pool_frames && c.policy == broker::StuckPolicy::always) cut_expected = c.stopped;
  const auto clients = static_cast<std::size_t>(2 + c.stopped - cut_expected);
  EXPECT_TRUE(broker().wait_until([&](broker::Broker& b) { return b.stats().clients <= clients; }))
      << "cut off: " << 2 + c.stopped - static_cast<int>(broker().stats().clients) << " of "
      << c.stopped << ", expected " << cut_expected;
  EXPECT_EQ(broker().stats().clients, clients) << "expected " << cut_expected << " cut off";

  // The healthy consumer takes what the producer publishes, whatever the stopped ones do (a
  // few frames may be on their way at either end of the window).
  EXPECT_GE(received + 4, published * 9 / 10)
      << "the healthy consumer got " << received << " of the " << published
      << " frames published from the last stop's deadline on";
  if (stalls) {
    EXPECT_LE(published, 2U) << "two stuck consumers stall the pool under --stuck-policy log";
  } else {
    // Held, it publishes nothing. Half its ticks is a floor a TSan build on a loaded machine,
    // which misses a tick now and then, clears.
    EXPECT_GE(published, ticks / 2)
        << "the producer published " << published << " frames in " << ticks << " ticks";
  }

  // The end: the stopped ones go on, read what waits for them, and the stream ends. Each one
  // still connected was offered every frame published since it subscribed, and received it
  // or was told it was dropped (drops after its last frame come with the end of the stream).
  stop_source = true;
  source.join();
  for (Stopped& s : stopped) s.program->signal(SIGCONT);
  std::this_thread::sleep_for(milliseconds(300));
  producer.reset();
  const std::uint64_t total = produced.published;
  for (int i = 0; i < c.stopped; ++i) {
    testing::Program& p = *stopped[static_cast<std::size_t>(i)].program;
    const bool cut = i < cut_expected;  // the first stopped go first
    const int status = p.wait();
    if (cut) {
      EXPECT_NE(status, 0) << "stopped consumer " << i << ": " << p.output();
      EXPECT_NE(p.output().find("disconnecting"), std::string::npos)
          << "stopped consumer " << i << ": " << p.output();
      continue;
    }
    EXPECT_EQ(status, 0) << "stopped consumer " << i << ": " << p.output();
    const testing::SubSummary seen = testing::summary_of(p.output());
    ASSERT_TRUE(seen.found) << p.output();
    const Stopped& s = stopped[static_cast<std::size_t>(i)];
    EXPECT_LE(seen.frames + seen.dropped, total - s.published_before) << p.output();
    EXPECT_GE(seen.frames + seen.dropped, total - s.begun_after) << p.output();
    if (total - s.published_at_stop > 8) {  // more than its depth and what may wait behind it
      EXPECT_GT(seen.dropped, 0U) << "stopped for a while, it must have missed frames: "
                                  << p.output();
    }
  }
  const auto settle = Clock::now() + std::chrono::seconds(2);
  while (healthy.frames() + healthy.dropped() < total && Clock::now() < settle) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  EXPECT_EQ(healthy.frames() + healthy.dropped(), total)
      << "the healthy consumer got " << healthy.frames() << " and was told of " << healthy.dropped()
      << " dropped, of " << total;
}

std::vector<StuckCase> all_cases() {
  std::vector<StuckCase> out;
  for (Path path : {Path::channel, Path::broker, Path::sealed}) {
    for (auto policy :
         {broker::StuckPolicy::pool_dry, broker::StuckPolicy::always, broker::StuckPolicy::log}) {
      for (int n = 1; n <= 3; ++n) out.push_back({path, policy, n});
    }
  }
  return out;
}

INSTANTIATE_TEST_SUITE_P(Matrix, StuckConsumersTest, ::testing::ValuesIn(all_cases()),
                         stuck_case_name);

}  // namespace
}  // namespace shmfd
