#include "shmfd/wire/wire.hpp"

#include <kj/io.h>

#include <string>

#include "shmfd/connection.hpp"

namespace shmfd {
namespace {

std::string n(std::uint64_t v) {
  return std::to_string(v);
}

// Wire enums are 16-bit and a peer may send values this build does not know; map them
// explicitly so an unknown value can never alias a known one.
Result<PixelFormat> from_proto(proto::PixelFormat f) {
  switch (f) {
    case proto::PixelFormat::RGBA8:
      return PixelFormat::rgba8;
    case proto::PixelFormat::BGRA8:
      return PixelFormat::bgra8;
    case proto::PixelFormat::RGB24:
      return PixelFormat::rgb24;
    case proto::PixelFormat::NV12:
      return PixelFormat::nv12;
    case proto::PixelFormat::I420:
      return PixelFormat::i420;
    case proto::PixelFormat::YUYV:
      return PixelFormat::yuyv;
    case proto::PixelFormat::GRAY8:
      return PixelFormat::gray8;
    case proto::PixelFormat::GRAY16:
      return PixelFormat::gray16;
  }
  return fail(Errc::layout_unknown_format,
              "image: unknown pixel format " + n(static_cast<std::uint16_t>(f)));
}

Result<SampleFormat> from_proto(proto::SampleFormat f) {
  switch (f) {
    case proto::SampleFormat::U8:
      return SampleFormat::u8;
    case proto::SampleFormat::S16:
      return SampleFormat::s16;
    case proto::SampleFormat::S32:
      return SampleFormat::s32;
    case proto::SampleFormat::F32:
      return SampleFormat::f32;
    case proto::SampleFormat::F64:
      return SampleFormat::f64;
  }
  return fail(Errc::layout_unknown_format,
              "audio: unknown sample format " + n(static_cast<std::uint16_t>(f)));
}

Result<DType> from_proto(proto::DType d) {
  switch (d) {
    case proto::DType::U8:
      return DType::u8;
    case proto::DType::I8:
      return DType::i8;
    case proto::DType::U16:
      return DType::u16;
    case proto::DType::I16:
      return DType::i16;
    case proto::DType::U32:
      return DType::u32;
    case proto::DType::I32:
      return DType::i32;
    case proto::DType::U64:
      return DType::u64;
    case proto::DType::I64:
      return DType::i64;
    case proto::DType::F16:
      return DType::f16;
    case proto::DType::BF16:
      return DType::bf16;
    case proto::DType::F32:
      return DType::f32;
    case proto::DType::F64:
      return DType::f64;
  }
  return fail(Errc::layout_unknown_format,
              "tensor: unknown dtype " + n(static_cast<std::uint16_t>(d)));
}

// The C++ enums are declared in the schema's order, so the reverse mapping is a cast.
template <typename To, typename From>
To to_proto(From value) {
  return static_cast<To>(static_cast<std::uint16_t>(value));
}

Result<Layout> image_from_proto(proto::ImageLayout::Reader r) {
  auto format = from_proto(r.getFormat());
  if (!format) return fail(std::move(format.error()));
  auto planes = r.getPlanes();
  if (planes.size() > kMaxPlanes) {
    return fail(Errc::layout_plane_count,
                "image: " + n(planes.size()) + " planes (at most " + n(kMaxPlanes) + ")");
  }
  ImageLayout out{*format, r.getWidth(), r.getHeight(), planes.size(), {}};
  for (unsigned i = 0; i < planes.size(); ++i) {
    out.planes[i] = Plane{planes[i].getOffset(), planes[i].getStride(), planes[i].getSize()};
  }
  return out;
}

Result<Layout> audio_from_proto(proto::AudioLayout::Reader r) {
  auto format = from_proto(r.getFormat());
  if (!format) return fail(std::move(format.error()));
  return AudioLayout{*format,       r.getSampleRate(), r.getChannels(),   r.getFrames(),
                     r.getPlanar(), r.getOffset(),     r.getPlaneStride()};
}

Result<Layout> tensor_from_proto(proto::TensorLayout::Reader r) {
  auto dtype = from_proto(r.getDtype());
  if (!dtype) return fail(std::move(dtype.error()));
  auto shape = r.getShape();
  auto strides = r.getStrides();
  if (shape.size() > kMaxTensorRank || shape.size() != strides.size()) {
    return fail(Errc::layout_bad_dimensions,
                "tensor: " + n(shape.size()) + " dimensions and " + n(strides.size()) +
                    " strides (need equal counts, at most " + n(kMaxTensorRank) + ")");
  }
  TensorLayout out;
  out.dtype = *dtype;
  out.offset = r.getOffset();
  out.rank = shape.size();
  for (unsigned i = 0; i < shape.size(); ++i) {
    out.shape[i] = shape[i];
    out.strides[i] = strides[i];
  }
  return out;
}

}  // namespace

capnp::ReaderOptions untrusted_reader_options(std::size_t message_words) noexcept {
  capnp::ReaderOptions options;
  options.traversalLimitInWords = 4 * message_words + 1024;
  options.nestingLimit = 16;
  return options;
}

static_assert(sizeof(capnp::word) == sizeof(MessageWord));

EncodedMessage encode_message(capnp::MessageBuilder& builder) {
  const auto segments = builder.getSegmentsForOutput();
  EncodedMessage out(capnp::computeSerializedSizeInWords(segments));
  const auto words = out.words();
  kj::ArrayOutputStream stream(
      kj::arrayPtr(reinterpret_cast<kj::byte*>(words.data()), words.size_bytes()));
  capnp::writeMessage(stream, segments);
  return out;
}

Result<SendStatus> send_capnp(int socket, capnp::MessageBuilder& builder,
                              std::span<const int> fds) {
  return send_message(socket, encode_message(builder).bytes(), fds);
}

Result<SendStatus> send_message(Connection& connection, capnp::MessageBuilder& message,
                                std::span<const int> fds, IoMode mode) {
  return connection.send(encode_message(message).bytes(), fds, mode);
}

namespace detail {

Status check_flat_message(std::span<const std::byte> bytes) {
  if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) {
    return fail(Errc::malformed_message,
                "message: " + n(bytes.size()) + " bytes is not a whole number of 8-byte words");
  }
  if (reinterpret_cast<std::uintptr_t>(bytes.data()) % alignof(capnp::word) != 0) {
    // A programming error of the caller, not of the peer: receive into a MessageBuffer.
    return fail(Errc::malformed_message, "message buffer is not 8-byte aligned");
  }
  return {};
}

Error malformed(const kj::Exception& e) {
  return Error(Errc::malformed_message,
               "malformed message: " + std::string(e.getDescription().cStr()));
}

}  // namespace detail

