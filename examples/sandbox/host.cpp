// shmfd-sandbox-host: sends sealed RGBA frames to an untrusted worker process
// (shmfd-sandbox-worker, locked down with seccomp), and trusts nothing it sends back: every
// result is verified (a sealed memfd, big enough for its layout, the layout expected) and
// compared with the host's own computation. A worker killed by a forbidden system call
// (SIGSYS) is reported and replaced, and the frame is sent again.
//
//   shmfd-sandbox-host [--frames N] [--misbehave-on N] [--width W] [--height H]
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "../../programs/common/args.hpp"
#include "../../programs/common/test_pattern.hpp"
#include "../common/child_process.hpp"
#include "../common/frame_link.hpp"
#include "gray_blur.hpp"
#include "shmfd/memfd.hpp"

namespace {

using namespace shmfd;

Result<examples::Child> spawn_worker(std::uint64_t misbehave_on) {
  std::vector<std::string> args;
  if (misbehave_on != 0) args = {"--misbehave-on", std::to_string(misbehave_on)};
  return examples::spawn_child(examples::sibling_program("shmfd-sandbox-worker"), args);
}

}  // namespace

int main(int argc, char** argv) {
  const examples::Args args(argc, argv, {"--frames", "--misbehave-on", "--width", "--height"}, {},
                            "usage: shmfd-sandbox-host [--frames N] [--misbehave-on N] [--width W] "
                            "[--height H]\n  defaults: 20 frames, the worker misbehaves on frame 7 "
                            "(0: never), 320x240\n");
  const auto frames = args.number("--frames", 20, 0, examples::kMaxCount);
  const std::uint64_t misbehave_on = args.number("--misbehave-on", 7, 0, examples::kMaxCount);
  auto layout = image_layout(PixelFormat::rgba8,
                             static_cast<std::uint32_t>(args.number("--width", 320, 1, 16384)),
                             static_cast<std::uint32_t>(args.number("--height", 240, 1, 16384)));
  if (!layout) return std::fprintf(stderr, "%s\n", layout.error().message().c_str()), 2;
  auto worker = spawn_worker(misbehave_on);
  if (!worker) return std::fprintf(stderr, "%s\n", worker.error().message().c_str()), 1;
  std::printf("host: worker pid %d started (seccomp: no files, no sockets, no exec)\n",
              worker->pid);
  MessageBuffer buffer;
  std::uint64_t verified = 0, wrong = 0, restarts = 0, failures_on_frame = 0;
  std::vector<std::uint8_t> expected(static_cast<std::size_t>(layout->width) * layout->height);

  for (std::uint64_t seq = 1; seq <= frames;) {
    auto input = WritableBuffer::create("sandbox/in", layout->planes[0].size);
    if (!input) return std::fprintf(stderr, "%s\n", input.error().message().c_str()), 1;
    examples::draw(input->bytes(), *layout, seq);
    examples::gray_blur(input->bytes(), *layout, expected.data());
    auto sealed = std::move(*input).seal();
    if (!sealed) return std::fprintf(stderr, "%s\n", sealed.error().message().c_str()), 1;
    (void)examples::send_link_frame(worker->sock.get(), sealed->fd(), *layout, seq);

    for (;;) {
      auto event = examples::receive_link(worker->sock.get(), buffer);
      if (event && std::holds_alternative<std::string>(*event)) {
        std::printf("host: worker says: %s\n", std::get<std::string>(*event).c_str());
        continue;
      }
      if (!event || std::holds_alternative<examples::LinkClosed>(*event)) {
        if (!event)
          std::printf("host: refused the worker's output: %s\n", event.error().message().c_str());
        const std::string how = examples::reap(worker->pid);  // killed if merely misbehaving
        std::printf("host: worker pid %d %s on frame %llu; starting a new one\n", worker->pid,
                    how.c_str(), static_cast<unsigned long long>(seq));
        if (++failures_on_frame > 3) {
          std::printf("host: the worker failed on frame %llu %llu times; giving up\n",
                      static_cast<unsigned long long>(seq),
                      static_cast<unsigned long long>(failures_on_frame));
          return 1;
        }
        worker = spawn_worker(0);  // the replacement behaves
        if (!worker) return std::fprintf(stderr, "%s\n", worker.error().message().c_str()), 1;
        ++restarts;
        break;  // send this frame again
      }
      // Never trust the worker: receive_link verified a sealed memfd covering the layout;
      // check the layout is what was asked for and the bytes are right.
      auto& out = std::get<examples::LinkFrame>(*event);
      const auto* image = std::get_if<ImageLayout>(&out.layout);
      if (out.sequence != seq || image == nullptr || image->format != PixelFormat::gray8 ||
          image->width != layout->width || image->height != layout->height) {
        std::printf("host: refused the worker's output for frame %llu: unexpected layout\n",
                    static_cast<unsigned long long>(seq));
        ++wrong;
      } else {
        auto view =
            Mapping::map(out.fd.get(), static_cast<std::size_t>(out.size), Access::read_only);
        const bool same = view && std::memcmp(view->bytes().data() + image->planes[0].offset,
                                              expected.data(), expected.size()) == 0;
        same ? ++verified : ++wrong;
      }
      ++seq;
      failures_on_frame = 0;
      break;
    }
  }
  worker->sock.reset();  // the worker sees end of file and exits
  int status = 0;
  ::waitpid(worker->pid, &status, 0);
  std::printf("host: %llu frames, %llu verified, %llu wrong, %llu worker restarts\n",
              static_cast<unsigned long long>(frames), static_cast<unsigned long long>(verified),
              static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(restarts));
  return verified == frames && wrong == 0 ? 0 : 1;
}
