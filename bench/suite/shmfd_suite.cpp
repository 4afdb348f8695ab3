// shmfd-bench-suite: shmfd and its baselines in the scenarios of the benchmark suite.
//   S1  64 B ping-pong latency (half the round trip): a direct SEQPACKET hop with one fd (the
//       floor), shmfd through the broker with sealed buffers and with a pool; pinned to one
//       CPU and unpinned.
//   S2  3840x2160 RGBA frames per second at saturation: shmfd pool, a fresh sealed memfd per
//       frame, a Unix stream socket copy; the consumer touches one byte per page, or reads
//       every byte.
//   S3  fan-out to 1, 2, 4, 8, 16 consumers of 4K pool frames: time until all have a frame,
//       and the broker's CPU time per frame.
//   S4  1 KiB frames per second from a pool, no ping-pong; a direct SEQPACKET stream as
//       the baseline.
//   S5  memory: the broker's RSS idle and with 100 clients on 10 topics; total PSS of producer
//       + 4 consumers for the pool path and for the socket-copy path.
//   S8  a call's round trip through the broker (services): 64 B and a 4K RGBA frame each way.
//   S1, S4 also run over a channel (shmfd/wire/channel.hpp, channel_rows.cpp): the pool path once
//       the broker has set it up, with no broker on it.
// The peers (iceoryx, ZeroMQ, GStreamer) are separate programs, built when installed.
//
//   shmfd-bench-suite [--json FILE] [--quick] [--only S1|S2|S3|S4|S5|S6|S8] [--variant TEXT]
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <array>
#include <map>
#include <memory>
#include <optional>
#include <tuple>

#include "call_rows.hpp"
#include "channel_rows.hpp"
#include "common.hpp"
#include "must.hpp"
#include "shmfd/connection.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/wire/transport.hpp"
#include "support/hugepages.hpp"
#include "syscalls.hpp"

namespace {

using namespace shmfd;
using bench::add_rates;
using bench::die;
using bench::must;
using bench::now_ns;
using bench::Rate;
using bench::rate_of;
using bench::Results;
using bench::SharedSamples;
using bench::Signal;
using bench::Work;

// ---- S1: latency ----------------------------------------------------------------------------

constexpr std::size_t kSmall = 64;
constexpr std::uint64_t kWarmup = 200;

// Receives one message with its fd from `from` and sends both on to `to`; false at the end.
bool forward(int from, int to, std::vector<std::byte>& buf) {
  auto m = receive_message(from, buf, 1);
  if (!m || m->status != RecvStatus::message) return false;
  const int fd = m->fds.empty() ? -1 : m->fds[0].get();
  return send_message(to, std::span(buf).first(m->size), std::span<const int>(&fd, 1)).has_value();
}

// Ping-pong of 64-byte messages, each with one fd (a memfd), over SEQPACKET sockets: directly
// between two processes, or `relayed` through a third process that only forwards each message
// and its fd. Relayed is two hops each way, the floor of any design that routes through a
// broker.
std::vector<double> raw_hop(std::uint64_t iterations, int ping_cpu, int pong_cpu, bool relayed) {
  int a[2], b[2] = {-1, -1};
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, a) != 0) die("socketpair");
  if (relayed && ::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, b) != 0) die("socketpair");
  const int pong_socket = relayed ? b[1] : a[1];
  // Each process keeps its own sockets, so that a peer's exit reads as end of file.
  const auto keep_only = [&](std::initializer_list<int> mine) {
    for (int fd : {a[0], a[1], b[0], b[1]}) {
      if (fd >= 0 && std::find(mine.begin(), mine.end(), fd) == mine.end()) ::close(fd);
    }
  };
  SharedSamples samples(iterations);
  pid_t relay = -1;
  if (relayed) {
    relay = bench::spawn(
        [&] {
          keep_only({a[1], b[0]});
          std::vector<std::byte> buf(256);
          pollfd fds[2] = {{a[1], POLLIN, 0}, {b[0], POLLIN, 0}};
          for (;;) {
            if (::poll(fds, 2, -1) < 0) return 1;
            for (int i = 0; i < 2; ++i) {
              if (fds[i].revents != 0 && !forward(fds[i].fd, fds[1 - i].fd, buf)) return 0;
            }
          }
        },
        ping_cpu == pong_cpu ? ping_cpu : -1);
  }
  const pid_t pong = bench::spawn(
      [&] {
        keep_only({pong_socket});
        std::vector<std::byte> buf(256);
        while (forward(pong_socket, pong_socket, buf)) {
        }
        return 0;
      },
      pong_cpu);
  const pid_t ping = bench::spawn(
      [&] {
        keep_only({a[0]});
        auto memfd = must(create_memfd("ping", 4096), "memfd");
        const int fd = memfd.get();
        std::vector<std::byte> msg(kSmall, std::byte{7}), buf(256);
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const std::uint64_t t0 = now_ns();
          if (!send_message(a[0], msg, std::span<const int>(&fd, 1))) return 1;
          auto m = receive_message(a[0], buf, 1);
          if (!m || m->status != RecvStatus::message) return 1;
          if (i >= kWarmup) samples.push(static_cast<double>(now_ns() - t0) / 2000.0);
        }
        return 0;
      },
      ping_cpu);
  keep_only({});
  if (!bench::wait_ok(ping)) die(relayed ? "relayed hop: ping failed" : "direct hop: ping failed");
  bench::wait_ok(pong);
  if (relayed) bench::wait_ok(relay);
  return samples.values();
}

