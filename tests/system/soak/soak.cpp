// shmfd-soak: crash and soak test. A real shmfd-broker, producers (pool and fresh sealed memfd)
// and consumers (drop-oldest and block-producer) as separate processes; one of them is killed
// with SIGKILL every few milliseconds and started again, others leave cleanly now and then,
// until the consumers have checked the requested number of frames or the time limit is up.
// Then every client is killed, and the broker's fd count, its RSS and the machine's Shmem
// (/proc/meminfo) must be back to their baselines; every frame a consumer saw must be intact.
//
//   shmfd-soak [--frames N] [--max-seconds S] [--min-frames N] [--max-stall-seconds S]
//              [--kill-every-ms MS] [--rss-slack-mib N] [--broker PATH]
//
// --frames is a goal and --max-seconds bounds the run: reaching the time limit first is not a
// failure, since how many frames fit in it says how fast the machine is (a TSan build on two
// busy vCPUs checks some 250 a second, a plain one thousands). What a soak is for is asserted:
// every frame checked is intact, nothing leaked, the broker is alive after every kill, and
// frames keep flowing: never a stall of --max-stall-seconds with no frame checked (default 30),
// and at least --min-frames in all (default a tenth of the goal), a floor far below what the
// slowest build on a loaded machine reaches, so that only a machine that has stopped moving
// frames, not a slow one, fails it.
//
// Exit status: 0 when all of that held; 1 otherwise (with the reasons).
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <dirent.h>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/wire/parse.hpp"
#include "support/proc.hpp"
#include "support/stamped_slots.hpp"

