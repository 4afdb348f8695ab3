#include "convert.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

namespace shmfd::bridge {
namespace {

constexpr std::array<std::pair<PixelFormat, std::string_view>, 6> kRos2{{
    {PixelFormat::rgba8, "rgba8"},
    {PixelFormat::bgra8, "bgra8"},
    {PixelFormat::rgb24, "rgb8"},
    {PixelFormat::yuyv, "yuv422_yuy2"},
    {PixelFormat::gray8, "mono8"},
    {PixelFormat::gray16, "mono16"},
}};

Error bad(const std::string& why) {
  return Error(Errc::malformed_message, "DDS sample: " + why);
}

}  // namespace

void to_dds(const Layout& layout, DdsLayout& storage) {
  shmfd_bridge_Layout& out = storage.layout;
  out = shmfd_bridge_Layout{};
  out.planes._buffer = storage.planes.data();
  out.planes._maximum = kMaxPlanes;
  out.shape._buffer = storage.shape.data();
  out.shape._maximum = kMaxTensorRank;
  out.strides._buffer = storage.strides.data();
  out.strides._maximum = kMaxTensorRank;
  if (const auto* b = std::get_if<BlobLayout>(&layout)) {
    out.kind = shmfd_bridge_BLOB;
    out.offset = b->offset;
    out.size = b->size;
  } else if (const auto* i = std::get_if<ImageLayout>(&layout)) {
    out.kind = shmfd_bridge_IMAGE;
    out.pixel_format = static_cast<std::uint8_t>(i->format);
    out.width = i->width;
    out.height = i->height;
    out.planes._length = i->plane_count;
    for (std::uint32_t p = 0; p < i->plane_count; ++p) {
      out.planes._buffer[p] = {i->planes[p].offset, i->planes[p].stride, i->planes[p].size};
    }
  } else if (const auto* a = std::get_if<AudioLayout>(&layout)) {
    out.kind = shmfd_bridge_AUDIO;
    out.sample_format = static_cast<std::uint8_t>(a->format);
    out.sample_rate = a->sample_rate;
    out.channels = a->channels;
    out.frames = a->frames;
    out.planar = a->planar;
    out.offset = a->offset;
    out.plane_stride = a->plane_stride;
  } else if (const auto* t = std::get_if<TensorLayout>(&layout)) {
    out.kind = shmfd_bridge_TENSOR;
    out.dtype = static_cast<std::uint8_t>(t->dtype);
    out.offset = t->offset;
    out.shape._length = t->rank;
    out.strides._length = t->rank;
    for (std::uint32_t d = 0; d < t->rank; ++d) {
      out.shape._buffer[d] = t->shape[d];
      out.strides._buffer[d] = t->strides[d];
    }
  }
}

Result<Layout> from_dds(const shmfd_bridge_Layout& in, std::uint64_t data_size) {
  Layout out;
  switch (in.kind) {
    case shmfd_bridge_BLOB:
      out = BlobLayout{in.offset, in.size};
      break;
    case shmfd_bridge_IMAGE: {
      if (in.pixel_format > static_cast<std::uint8_t>(PixelFormat::gray16)) {
        return fail(bad("unknown pixel format " + std::to_string(in.pixel_format)));
      }
      if (in.planes._length > kMaxPlanes) {
        return fail(bad(std::to_string(in.planes._length) + " planes"));
      }
      ImageLayout l;
      l.format = static_cast<PixelFormat>(in.pixel_format);
      l.width = in.width;
      l.height = in.height;
      l.plane_count = in.planes._length;
      for (std::uint32_t p = 0; p < l.plane_count; ++p) {
        l.planes[p] = {in.planes._buffer[p].offset, in.planes._buffer[p].stride,
                       in.planes._buffer[p].size};
      }
      out = l;
      break;
    }
    case shmfd_bridge_AUDIO: {
      if (in.sample_format > static_cast<std::uint8_t>(SampleFormat::f64)) {
        return fail(bad("unknown sample format " + std::to_string(in.sample_format)));
      }
      out = AudioLayout{static_cast<SampleFormat>(in.sample_format),
                        in.sample_rate,
                        in.channels,
                        in.frames,
                        in.planar,
                        in.offset,
                        in.plane_stride};
      break;
    }
    case shmfd_bridge_TENSOR: {
      if (in.dtype > static_cast<std::uint8_t>(DType::f64)) {
        return fail(bad("unknown dtype " + std::to_string(in.dtype)));
      }
      if (in.shape._length > kMaxTensorRank || in.strides._length != in.shape._length) {
        return fail(bad("a tensor of " + std::to_string(in.shape._length) + " dimensions and " +
                        std::to_string(in.strides._length) + " strides"));
      }
      TensorLayout t;
      t.dtype = static_cast<DType>(in.dtype);
      t.offset = in.offset;
      t.rank = in.shape._length;
      for (std::uint32_t d = 0; d < t.rank; ++d) {
        t.shape[d] = in.shape._buffer[d];
        t.strides[d] = in.strides._buffer[d];
      }
      out = t;
      break;
    }
    default:
      return fail(bad("unknown layout kind " + std::to_string(static_cast<int>(in.kind))));
  }
  if (auto ok = validate_layout(out, data_size); !ok) {
    return fail(
        std::move(ok.error()).prefixed("DDS sample of " + std::to_string(data_size) + " bytes"));
  }
  return out;
}

std::optional<std::string_view> ros2_encoding(PixelFormat format) {
  for (const auto& [f, name] : kRos2) {
    if (f == format) return name;
  }
  return std::nullopt;
}

std::optional<PixelFormat> from_ros2_encoding(std::string_view encoding) {
  for (const auto& [f, name] : kRos2) {
    if (name == encoding) return f;
  }
  return std::nullopt;
}

Result<ImageLayout> from_ros2(const sensor_msgs_msg_dds__Image_& image) {
  const std::string_view encoding = image.encoding != nullptr ? image.encoding : "";
  auto format = from_ros2_encoding(encoding);
  if (!format) {
    return fail(bad("ROS 2 image encoding \"" + std::string(encoding.substr(0, 32)) +
                    "\" is not one shmfd carries"));
  }
  if (image.is_bigendian != 0 && *format == PixelFormat::gray16) {
    return fail(bad("big-endian mono16"));
  }
  if (image.height == 0) return fail(bad("an image of height 0"));
  ImageLayout l;
  l.format = *format;
  l.width = image.width;
  l.height = image.height;
  l.plane_count = 1;
  l.planes[0].offset = 0;
  l.planes[0].stride = image.step;
  l.planes[0].size = static_cast<std::uint64_t>(image.step) * image.height;
  if (auto ok = validate_layout(l, image.data._length); !ok) {
    return fail(std::move(ok.error())
                    .prefixed("ROS 2 image of " + std::to_string(image.data._length) + " bytes"));
  }
  return l;
}

// --- Metadata (protocol version 5) ---

void to_dds(const FrameMeta& meta, DdsMeta& out) {
  out.meta.pts = time_to_wire(meta.pts);
  out.meta.dts = time_to_wire(meta.dts);
  out.meta.duration = time_to_wire(meta.duration);
  out.meta.flags = meta.flags;
  out.meta.crop._buffer = &out.crop;
  out.meta.crop._maximum = 1;
  out.meta.crop._length = 0;
  out.meta.crop._release = false;
  if (meta.crop) {
    out.crop = {meta.crop->x, meta.crop->y, meta.crop->width, meta.crop->height};
    out.meta.crop._length = 1;
  }
  out.meta.header._buffer =
      const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(meta.header.data()));
  out.meta.header._length = static_cast<std::uint32_t>(meta.header.size());
  out.meta.header._maximum = out.meta.header._length;
  out.meta.header._release = false;
}

