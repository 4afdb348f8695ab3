// The README's consumer: every frame of "cam0" until the producer leaves.
//   g++ -std=c++20 consumer.cpp $(pkg-config --cflags --libs shmfd) -o consumer
#include <cstdio>
#include <string>
#include <variant>

#include "shmfd/consumer.hpp"

int main(int argc, char** argv) {
  const std::string socket = argc > 1 ? argv[1] : shmfd::default_socket_path();
  auto consumer = shmfd::Consumer::connect(socket, "viewer");
  if (!consumer) return std::fprintf(stderr, "%s\n", consumer.error().message().c_str()), 1;
  // block_producer: lose nothing; a live view would rather drop_oldest (the default) or latest.
  if (auto ok = consumer->subscribe("cam0", /*depth=*/4, shmfd::Backpressure::block_producer);
      !ok) {
    return std::fprintf(stderr, "%s\n", ok.error().message().c_str()), 1;
  }
  std::puts("subscribed to cam0");
  std::fflush(stdout);
  int frames = 0, intact = 0;
  while (auto event = consumer->receive()) {
    if (const auto* frame = std::get_if<shmfd::Frame>(&*event)) {
      const auto bytes = frame->bytes();  // a read-only view of the producer's pages
      intact += bytes[0] == std::byte(frames) && bytes[bytes.size() - 1] == std::byte(frames);
      ++frames;
    } else if (const auto* end = std::get_if<shmfd::EndOfStream>(&*event)) {
      std::printf("%d frames, %d intact, %llu dropped; %s\n", frames, intact,
                  static_cast<unsigned long long>(end->dropped), end->reason.c_str());
      return 0;
    }
  }          // each Frame unmaps and releases itself
  return 1;  // the broker went away
}
