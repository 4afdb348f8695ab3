// A moving RGBA test pattern shared by the examples: every pixel depends on the frame number,
// so a stale, torn or mixed-up frame is caught by count_wrong_pixels.
#pragma once

#include <time.h>

#include <cstdint>
#include <span>

#include "shmfd/layout.hpp"

namespace shmfd::examples {

inline std::uint32_t pixel(std::uint64_t seq, std::uint32_t x, std::uint32_t y) {
  const auto r = static_cast<std::uint32_t>((x + seq * 8) & 0xff);
  const auto g = static_cast<std::uint32_t>((y + seq * 4) & 0xff);
  const auto b = static_cast<std::uint32_t>((x ^ y) & 0xff);
  return r | g << 8 | b << 16 | 0xffU << 24;
}

inline void draw(std::span<std::byte> bytes, const ImageLayout& l, std::uint64_t seq) {
  for (std::uint32_t y = 0; y < l.height; ++y) {
    auto* row = reinterpret_cast<std::uint32_t*>(bytes.data() + l.planes[0].offset +
                                                 y * l.planes[0].stride);
    for (std::uint32_t x = 0; x < l.width; ++x) row[x] = pixel(seq, x, y);
  }
}

inline std::uint64_t count_wrong_pixels(std::span<const std::byte> bytes, const ImageLayout& l,
                                        std::uint64_t seq) {
  std::uint64_t wrong = 0;
  for (std::uint32_t y = 0; y < l.height; ++y) {
    const auto* row = reinterpret_cast<const std::uint32_t*>(bytes.data() + l.planes[0].offset +
                                                             y * l.planes[0].stride);
    for (std::uint32_t x = 0; x < l.width; ++x) wrong += row[x] != pixel(seq, x, y);
  }
  return wrong;
}

inline std::uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace shmfd::examples
