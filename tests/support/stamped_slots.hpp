// Test support: slots stamped with their sequence number and a checksum over the whole slot,
// so a consumer can prove a slot was not rewritten while it held it.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>

namespace shmfd::testing {

inline std::uint64_t xorshift(std::uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

inline std::uint64_t checksum(std::span<const std::byte> bytes) {
  std::uint64_t h = 1469598103934665603ULL;  // FNV-1a over 8-byte words
  for (std::size_t i = 0; i + 8 <= bytes.size(); i += 8) {
    std::uint64_t w;
    std::memcpy(&w, bytes.data() + i, 8);
    h = (h ^ w) * 1099511628211ULL;
  }
  return h;
}

// [sequence][checksum of the rest][payload derived from the sequence]
inline void stamp(std::span<std::byte> slot, std::uint64_t sequence) {
  std::uint64_t state = sequence * 0x9E3779B97F4A7C15ULL + 1;
  for (std::size_t i = 16; i + 8 <= slot.size(); i += 8) {
    const std::uint64_t v = xorshift(state);
    std::memcpy(slot.data() + i, &v, 8);
  }
  const std::uint64_t sum = checksum(slot.subspan(16));
  std::memcpy(slot.data(), &sequence, 8);
  std::memcpy(slot.data() + 8, &sum, 8);
}

// True when the slot holds the stamp of `sequence`, intact.
inline bool stamped_with(std::span<const std::byte> slot, std::uint64_t sequence) {
  std::uint64_t seq = 0, sum = 0;
  std::memcpy(&seq, slot.data(), 8);
  std::memcpy(&sum, slot.data() + 8, 8);
  return seq == sequence && sum == checksum(slot.subspan(16));
}

}  // namespace shmfd::testing
