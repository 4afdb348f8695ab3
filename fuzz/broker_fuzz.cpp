// libFuzzer target: the broker's handling of one client's datagram stream. The input is a
// sequence of records, each one datagram with optional fds attached:
//   u8 fds   (low 2 bits: none, a sealed memfd, an unsealed memfd, a pipe; bit 2: two of them)
//   u8 size  (the memfd's size in pages, 0 to 255)
//   u16 len, then len bytes of datagram (little endian; cut short at the end of the input)
// A real Broker runs on an io_context polled in this thread, with a socket in a private
// directory. After every input: the client has gone, the broker holds no topic, and this
// process has exactly the fds it had before it (the broker's and the client's together), so a
// leaked fd aborts like a crash. Every few inputs, a well-behaved producer and consumer must
// still exchange a frame.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <dirent.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include <asio/io_context.hpp>

#include "broker.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/wire/unix_socket.hpp"
#include "shmfd/wire/wire.hpp"

namespace {

using namespace shmfd;

[[noreturn]] void violated(const std::string& what) {
  std::fprintf(stderr, "broker_fuzz: %s\n", what.c_str());
  std::abort();
}

// "3 -> socket:[123], 4 -> /memfd:..." for the report of a leak.
std::string list_fds() {
  std::string out;
  DIR* dir = ::opendir("/proc/self/fd");
  while (const dirent* e = ::readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    char target[256] = {};
    const std::string link = std::string("/proc/self/fd/") + e->d_name;
    const ssize_t n = ::readlink(link.c_str(), target, sizeof target - 1);
    out += std::string(e->d_name) + " -> " + (n > 0 ? target : "?") + "\n";
  }
  ::closedir(dir);
  return out;
}

std::size_t open_fds() {
  DIR* dir = ::opendir("/proc/self/fd");
  std::size_t n = 0;
  while (const dirent* e = ::readdir(dir)) n += e->d_name[0] != '.';
  ::closedir(dir);
  return n - 1;
}

// The harness's directory and socket, for the clean-up at exit.
std::string& harness_dir() {
  static std::string dir;
  return dir;
}
std::string harness_path() {
  return harness_dir() + "/broker.sock";
}

struct Harness {
  Harness() {
    char dir_template[] = "/tmp/shmfd-fuzz-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr) violated("mkdtemp failed");
    dir = dir_template;
    harness_dir() = dir;
    path = harness_path();
    broker::Options options;
    options.socket_path = path;
    options.log_level = broker::LogLevel::error;
    options.limits.hello_timeout_ms = 60'000;  // inputs never wait for a timer
    auto listener = listen_seqpacket(path, ListenOptions{0600, 16});
    if (!listener) violated(listener.error().message());
    broker = std::make_unique<broker::Broker>(io, options, std::move(*listener));
    broker->start();
    settle();
  }
  ~Harness() {
    broker->shutdown();
    settle();
    ::unlink(path.c_str());
    ::rmdir(dir.c_str());
  }

  // Runs every handler that is ready, until none is.
  void settle() {
    io.restart();
    while (io.poll() > 0) {
    }
  }

  // Opens a client connection and has the broker accept it.
  UniqueFd connect() {
    auto fd = connect_seqpacket(path);
    if (!fd) violated(fd.error().message());
    settle();
    return std::move(*fd);
  }

  // Reads and drops whatever the broker sent (its fds close as they arrive).
  static void drain(int fd) {
    MessageBuffer sink(kMaxMessageBytes);
    for (;;) {
      auto m = receive_message(fd, sink.bytes(), kMaxFdsPerMessage, IoMode::non_blocking);
      if (m && m->status != RecvStatus::message) return;
    }
  }

  void send(int client, std::span<const std::byte> bytes, std::span<const int> fds) {
    for (int attempt = 0; attempt < 64; ++attempt) {
      auto sent = send_message(client, bytes, fds, IoMode::non_blocking);
      if (!sent || *sent == SendStatus::sent) return;  // refused, gone or done
      drain(client);
      settle();
    }
  }

  asio::io_context io{1};
  std::string dir;
  std::string path;
  std::unique_ptr<broker::Broker> broker;
};

EncodedMessage hello(const char* name) {
  capnp::MallocMessageBuilder m;
  auto h = m.initRoot<proto::Message>().initHello();
  h.setVersion(kProtocolVersion);
  h.setClientName(name);
  return encode_message(m);
}

// Attachments for one record.
std::vector<UniqueFd> make_fds(std::uint8_t kind, std::uint8_t pages) {
  std::vector<UniqueFd> fds;
  const int count = (kind & 4) ? 2 : 1;
  for (int i = 0; i < count; ++i) {
    switch (kind & 3) {
      case 0:
        return fds;
      case 1:
      case 2: {
        UniqueFd fd(::memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING));  // may stay empty
        if (!fd || ::ftruncate(fd.get(), off_t{pages} * 4096) != 0) violated("memfd_create");
        if ((kind & 3) == 1) {
          ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
        }
        fds.push_back(std::move(fd));
        break;
      }
      default: {
        int p[2];
        if (::pipe2(p, O_CLOEXEC) != 0) violated("pipe2 failed");
        fds.emplace_back(p[0]);
        ::close(p[1]);
      }
    }
  }
  return fds;
}

