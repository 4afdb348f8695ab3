// shmfd-plugin-host: runs each plugin in a child process of its own (shmfd-plugin-runner) and
// passes every frame to all of them through shmfd: one sealed memfd, mapped read-only by each
// runner, never copied. A plugin that crashes is detected, reported and restarted; its frame is
// skipped for it, and the other plugins and the host keep going. Results are verified (a sealed
// memfd covering an rgba8 layout of the input's size) before the host uses them. A plugin that
// fails on kMaxFailuresInARow frames in a row (one that cannot even load fails on every frame)
// is given up on, and the host exits 1.
//
//   shmfd-plugin-host [--frames N] [--width W] [--height H] PLUGIN.so...
#include <cstdio>
#include <string>
#include <vector>

#include "../../programs/common/test_pattern.hpp"
#include "../common/child_process.hpp"
#include "../common/frame_link.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/wire/parse.hpp"

namespace {

using namespace shmfd;

constexpr std::uint64_t kMaxFailuresInARow = 3;

constexpr const char* kUsage =
    "Usage: shmfd-plugin-host [options] PLUGIN.so...\n"
    "Runs each plugin in a process of its own and passes it every frame as one sealed memfd,\n"
    "mapped read-only, never copied. A plugin that crashes is restarted; one that fails on\n"
    "3 frames in a row is given up on (exit status 1).\n\n"
    "  --frames N     frames to send (default 10)\n"
    "  --width W      frame width (default 320)\n"
    "  --height H     frame height (default 240)\n"
    "  --help         this text\n\n"
    "The sample plugins are built as build/plugins/{invert,brighten,faulty}.so.\n";

struct Plugin {
  std::string path;
  std::string name;  // the file name, until the runner has said more
  examples::Child runner;
  std::uint64_t processed = 0, crashes = 0, refused = 0;
  std::uint64_t failures_in_a_row = 0;
  bool given_up = false;
};

Status start(Plugin& p) {
  auto child = examples::spawn_child(examples::sibling_program("shmfd-plugin-runner"), {p.path});
  if (!child) return fail(std::move(child.error()));
  p.runner = std::move(*child);
  return {};
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t frames = 10;
  std::uint32_t width = 320, height = 240;
  std::vector<Plugin> plugins;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") return std::fputs(kUsage, stdout), 0;
    if (a == "--frames" || a == "--width" || a == "--height") {
      if (i + 1 >= argc) return std::fprintf(stderr, "%s needs a value\n%s", a.c_str(), kUsage), 2;
      auto n = a == "--frames" ? parse_number(a, argv[++i], 0, std::uint64_t{1} << 53)
                               : parse_number(a, argv[++i], 1, 16384);
      if (!n) return std::fprintf(stderr, "%s\n", n.error().message().c_str()), 2;
      if (a == "--frames") frames = *n;
      if (a == "--width") width = static_cast<std::uint32_t>(*n);
      if (a == "--height") height = static_cast<std::uint32_t>(*n);
    } else if (a.rfind("-", 0) == 0) {
      return std::fprintf(stderr, "unknown option %s\n%s", a.c_str(), kUsage), 2;
    } else {
      plugins.push_back(Plugin{a, std::filesystem::path(a).stem().string(), {}, 0, 0, 0, 0, false});
    }
  }
  if (plugins.empty()) return std::fprintf(stderr, "no plugin given\n%s", kUsage), 2;
  auto layout = image_layout(PixelFormat::rgba8, width, height);
  if (!layout) return std::fprintf(stderr, "%s\n", layout.error().message().c_str()), 2;
  for (auto& p : plugins) {
    if (auto ok = start(p); !ok)
      return std::fprintf(stderr, "%s\n", ok.error().message().c_str()), 1;
    std::printf("host: plugin %s runs in pid %d\n", p.name.c_str(), p.runner.pid);
  }

  MessageBuffer buffer;
  for (std::uint64_t seq = 1; seq <= frames; ++seq) {
    auto input = WritableBuffer::create("plugin-host/in", layout->planes[0].size);
    if (!input) return std::fprintf(stderr, "%s\n", input.error().message().c_str()), 1;
    examples::draw(input->bytes(), *layout, seq);
    auto sealed = std::move(*input).seal();
    if (!sealed) return std::fprintf(stderr, "%s\n", sealed.error().message().c_str()), 1;
    // The same pages to every plugin.
    for (auto& p : plugins) {
      if (!p.given_up)
        (void)examples::send_link_frame(p.runner.sock.get(), sealed->fd(), *layout, seq);
    }
    for (auto& p : plugins) {
      if (p.given_up) continue;
      auto event = examples::receive_link(p.runner.sock.get(), buffer);
      if (event && std::holds_alternative<examples::LinkFrame>(*event)) {
        const auto& out = std::get<examples::LinkFrame>(*event);
        const auto* image = std::get_if<ImageLayout>(&out.layout);
        const bool ok = out.sequence == seq && image != nullptr &&
                        image->format == PixelFormat::rgba8 && image->width == width &&
                        image->height == height;
        ok ? ++p.processed : ++p.refused;
        p.failures_in_a_row = 0;
        continue;
      }
      if (event && std::holds_alternative<std::string>(*event)) {
        std::printf("host: plugin %s: %s\n", p.name.c_str(), std::get<std::string>(*event).c_str());
        ++p.refused;
        continue;
      }
      if (!event)
        std::printf("host: refused output of %s: %s\n", p.name.c_str(),
                    event.error().message().c_str());
      // The runner is gone (or sent garbage): report, restart, skip this frame for it.
      const std::string how = examples::reap(p.runner.pid);
      std::printf("host: plugin %s %s on frame %llu\n", p.name.c_str(), how.c_str(),
                  static_cast<unsigned long long>(seq));
      ++p.crashes;
      if (++p.failures_in_a_row >= kMaxFailuresInARow) {
        std::printf("host: giving up on plugin %s: it failed on %llu frames in a row\n",
                    p.name.c_str(), static_cast<unsigned long long>(p.failures_in_a_row));
        p.runner.sock.reset();
        p.given_up = true;
        continue;
      }
      std::printf("host: restarting plugin %s\n", p.name.c_str());
      if (auto ok = start(p); !ok)
        return std::fprintf(stderr, "%s\n", ok.error().message().c_str()), 1;
    }
  }
  bool all_ok = true;
  for (auto& p : plugins) {
    if (!p.given_up) {
      p.runner.sock.reset();
      examples::reap(p.runner.pid);
    }
    std::printf("host: %s processed %llu of %llu frames, %llu crashes, %llu refused\n",
                p.name.c_str(), static_cast<unsigned long long>(p.processed),
                static_cast<unsigned long long>(frames), static_cast<unsigned long long>(p.crashes),
                static_cast<unsigned long long>(p.refused));
    all_ok = all_ok && !p.given_up && p.processed + p.crashes == frames;
  }
  return all_ok ? 0 : 1;
}
