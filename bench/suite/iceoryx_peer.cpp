// shmfd-bench-iceoryx: iceoryx 2.0.3 (Debian's libiceoryx-posh-dev) in the suite's scenarios,
// measured the same way as shmfd-bench-suite measures shmfd:
//   S1  64 B ping-pong latency with a blocking WaitSet, unpinned and pinned to one CPU;
//   S2  3840x2160 RGBA frames per second, from a mempool sized for the frames, the consumer
//       touching one byte per page or reading every byte (and a producer writing every byte);
//   S3  fan-out of 4K frames to 1-16 subscribers, paced: time until all have the frame;
//   S4  1 KiB frames per second, no ping-pong;
//   S8  a request and its response, one at a time (Client and Server with WaitSets): 64 B and
//       a 3840x2160 RGBA frame each way.
// It starts its own iox-roudi with a mempool configuration for these sizes, and stops it.
//
//   shmfd-bench-iceoryx [--json FILE] [--quick] [--only S1|S2|S3|S4|S8]
#include <filesystem>
#include <thread>

#include <tuple>

#include "common.hpp"
#include "iceoryx_hoofs/log/logmanager.hpp"
#include "iceoryx_posh/popo/untyped_client.hpp"
#include "iceoryx_posh/popo/untyped_publisher.hpp"
#include "iceoryx_posh/popo/untyped_server.hpp"
#include "iceoryx_posh/popo/untyped_subscriber.hpp"
#include "iceoryx_posh/popo/wait_set.hpp"
#include "iceoryx_posh/runtime/posh_runtime.hpp"
#include "syscalls.hpp"

namespace {

using bench::add_rates;
using bench::die;
using bench::now_ns;
using bench::Rate;
using bench::rate_of;
using bench::Results;
using bench::SharedSamples;
using bench::Signal;
using bench::Work;

constexpr std::uint64_t kWarmup = 200;
constexpr std::uint32_t kSmall = 64;
constexpr std::uint32_t kKiB = 1024;

// iox-roudi with mempools for 64 B, 1 KiB and 4K frames.
class Roudi {
 public:
  Roudi() {
    config_ = "/tmp/shmfd-bench-roudi-" + std::to_string(::getpid()) + ".toml";
    std::ofstream(config_) << "[general]\nversion = 1\n\n[[segment]]\n\n"
                              "[[segment.mempool]]\nsize = 128\ncount = 2000\n\n"
                              "[[segment.mempool]]\nsize = 2048\ncount = 2000\n\n"
                              "[[segment.mempool]]\nsize = 33554432\ncount = 10\n";
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      // Its shutdown complains about clients that already exited: keep that out of the report.
      std::FILE* out = std::freopen("/dev/null", "w", stdout);
      std::FILE* err = std::freopen((config_ + ".log").c_str(), "w", stderr);
      (void)out;
      (void)err;
      ::execlp("iox-roudi", "iox-roudi", "-c", config_.c_str(), "-l", "error",
               static_cast<char*>(nullptr));
      ::_exit(127);
    }
    ::usleep(500'000);
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != 0) die("iox-roudi did not start");
  }
  ~Roudi() {
    ::kill(pid_, SIGINT);
    ::waitpid(pid_, nullptr, 0);
    std::filesystem::remove(config_);
    std::filesystem::remove(config_ + ".log");
  }
  Roudi(const Roudi&) = delete;
  Roudi& operator=(const Roudi&) = delete;

 private:
  std::string config_;
  pid_t pid_ = -1;
};

void init_runtime(const std::string& name) {
  iox::log::LogManager::GetLogManager().SetDefaultLogLevel(iox::log::LogLevel::kWarn);
  const std::string unique = name + "-" + std::to_string(::getpid());
  iox::runtime::PoshRuntime::initRuntime(
      iox::RuntimeName_t(iox::cxx::TruncateToCapacity, unique.c_str()));
}