Result<Layout> layout_from_proto(proto::Layout::Reader reader) {
  try {
    switch (reader.which()) {
      case proto::Layout::BLOB: {
        auto b = reader.getBlob();
        return BlobLayout{b.getOffset(), b.getSize()};
      }
      case proto::Layout::IMAGE:
        return image_from_proto(reader.getImage());
      case proto::Layout::AUDIO:
        return audio_from_proto(reader.getAudio());
      case proto::Layout::TENSOR:
        return tensor_from_proto(reader.getTensor());
    }
    return fail(Errc::layout_unknown_format,
                "layout: unknown kind " + n(static_cast<std::uint16_t>(reader.which())));
  } catch (const kj::Exception& e) {
    return fail(detail::malformed(e));
  }
}

void layout_to_proto(const Layout& layout, proto::Layout::Builder builder) {
  struct Visitor {
    proto::Layout::Builder b;
    void operator()(const BlobLayout& l) {
      auto out = b.initBlob();
      out.setOffset(l.offset);
      out.setSize(l.size);
    }
    void operator()(const ImageLayout& l) {
      auto out = b.initImage();
      out.setFormat(to_proto<proto::PixelFormat>(l.format));
      out.setWidth(l.width);
      out.setHeight(l.height);
      auto planes = out.initPlanes(l.plane_count);
      for (unsigned i = 0; i < l.plane_count; ++i) {
        planes[i].setOffset(l.planes[i].offset);
        planes[i].setStride(l.planes[i].stride);
        planes[i].setSize(l.planes[i].size);
      }
    }
    void operator()(const AudioLayout& l) {
      auto out = b.initAudio();
      out.setFormat(to_proto<proto::SampleFormat>(l.format));
      out.setSampleRate(l.sample_rate);
      out.setChannels(l.channels);
      out.setFrames(l.frames);
      out.setPlanar(l.planar);
      out.setOffset(l.offset);
      out.setPlaneStride(l.plane_stride);
    }
    void operator()(const TensorLayout& l) {
      auto out = b.initTensor();
      out.setDtype(to_proto<proto::DType>(l.dtype));
      out.setOffset(l.offset);
      auto shape = out.initShape(l.rank);
      auto strides = out.initStrides(l.rank);
      for (unsigned i = 0; i < l.rank; ++i) {
        shape.set(i, l.shape[i]);
        strides.set(i, l.strides[i]);
      }
    }
  };
  std::visit(Visitor{builder}, layout);
}

