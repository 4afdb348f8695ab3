// Publishes N frames of a pool on a topic; frame n is filled with the byte n mod 251.
//   app-producer SOCKET TOPIC N
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include <shmfd/producer.hpp>

int main(int argc, char** argv) {
  if (argc != 4) return std::fprintf(stderr, "usage: app-producer SOCKET TOPIC N\n"), 2;
  const std::string topic = argv[2];
  const unsigned long n = std::strtoul(argv[3], nullptr, 10);
  auto producer = shmfd::Producer::connect(argv[1], "app-producer");
  if (!producer) return std::fprintf(stderr, "%s\n", producer.error().message().c_str()), 1;
  if (auto ok = producer->advertise(topic, shmfd::LayoutKind::blob, shmfd::Guarantee::pool); !ok)
    return std::fprintf(stderr, "%s\n", ok.error().message().c_str()), 1;
  auto pool = producer->create_pool(topic, 4096, 4);
  if (!pool) return std::fprintf(stderr, "%s\n", pool.error().message().c_str()), 1;
  for (unsigned long i = 1; i <= n; ++i) {
    auto slot = producer->acquire(*pool);
    if (!slot) return std::fprintf(stderr, "%s\n", slot.error().message().c_str()), 1;
    std::memset(slot->bytes.data(), static_cast<int>(i % 251), 4096);
    auto sent = producer->publish(topic, *slot, shmfd::blob_layout(4096));
    if (!sent) return std::fprintf(stderr, "%s\n", sent.error().message().c_str()), 1;
  }
  std::printf("app-producer: published %lu frames\n", n);
  return 0;
}
