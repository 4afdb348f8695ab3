// shmfd-sub: subscribes to a topic through shmfd-broker and prints frames, rate, latency and
// drops. Any producer's frames are welcome: it reads their layout and bytes, nothing more.
// With --check-pattern it also checks every pixel of RGBA frames against shmfd-pub's test
// pattern (programs/common/test_pattern.hpp: pixel (x, y) of frame n is R = (x + 8n) mod 256,
// G = (y + 4n) mod 256, B = (x xor y) mod 256, A = 255) and exits 1 if any is wrong.
//
// SIGINT or SIGTERM ends it with its summary (frames, rate, latency, drops) and exit status 0;
// losing the broker prints the summary too, with exit status 1.
//
//   shmfd-sub [--socket PATH] [--topic NAME] [--frames N] [--depth N] [--block] [--check-pattern]
#include <signal.h>
#include <chrono>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "common/args.hpp"
#include "common/test_pattern.hpp"
#include "shmfd/consumer.hpp"

namespace {
volatile sig_atomic_t g_stop = 0;
void on_stop(int) {
  g_stop = 1;
}
}  // namespace

// --verbose: one line per frame, "seq 12 t 123456789 dropped 0 pts 1000 dts - duration 33333333
// flags delta_unit crop 0,0 640x480 header 16 B", the topic's options before the first.
void print_frame(const shmfd::Frame& frame, const std::optional<shmfd::TopicOptions>& options) {
  if (options) {
    std::printf("topic '%s': user header up to %u B, schema '%s', frame rate %u/%u%s\n",
                frame.topic().c_str(), options->max_header_bytes, options->header_schema.c_str(),
                options->frame_rate.num, options->frame_rate.den,
                options->timestamps_required ? ", timestamps required" : "");
  }
  const shmfd::FrameMeta& m = frame.meta();
  const auto time = [](const std::optional<std::uint64_t>& t) {
    return t ? std::to_string(*t) : std::string("-");
  };
  std::string crop = "-";
  if (m.crop) {
    crop = std::to_string(m.crop->x) + "," + std::to_string(m.crop->y) + " " +
           std::to_string(m.crop->width) + "x" + std::to_string(m.crop->height);
  }
  std::printf(
      "seq %llu t %llu dropped %llu pts %s dts %s duration %s flags %s crop %s header %zu B\n",
      static_cast<unsigned long long>(frame.sequence()),
      static_cast<unsigned long long>(frame.timestamp_ns()),
      static_cast<unsigned long long>(frame.dropped()), time(m.pts).c_str(), time(m.dts).c_str(),
      time(m.duration).c_str(), shmfd::flag_names(m.flags).c_str(), crop.c_str(), m.header.size());
}

