#include "channel_rows.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <optional>

#include "must.hpp"
#include "shmfd/mapping.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/verify.hpp"
#include "shmfd/wire/channel.hpp"
#include "shmfd/wire/transport.hpp"

namespace bench {
namespace {

using namespace shmfd;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::size_t kSmallPayload = 64;  // what the producer writes of each frame
constexpr std::uint32_t kPool = 1;
constexpr std::uint32_t kLayout = 0;

// One process's end of a two-way link: its pool, a channel out (it produces) and a channel in
// (it consumes), set up by exchanging fds with the peer over `socket`.
struct Link {
  PoolBuffer pool;
  Mapping peer_pool;
  std::optional<ChannelWriter> out;
  std::optional<ChannelReader> in;
  FrameShapes shapes;
  std::vector<std::uint32_t> free_slots;
  std::uint64_t slot_size = 0;

  std::span<std::byte> slot(std::uint32_t i) const {
    return pool.bytes().subspan(std::size_t{i} * slot_size, slot_size);
  }
  std::span<const std::byte> peer_slot(std::uint32_t i) const {
    return peer_pool.bytes().subspan(std::size_t{i} * slot_size, slot_size);
  }
  std::size_t collect() {
    return out->collect_releases([&](std::uint32_t, std::uint32_t s) { free_slots.push_back(s); });
  }
  // A free slot of our pool, waiting for a release if there is none.
  std::uint32_t acquire() {
    for (collect(); free_slots.empty(); collect()) out->wait(Clock::now() + 10s);
    const std::uint32_t s = free_slots.back();
    free_slots.pop_back();
    return s;
  }
  void publish(std::uint32_t s, std::uint64_t sequence) {
    const Descriptor d{kPool, s, kLayout, sequence, now_ns(), 0};
    // Full (the consumer holds `capacity` slots): a release frees room; wait only for one that
    // has not been collected yet.
    while (!must(out->publish(d), "publish")) {
      if (collect() == 0) out->wait(Clock::now() + 10s);
    }
  }
  Descriptor receive() {
    for (;;) {
      if (auto d = in->next(shapes)) return *d;
      if (in->broken()) die("channel broken: " + in->broken()->message());
      in->wait(Clock::now() + 10s);
    }
  }
};

Link open_link(int socket, std::uint32_t slots, std::uint64_t slot_size, std::uint32_t capacity) {
  auto buffer = must(WritableBuffer::create("bench-pool", slots * slot_size), "pool");
  auto pool = must(std::move(buffer).into_pool(), "seal pool");
  auto out_page = must(OwnPage::create(ChannelSide::producer, capacity), "producer page");
  auto in_page = must(OwnPage::create(ChannelSide::consumer, capacity), "consumer page");
  const int mine[3] = {pool.fd(), out_page.fd(), in_page.fd()};
  const std::byte tag{1};
  if (!send_message(socket, std::span(&tag, 1), mine)) die("send fds");
  std::vector<std::byte> buf(16);
  auto m = must(receive_message(socket, buf, 3), "receive fds");
  if (m.fds.size() != 3) die("expected 3 fds");
  must(verify_buffer(m.fds[0].get(), Guarantee::pool, slots * slot_size), "peer pool");
  Link link{
      std::move(pool),
      // MAP_POPULATE: a pool is mapped once and read for as long as it lives, so its page
      // faults (~3.7 µs for each of 32,400 pages of a 4K pool) belong to set-up, not to frames.
      must(Mapping::map(m.fds[0].get(), slots * slot_size, Access::read_only, 0,
                        MapOptions{.populate = true}),
           "map peer pool"),
      std::nullopt,
      std::nullopt,
      {},
      {},
      slot_size};
  auto peer_out = must(PeerPage::accept(std::move(m.fds[1]), ChannelSide::producer), "peer page");
  auto peer_in = must(PeerPage::accept(std::move(m.fds[2]), ChannelSide::consumer), "peer page");
  link.out.emplace(std::move(out_page), std::move(peer_in));
  link.in.emplace(std::move(in_page), std::move(peer_out));
  link.shapes.add_pool(kPool, slots, slot_size);
  link.shapes.add_layout(kLayout, kSmallPayload);
  for (std::uint32_t s = 0; s < slots; ++s) link.free_slots.push_back(slots - 1 - s);
  return link;
}

}  // namespace

std::vector<double> channel_hop(std::uint64_t iterations, int ping_cpu, int pong_cpu) {
  constexpr std::uint64_t kWarmup = 200;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0) die("socketpair");
  SharedSamples samples(iterations);
  const pid_t pong = spawn(
      [&] {
        ::close(sv[0]);
        Link link = open_link(sv[1], 8, kPage, 64);
        std::uint64_t sink = 0;
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const Descriptor d = link.receive();
          sink += consume(link.peer_slot(d.slot).first(kSmallPayload), Work::read);
          must(link.in->release(d.pool, d.slot, d.sequence), "release");
          const std::uint32_t s = link.acquire();
          std::memset(link.slot(s).data(), static_cast<int>(i), kSmallPayload);
          link.publish(s, i + 1);
        }
        return sink == 1 ? 3 : 0;
      },
      pong_cpu);
  const pid_t ping = spawn(
      [&] {
        ::close(sv[1]);
        Link link = open_link(sv[0], 8, kPage, 64);
        std::uint64_t sink = 0;
        for (std::uint64_t i = 0; i < iterations + kWarmup; ++i) {
          const std::uint64_t t0 = now_ns();
          const std::uint32_t s = link.acquire();
          std::memset(link.slot(s).data(), static_cast<int>(i), kSmallPayload);
          link.publish(s, i + 1);
          const Descriptor d = link.receive();
          sink += consume(link.peer_slot(d.slot).first(kSmallPayload), Work::read);
          must(link.in->release(d.pool, d.slot, d.sequence), "release");
          if (i >= kWarmup) samples.push(static_cast<double>(now_ns() - t0) / 2000.0);
        }
        return sink == 1 ? 3 : 0;
      },
      ping_cpu);
  ::close(sv[0]);
  ::close(sv[1]);
  if (!wait_ok(ping)) die("channel hop: ping failed");
  wait_ok(pong);
  return samples.values();
}

