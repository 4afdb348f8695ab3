// sealed_handoff: the smallest end-to-end shmfd program. A producer process draws RGBA frames
// into memfds, seals them and passes the fds with a Cap'n Proto Publish message over a
// SOCK_SEQPACKET socket to a consumer process, which verifies each fd and layout, maps the very
// same pages read-only, checks every pixel and acknowledges. Then the producer tries to cheat
// (an unsealed buffer, a layout larger than its buffer, a pipe instead of a memfd) and the
// consumer refuses each with the reason.
//
//   shmfd-sealed-handoff [--frames N] [--width W] [--height H]
#include <fcntl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "../../programs/common/test_pattern.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/wire/intake.hpp"
#include "shmfd/wire/wire.hpp"

namespace {

using namespace shmfd;

struct Options {
  int frames = 30;
  std::uint32_t width = 1920;
  std::uint32_t height = 1080;
};

using examples::count_wrong_pixels;
using examples::draw;
using examples::now_ns;

double ms(std::uint64_t ns) {
  return static_cast<double>(ns) / 1e6;
}

std::uint64_t percentile(std::vector<std::uint64_t> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

Status send_frame(int sock, int fd, const Layout& layout, std::uint64_t seq) {
  capnp::MallocMessageBuilder builder;
  auto publish = builder.initRoot<proto::Message>().initPublish();
  publish.setTopic("demo/camera");
  auto frame = publish.initFrame();
  frame.setFd(0);
  frame.setSequence(seq);
  frame.setTimestampNs(now_ns());
  layout_to_proto(layout, frame.initLayout());
  auto sent = send_capnp(sock, builder, std::span(&fd, 1));
  if (!sent) return fail(std::move(sent.error()));
  return {};
}

// The consumer's answer to one frame: "" when it was accepted, else the reason it was refused.
Status send_reply(int sock, std::uint64_t seq, const std::string& refusal) {
  capnp::MallocMessageBuilder builder;
  auto msg = builder.initRoot<proto::Message>();
  if (refusal.empty()) {
    auto release = msg.initRelease();
    release.setTopic("demo/camera");
    release.setSequence(seq);
  } else {
    auto error = msg.initError();
    error.setCode(proto::ErrorCode::INVALID_LAYOUT);
    error.setMessage(refusal);
  }
  auto sent = send_capnp(sock, builder);
  if (!sent) return fail(std::move(sent.error()));
  return {};
}

// Verifies, maps and checks one received frame. Returns the refusal reason, or "".
std::string consume(ReceivedMessage& m, std::span<const std::byte> bytes, bool first,
                    std::uint64_t& seq, std::uint64_t& wrong) {
  // Never trust the producer: accept_frame checks that the layout fits the buffer and that the
  // buffer is a memfd sealed immutable, and only then hands over the fd.
  struct Parsed {
    AcceptedFrame frame;
    std::uint64_t seq;
  };
  auto parsed =
      decode_message<proto::Message>(bytes, [&](proto::Message::Reader msg) -> Result<Parsed> {
        if (!msg.isPublish()) return fail(Errc::protocol_violation, "expected a Publish message");
        auto frame = msg.getPublish().getFrame();
        auto accepted = accept_frame(frame, m.fds, Guarantee::sealed);
        if (!accepted) return fail(std::move(accepted.error()));
        return Parsed{std::move(*accepted), frame.getSequence()};
      });
  if (!parsed) return parsed.error().message();
  seq = parsed->seq;
  const int fd = parsed->frame.fd.get();
  const VerifiedBuffer& verified = parsed->frame.verified;
  auto view = Mapping::map(fd, verified.size, Access::read_only);
  if (!view) return view.error().message();

  if (const auto* image = std::get_if<ImageLayout>(&parsed->frame.layout)) {
    wrong += count_wrong_pixels(view->bytes(), *image, parsed->seq);
  }
  if (first) {
    const char byte = 0;
    std::printf(
        "consumer: frame 0 verified (%s); write(2) into it: %s; a writable mapping: %s\n",
        seal_names(verified.seals).c_str(),
        ::pwrite(fd, &byte, 1, 0) < 0 ? std::strerror(errno) : "ALLOWED?!",
        Mapping::map(fd, 4096, Access::read_write) ? "ALLOWED?!" : "Operation not permitted");
  }
  return {};
}

int run_consumer(int sock) {
  MessageBuffer buffer;
  std::uint64_t frames = 0, wrong = 0, refused = 0;
  for (;;) {
    auto m = receive_message(sock, buffer.bytes(), 4);
    if (!m) {
      std::fprintf(stderr, "consumer: %s\n", m.error().message().c_str());
      return 1;
    }
    if (m->status == RecvStatus::peer_closed) break;
    std::uint64_t seq = 0;
    const std::string refusal = consume(*m, buffer.bytes(m->size), frames == 0, seq, wrong);
    if (refusal.empty()) {
      ++frames;
    } else {
      ++refused;
      std::printf("consumer: refused a buffer: %s\n", refusal.c_str());
    }
    if (auto ok = send_reply(sock, seq, refusal); !ok) {
      std::fprintf(stderr, "consumer: %s\n", ok.error().message().c_str());
      return 1;
    }
  }
  std::printf("consumer: %llu frames accepted, %llu wrong pixels, %llu buffers refused\n",
              static_cast<unsigned long long>(frames), static_cast<unsigned long long>(wrong),
              static_cast<unsigned long long>(refused));
  return wrong == 0 ? 0 : 1;
}

// Waits for the consumer's reply; true if it accepted the frame.
Result<bool> await_reply(int sock) {
  MessageBuffer buffer;
  auto m = receive_message(sock, buffer.bytes(), 0);
  if (!m) return fail(std::move(m.error()));
  if (m->status != RecvStatus::message) {
    return fail(Errc::disconnected, "consumer closed the connection");
  }
  return decode_message<proto::Message>(
      buffer.bytes(m->size), [](proto::Message::Reader r) { return Result<bool>(r.isRelease()); });
}

int run_producer(int sock, const Options& opt) {
  auto layout = image_layout(PixelFormat::rgba8, opt.width, opt.height);
  if (!layout) {
    std::fprintf(stderr, "producer: %s\n", layout.error().message().c_str());
    return 1;
  }
  const std::uint64_t size = layout->planes[0].size;
  std::vector<std::uint64_t> make_ns, handoff_ns;
  for (int i = 0; i < opt.frames; ++i) {
    const auto seq = static_cast<std::uint64_t>(i);
    const std::uint64_t t0 = now_ns();
    auto writable = WritableBuffer::create("demo/camera", size);
    if (!writable)
      return std::fprintf(stderr, "producer: %s\n", writable.error().message().c_str()), 1;
    draw(writable->bytes(), *layout, seq);
    auto sealed = std::move(*writable).seal();
    if (!sealed) return std::fprintf(stderr, "producer: %s\n", sealed.error().message().c_str()), 1;
    const std::uint64_t t1 = now_ns();
    if (auto ok = send_frame(sock, sealed->fd(), *layout, seq); !ok) {
      return std::fprintf(stderr, "producer: %s\n", ok.error().message().c_str()), 1;
    }
    // The producer's fd can go now: the consumer holds its own reference to the same pages.
    (void)std::move(*sealed).release();
    auto accepted = await_reply(sock);
    if (!accepted || !*accepted) {
      std::fprintf(stderr, "producer: frame %d was not accepted\n", i);
      return 1;
    }
    make_ns.push_back(t1 - t0);
    handoff_ns.push_back(now_ns() - t1);
  }
  std::printf("producer: %d frames of %ux%u rgba8 (%llu bytes), sealed memfd per frame\n",
              opt.frames, opt.width, opt.height, static_cast<unsigned long long>(size));
  std::printf(
      "producer: create+draw+seal p50 %.2f ms p99 %.2f ms; "
      "handoff (send, verify, map, check every pixel, ack) p50 %.2f ms p99 %.2f ms\n",
      ms(percentile(make_ns, 0.5)), ms(percentile(make_ns, 0.99)), ms(percentile(handoff_ns, 0.5)),
      ms(percentile(handoff_ns, 0.99)));

  // Now cheat three ways; each must be refused by the consumer.
  std::printf("producer: now sending an unsealed buffer, an oversized layout and a pipe\n");
  auto unsealed = WritableBuffer::create("demo/unsealed", size);
  auto small = WritableBuffer::create("demo/small", 4096);
  if (!unsealed || !small) return 1;
  auto small_sealed = std::move(*small).seal();
  int pipe_fds[2];
  if (!small_sealed || ::pipe2(pipe_fds, O_CLOEXEC) != 0) return 1;
  UniqueFd pipe_read(pipe_fds[0]), pipe_write(pipe_fds[1]);
  int refused = 0;
  for (int fd : {unsealed->fd(), small_sealed->fd(), pipe_read.get()}) {
    if (!send_frame(sock, fd, *layout, 0)) return 1;
    auto accepted = await_reply(sock);
    if (accepted && !*accepted) ++refused;
  }
  std::printf("producer: %d of 3 bad buffers refused\n", refused);
  return refused == 3 ? 0 : 1;
}

Options parse(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--frames" && has_value) {
      opt.frames = std::atoi(argv[++i]);
    } else if (arg == "--width" && has_value) {
      opt.width = static_cast<std::uint32_t>(std::atoi(argv[++i]));
    } else if (arg == "--height" && has_value) {
      opt.height = static_cast<std::uint32_t>(std::atoi(argv[++i]));
    } else {
      std::fprintf(stderr, "usage: %s [--frames N] [--width W] [--height H]\n", argv[0]);
      std::exit(arg == "--help" ? 0 : 2);
    }
  }
  if (opt.frames < 1 || opt.width == 0 || opt.height == 0) {
    std::fprintf(stderr, "%s: --frames, --width and --height must be positive\n", argv[0]);
    std::exit(2);
  }
  return opt;
}

}  // namespace

int main(int argc, char** argv) {
  const Options opt = parse(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // two processes share stdout: keep lines whole
  auto pair = make_seqpacket_pair();
  if (!pair) {
    std::fprintf(stderr, "%s\n", pair.error().message().c_str());
    return 1;
  }
  std::fflush(stdout);
  const pid_t child = ::fork();
  if (child < 0) {
    std::perror("fork");
    return 1;
  }
  if (child == 0) {
    pair->first.reset();
    const int rc = run_consumer(pair->second.get());
    std::fflush(stdout);
    std::_Exit(rc);
  }
  pair->second.reset();
  std::printf("shmfd sealed handoff: producer pid %d -> consumer pid %d over SOCK_SEQPACKET\n",
              ::getpid(), child);
  const int producer_status = run_producer(pair->first.get(), opt);
  pair->first.reset();  // the consumer sees the peer close and prints its summary
  int status = 0;
  ::waitpid(child, &status, 0);
  const bool ok = producer_status == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0;
  std::printf("%s\n",
              ok ? "OK: every frame arrived intact and every bad buffer was refused" : "FAILED");
  return ok ? 0 : 1;
}
