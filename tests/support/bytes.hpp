// Test support: strings as byte spans and back.
#pragma once

#include <cstddef>
#include <span>
#include <string>

namespace shmfd::testing {

inline std::span<const std::byte> bytes_of(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

inline std::string string_of(std::span<const std::byte> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

// A byte pattern that depends on `seed` and the position, and its check.
inline void fill(std::span<std::byte> bytes, unsigned char seed) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    bytes[i] = static_cast<std::byte>((i * 31 + seed) & 0xff);
  }
}

inline bool holds_pattern(std::span<const std::byte> bytes, unsigned char seed) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != static_cast<std::byte>((i * 31 + seed) & 0xff)) return false;
  }
  return true;
}

}  // namespace shmfd::testing