Result<std::size_t> fd_index(std::uint32_t index, std::size_t fd_count) {
  if (index >= fd_count) {
    return fail(
        Errc::fd_index_out_of_range,
        "message refers to fd #" + n(index) + " but the datagram carried " + n(fd_count) + " fds");
  }
  return index;
}

FrameMeta meta_from_proto(proto::FrameMeta::Reader reader) {
  FrameMeta meta;
  meta.pts = time_from_wire(reader.getPts());  // the schema's default, all ones: none
  meta.dts = time_from_wire(reader.getDts());
  meta.duration = time_from_wire(reader.getDuration());
  meta.flags = reader.getFlags();
  if (reader.hasCrop()) {
    const auto c = reader.getCrop();
    meta.crop = Crop{c.getX(), c.getY(), c.getWidth(), c.getHeight()};
  }
  if (reader.hasHeader()) {
    const auto h = reader.getHeader();
    meta.header = std::as_bytes(std::span(h.begin(), h.size()));
  }
  return meta;
}

void meta_to_proto(const FrameMeta& meta, proto::FrameMeta::Builder builder) {
  builder.setPts(time_to_wire(meta.pts));
  builder.setDts(time_to_wire(meta.dts));
  builder.setDuration(time_to_wire(meta.duration));
  builder.setFlags(meta.flags);
  if (meta.crop) {
    auto c = builder.initCrop();
    c.setX(meta.crop->x);
    c.setY(meta.crop->y);
    c.setWidth(meta.crop->width);
    c.setHeight(meta.crop->height);
  }
  if (!meta.header.empty()) {
    builder.setHeader(capnp::Data::Reader(reinterpret_cast<const capnp::byte*>(meta.header.data()),
                                          meta.header.size()));
  }
}

TopicOptions topic_options_from_proto(proto::TopicOptions::Reader reader) {
  TopicOptions options;
  options.max_header_bytes = reader.getMaxHeaderBytes();
  options.header_schema = text_of(reader.getHeaderSchema());
  options.frame_rate = FrameRate{reader.getFrameRateNum(), reader.getFrameRateDen()};
  options.timestamps_required = reader.getTimestampsRequired();
  return options;
}

void topic_options_to_proto(const TopicOptions& options, proto::TopicOptions::Builder builder) {
  builder.setMaxHeaderBytes(options.max_header_bytes);
  builder.setHeaderSchema(options.header_schema);
  builder.setFrameRateNum(options.frame_rate.num);
  builder.setFrameRateDen(options.frame_rate.den);
  builder.setTimestampsRequired(options.timestamps_required);
}

}  // namespace shmfd