int main(int argc, char** argv) {
  using namespace shmfd;
  const examples::Args args(
      argc, argv, {"--socket", "--topic", "--frames", "--depth"},
      {"--block", "--latest", "--check-pattern", "--reconnect", "--verbose"},
      "Usage: shmfd-sub [options]\n"
      "Subscribes to a topic through shmfd-broker and prints frames, rate, capture-to-receive\n"
      "latency and drops. SIGINT or SIGTERM ends it with that summary.\n\n"
      "  --socket PATH      the broker's socket (default: " +
          shmfd::default_socket_rule(21) +
          ")\n"
          "  --topic NAME       the topic (default: demo/camera)\n"
          "  --frames N         stop after N frames (default 0: at end of stream)\n"
          "  --depth N          frames it may hold, and frames that may wait for it in the\n"
          "                     broker (default: the broker's, 4)\n"
          "  --block            never lose a frame: hold the producer back instead of dropping\n"
          "                     the oldest (block-producer)\n"
          "  --latest           always the newest frame, as a preview wants (latest: drop-oldest\n"
          "                     with a depth of 1)\n"
          "  --check-pattern    check RGBA frames against shmfd-pub's test pattern; exit 1 on a\n"
          "                     wrong pixel\n"
          "  --reconnect        if the broker goes away (restart, upgrade), connect again and\n"
          "                     subscribe again; frames lost meanwhile count as dropped\n"
          "  --verbose          a line per frame on stdout: its sequence, capture time, drops,\n"
          "                     and the metadata it carries (pts, dts, duration, flags, crop,\n"
          "                     the user header's size), and the topic's declared options\n"
          "  --help             this text\n");
  const std::string socket = args.get("--socket", default_socket_path());
  const std::string topic = args.get("--topic", "demo/camera");
  const auto frames = args.number("--frames", 0, 0, examples::kMaxCount);
  const auto depth = static_cast<std::uint32_t>(args.number("--depth", 0, 0, 4096));
  const bool check_pattern = args.has("--check-pattern");
  const bool verbose = args.has("--verbose");

  auto consumer = Consumer::connect(socket, "shmfd-sub");
  if (!consumer)
    return std::fprintf(stderr, "shmfd-sub: %s\n", consumer.error().message().c_str()), 1;
  if (args.has("--reconnect")) consumer->reconnect_on_loss();
  auto granted = consumer->subscribe(topic, depth,
                                     args.has("--block")    ? Backpressure::block_producer
                                     : args.has("--latest") ? Backpressure::latest
                                                            : Backpressure::drop_oldest);
  if (!granted)
    return std::fprintf(stderr, "shmfd-sub: %s\n", granted.error().message().c_str()), 1;
  std::fprintf(stderr, "shmfd-sub: subscribed to '%s' (queue depth %u)\n", topic.c_str(), *granted);

  std::uint64_t received = 0, wrong = 0, dropped = 0;
  bool failed = false;
  std::vector<std::uint64_t> latency_ns;
  const std::uint64_t start = examples::now_ns();
  struct sigaction stop = {};
  stop.sa_handler = on_stop;
  ::sigaction(SIGINT, &stop, nullptr);
  ::sigaction(SIGTERM, &stop, nullptr);
  while ((frames == 0 || received < frames) && g_stop == 0) {
    // At most 100 ms at a time, so that a stop signal is noticed.
    auto event = consumer->receive_for(std::chrono::milliseconds(100));
    if (!event) {  // the broker went away, or cut this consumer off: say why, then the summary
      std::fprintf(stderr, "shmfd-sub: %s\n", event.error().message().c_str());
      failed = true;
      break;
    }
    if (!*event) continue;  // nothing yet
    if (const auto* back = std::get_if<Reconnected>(&**event)) {
      std::fprintf(stderr, "shmfd-sub: the broker went away; subscribed again after %lld ms\n",
                   static_cast<long long>(back->gap.count()));
      continue;
    }
    if (auto* end = std::get_if<EndOfStream>(&**event)) {
      std::fprintf(stderr, "shmfd-sub: end of stream on '%s': %s\n", end->topic.c_str(),
                   end->reason.c_str());
      dropped = std::max(dropped, end->dropped);  // also those lost after the last frame
      break;
    }
    const Frame& frame = std::get<Frame>(**event);
    latency_ns.push_back(examples::now_ns() - frame.timestamp_ns());
    const auto* image = std::get_if<ImageLayout>(&frame.layout());
    if (check_pattern && image != nullptr && image->format == PixelFormat::rgba8) {
      wrong += examples::count_wrong_pixels(frame.bytes(), *image, frame.sequence());
    }
    dropped = frame.dropped();
    ++received;
    if (verbose) print_frame(frame, received == 1 ? consumer->topic_options(topic) : std::nullopt);
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
      "%llu dropped",
      static_cast<unsigned long long>(received), seconds,
      seconds > 0 ? static_cast<double>(received) / seconds : 0.0, pct(0.5), pct(0.99),
      static_cast<unsigned long long>(dropped));
  if (check_pattern) std::printf(", %llu wrong pixels", static_cast<unsigned long long>(wrong));
  std::printf("\n");
  return wrong == 0 && !failed ? 0 : 1;
}
