// libFuzzer target: a channel whose two pages are also written by a hostile hand. Between
// honest publishes, reads, releases and collections, the input overwrites any byte of either
// page (ring entries, indices, epochs, the closed word). Whatever it writes:
//   - ChannelReader::next only returns descriptors that a model of the reader's pools and
//     layouts (kept here, independently) accepts, and metadata (version 5) only from a page with
//     metadata entries, with a header that fits them;
//   - ChannelWriter::collect_releases only frees slots that were published to this consumer and
//     not freed since, each once;
//   - nothing crashes, reads out of bounds or waits (waits here have a past deadline).
#include <fuzzer/FuzzedDataProvider.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <utility>

#include "shmfd/verify.hpp"
#include "shmfd/wire/channel.hpp"

namespace {

[[noreturn]] void violated(const char* what) {
  std::fprintf(stderr, "channel_fuzz: %s\n", what);
  std::abort();
}

struct PoolModel {
  std::uint32_t slots;
  std::uint64_t slot_size;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider in(data, size);
  const std::uint32_t capacity = 1U << in.ConsumeIntegralInRange<unsigned>(1, 4);
  const std::uint32_t meta_bytes = 64 * in.ConsumeIntegralInRange<std::uint32_t>(0, 2);

  auto producer_page = shmfd::OwnPage::create(shmfd::ChannelSide::producer, capacity, meta_bytes);
  auto consumer_page = shmfd::OwnPage::create(shmfd::ChannelSide::consumer, capacity);
  if (!producer_page || !consumer_page) violated("cannot create pages");
  std::byte* const raw[2] = {producer_page->data(), consumer_page->data()};
  const std::size_t raw_size[2] = {
      shmfd::channel_page_bytes(shmfd::ChannelSide::producer, capacity, meta_bytes),
      shmfd::channel_page_bytes(shmfd::ChannelSide::consumer, capacity)};
  auto producer_ro = shmfd::reopen_read_only(producer_page->fd());
  auto consumer_ro = shmfd::reopen_read_only(consumer_page->fd());
  if (!producer_ro || !consumer_ro) violated("cannot reopen pages");
  auto producer_peer =
      shmfd::PeerPage::accept(std::move(*producer_ro), shmfd::ChannelSide::producer, meta_bytes);
  auto consumer_peer =
      shmfd::PeerPage::accept(std::move(*consumer_ro), shmfd::ChannelSide::consumer);
  if (!producer_peer || !consumer_peer) violated("honest pages refused");
  shmfd::ChannelWriter writer(std::move(*producer_page), std::move(*consumer_peer));
  shmfd::ChannelReader reader(std::move(*consumer_page), std::move(*producer_peer));

  // What the reader accepts, and the same rules kept here.
  shmfd::FrameShapes shapes;
  std::map<std::uint32_t, PoolModel> pools;
  std::map<std::uint32_t, std::uint64_t> layouts;
  const int pool_count = in.ConsumeIntegralInRange<int>(1, 3);
  for (int i = 0; i < pool_count; ++i) {
    const auto id = in.ConsumeIntegralInRange<std::uint32_t>(0, 4);
    const PoolModel p{in.ConsumeIntegralInRange<std::uint32_t>(0, 8),
                      in.ConsumeIntegralInRange<std::uint64_t>(0, 1 << 16)};
    shapes.add_pool(id, p.slots, p.slot_size);
    pools[id] = p;
  }
  const int layout_count = in.ConsumeIntegralInRange<int>(1, 4);
  for (int i = 0; i < layout_count; ++i) {
    const auto id = in.ConsumeIntegralInRange<std::uint32_t>(0, 6);
    const auto extent = in.ConsumeIntegralInRange<std::uint64_t>(0, 1 << 17);
    shapes.add_layout(id, extent);
    layouts[id] = extent;
  }

