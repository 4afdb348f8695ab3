// What the benchmark programs of the suite share: clocks and statistics, results as JSON rows,
// child processes (optionally pinned to a CPU) with results in shared memory, the consumer's
// per-frame work, and a shmfd-broker subprocess with its CPU time and memory.
//
// Every program of the suite (shmfd-bench-suite and one per peer) writes rows
//   {"scenario", "variant", "name", "metric", "unit", "median", "p99", "p99_unit", "samples"}
// to the file given with --json; shmfd-bench-report turns them into the table, the JSON and the
// charts under bench/results/.
#pragma once

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "support/proc.hpp"

namespace bench {

inline constexpr std::uint32_t k4KWidth = 3840, k4KHeight = 2160;
inline constexpr std::size_t k4KBytes = std::size_t{k4KWidth} * k4KHeight * 4;
inline constexpr std::size_t kPage = 4096;

inline std::uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

[[noreturn]] inline void die(const std::string& what) {
  std::fprintf(stderr, "bench: %s\n", what.c_str());
  std::fflush(stderr);
  ::_exit(1);
}

inline double percentile(std::vector<double> v, double p) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}
inline double median(std::vector<double> v) {
  return percentile(std::move(v), 0.5);
}

// --- The consumer's work on a frame, the same for every transport ------------------------

enum class Work { touch, read };  // one byte per page, or every byte (a checksum)

inline std::uint64_t consume(std::span<const std::byte> bytes, Work work) {
  std::uint64_t sum = 0;
  if (work == Work::read) {
    for (std::size_t i = 0; i + 8 <= bytes.size(); i += 8) {
      std::uint64_t w;
      std::memcpy(&w, bytes.data() + i, 8);
      sum += w;
    }
  } else {
    for (std::size_t i = 0; i < bytes.size(); i += kPage) {
      sum += std::to_integer<unsigned>(bytes[i]);
    }
  }
  return sum;
}
inline const char* to_string(Work w) {
  return w == Work::touch ? "touch one byte per page" : "read every byte";
}

// --- The producer's work on a frame, the same for every transport --------------------------

// What the producer writes of each frame: a 64-byte header (the frame's pixels come from
// elsewhere, or only a little changes), or every byte (a camera, a decoder, a renderer).
enum class Fill { header, every_byte };

inline void fill(std::span<std::byte> frame, std::uint64_t i, Fill f) {
  const std::size_t n =
      f == Fill::every_byte ? frame.size() : std::min<std::size_t>(64, frame.size());
  std::memset(frame.data(), static_cast<int>(i), n);
}

// The S2 variants: the consumer touching or reading frames the producer only stamped, and both
// sides doing all the work a real pipeline does on every byte.
struct S2Variant {
  Fill fill;
  Work work;
};
inline constexpr S2Variant kS2Variants[] = {
    {Fill::header, Work::touch}, {Fill::header, Work::read}, {Fill::every_byte, Work::read}};
inline std::string to_string(const S2Variant& v) {
  if (v.fill == Fill::every_byte) return "producer writes every byte, consumer reads every byte";
  return to_string(v.work);
}

// --- Results -------------------------------------------------------------------------------

class Results {
 public:
  void add(const std::string& scenario, const std::string& variant, const std::string& name,
           const std::string& metric, const std::string& unit, double median_value,
           double p99 = NAN, const std::string& p99_unit = "", std::size_t samples = 0) {
    nlohmann::json row{{"scenario", scenario}, {"variant", variant}, {"name", name},
                       {"metric", metric},     {"unit", unit},       {"median", median_value},
                       {"samples", samples}};
    if (!std::isnan(p99)) {
      row["p99"] = p99;
      row["p99_unit"] = p99_unit;
    }
    rows_.push_back(row);
    std::fprintf(stderr, "  %-3s %-28s %-44s %12.2f %s", scenario.c_str(), variant.c_str(),
                 name.c_str(), median_value, unit.c_str());
    if (!std::isnan(p99)) std::fprintf(stderr, "   p99 %.2f %s", p99, p99_unit.c_str());
    std::fprintf(stderr, "\n");
  }
  // A peer or scenario that could not run, with the reason: reported, never silent.
  void skip(const std::string& scenario, const std::string& name, const std::string& why) {
    rows_.push_back({{"scenario", scenario}, {"name", name}, {"skipped", why}});
    std::fprintf(stderr, "  %-3s %-28s SKIPPED: %s\n", scenario.c_str(), name.c_str(), why.c_str());
  }
  void write(const std::string& path) const {
    std::ofstream out(path);
    out << rows_.dump(1) << "\n";
    if (!out) die("cannot write " + path);
  }

