/// @file
/// Buffer layouts: what the bytes of a buffer mean (an image with planes and strides, audio, a
/// tensor, or an opaque blob), so a consumer knows what it maps. These are the C++ values of the
/// `Layout` struct in proto/layout.capnp (wire/wire.hpp converts between the two).
///
/// Every layout that comes from another process is validated against the size of the buffer it
/// describes before anyone reads through it: all arithmetic is overflow-checked, and every byte
/// the layout describes must lie inside the buffer. Layouts are plain values; every function
/// here is pure and may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string_view>
#include <variant>

#include "shmfd/error.hpp"

namespace shmfd {

/// Pixel formats of an ImageLayout: packed RGB(A) and gray with one plane; NV12 (Y, then
/// interleaved UV at half resolution) with two; I420 (Y, U, V) with three; YUYV (4:2:2 packed)
/// with one. gray16 is native-endian.
enum class PixelFormat : std::uint8_t { rgba8, bgra8, rgb24, nv12, i420, yuyv, gray8, gray16 };
/// Audio sample formats: unsigned 8-bit, signed 16- and 32-bit integers, 32- and 64-bit floats,
/// native-endian.
enum class SampleFormat : std::uint8_t { u8, s16, s32, f32, f64 };
/// Tensor element types, native-endian; f16 is IEEE half, bf16 is bfloat16.
enum class DType : std::uint8_t { u8, i8, u16, i16, u32, i32, u64, i64, f16, bf16, f32, f64 };

/// Planes an ImageLayout can have.
inline constexpr std::size_t kMaxPlanes = 4;
/// Dimensions a TensorLayout can have.
inline constexpr std::size_t kMaxTensorRank = 8;
/// Channels an AudioLayout can have.
inline constexpr std::uint32_t kMaxAudioChannels = 256;

/// Opaque bytes: `size` bytes from `offset`.
struct BlobLayout {
  std::uint64_t offset = 0;  ///< first byte in the buffer
  std::uint64_t size = 0;    ///< bytes from there
  /// Equal when every field is.
  friend bool operator==(const BlobLayout&, const BlobLayout&) = default;
};

/// One plane of an image: rows of `stride` bytes from `offset`.
struct Plane {
  std::uint64_t offset = 0;  ///< first byte of the plane in the buffer
  std::uint64_t stride = 0;  ///< bytes from one row to the next
  std::uint64_t size = 0;    ///< bytes the plane occupies
  /// Equal when every field is.
  friend bool operator==(const Plane&, const Plane&) = default;
};

/// An image of `width` × `height` pixels in `format`, its planes where the buffer has them.
/// image_layout() makes the usual one; validate_layout() checks one from elsewhere.
struct ImageLayout {
  PixelFormat format = PixelFormat::rgba8;  ///< what a pixel is, and how many planes it takes
  std::uint32_t width = 0;                  ///< pixels per row
  std::uint32_t height = 0;                 ///< rows
  std::uint32_t plane_count = 0;            ///< planes used: plane_count(format)
  std::array<Plane, kMaxPlanes> planes{};   ///< the first `plane_count` are used

