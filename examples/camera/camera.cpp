// shmfd-camera: a synthetic camera. Publishes a moving test pattern (every pixel changes every
// frame, so a stale or torn frame shows) in RGBA or NV12 from a pool, with a capture timestamp
// and a sequence number on every frame.
//
//   shmfd-camera [--socket PATH] [--topic NAME] [--format rgba|nv12] [--width W] [--height H]
//                [--fps N] [--frames N] [--slots N]
#include <cstdio>

#include "../../programs/common/args.hpp"
#include "../../programs/common/live_clock.hpp"
#include "../../programs/common/test_pattern.hpp"
#include "shmfd/producer.hpp"

int main(int argc, char** argv) {
  using namespace shmfd;
  const examples::Args args(
      argc, argv,
      {"--socket", "--topic", "--format", "--width", "--height", "--fps", "--frames", "--slots"},
      {},
      "usage: shmfd-camera [--socket PATH] [--topic NAME] [--format rgba|nv12] [--width W] "
      "[--height H] [--fps N] [--frames N] [--slots N]\n"
      "  defaults: topic camera/0, rgba, 1920x1080, 30 fps, frames until stopped, 4 pool slots\n");
  const std::string socket = args.get("--socket", default_socket_path());
  const std::string topic = args.get("--topic", "camera/0");
  const std::string format = args.get("--format", "rgba");
  if (format != "rgba" && format != "nv12") {
    std::fprintf(stderr, "shmfd-camera: --format must be rgba or nv12, not '%s'\n", format.c_str());
    return 2;
  }
  const auto fps = args.number("--fps", 30, 0, 1000);
  const auto frames = args.number("--frames", 0, 0, examples::kMaxCount);
  auto layout = image_layout(format == "nv12" ? PixelFormat::nv12 : PixelFormat::rgba8,
                             static_cast<std::uint32_t>(args.number("--width", 1920, 1, 16384)),
                             static_cast<std::uint32_t>(args.number("--height", 1080, 1, 16384)));
  if (!layout)
    return std::fprintf(stderr, "shmfd-camera: %s\n", layout.error().message().c_str()), 2;
  const std::size_t frame_bytes = *layout_extent(*layout);

  auto producer = Producer::connect(socket, "shmfd-camera");
  if (!producer)
    return std::fprintf(stderr, "shmfd-camera: %s\n", producer.error().message().c_str()), 1;
  if (auto ok = producer->advertise(topic, LayoutKind::image, Guarantee::pool); !ok) {
    return std::fprintf(stderr, "shmfd-camera: %s\n", ok.error().message().c_str()), 1;
  }
  auto pool = producer->create_pool(topic, frame_bytes,
                                    static_cast<std::uint32_t>(args.number("--slots", 4, 1, 1024)));
  if (!pool) return std::fprintf(stderr, "shmfd-camera: %s\n", pool.error().message().c_str()), 1;
  std::fprintf(stderr, "shmfd-camera: %s %ux%u at %llu fps on '%s'\n", format.c_str(),
               layout->width, layout->height, fps, topic.c_str());

  examples::LiveClock clock(fps);  // a stall skips ticks rather than bursting after it
  std::uint64_t published = 0;
  for (std::uint64_t seq = 1; frames == 0 || seq <= frames; ++seq) {
    auto slot = producer->acquire(*pool);  // waits while consumers hold every slot
    if (!slot) return std::fprintf(stderr, "shmfd-camera: %s\n", slot.error().message().c_str()), 1;
    examples::draw_frame(slot->bytes, *layout, seq);
    auto sent = producer->publish(topic, *slot, *layout, examples::now_ns());
    if (!sent) return std::fprintf(stderr, "shmfd-camera: %s\n", sent.error().message().c_str()), 1;
    ++published;
    clock.wait_next();
  }
  std::printf("camera: %llu frames produced, %llu ticks skipped\n",
              static_cast<unsigned long long>(published),
              static_cast<unsigned long long>(clock.skipped()));
  return 0;
}
