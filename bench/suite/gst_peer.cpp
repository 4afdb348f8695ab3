// shmfd-bench-gst: GStreamer 1.22's shmsink and shmsrc (Debian's gstreamer1.0-plugins-bad) in
// scenario S2, 3840x2160 RGBA frames per second at saturation:
//   producer  appsrc ! shmsink   (zero copy: each frame is written into memory of shmsink's own
//                                allocator, which it proposes in the allocation query, as
//                                videotestsrc ! shmsink does; the producer waits for room in
//                                shmsink's area rather than take the allocator's fallback,
//                                which shmsink would copy)
//   consumer  shmsrc ! appsink   (zero copy: buffers are views of that area)
// the producer stamping a header or writing every byte, the consumer touching one byte per
// page or reading every byte.
//
//   shmfd-bench-gst [--json FILE] [--quick]
#include <gst/app/gstappsink.h>
#include <gst/app/gstappsrc.h>
#include <gst/gst.h>

#include "common.hpp"

namespace {

using bench::die;
using bench::now_ns;
using bench::Results;
using bench::SharedSamples;
using bench::Work;

GstElement* launch(const std::string& description) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  if (pipeline == nullptr || error != nullptr) {
    die("gst_parse_launch(" + description + "): " + (error ? error->message : "failed"));
  }
  return pipeline;
}

// Runs `pipeline` until end of stream or an error; false on error.
bool run_to_eos(GstElement* pipeline) {
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* m = gst_bus_timed_pop_filtered(
      bus, 120 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  const bool ok = m != nullptr && GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS;
  if (m != nullptr) gst_message_unref(m);
  gst_object_unref(bus);
  return ok;
}

// The allocator shmsink proposes for the buffers it will send: memory in its shared area.
GstAllocator* sink_allocator(GstElement* src, GstAllocationParams* params) {
  GstPad* pad = gst_element_get_static_pad(src, "src");
  GstQuery* query = gst_query_new_allocation(nullptr, FALSE);
  GstAllocator* allocator = nullptr;
  gst_allocation_params_init(params);
  if (gst_pad_peer_query(pad, query) && gst_query_get_n_allocation_params(query) > 0) {
    gst_query_parse_nth_allocation_param(query, 0, &allocator, params);
  }
  gst_query_unref(query);
  gst_object_unref(pad);
  return allocator;
}

// Frames shmsink's area holds: one being filled, two in appsrc's queue, one being sent, and
// what the consumer holds (appsink's two and the one it works on); iceoryx's mempool has 10.
constexpr std::size_t kAreaFrames = 8;

bench::Rate run(std::uint64_t frames, Work work, bench::Fill fill) {
  const std::string socket = "/tmp/shmfd-bench-gst-" + std::to_string(::getpid());
  const std::size_t size = bench::k4KBytes;
  SharedSamples arrivals(frames);
  const pid_t producer = bench::spawn([&] {
    gst_init(nullptr, nullptr);
    GstElement* pipeline =
        launch("appsrc name=src format=bytes block=true max-bytes=" + std::to_string(2 * size) +
               " ! shmsink socket-path=" + socket +
               " shm-size=" + std::to_string(kAreaFrames * (size + bench::kPage)) +
               " wait-for-connection=true sync=false");
    GstElement* src = gst_bin_get_by_name(GST_BIN(pipeline), "src");
    gst_element_set_state(pipeline, GST_STATE_PLAYING);  // shmsink has started: its allocator
    GstAllocationParams params;
    GstAllocator* allocator = sink_allocator(src, &params);
    if (allocator == nullptr) die("shmsink proposed no allocator");
    // shmsink's allocator does not wait for room in its area: when the area is full it returns
    // ordinary memory, which shmsink then copies. Nothing but the area holds a producer back
    // (shmsink sends as fast as buffers come), so wait for room here, as a producer that wants
    // zero copy must, instead of measuring GStreamer's copy.
    std::uint64_t waits = 0;
    for (std::uint64_t i = 0; i < frames; ++i) {
      GstBuffer* buffer = nullptr;
      for (;;) {
        buffer = gst_buffer_new_allocate(allocator, size, &params);
        if (buffer == nullptr) return 1;
        if (gst_buffer_peek_memory(buffer, 0)->allocator == allocator) break;
        gst_buffer_unref(buffer);
        ++waits;
        ::usleep(100);
      }
      GstMapInfo map;
      if (!gst_buffer_map(buffer, &map, GST_MAP_WRITE)) return 1;
      bench::fill({reinterpret_cast<std::byte*>(map.data), map.size}, i, fill);
      gst_buffer_unmap(buffer, &map);
      if (gst_app_src_push_buffer(GST_APP_SRC(src), buffer) != GST_FLOW_OK) return 1;
    }
    std::fprintf(stderr,
                 "shmfd-bench-gst: %llu frames, waited %llu times for room in shmsink's area\n",
                 static_cast<unsigned long long>(frames), static_cast<unsigned long long>(waits));
    gst_object_unref(allocator);
    gst_app_src_end_of_stream(GST_APP_SRC(src));
    const bool ok = run_to_eos(pipeline);
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(src);
    gst_object_unref(pipeline);
    return ok ? 0 : 1;
  });
  const pid_t consumer = bench::spawn([&] {
    for (int i = 0; i < 5000 && ::access(socket.c_str(), F_OK) != 0; ++i) ::usleep(1000);
    gst_init(nullptr, nullptr);
    GstElement* pipeline = launch("shmsrc socket-path=" + socket +
                                  " is-live=false ! appsink name=sink sync=false max-buffers=2");
    GstElement* sink = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
    gst_element_set_state(pipeline, GST_STATE_PLAYING);
    std::uint64_t sink_sum = 0;
    for (std::uint64_t i = 0; i < frames; ++i) {
      GstSample* sample = gst_app_sink_pull_sample(GST_APP_SINK(sink));
      if (sample == nullptr) return 1;
      GstMapInfo map;
      GstBuffer* buffer = gst_sample_get_buffer(sample);
      if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return 1;
      sink_sum += bench::consume({reinterpret_cast<const std::byte*>(map.data), map.size}, work);
      gst_buffer_unmap(buffer, &map);
      gst_sample_unref(sample);
      arrivals.push(static_cast<double>(now_ns()));
    }
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(sink);
    gst_object_unref(pipeline);
    return sink_sum == 1 ? 3 : 0;
  });
  const bool consumed = bench::wait_ok(consumer);
  bench::wait_ok(producer);
  ::unlink(socket.c_str());
  if (!consumed) die("GStreamer consumer failed");
  return bench::rate_of(arrivals.values());
}

}  // namespace

int main(int argc, char** argv) {
  const auto o = bench::parse_options(argc, argv, "shmfd-bench-gst [--json FILE] [--quick]");
  Results results;
  guint major = 0, minor = 0, micro = 0, nano = 0;
  gst_version(&major, &minor, &micro, &nano);
  const std::string name = "GStreamer " + std::to_string(major) + "." + std::to_string(minor) +
                           "." + std::to_string(micro) + " shmsink to shmsrc";
  std::fprintf(stderr, "shmfd-bench-gst: %s\n", name.c_str());
  if (o.runs("S2")) {
    for (const bench::S2Variant& v : bench::kS2Variants) {
      std::vector<bench::Rate> runs;
      for (int r = 0; r < 3; ++r) runs.push_back(run(o.n(100), v.work, v.fill));
      bench::add_rates(results, "S2", bench::to_string(v), name, runs);
    }
  }
  results.write(o.json);
  return 0;
}