Rate channel_4k(std::uint64_t frames, const S2Variant& v) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0) die("socketpair");
  SharedSamples arrivals(frames);
  const pid_t consumer = spawn([&] {
    ::close(sv[0]);
    Link link = open_link(sv[1], 4, k4KBytes, 2);
    std::uint64_t sink = 0;
    for (std::uint64_t i = 0; i < frames; ++i) {
      const Descriptor d = link.receive();
      sink += consume(link.peer_slot(d.slot), v.work);
      must(link.in->release(d.pool, d.slot, d.sequence), "release");
      arrivals.push(static_cast<double>(now_ns()));
    }
    return sink == 1 ? 3 : 0;
  });
  const pid_t producer = spawn([&] {
    ::close(sv[1]);
    Link link = open_link(sv[0], 4, k4KBytes, 2);
    for (std::uint64_t i = 0; i < frames; ++i) {
      const std::uint32_t s = link.acquire();
      fill(link.slot(s), i, v.fill);
      link.publish(s, i + 1);
    }
    return 0;
  });
  ::close(sv[0]);
  ::close(sv[1]);
  if (!wait_ok(producer)) die("channel 4K: producer failed");
  if (!wait_ok(consumer)) die("channel 4K: consumer failed");
  return rate_of(arrivals.values());
}

