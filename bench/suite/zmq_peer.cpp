// shmfd-bench-zmq: ZeroMQ 4.3 (Debian's libzmq3-dev) over ipc:// in the suite's scenarios:
//   S1  64 B ping-pong latency over PAIR sockets, unpinned and pinned to one CPU;
//   S2  3840x2160 RGBA frames per second (zero-copy send API; the ipc transport copies through
//       a Unix socket), the consumer touching one byte per page or reading every byte;
//   S4  1 KiB frames per second, no ping-pong.
//
//   shmfd-bench-zmq [--json FILE] [--quick] [--only S1|S2|S4]
#include <zmq.h>

#include <tuple>

#include "common.hpp"

namespace {

using bench::add_rates;
using bench::die;
using bench::now_ns;
using bench::Rate;
using bench::rate_of;
using bench::Results;
using bench::SharedSamples;
using bench::Work;

constexpr std::uint64_t kWarmup = 200;
constexpr std::size_t kSmall = 64;
constexpr std::size_t kKiB = 1024;

// A PAIR socket bound (or connected) to `endpoint`, with high-water marks of `hwm` messages.
class Pair {
 public:
  Pair(const std::string& endpoint, bool bind, int hwm)
      : ctx_(zmq_ctx_new()), path_(bind ? endpoint.substr(std::strlen("ipc://")) : "") {
    socket_ = zmq_socket(ctx_, ZMQ_PAIR);
    if (socket_ == nullptr) die("zmq_socket");
    zmq_setsockopt(socket_, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(socket_, ZMQ_RCVHWM, &hwm, sizeof hwm);
    const int rc =
        bind ? zmq_bind(socket_, endpoint.c_str()) : zmq_connect(socket_, endpoint.c_str());
    if (rc != 0) die(std::string("zmq bind/connect: ") + zmq_strerror(zmq_errno()));
  }
  ~Pair() {
    int linger = 10'000;  // deliver what is queued, but never hang on a dead peer
    zmq_setsockopt(socket_, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(socket_);
    zmq_ctx_term(ctx_);
    if (!path_.empty()) ::unlink(path_.c_str());  // the ipc:// socket file the bind made
  }
  Pair(const Pair&) = delete;
  Pair& operator=(const Pair&) = delete;
  void* get() const { return socket_; }

 private:
  void* ctx_;
  std::string path_;
  void* socket_ = nullptr;
};

std::string endpoint(const char* what) {
  return "ipc:///tmp/shmfd-bench-zmq-" + std::to_string(::getpid()) + "-" + what;
}

std::vector<double> ping_pong(std::uint64_t iterations, int ping_cpu, int pong_cpu) {
  SharedSamples samples(iterations);
  const std::string ep = endpoint("pingpong");
  const pid_t pong = bench::spawn(
      [&] {
        Pair pair(ep, true, 1000);
        std::vector<char> buf(256);
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const int n = zmq_recv(pair.get(), buf.data(), buf.size(), 0);
          if (n < 0 || zmq_send(pair.get(), buf.data(), static_cast<std::size_t>(n), 0) < 0)
            return 1;
        }
        return 0;
      },
      pong_cpu);
  const pid_t ping = bench::spawn(
      [&] {
        Pair pair(ep, false, 1000);
        std::vector<char> msg(kSmall, 7), buf(256);
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const std::uint64_t t0 = now_ns();
          if (zmq_send(pair.get(), msg.data(), msg.size(), 0) < 0) return 1;
          if (zmq_recv(pair.get(), buf.data(), buf.size(), 0) < 0) return 1;
          if (i >= kWarmup) samples.push(static_cast<double>(now_ns() - t0) / 2000.0);
        }
        return 0;
      },
      ping_cpu);
  if (!bench::wait_ok(ping)) die("zmq ping failed");
  bench::wait_ok(pong);
  return samples.values();
}

void no_free(void*, void*) {}

// `frames` messages of `size` bytes from one process to another; the consumer does `work`.
// `fill`: Fill::header sends one unchanging buffer with the zero-copy API; Fill::every_byte
// writes every byte of each message into a buffer of zmq's own, as a producer that makes its
// frames would.
Rate stream(std::uint64_t frames, std::size_t size, Work work, int hwm,
            bench::Fill fill = bench::Fill::header) {
  SharedSamples arrivals(frames);
  const std::string ep = endpoint("stream");
  const pid_t consumer = bench::spawn([&] {
    Pair pair(ep, true, hwm);
    std::uint64_t sink = 0;
    for (std::uint64_t i = 0; i < frames; ++i) {
      zmq_msg_t msg;
      zmq_msg_init(&msg);
      if (zmq_msg_recv(&msg, pair.get(), 0) < 0) return 1;
      sink += bench::consume(
          {static_cast<const std::byte*>(zmq_msg_data(&msg)), zmq_msg_size(&msg)}, work);
      zmq_msg_close(&msg);
      arrivals.push(static_cast<double>(now_ns()));
    }
    return sink == 1 ? 3 : 0;
  });
  const pid_t producer = bench::spawn([&] {
    std::vector<std::byte> frame(size, std::byte{1});  // outlives the socket that sends it
    Pair pair(ep, false, hwm);
    for (std::uint64_t i = 0; i < frames; ++i) {
      zmq_msg_t msg;
      if (fill == bench::Fill::every_byte) {
        if (zmq_msg_init_size(&msg, size) != 0) return 1;
        bench::fill({static_cast<std::byte*>(zmq_msg_data(&msg)), size}, i, fill);
      } else {  // zero-copy at the API: the buffer is never changed
        zmq_msg_init_data(&msg, frame.data(), frame.size(), no_free, nullptr);
      }
      if (zmq_msg_send(&msg, pair.get(), 0) < 0) return 1;
    }
    return 0;  // closing waits (linger) until the consumer has everything
  });
  bench::wait_ok(producer);
  if (!bench::wait_ok(consumer)) die("zmq consumer failed");
  return rate_of(arrivals.values());
}

}  // namespace

