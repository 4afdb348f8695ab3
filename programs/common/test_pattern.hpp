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

// NV12: a luma ramp and chroma planes that move with the frame number.
inline std::uint8_t luma(std::uint64_t seq, std::uint32_t x, std::uint32_t y) {
  return static_cast<std::uint8_t>((x + y + seq * 4) & 0xff);
}
inline std::uint8_t chroma_u(std::uint64_t seq, std::uint32_t cx) {
  return static_cast<std::uint8_t>((cx + seq * 2) & 0xff);
}
inline std::uint8_t chroma_v(std::uint64_t seq, std::uint32_t cy) {
  return static_cast<std::uint8_t>((cy + seq * 3) & 0xff);
}

inline void draw_nv12(std::span<std::byte> bytes, const ImageLayout& l, std::uint64_t seq) {
  const Plane& yp = l.planes[0];
  const Plane& uv = l.planes[1];
  for (std::uint32_t y = 0; y < l.height; ++y) {
    auto* row = reinterpret_cast<std::uint8_t*>(bytes.data() + yp.offset + y * yp.stride);
    for (std::uint32_t x = 0; x < l.width; ++x) row[x] = luma(seq, x, y);
  }
  for (std::uint32_t cy = 0; cy < (l.height + 1) / 2; ++cy) {
    auto* row = reinterpret_cast<std::uint8_t*>(bytes.data() + uv.offset + cy * uv.stride);
    for (std::uint32_t cx = 0; cx < (l.width + 1) / 2; ++cx) {
      row[2 * cx] = chroma_u(seq, cx);
      row[2 * cx + 1] = chroma_v(seq, cy);
    }
  }
}

inline std::uint64_t count_wrong_nv12(std::span<const std::byte> bytes, const ImageLayout& l,
                                      std::uint64_t seq) {
  std::uint64_t wrong = 0;
  const Plane& yp = l.planes[0];
  const Plane& uv = l.planes[1];
  for (std::uint32_t y = 0; y < l.height; ++y) {
    const auto* row =
        reinterpret_cast<const std::uint8_t*>(bytes.data() + yp.offset + y * yp.stride);
    for (std::uint32_t x = 0; x < l.width; ++x) wrong += row[x] != luma(seq, x, y);
  }
  for (std::uint32_t cy = 0; cy < (l.height + 1) / 2; ++cy) {
    const auto* row =
        reinterpret_cast<const std::uint8_t*>(bytes.data() + uv.offset + cy * uv.stride);
    for (std::uint32_t cx = 0; cx < (l.width + 1) / 2; ++cx) {
      wrong += row[2 * cx] != chroma_u(seq, cx);
      wrong += row[2 * cx + 1] != chroma_v(seq, cy);
    }
  }
  return wrong;
}

// Draws / checks the pattern of `l.format` (rgba8 or nv12).
inline void draw_frame(std::span<std::byte> bytes, const ImageLayout& l, std::uint64_t seq) {
  if (l.format == PixelFormat::nv12)
    draw_nv12(bytes, l, seq);
  else
    draw(bytes, l, seq);
}
inline std::uint64_t count_wrong(std::span<const std::byte> bytes, const ImageLayout& l,
                                 std::uint64_t seq) {
  return l.format == PixelFormat::nv12 ? count_wrong_nv12(bytes, l, seq)
                                       : count_wrong_pixels(bytes, l, seq);
}

inline std::uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

}  // namespace shmfd::examples