// One side of a ping-pong through the broker: publishes on `out`, receives on `in`.
struct Side {
  Producer producer;
  Consumer consumer;
  std::uint32_t pool = 0;
};

Side open_side(const std::string& socket, const std::string& in, const std::string& out,
               bool pooled) {
  auto consumer = must(Consumer::connect(socket, "bench-latency"), "connect");
  must(consumer.subscribe(in, 4, Backpressure::block_producer), "subscribe");
  auto producer = must(Producer::connect(socket, "bench-latency"), "connect");
  must(producer.advertise(out, LayoutKind::blob, pooled ? Guarantee::pool : Guarantee::sealed),
       "advertise");
  Side side{std::move(producer), std::move(consumer), 0};
  if (pooled) side.pool = must(side.producer.create_pool(out, kSmall, 8), "create_pool");
  return side;
}

void send_small(Side& side, const std::string& topic, bool pooled) {
  const Layout layout = blob_layout(kSmall);
  if (pooled) {
    auto slot = must(side.producer.acquire(side.pool), "acquire");
    std::memset(slot.bytes.data(), 7, kSmall);
    must(side.producer.publish(topic, slot, layout), "publish");
  } else {
    auto buffer = must(side.producer.allocate(topic, layout), "allocate");
    std::memset(buffer.bytes().data(), 7, kSmall);
    must(side.producer.publish(topic, std::move(buffer), layout), "publish");
  }
}

Frame receive_frame(Consumer& consumer) {
  auto event = must(consumer.receive(), "receive");
  if (!std::holds_alternative<Frame>(event)) die("unexpected end of stream");
  return std::move(std::get<Frame>(event));
}

std::vector<double> broker_hop(std::uint64_t iterations, int ping_cpu, int pong_cpu, bool pooled) {
  bench::BrokerProcess broker(ping_cpu == pong_cpu ? ping_cpu : -1);
  SharedSamples samples(iterations);
  Signal pong_ready;
  const std::string socket = broker.socket();
  const pid_t pong = bench::spawn(
      [&] {
        Side side = open_side(socket, "ping", "pong", pooled);
        pong_ready.post();
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          Frame in = receive_frame(side.consumer);
          send_small(side, "pong", pooled);
        }
        return 0;
      },
      pong_cpu);
  const pid_t ping = bench::spawn(
      [&] {
        Side side = open_side(socket, "pong", "ping", pooled);
        pong_ready.wait();
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const std::uint64_t t0 = now_ns();
          send_small(side, "ping", pooled);
          Frame back = receive_frame(side.consumer);
          if (i >= kWarmup) samples.push(static_cast<double>(now_ns() - t0) / 2000.0);
        }
        return 0;
      },
      ping_cpu);
  if (!bench::wait_ok(ping)) die("broker hop: ping failed");
  bench::wait_ok(pong);
  return samples.values();
}

// The suite runs with SHMFD_CHANNELS=0, so that the rows named "broker" measure the broker's
// path; rows of the client library on channels (the default for programs) set it to 1 while
// their processes start (children inherit it).
struct ChannelsOn {
  ChannelsOn() { ::setenv("SHMFD_CHANNELS", "1", 1); }
  ~ChannelsOn() { ::setenv("SHMFD_CHANNELS", "0", 1); }
  ChannelsOn(const ChannelsOn&) = delete;
  ChannelsOn& operator=(const ChannelsOn&) = delete;
};

void s1(Results& results, const bench::Options& o) {
  const std::uint64_t n = o.n(20000);
  struct Placement {
    const char* variant;
    int ping_cpu, pong_cpu;
  };
  // Unpinned, the scheduler may put both ends on one CPU or on two, and on a VM a wake-up
  // across CPUs costs far more: "on two CPUs" measures that case alone (the broker unpinned).
  for (const Placement& p : {Placement{"unpinned", -1, -1}, Placement{"pinned to one CPU", 0, 0},
                             Placement{"ping and pong on two CPUs", 0, 1}}) {
    if (!o.runs_variant(p.variant)) continue;
    const auto add = [&](const std::string& name, const std::vector<double>& v) {
      results.add("S1", p.variant, name, "half round trip", "us", bench::median(v),
                  bench::percentile(v, 0.99), "us", v.size());
    };
    add("direct SEQPACKET hop with one fd", raw_hop(n, p.ping_cpu, p.pong_cpu, false));
    add("relayed SEQPACKET hop (any broker's floor)", raw_hop(n, p.ping_cpu, p.pong_cpu, true));
    add("shmfd broker, pool", broker_hop(n, p.ping_cpu, p.pong_cpu, true));
    {
      ChannelsOn on;
      add("shmfd library, pool on a channel the broker set up",
          broker_hop(n, p.ping_cpu, p.pong_cpu, true));
    }
    add("shmfd channel, pool (no broker on the path)",
        bench::channel_hop(n, p.ping_cpu, p.pong_cpu));
    add("shmfd broker, sealed memfd per message", broker_hop(n / 2, p.ping_cpu, p.pong_cpu, false));
  }
}

// ---- S2: 4K frames ---------------------------------------------------------------------------