int main(int argc, char** argv) {
  const auto o =
      bench::parse_options(argc, argv, "shmfd-bench-zmq [--json FILE] [--quick] [--only S1|S2|S4]");
  Results results;
  int major = 0, minor = 0, patch = 0;
  zmq_version(&major, &minor, &patch);
  const std::string name = "ZeroMQ " + std::to_string(major) + "." + std::to_string(minor) + "." +
                           std::to_string(patch) + " ipc://";
  std::fprintf(stderr, "shmfd-bench-zmq: %s\n", name.c_str());
  if (o.runs("S1")) {
    for (const auto& [variant, ping_cpu, pong_cpu] :
         {std::tuple{"unpinned", -1, -1}, std::tuple{"pinned to one CPU", 0, 0},
          std::tuple{"ping and pong on two CPUs", 0, 1}}) {
      const auto v = ping_pong(o.n(20000), ping_cpu, pong_cpu);
      results.add("S1", variant, name + " PAIR", "half round trip", "us", bench::median(v),
                  bench::percentile(v, 0.99), "us", v.size());
    }
  }
  if (o.runs("S2")) {
    for (const bench::S2Variant& v : bench::kS2Variants) {
      std::vector<Rate> runs;
      for (int r = 0; r < 3; ++r)
        runs.push_back(stream(o.n(100), bench::k4KBytes, v.work, 2, v.fill));
      add_rates(results, "S2", bench::to_string(v), name, runs);
    }
  }
  if (o.runs("S4")) {
    std::vector<Rate> runs;
    for (int r = 0; r < 3; ++r) runs.push_back(stream(o.n(200000), kKiB, Work::touch, 1000));
    add_rates(results, "S4", "1 KiB frames", name, runs);
  }
  results.write(o.json);
  return 0;
}
