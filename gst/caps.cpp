#include "caps.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <string_view>
#include <vector>

namespace shmfd::gst {
namespace {

struct VideoPair {
  GstVideoFormat gst;
  PixelFormat shmfd;
};
constexpr std::array<VideoPair, 8> kVideo{{
    {GST_VIDEO_FORMAT_RGBA, PixelFormat::rgba8},
    {GST_VIDEO_FORMAT_BGRA, PixelFormat::bgra8},
    {GST_VIDEO_FORMAT_RGB, PixelFormat::rgb24},
    {GST_VIDEO_FORMAT_NV12, PixelFormat::nv12},
    {GST_VIDEO_FORMAT_I420, PixelFormat::i420},
    {GST_VIDEO_FORMAT_YUY2, PixelFormat::yuyv},
    {GST_VIDEO_FORMAT_GRAY8, PixelFormat::gray8},
    {GST_VIDEO_FORMAT_GRAY16_LE, PixelFormat::gray16},
}};

struct AudioPair {
  GstAudioFormat gst;
  SampleFormat shmfd;
};
constexpr std::array<AudioPair, 5> kAudio{{
    {GST_AUDIO_FORMAT_U8, SampleFormat::u8},
    {GST_AUDIO_FORMAT_S16LE, SampleFormat::s16},
    {GST_AUDIO_FORMAT_S32LE, SampleFormat::s32},
    {GST_AUDIO_FORMAT_F32LE, SampleFormat::f32},
    {GST_AUDIO_FORMAT_F64LE, SampleFormat::f64},
}};

constexpr const char* kTensorCaps = "application/x-shmfd-tensor";

std::optional<PixelFormat> to_shmfd(GstVideoFormat f) {
  for (const auto& p : kVideo) {
    if (p.gst == f) return p.shmfd;
  }
  return std::nullopt;
}

std::optional<DType> dtype_named(std::string_view name) {
  for (int i = 0; i <= static_cast<int>(DType::f64); ++i) {
    if (to_string(static_cast<DType>(i)) == name) return static_cast<DType>(i);
  }
  return std::nullopt;
}

Result<TensorLayout> tensor_from_caps(const GstStructure* s) {
  const char* dtype_name = gst_structure_get_string(s, "dtype");
  const char* shape_text = gst_structure_get_string(s, "shape");
  if (!dtype_name || !shape_text) {
    return fail(Errc::invalid_argument,
                std::string(kTensorCaps) + " needs the string fields dtype and shape");
  }
  auto dtype = dtype_named(dtype_name);
  if (!dtype) {
    return fail(Errc::invalid_argument,
                std::string(kTensorCaps) + ": unknown dtype \"" + dtype_name + "\"");
  }
  std::vector<std::uint64_t> shape;
  std::string_view rest = shape_text;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const std::string part(rest.substr(0, comma));
    char* end = nullptr;
    const unsigned long long v = std::strtoull(part.c_str(), &end, 10);
    if (part.empty() || *end != '\0') {
      return fail(Errc::invalid_argument, std::string(kTensorCaps) + ": shape \"" + shape_text +
                                              "\" is not comma-separated numbers");
    }
    shape.push_back(v);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
  }
  return tensor_layout(*dtype, shape);
}

}  // namespace

Result<StreamFormat> stream_format(GstCaps* caps) {
  StreamFormat out;
  if (!caps || gst_caps_get_size(caps) == 0) return out;
  const GstStructure* s = gst_caps_get_structure(caps, 0);
  const std::string_view name = gst_structure_get_name(s);
  if (name == "video/x-raw") {
    if (!gst_video_info_from_caps(&out.video, caps)) {
      return fail(Errc::invalid_argument,
                  "video caps shmfd cannot read: " + std::string(name) + " without format or size");
    }
    if (!to_shmfd(GST_VIDEO_INFO_FORMAT(&out.video))) {
      return fail(Errc::layout_unknown_format,
                  std::string("shmfd carries no video format ") +
                      gst_video_format_to_string(GST_VIDEO_INFO_FORMAT(&out.video)) +
                      " (it carries RGBA, BGRA, RGB, NV12, I420, YUY2, GRAY8 and GRAY16_LE)");
    }
    if (GST_VIDEO_INFO_IS_INTERLACED(&out.video)) {
      return fail(Errc::invalid_argument, "shmfd carries progressive video only");
    }
    // The format's own rules (YUY2 and the 4:2:0 formats' widths, say).
    if (auto ok = default_image_layout(out.video); !ok) return fail(std::move(ok.error()));
    out.kind = LayoutKind::image;
  } else if (name == "audio/x-raw") {
    if (!gst_audio_info_from_caps(&out.audio, caps)) {
      return fail(Errc::invalid_argument, "audio caps shmfd cannot read");
    }
    const auto f = GST_AUDIO_INFO_FORMAT(&out.audio);
    if (std::none_of(kAudio.begin(), kAudio.end(),
                     [f](const AudioPair& p) { return p.gst == f; })) {
      return fail(Errc::layout_unknown_format,
                  std::string("shmfd carries no audio format ") + gst_audio_format_to_string(f) +
                      " (it carries U8, S16LE, S32LE, F32LE and F64LE)");
    }
    out.kind = LayoutKind::audio;
  } else if (name == kTensorCaps) {
    auto t = tensor_from_caps(s);
    if (!t) return fail(std::move(t.error()));
    out.tensor = *t;
    out.kind = LayoutKind::tensor;
  }
  return out;
}

