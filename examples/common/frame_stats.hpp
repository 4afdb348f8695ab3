// Live statistics for the example consumers: frames, rate, capture-to-receive latency
// percentiles and drops, printed as one refreshing line and as a final summary.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "../../programs/common/test_pattern.hpp"

namespace shmfd::examples {

class FrameStats {
 public:
  explicit FrameStats(std::string who)
      : who_(std::move(who)), start_(now_ns()), last_print_(start_) {}

  void add(std::uint64_t timestamp_ns, std::uint64_t dropped) {
    const std::uint64_t now = now_ns();
    latency_ns_.push_back(now > timestamp_ns ? now - timestamp_ns : 0);
    dropped_ = dropped;
    ++frames_;
    if (now - last_print_ >= 1'000'000'000U) {
      last_print_ = now;
      std::fprintf(stderr, "%s: %s\n", who_.c_str(), line().c_str());
    }
  }

  std::uint64_t frames() const { return frames_; }

  // "300 frames, 29.9 fps, latency p50 210 us p99 2100 us, 0 dropped"
  std::string line() const {
    std::vector<std::uint64_t> sorted = latency_ns_;
    std::sort(sorted.begin(), sorted.end());
    const auto pct = [&](double p) {
      return sorted.empty() ? 0.0
                            : static_cast<double>(sorted[static_cast<std::size_t>(
                                  p * static_cast<double>(sorted.size() - 1))]) /
                                  1e3;
    };
    const double seconds = static_cast<double>(now_ns() - start_) / 1e9;
    char buf[160];
    std::snprintf(buf, sizeof buf,
                  "%llu frames, %.1f fps, latency p50 %.0f us p99 %.0f us, %llu dropped",
                  static_cast<unsigned long long>(frames_),
                  seconds > 0 ? static_cast<double>(frames_) / seconds : 0.0, pct(0.5), pct(0.99),
                  static_cast<unsigned long long>(dropped_));
    return buf;
  }

 private:
  std::string who_;
  std::uint64_t start_;
  std::uint64_t last_print_;
  std::uint64_t frames_ = 0;
  std::uint64_t dropped_ = 0;
  std::vector<std::uint64_t> latency_ns_;
};

}  // namespace shmfd::examples