// A consumer of `topic` that records when each frame arrived (after its work on it).
int broker_consumer(const std::string& socket, const std::string& topic, std::uint64_t frames,
                    Work work, SharedSamples& arrivals, const Signal& ready, std::uint32_t depth) {
  auto consumer = must(Consumer::connect(socket, "bench-consumer"), "connect");
  must(consumer.subscribe(topic, depth, Backpressure::block_producer), "subscribe");
  ready.post();
  std::uint64_t sink = 0;
  for (std::uint64_t i = 0; i < frames; ++i) {
    Frame f = receive_frame(consumer);
    sink += bench::consume(f.bytes(), work);
    arrivals.push(static_cast<double>(now_ns()));
  }
  return sink == 1 ? 3 : 0;  // `sink` keeps the reads honest
}

Rate run_pool_4k(const std::string& socket, std::uint64_t frames, bench::S2Variant v,
                 bool huge_pages = false) {
  const Work work = v.work;
  const auto layout = *image_layout(PixelFormat::rgba8, bench::k4KWidth, bench::k4KHeight);
  SharedSamples arrivals(frames);
  Signal ready;
  const pid_t child = bench::spawn(
      [&] { return broker_consumer(socket, "s2/pool", frames, work, arrivals, ready, 2); });
  ready.wait();
  auto producer = must(Producer::connect(socket, "bench-pool"), "connect");
  must(producer.advertise("s2/pool", LayoutKind::image, Guarantee::pool), "advertise");
  const auto pool = must(
      producer.create_pool("s2/pool", bench::k4KBytes, 4, MemfdOptions{.huge_pages = huge_pages}),
      "create_pool");
  for (std::uint64_t i = 0; i < frames; ++i) {
    auto slot = must(producer.acquire(pool), "acquire");
    bench::fill(slot.bytes, i, v.fill);
    must(producer.publish("s2/pool", slot, layout), "publish");
  }
  bench::wait_ok(child);
  return rate_of(arrivals.values());
}

Rate run_sealed_4k(const std::string& socket, std::uint64_t frames, bench::S2Variant v) {
  const Work work = v.work;
  const auto layout = *image_layout(PixelFormat::rgba8, bench::k4KWidth, bench::k4KHeight);
  SharedSamples arrivals(frames);
  Signal ready;
  const pid_t child = bench::spawn(
      [&] { return broker_consumer(socket, "s2/sealed", frames, work, arrivals, ready, 2); });
  ready.wait();
  auto producer = must(Producer::connect(socket, "bench-sealed"), "connect");
  must(producer.advertise("s2/sealed", LayoutKind::image), "advertise");
  for (std::uint64_t i = 0; i < frames; ++i) {
    auto buffer = must(producer.allocate("s2/sealed", layout), "allocate");
    bench::fill(buffer.bytes(), i, v.fill);
    must(producer.publish("s2/sealed", std::move(buffer), layout), "publish");
  }
  bench::wait_ok(child);
  return rate_of(arrivals.values());
}

// Writes all of `bytes` to a stream socket.
bool write_all(int fd, std::span<const std::byte> bytes) {
  for (std::size_t sent = 0; sent < bytes.size();) {
    const ssize_t n = ::write(fd, bytes.data() + sent, bytes.size() - sent);
    if (n <= 0) return false;
    sent += static_cast<std::size_t>(n);
  }
  return true;
}
bool read_all(int fd, std::span<std::byte> bytes) {
  for (std::size_t got = 0; got < bytes.size();) {
    const ssize_t n = ::read(fd, bytes.data() + got, bytes.size() - got);
    if (n <= 0) return false;
    got += static_cast<std::size_t>(n);
  }
  return true;
}

Rate run_copy_4k(std::uint64_t frames, bench::S2Variant v) {
  const Work work = v.work;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
  SharedSamples arrivals(frames);
  const pid_t child = bench::spawn([&] {
    ::close(sv[0]);
    std::vector<std::byte> frame(bench::k4KBytes, std::byte{1});  // touched once, up front
    std::uint64_t sink = 0;
    for (std::uint64_t i = 0; i < frames; ++i) {
      if (!read_all(sv[1], frame)) return 1;
      sink += bench::consume(frame, work);
      arrivals.push(static_cast<double>(now_ns()));
    }
    return sink == 1 ? 3 : 0;
  });
  ::close(sv[1]);
  std::vector<std::byte> frame(bench::k4KBytes, std::byte{0});
  for (std::uint64_t i = 0; i < frames; ++i) {
    bench::fill(frame, i, v.fill);
    if (!write_all(sv[0], frame)) die("socket copy: write");
  }
  ::close(sv[0]);
  bench::wait_ok(child);
  return rate_of(arrivals.values());
}

