// The cadence of a live source (a camera, shmfd-pub --fps N): one tick every 1/fps seconds.
// Ticks that passed while the source was held back (publish() or acquire() waiting for a
// block-producer subscriber or a free slot) are skipped and counted, never made up for in a
// burst: a camera that was stalled for a second does not then fire thirty frames at once.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

namespace shmfd::examples {

class LiveClock {
 public:
  // fps 0: no pacing, every wait returns at once.
  explicit LiveClock(std::uint64_t fps)
      : period_(fps == 0 ? 0 : 1'000'000'000LL / static_cast<std::int64_t>(fps)),
        next_(std::chrono::steady_clock::now()) {}

  // Sleeps until the next tick that has not passed yet; returns how many ticks were skipped.
  std::uint64_t wait_next() {
    if (period_.count() == 0) return 0;
    next_ += period_;
    const auto now = std::chrono::steady_clock::now();
    std::uint64_t missed = 0;
    if (now >= next_ + period_) {
      missed = static_cast<std::uint64_t>((now - next_) / period_);
      next_ += period_ * static_cast<std::int64_t>(missed);
      skipped_ += missed;
    }
    std::this_thread::sleep_until(next_);
    return missed;
  }
  std::uint64_t skipped() const { return skipped_; }

 private:
  std::chrono::nanoseconds period_;
  std::chrono::steady_clock::time_point next_;
  std::uint64_t skipped_ = 0;
};

}  // namespace shmfd::examples
