// shmfd-pub: publishes a moving RGBA test pattern on a topic through shmfd-broker: one sealed
// memfd per frame, or with --pool N from a pool of N slots (the fast path).
//
//   shmfd-pub [--socket PATH] [--topic NAME] [--width W] [--height H] [--fps N] [--frames N]
//             [--pool SLOTS] [--crop X,Y,W,H]
//
// At a set rate, the topic declares it and each frame carries a pts (frame number × period, from
// 0) and a duration (the period); --crop gives every frame a crop rectangle.
// SIGINT or SIGTERM ends it with a summary: frames, rate and the ticks it skipped while held
// back (a live source never catches up in a burst; programs/common/live_clock.hpp).
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <sstream>
#include <string>

#include "common/args.hpp"
#include "common/live_clock.hpp"
#include "common/test_pattern.hpp"
#include "shmfd/producer.hpp"

namespace {
volatile sig_atomic_t g_stop = 0;
void on_stop(int) {
  g_stop = 1;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace shmfd;
  const examples::Args args(
      argc, argv,
      {"--socket", "--topic", "--width", "--height", "--fps", "--frames", "--pool", "--crop"},
      {"--reconnect"},
      "Usage: shmfd-pub [options]\n"
      "Publishes a moving RGBA test pattern on a topic through shmfd-broker: one sealed memfd\n"
      "per frame, or with --pool N from a pool of N slots. A live source: ticks missed while\n"
      "held back are skipped and counted, never made up in a burst. SIGINT or SIGTERM ends\n"
      "it with a summary.\n\n"
      "  --socket PATH      the broker's socket (default: " +
          shmfd::default_socket_rule(21) +
          ")\n"
          "  --topic NAME       the topic (default: demo/camera)\n"
          "  --width W          frame width in pixels (default 640)\n"
          "  --height H         frame height in pixels (default 480)\n"
          "  --fps N            frames per second (default 30; 0: as fast as it may); the topic\n"
          "                     declares the rate, and each frame carries a pts (its number\n"
          "                     times the period, from 0) and the period as its duration\n"
          "  --frames N         stop after N frames (default 0: until stopped)\n"
          "  --pool SLOTS       publish from a pool of SLOTS slots (default 0: a sealed memfd\n"
          "                     per frame); 4 or more for live video\n"
          "  --crop X,Y,W,H     every frame's crop rectangle, inside the image\n"
          "  --reconnect        if the broker goes away (restart, upgrade), connect again,\n"
          "                     advertise again and go on with the next frame number\n"
          "  --help             this text\n");
  const std::string socket = args.get("--socket", default_socket_path());
  const std::string topic = args.get("--topic", "demo/camera");
  const auto width = static_cast<std::uint32_t>(args.number("--width", 640, 1, 16384));
  const auto height = static_cast<std::uint32_t>(args.number("--height", 480, 1, 16384));
  const auto fps = args.number("--fps", 30, 0, 1000);
  const auto frames = args.number("--frames", 0, 0, examples::kMaxCount);
  const auto pool_slots = static_cast<std::uint32_t>(args.number("--pool", 0, 0, 1024));

  auto layout = image_layout(PixelFormat::rgba8, width, height);
  if (!layout) return std::fprintf(stderr, "shmfd-pub: %s\n", layout.error().message().c_str()), 2;
  FrameMeta meta;
  if (args.has("--crop")) {
    std::istringstream in(args.get("--crop", ""));
    Crop crop;
    char c1 = 0, c2 = 0, c3 = 0;
    if (!(in >> crop.x >> c1 >> crop.y >> c2 >> crop.width >> c3 >> crop.height) || c1 != ',' ||
        c2 != ',' || c3 != ',' || !in.eof()) {
      return std::fprintf(stderr, "shmfd-pub: --crop takes X,Y,W,H (four numbers), not '%s'\n",
                          args.get("--crop", "").c_str()),
             2;
    }
    meta.crop = crop;
    if (auto ok = check_frame_meta(meta, TopicOptions{}, *layout); !ok) {
      return std::fprintf(stderr, "shmfd-pub: --crop: %s\n", ok.error().message().c_str()), 2;
    }
  }
  auto producer = Producer::connect(socket, "shmfd-pub");
  if (!producer)
    return std::fprintf(stderr, "shmfd-pub: %s\n", producer.error().message().c_str()), 1;
  const Guarantee level = pool_slots > 0 ? Guarantee::pool : Guarantee::sealed;
  if (args.has("--reconnect")) producer->reconnect_on_loss();
  TopicOptions options;
  if (fps > 0) options.frame_rate = {static_cast<std::uint32_t>(fps), 1};
  if (auto ok = producer->advertise(topic, LayoutKind::image, level, options); !ok) {
    return std::fprintf(stderr, "shmfd-pub: %s\n", ok.error().message().c_str()), 1;
  }
  std::uint32_t pool = 0;
  if (pool_slots > 0) {
    auto created = producer->create_pool(topic, layout->planes[0].size, pool_slots);
    if (!created)
      return std::fprintf(stderr, "shmfd-pub: %s\n", created.error().message().c_str()), 1;
    pool = *created;
    if (pool_slots < 3) {
      // One stuck consumer pins at most N - 1 slots (its pool window), so the others share
      // what is left: with fewer than 3 slots that is one slot, and no overlap at all.
      std::fprintf(stderr,
                   "shmfd-pub: warning: a pool of %u slots leaves healthy consumers one slot "
                   "when another is slow; use --pool 4 or more for live video\n",
                   pool_slots);
    }
  }
  const std::string rate =
      fps == 0 ? std::string("as fast as it may") : "at " + std::to_string(fps) + " fps";
  std::fprintf(stderr, "shmfd-pub: publishing %ux%u rgba8 on '%s' %s%s\n", width, height,
               topic.c_str(), rate.c_str(), pool_slots > 0 ? " from a pool" : "");

  struct sigaction stop = {};
  stop.sa_handler = on_stop;
  stop.sa_flags =
      static_cast<int>(SA_RESETHAND);  // a second one ends it at once, even held back in acquire()
  ::sigaction(SIGINT, &stop, nullptr);
  ::sigaction(SIGTERM, &stop, nullptr);
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t published = 0;
  std::uint64_t reconnects = 0;
  examples::LiveClock clock(fps);
  for (std::uint64_t i = 0; (frames == 0 || i < frames) && g_stop == 0; ++i) {
    // Sequence numbers start at 1; the pattern is drawn for the number publish will assign.
    Result<std::uint64_t> sequence = std::uint64_t{0};
    if (fps > 0) {
      const std::uint64_t period = 1'000'000'000ULL / static_cast<std::uint64_t>(fps);
      meta.pts = i * period;
      meta.duration = period;
    }
    if (pool_slots > 0) {
      auto slot = producer->acquire(pool);  // waits while consumers hold every slot
      if (!slot) return std::fprintf(stderr, "shmfd-pub: %s\n", slot.error().message().c_str()), 1;
      examples::draw(slot->bytes, *layout, i + 1);
      sequence = producer->publish(topic, *slot, *layout, meta);
    } else {
      auto buffer = producer->allocate(topic, *layout);
      if (!buffer)
        return std::fprintf(stderr, "shmfd-pub: %s\n", buffer.error().message().c_str()), 1;
      examples::draw(buffer->bytes(), *layout, i + 1);
      sequence = producer->publish(topic, std::move(*buffer), *layout, meta);
    }
    if (!sequence) {
      std::fprintf(stderr, "shmfd-pub: %s\n", sequence.error().message().c_str());
      return 1;
    }
    ++published;
    if (producer->reconnects() != reconnects) {
      reconnects = producer->reconnects();
      std::fprintf(stderr, "shmfd-pub: the broker went away; connected again (%llu so far)\n",
                   static_cast<unsigned long long>(reconnects));
    }
    if (*sequence % 100 == 0)
      std::fprintf(stderr, "shmfd-pub: %llu frames\n", static_cast<unsigned long long>(*sequence));
    if (const auto missed = clock.wait_next(); missed != 0) {
      std::fprintf(stderr, "shmfd-pub: skipped %llu ticks while held back (%llu in all)\n",
                   static_cast<unsigned long long>(missed),
                   static_cast<unsigned long long>(clock.skipped()));
    }
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("shmfd-pub: %llu frames in %.1f s (%.1f fps), %llu ticks skipped\n",
              static_cast<unsigned long long>(published), seconds,
              seconds > 0 ? static_cast<double>(published) / seconds : 0.0,
              static_cast<unsigned long long>(clock.skipped()));
  return 0;
}
