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

}  // namespace shmfd::testing
