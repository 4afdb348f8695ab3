// shmfd-gst-probe: runs a GStreamer pipeline for the tests and reports what they check.
//
//   shmfd-gst-probe [--timeout SECONDS] [--hash] [--where] [--caps] [--print ELEMENT.PROPERTY]...
//                   PIPELINE...
//
// "started" is printed once the pipeline's elements have started (shmfdsrc has subscribed).
// Each buffer reaching the appsink named "out" prints a line "frame N HASH" (--hash: FNV-1a of
// the visible pixels of each plane, strides and padding skipped, or of every byte of
// non-video buffers) and "memfd yes|no" (--where: whether the buffer's bytes lie in a memfd
// mapping named shmfd:..., per /proc/self/maps); --caps prints "caps CAPS" before the first
// frame and whenever they change; --times adds " pts P dts D duration U flags F" (times in ns,
// "none" when invalid; F the GstBufferFlags in hex) and " crop X,Y,WxH" when the buffer has a
// GstVideoCropMeta. A QoS message prints "qos dropped=N". At the
// end, each --print prints "ELEMENT.PROPERTY=VALUE". Exit status: 0 at EOS, 1 on an error
// (printed as "error: MESSAGE"), 2 when the timeout passed first.
#include <gst/app/gstappsink.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

bool g_hash = false;
bool g_where = false;
bool g_caps = false;
bool g_times = false;
GstCaps* g_last_caps = nullptr;
std::uint64_t g_frames = 0;

std::uint64_t fnv1a(std::uint64_t h, const std::uint8_t* p, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    h ^= p[i];
    h *= 1099511628211ULL;
  }
  return h;
}

constexpr std::uint64_t kFnvBasis = 14695981039346656037ULL;

std::uint64_t video_hash(GstBuffer* buffer, GstCaps* caps) {
  GstVideoInfo info;
  GstVideoFrame frame;
  if (!gst_video_info_from_caps(&info, caps) ||
      !gst_video_frame_map(&frame, &info, buffer, GST_MAP_READ)) {
    return 0;
  }
  std::uint64_t h = kFnvBasis;
  for (guint p = 0; p < GST_VIDEO_FRAME_N_PLANES(&frame); ++p) {
    gint comps[GST_VIDEO_MAX_COMPONENTS];
    gst_video_format_info_component(info.finfo, p, comps);
    const gint width = GST_VIDEO_FRAME_COMP_WIDTH(&frame, comps[0]);
    const gint pstride = GST_VIDEO_FRAME_COMP_PSTRIDE(&frame, comps[0]);
    const gint rows = GST_VIDEO_FRAME_COMP_HEIGHT(&frame, comps[0]);
    const gint stride = GST_VIDEO_FRAME_PLANE_STRIDE(&frame, p);
    const auto* data = static_cast<const std::uint8_t*>(GST_VIDEO_FRAME_PLANE_DATA(&frame, p));
    // YUY2: a macropixel of 4 bytes holds 2 pixels.
    const std::size_t row = GST_VIDEO_FRAME_FORMAT(&frame) == GST_VIDEO_FORMAT_YUY2
                                ? static_cast<std::size_t>((width + 1) / 2 * 4)
                                : static_cast<std::size_t>(width * pstride);
    for (gint y = 0; y < rows; ++y)
      h = fnv1a(h, data + static_cast<std::ptrdiff_t>(y) * stride, row);
  }
  gst_video_frame_unmap(&frame);
  return h;
}

bool in_shmfd_memfd(const void* p) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::uintptr_t lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%" SCNxPTR "-%" SCNxPTR, &lo, &hi) != 2) continue;
    if (addr >= lo && addr < hi) return line.find("/memfd:shmfd:") != std::string::npos;
  }
  return false;
}

GstFlowReturn on_sample(GstAppSink* sink, gpointer) {
  GstSample* sample = gst_app_sink_pull_sample(sink);
  if (!sample) return GST_FLOW_EOS;
  GstBuffer* buffer = gst_sample_get_buffer(sample);
  GstCaps* caps = gst_sample_get_caps(sample);
  if (g_caps && caps && (!g_last_caps || !gst_caps_is_equal(caps, g_last_caps))) {
    gst_caps_replace(&g_last_caps, caps);
    gchar* text = gst_caps_to_string(caps);
    std::printf("caps %s\n", text);
    g_free(text);
  }
  std::printf("frame %" PRIu64, g_frames++);
  if (g_hash) {
    std::uint64_t h = 0;
    if (caps && gst_structure_has_name(gst_caps_get_structure(caps, 0), "video/x-raw")) {
      h = video_hash(buffer, caps);
    } else {
      GstMapInfo map;
      if (gst_buffer_map(buffer, &map, GST_MAP_READ)) {
        h = fnv1a(kFnvBasis, map.data, map.size);
        gst_buffer_unmap(buffer, &map);
      }
    }
    std::printf(" %016" PRIx64, h);
  }
  if (g_where) {
    GstMapInfo map;
    bool yes = false;
    if (gst_buffer_n_memory(buffer) == 1) {
      GstMemory* mem = gst_buffer_peek_memory(buffer, 0);
      if (gst_memory_map(mem, &map, GST_MAP_READ)) {
        yes = in_shmfd_memfd(map.data);
        gst_memory_unmap(mem, &map);
      }
    }
    std::printf(" memfd %s", yes ? "yes" : "no");
  }
  if (g_times) {
    const auto time = [](GstClockTime t) {
      return GST_CLOCK_TIME_IS_VALID(t) ? std::to_string(t) : std::string("none");
    };
    std::printf(" pts %s dts %s duration %s flags %x", time(GST_BUFFER_PTS(buffer)).c_str(),
                time(GST_BUFFER_DTS(buffer)).c_str(), time(GST_BUFFER_DURATION(buffer)).c_str(),
                static_cast<unsigned>(GST_BUFFER_FLAGS(buffer)));
    if (const GstVideoCropMeta* crop = gst_buffer_get_video_crop_meta(buffer)) {
      std::printf(" crop %u,%u,%ux%u", crop->x, crop->y, crop->width, crop->height);
    }
  }
  std::printf("\n");
  std::fflush(stdout);
  gst_sample_unref(sample);
  return GST_FLOW_OK;
}