void s2(Results& results, const bench::Options& o) {
  bench::BrokerProcess broker;
  constexpr int kRuns = 3;
  // 4 slots of 16 huge pages each, if this process may reserve them (root): reading a frame
  // then crosses 16 pages instead of 8100, and the CPU's prefetcher streams across each.
  testing::HugePageReservation huge(4 * 17);
  for (const bench::S2Variant& v : bench::kS2Variants) {
    const Work work = v.work;
    const std::string variant = bench::to_string(v);
    const std::uint64_t frames = o.n(work == Work::touch ? 600 : 200);
    std::vector<Rate> pool, huge_pool, channel, sealed, copy;
    for (int r = 0; r < kRuns; ++r) {
      pool.push_back(run_pool_4k(broker.socket(), frames, v));
      if (huge.ok()) huge_pool.push_back(run_pool_4k(broker.socket(), frames, v, true));
      channel.push_back(bench::channel_4k(frames, v));
      sealed.push_back(run_sealed_4k(broker.socket(), o.n(60), v));
      copy.push_back(run_copy_4k(o.n(100), v));
    }
    add_rates(results, "S2", variant, "shmfd pool (4 slots) via broker", pool);
    if (huge.ok()) {
      add_rates(results, "S2", variant, "shmfd pool (4 slots, 2 MiB huge pages) via broker",
                huge_pool);
    } else {
      results.skip("S2", "shmfd pool with huge pages",
                   "needs root to reserve vm.nr_hugepages (or reserved pages)");
    }
    add_rates(results, "S2", variant, "shmfd pool (4 slots) via channel (no broker on the path)",
              channel);
    add_rates(results, "S2", variant, "shmfd sealed memfd per frame via broker", sealed);
    add_rates(results, "S2", variant, "Unix stream socket copy", copy);
    // Both sides' work, in one process, is no ceiling when two processes share it out.
    if (v.fill != bench::Fill::header) continue;
    // The consumer's work alone, on frames already in memory and no transport: no transport
    // can deliver faster than its consumer works. Four frames in turn, like the pool's four
    // slots: one frame read again and again stays in the CPU's cache, which no transport of
    // a stream of frames gets (on this VM that alone reads 2.4 times as fast).
    std::vector<double> alone;
    {
      std::vector<std::vector<std::byte>> in_memory(
          4, std::vector<std::byte>(bench::k4KBytes, std::byte{1}));
      std::uint64_t sink = 0;
      for (std::uint64_t i = 0; i < frames; ++i) {
        sink += bench::consume(in_memory[i % in_memory.size()], work);
        alone.push_back(static_cast<double>(now_ns()));
      }
      if (sink == 1) die("impossible");
    }
    add_rates(results, "S2", variant, "consumer work alone, 4 frames in turn (the ceiling)",
              {rate_of(alone)});
  }
}

// ---- S3: fan-out -----------------------------------------------------------------------------

// The first frames cost each consumer the mapping of the pool: not measured.
constexpr std::uint64_t kFanOutWarmup = 5;