 private:
  nlohmann::json rows_ = nlohmann::json::array();
};

// Frames per second measured at the consumer from its first frame to its last (arrival
// times in ns), and the intervals between frames.
struct Rate {
  double fps = 0;
  std::vector<double> intervals_ms;
};
inline Rate rate_of(const std::vector<double>& arrivals_ns) {
  Rate r;
  if (arrivals_ns.size() < 2) return r;
  for (std::size_t i = 1; i < arrivals_ns.size(); ++i) {
    r.intervals_ms.push_back((arrivals_ns[i] - arrivals_ns[i - 1]) / 1e6);
  }
  r.fps = static_cast<double>(arrivals_ns.size() - 1) * 1e9 /
          (arrivals_ns.back() - arrivals_ns.front());
  return r;
}
// The same for a stream to several consumers, each pushing its arrivals (in any order) to one
// sample set: how fast every consumer got every frame, from the first arrival to the last.
inline Rate rate_of_all(std::vector<double> arrivals_ns, std::uint32_t consumers) {
  if (consumers <= 1) return rate_of(arrivals_ns);
  std::sort(arrivals_ns.begin(), arrivals_ns.end());
  Rate r;  // no intervals: consecutive arrivals are of different consumers
  const std::size_t per_consumer = arrivals_ns.size() / consumers;
  if (per_consumer < 2) return Rate{};
  r.fps = static_cast<double>(per_consumer - 1) * 1e9 / (arrivals_ns.back() - arrivals_ns.front());
  return r;
}
// One row for several runs: the median frame rate, and the p99 of all their intervals.
inline void add_rates(Results& results, const std::string& scenario, const std::string& variant,
                      const std::string& name, const std::vector<Rate>& runs) {
  std::vector<double> fps, intervals;
  for (const Rate& r : runs) {
    fps.push_back(r.fps);
    intervals.insert(intervals.end(), r.intervals_ms.begin(), r.intervals_ms.end());
  }
  results.add(scenario, variant, name, "frames per second", "fps", median(fps),
              percentile(intervals, 0.99), "ms between frames", intervals.size());
}

// --- Processes -----------------------------------------------------------------------------

inline void pin_to_cpu(int cpu) {
  if (cpu < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(static_cast<std::size_t>(cpu), &set);
  if (::sched_setaffinity(0, sizeof set, &set) != 0) die("sched_setaffinity");
}

// Doubles written by children, read by the parent: an anonymous shared mapping made before
// fork, so no pipe can fill up.
class SharedSamples {
 public:
  explicit SharedSamples(std::size_t capacity) : capacity_(capacity) {
    void* p = ::mmap(nullptr, bytes(), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap for samples");
    head_ = static_cast<std::atomic<std::size_t>*>(p);
    data_ = reinterpret_cast<double*>(static_cast<char*>(p) + 64);
  }
  ~SharedSamples() { ::munmap(head_, bytes()); }
  SharedSamples(const SharedSamples&) = delete;
  SharedSamples& operator=(const SharedSamples&) = delete;

  void push(double v) {
    const std::size_t i = head_->fetch_add(1);
    if (i < capacity_) data_[i] = v;
  }
  double& at(std::size_t i) { return data_[i]; }
  std::vector<double> values() const { return {data_, data_ + std::min(head_->load(), capacity_)}; }
  void clear() { head_->store(0); }

 private:
  std::size_t bytes() const { return 64 + capacity_ * sizeof(double); }
  std::size_t capacity_;
  std::atomic<std::size_t>* head_;
  double* data_;
};

// Fan-out: `latency` holds, at [c * frames + f], when consumer c had frame f; per frame from
// `warmup` on, the time until the slowest had it.
inline std::vector<double> slowest_per_frame(SharedSamples& latency, std::uint32_t consumers,
                                             std::uint64_t frames, std::uint64_t warmup) {
  std::vector<double> all_have;
  for (std::uint64_t f = warmup; f < frames; ++f) {
    double worst = 0;
    for (std::uint32_t c = 0; c < consumers; ++c)
      worst = std::max(worst, latency.at(c * frames + f));
    all_have.push_back(worst);
  }
  return all_have;
}

// A child process running `body` (pinned to `cpu` unless -1); its exit status is body's.
inline pid_t spawn(const std::function<int()>& body, int cpu = -1) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    pin_to_cpu(cpu);
    ::_exit(body());
  }
  return pid;
}