void to_dds(const TopicOptions& options, shmfd_bridge_TopicOptions& out) {
  out.max_header_bytes = options.max_header_bytes;
  const std::size_t n = std::min(options.header_schema.size(), sizeof out.header_schema - 1);
  std::memcpy(out.header_schema, options.header_schema.data(), n);
  out.header_schema[n] = '\0';
  out.frame_rate_num = options.frame_rate.num;
  out.frame_rate_den = options.frame_rate.den;
  out.timestamps_required = options.timestamps_required;
}

Result<TopicOptions> from_dds(const shmfd_bridge_TopicOptions& in) {
  TopicOptions out;
  out.max_header_bytes = in.max_header_bytes;
  // A bounded string: NUL-terminated within its 256 bytes by the deserializer; never trusted.
  out.header_schema.assign(in.header_schema, ::strnlen(in.header_schema, sizeof in.header_schema));
  out.frame_rate = {in.frame_rate_num, in.frame_rate_den};
  out.timestamps_required = in.timestamps_required;
  if (auto ok = check_topic_options(out); !ok) return fail(std::move(ok.error()));
  return out;
}

Result<FrameMeta> from_dds(const shmfd_bridge_FrameMeta& in, const TopicOptions& options,
                           const Layout& layout) {
  FrameMeta out;
  out.pts = time_from_wire(in.pts);
  out.dts = time_from_wire(in.dts);
  out.duration = time_from_wire(in.duration);
  out.flags = in.flags;
  if (in.crop._length > 1) {
    return fail(Errc::invalid_metadata, std::to_string(in.crop._length) + " crop rectangles");
  }
  if (in.crop._length == 1 && in.crop._buffer != nullptr) {
    const shmfd_bridge_Crop& c = in.crop._buffer[0];
    out.crop = Crop{c.x, c.y, c.width, c.height};
  }
  out.header = std::span<const std::byte>(reinterpret_cast<const std::byte*>(in.header._buffer),
                                          in.header._buffer != nullptr ? in.header._length : 0);
  if (auto ok = check_frame_meta(out, options, layout); !ok) return fail(std::move(ok.error()));
  return out;
}

}  // namespace shmfd::bridge
