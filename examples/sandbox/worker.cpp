// shmfd-sandbox-worker: the untrusted side. Started by shmfd-sandbox-host with a connected
// socket as fd 3. It first locks itself down with shmfd::restrict_syscalls() (no_new_privs and
// a seccomp-bpf allow list, docs/sandboxing.md): from then on it cannot open files, create
// sockets, connect or exec; any other system call kills it with SIGSYS. Then, per frame: receive,
// verify, map read-only, make a grayscale + 3x3 box-blurred copy in a memfd of its own, seal it,
// send it back.
//
//   shmfd-sandbox-worker [--misbehave-on N]   (on frame N, try to open a file: SIGSYS)
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../common/frame_link.hpp"
#include "gray_blur.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/sandbox.hpp"

namespace {

using namespace shmfd;

constexpr int kSocket = 3;

// The result in a memfd of the worker's own, sealed before it leaves.
Result<SealedBuffer> transform(std::span<const std::byte> in, const ImageLayout& l) {
  auto out = WritableBuffer::create("sandbox/out", static_cast<std::size_t>(l.width) * l.height);
  if (!out) return fail(std::move(out.error()));
  examples::gray_blur(in, l, reinterpret_cast<std::uint8_t*>(out->bytes().data()));
  return std::move(*out).seal();
}

}  // namespace

int main(int argc, char** argv) {
  const std::uint64_t misbehave_on = argc == 3 && std::strcmp(argv[1], "--misbehave-on") == 0
                                         ? std::strtoull(argv[2], nullptr, 10)
                                         : 0;
  // The steady state of a shmfd client, and pwrite64 for the write to the sealed input shown
  // below.
  if (auto locked = restrict_syscalls({.allow = {"pwrite64"}}); !locked) {
    std::fprintf(stderr, "shmfd-sandbox-worker: %s\n", locked.error().message().c_str());
    return 1;
  }
  bool reported_write = false;
  return examples::serve_rgba_frames(
      kSocket,
      [&](const examples::LinkFrame& frame, const ImageLayout& image,
          std::span<const std::byte> bytes) -> Result<examples::LinkReply> {
        if (frame.sequence == misbehave_on) {
          // Forbidden after lock-down: the kernel kills this process with SIGSYS right here.
          ::openat(AT_FDCWD, "/etc/passwd", O_RDONLY);
        }
        if (!reported_write) {
          // Show the guarantee: the input is sealed, so even its holder cannot change it.
          const char byte = 0;
          const bool refused = ::pwrite(frame.fd.get(), &byte, 1, 0) < 0;
          (void)examples::send_link_text(kSocket, std::string("write to the input frame: ") +
                                                      (refused ? std::strerror(errno) : "ALLOWED"));
          reported_write = true;
        }
        auto result = transform(bytes, image);
        if (!result) return fail(std::move(result.error()));
        return examples::LinkReply{std::move(*result),
                                   *image_layout(PixelFormat::gray8, image.width, image.height)};
      });
}
