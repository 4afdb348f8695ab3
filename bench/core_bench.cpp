// Core costs of shmfd's building blocks, each against its baseline in the same run, printed as
// medians of repeated runs and as ratios (the machine is shared and noisy: compare ratios).
//
//   build/bin/shmfd-bench-core            (all benchmarks, 5 repetitions, then the ratio table)
//   build/bin/shmfd-bench-core --benchmark_filter=Memfd
//
// What it shows: a fresh sealed memfd per frame pays for new pages (fault + zeroing), so for
// small frames it is slower than copying; reusing pool pages costs what writing them costs.
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <benchmark/benchmark.h>

#include "shmfd/memfd.hpp"
#include "shmfd/verify.hpp"
#include "shmfd/wire/wire.hpp"

namespace {

using namespace shmfd;

constexpr std::int64_t k4K = 4096;
constexpr std::int64_t k1M = 1 << 20;
constexpr std::int64_t k4KVideo = 3840 * 2160 * 4;  // one 4K RGBA frame

template <typename T>
T must(Result<T> r) {
  if (!r) {
    std::fprintf(stderr, "benchmark setup failed: %s\n", r.error().message().c_str());
    std::abort();
  }
  return std::move(*r);
}

void BM_MemcpyFrame(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  std::vector<char> src(size, 'x'), dst(size, 0);
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), size);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

// create + fill every byte + seal + close: the sealed-buffer path, per frame.
void BM_FreshSealedMemfd(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    auto buffer = must(WritableBuffer::create("bench", size));
    std::memset(buffer.bytes().data(), 'x', size);
    auto sealed = must(std::move(buffer).seal());
    benchmark::DoNotOptimize(sealed.fd());
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

// Refill a slot of an existing pool: the pool path, per frame (pages already there).
void BM_PoolSlotRefill(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  auto pool = must(must(WritableBuffer::create("bench-pool", size)).into_pool());
  for (auto _ : state) {
    std::memset(pool.bytes().data(), 'x', size);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(state.iterations() * state.range(0));
}

// One 64-byte message with N fds, sent and received on one thread (no wake-up cost).
void BM_SeqpacketHop(benchmark::State& state) {
  auto [a, b] = must(make_seqpacket_pair());
  auto memfd = must(create_memfd("bench-hop", 4096));
  std::vector<int> fds(static_cast<std::size_t>(state.range(0)), memfd.get());
  std::vector<std::byte> out(64, std::byte{1});
  MessageBuffer in(256);
  for (auto _ : state) {
    must(send_message(a.get(), out, fds));
    auto m = must(receive_message(b.get(), in.bytes(), fds.size()));
    benchmark::DoNotOptimize(m.size);
  }
}

void BM_VerifySealedBuffer(benchmark::State& state) {
  auto sealed = must(must(WritableBuffer::create("bench-verify", k1M)).seal());
  for (auto _ : state)
    benchmark::DoNotOptimize(must(verify_buffer(sealed.fd(), Guarantee::sealed, k1M)));
}

// What the broker adds per sealed frame (and once per pool) to forward a read-only file
// description of its own: open("/proc/self/fd/N", O_RDONLY), and the close of that fd when the
// frame goes. The producer's fd stays open throughout, as it does in the broker.
void BM_ReopenReadOnly(benchmark::State& state) {
  auto sealed = must(must(WritableBuffer::create("bench-reopen", k1M)).seal());
  for (auto _ : state) {
    UniqueFd copy = must(reopen_read_only(sealed.fd()));
    benchmark::DoNotOptimize(copy.get());
  }
}

void BM_DecodeAndValidatePublish(benchmark::State& state) {
  capnp::MallocMessageBuilder builder;
  auto frame = builder.initRoot<proto::Message>().initPublish().initFrame();
  const auto layout = must(image_layout(PixelFormat::nv12, 3840, 2160));
  layout_to_proto(layout, frame.initLayout());
  const auto words = encode_message(builder);
  for (auto _ : state) {
    auto extent = decode_message<proto::Message>(words.bytes(), [](proto::Message::Reader m) {
      auto l = layout_from_proto(m.getPublish().getFrame().getLayout());
      return l ? validate_layout(*l, 3840 * 2160 * 2) : fail(std::move(l.error()));
    });
    benchmark::DoNotOptimize(must(std::move(extent)));
  }
}

BENCHMARK(BM_MemcpyFrame)->Arg(k4K)->Arg(k1M)->Arg(k4KVideo);
BENCHMARK(BM_FreshSealedMemfd)->Arg(k4K)->Arg(k1M)->Arg(k4KVideo);
BENCHMARK(BM_PoolSlotRefill)->Arg(k4K)->Arg(k1M)->Arg(k4KVideo);
BENCHMARK(BM_SeqpacketHop)->Arg(0)->Arg(1)->Arg(16);
BENCHMARK(BM_VerifySealedBuffer);
BENCHMARK(BM_ReopenReadOnly);
BENCHMARK(BM_DecodeAndValidatePublish);

// Prints the usual table and keeps each benchmark's median for the ratio summary.
class MedianCollector : public benchmark::ConsoleReporter {
 public:
  MedianCollector() : ConsoleReporter(::isatty(1) != 0 ? OO_ColorTabular : OO_Tabular) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.run_type == Run::RT_Aggregate && run.aggregate_name == "median") {
        std::string name = run.benchmark_name();
        name = name.substr(0, name.rfind("_median"));
        median_ns[name] = run.GetAdjustedRealTime();  // reported unit: ns by default
      }
    }
  }
  std::map<std::string, double> median_ns;
};

