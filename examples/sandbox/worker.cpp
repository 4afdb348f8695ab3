// shmfd-sandbox-worker: the untrusted side. Started by shmfd-sandbox-host with a connected
// socket as fd 3. It first locks itself down (PR_SET_NO_NEW_PRIVS + a seccomp-bpf allow-list
// built with libseccomp): from then on it cannot open files, create sockets, connect or exec;
// any other system call kills it with SIGSYS. Then, per frame: receive, verify, map read-only,
// make a grayscale + 3x3 box-blurred copy in a memfd of its own, seal it, send it back.
//
//   shmfd-sandbox-worker [--misbehave-on N]   (on frame N, try to open a file: SIGSYS)
#include <fcntl.h>
#include <seccomp.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "../common/frame_link.hpp"
#include "gray_blur.hpp"
#include "shmfd/memfd.hpp"

namespace {

using namespace shmfd;

constexpr int kSocket = 3;

// Everything the worker needs after lock-down, nothing else. Default action: kill the
// process (SIGSYS), so the host sees exactly what happened.
bool lock_down() {
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_KILL_PROCESS);
  if (ctx == nullptr) return false;
  const int allowed[] = {
      SCMP_SYS(recvmsg),  SCMP_SYS(sendmsg),    SCMP_SYS(read),         SCMP_SYS(write),
      SCMP_SYS(close),    SCMP_SYS(mmap),       SCMP_SYS(munmap),       SCMP_SYS(mremap),
      SCMP_SYS(brk),      SCMP_SYS(madvise),    SCMP_SYS(memfd_create), SCMP_SYS(ftruncate),
      SCMP_SYS(fcntl),    SCMP_SYS(fstat),      SCMP_SYS(newfstatat),   SCMP_SYS(fstatfs),
      SCMP_SYS(readlink), SCMP_SYS(pwrite64),   SCMP_SYS(futex),        SCMP_SYS(getpid),
      SCMP_SYS(exit),     SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn), SCMP_SYS(clock_gettime),
  };
  for (int sys : allowed) {
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sys, 0) != 0) {
      seccomp_release(ctx);
      return false;
    }
  }
#if defined(__SANITIZE_ADDRESS__)
  // AddressSanitizer's runtime checks memory through a pipe and yields while reporting; these
  // open nothing outside the process. Only in sanitizer builds.
  for (int sys :
       {SCMP_SYS(pipe2), SCMP_SYS(sched_yield), SCMP_SYS(sigaltstack), SCMP_SYS(rt_sigaction),
        SCMP_SYS(rt_sigprocmask), SCMP_SYS(gettid), SCMP_SYS(prctl), SCMP_SYS(mprotect)}) {
    if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sys, 0) != 0) {
      seccomp_release(ctx);
      return false;
    }
  }
#endif
  const bool ok = seccomp_load(ctx) == 0;
  seccomp_release(ctx);
  return ok;
}

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
  if (!lock_down()) {
    std::fprintf(stderr, "shmfd-sandbox-worker: cannot install the seccomp filter\n");
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
