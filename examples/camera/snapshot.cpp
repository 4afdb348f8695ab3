// shmfd-snapshot: subscribes to a camera topic and writes every Nth frame as a PNG (libpng),
// converting NV12 to RGB; prints frames, rate, latency and drops as it goes.
//
//   shmfd-snapshot [--socket PATH] [--topic NAME] [--every N] [--dir DIR] [--frames N]
#include <png.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "../../programs/common/args.hpp"
#include "../common/frame_stats.hpp"
#include "shmfd/consumer.hpp"

namespace {

using namespace shmfd;

std::uint8_t clamp(double v) {
  return static_cast<std::uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// One row of the image as 8-bit RGB.
void rgb_row(std::span<const std::byte> bytes, const ImageLayout& l, std::uint32_t y,
             std::vector<std::uint8_t>& out) {
  const auto* base = reinterpret_cast<const std::uint8_t*>(bytes.data());
  for (std::uint32_t x = 0; x < l.width; ++x) {
    std::uint8_t r, g, b;
    if (l.format == PixelFormat::nv12) {
      // BT.601 limited range.
      const double Y = base[l.planes[0].offset + y * l.planes[0].stride + x] - 16.0;
      const std::uint8_t* uv =
          base + l.planes[1].offset + (y / 2) * l.planes[1].stride + (x / 2) * 2;
      const double U = uv[0] - 128.0, V = uv[1] - 128.0;
      r = clamp(1.164 * Y + 1.596 * V);
      g = clamp(1.164 * Y - 0.392 * U - 0.813 * V);
      b = clamp(1.164 * Y + 2.017 * U);
    } else {  // rgba8
      const std::uint8_t* p = base + l.planes[0].offset + y * l.planes[0].stride + x * 4;
      r = p[0];
      g = p[1];
      b = p[2];
    }
    out[3 * x] = r;
    out[3 * x + 1] = g;
    out[3 * x + 2] = b;
  }
}

// Writes the frame as an 8-bit RGB PNG. Returns an error message, or "".
std::string write_png(const std::string& path, std::span<const std::byte> bytes,
                      const ImageLayout& l) {
  std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "wb"), &std::fclose);
  if (!file) return "cannot create " + path;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (info == nullptr) {
    png_destroy_write_struct(&png, nullptr);
    return "libpng: out of memory";
  }
  std::vector<std::uint8_t> row(3 * static_cast<std::size_t>(l.width));
  if (setjmp(png_jmpbuf(png))) {  // libpng reports errors by longjmp
    png_destroy_write_struct(&png, &info);
    return "libpng failed writing " + path;
  }
  png_init_io(png, file.get());
  png_set_IHDR(png, info, l.width, l.height, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(png, 1);  // fast: this runs beside a live pipeline
  png_write_info(png, info);
  for (std::uint32_t y = 0; y < l.height; ++y) {
    rgb_row(bytes, l, y, row);
    png_write_row(png, row.data());
  }
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  const examples::Args args(argc, argv, {"--socket", "--topic", "--every", "--dir", "--frames"}, {},
                            "usage: shmfd-snapshot [--socket PATH] [--topic NAME] [--every N] "
                            "[--dir DIR] [--frames N]\n"
                            "  defaults: topic camera/0, every 30th frame, /tmp/shmfd-snapshots\n");
  const std::string topic = args.get("--topic", "camera/0");
  const auto every = args.number("--every", 30, 1, examples::kMaxCount);
  const std::string dir = args.get("--dir", "/tmp/shmfd-snapshots");
  const auto frames = args.number("--frames", 0, 0, examples::kMaxCount);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);

  auto consumer = Consumer::connect(args.get("--socket", default_socket_path()), "shmfd-snapshot");
  if (!consumer)
    return std::fprintf(stderr, "shmfd-snapshot: %s\n", consumer.error().message().c_str()), 1;
  if (auto ok = consumer->subscribe(topic, 4); !ok) {
    return std::fprintf(stderr, "shmfd-snapshot: %s\n", ok.error().message().c_str()), 1;
  }
  std::fprintf(stderr, "shmfd-snapshot: subscribed to '%s'\n", topic.c_str());

  examples::FrameStats stats("shmfd-snapshot");
  std::vector<std::string> written;
  while (frames == 0 || stats.frames() < frames) {
    auto event = consumer->receive();
    if (!event)
      return std::fprintf(stderr, "shmfd-snapshot: %s\n", event.error().message().c_str()), 1;
    if (std::holds_alternative<EndOfStream>(*event)) break;
    const Frame& frame = std::get<Frame>(*event);
    stats.add(frame.timestamp_ns(), frame.dropped());
    const auto* image = std::get_if<ImageLayout>(&frame.layout());
    if (image == nullptr || frame.sequence() % every != 0) continue;
    std::string name = topic;
    for (char& c : name) c = c == '/' ? '-' : c;
    const std::string path = dir + "/" + name + "-" + std::to_string(frame.sequence()) + ".png";
    if (auto error = write_png(path, frame.bytes(), *image); !error.empty()) {
      return std::fprintf(stderr, "shmfd-snapshot: %s\n", error.c_str()), 1;
    }
    written.push_back(path);
  }
  std::printf("snapshot: %s; %zu PNG snapshots:", stats.line().c_str(), written.size());
  for (const auto& p : written) std::printf(" %s", p.c_str());
  std::printf("\n");
  return 0;
}
