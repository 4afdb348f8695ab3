// The binary format of channel pages and doorbells (docs/PROTOCOL.md, section 14), and the
// futex wake, shared by channel_page.cpp and channel.cpp. Internal to libshmfd.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <new>
#include <string>

#include "shmfd/wire/channel_page.hpp"

namespace shmfd::channel_format {

// The pages' binary format (docs/PROTOCOL.md, "Channels"). Little-endian, as the host is; each
// word a side writes often has a cache line of its own, so the two sides never write one line.
constexpr std::uint32_t kProducerMagic = 0x50444653;  // "SFDP"
constexpr std::uint32_t kConsumerMagic = 0x43444653;  // "SFDC"
constexpr std::uint32_t kBellMagic = 0x42444653;      // "SFDB"
constexpr std::uint32_t kPageVersion = 1;

constexpr std::size_t kHeaderAt = 0;  // PageHeader
constexpr std::size_t kIndexAt = 64;  // producer: head; consumer: tail
// Producer page, on head's line: u64, the frames dropped for this consumer so far (0 from a
// producer that predates it), so that head + dropped counts every frame offered to it.
constexpr std::size_t kDroppedAt = 72;
// Producer page, on head's line: u32, while this consumer holds a slot of a pool in which its
// producer last found no free slot, the number of that dry spell (counted from 1 by the
// producer, so that the broker, sampling, tells a spell from the next); otherwise 0, as from a
// producer that predates it. The broker's --stuck-policy pool-dry judges by it.
constexpr std::size_t kPoolDryAt = 80;
// Producer page, on head's line: u64 each, the frames of the topic that this producer put on
// channels only (the broker saw no Publish of them) and their bytes, since it advertised the
// topic: the same figures on each of the topic's channels. The broker adds them to the topic's
// counters (0 from a producer that predates them).
constexpr std::size_t kChannelFramesAt = 88;
constexpr std::size_t kChannelBytesAt = 96;
constexpr std::size_t kEpochAt = 128;     // the owner's sleep epoch: odd while it sleeps
constexpr std::size_t kClosedAt = 132;    // producer: 1 once it closed the channel
constexpr std::size_t kReleasesAt = 192;  // producer: releases read; consumer: releases written
constexpr std::size_t kRingAt = 256;
constexpr std::size_t kPageBytes = 4096;

struct PageHeader {
  std::uint32_t magic;
  std::uint32_t version;
  std::uint32_t capacity;
  std::uint32_t entry_bytes;
  // Producer page, version 5 channels: the bytes of each ring entry's metadata entry (section
  // 15), in the area after the ring; 0 (as from a producer that predates it): none.
  std::uint32_t meta_bytes;
};

// A descriptor as it lies in the producer's ring.
struct RingDescriptor {
  std::uint32_t pool;
  std::uint32_t slot;
  std::uint32_t layout;
  std::uint32_t flags;  // kDescriptorHasMeta; other bits reserved (0)
  std::uint64_t sequence;
  std::uint64_t timestamp_ns;
  std::uint64_t dropped;
  std::uint8_t reserved[24];
};
static_assert(sizeof(RingDescriptor) == 64);

// RingDescriptor::flags: the ring entry's metadata entry holds this frame's metadata.
constexpr std::uint32_t kDescriptorHasMeta = 1;

// A metadata entry as it lies in the producer page's metadata area (one per ring entry, at the
// same index), followed by `header_bytes` of user header. A time of all ones is none; a crop of
// width 0 is none.
struct RingMeta {
  std::uint64_t pts;
  std::uint64_t dts;
  std::uint64_t duration;
  std::uint32_t flags;
  std::uint32_t header_bytes;
  std::uint32_t crop_x;
  std::uint32_t crop_y;
  std::uint32_t crop_width;
  std::uint32_t crop_height;
};
static_assert(sizeof(RingMeta) == kChannelMetaFixedBytes);

// Where the metadata entry of ring index `index` lies in a producer page.
inline std::size_t meta_at(std::uint32_t capacity, std::uint32_t meta_bytes, std::uint32_t index) {
  return kRingAt + std::size_t{capacity} * sizeof(RingDescriptor) +
         std::size_t{index & (capacity - 1)} * meta_bytes;
}

// A release as it lies in the consumer's ring.
struct RingRelease {
  std::uint32_t pool;
  std::uint32_t slot;
  std::uint64_t sequence;
};
static_assert(sizeof(RingRelease) == 16);

using Word = std::atomic<std::uint32_t>;
static_assert(Word::is_always_lock_free && sizeof(Word) == sizeof(std::uint32_t));
using Word64 = std::atomic<std::uint64_t>;
static_assert(Word64::is_always_lock_free && sizeof(Word64) == sizeof(std::uint64_t));

inline std::size_t entry_bytes(ChannelSide side) {
  return side == ChannelSide::producer ? sizeof(RingDescriptor) : sizeof(RingRelease);
}
inline std::uint32_t magic(ChannelSide side) {
  return side == ChannelSide::producer ? kProducerMagic : kConsumerMagic;
}
inline const char* side_name(ChannelSide side) {
  return side == ChannelSide::producer ? "producer" : "consumer";
}

// The page's words, through the mapping the caller has (read-write for one's own page,
// read-only for the peer's: only loads are made through those).
inline Word& word(std::byte* page, std::size_t at) {
  return *std::launder(reinterpret_cast<Word*>(page + at));
}
inline const Word& word(const std::byte* page, std::size_t at) {
  return *std::launder(reinterpret_cast<const Word*>(page + at));
}
inline Word64& word64(std::byte* page, std::size_t at) {
  return *std::launder(reinterpret_cast<Word64*>(page + at));
}
inline const Word64& word64(const std::byte* page, std::size_t at) {
  return *std::launder(reinterpret_cast<const Word64*>(page + at));
}

inline std::string n(std::uint64_t v) {
  return std::to_string(v);
}

// FUTEX_WAKE on a shared mapping (no FUTEX_PRIVATE_FLAG: the peer is another process). Waking
// needs no write access, so the peer's read-only mapping of our page serves too.
inline void futex_wake(const Word& w) noexcept {
  ::syscall(SYS_futex, &w, FUTEX_WAKE, INT_MAX, nullptr, nullptr, 0);
}

}  // namespace shmfd::channel_format