void print_property(GstElement* pipeline, const std::string& spec) {
  const auto dot = spec.find('.');
  GstElement* e = gst_bin_get_by_name(GST_BIN(pipeline), spec.substr(0, dot).c_str());
  if (!e || dot == std::string::npos) {
    std::printf("%s=<no such element>\n", spec.c_str());
    return;
  }
  GValue v = G_VALUE_INIT;
  GParamSpec* pspec = g_object_class_find_property(G_OBJECT_GET_CLASS(e), spec.c_str() + dot + 1);
  if (pspec) {
    g_value_init(&v, pspec->value_type);
    g_object_get_property(G_OBJECT(e), spec.c_str() + dot + 1, &v);
    gchar* text = gst_value_serialize(&v);
    std::printf("%s=%s\n", spec.c_str(), text ? text : "?");
    g_free(text);
    g_value_unset(&v);
  } else {
    std::printf("%s=<no such property>\n", spec.c_str());
  }
  gst_object_unref(e);
}

}  // namespace

int main(int argc, char** argv) {
  gst_init(&argc, &argv);
  double timeout = 60;
  std::vector<std::string> prints;
  std::string description;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--timeout" && i + 1 < argc) {
      timeout = std::stod(argv[++i]);
    } else if (a == "--hash") {
      g_hash = true;
    } else if (a == "--where") {
      g_where = true;
    } else if (a == "--caps") {
      g_caps = true;
    } else if (a == "--times") {
      g_times = true;
    } else if (a == "--print" && i + 1 < argc) {
      prints.emplace_back(argv[++i]);
    } else {
      description += a + " ";
    }
  }
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  if (!pipeline || error) {
    std::printf("error: %s\n", error ? error->message : "no pipeline");
    return 1;
  }
  if (GstElement* out = gst_bin_get_by_name(GST_BIN(pipeline), "out")) {
    GstAppSinkCallbacks callbacks{};
    callbacks.new_sample = on_sample;
    gst_app_sink_set_callbacks(GST_APP_SINK(out), &callbacks, nullptr, nullptr);
    gst_object_unref(out);
  }
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE) {
    std::printf("started\n");  // sources have started: shmfdsrc has subscribed
    std::fflush(stdout);
  }
  GstBus* bus = gst_element_get_bus(pipeline);
  const gint64 deadline = g_get_monotonic_time() + static_cast<gint64>(timeout * 1e6);
  int status = 2;
  while (status == 2 && g_get_monotonic_time() < deadline) {
    GstMessage* m =
        gst_bus_timed_pop_filtered(bus, 100 * GST_MSECOND,
                                   static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR |
                                                               GST_MESSAGE_QOS | GST_MESSAGE_INFO));
    if (!m) continue;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) {
      status = 0;
    } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR ||
               GST_MESSAGE_TYPE(m) == GST_MESSAGE_INFO) {
      GError* e = nullptr;
      gchar* debug = nullptr;
      if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
        gst_message_parse_error(m, &e, &debug);
        status = 1;
      } else {
        gst_message_parse_info(m, &e, &debug);
      }
      std::printf("%s: %s | %s\n", status == 1 ? "error" : "info", e->message, debug ? debug : "");
      g_error_free(e);
      g_free(debug);
    } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_QOS) {
      GstFormat format;
      guint64 processed = 0, dropped = 0;
      gst_message_parse_qos_stats(m, &format, &processed, &dropped);
      std::printf("qos dropped=%" G_GUINT64_FORMAT "\n", dropped);
    }
    std::fflush(stdout);
    gst_message_unref(m);
  }
  for (const auto& p : prints) print_property(pipeline, p);
  std::fflush(stdout);
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  gst_caps_replace(&g_last_caps, nullptr);
  gst_deinit();
  return status;
}
