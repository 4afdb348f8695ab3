#include "shmfd/layout.hpp"

#include <algorithm>
#include <string>

namespace shmfd {
namespace {

// How one plane of a pixel format is sampled: a row holds ceil(width / x_sub) units of
// `unit_bytes`, and the plane has ceil(height / y_sub) rows.
struct PlaneSpec {
  std::uint32_t unit_bytes;
  std::uint32_t x_sub;
  std::uint32_t y_sub;
};

struct FormatSpec {
  std::uint32_t planes;  // 0: unknown format
  std::array<PlaneSpec, kMaxPlanes> plane;
};

FormatSpec format_spec(PixelFormat f) noexcept {
  switch (f) {
    case PixelFormat::rgba8:
    case PixelFormat::bgra8:
      return {1, {{{4, 1, 1}}}};
    case PixelFormat::rgb24:
      return {1, {{{3, 1, 1}}}};
    case PixelFormat::gray8:
      return {1, {{{1, 1, 1}}}};
    case PixelFormat::gray16:
      return {1, {{{2, 1, 1}}}};
    case PixelFormat::yuyv:
      return {1, {{{4, 2, 1}}}};  // Y0 U Y1 V: 4 bytes per 2 pixels
    case PixelFormat::nv12:
      return {2, {{{1, 1, 1}, {2, 2, 2}}}};  // Y, then interleaved UV
    case PixelFormat::i420:
      return {3, {{{1, 1, 1}, {1, 2, 2}, {1, 2, 2}}}};  // Y, U, V
  }
  return {0, {}};
}

std::uint64_t ceil_div(std::uint64_t a, std::uint64_t b) {
  return a / b + (a % b != 0);
}

// Checked arithmetic: false on overflow.
bool mul(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return !__builtin_mul_overflow(a, b, &out);
}
bool add(std::uint64_t a, std::uint64_t b, std::uint64_t& out) {
  return !__builtin_add_overflow(a, b, &out);
}

std::string n(std::uint64_t v) {
  return std::to_string(v);
}

std::uint64_t row_bytes(const PlaneSpec& p, std::uint32_t width) {
  return ceil_div(width, p.x_sub) * p.unit_bytes;  // width < 2^32: cannot overflow
}
std::uint64_t rows(const PlaneSpec& p, std::uint32_t height) {
  return ceil_div(height, p.y_sub);
}

Status check_image_dimensions(PixelFormat format, std::uint32_t width, std::uint32_t height) {
  if (format_spec(format).planes == 0) {
    return fail(Errc::layout_unknown_format,
                "image: unknown pixel format " + n(static_cast<std::uint64_t>(format)));
  }
  if (width == 0 || height == 0) {
    return fail(Errc::layout_bad_dimensions, "image: " + std::string(to_string(format)) + " " +
                                                 n(width) + "x" + n(height) + " has no pixels");
  }
  if (format == PixelFormat::yuyv && width % 2 != 0) {
    return fail(Errc::layout_bad_dimensions,
                "image: yuyv width " + n(width) + " is odd (pixels come in pairs)");
  }
  return {};
}

Result<std::uint64_t> image_extent(const ImageLayout& l) {
  if (auto ok = check_image_dimensions(l.format, l.width, l.height); !ok) return fail(ok.error());
  const FormatSpec spec = format_spec(l.format);
  const std::string what =
      "image " + std::string(to_string(l.format)) + " " + n(l.width) + "x" + n(l.height);
  if (l.plane_count != spec.planes) {
    return fail(Errc::layout_plane_count,
                what + ": has " + n(l.plane_count) + " planes, the format has " + n(spec.planes));
  }
  std::array<std::uint64_t, kMaxPlanes> ends{};
  std::uint64_t extent = 0;
  for (std::uint32_t i = 0; i < l.plane_count; ++i) {
    const Plane& p = l.planes[i];
    const std::string plane = what + ": plane " + n(i);
    const std::uint64_t row = row_bytes(spec.plane[i], l.width);
    const std::uint64_t nrows = rows(spec.plane[i], l.height);
    if (p.stride < row) {
      return fail(Errc::layout_stride_too_small,
                  plane + " stride " + n(p.stride) + " is less than a row of " + n(row) + " bytes");
    }
    std::uint64_t needed = 0;  // stride * (rows - 1) + row: the last row needs no padding
    if (!mul(p.stride, nrows - 1, needed) || !add(needed, row, needed)) {
      return fail(Errc::layout_overflow,
                  plane + " stride " + n(p.stride) + " x " + n(nrows) + " rows overflows");
    }
    if (p.size < needed) {
      return fail(Errc::layout_plane_too_small, plane + " size " + n(p.size) +
                                                    " is less than the " + n(needed) +
                                                    " bytes its " + n(nrows) + " rows need");
    }
    if (!add(p.offset, p.size, ends[i])) {
      return fail(Errc::layout_overflow,
                  plane + " offset " + n(p.offset) + " + size " + n(p.size) + " overflows");
    }
    for (std::uint32_t j = 0; j < i; ++j) {
      if (p.offset < ends[j] && l.planes[j].offset < ends[i]) {
        return fail(Errc::layout_planes_overlap, plane + " overlaps plane " + n(j));
      }
    }
    extent = std::max(extent, ends[i]);
  }
  return extent;
}

Result<std::uint64_t> audio_extent(const AudioLayout& l) {
  const std::uint64_t bps = bytes_per_sample(l.format);
  if (bps == 0) {
    return fail(Errc::layout_unknown_format,
                "audio: unknown sample format " + n(static_cast<std::uint64_t>(l.format)));
  }
  if (l.sample_rate == 0 || l.channels == 0 || l.channels > kMaxAudioChannels) {
    return fail(Errc::layout_bad_dimensions, "audio: " + n(l.channels) + " channels at " +
                                                 n(l.sample_rate) + " Hz (need a rate > 0 and 1.." +
                                                 n(kMaxAudioChannels) + " channels)");
  }
  std::uint64_t channel_bytes = 0;
  std::uint64_t extent = 0;
  if (!mul(l.frames, bps, channel_bytes)) {
    return fail(Errc::layout_overflow, "audio: " + n(l.frames) + " frames overflow");
  }
  if (!l.planar) {
    if (!mul(channel_bytes, l.channels, extent) || !add(extent, l.offset, extent)) {
      return fail(Errc::layout_overflow, "audio: interleaved size overflows");
    }
    return extent;
  }
  if (l.channels > 1 && l.plane_stride < channel_bytes) {
    return fail(Errc::layout_stride_too_small, "audio: plane stride " + n(l.plane_stride) +
                                                   " is less than one channel's " +
                                                   n(channel_bytes) + " bytes");
  }
  if (!mul(l.plane_stride, l.channels - 1, extent) || !add(extent, channel_bytes, extent) ||
      !add(extent, l.offset, extent)) {
    return fail(Errc::layout_overflow, "audio: planar size overflows");
  }
  return extent;
}

Result<std::uint64_t> tensor_extent(const TensorLayout& l) {
  const std::uint64_t item = dtype_size(l.dtype);
  if (item == 0) {
    return fail(Errc::layout_unknown_format,
                "tensor: unknown dtype " + n(static_cast<std::uint64_t>(l.dtype)));
  }
  if (l.rank > kMaxTensorRank) {
    return fail(Errc::layout_bad_dimensions,
                "tensor: rank " + n(l.rank) + " exceeds " + n(kMaxTensorRank));
  }
  std::uint64_t last = 0;  // byte offset of the last element, relative to `offset`
  for (std::uint32_t i = 0; i < l.rank; ++i) {
    if (l.shape[i] == 0) return l.offset;  // an empty tensor describes no bytes
    std::uint64_t span = 0;
    if (!mul(l.shape[i] - 1, l.strides[i], span) || !add(last, span, last)) {
      return fail(Errc::layout_overflow, "tensor: dimension " + n(i) + " (" + n(l.shape[i]) +
                                             " x stride " + n(l.strides[i]) + ") overflows");
    }
  }
  std::uint64_t extent = 0;
  if (!add(last, item, extent) || !add(extent, l.offset, extent)) {
    return fail(Errc::layout_overflow, "tensor: extent overflows");
  }
  return extent;
}

}  // namespace

Result<ImageLayout> image_layout(PixelFormat format, std::uint32_t width, std::uint32_t height,
                                 std::uint32_t row_alignment) {
  if (auto ok = check_image_dimensions(format, width, height); !ok) return fail(ok.error());
  if (row_alignment == 0 || (row_alignment & (row_alignment - 1)) != 0) {
    return fail(Errc::layout_bad_dimensions,
                "image: row alignment " + n(row_alignment) + " is not a power of two");
  }
  const auto align = [row_alignment](std::uint64_t v) {
    return (v + row_alignment - 1) & ~std::uint64_t{row_alignment - 1};
  };
  const FormatSpec spec = format_spec(format);
  ImageLayout out{format, width, height, spec.planes, {}};
  std::uint64_t offset = 0;
  for (std::uint32_t i = 0; i < spec.planes; ++i) {
    Plane& p = out.planes[i];
    p.offset = align(offset);
    p.stride = align(row_bytes(spec.plane[i], width));
    p.size = p.stride * rows(spec.plane[i], height);  // < 2^34 * 2^32: no overflow
    offset = p.offset + p.size;
  }
  return out;
}

Result<AudioLayout> audio_layout(SampleFormat format, std::uint32_t sample_rate,
                                 std::uint32_t channels, std::uint64_t frames, bool planar) {
  AudioLayout out{format, sample_rate, channels, frames, planar, 0, 0};
  if (planar) out.plane_stride = frames * bytes_per_sample(format);
  if (auto extent = audio_extent(out); !extent) return fail(std::move(extent.error()));
  return out;
}

Result<TensorLayout> tensor_layout(DType dtype, std::span<const std::uint64_t> shape) {
  TensorLayout out;
  out.dtype = dtype;
  if (shape.size() > kMaxTensorRank) {
    return fail(Errc::layout_bad_dimensions,
                "tensor: rank " + n(shape.size()) + " exceeds " + n(kMaxTensorRank));
  }
  out.rank = static_cast<std::uint32_t>(shape.size());
  std::uint64_t stride = dtype_size(dtype);
  for (std::size_t i = shape.size(); i-- > 0;) {
    out.shape[i] = shape[i];
    out.strides[i] = stride;
    if (!mul(stride, std::max<std::uint64_t>(shape[i], 1), stride)) {
      return fail(Errc::layout_overflow, "tensor: shape overflows 64-bit sizes");
    }
  }
  if (auto extent = tensor_extent(out); !extent) return fail(std::move(extent.error()));
  return out;
}

Result<std::uint64_t> layout_extent(const Layout& layout) {
  struct Visitor {
    Result<std::uint64_t> operator()(const BlobLayout& b) const {
      std::uint64_t end = 0;
      if (!add(b.offset, b.size, end)) {
        return fail(Errc::layout_overflow,
                    "blob: offset " + n(b.offset) + " + size " + n(b.size) + " overflows");
      }
      return end;
    }
    Result<std::uint64_t> operator()(const ImageLayout& l) const { return image_extent(l); }
    Result<std::uint64_t> operator()(const AudioLayout& l) const { return audio_extent(l); }
    Result<std::uint64_t> operator()(const TensorLayout& l) const { return tensor_extent(l); }
  };
  return std::visit(Visitor{}, layout);
}

Result<std::uint64_t> validate_layout(const Layout& layout, std::uint64_t buffer_size) {
  auto extent = layout_extent(layout);
  if (extent && *extent > buffer_size) {
    return fail(Errc::layout_out_of_bounds,
                "layout describes " + n(*extent) + " bytes but the buffer holds " + n(buffer_size));
  }
  return extent;
}

std::uint32_t plane_count(PixelFormat format) noexcept {
  return format_spec(format).planes;
}

std::uint32_t bytes_per_sample(SampleFormat format) noexcept {
  switch (format) {
    case SampleFormat::u8:
      return 1;
    case SampleFormat::s16:
      return 2;
    case SampleFormat::s32:
    case SampleFormat::f32:
      return 4;
    case SampleFormat::f64:
      return 8;
  }
  return 0;
}

std::uint32_t dtype_size(DType dtype) noexcept {
  switch (dtype) {
    case DType::u8:
    case DType::i8:
      return 1;
    case DType::u16:
    case DType::i16:
    case DType::f16:
    case DType::bf16:
      return 2;
    case DType::u32:
    case DType::i32:
    case DType::f32:
      return 4;
    case DType::u64:
    case DType::i64:
    case DType::f64:
      return 8;
  }
  return 0;
}

std::string_view to_string(PixelFormat format) noexcept {
  switch (format) {
    case PixelFormat::rgba8:
      return "rgba8";
    case PixelFormat::bgra8:
      return "bgra8";
    case PixelFormat::rgb24:
      return "rgb24";
    case PixelFormat::nv12:
      return "nv12";
    case PixelFormat::i420:
      return "i420";
    case PixelFormat::yuyv:
      return "yuyv";
    case PixelFormat::gray8:
      return "gray8";
    case PixelFormat::gray16:
      return "gray16";
  }
  return "unknown";
}

std::string_view to_string(SampleFormat format) noexcept {
  switch (format) {
    case SampleFormat::u8:
      return "u8";
    case SampleFormat::s16:
      return "s16";
    case SampleFormat::s32:
      return "s32";
    case SampleFormat::f32:
      return "f32";
    case SampleFormat::f64:
      return "f64";
  }
  return "unknown";
}

std::string_view to_string(DType dtype) noexcept {
  switch (dtype) {
    case DType::u8:
      return "u8";
    case DType::i8:
      return "i8";
    case DType::u16:
      return "u16";
    case DType::i16:
      return "i16";
    case DType::u32:
      return "u32";
    case DType::i32:
      return "i32";
    case DType::u64:
      return "u64";
    case DType::i64:
      return "i64";
    case DType::f16:
      return "f16";
    case DType::bf16:
      return "bf16";
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
  }
  return "unknown";
}

}  // namespace shmfd
