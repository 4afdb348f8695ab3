// Receives N frames of a topic (block-producer: none may be lost) and checks each one's bytes
// against app-producer's fill.
//   app-consumer SOCKET TOPIC N
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>

#include <shmfd/consumer.hpp>

int main(int argc, char** argv) {
  if (argc != 4) return std::fprintf(stderr, "usage: app-consumer SOCKET TOPIC N\n"), 2;
  const unsigned long n = std::strtoul(argv[3], nullptr, 10);
  auto consumer = shmfd::Consumer::connect(argv[1], "app-consumer");
  if (!consumer) return std::fprintf(stderr, "%s\n", consumer.error().message().c_str()), 1;
  auto depth = consumer->subscribe(argv[2], 4, shmfd::Backpressure::block_producer);
  if (!depth) return std::fprintf(stderr, "%s\n", depth.error().message().c_str()), 1;
  std::printf("app-consumer: subscribed\n");
  std::fflush(stdout);
  for (unsigned long i = 1; i <= n; ++i) {
    auto event = consumer->receive();
    if (!event) return std::fprintf(stderr, "%s\n", event.error().message().c_str()), 1;
    const auto* frame = std::get_if<shmfd::Frame>(&*event);
    if (frame == nullptr) return std::fprintf(stderr, "app-consumer: end of stream\n"), 1;
    for (std::byte b : frame->bytes()) {
      if (std::to_integer<unsigned long>(b) != frame->sequence() % 251) {
        return std::fprintf(stderr, "app-consumer: frame %llu has a wrong byte\n",
                            static_cast<unsigned long long>(frame->sequence())),
               1;
      }
    }
  }
  std::printf("app-consumer: received %lu frames, all intact\n", n);
  return 0;
}