namespace {

using namespace shmfd;
using Clock = std::chrono::steady_clock;

constexpr int kTopics = 4;     // 0, 1: pool producers; 2, 3: fresh sealed memfds
constexpr int kConsumers = 6;  // each on two topics
constexpr std::size_t kFrameBytes = 64 * 1024;
constexpr std::uint32_t kPoolSlots = 16;  // > consumers on a topic x what each may hold at once

// Counters shared by every process (an anonymous MAP_SHARED mapping made before fork).
struct Shared {
  std::atomic<std::uint64_t> checked;    // frames consumers verified
  std::atomic<std::uint64_t> corrupt;    // frames whose bytes were wrong
  std::atomic<std::uint64_t> published;  // frames producers sent
  std::atomic<std::uint64_t> refused;    // refusals producers got (should stay 0)
  std::atomic<std::uint64_t> errors;     // unexpected client errors
  char last_error[256];
};
Shared* shared = nullptr;

void note_error(const std::string& what) {
  shared->errors.fetch_add(1);
  std::snprintf(shared->last_error, sizeof shared->last_error, "%s", what.c_str());
}

std::string topic_name(int topic) {
  return "soak/" + std::to_string(topic);
}

// --- Children ----------------------------------------------------------------------------

// Produces on `topic` until it has sent `quota` frames (then leaves cleanly) or is killed.
[[noreturn]] void run_producer(const std::string& socket, int topic, std::uint64_t quota) {
  const std::string name = topic_name(topic);
  const bool pool = topic < 2;
  auto producer = Producer::connect(socket, "soak-producer");
  if (!producer) _exit(3);
  // The previous producer of this topic may have been killed a moment ago: the broker frees
  // the topic when it sees that connection close.
  for (int attempt = 0;; ++attempt) {
    auto ok =
        producer->advertise(name, LayoutKind::blob, pool ? Guarantee::pool : Guarantee::sealed);
    if (ok) break;
    if (attempt > 2000 || ok.error().message().find("topic-taken") == std::string::npos) {
      note_error("advertise: " + ok.error().message());
      _exit(4);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  std::uint32_t pool_id = 0;
  if (pool) {
    auto created = producer->create_pool(name, kFrameBytes, kPoolSlots);
    if (!created) {
      note_error("create_pool: " + created.error().message());
      _exit(5);
    }
    pool_id = *created;
  }
  for (std::uint64_t seq = 1; seq <= quota; ++seq) {
    Result<std::uint64_t> sent = std::uint64_t{0};
    if (pool) {
      auto slot = producer->acquire(pool_id);
      if (!slot) {
        if (!slot.error().is(Errc::disconnected)) note_error("acquire: " + slot.error().message());
        _exit(6);
      }
      testing::stamp(slot->bytes, seq);
      sent = producer->publish(name, *slot, blob_layout(kFrameBytes));
    } else {
      auto buffer = producer->allocate(name, blob_layout(kFrameBytes));
      if (!buffer) {
        note_error("allocate: " + buffer.error().message());
        _exit(6);
      }
      testing::stamp(buffer->bytes(), seq);
      sent = producer->publish(name, std::move(*buffer), blob_layout(kFrameBytes));
    }
    if (!sent) {
      if (sent.error().is(Errc::disconnected)) _exit(7);
      shared->refused.fetch_add(1);
      note_error("publish: " + sent.error().message());
      continue;
    }
    shared->published.fetch_add(1);
  }
  _exit(0);  // destructors are not needed for the kernel to free everything; the broker
             // sees the close either way
}

// Consumes two topics, checking every frame, until it has checked `quota` frames.
[[noreturn]] void run_consumer(const std::string& socket, std::uint64_t seed, std::uint64_t quota) {
  std::mt19937_64 rng(seed);
  {
    auto consumer = Consumer::connect(socket, "soak-consumer");
    if (!consumer) _exit(3);
    const int first = static_cast<int>(rng() % kTopics);
    for (int topic : {first, (first + 1 + static_cast<int>(rng() % (kTopics - 1))) % kTopics}) {
      const auto policy = rng() % 2 ? Backpressure::block_producer : Backpressure::drop_oldest;
      if (auto ok = consumer->subscribe(topic_name(topic), 4, policy); !ok) {
        note_error("subscribe: " + ok.error().message());
        _exit(4);
      }
    }
    for (std::uint64_t n = 0; n < quota;) {
      auto event = consumer->receive();
      if (!event) {
        if (!event.error().is(Errc::disconnected))
          note_error("receive: " + event.error().message());
        _exit(5);
      }
      if (auto* frame = std::get_if<Frame>(&*event)) {
        if (!testing::stamped_with(frame->bytes(), frame->sequence())) shared->corrupt.fetch_add(1);
        shared->checked.fetch_add(1);
        ++n;
      }
    }
  }  // a clean exit with frames still queued: the destructor says goodbye
  _exit(0);
}

// --- The parent --------------------------------------------------------------------------

struct Child {
  pid_t pid = -1;
  bool producer = false;
  int topic = 0;
};

std::size_t count_fds(pid_t pid) {
  std::size_t n = 0;
  if (DIR* d = ::opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
    while (const dirent* e = ::readdir(d)) n += e->d_name[0] != '.';
    ::closedir(d);
  }
  return n;
}

using testing::proc_kb;

double mib(std::uint64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

struct Options {
  std::uint64_t frames = 1'000'000;
  std::uint64_t min_frames = 0;  // 0: a tenth of `frames`
  int max_seconds = 600;
  int max_stall_seconds = 30;
  int kill_every_ms = 20;
  std::uint64_t rss_slack_mib = 4;
  std::string broker;
};

int usage(const char* program) {
  std::fprintf(stderr,
               "usage: %s [--frames N] [--max-seconds S] [--min-frames N] "
               "[--max-stall-seconds S] [--kill-every-ms MS] [--rss-slack-mib N] "
               "[--broker PATH]\n",
               program);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  {
    char self[4096] = {};
    if (::readlink("/proc/self/exe", self, sizeof self - 1) > 0) {
      o.broker = std::string(self).substr(0, std::string(self).rfind('/')) + "/shmfd-broker";
    }
  }
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (i + 1 >= argc) return usage(argv[0]);
    const std::string value = argv[++i];
    const auto number = [&](std::uint64_t min, std::uint64_t max) {
      auto n = shmfd::parse_number(flag, value, min, max);
      if (!n) {
        std::fprintf(stderr, "%s\n", n.error().message().c_str());
        std::exit(2);
      }
      return *n;
    };
    if (flag == "--frames") {
      o.frames = number(1, std::uint64_t{1} << 40);
    } else if (flag == "--max-seconds") {
      o.max_seconds = static_cast<int>(number(1, 86400));
    } else if (flag == "--min-frames") {
      o.min_frames = number(1, std::uint64_t{1} << 40);
    } else if (flag == "--max-stall-seconds") {
      o.max_stall_seconds = static_cast<int>(number(1, 86400));
    } else if (flag == "--kill-every-ms") {
      o.kill_every_ms = static_cast<int>(number(1, 3600000));
    } else if (flag == "--rss-slack-mib") {
      o.rss_slack_mib = number(0, 1 << 20);
    } else if (flag == "--broker") {
      o.broker = value;
    } else {
      return usage(argv[0]);
    }
  }
  if (o.min_frames == 0) o.min_frames = std::max<std::uint64_t>(1, o.frames / 10);
  if (o.min_frames > o.frames) {
    std::fprintf(stderr, "--min-frames %llu is above the goal --frames %llu\n",
                 static_cast<unsigned long long>(o.min_frames),
                 static_cast<unsigned long long>(o.frames));
    return 2;
  }

  void* mem =
      ::mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return 1;
  shared = new (mem) Shared{};

  char dir_template[] = "/tmp/shmfd-soak-XXXXXX";
  if (::mkdtemp(dir_template) == nullptr) return 1;
  const std::string dir = dir_template;
  const std::string socket = dir + "/broker.sock";
  const std::uint64_t shmem_before = proc_kb("/proc/meminfo", "Shmem");

  // The broker, with its stderr in a log file.
  const std::string log = dir + "/broker.log";
  std::vector<std::string> args{o.broker, "--socket", socket, "--log-level", "warn"};
  std::vector<char*> argv_broker;
  for (auto& a : args) argv_broker.push_back(a.data());
  argv_broker.push_back(nullptr);
  const pid_t broker = ::fork();
  if (broker == 0) {
    std::FILE* f = std::freopen(log.c_str(), "w", stderr);
    (void)f;
    ::execv(argv_broker[0], argv_broker.data());
    _exit(127);
  }
  for (int i = 0; i < 500 && ::access(socket.c_str(), F_OK) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (::access(socket.c_str(), F_OK) != 0) {
    std::fprintf(stderr, "soak: the broker (%s) did not start; see %s\n", o.broker.c_str(),
                 log.c_str());
    return 1;
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const std::size_t fds_before = count_fds(broker);
  const std::uint64_t rss_before = proc_kb("/proc/" + std::to_string(broker) + "/status", "VmRSS");

  std::mt19937_64 rng(20261122);
  std::vector<Child> children;
  const auto spawn = [&](Child c) {
    const std::uint64_t seed = rng();
    const std::uint64_t quota = 500 + seed % 20000;  // then a clean exit
    c.pid = ::fork();
    if (c.pid == 0) {
      if (c.producer) run_producer(socket, c.topic, quota);
      run_consumer(socket, seed, quota);
    }
    return c;
  };
  for (int t = 0; t < kTopics; ++t) children.push_back(spawn({-1, true, t}));
  for (int i = 0; i < kConsumers; ++i) children.push_back(spawn({-1, false, 0}));

  const auto start = Clock::now();
  const auto deadline = start + std::chrono::seconds(o.max_seconds);
  std::uint64_t kills = 0, clean_exits = 0, next_report = 100'000;
  auto next_kill = start + std::chrono::milliseconds(o.kill_every_ms);
  // Frames keep flowing: the longest time with no frame checked, and whether the broker was
  // alive after every kill (checked before the next one, so a crash names its moment).
  std::uint64_t last_checked = 0;
  auto last_progress = start;
  Clock::duration longest_stall{};
  bool broker_died = false;
  bool broker_reaped = false;
  int broker_status = 0;
  const auto broker_alive_now = [&] {
    if (!broker_reaped && ::waitpid(broker, &broker_status, WNOHANG) == broker) {
      broker_reaped = true;
    }
    return !broker_reaped;
  };
  while (shared->checked.load() < o.frames && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    const auto now = Clock::now();
    if (const std::uint64_t c = shared->checked.load(); c != last_checked) {
      last_checked = c;
      last_progress = now;
    }
    longest_stall = std::max(longest_stall, now - last_progress);
    if (now - last_progress > std::chrono::seconds(o.max_stall_seconds)) break;
    if (now >= next_kill) {
      next_kill += std::chrono::milliseconds(o.kill_every_ms);
      if (!broker_alive_now()) {
        broker_died = true;
        std::fprintf(stderr, "soak: the broker died after %llu kills\n",
                     static_cast<unsigned long long>(kills));
        break;
      }
      Child& victim = children[rng() % children.size()];
      ::kill(victim.pid, SIGKILL);
      ++kills;
    }
    // Start again whatever ended (killed, or left after its quota).
    for (Child& c : children) {
      int status = 0;
      if (::waitpid(c.pid, &status, WNOHANG) != c.pid) continue;
      if (WIFEXITED(status) && WEXITSTATUS(status) == 0) ++clean_exits;
      c = spawn(c);
    }
    if (shared->checked.load() >= next_report) {
      std::printf("soak: %llu frames checked, %llu kills, %.0f s\n",
                  static_cast<unsigned long long>(shared->checked.load()),
                  static_cast<unsigned long long>(kills),
                  std::chrono::duration<double>(Clock::now() - start).count());
      std::fflush(stdout);
      next_report += 100'000;
    }
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (Child& c : children) ::kill(c.pid, SIGKILL);
  for (Child& c : children) ::waitpid(c.pid, nullptr, 0);

  // The broker sees every connection close; give it a moment to drop what they held.
  std::size_t fds_after = 0;
  for (int i = 0; i < 500; ++i) {
    fds_after = count_fds(broker);
    if (fds_after <= fds_before) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::uint64_t rss_after = proc_kb("/proc/" + std::to_string(broker) + "/status", "VmRSS");
  const std::uint64_t shmem_after = proc_kb("/proc/meminfo", "Shmem");
  const bool broker_alive = !broker_died && broker_alive_now();
  if (broker_alive) {
    ::kill(broker, SIGTERM);
    ::waitpid(broker, &broker_status, 0);
  }

  const std::uint64_t checked = shared->checked.load();
  std::printf("soak: %llu frames checked (%llu published) in %.1f s, %.0f frames/s\n",
              static_cast<unsigned long long>(checked),
              static_cast<unsigned long long>(shared->published.load()), seconds,
              static_cast<double>(checked) / seconds);
  std::printf("soak: %llu clients killed with SIGKILL, %llu left cleanly; longest stall %.1f s\n",
              static_cast<unsigned long long>(kills), static_cast<unsigned long long>(clean_exits),
              std::chrono::duration<double>(longest_stall).count());
  if (checked < o.frames) {
    std::printf("soak: the time limit came before the goal of %llu frames (floor %llu)\n",
                static_cast<unsigned long long>(o.frames),
                static_cast<unsigned long long>(o.min_frames));
  }
  std::printf("soak: broker fds %zu -> %zu, RSS %.1f -> %.1f MiB, machine Shmem %.1f -> %.1f MiB\n",
              fds_before, fds_after, mib(rss_before), mib(rss_after), mib(shmem_before),
              mib(shmem_after));

  std::vector<std::string> failures;
  if (!broker_alive) {
    failures.push_back("the broker died (" +
                       (WIFSIGNALED(broker_status)
                            ? "signal " + std::to_string(WTERMSIG(broker_status))
                            : "exit status " + std::to_string(WEXITSTATUS(broker_status))) +
                       "; log: " + log + ")");
  } else if (WIFEXITED(broker_status) ? WEXITSTATUS(broker_status) != 0 : true) {
    failures.push_back("the broker did not exit cleanly on SIGTERM");
  }
  if (longest_stall > std::chrono::seconds(o.max_stall_seconds)) {
    failures.push_back("no frame was checked for " + std::to_string(o.max_stall_seconds) +
                       " s: frames stopped flowing");
  }
  if (checked < o.min_frames) {
    failures.push_back("only " + std::to_string(checked) + " frames checked, below the floor of " +
                       std::to_string(o.min_frames) + ": frames barely flowed");
  }
  if (shared->corrupt.load() != 0) {
    failures.push_back(std::to_string(shared->corrupt.load()) + " corrupt frames");
  }
  if (shared->errors.load() != 0) {
    failures.push_back(std::to_string(shared->errors.load()) +
                       " client errors, the last: " + shared->last_error);
  }
  if (fds_after != fds_before) failures.push_back("the broker's fd count did not come back");
  // Allocator caches and page-table noise: a little RSS may stay; a leak of frames would not.
  // (Sanitizer builds keep freed memory in quarantine and shadow: they pass a larger slack,
  // and ASan's leak check at the broker's exit covers them instead.)
  if (rss_after > rss_before + o.rss_slack_mib * 1024 * 1024) {
    failures.push_back("the broker's RSS grew by more than " + std::to_string(o.rss_slack_mib) +
                       " MiB");
  }
  // Every buffer was a memfd: once all are closed, Shmem is back, up to what other processes
  // on the machine changed meanwhile. One leaked pool alone is 1 MiB.
  if (shmem_after > shmem_before + 1024 * 1024) failures.push_back("Shmem did not come back");
  for (const auto& f : failures) std::fprintf(stderr, "soak: FAILED: %s\n", f.c_str());
  if (failures.empty()) {
    std::printf("soak: OK, nothing leaked\n");
    ::unlink(log.c_str());
    ::rmdir(dir.c_str());
  }
  return failures.empty() ? 0 : 1;
}
