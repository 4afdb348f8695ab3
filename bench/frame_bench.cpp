// 4K video through shmfd, against copying: frames per second at saturation, 3840x2160 RGBA
// (33 MB a frame), three processes (producer, shmfd-broker, consumer) for the shmfd paths and
// two for the socket copy. Each transport gets the same producer work (none, or with
// --producer-touch one byte written per page) and the same consumer work: it touches one byte
// per page, or with --read-all reads every byte (a checksum), so a copy that merely moves to
// first access is not hidden. Medians of --runs runs, and ratios to the socket copy from the same
// run.
//
//   build/bin/shmfd-bench-frames [--runs 5] [--frames 600] [--read-all] [--producer-touch]
//
// Frames per second are measured at the consumer from its first frame to its last, so the
// one-time cost of first touching a pool's pages (~0.5 us a page) is spread over --frames.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "../examples/common/args.hpp"
#include "../examples/common/test_pattern.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"

namespace {

using namespace shmfd;
using examples::now_ns;

constexpr std::uint32_t kWidth = 3840, kHeight = 2160;
constexpr std::size_t kPage = 4096;

bool g_read_all = false;
bool g_producer_touch = false;

// The consumer's work on one frame.
std::uint64_t consume(std::span<const std::byte> bytes) {
  std::uint64_t sum = 0;
  if (g_read_all) {
    for (std::size_t i = 0; i + 8 <= bytes.size(); i += 8) {
      std::uint64_t w;
      std::memcpy(&w, bytes.data() + i, 8);
      sum += w;
    }
  } else {
    for (std::size_t i = 0; i < bytes.size(); i += kPage)
      sum += std::to_integer<unsigned>(bytes[i]);
  }
  return sum;
}

// The producer's work on one frame: none by default (as GStreamer's fakesrc
// filltype=nothing), or with --producer-touch one byte per page.
void produce(std::span<std::byte> bytes, std::uint64_t seq) {
  if (!g_producer_touch) return;
  for (std::size_t i = 0; i < bytes.size(); i += kPage) bytes[i] = static_cast<std::byte>(seq);
}

// Runs `consumer` in a child; it reports the frames/second it measured through a pipe.
template <typename Consumer>
pid_t spawn_consumer(int report_fd, int ready_fd, Consumer consumer) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  const double fps = consumer(ready_fd);
  (void)!::write(report_fd, &fps, sizeof fps);
  ::_exit(0);
}

double fps_of(std::uint64_t first_ns, std::uint64_t last_ns, std::uint64_t frames) {
  return frames < 2 || last_ns == first_ns
             ? 0.0
             : static_cast<double>(frames - 1) * 1e9 / static_cast<double>(last_ns - first_ns);
}

struct Pipes {
  int report[2];
  int ready[2];
  Pipes() {
    if (::pipe(report) != 0 || ::pipe(ready) != 0) std::abort();
  }
  ~Pipes() {
    for (int fd : {report[0], report[1], ready[0], ready[1]}) ::close(fd);
  }
  void wait_ready() const {
    char c;
    if (::read(ready[0], &c, 1) != 1) std::abort();
  }
  double result(pid_t child) const {
    double fps = 0;
    if (::read(report[0], &fps, sizeof fps) != sizeof fps) fps = 0;
    ::waitpid(child, nullptr, 0);
    return fps;
  }
};

// A consumer of `topic` through the broker; block-producer, so no frame is dropped.
double broker_consumer(const std::string& socket, const std::string& topic, std::uint64_t frames,
                       int ready_fd) {
  auto consumer = Consumer::connect(socket, "bench-consumer");
  if (!consumer || !consumer->subscribe(topic, 2, Backpressure::BLOCK_PRODUCER)) return 0;
  (void)!::write(ready_fd, "r", 1);
  std::uint64_t first = 0, last = 0, sink = 0;
  for (std::uint64_t i = 0; i < frames; ++i) {
    auto event = consumer->receive();
    if (!event || !std::holds_alternative<Frame>(*event)) return 0;
    sink += consume(std::get<Frame>(*event).bytes());
    last = now_ns();
    if (i == 0) first = last;
  }
  return sink == 1 ? -1 : fps_of(first, last, frames);  // `sink` keeps the reads honest
}

double run_pool(const std::string& socket, std::uint64_t frames, const Layout& layout,
                std::size_t size) {
  const std::string topic = "bench/pool";
  Pipes p;
  const pid_t child = spawn_consumer(p.report[1], p.ready[1], [&](int ready) {
    return broker_consumer(socket, topic, frames, ready);
  });
  p.wait_ready();
  auto producer = Producer::connect(socket, "bench-pool");
  if (!producer || !producer->advertise(topic, LayoutKind::IMAGE, Guarantee::pool)) std::abort();
  auto pool = producer->create_pool(topic, size, 4);
  if (!pool) std::abort();
  for (std::uint64_t seq = 1; seq <= frames; ++seq) {
    auto slot = producer->acquire(*pool);
    if (!slot) std::abort();
    produce(slot->bytes, seq);
    if (!producer->publish(topic, *slot, layout)) std::abort();
  }
  return p.result(child);
}