  /// The planes used: the first `plane_count` of `planes`.
  std::span<const Plane> used_planes() const { return {planes.data(), plane_count}; }
  /// Equal when every field is (unused planes included).
  friend bool operator==(const ImageLayout&, const ImageLayout&) = default;
};

/// `frames` samples on each of `channels` channels, interleaved or one plane per channel.
struct AudioLayout {
  SampleFormat format = SampleFormat::s16;  ///< what one sample is
  std::uint32_t sample_rate = 0;            ///< samples per second and channel
  std::uint32_t channels = 0;               ///< 1 to kMaxAudioChannels
  std::uint64_t frames = 0;                 ///< samples per channel
  bool planar = false;                      ///< one plane per channel, else interleaved
  std::uint64_t offset = 0;                 ///< first byte of the first sample in the buffer
  std::uint64_t plane_stride = 0;  ///< planar only: bytes from one channel's plane to the next
  /// Equal when every field is.
  friend bool operator==(const AudioLayout&, const AudioLayout&) = default;
};

/// An n-dimensional array of `dtype` elements, with strides in bytes (in any order; elements
/// may share bytes, as with a broadcast stride of 0: only the bounds are checked).
struct TensorLayout {
  DType dtype = DType::f32;                             ///< what one element is
  std::uint64_t offset = 0;                             ///< first element in the buffer
  std::uint32_t rank = 0;                               ///< dimensions used, 1 to kMaxTensorRank
  std::array<std::uint64_t, kMaxTensorRank> shape{};    ///< the first `rank` are used
  std::array<std::uint64_t, kMaxTensorRank> strides{};  ///< in bytes
  /// Equal when every field is (unused dimensions included).
  friend bool operator==(const TensorLayout&, const TensorLayout&) = default;
};

/// What a buffer holds: one of the four kinds. protocol.hpp's layout_kind() names the kind.
using Layout = std::variant<BlobLayout, ImageLayout, AudioLayout, TensorLayout>;

/// The standard layout of a `width` × `height` image in `format`, planes one after another.
/// `row_alignment` (a power of two) pads each row and aligns each plane, for SIMD or hardware
/// that needs it; 1 packs tightly. Errors: Errc::layout_unknown_format, and
/// Errc::layout_bad_dimensions for no pixels, an odd yuyv width, or an alignment that is not a
/// power of two.
Result<ImageLayout> image_layout(PixelFormat format, std::uint32_t width, std::uint32_t height,
                                 std::uint32_t row_alignment = 1);
/// The layout of `frames` samples per channel from offset 0, interleaved or `planar` (each
/// channel's plane right after the last). Errors: Errc::layout_unknown_format,
/// Errc::layout_bad_dimensions (a rate of 0, no channels or more than kMaxAudioChannels),
/// Errc::layout_overflow.
Result<AudioLayout> audio_layout(SampleFormat format, std::uint32_t sample_rate,
                                 std::uint32_t channels, std::uint64_t frames, bool planar);
/// The layout of a tensor of `shape`, row-major (C order), densely packed from offset 0.
/// A dimension of 0 makes an empty tensor. Errors: Errc::layout_unknown_format,
/// Errc::layout_bad_dimensions (more than kMaxTensorRank dimensions), Errc::layout_overflow.
Result<TensorLayout> tensor_layout(DType dtype, std::span<const std::uint64_t> shape);
/// `size` opaque bytes from offset 0.
inline BlobLayout blob_layout(std::uint64_t size) {
  return BlobLayout{0, size};
}

/// Checks a layout's own rules (known format, sane dimensions, right plane count, strides that
/// hold a row, planes that hold their rows and do not overlap, no overflow) and returns the
/// extent: one past the last byte it describes. Each broken rule is its own Errc::layout_*.
Result<std::uint64_t> layout_extent(const Layout& layout);
/// layout_extent, and the extent fits in `buffer_size` (Errc::layout_out_of_bounds otherwise).
Result<std::uint64_t> validate_layout(const Layout& layout, std::uint64_t buffer_size);

/// Planes an image of `format` has (1 to 3); 0 for a value no format has.
std::uint32_t plane_count(PixelFormat format) noexcept;
/// Bytes of one sample of `format`; 0 for a value no format has.
std::uint32_t bytes_per_sample(SampleFormat format) noexcept;
/// Bytes of one element of `dtype`; 0 for a value no type has.
std::uint32_t dtype_size(DType dtype) noexcept;
/// The format's name as the wire and the tools spell it ("rgba8"); "unknown" for a value no
/// format has.
std::string_view to_string(PixelFormat format) noexcept;
/// The format's name ("s16"); "unknown" for a value no format has.
std::string_view to_string(SampleFormat format) noexcept;
/// The type's name ("f32"); "unknown" for a value no type has.
std::string_view to_string(DType dtype) noexcept;

}  // namespace shmfd
