// shmfd-sub: subscribes to a topic through shmfd-broker, checks every pixel of every frame
// against the test pattern, and prints frames, rate, latency and drops.
//
//   shmfd-sub [--socket PATH] [--topic NAME] [--frames N] [--depth N] [--block]
#include <algorithm>
#include <cstdio>
#include <vector>

#include "../common/args.hpp"
#include "../common/test_pattern.hpp"
#include "shmfd/consumer.hpp"

int main(int argc, char** argv) {
  using namespace shmfd;
  const examples::Args args(
      argc, argv, {"--socket", "--topic", "--frames", "--depth"}, {"--block"},
      "usage: shmfd-sub [--socket PATH] [--topic NAME] [--frames N] [--depth N] [--block]\n"
      "  stops after N frames (0: at end of stream); --block: never lose a frame, hold the "
      "producer back instead\n");
  const std::string socket = args.get("--socket", default_socket_path());
  const std::string topic = args.get("--topic", "demo/camera");
  const auto frames = args.number("--frames", 0);
  const auto depth = static_cast<std::uint32_t>(args.number("--depth", 0));

  auto consumer = Consumer::connect(socket, "shmfd-sub");
  if (!consumer)
    return std::fprintf(stderr, "shmfd-sub: %s\n", consumer.error().message().c_str()), 1;
  auto granted = consumer->subscribe(
      topic, depth, args.has("--block") ? Backpressure::BLOCK_PRODUCER : Backpressure::DROP_OLDEST);
  if (!granted)
    return std::fprintf(stderr, "shmfd-sub: %s\n", granted.error().message().c_str()), 1;
  std::fprintf(stderr, "shmfd-sub: subscribed to '%s' (queue depth %u)\n", topic.c_str(), *granted);

  std::uint64_t received = 0, wrong = 0, dropped = 0;
  std::vector<std::uint64_t> latency_ns;
  const std::uint64_t start = examples::now_ns();
  while (frames == 0 || received < frames) {
    auto event = consumer->receive();
    if (!event) {
      std::fprintf(stderr, "shmfd-sub: %s\n", event.error().message().c_str());
      return 1;
    }
    if (auto* end = std::get_if<EndOfStream>(&*event)) {
      std::fprintf(stderr, "shmfd-sub: end of stream on '%s': %s\n", end->topic.c_str(),
                   end->reason.c_str());
      break;
    }
    const Frame& frame = std::get<Frame>(*event);
    latency_ns.push_back(examples::now_ns() - frame.timestamp_ns());
    if (const auto* image = std::get_if<ImageLayout>(&frame.layout())) {
      wrong += examples::count_wrong_pixels(frame.bytes(), *image, frame.sequence());
    }
    dropped = frame.dropped();
    ++received;
  }
  const double seconds = static_cast<double>(examples::now_ns() - start) / 1e9;
  std::sort(latency_ns.begin(), latency_ns.end());
  const auto pct = [&](double p) {
    return latency_ns.empty() ? 0.0
                              : static_cast<double>(latency_ns[static_cast<std::size_t>(
                                    p * static_cast<double>(latency_ns.size() - 1))]) /
                                    1e3;
  };
  std::printf(
      "shmfd-sub: %llu frames in %.1f s (%.1f fps), latency p50 %.0f us p99 %.0f us, "
      "%llu dropped, %llu wrong pixels\n",
      static_cast<unsigned long long>(received), seconds,
      seconds > 0 ? static_cast<double>(received) / seconds : 0.0, pct(0.5), pct(0.99),
      static_cast<unsigned long long>(dropped), static_cast<unsigned long long>(wrong));
  return wrong == 0 ? 0 : 1;
}
