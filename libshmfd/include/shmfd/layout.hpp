// Buffer layouts: what the bytes of a buffer mean (an image with planes and strides, audio, a
// tensor, or an opaque blob), so a consumer knows what it maps. These are the C++ values of the
// `Layout` struct in proto/layout.capnp (wire/wire.hpp converts between the two).
//
// Every layout that comes from another process is validated against the size of the buffer it
// describes before anyone reads through it: all arithmetic is overflow-checked, and every byte
// the layout describes must lie inside the buffer.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <variant>

#include "shmfd/error.hpp"

namespace shmfd {

enum class PixelFormat : std::uint8_t { rgba8, bgra8, rgb24, nv12, i420, yuyv, gray8, gray16 };
enum class SampleFormat : std::uint8_t { u8, s16, s32, f32, f64 };
enum class DType : std::uint8_t { u8, i8, u16, i16, u32, i32, u64, i64, f16, bf16, f32, f64 };

inline constexpr std::size_t kMaxPlanes = 4;
inline constexpr std::size_t kMaxTensorRank = 8;
inline constexpr std::uint32_t kMaxAudioChannels = 256;

struct BlobLayout {
  std::uint64_t offset = 0;
  std::uint64_t size = 0;
  friend bool operator==(const BlobLayout&, const BlobLayout&) = default;
};

struct Plane {
  std::uint64_t offset = 0;  // first byte of the plane in the buffer
  std::uint64_t stride = 0;  // bytes from one row to the next
  std::uint64_t size = 0;    // bytes the plane occupies
  friend bool operator==(const Plane&, const Plane&) = default;
};

struct ImageLayout {
  PixelFormat format = PixelFormat::rgba8;
  std::uint32_t width = 0;
  std::uint32_t height = 0;
  std::uint32_t plane_count = 0;
  std::array<Plane, kMaxPlanes> planes{};

  std::span<const Plane> used_planes() const { return {planes.data(), plane_count}; }
  friend bool operator==(const ImageLayout&, const ImageLayout&) = default;
};

struct AudioLayout {
  SampleFormat format = SampleFormat::s16;
  std::uint32_t sample_rate = 0;
  std::uint32_t channels = 0;
  std::uint64_t frames = 0;  // samples per channel
  bool planar = false;       // one plane per channel, else interleaved
  std::uint64_t offset = 0;
  std::uint64_t plane_stride = 0;  // planar only: bytes from one channel's plane to the next
  friend bool operator==(const AudioLayout&, const AudioLayout&) = default;
};

struct TensorLayout {
  DType dtype = DType::f32;
  std::uint64_t offset = 0;
  std::uint32_t rank = 0;
  std::array<std::uint64_t, kMaxTensorRank> shape{};
  std::array<std::uint64_t, kMaxTensorRank> strides{};  // in bytes
  friend bool operator==(const TensorLayout&, const TensorLayout&) = default;
};

using Layout = std::variant<BlobLayout, ImageLayout, AudioLayout, TensorLayout>;

// Standard layouts. `row_alignment` (a power of two) pads each row and aligns each plane, for
// SIMD or hardware that needs it; 1 packs tightly.
Result<ImageLayout> image_layout(PixelFormat format, std::uint32_t width, std::uint32_t height,
                                 std::uint32_t row_alignment = 1);
Result<AudioLayout> audio_layout(SampleFormat format, std::uint32_t sample_rate,
                                 std::uint32_t channels, std::uint64_t frames, bool planar);
// Row-major (C order), densely packed.
Result<TensorLayout> tensor_layout(DType dtype, std::span<const std::uint64_t> shape);
inline BlobLayout blob_layout(std::uint64_t size) {
  return BlobLayout{0, size};
}

// Checks a layout's own rules (known format, sane dimensions, right plane count, strides that
// hold a row, planes that hold their rows and do not overlap, no overflow) and returns the
// extent: one past the last byte it describes. Each broken rule is its own Errc::layout_*.
Result<std::uint64_t> layout_extent(const Layout& layout);
// layout_extent, and the extent fits in `buffer_size` (Errc::layout_out_of_bounds otherwise).
Result<std::uint64_t> validate_layout(const Layout& layout, std::uint64_t buffer_size);

std::uint32_t plane_count(PixelFormat format) noexcept;
std::uint32_t bytes_per_sample(SampleFormat format) noexcept;
std::uint32_t dtype_size(DType dtype) noexcept;
std::string_view to_string(PixelFormat format) noexcept;
std::string_view to_string(SampleFormat format) noexcept;
std::string_view to_string(DType dtype) noexcept;

}  // namespace shmfd