Result<ImageLayout> default_image_layout(const GstVideoInfo& info) {
  ImageLayout l;
  l.format = *to_shmfd(GST_VIDEO_INFO_FORMAT(&info));
  l.width = GST_VIDEO_INFO_WIDTH(&info);
  l.height = GST_VIDEO_INFO_HEIGHT(&info);
  l.plane_count = GST_VIDEO_INFO_N_PLANES(&info);
  for (std::uint32_t i = 0; i < l.plane_count; ++i) {
    l.planes[i].offset = GST_VIDEO_INFO_PLANE_OFFSET(&info, i);
    l.planes[i].stride = GST_VIDEO_INFO_PLANE_STRIDE(&info, i);
    const std::uint64_t end = i + 1 < l.plane_count ? GST_VIDEO_INFO_PLANE_OFFSET(&info, i + 1)
                                                    : GST_VIDEO_INFO_SIZE(&info);
    l.planes[i].size = end - l.planes[i].offset;
  }
  if (auto ok = layout_extent(l); !ok) return fail(std::move(ok.error()));
  return l;
}

Result<Layout> buffer_layout(const StreamFormat& format, GstBuffer* buffer, gsize size) {
  switch (format.kind) {
    case LayoutKind::image: {
      const GstVideoMeta* meta = buffer ? gst_buffer_get_video_meta(buffer) : nullptr;
      if (!meta) {
        auto l = default_image_layout(format.video);
        if (!l) return fail(std::move(l.error()));
        return Layout{*l};
      }
      // The meta's planes, each as long as its rows need (the next plane may follow closely).
      auto l = default_image_layout(format.video);
      if (!l) return fail(std::move(l.error()));
      ImageLayout out = *l;
      for (std::uint32_t i = 0; i < out.plane_count; ++i) {
        out.planes[i].offset = meta->offset[i];
        out.planes[i].stride = static_cast<std::uint64_t>(meta->stride[i]);
        const int comp = [&] {
          gint comps[GST_VIDEO_MAX_COMPONENTS];
          gst_video_format_info_component(format.video.finfo, i, comps);
          return comps[0];
        }();
        const std::uint64_t rows =
            GST_VIDEO_FORMAT_INFO_SCALE_HEIGHT(format.video.finfo, comp, out.height);
        out.planes[i].size = out.planes[i].stride * rows;
      }
      if (auto ok = validate_layout(out, size); !ok) return fail(std::move(ok.error()));
      return Layout{out};
    }
    case LayoutKind::audio: {
      const GstAudioInfo& info = format.audio;
      const auto bpf = static_cast<gsize>(GST_AUDIO_INFO_BPF(&info));
      if (bpf == 0 || size % bpf != 0) {
        return fail(Errc::invalid_argument, "an audio buffer of " + std::to_string(size) +
                                                " bytes is not whole frames of " +
                                                std::to_string(bpf) + " bytes");
      }
      const auto f = GST_AUDIO_INFO_FORMAT(&info);
      const auto pair = std::find_if(kAudio.begin(), kAudio.end(),
                                     [f](const AudioPair& p) { return p.gst == f; });
      const bool planar = GST_AUDIO_INFO_LAYOUT(&info) == GST_AUDIO_LAYOUT_NON_INTERLEAVED;
      auto l = audio_layout(pair->shmfd, GST_AUDIO_INFO_RATE(&info), GST_AUDIO_INFO_CHANNELS(&info),
                            size / bpf, planar);
      if (!l) return fail(std::move(l.error()));
      if (planar && buffer) {
        // GstAudioMeta may place the planes apart; shmfd takes evenly spaced planes.
        if (const GstAudioMeta* meta = gst_buffer_get_audio_meta(buffer)) {
          const gsize step = meta->info.channels > 1 ? meta->offsets[1] - meta->offsets[0] : 0;
          for (int c = 0; c < meta->info.channels; ++c) {
            if (meta->offsets[c] != meta->offsets[0] + c * step) {
              return fail(Errc::invalid_argument,
                          "planar audio whose planes are not evenly spaced");
            }
          }
          l->offset = meta->offsets[0];
          if (meta->info.channels > 1) l->plane_stride = step;
          l->frames = meta->samples;
        }
      }
      if (auto ok = validate_layout(*l, size); !ok) return fail(std::move(ok.error()));
      return Layout{*l};
    }
    case LayoutKind::tensor:
      if (auto ok = validate_layout(format.tensor, size); !ok) return fail(std::move(ok.error()));
      return Layout{format.tensor};
    case LayoutKind::blob:
      break;
  }
  return Layout{blob_layout(size)};
}