iox::capro::ServiceDescription service(const char* event) {
  return {"shmfd-bench", "iceoryx", iox::capro::IdString_t(iox::cxx::TruncateToCapacity, event)};
}

void* loan(iox::popo::UntypedPublisher& pub, std::uint32_t size) {
  for (;;) {
    auto chunk = pub.loan(size);
    if (!chunk.has_error()) return chunk.value();
    std::this_thread::yield();  // every chunk is in use: wait for a consumer to release one
  }
}

// Waits until the publisher sees a subscriber (before that, samples go nowhere).
void wait_for_subscriber(const iox::popo::UntypedPublisher& pub) {
  for (int i = 0; i < 10000 && !pub.hasSubscribers(); ++i) ::usleep(1000);
  if (!pub.hasSubscribers()) die("iceoryx: no subscriber appeared");
}

// Takes the next sample, waiting on the WaitSet when there is none.
const void* take(iox::popo::UntypedSubscriber& sub, iox::popo::WaitSet<>& ws) {
  for (;;) {
    auto sample = sub.take();
    if (!sample.has_error()) return sample.value();
    (void)ws.wait();
  }
}

std::vector<double> ping_pong(std::uint64_t iterations, int ping_cpu, int pong_cpu) {
  SharedSamples samples(iterations);
  Signal pong_ready;
  const pid_t pong = bench::spawn(
      [&] {
        init_runtime("bench-pong");
        iox::popo::UntypedSubscriber sub(service("ping"));
        iox::popo::UntypedPublisher pub(service("pong"));
        iox::popo::WaitSet<> ws;
        if (ws.attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error()) return 1;
        pong_ready.post();
        wait_for_subscriber(pub);
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const void* in = take(sub, ws);
          void* out = loan(pub, kSmall);
          std::memcpy(out, in, kSmall);
          pub.publish(out);
          sub.release(in);
        }
        return 0;
      },
      pong_cpu);
  const pid_t ping = bench::spawn(
      [&] {
        init_runtime("bench-ping");
        iox::popo::UntypedSubscriber sub(service("pong"));
        iox::popo::UntypedPublisher pub(service("ping"));
        iox::popo::WaitSet<> ws;
        if (ws.attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error()) return 1;
        pong_ready.wait();
        wait_for_subscriber(pub);
        ::usleep(100'000);  // the pong side's publisher sees our subscriber too
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const std::uint64_t t0 = now_ns();
          void* out = loan(pub, kSmall);
          std::memset(out, 7, kSmall);
          pub.publish(out);
          sub.release(take(sub, ws));
          if (i >= kWarmup) samples.push(static_cast<double>(now_ns() - t0) / 2000.0);
        }
        return 0;
      },
      ping_cpu);
  if (!bench::wait_ok(ping)) die("iceoryx ping failed");
  bench::wait_ok(pong);
  return samples.values();
}

