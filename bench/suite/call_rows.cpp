#include "call_rows.hpp"

#include <cstring>
#include <variant>

#include "must.hpp"
#include "shmfd/service.hpp"

namespace bench {
namespace {

using namespace shmfd;

constexpr std::uint64_t kWarmup = 100;
constexpr std::size_t kHeader = 64;  // what each side writes of its frame, and reads of the other's

WritableBuffer with_header(std::size_t bytes, std::uint64_t i) {
  auto buffer = must(WritableBuffer::create("bench-call", bytes), "WritableBuffer::create");
  std::memset(buffer.bytes().data(), 0, kHeader);
  std::memcpy(buffer.bytes().data(), &i, sizeof i);
  return buffer;
}

void write_header(std::span<std::byte> bytes, std::uint64_t i) {
  std::memset(bytes.data(), 0, kHeader);
  std::memcpy(bytes.data(), &i, sizeof i);
}

std::uint64_t header_of(const Frame& frame) {
  std::uint64_t i = 0;
  std::memcpy(&i, frame.bytes().data(), sizeof i);
  return i;
}

}  // namespace

std::vector<double> call_round_trip(std::uint64_t iterations, std::size_t bytes, int caller_cpu,
                                    int server_cpu, CallFrames frames) {
  const bool pools = frames == CallFrames::pool_slots;
  BrokerProcess broker(caller_cpu == server_cpu ? caller_cpu : -1);
  SharedSamples samples(iterations);
  Signal offered;
  const std::string socket = broker.socket();
  const Layout layout = blob_layout(bytes);
  const pid_t server = spawn(
      [&] {
        auto s = must(Server::connect(socket, "bench-server"), "Server::connect");
        must(s.offer("bench/echo", 1), "offer");
        const std::uint32_t pool = pools ? must(s.create_pool(bytes, 2), "create_pool") : 0;
        offered.post();
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          auto event = must(s.receive(), "receive");
          auto* request = std::get_if<Request>(&event);
          if (request == nullptr || !request->frame) die("the server got no request frame");
          if (pools) {
            const Slot slot = must(s.acquire(pool), "acquire");
            write_header(slot.bytes, header_of(*request->frame));
            must(s.respond(*request, slot, layout), "respond");
          } else {
            must(s.respond(*request, with_header(bytes, header_of(*request->frame)), layout),
                 "respond");
          }
        }
        return 0;
      },
      server_cpu);
  const pid_t caller = spawn(
      [&] {
        auto c = must(Caller::connect(socket, "bench-caller"), "Caller::connect");
        const std::uint32_t pool = pools ? must(c.create_pool(bytes, 2), "create_pool") : 0;
        offered.wait();
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const std::uint64_t t0 = now_ns();
          Response response;
          if (pools) {
            const Slot slot = must(c.acquire(pool), "acquire");
            write_header(slot.bytes, i);
            response = must(c.call("bench/echo", slot, layout), "call");
          } else {
            response = must(c.call("bench/echo", with_header(bytes, i), layout), "call");
          }
          if (!response.frame || header_of(*response.frame) != i) die("a wrong response");
          if (i >= kWarmup) samples.push(static_cast<double>(now_ns() - t0) / 1000.0);
        }
        return 0;
      },
      caller_cpu);
  if (!wait_ok(caller)) die("call round trip: the caller failed");
  wait_ok(server);
  return samples.values();
}

}  // namespace bench