inline bool wait_ok(pid_t pid) {
  int status = 0;
  if (::waitpid(pid, &status, 0) != pid) return false;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// A one-byte "ready" signal from a child to its parent (or back).
class Signal {
 public:
  Signal() {
    if (::pipe(fds_) != 0) die("pipe");
  }
  ~Signal() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;
  void post() const { (void)!::write(fds_[1], "r", 1); }
  bool wait() const {
    char c;
    return ::read(fds_[0], &c, 1) == 1;
  }

 private:
  int fds_[2];
};

using shmfd::testing::proc_kb;

inline std::uint64_t rss_bytes(pid_t pid) {
  return proc_kb("/proc/" + std::to_string(pid) + "/status", "VmRSS");
}
inline std::uint64_t pss_bytes(pid_t pid) {
  return proc_kb("/proc/" + std::to_string(pid) + "/smaps_rollup", "Pss");
}
// CPU time of a single-threaded process, in ns (/proc/PID/schedstat).
inline std::uint64_t cpu_ns(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/schedstat");
  std::uint64_t ns = 0;
  in >> ns;
  return ns;
}

inline std::string self_dir() {
  return std::filesystem::read_symlink("/proc/self/exe").parent_path().string();
}

// shmfd-broker from the same build (or $SHMFD_BENCH_BROKER, to compare two brokers in one
// run), on a private socket, optionally pinned to a CPU, with `extra` options.
class BrokerProcess {
 public:
  explicit BrokerProcess(int cpu = -1, std::vector<std::string> extra = {}) {
    dir_ = "/tmp/shmfd-bench-" + std::to_string(::getpid()) + "-" + std::to_string(++count_);
    std::filesystem::create_directories(dir_);
    socket_ = dir_ + "/broker.sock";
    const char* chosen = std::getenv("SHMFD_BENCH_BROKER");
    const std::string bin = chosen != nullptr ? chosen : self_dir() + "/shmfd-broker";
    std::vector<std::string> args = {bin,     "--socket",      socket_, "--log-level",
                                     "error", "--max-clients", "512"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      pin_to_cpu(cpu);
      ::execv(bin.c_str(), argv.data());
      ::_exit(127);
    }
    for (int i = 0; i < 2000 && !std::filesystem::exists(socket_); ++i) ::usleep(1000);
    if (!std::filesystem::exists(socket_)) die("shmfd-broker did not start (" + bin + ")");
  }
  ~BrokerProcess() {
    ::kill(pid_, SIGTERM);
    ::waitpid(pid_, nullptr, 0);
    std::filesystem::remove_all(dir_);
  }
  BrokerProcess(const BrokerProcess&) = delete;
  BrokerProcess& operator=(const BrokerProcess&) = delete;

  const std::string& socket() const { return socket_; }
  pid_t pid() const { return pid_; }

 private:
  static inline int count_ = 0;
  std::string dir_;
  std::string socket_;
  pid_t pid_ = -1;
};

// The total PSS of `pids`, which wait on `release` for it to be measured; then reaps them.
inline double total_pss_then_release(const std::vector<pid_t>& pids, const Signal& release) {
  double pss = 0;
  for (pid_t pid : pids) pss += static_cast<double>(pss_bytes(pid));
  for (std::size_t i = 0; i < pids.size(); ++i) release.post();
  for (pid_t pid : pids) wait_ok(pid);
  return pss;
}

// --- Command line --------------------------------------------------------------------------

struct Options {
  std::string json = "bench-results.json";
  double scale = 1.0;   // iterations x scale (--quick: 0.2)
  std::string only;     // run only this scenario (S1..S5)
  std::string variant;  // and only variants whose name contains this (e.g. "pinned")

  std::uint64_t n(std::uint64_t full) const {
    return std::max<std::uint64_t>(2,
                                   static_cast<std::uint64_t>(static_cast<double>(full) * scale));
  }
  bool runs(const std::string& scenario) const { return only.empty() || only == scenario; }
  bool runs_variant(const std::string& name) const {
    return variant.empty() || name.find(variant) != std::string::npos;
  }
};

inline Options parse_options(int argc, char** argv, const char* usage) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json" && i + 1 < argc) {
      o.json = argv[++i];
    } else if (a == "--quick") {
      o.scale = 0.2;
    } else if (a == "--only" && i + 1 < argc) {
      o.only = argv[++i];
    } else if (a == "--variant" && i + 1 < argc) {
      o.variant = argv[++i];
    } else {
      std::fprintf(stderr, "usage: %s\n", usage);
      std::exit(a == "--help" ? 0 : 2);
    }
  }
  return o;
}

}  // namespace bench
