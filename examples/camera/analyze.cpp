// shmfd-analyze: a second consumer of the same camera pages. Computes a luma histogram and the
// mean of every plane for each frame, and checks every pixel against the test pattern, so a
// torn or stale frame is counted. --no-check skips the pattern, for frames from elsewhere (a
// GStreamer pipeline into shmfdsink: examples/gstreamer/).
//
//   shmfd-analyze [--socket PATH] [--topic NAME] [--frames N] [--no-check]
#include <array>
#include <cstdio>

#include "../../programs/common/args.hpp"
#include "../common/frame_stats.hpp"
#include "shmfd/consumer.hpp"

namespace {

using namespace shmfd;

struct Analysis {
  std::array<std::uint64_t, 256> histogram{};
  double mean_luma = 0;
};

// Luma from the Y plane (NV12) or from RGB (BT.601 weights).
Analysis analyze(std::span<const std::byte> bytes, const ImageLayout& l) {
  Analysis a;
  const auto* base = reinterpret_cast<const std::uint8_t*>(bytes.data());
  std::uint64_t sum = 0;
  for (std::uint32_t y = 0; y < l.height; ++y) {
    const std::uint8_t* row = base + l.planes[0].offset + y * l.planes[0].stride;
    for (std::uint32_t x = 0; x < l.width; ++x) {
      const std::uint32_t v =
          l.format == PixelFormat::nv12
              ? row[x]
              : (77U * row[4 * x] + 150U * row[4 * x + 1] + 29U * row[4 * x + 2]) >> 8;
      ++a.histogram[v];
      sum += v;
    }
  }
  a.mean_luma = static_cast<double>(sum) / (static_cast<double>(l.width) * l.height);
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const examples::Args args(
      argc, argv, {"--socket", "--topic", "--frames"}, {"--no-check"},
      "usage: shmfd-analyze [--socket PATH] [--topic NAME] [--frames N] [--no-check]\n");
  const bool check = !args.has("--no-check");
  const std::string topic = args.get("--topic", "camera/0");
  const auto frames = args.number("--frames", 0, 0, examples::kMaxCount);
  auto consumer = Consumer::connect(args.get("--socket", default_socket_path()), "shmfd-analyze");
  if (!consumer)
    return std::fprintf(stderr, "shmfd-analyze: %s\n", consumer.error().message().c_str()), 1;
  if (auto ok = consumer->subscribe(topic, 4); !ok) {
    return std::fprintf(stderr, "shmfd-analyze: %s\n", ok.error().message().c_str()), 1;
  }
  std::fprintf(stderr, "shmfd-analyze: subscribed to '%s'\n", topic.c_str());

  examples::FrameStats stats("shmfd-analyze");
  std::uint64_t wrong = 0, torn_frames = 0;
  double mean = 0;
  while (frames == 0 || stats.frames() < frames) {
    auto event = consumer->receive();
    if (!event)
      return std::fprintf(stderr, "shmfd-analyze: %s\n", event.error().message().c_str()), 1;
    if (std::holds_alternative<EndOfStream>(*event)) break;
    const Frame& frame = std::get<Frame>(*event);
    stats.add(frame.timestamp_ns(), frame.dropped());
    const auto* image = std::get_if<ImageLayout>(&frame.layout());
    if (image == nullptr) continue;
    const Analysis a = analyze(frame.bytes(), *image);
    mean = a.mean_luma;
    const std::uint64_t bad =
        check ? examples::count_wrong(frame.bytes(), *image, frame.sequence()) : 0;
    wrong += bad;
    torn_frames += bad != 0;
  }
  std::printf("analyze: %s; mean luma of the last frame %.1f; %s\n", stats.line().c_str(), mean,
              check ? (std::to_string(torn_frames) + " frames with wrong pixels").c_str()
                    : "pixels not checked (--no-check)");
  return wrong == 0 ? 0 : 1;
}
