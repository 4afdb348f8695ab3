// The sandboxed computation: grayscale (BT.601 weights) of an RGBA image, then a 3x3 box blur.
// The worker runs it on frames it cannot trust; the host runs it again to check the worker.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

#include "shmfd/layout.hpp"

namespace shmfd::examples {

inline void gray_blur(std::span<const std::byte> in, const ImageLayout& l, std::uint8_t* out) {
  const auto* src = reinterpret_cast<const std::uint8_t*>(in.data());
  const auto gray = [&](std::uint32_t x, std::uint32_t y) {
    const std::uint8_t* p = src + l.planes[0].offset + y * l.planes[0].stride + x * 4;
    return (77U * p[0] + 150U * p[1] + 29U * p[2]) >> 8;
  };
  for (std::uint32_t y = 0; y < l.height; ++y) {
    for (std::uint32_t x = 0; x < l.width; ++x) {
      std::uint32_t sum = 0, n = 0;
      for (std::uint32_t yy = y == 0 ? 0 : y - 1; yy <= std::min(y + 1, l.height - 1); ++yy) {
        for (std::uint32_t xx = x == 0 ? 0 : x - 1; xx <= std::min(x + 1, l.width - 1); ++xx) {
          sum += gray(xx, yy);
          ++n;
        }
      }
      out[static_cast<std::size_t>(y) * l.width + x] = static_cast<std::uint8_t>(sum / n);
    }
  }
}

}  // namespace shmfd::examples