GstCaps* layout_caps(const Layout& layout) {
  if (const auto* image = std::get_if<ImageLayout>(&layout)) {
    const auto pair = std::find_if(kVideo.begin(), kVideo.end(),
                                   [&](const VideoPair& p) { return p.shmfd == image->format; });
    GstVideoInfo info;
    gst_video_info_set_format(&info, pair->gst, image->width, image->height);
    GST_VIDEO_INFO_FPS_N(&info) = 0;  // frames come when they come
    GST_VIDEO_INFO_FPS_D(&info) = 1;
    return gst_video_info_to_caps(&info);
  }
  if (const auto* audio = std::get_if<AudioLayout>(&layout)) {
    const auto pair = std::find_if(kAudio.begin(), kAudio.end(),
                                   [&](const AudioPair& p) { return p.shmfd == audio->format; });
    GstAudioInfo info;
    gst_audio_info_set_format(&info, pair->gst, static_cast<gint>(audio->sample_rate),
                              static_cast<gint>(audio->channels), nullptr);
    GST_AUDIO_INFO_LAYOUT(&info) =
        audio->planar ? GST_AUDIO_LAYOUT_NON_INTERLEAVED : GST_AUDIO_LAYOUT_INTERLEAVED;
    return gst_audio_info_to_caps(&info);
  }
  if (const auto* tensor = std::get_if<TensorLayout>(&layout)) {
    std::string shape;
    for (std::uint32_t i = 0; i < tensor->rank; ++i) {
      if (i) shape += ',';
      shape += std::to_string(tensor->shape[i]);
    }
    return gst_caps_new_simple(kTensorCaps, "dtype", G_TYPE_STRING,
                               std::string(to_string(tensor->dtype)).c_str(), "shape",
                               G_TYPE_STRING, shape.c_str(), nullptr);
  }
  return gst_caps_new_empty_simple("application/octet-stream");
}

bool same_caps(const Layout& a, const Layout& b) {
  if (a.index() != b.index()) return false;
  if (const auto* x = std::get_if<ImageLayout>(&a)) {
    const auto& y = std::get<ImageLayout>(b);
    return x->format == y.format && x->width == y.width && x->height == y.height;
  }
  if (const auto* x = std::get_if<AudioLayout>(&a)) {
    const auto& y = std::get<AudioLayout>(b);
    return x->format == y.format && x->sample_rate == y.sample_rate && x->channels == y.channels &&
           x->planar == y.planar;
  }
  if (const auto* x = std::get_if<TensorLayout>(&a)) {
    const auto& y = std::get<TensorLayout>(b);
    return x->dtype == y.dtype && x->rank == y.rank && x->shape == y.shape;
  }
  return true;  // blobs: application/octet-stream
}

Result<Span> buffer_span(const Layout& layout) {
  auto end = layout_extent(layout);
  if (!end) return fail(std::move(end.error()));
  std::uint64_t first = 0;
  if (const auto* a = std::get_if<AudioLayout>(&layout)) first = a->offset;
  if (const auto* b = std::get_if<BlobLayout>(&layout)) first = b->offset;
  if (const auto* t = std::get_if<TensorLayout>(&layout)) first = t->offset;
  return Span{first, *end};
}

void add_layout_meta(GstBuffer* buffer, const Layout& layout, std::uint64_t first) {
  if (const auto* image = std::get_if<ImageLayout>(&layout)) {
    const auto pair = std::find_if(kVideo.begin(), kVideo.end(),
                                   [&](const VideoPair& p) { return p.shmfd == image->format; });
    gsize offsets[GST_VIDEO_MAX_PLANES] = {};
    gint strides[GST_VIDEO_MAX_PLANES] = {};
    for (std::uint32_t i = 0; i < image->plane_count; ++i) {
      offsets[i] = image->planes[i].offset - first;
      strides[i] = static_cast<gint>(image->planes[i].stride);
    }
    gst_buffer_add_video_meta_full(buffer, GST_VIDEO_FRAME_FLAG_NONE, pair->gst, image->width,
                                   image->height, image->plane_count, offsets, strides);
  } else if (const auto* audio = std::get_if<AudioLayout>(&layout); audio && audio->planar) {
    const auto pair = std::find_if(kAudio.begin(), kAudio.end(),
                                   [&](const AudioPair& p) { return p.shmfd == audio->format; });
    GstAudioInfo info;
    gst_audio_info_set_format(&info, pair->gst, static_cast<gint>(audio->sample_rate),
                              static_cast<gint>(audio->channels), nullptr);
    GST_AUDIO_INFO_LAYOUT(&info) = GST_AUDIO_LAYOUT_NON_INTERLEAVED;
    std::vector<gsize> offsets(audio->channels);
    for (std::uint32_t c = 0; c < audio->channels; ++c) {
      offsets[c] = audio->offset - first + c * audio->plane_stride;
    }
    gst_buffer_add_audio_meta(buffer, &info, audio->frames, offsets.data());
  }
}

}  // namespace shmfd::gst
