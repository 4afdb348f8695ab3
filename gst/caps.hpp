// Caps <-> shmfd layouts, for the shmfdsink and shmfdsrc elements.
//
//   video/x-raw            <-> ImageLayout   RGBA BGRA RGB NV12 I420 YUY2 GRAY8 GRAY16_LE
//   audio/x-raw            <-> AudioLayout   U8 S16LE S32LE F32LE F64LE, interleaved or not
//   application/x-shmfd-tensor, dtype=(string)f32, shape=(string)"3,224,224"
//                          <-> TensorLayout  (dense, row-major)
//   anything else           -> BlobLayout    (shmfdsrc gives application/octet-stream)
#pragma once

#include <gst/audio/audio.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <optional>
#include <string>

#include "shmfd/layout.hpp"
#include "shmfd/protocol.hpp"

namespace shmfd::gst {

// What a sink's caps say about the buffers it gets.
struct StreamFormat {
  LayoutKind kind = LayoutKind::blob;
  GstVideoInfo video{};   // kind == image
  GstAudioInfo audio{};   // kind == audio
  TensorLayout tensor{};  // kind == tensor
};

// The format of `caps`, or an error naming what shmfd cannot carry (a video or audio format it
// does not know, a tensor without a dtype).
Result<StreamFormat> stream_format(GstCaps* caps);

// The layout of one buffer of `format` whose bytes are `size` long. A video buffer's
// GstVideoMeta (strides and plane offsets) wins over the caps' defaults.
Result<Layout> buffer_layout(const StreamFormat& format, GstBuffer* buffer, gsize size);

// The layout of a video frame in GStreamer's default arrangement for `info`.
Result<ImageLayout> default_image_layout(const GstVideoInfo& info);

// The caps of frames with `layout` (new reference).
GstCaps* layout_caps(const Layout& layout);
// Whether frames of `a` and `b` have the same caps: what layout_caps reads of them (an audio
// buffer's length and a plane's stride, say, are not in the caps).
bool same_caps(const Layout& a, const Layout& b);

// The bytes of a frame that a buffer carries: [first, end).
struct Span {
  std::uint64_t first = 0;
  std::uint64_t end = 0;
};
Result<Span> buffer_span(const Layout& layout);

// Adds the metadata that says where the data of `layout` lies in `buffer` (GstVideoMeta for
// images, GstAudioMeta for planar audio), relative to `first`, the buffer's first byte.
void add_layout_meta(GstBuffer* buffer, const Layout& layout, std::uint64_t first);

}  // namespace shmfd::gst
