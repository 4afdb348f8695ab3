// Flow-control tests' parts: a live source at a fixed rate that skips the ticks it is held back
// for (as a camera does), a healthy consumer on its own thread, and what shmfd-sub printed
// when it stopped. Used by tests/broker/flow_control_test.cpp and stuck_consumers_test.cpp.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <variant>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"

namespace shmfd::testing {

// A consumer on its own thread that takes every frame and releases it at once, counting the
// frames and what they and the end of the stream say was dropped for it.
class HealthyConsumer {
 public:
  HealthyConsumer(const std::string& path, const std::string& topic) {
    auto c = Consumer::connect(path, "healthy");
    if (!c || !c->subscribe(topic)) throw std::runtime_error("healthy consumer");
    consumer_.emplace(std::move(*c));
    thread_ = std::thread([this] { run(); });
  }
  ~HealthyConsumer() {
    stop_ = true;
    thread_.join();
  }
  HealthyConsumer(const HealthyConsumer&) = delete;
  HealthyConsumer& operator=(const HealthyConsumer&) = delete;

  std::uint64_t frames() const { return frames_; }
  std::uint64_t dropped() const { return dropped_; }

 private:
  void run() {
    while (!stop_) {
      auto event = consumer_->receive_for(std::chrono::milliseconds(20));
      if (!event || !*event) continue;
      if (const Frame* frame = std::get_if<Frame>(&**event)) {
        dropped_ = frame->dropped();
        ++frames_;
      } else if (const EndOfStream* end = std::get_if<EndOfStream>(&**event)) {
        dropped_ = std::max<std::uint64_t>(dropped_, end->dropped);  // lost after the last one
      }
    }
  }

  std::optional<Consumer> consumer_;
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> frames_{0};
  std::atomic<std::uint64_t> dropped_{0};
  std::thread thread_;
};

struct Produced {
  std::uint64_t ticks = 0;       // ticks of the producer's clock over the run
  std::uint64_t published = 0;   // frames published
  std::uint64_t late_ticks = 0;  // ticks, and frames published, in the last second of the run
  std::uint64_t late_published = 0;
};

// A live source of 64x64 RGBA frames at `fps` for `run`: from `pool` (a tick with no free slot
// publishes nothing), or a sealed memfd each when `pool` is 0. A tick that passes while
// publish() holds it back is skipped, as a camera skips it. `progress` counts the ticks, the
// publish() calls begun and the frames published as they happen, for a caller that watches from
// another thread; `stop` ends the run early. A frame counts as begun before publish() sends it
// and as published after publish() returns: one read between the two may miss a frame already
// on its way, so a caller that needs every frame sent after a moment counts from `begun`.
struct Progress {
  std::atomic<std::uint64_t> ticks{0};
  std::atomic<std::uint64_t> begun{0};
  std::atomic<std::uint64_t> published{0};
};
inline Produced produce(Producer& producer, const std::string& topic, std::uint32_t pool,
                        std::uint64_t fps, std::chrono::steady_clock::duration run,
                        Progress* progress = nullptr, const std::atomic<bool>* stop = nullptr) {
  using Clock = std::chrono::steady_clock;
  const auto layout = *image_layout(PixelFormat::rgba8, 64, 64);
  const auto period = std::chrono::nanoseconds(1'000'000'000 / static_cast<std::int64_t>(fps));
  const auto start = Clock::now();
  const auto late = start + run - std::chrono::seconds(1);
  Produced out;
  for (auto tick = start; tick < start + run; tick += period) {
    if (stop != nullptr && *stop) break;
    if (Clock::now() >= tick + period) continue;  // skipped while held back
    std::this_thread::sleep_until(tick);
    ++out.ticks;
    if (progress != nullptr) ++progress->ticks;
    if (tick >= late) ++out.late_ticks;
    bool ok = false;
    if (pool != 0) {
      auto slot = producer.try_acquire(pool);
      if (slot && *slot) {
        if (progress != nullptr) ++progress->begun;
        ok = static_cast<bool>(producer.publish(topic, **slot, layout));
      }
    } else {
      auto buffer = producer.allocate(topic, layout);
      if (buffer) {
        if (progress != nullptr) ++progress->begun;
        ok = static_cast<bool>(producer.publish(topic, std::move(*buffer), layout));
      }
    }
    if (ok) {
      ++out.published;
      if (progress != nullptr) ++progress->published;
      if (tick >= late) ++out.late_published;
    }
  }
  return out;
}

// What shmfd-sub printed when SIGINT stopped it: "shmfd-sub: N frames in ... M dropped".
struct SubSummary {
  std::uint64_t frames = 0;
  std::uint64_t dropped = 0;
  bool found = false;
};
inline SubSummary summary_of(const std::string& output) {
  const auto mark = output.rfind(" frames in ");
  if (mark == std::string::npos) return {};
  const auto line = output.rfind("shmfd-sub: ", mark);
  const auto comma = output.rfind(", ", output.find(" dropped", mark));
  unsigned long long frames = 0, dropped = 0;
  if (line == std::string::npos || comma == std::string::npos ||
      std::sscanf(output.c_str() + line, "shmfd-sub: %llu frames in", &frames) != 1 ||
      std::sscanf(output.c_str() + comma, ", %llu dropped", &dropped) != 1) {
    return {};
  }
  return {frames, dropped, true};
}

}  // namespace shmfd::testing