void print_ratios(const std::map<std::string, double>& m) {
  const auto ratio = [&](const std::string& a, const std::string& b) {
    auto ia = m.find(a), ib = m.find(b);
    if (ia == m.end() || ib == m.end() || ib->second == 0) return std::string("n/a");
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2fx", ia->second / ib->second);
    return std::string(buf);
  };
  std::printf("\nRatios of medians (same run):\n");
  for (const char* size : {"4096", "1048576", "33177600"}) {
    const std::string s = size;
    std::printf("  frame %9s B: fresh sealed memfd / memcpy %8s   pool slot refill / memcpy %8s\n",
                size, ratio("BM_FreshSealedMemfd/" + s, "BM_MemcpyFrame/" + s).c_str(),
                ratio("BM_PoolSlotRefill/" + s, "BM_MemcpyFrame/" + s).c_str());
  }
  std::printf("  SEQPACKET hop: 1 fd / 0 fds %s, 16 fds / 0 fds %s\n",
              ratio("BM_SeqpacketHop/1", "BM_SeqpacketHop/0").c_str(),
              ratio("BM_SeqpacketHop/16", "BM_SeqpacketHop/0").c_str());
  std::printf("  verify_buffer / 1-fd hop %s; decode+validate Publish / 1-fd hop %s\n",
              ratio("BM_VerifySealedBuffer", "BM_SeqpacketHop/1").c_str(),
              ratio("BM_DecodeAndValidatePublish", "BM_SeqpacketHop/1").c_str());
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  std::string reps = "--benchmark_repetitions=5";
  std::string aggregates = "--benchmark_report_aggregates_only=true";
  bool user_reps = false;
  for (int i = 1; i < argc; ++i) user_reps |= std::strstr(argv[i], "repetitions") != nullptr;
  if (!user_reps) {
    args.push_back(reps.data());
    args.push_back(aggregates.data());
  }
  int n = static_cast<int>(args.size());
  benchmark::Initialize(&n, args.data());
  if (benchmark::ReportUnrecognizedArguments(n, args.data())) return 1;
  MedianCollector reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  print_ratios(reporter.median_ns);
  benchmark::Shutdown();
  return 0;
}