std::vector<double> channel_fan_out(std::uint32_t consumers, std::uint64_t frames,
                                    std::uint64_t warmup) {
  constexpr std::uint32_t kSlots = 5;
  constexpr std::uint32_t kCapacity = 4;
  std::vector<std::array<int, 2>> links(consumers);
  for (auto& l : links) {
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, l.data()) != 0) die("socketpair");
  }
  SharedSamples latency(std::size_t{consumers} * frames);  // [c * frames + f], µs
  std::vector<pid_t> children;
  for (std::uint32_t c = 0; c < consumers; ++c) {
    children.push_back(spawn([&, c] {
      for (std::uint32_t o = 0; o < consumers; ++o) {
        ::close(links[o][0]);
        if (o != c) ::close(links[o][1]);
      }
      const int socket = links[c][1];
      std::vector<std::byte> buf(16);
      auto m = must(receive_message(socket, buf, 2), "receive pool and page");
      if (m.fds.size() != 2) die("expected 2 fds");
      must(verify_buffer(m.fds[0].get(), Guarantee::pool, kSlots * k4KBytes), "pool");
      const Mapping pool =
          must(Mapping::map(m.fds[0].get(), kSlots * k4KBytes, Access::read_only), "map pool");
      auto peer = must(PeerPage::accept(std::move(m.fds[1]), ChannelSide::producer), "page");
      auto own = must(OwnPage::create(ChannelSide::consumer, kCapacity), "consumer page");
      const int fd = own.fd();
      const std::byte tag{1};
      if (!send_message(socket, std::span(&tag, 1), std::span(&fd, 1))) die("send page");
      ChannelReader reader(std::move(own), std::move(peer));
      FrameShapes shapes;
      shapes.add_pool(kPool, kSlots, k4KBytes);
      shapes.add_layout(kLayout, k4KBytes);
      std::uint64_t sink = 0;
      for (std::uint64_t f = 0; f < frames;) {
        auto d = reader.next(shapes);
        if (!d) {
          reader.wait(Clock::now() + 10s);
          continue;
        }
        latency.at(c * frames + f) = static_cast<double>(now_ns() - d->timestamp_ns) / 1e3;
        // A look at the first byte only, as the broker rows: the delivery is measured.
        sink += std::to_integer<unsigned>(pool.bytes()[d->slot * k4KBytes]);
        must(reader.release(d->pool, d->slot, d->sequence), "release");
        ++f;
      }
      return sink == 1 ? 3 : 0;
    }));
  }
  const pid_t producer = spawn([&] {
    for (auto& l : links) ::close(l[1]);
    auto buffer = must(WritableBuffer::create("bench-fan-out", kSlots * k4KBytes), "pool");
    auto pool = must(std::move(buffer).into_pool(), "seal pool");
    std::vector<std::optional<ChannelWriter>> writers(consumers);
    for (std::uint32_t c = 0; c < consumers; ++c) {
      auto page = must(OwnPage::create(ChannelSide::producer, kCapacity), "producer page");
      const int fds[2] = {pool.fd(), page.fd()};
      const std::byte tag{1};
      if (!send_message(links[c][0], std::span(&tag, 1), fds)) die("send pool and page");
      std::vector<std::byte> buf(16);
      auto m = must(receive_message(links[c][0], buf, 1), "receive page");
      if (m.fds.size() != 1) die("expected 1 fd");
      writers[c].emplace(
          std::move(page),
          must(PeerPage::accept(std::move(m.fds[0]), ChannelSide::consumer), "consumer page"));
    }
    std::vector<std::uint32_t> holders(kSlots, 0);  // channels holding each slot
    const auto collect = [&] {
      std::size_t freed = 0;
      for (auto& w : writers) {
        freed += w->collect_releases([&](std::uint32_t, std::uint32_t s) { --holders[s]; });
      }
      return freed;
    };
    std::vector<ChannelWriter*> all;
    for (auto& w : writers) all.push_back(&*w);
    for (std::uint64_t f = 0; f < frames; ++f) {
      auto free_slot = [&] { return std::find(holders.begin(), holders.end(), 0U); };
      while (free_slot() == holders.end()) {
        if (collect() == 0) waitv(all, Clock::now() + 10s);
      }
      const auto s = static_cast<std::uint32_t>(free_slot() - holders.begin());
      fill(pool.bytes().subspan(std::size_t{s} * k4KBytes, k4KBytes), f, Fill::header);
      const Descriptor d{kPool, s, kLayout, f + 1, now_ns(), 0};
      for (auto& w : writers) {
        while (!must(w->publish(d), "publish")) {
          if (collect() == 0) w->wait(Clock::now() + 10s);
        }
        ++holders[s];
      }
      ::usleep(10'000);  // paced: this measures latency, not queueing
    }
    return 0;
  });
  for (auto& l : links) {
    ::close(l[0]);
    ::close(l[1]);
  }
  if (!wait_ok(producer)) die("channel fan-out: producer failed");
  for (pid_t child : children) {
    if (!wait_ok(child)) die("channel fan-out: consumer failed");
  }
  return bench::slowest_per_frame(latency, consumers, frames, warmup);
}

Rate channel_stream(std::uint64_t frames) {
  // 128 slots, of which 1 KiB is used: a pool's slots are whole pages (the broker rows' pool
  // is the same), and the consumer touches one byte, as there.
  constexpr std::size_t kFrame = 1024;
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv) != 0) die("socketpair");
  SharedSamples arrivals(frames);
  const pid_t consumer = spawn([&] {
    ::close(sv[0]);
    Link link = open_link(sv[1], 128, kPage, 256);
    std::uint64_t sink = 0;
    for (std::uint64_t i = 0; i < frames; ++i) {
      const Descriptor d = link.receive();
      sink += consume(link.peer_slot(d.slot).first(kFrame), Work::touch);
      must(link.in->release(d.pool, d.slot, d.sequence), "release");
      arrivals.push(static_cast<double>(now_ns()));
    }
    return sink == 1 ? 3 : 0;
  });
  const pid_t producer = spawn([&] {
    ::close(sv[1]);
    Link link = open_link(sv[0], 128, kPage, 256);
    for (std::uint64_t i = 0; i < frames; ++i) {
      const std::uint32_t s = link.acquire();
      std::memset(link.slot(s).data(), static_cast<int>(i), kSmallPayload);
      link.publish(s, i + 1);
    }
    return 0;
  });
  ::close(sv[0]);
  ::close(sv[1]);
  if (!wait_ok(producer)) die("channel stream: producer failed");
  if (!wait_ok(consumer)) die("channel stream: consumer failed");
  return rate_of(arrivals.values());
}

}  // namespace bench
