// The README's producer: 100 frames of 640x480 RGBA on "cam0", each a sealed memfd of its own.
//   g++ -std=c++20 producer.cpp $(pkg-config --cflags --libs shmfd) -o producer
#include <cstdio>
#include <cstring>
#include <string>

#include "shmfd/producer.hpp"

int main(int argc, char** argv) {
  const std::string socket = argc > 1 ? argv[1] : shmfd::default_socket_path();
  auto producer = shmfd::Producer::connect(socket, "camera");
  if (!producer) return std::fprintf(stderr, "%s\n", producer.error().message().c_str()), 1;
  if (auto ok = producer->advertise("cam0", shmfd::LayoutKind::image); !ok) {
    return std::fprintf(stderr, "%s\n", ok.error().message().c_str()), 1;
  }
  const auto layout = *shmfd::image_layout(shmfd::PixelFormat::rgba8, 640, 480);
  for (int i = 0; i < 100; ++i) {
    auto buffer = producer->allocate("cam0", layout);  // a writable memfd of the right size
    if (!buffer) return std::fprintf(stderr, "%s\n", buffer.error().message().c_str()), 1;
    std::memset(buffer->bytes().data(), i, buffer->bytes().size());         // "draw" frame i
    auto sequence = producer->publish("cam0", std::move(*buffer), layout);  // sealed, sent
    if (!sequence) return std::fprintf(stderr, "%s\n", sequence.error().message().c_str()), 1;
  }
  return 0;  // the topic's subscribers get EndOfStream
}