  std::set<std::pair<std::uint32_t, std::uint32_t>> held;  // published and not yet freed
  std::uint64_t sequence = 0;
  const auto past = std::chrono::steady_clock::now() - std::chrono::seconds(1);
  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange<int>(0, 6)) {
      case 0: {  // an honest publish of an arbitrary descriptor
        shmfd::Descriptor d;
        d.pool = in.ConsumeIntegralInRange<std::uint32_t>(0, 5);
        d.slot = in.ConsumeIntegralInRange<std::uint32_t>(0, 9);
        d.layout = in.ConsumeIntegralInRange<std::uint32_t>(0, 7);
        d.sequence = ++sequence;
        // With metadata half the time: times, flags, a crop and a header of any length (one
        // longer than the entries hold is refused by the writer).
        const bool with_meta = in.ConsumeBool();
        const auto header =
            in.ConsumeBytes<std::byte>(in.ConsumeIntegralInRange<std::size_t>(0, 96));
        shmfd::FrameMeta meta;
        meta.pts = in.ConsumeIntegral<std::uint64_t>();
        meta.flags = in.ConsumeIntegral<std::uint32_t>();
        meta.crop = shmfd::Crop{1, 2, in.ConsumeIntegral<std::uint32_t>(), 4};
        meta.header = header;
        auto ok = writer.publish(d, std::chrono::steady_clock::now(), with_meta ? &meta : nullptr);
        if (ok && *ok) {
          if (!held.insert({d.pool, d.slot}).second) violated("published a slot still held");
        }
        break;
      }
      case 1: {  // the reader reads; whatever it returns must pass the model
        if (auto d = reader.next(shapes)) {
          const auto pool = pools.find(d->pool);
          const auto layout = layouts.find(d->layout);
          if (pool == pools.end() || d->slot >= pool->second.slots || layout == layouts.end() ||
              layout->second > pool->second.slot_size) {
            violated("next() returned a descriptor the shapes refuse");
          }
          if (d->has_meta && (meta_bytes == 0 || reader.meta().header.size() >
                                                     meta_bytes - shmfd::kChannelMetaFixedBytes)) {
            violated("next() returned metadata its page cannot hold");
          }
        }
        break;
      }
      case 2: {  // the consumer releases something (maybe never delivered)
        (void)reader.release(in.ConsumeIntegralInRange<std::uint32_t>(0, 5),
                             in.ConsumeIntegralInRange<std::uint32_t>(0, 9),
                             in.ConsumeIntegralInRange<std::uint64_t>(0, sequence + 1));
        break;
      }
      case 3: {  // the producer collects: only held slots are freed, each once
        writer.collect_releases([&](std::uint32_t pool, std::uint32_t slot) {
          if (held.erase({pool, slot}) != 1) violated("freed a slot that was not held");
        });
        if (writer.held() != held.size()) violated("writer's held count differs from the model");
        break;
      }
      case 4: {  // a hostile hand writes bytes anywhere in either page
        const int side = in.ConsumeIntegralInRange<int>(0, 1);
        const auto at = in.ConsumeIntegralInRange<std::size_t>(0, raw_size[side] - 1);
        const auto bytes =
            in.ConsumeBytes<std::uint8_t>(in.ConsumeIntegralInRange<std::size_t>(1, 16));
        if (!bytes.empty()) {
          std::memcpy(raw[side] + at, bytes.data(), std::min(bytes.size(), raw_size[side] - at));
        }
        break;
      }
      case 5: {  // waits with a past deadline return at once
        (void)reader.wait(past);
        (void)writer.wait(past);
        (void)reader.readable();
        (void)reader.ended();
        break;
      }
      case 6: {  // the consumer is cut off: everything held comes back, once
        writer.reclaim_all([&](std::uint32_t pool, std::uint32_t slot) {
          if (held.erase({pool, slot}) != 1) violated("reclaimed a slot that was not held");
        });
        if (!held.empty()) violated("reclaim_all left slots held");
        break;
      }
    }
  }
  return 0;
}