// A producer streaming `frames` samples of `size` bytes to `consumers` consumers, lossless
// (the publisher waits for a full consumer queue), each consumer doing `work` on each. The
// rate is how fast every consumer got every frame. With `counter`, `calls` gets the machine's
// system calls per frame while the frames flowed (after every side's set-up).
Rate stream(std::uint64_t frames, std::uint32_t size, Work work, std::uint64_t queue,
            const char* event, bench::Fill fill = bench::Fill::header, std::uint32_t consumers = 1,
            bench::SyscallCounter* counter = nullptr, std::vector<double>* calls = nullptr) {
  SharedSamples arrivals(frames * consumers);
  Signal ready, set_up, go;
  std::vector<pid_t> children;
  for (std::uint32_t c = 0; c < consumers; ++c) {
    children.push_back(bench::spawn([&] {
      init_runtime("bench-consumer");
      iox::popo::SubscriberOptions options;
      options.queueCapacity = queue;
      options.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
      iox::popo::UntypedSubscriber sub(service(event), options);
      iox::popo::WaitSet<> ws;
      if (ws.attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error()) return 1;
      ready.post();
      std::uint64_t sink = 0;
      for (std::uint64_t i = 0; i < frames; ++i) {
        const void* sample = take(sub, ws);
        sink += bench::consume({static_cast<const std::byte*>(sample), size}, work);
        sub.release(sample);
        arrivals.push(static_cast<double>(now_ns()));
      }
      return sink == 1 ? 3 : 0;
    }));
  }
  const pid_t producer = bench::spawn([&] {
    init_runtime("bench-producer");
    iox::popo::PublisherOptions options;
    options.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
    iox::popo::UntypedPublisher pub(service(event), options);
    for (std::uint32_t c = 0; c < consumers; ++c) ready.wait();
    wait_for_subscriber(pub);
    // RouDi connects subscribers in its discovery loop: with several, let all arrive.
    if (consumers > 1) ::usleep(500'000);
    set_up.post();
    go.wait();
    for (std::uint64_t i = 0; i < frames; ++i) {
      void* chunk = loan(pub, size);
      bench::fill({static_cast<std::byte*>(chunk), size}, i, fill);
      pub.publish(chunk);
    }
    return 0;
  });
  set_up.wait();
  if (counter) counter->start();
  go.post();
  bench::wait_ok(producer);
  for (pid_t child : children) {
    if (!bench::wait_ok(child)) die("iceoryx consumer failed");
  }
  if (counter) calls->push_back(static_cast<double>(counter->stop()) / static_cast<double>(frames));
  return bench::rate_of_all(arrivals.values(), consumers);
}

// S3: 4K frames from one publisher to `consumers` subscribers, paced 10 ms apart (the suite's
// S3); per frame, µs until the slowest subscriber has it. The publish time travels in the
// chunk's first 8 bytes; each subscriber looks at it and releases the chunk.
std::vector<double> fan_out(std::uint32_t consumers, std::uint64_t frames, std::uint64_t warmup) {
  SharedSamples latency(std::size_t{consumers} * frames);  // [c * frames + f], µs
  Signal ready;
  std::vector<pid_t> children;
  for (std::uint32_t c = 0; c < consumers; ++c) {
    children.push_back(bench::spawn([&, c] {
      init_runtime("bench-fan-out");
      iox::popo::SubscriberOptions options;
      options.queueCapacity = 2;
      options.queueFullPolicy = iox::popo::QueueFullPolicy::BLOCK_PRODUCER;
      iox::popo::UntypedSubscriber sub(service("fan-out"), options);
      iox::popo::WaitSet<> ws;
      if (ws.attachState(sub, iox::popo::SubscriberState::HAS_DATA).has_error()) return 1;
      ready.post();
      for (std::uint64_t f = 0; f < frames; ++f) {
        const void* sample = take(sub, ws);
        std::uint64_t sent = 0;
        std::memcpy(&sent, sample, sizeof sent);
        latency.at(c * frames + f) = static_cast<double>(now_ns() - sent) / 1e3;
        sub.release(sample);
      }
      return 0;
    }));
  }
  const pid_t producer = bench::spawn([&] {
    init_runtime("bench-fan-out-producer");
    iox::popo::PublisherOptions options;
    options.subscriberTooSlowPolicy = iox::popo::ConsumerTooSlowPolicy::WAIT_FOR_CONSUMER;
    iox::popo::UntypedPublisher pub(service("fan-out"), options);
    for (std::uint32_t c = 0; c < consumers; ++c) ready.wait();
    wait_for_subscriber(pub);
    ::usleep(500'000);  // RouDi connects the subscribers in its discovery loop: let all arrive
    for (std::uint64_t f = 0; f < frames; ++f) {
      void* chunk = loan(pub, static_cast<std::uint32_t>(bench::k4KBytes));
      const std::uint64_t t = now_ns();
      std::memcpy(chunk, &t, sizeof t);
      pub.publish(chunk);
      ::usleep(10'000);  // paced: this measures latency, not queueing
    }
    return 0;
  });
  bench::wait_ok(producer);
  for (pid_t child : children) {
    if (!bench::wait_ok(child)) die("iceoryx fan-out: a subscriber failed");
  }
  return bench::slowest_per_frame(latency, consumers, frames, warmup);
}

// S8: `iterations` requests of `bytes`, one at a time, each answered with a response of the same
// size: the client writes a 64-byte header in the request it loaned, the server reads it and
// writes it into the response it loaned, the client reads that. Both wait on a WaitSet (the
// client as iceoryx's request_response example does; the server so too, which saves the
// Listener's thread hop). µs per round trip.
std::vector<double> request_response(std::uint64_t iterations, std::uint32_t bytes, int client_cpu,
                                     int server_cpu) {
  SharedSamples samples(iterations);
  Signal server_ready;
  const pid_t server = bench::spawn(
      [&] {
        init_runtime("bench-server");
        iox::popo::UntypedServer srv(service("echo"));
        iox::popo::WaitSet<> ws;
        if (ws.attachState(srv, iox::popo::ServerState::HAS_REQUEST).has_error()) return 1;
        server_ready.post();
        for (std::uint64_t i = 0; i < iterations + kWarmup;) {
          auto request = srv.take();
          if (request.has_error()) {
            (void)ws.wait();
            continue;
          }
          const auto* header = iox::popo::RequestHeader::fromPayload(request.value());
          void* response = nullptr;
          while (response == nullptr) {
            auto loaned = srv.loan(header, bytes, alignof(std::uint64_t));
            if (!loaned.has_error()) response = loaned.value();
          }
          std::memcpy(response, request.value(), 64);
          srv.releaseRequest(request.value());
          if (srv.send(response).has_error()) return 2;
          ++i;
        }
        return 0;
      },
      server_cpu);
  const pid_t client = bench::spawn(
      [&] {
        init_runtime("bench-client");
        iox::popo::UntypedClient cli(service("echo"));
        iox::popo::WaitSet<> ws;
        if (ws.attachState(cli, iox::popo::ClientState::HAS_RESPONSE).has_error()) return 1;
        server_ready.wait();
        for (int i = 0; i < 10000 && cli.getConnectionState() != iox::ConnectionState::CONNECTED;
             ++i)
          ::usleep(1000);
        if (cli.getConnectionState() != iox::ConnectionState::CONNECTED) return 3;
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const std::uint64_t t0 = now_ns();
          void* request = nullptr;
          while (request == nullptr) {
            auto loaned = cli.loan(bytes, alignof(std::uint64_t));
            if (!loaned.has_error()) request = loaned.value();
          }
          std::memset(request, 0, 64);
          std::memcpy(request, &i, sizeof i);
          if (cli.send(request).has_error()) return 4;
          for (;;) {
            auto response = cli.take();
            if (response.has_error()) {
              (void)ws.wait();
              continue;
            }
            std::uint64_t echoed = 0;
            std::memcpy(&echoed, response.value(), sizeof echoed);
            cli.releaseResponse(response.value());
            if (echoed != i) return 5;
            break;
          }
          if (i >= kWarmup) samples.push(static_cast<double>(now_ns() - t0) / 1000.0);
        }
        return 0;
      },
      client_cpu);
  if (!bench::wait_ok(client)) die("iceoryx client failed");
  bench::wait_ok(server);
  return samples.values();
}

}  // namespace

int main(int argc, char** argv) {
  const auto o = bench::parse_options(
      argc, argv, "shmfd-bench-iceoryx [--json FILE] [--quick] [--only S1|S2|S3|S4|S8]");
  Results results;
  std::fprintf(stderr, "shmfd-bench-iceoryx: iceoryx 2.0.3\n");
  {
    Roudi roudi;
    if (o.runs("S1")) {
      for (const auto& [variant, ping_cpu, pong_cpu] :
           {std::tuple{"unpinned", -1, -1}, std::tuple{"pinned to one CPU", 0, 0},
            std::tuple{"ping and pong on two CPUs", 0, 1}}) {
        const auto v = ping_pong(o.n(20000), ping_cpu, pong_cpu);
        results.add("S1", variant, "iceoryx 2.0.3, WaitSet", "half round trip", "us",
                    bench::median(v), bench::percentile(v, 0.99), "us", v.size());
      }
    }
    if (o.runs("S2")) {
      for (const bench::S2Variant& v : bench::kS2Variants) {
        std::vector<Rate> runs;
        for (int r = 0; r < 3; ++r) {
          runs.push_back(stream(o.n(v.work == Work::touch ? 600 : 200),
                                static_cast<std::uint32_t>(bench::k4KBytes), v.work, 2, "video",
                                v.fill));
        }
        add_rates(results, "S2", bench::to_string(v), "iceoryx 2.0.3 (mempool of 10 chunks)", runs);
      }
    }
    if (o.runs("S3")) {
      for (std::uint32_t consumers : {1U, 2U, 4U, 8U, 16U}) {
        const auto v = fan_out(consumers, o.n(150), 5);
        results.add("S3", std::to_string(consumers) + " consumers", "iceoryx 2.0.3",
                    "until all have the frame", "us", bench::median(v), bench::percentile(v, 0.99),
                    "us", v.size());
      }
    }
    if (o.runs("S4")) {
      bench::SyscallCounter counter;
      bench::SyscallCounter* count = counter.unavailable() ? nullptr : &counter;
      std::vector<Rate> runs, runs4;
      std::vector<double> calls, calls4;
      for (int r = 0; r < 3; ++r) {
        runs.push_back(stream(o.n(200000), kKiB, Work::touch, 256, "small", bench::Fill::header, 1,
                              count, &calls));
        runs4.push_back(stream(o.n(200000), kKiB, Work::touch, 256, "small4", bench::Fill::header,
                               4, count, &calls4));
      }
      add_rates(results, "S4", "1 KiB frames", "iceoryx 2.0.3", runs);
      add_rates(results, "S4", "1 KiB frames to 4 consumers", "iceoryx 2.0.3", runs4);
      if (count) {
        results.add("S4", "system calls per 1 KiB frame", "iceoryx 2.0.3",
                    "system calls per frame, machine-wide", "calls", bench::median(calls), NAN, "",
                    calls.size());
        results.add("S4", "system calls per 1 KiB frame", "iceoryx 2.0.3 to 4 consumers",
                    "system calls per frame, machine-wide", "calls", bench::median(calls4), NAN, "",
                    calls4.size());
      } else {
        results.skip("S4", "iceoryx system calls per frame", *counter.unavailable());
      }
    }
    if (o.runs("S8")) {
      for (const auto& [size, bytes, n] :
           {std::tuple{"64 B each way", std::uint32_t{64}, o.n(5000)},
            std::tuple{"4K RGBA each way", static_cast<std::uint32_t>(bench::k4KBytes),
                       o.n(1000)}}) {
        for (const auto& [where, client_cpu, server_cpu] :
             {std::tuple{"unpinned", -1, -1}, std::tuple{"pinned to one CPU", 0, 0},
              std::tuple{"caller and server on two CPUs", 0, 1}}) {
          const std::string variant = std::string(size) + ", " + where;
          if (!o.runs_variant(variant)) continue;
          const auto v = request_response(n, bytes, client_cpu, server_cpu);
          results.add("S8", variant, "iceoryx 2.0.3 Client/Server, WaitSet", "round trip", "us",
                      bench::median(v), bench::percentile(v, 0.99), "us", v.size());
        }
      }
    }
  }
  results.write(o.json);
  return 0;
}
