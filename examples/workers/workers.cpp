// A pool of worker processes behind one service (docs/services.md): each worker offers
// "invert", one call at a time; the client calls it with 320x240 gray images and checks every
// answer. Midway, with a call at every worker, one worker is killed (SIGKILL): its call fails at
// once with CallErrc::server_gone, and the client calls again, which the broker routes to a
// worker that is left. Images and answers travel in slots of each side's pool (no fd and no fresh
// memory per call): the killed worker's slot comes back to the client with its death. Each worker
// locks itself to a shmfd client's steady-state system calls (shmfd::restrict_syscalls(),
// seccomp) once it offers the service and made its pool: from then on, opening a file, making a
// socket or exec kills it. Only the public API: shmfd/service.hpp and shmfd/sandbox.hpp.
//
//   shmfd-workers --socket PATH [--workers N] [--calls N]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "shmfd/sandbox.hpp"
#include "shmfd/service.hpp"

namespace {

using namespace std::chrono_literals;

constexpr std::uint32_t kWidth = 320;
constexpr std::uint32_t kHeight = 240;

std::byte pixel(std::uint64_t image, std::size_t i) {
  return static_cast<std::byte>((image * 31 + i * 7) & 0xff);
}

// A worker: inverts every image it is sent, until the broker goes. It writes a byte to `news`
// once it offers the service and is locked down, so that the client does not call before there
// is a server, and one with its index as each request comes, so that the demo knows when to
// kill it.
[[noreturn]] void work(const std::string& socket, int index, int news) {
  auto server = shmfd::Server::connect(socket, "invert-worker-" + std::to_string(index));
  if (!server || !server->offer("invert", 1)) {
    std::fprintf(stderr, "worker %d: could not offer 'invert'\n", index);
    std::_Exit(1);
  }
  // Answers in slots of its own pool: one at a time, and one more the client may still read.
  auto pool = server->create_pool(std::size_t{kWidth} * kHeight, 2);
  if (!pool) {
    std::fprintf(stderr, "worker %d: %s\n", index, pool.error().message().c_str());
    std::_Exit(1);
  }
  // Set-up is over: from here on, the worker can do what serving takes and nothing else.
  if (auto locked = shmfd::restrict_syscalls(); !locked) {
    std::fprintf(stderr, "worker %d: %s\n", index, locked.error().message().c_str());
    std::_Exit(1);
  }
  const char ready = 'r';
  const char got = static_cast<char>('0' + index);
  if (::write(news, &ready, 1) != 1) std::_Exit(1);
  for (;;) {
    auto event = server->receive();
    if (!event) std::_Exit(0);  // the broker stopped
    auto* request = std::get_if<shmfd::Request>(&*event);
    if (request == nullptr || !request->frame) continue;  // a Cancel: nothing was started
    (void)!::write(news, &got, 1);
    const auto in = request->frame->bytes();
    auto out = server->acquire(*pool);  // free once the client dropped an earlier answer
    if (!out || out->bytes.size() < in.size()) std::_Exit(2);
    for (std::size_t i = 0; i < in.size(); ++i) out->bytes[i] = ~in[i];
    std::this_thread::sleep_for(100ms);  // a real filter takes a while: calls overlap
    const shmfd::Layout layout = request->frame->layout();
    request->frame.reset();  // done reading: the client's slot goes back with the answer
    (void)server->respond(*request, *out, layout);
  }
}

// Image `n` in a free slot of `pool` (waiting for one a worker let go of).
shmfd::Slot image(shmfd::Caller& caller, std::uint32_t pool, std::uint64_t n) {
  auto slot = caller.acquire(pool);
  if (!slot) {
    std::fprintf(stderr, "%s\n", slot.error().message().c_str());
    std::exit(1);
  }
  for (std::size_t i = 0; i < std::size_t{kWidth} * kHeight; ++i) slot->bytes[i] = pixel(n, i);
  return *slot;
}

// Whether the answer is image `n` inverted (a frame in a slot: the slot may be larger).
bool inverted(const shmfd::Response& r, std::uint64_t n) {
  if (!r.frame || r.frame->bytes().size() < std::size_t{kWidth} * kHeight) return false;
  const auto bytes = r.frame->bytes().first(std::size_t{kWidth} * kHeight);
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != ~pixel(n, i)) return false;
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string socket;
  int workers = 3;
  int calls = 30;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--socket")
      socket = argv[i + 1];
    else if (flag == "--workers")
      workers = std::atoi(argv[i + 1]);
    else if (flag == "--calls")
      calls = std::atoi(argv[i + 1]);
  }
  if (socket.empty() || workers < 2 || calls < workers) {
    std::fprintf(stderr,
                 "usage: shmfd-workers --socket PATH [--workers N>=2] [--calls N>=workers]\n");
    return 2;
  }
  int news[2];
  if (::pipe2(news, O_CLOEXEC) != 0) return 1;
  std::vector<pid_t> pids;
  for (int w = 0; w < workers; ++w) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(news[0]);
      work(socket, w, news[1]);
    }
    pids.push_back(pid);
  }
  ::close(news[1]);
  for (int w = 0; w < workers; ++w) {
    char byte;
    if (::read(news[0], &byte, 1) != 1) {
      std::fprintf(stderr, "workers: a worker did not start\n");
      return 1;
    }
  }
  // What the workers say from now on: which got a request. Read without waiting, except for the
  // kill below.
  ::fcntl(news[0], F_SETFL, O_NONBLOCK);
  const auto forget_news = [&] {
    char sink[256];
    while (::read(news[0], sink, sizeof sink) > 0) {
    }
  };
  std::printf("workers: %d workers offer 'invert', each locked to %zu system calls (seccomp)\n",
              workers, shmfd::allowed_syscalls().size());
  auto caller = shmfd::Caller::connect(socket, "invert-client");
  if (!caller) {
    std::fprintf(stderr, "%s\n", caller.error().message().c_str());
    return 1;
  }
  const auto layout = *shmfd::image_layout(shmfd::PixelFormat::gray8, kWidth, kHeight);
  // Images in slots of one pool: one per worker's call at once, and one for a call again.
  auto pool =
      caller->create_pool(std::size_t{kWidth} * kHeight, static_cast<std::uint32_t>(workers) + 1);
  if (!pool) {
    std::fprintf(stderr, "%s\n", pool.error().message().c_str());
    return 1;
  }
  const shmfd::CallOptions options{.deadline = 5s, .when_busy = shmfd::WhenBusy::wait};
  int verified = 0, wrong = 0, retried = 0, killed = 0;
  std::uint64_t n = 0;
  while (n < static_cast<std::uint64_t>(calls)) {
    // One call per worker at once: each worker has one in flight (the broker routes to the
    // least busy), so killing one kills it mid-call.
    // The batch's images first, so that its calls start back to back: a worker then holds its
    // call (100 ms) for far longer than the kill below takes to come.
    std::vector<shmfd::Slot> images;
    for (std::uint64_t i = n;
         i < n + static_cast<std::uint64_t>(workers) && i < static_cast<std::uint64_t>(calls);
         ++i) {
      images.push_back(image(*caller, *pool, i));
    }
    forget_news();  // of the requests answered already
    std::vector<std::pair<std::uint64_t, shmfd::CallId>> batch;
    for (std::size_t k = 0; k < images.size(); ++k, ++n) {
      auto id = caller->start("invert", images[k], layout, options);
      if (!id) {
        std::fprintf(stderr, "call %llu: %s\n", static_cast<unsigned long long>(n),
                     id.error().message().c_str());
        return 1;
      }
      batch.emplace_back(n, *id);
    }
    if (killed == 0 && n >= static_cast<std::uint64_t>(calls) / 2) {
      // Once worker 0 has its request of this batch, however slow the machine.
      for (char who = 0; who != '0';) {
        pollfd p{news[0], POLLIN, 0};
        ::poll(&p, 1, 5000);
        if (::read(news[0], &who, 1) != 1 && (p.revents & POLLIN) == 0) {
          std::fprintf(stderr, "workers: worker 0 got no request in 5 s\n");
          return 1;
        }
      }
      ::kill(pids[0], SIGKILL);
      killed = 1;
      std::printf("workers: killed worker 0 (pid %d) with a call in flight\n", pids[0]);
    }
    for (auto [number, id] : batch) {
      auto response = caller->next(id);
      while (!response && response.error().is(shmfd::CallErrc::server_gone)) {
        std::printf("workers: call %llu failed at once (%s); calling again\n",
                    static_cast<unsigned long long>(number), response.error().message().c_str());
        ++retried;
        // The dead worker's slot is the client's again: the broker freed it as the worker went.
        response = caller->call("invert", image(*caller, *pool, number), layout, options);
      }
      if (!response) {
        std::fprintf(stderr, "call %llu: %s\n", static_cast<unsigned long long>(number),
                     response.error().message().c_str());
        return 1;
      }
      inverted(*response, number) ? ++verified : ++wrong;
    }
  }
  std::printf(
      "workers: %d calls, %d verified, %d wrong; %d worker killed mid-call, %d calls retried\n",
      calls, verified, wrong, killed, retried);
  caller = tl::unexpected(shmfd::Error(shmfd::Errc::disconnected, "done"));
  for (pid_t pid : pids) ::kill(pid, SIGTERM);
  for (pid_t pid : pids) ::waitpid(pid, nullptr, 0);
  return wrong == 0 && verified == calls ? 0 : 1;
}