void s3(Results& results, const bench::Options& o) {
  const auto layout = *image_layout(PixelFormat::rgba8, bench::k4KWidth, bench::k4KHeight);
  const std::uint64_t frames = o.n(150);
  for (std::uint32_t consumers : {1U, 2U, 4U, 8U, 16U}) {
    for (const bool channels : {false, true}) {
      std::optional<ChannelsOn> on;
      if (channels) on.emplace();
      bench::BrokerProcess broker;
      // latency[c * frames + f]: when consumer c had frame f, minus when it was published.
      SharedSamples latency(std::size_t{consumers} * frames);
      Signal ready, received_all, leave;
      std::vector<pid_t> children;
      for (std::uint32_t c = 0; c < consumers; ++c) {
        children.push_back(bench::spawn([&, c] {
          auto consumer = must(Consumer::connect(broker.socket(), "fan-out"), "connect");
          must(consumer.subscribe("s3", 2, Backpressure::block_producer), "subscribe");
          ready.post();
          std::uint64_t sink = 0;
          for (std::uint64_t f = 0; f < frames; ++f) {
            Frame frame = receive_frame(consumer);
            latency.at(c * frames + f) = static_cast<double>(now_ns() - frame.timestamp_ns()) / 1e3;
            // Only a look at the first byte: with 16 consumers on 2 CPUs, touching every page
            // (8100 of them) would measure the consumers' work, not the delivery.
            sink += std::to_integer<unsigned>(frame.bytes()[0]);
          }
          received_all.post();
          leave.wait();  // connected until the broker's CPU time is read: closing costs it too
          return sink == 1 ? 3 : 0;
        }));
      }
      for (std::uint32_t c = 0; c < consumers; ++c) ready.wait();
      auto producer = must(Producer::connect(broker.socket(), "fan-out"), "connect");
      must(producer.advertise("s3", LayoutKind::image, Guarantee::pool), "advertise");
      // Every consumer gets the same frames: with block-producer queues of depth 2, at most
      // 2 (window) + 2 (queue) frames are out at once, whatever the fan-out; one more to write.
      const auto pool = must(producer.create_pool("s3", bench::k4KBytes, 5), "create_pool");
      ::usleep(50'000);
      const std::uint64_t cpu_before = bench::cpu_ns(broker.pid());
      for (std::uint64_t f = 0; f < frames; ++f) {
        auto slot = must(producer.acquire(pool), "acquire");
        must(producer.publish("s3", slot, layout), "publish");
        ::usleep(10'000);  // paced: this measures latency, not queueing
      }
      for (std::uint32_t c = 0; c < consumers; ++c) received_all.wait();
      const std::uint64_t cpu_after = bench::cpu_ns(broker.pid());
      for (std::uint32_t c = 0; c < consumers; ++c) leave.post();
      for (pid_t child : children) bench::wait_ok(child);
      const auto all_have = bench::slowest_per_frame(latency, consumers, frames, kFanOutWarmup);
      const std::string variant = std::to_string(consumers) + " consumers";
      if (channels) {
        results.add("S3", variant, "shmfd library, pool on channels the broker set up",
                    "until all have the frame", "us", bench::median(all_have),
                    bench::percentile(all_have, 0.99), "us", all_have.size());
        continue;
      }
      results.add("S3", variant, "shmfd pool via broker", "until all have the frame", "us",
                  bench::median(all_have), bench::percentile(all_have, 0.99), "us",
                  all_have.size());
      const auto channel = bench::channel_fan_out(consumers, frames, kFanOutWarmup);
      results.add("S3", variant, "shmfd pool via channels (no broker on the path)",
                  "until all have the frame", "us", bench::median(channel),
                  bench::percentile(channel, 0.99), "us", channel.size());
      results.add("S3", variant, "shmfd broker CPU per frame", "broker CPU per frame", "us",
                  static_cast<double>(cpu_after - cpu_before) / 1e3 / static_cast<double>(frames),
                  NAN, "", frames);
    }
  }
}

// ---- S4: streaming 1 KiB ---------------------------------------------------------------------

constexpr std::size_t kKiB = 1024;
constexpr const char* kSyscallVariant = "system calls per 1 KiB frame";
constexpr const char* kMetaVariant = "1 KiB frames, each with pts, duration, flags, 64-B header";

// The producer's side of S4 through the client library: `consumers` consumers of the topic
// (each touching its frames), one producer streaming `frames` 1 KiB pool frames, lossless. The
// rate is how fast every consumer got every frame; `calls`, if counting, gets the machine's
// system calls per frame while the frames flowed. With `meta`, every frame carries a pts, a
// duration, flags and a 64-byte user header (protocol version 5), which the consumer's library
// copies out and checks with the frame.
Rate library_stream(std::uint64_t frames, std::uint32_t consumers, bench::SyscallCounter* counter,
                    std::vector<double>* calls, bool meta = false) {
  bench::BrokerProcess broker;
  SharedSamples arrivals(frames * consumers);
  Signal ready;
  std::vector<pid_t> children;
  for (std::uint32_t c = 0; c < consumers; ++c) {
    children.push_back(bench::spawn([&] {
      return broker_consumer(broker.socket(), "s4", frames, Work::touch, arrivals, ready, 32);
    }));
  }
  for (std::uint32_t c = 0; c < consumers; ++c) ready.wait();
  auto producer = must(Producer::connect(broker.socket(), "stream"), "connect");
  TopicOptions options;
  if (meta) options.max_header_bytes = 64;
  must(producer.advertise("s4", LayoutKind::blob, Guarantee::pool, options), "advertise");
  const auto p = must(producer.create_pool("s4", kKiB, 128), "create_pool");
  const Layout layout = blob_layout(kKiB);
  std::array<std::byte, 64> header{};
  FrameMeta with;
  if (meta) {
    with.duration = 16'666'667;
    with.header = header;
  }
  if (counter) counter->start();
  for (std::uint64_t i = 0; i < frames; ++i) {
    auto slot = must(producer.acquire(p), "acquire");
    std::memset(slot.bytes.data(), static_cast<int>(i), 64);
    if (meta) {
      with.pts = i * 16'666'667;
      with.flags = i % 30 == 0 ? 0 : static_cast<std::uint32_t>(FrameFlag::delta_unit);
      std::memcpy(header.data(), &i, sizeof i);
      must(producer.publish("s4", slot, layout, with), "publish");
    } else {
      must(producer.publish("s4", slot, layout), "publish");
    }
  }
  for (pid_t child : children) bench::wait_ok(child);
  if (counter) calls->push_back(static_cast<double>(counter->stop()) / static_cast<double>(frames));
  return bench::rate_of_all(arrivals.values(), consumers);
}

void s4(Results& results, const bench::Options& o) {
  const std::uint64_t frames = o.n(200000);
  constexpr int kRuns = 3;
  bench::SyscallCounter counter;
  bench::SyscallCounter* count = counter.unavailable() ? nullptr : &counter;
  std::vector<Rate> pool, library, channel, direct, library4, pool_meta, library_meta;
  // System calls per frame, machine-wide, for each row.
  std::vector<double> pool_calls, library_calls, channel_calls, direct_calls, library4_calls;
  for (int r = 0; r < kRuns; ++r) {
    {
      // Through the broker (SHMFD_CHANNELS=0), then on the channel it sets up (the default).
      pool.push_back(library_stream(frames, 1, count, &pool_calls));
      pool_meta.push_back(library_stream(frames, 1, nullptr, nullptr, true));
      ChannelsOn on;
      library.push_back(library_stream(frames, 1, count, &library_calls));
      library_meta.push_back(library_stream(frames, 1, nullptr, nullptr, true));
      library4.push_back(library_stream(frames, 4, count, &library4_calls));
    }
    if (count) count->start();
    channel.push_back(bench::channel_stream(frames));
    if (count)
      channel_calls.push_back(static_cast<double>(count->stop()) / static_cast<double>(frames));
    {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0) die("socketpair");
      SharedSamples arrivals(frames);
      const pid_t child = bench::spawn([&] {
        ::close(sv[0]);
        std::vector<std::byte> buf(kKiB);
        for (std::uint64_t i = 0; i < frames; ++i) {
          if (::read(sv[1], buf.data(), buf.size()) != static_cast<ssize_t>(kKiB)) return 1;
          arrivals.push(static_cast<double>(now_ns()));
        }
        return 0;
      });
      ::close(sv[1]);
      std::vector<std::byte> msg(kKiB, std::byte{1});
      if (count) count->start();
      for (std::uint64_t i = 0; i < frames; ++i) {
        if (::write(sv[0], msg.data(), msg.size()) != static_cast<ssize_t>(kKiB)) die("write");
      }
      bench::wait_ok(child);
      if (count)
        direct_calls.push_back(static_cast<double>(count->stop()) / static_cast<double>(frames));
      ::close(sv[0]);
      direct.push_back(rate_of(arrivals.values()));
    }
  }
  add_rates(results, "S4", "1 KiB frames", "shmfd pool via broker", pool);
  add_rates(results, "S4", "1 KiB frames", "shmfd library, pool on a channel the broker set up",
            library);
  add_rates(results, "S4", "1 KiB frames", "shmfd pool via channel (no broker on the path)",
            channel);
  add_rates(results, "S4", "1 KiB frames", "direct SEQPACKET stream (copy, no broker)", direct);
  add_rates(results, "S4", "1 KiB frames to 4 consumers",
            "shmfd library, pool on channels the broker set up", library4);
  // The same streams with metadata on every frame, beside the rows without (issue 34: ≥ 0.9×).
  add_rates(results, "S4", kMetaVariant, "shmfd pool via broker", pool_meta);
  add_rates(results, "S4", kMetaVariant, "shmfd library, pool on a channel the broker set up",
            library_meta);
  if (!count) {
    results.skip("S4", "shmfd system calls per frame", *counter.unavailable());
    return;
  }
  const auto add_calls = [&](const std::string& name, const std::vector<double>& calls) {
    results.add("S4", kSyscallVariant, name, "system calls per frame, machine-wide", "calls",
                bench::median(calls), NAN, "", calls.size());
  };
  add_calls("shmfd pool via broker", pool_calls);
  add_calls("shmfd library, pool on a channel the broker set up", library_calls);
  add_calls("shmfd library, pool on channels to 4 consumers", library4_calls);
  add_calls("shmfd pool via channel (no broker on the path)", channel_calls);
  add_calls("direct SEQPACKET stream (copy, no broker)", direct_calls);
}

// ---- S6: the Python consumer's cost per frame -------------------------------------------------

// A consumer's time per 4K pool frame at saturation, through the client library on a channel:
// C++ (receive, look at one byte, release) against the Python package doing the same with a
// numpy array (bench/suite/py_consumer.py). The difference is what Python adds per frame.
void s6(Results& results, const bench::Options& o) {
#ifdef SHMFD_BENCH_PYTHON
  const std::uint64_t frames = o.n(3000);
  const auto layout = *image_layout(PixelFormat::rgba8, bench::k4KWidth, bench::k4KHeight);
  const std::string variant = "4K RGBA pool frames, one byte looked at";
  ChannelsOn on;
  std::vector<double> cpp_us, py_us;
  for (int r = 0; r < 3; ++r) {
    {
      bench::BrokerProcess broker;
      auto producer = must(Producer::connect(broker.socket(), "s6"), "connect");
      must(producer.advertise("s6", LayoutKind::image, Guarantee::pool), "advertise");
      const auto pool = must(producer.create_pool("s6", bench::k4KBytes, 4), "create_pool");
      SharedSamples arrivals(frames);
      Signal ready;
      const pid_t child = bench::spawn([&] {
        auto consumer = must(Consumer::connect(broker.socket(), "bench-cpp"), "connect");
        must(consumer.subscribe("s6", 2, Backpressure::block_producer), "subscribe");
        ready.post();
        std::uint64_t sink = 0;
        for (std::uint64_t i = 0; i < frames; ++i) {
          Frame f = receive_frame(consumer);
          sink += std::to_integer<unsigned>(f.bytes()[0]);
          arrivals.push(static_cast<double>(now_ns()));
        }
        return sink == 1 ? 3 : 0;
      });
      ready.wait();
      for (std::uint64_t i = 0; i < frames; ++i) {
        auto slot = must(producer.acquire(pool), "acquire");
        bench::fill(slot.bytes, i, bench::Fill::header);
        must(producer.publish("s6", slot, layout), "publish");
      }
      bench::wait_ok(child);
      cpp_us.push_back(1e6 / rate_of(arrivals.values()).fps);
    }
    {
      bench::BrokerProcess broker;
      // The topic first: the Python consumer subscribes as soon as it starts.
      auto producer = must(Producer::connect(broker.socket(), "s6"), "connect");
      must(producer.advertise("s6", LayoutKind::image, Guarantee::pool), "advertise");
      const auto pool = must(producer.create_pool("s6", bench::k4KBytes, 4), "create_pool");
      const std::string command = "PYTHONPATH=" SHMFD_BENCH_PYTHONPATH " " SHMFD_BENCH_PYTHON
                                  " " SHMFD_BENCH_PY_CONSUMER " " +
                                  broker.socket() + " s6 " + std::to_string(frames);
      std::fflush(nullptr);
      FILE* py = ::popen(command.c_str(), "r");
      if (py == nullptr) die("popen " + command);
      char line[256];
      if (!std::fgets(line, sizeof line, py) || std::string(line) != "subscribed\n") {
        ::pclose(py);
        results.skip("S6", "Python consumer", "the Python consumer did not start: " + command);
        return;
      }
      for (std::uint64_t i = 0; i < frames; ++i) {
        auto slot = must(producer.acquire(pool), "acquire");
        bench::fill(slot.bytes, i, bench::Fill::header);
        must(producer.publish("s6", slot, layout), "publish");
      }
      const bool got = std::fgets(line, sizeof line, py) != nullptr;
      if (::pclose(py) != 0 || !got) die("the Python consumer failed");
      const auto report = nlohmann::json::parse(line);
      py_us.push_back(1e6 / report.at("fps").get<double>());
    }
  }
  results.add("S6", variant, "C++ consumer (shmfd library, channel)", "time per frame", "us",
              bench::median(cpp_us), NAN, "", cpp_us.size());
  results.add("S6", variant, "Python consumer (shmfd package, numpy array)", "time per frame", "us",
              bench::median(py_us), NAN, "", py_us.size());
  results.add("S6", variant, "Python's cost per frame over C++", "time per frame", "us",
              bench::median(py_us) - bench::median(cpp_us), NAN, "", py_us.size());
#else
  (void)o;
  results.skip("S6", "Python consumer", "the Python package was not built (SHMFD_BUILD_PYTHON)");
#endif
}

// ---- S5: memory ------------------------------------------------------------------------------

void s5(Results& results, const bench::Options& o) {
  {
    bench::BrokerProcess broker;
    ::usleep(100'000);
    results.add("S5", "broker", "shmfd broker RSS, idle", "RSS", "MiB",
                static_cast<double>(bench::rss_bytes(broker.pid())) / (1 << 20));
    // 100 clients on 10 topics: a producer and 9 consumers per topic, a few frames each.
    std::vector<Producer> producers;
    std::vector<Consumer> consumers;
    for (int t = 0; t < 10; ++t) {
      const std::string topic = "s5/" + std::to_string(t);
      for (int c = 0; c < 9; ++c) {
        consumers.push_back(must(Consumer::connect(broker.socket(), "s5"), "connect"));
        must(consumers.back().subscribe(topic, 4), "subscribe");
      }
      producers.push_back(must(Producer::connect(broker.socket(), "s5"), "connect"));
      must(producers.back().advertise(topic, LayoutKind::blob, Guarantee::pool), "advertise");
      const auto pool = must(producers.back().create_pool(topic, 4096, 64), "create_pool");
      for (int f = 0; f < 8; ++f) {
        auto slot = must(producers.back().acquire(pool), "acquire");
        must(producers.back().publish(topic, slot, blob_layout(4096)), "publish");
      }
    }
    ::usleep(200'000);
    results.add("S5", "broker", "shmfd broker RSS, 100 clients on 10 topics", "RSS", "MiB",
                static_cast<double>(bench::rss_bytes(broker.pid())) / (1 << 20));
  }
  {
    // What one more idle client costs the broker: 1000 consumers, each subscribed to one of
    // 10 topics. Later options win: 1000 clients, and a per-client fd budget that lets the
    // broker serve them under a 20000-fd RLIMIT_NOFILE (it lowers --max-clients otherwise).
    rlimit fds{};
    ::getrlimit(RLIMIT_NOFILE, &fds);
    fds.rlim_cur = fds.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &fds);
    constexpr int kClients = 1000;
    bench::BrokerProcess broker(
        -1, {"--max-clients", "1100", "--max-queued-fds", "8", "--max-pools", "1"});
    ::usleep(100'000);
    const auto idle = static_cast<double>(bench::rss_bytes(broker.pid()));
    std::vector<Consumer> consumers;
    consumers.reserve(kClients);
    for (int c = 0; c < kClients; ++c) {
      consumers.push_back(must(Consumer::connect(broker.socket(), "s5"), "connect"));
      must(consumers.back().subscribe("s5/" + std::to_string(c % 10), 4), "subscribe");
    }
    ::usleep(200'000);
    const auto full = static_cast<double>(bench::rss_bytes(broker.pid()));
    results.add("S5", "broker", "shmfd broker RSS per idle subscribed client (1000 clients)", "RSS",
                "KiB", (full - idle) / kClients / 1024);
  }
  // PSS of producer + 4 consumers of 4K frames, measured mid-stream.
  constexpr std::uint32_t kConsumers = 4;
  const std::uint64_t frames = o.n(40);
  const auto layout = *image_layout(PixelFormat::rgba8, bench::k4KWidth, bench::k4KHeight);
  {
    bench::BrokerProcess broker;
    Signal ready, measured, done;
    std::vector<pid_t> pids;
    for (std::uint32_t c = 0; c < kConsumers; ++c) {
      pids.push_back(bench::spawn([&] {
        auto consumer = must(Consumer::connect(broker.socket(), "pss"), "connect");
        must(consumer.subscribe("s5/pool", 1, Backpressure::block_producer), "subscribe");
        ready.post();
        std::uint64_t sink = 0;
        for (std::uint64_t f = 0; f < frames; ++f) {
          Frame frame = receive_frame(consumer);
          sink += bench::consume(frame.bytes(), Work::read);
        }
        done.post();
        measured.wait();
        return sink == 1 ? 3 : 0;
      }));
    }
    for (std::uint32_t c = 0; c < kConsumers; ++c) ready.wait();
    Signal produced;
    pids.push_back(bench::spawn([&] {
      auto producer = must(Producer::connect(broker.socket(), "pss"), "connect");
      must(producer.advertise("s5/pool", LayoutKind::image, Guarantee::pool), "advertise");
      // Depth 1: one frame in flight and one queued, whatever the fan-out, and one to write.
      const auto pool = must(producer.create_pool("s5/pool", bench::k4KBytes, 3), "pool");
      for (std::uint64_t f = 0; f < frames; ++f) {
        auto slot = must(producer.acquire(pool), "acquire");
        std::memset(slot.bytes.data(), static_cast<int>(f), slot.bytes.size());  // every page
        must(producer.publish("s5/pool", slot, layout), "publish");
      }
      produced.post();
      measured.wait();
      return 0;
    }));
    produced.wait();
    for (std::uint32_t c = 0; c < kConsumers; ++c) done.wait();
    const double pss = bench::total_pss_then_release(pids, measured);
    results.add("S5", "4 consumers of 4K frames", "shmfd pool (3 slots): producer + consumers PSS",
                "PSS", "MiB", pss / (1 << 20));
  }
  {
    Signal measured, done;
    std::vector<pid_t> pids;
    std::vector<int> writers;
    for (std::uint32_t c = 0; c < kConsumers; ++c) {
      int sv[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) die("socketpair");
      pids.push_back(bench::spawn([&, sv0 = sv[0], sv1 = sv[1]] {
        ::close(sv0);
        for (int w : writers) ::close(w);
        std::vector<std::byte> frame(bench::k4KBytes);
        std::uint64_t sink = 0;
        for (std::uint64_t f = 0; f < frames; ++f) {
          if (!read_all(sv1, frame)) return 1;
          sink += bench::consume(frame, Work::read);
        }
        done.post();
        measured.wait();
        return sink == 1 ? 3 : 0;
      }));
      ::close(sv[1]);
      writers.push_back(sv[0]);
    }
    Signal produced;
    pids.push_back(bench::spawn([&] {
      std::vector<std::byte> frame(bench::k4KBytes);
      for (std::uint64_t f = 0; f < frames; ++f) {
        std::memset(frame.data(), static_cast<int>(f), frame.size());
        for (int w : writers) {
          if (!write_all(w, frame)) return 1;
        }
      }
      produced.post();
      measured.wait();
      return 0;
    }));
    produced.wait();
    for (std::uint32_t c = 0; c < kConsumers; ++c) done.wait();
    const double pss = bench::total_pss_then_release(pids, measured);
    for (int w : writers) ::close(w);
    results.add("S5", "4 consumers of 4K frames", "Unix socket copy: producer + consumers PSS",
                "PSS", "MiB", pss / (1 << 20));
  }
}

}  // namespace

// S8: a call and its response, one at a time, through the broker (services): 64 B each way and
// a 4K RGBA frame each way, in slots of each side's pool, and each a new sealed memfd; the µs
// per round trip.
void s8(Results& results, const bench::Options& o) {
  struct Placement {
    const char* where;
    int caller_cpu, server_cpu;
  };
  for (const auto& [size, bytes, n] :
       {std::tuple{"64 B each way", std::size_t{64}, o.n(5000)},
        std::tuple{"4K RGBA each way", bench::k4KBytes, o.n(1000)}}) {
    for (const Placement& p : {Placement{"unpinned", -1, -1}, Placement{"pinned to one CPU", 0, 0},
                               Placement{"caller and server on two CPUs", 0, 1}}) {
      const std::string variant = std::string(size) + ", " + p.where;
      if (!o.runs_variant(variant)) continue;
      for (const auto& [frames, label] :
           {std::pair{bench::CallFrames::pool_slots, "shmfd call via broker (pool slots)"},
            std::pair{bench::CallFrames::sealed_memfds,
                      "shmfd call via broker (a sealed memfd each way)"}}) {
        const auto v = bench::call_round_trip(n, bytes, p.caller_cpu, p.server_cpu, frames);
        results.add("S8", variant, label, "round trip", "us", bench::median(v),
                    bench::percentile(v, 0.99), "us", v.size());
      }
    }
  }
}

int main(int argc, char** argv) {
  const auto o = bench::parse_options(
      argc, argv, "shmfd-bench-suite [--json FILE] [--quick] [--only S1..S6] [--variant TEXT]");
  ::signal(SIGPIPE, SIG_IGN);
  ::setenv("SHMFD_CHANNELS", "0", 1);  // see ChannelsOn
  Results results;
  std::fprintf(stderr, "shmfd-bench-suite: shmfd and its baselines\n");
  if (o.runs("S1")) s1(results, o);
  if (o.runs("S2")) s2(results, o);
  if (o.runs("S3")) s3(results, o);
  if (o.runs("S4")) s4(results, o);
  if (o.runs("S5")) s5(results, o);
  if (o.runs("S6")) s6(results, o);
  if (o.runs("S8")) s8(results, o);
  results.write(o.json);
  return 0;
}