// A producer and a consumer exchange one frame through the broker.
void check_still_serving(Harness& h) {
  UniqueFd consumer = h.connect();
  UniqueFd producer = h.connect();
  const auto c_hello = hello("canary-consumer");
  const auto p_hello = hello("canary-producer");
  h.send(consumer.get(), c_hello.bytes(), {});
  h.send(producer.get(), p_hello.bytes(), {});
  capnp::MallocMessageBuilder sub;
  auto s = sub.initRoot<proto::Message>().initSubscribe();
  s.setTopic("canary");
  const auto sub_words = encode_message(sub);
  h.send(consumer.get(), sub_words.bytes(), {});
  capnp::MallocMessageBuilder adv;
  adv.initRoot<proto::Message>().initAdvertise().setTopic("canary");
  const auto adv_words = encode_message(adv);
  h.send(producer.get(), adv_words.bytes(), {});
  h.settle();
  auto buffer = WritableBuffer::create("canary", 4096);
  if (!buffer) violated(buffer.error().message());
  auto sealed = std::move(*buffer).seal();
  if (!sealed) violated(sealed.error().message());
  capnp::MallocMessageBuilder pub;
  auto p = pub.initRoot<proto::Message>().initPublish();
  p.setTopic("canary");
  auto f = p.initFrame();
  f.setSequence(1);
  layout_to_proto(blob_layout(4096), f.initLayout());
  const auto pub_words = encode_message(pub);
  const int fd = sealed->fd();
  h.send(producer.get(), pub_words.bytes(), std::span<const int>(&fd, 1));
  h.settle();
  // The consumer's socket now holds Subscribed, then Deliver with the frame's fd.
  MessageBuffer buf;
  bool delivered = false;
  for (int i = 0; i < 4 && !delivered; ++i) {
    auto m = receive_message(consumer.get(), buf.bytes(), 1, IoMode::non_blocking);
    if (!m || m->status != RecvStatus::message) break;
    auto is_deliver = decode_message<proto::Message>(buf.bytes(m->size),
                                                     [&](proto::Message::Reader r) -> Result<bool> {
                                                       return r.isDeliver() && m->fds.size() == 1;
                                                     });
    delivered = is_deliver && *is_deliver;
  }
  if (!delivered) violated("a well-behaved consumer got no frame");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // Lives as long as the fuzzing process; its socket and directory go when the process exits.
  static Harness* harness = [] {
    auto* h = new Harness;
    std::atexit([] {
      ::unlink(harness_path().c_str());
      ::rmdir(harness_dir().c_str());
    });
    return h;
  }();
  static std::uint64_t runs = 0;
  Harness& h = *harness;
  // Counted per input: between inputs libFuzzer may start llvm-symbolizer (pipes, /dev/null)
  // to print the functions a new input reached.
  const std::size_t baseline_fds = open_fds();

  {
    UniqueFd client = h.connect();
    const auto greeting = hello("fuzz");
    h.send(client.get(), greeting.bytes(), {});
    std::size_t at = 0;
    while (at + 4 <= size) {
      const std::uint8_t kind = data[at];
      const std::uint8_t pages = data[at + 1];
      std::size_t len = data[at + 2] | std::size_t{data[at + 3]} << 8;
      at += 4;
      len = std::min(len, size - at);
      if (len == 0) continue;
      std::vector<UniqueFd> fds = make_fds(kind, pages);
      std::vector<int> raw;
      for (const auto& fd : fds) raw.push_back(fd.get());
      h.send(client.get(), {reinterpret_cast<const std::byte*>(data + at), len}, raw);
      at += len;
      h.settle();
      Harness::drain(client.get());
    }
    h.settle();
  }  // the client hangs up
  h.settle();
  h.broker->closer()->wait_idle();  // dropped frames are closed on the closer's thread
  if (h.broker->stats().clients != 0) violated("the broker still has the client after it left");
  if (h.broker->stats().topics != 0) violated("the broker kept a topic nobody uses");
  if (!h.broker->services().empty()) violated("the broker kept a service or a call of no client");
  if (open_fds() != baseline_fds) {
    violated("fd count " + std::to_string(open_fds()) + ", was " + std::to_string(baseline_fds) +
             "; open now:\n" + list_fds());
  }
  if (++runs % 64 == 1) {
    check_still_serving(h);
    h.settle();
    h.broker->closer()->wait_idle();
    if (h.broker->stats().clients != 0 || open_fds() != baseline_fds) {
      violated("the canary clients left something behind");
    }
  }
  return 0;
}