double run_sealed(const std::string& socket, std::uint64_t frames, const Layout& layout) {
  const std::string topic = "bench/sealed";
  Pipes p;
  const pid_t child = spawn_consumer(p.report[1], p.ready[1], [&](int ready) {
    return broker_consumer(socket, topic, frames, ready);
  });
  p.wait_ready();
  auto producer = Producer::connect(socket, "bench-sealed");
  if (!producer || !producer->advertise(topic, LayoutKind::IMAGE)) std::abort();
  for (std::uint64_t seq = 1; seq <= frames; ++seq) {
    auto buffer = producer->allocate(topic, layout);
    if (!buffer) std::abort();
    produce(buffer->bytes(), seq);
    if (!producer->publish(topic, std::move(*buffer), layout)) std::abort();
  }
  return p.result(child);
}

double run_socket_copy(std::uint64_t frames, std::size_t size) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) std::abort();
  Pipes p;
  const pid_t child = spawn_consumer(p.report[1], p.ready[1], [&](int ready) {
    ::close(sv[0]);
    std::vector<std::byte> frame(size, std::byte{1});  // touched once, up front
    (void)!::write(ready, "r", 1);
    std::uint64_t first = 0, last = 0, sink = 0;
    for (std::uint64_t i = 0; i < frames; ++i) {
      for (std::size_t got = 0; got < size;) {
        const ssize_t n = ::read(sv[1], frame.data() + got, size - got);
        if (n <= 0) return 0.0;
        got += static_cast<std::size_t>(n);
      }
      sink += consume(frame);
      last = now_ns();
      if (i == 0) first = last;
    }
    return sink == 1 ? -1.0 : fps_of(first, last, frames);
  });
  ::close(sv[1]);
  p.wait_ready();
  std::vector<std::byte> frame(size, std::byte{0});
  for (std::uint64_t seq = 1; seq <= frames; ++seq) {
    produce(frame, seq);
    for (std::size_t sent = 0; sent < size;) {
      const ssize_t n = ::write(sv[0], frame.data() + sent, size - sent);
      if (n <= 0) std::abort();
      sent += static_cast<std::size_t>(n);
    }
  }
  const double fps = p.result(child);
  ::close(sv[0]);
  return fps;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const examples::Args args(argc, argv, {"--runs", "--frames"}, {"--read-all", "--producer-touch"},
                            "usage: shmfd-bench-frames [--runs N] [--frames N] [--read-all] "
                            "[--producer-touch]\n");
  const auto runs = args.number("--runs", 5);
  const auto frames = args.number("--frames", 600);
  g_read_all = args.has("--read-all");
  g_producer_touch = args.has("--producer-touch");

  // shmfd-broker from the same build, on a private socket.
  const std::string dir = "/tmp/shmfd-bench-" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  const std::string socket = dir + "/broker.sock";
  const std::string broker_bin =
      (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "shmfd-broker").string();
  const pid_t broker = ::fork();
  if (broker == 0) {
    ::execl(broker_bin.c_str(), broker_bin.c_str(), "--socket", socket.c_str(), "--log-level",
            "error", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  for (int i = 0; i < 1000 && !std::filesystem::exists(socket); ++i) ::usleep(1000);

  const auto layout = *image_layout(PixelFormat::rgba8, kWidth, kHeight);
  const std::size_t size = layout.planes[0].size;
  std::vector<double> pool, sealed, copy;
  for (std::uint64_t r = 0; r < runs; ++r) {
    pool.push_back(run_pool(socket, frames, layout, size));
    sealed.push_back(run_sealed(socket, std::max<std::uint64_t>(frames / 4, 8), layout));
    copy.push_back(run_socket_copy(std::max<std::uint64_t>(frames / 2, 8), size));
    std::fprintf(stderr, "run %llu: pool %.1f fps, sealed %.1f fps, socket copy %.1f fps\n",
                 static_cast<unsigned long long>(r + 1), pool.back(), sealed.back(), copy.back());
  }
  ::kill(broker, SIGTERM);
  ::waitpid(broker, nullptr, 0);
  std::filesystem::remove_all(dir);

  const double c = median(copy);
  std::printf("4K RGBA (%ux%u, %zu bytes); producer %s; consumer %s; medians of %llu runs:\n\n",
              kWidth, kHeight, size,
              g_producer_touch ? "writes one byte per page" : "does no per-frame work",
              g_read_all ? "reads every byte" : "touches one byte per page",
              static_cast<unsigned long long>(runs));
  std::printf("| transport | frames/s | vs socket copy |\n| --- | ---: | ---: |\n");
  std::printf("| shmfd pool (4 slots) via broker | %.1f | %.1fx |\n", median(pool),
              median(pool) / c);
  std::printf("| shmfd sealed memfd per frame via broker | %.1f | %.2fx |\n", median(sealed),
              median(sealed) / c);
  std::printf("| Unix stream socket copy | %.1f | 1.00x |\n", c);
  return 0;
}
