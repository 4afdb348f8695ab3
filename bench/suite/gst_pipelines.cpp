// shmfd-bench-gst-pipelines: scenario S7, the same GStreamer pipelines over shmfd and over
// GStreamer's own shm elements, side by side in one run:
//   videotestsrc ! shmfdsink  ->  shmfdsrc ! fakesink      (through a shmfd-broker)
//   videotestsrc ! shmsink    ->  shmsrc ! fakesink
// RGBA frames at 1920x1080 and 3840x2160, videotestsrc's "ball" pattern at saturation
// (sync=false); the consumer's fakesink hands each buffer to a callback that touches one byte
// per page or reads every byte. Each side is configured as its documentation recommends:
// shmfdsink proposes its pool upstream and shmfdsrc receives with block-producer (no frame
// lost, as shmsink loses none); shmsink gets an area of 8 frames and waits for its consumer.
// Reported: frames per second at the consumer, CPU time per frame of each process (user +
// system, from getrusage, pattern drawing included: equal on both sides), and latency from
// the producer's sink pad to the consumer's callback (a CLOCK_MONOTONIC stamp in the first 8
// bytes, written by a pad probe on both sides).
//
//   shmfd-bench-gst-pipelines [--json FILE] [--quick]
#include <gst/gst.h>
#include <sys/resource.h>

#include "common.hpp"

namespace {

using bench::now_ns;
using bench::Results;
using bench::SharedSamples;
using bench::Work;

struct Size {
  const char* name;
  std::size_t width, height;
  std::uint64_t frames;
};
constexpr Size kSizes[] = {{"1080p", 1920, 1080, 300}, {"4K", 3840, 2160, 100}};

enum class Transport { shmfd, shm };
const char* name_of(Transport t) {
  return t == Transport::shmfd ? "shmfdsink → shmfdsrc" : "shmsink → shmsrc";
}

GstElement* launch(const std::string& description) {
  GError* error = nullptr;
  GstElement* pipeline = gst_parse_launch(description.c_str(), &error);
  if (pipeline == nullptr || error != nullptr) {
    bench::die("gst_parse_launch(" + description + "): " + (error ? error->message : "failed"));
  }
  return pipeline;
}

bool run_to_eos(GstElement* pipeline) {
  GstBus* bus = gst_element_get_bus(pipeline);
  GstMessage* m = gst_bus_timed_pop_filtered(
      bus, 300 * GST_SECOND, static_cast<GstMessageType>(GST_MESSAGE_EOS | GST_MESSAGE_ERROR));
  bool ok = m != nullptr && GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS;
  if (m != nullptr && GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
    GError* e = nullptr;
    gst_message_parse_error(m, &e, nullptr);
    std::fprintf(stderr, "shmfd-bench-gst-pipelines: %s\n", e->message);
    g_error_free(e);
  }
  if (m != nullptr) gst_message_unref(m);
  gst_object_unref(bus);
  return ok;
}

double cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

GstPadProbeReturn stamp(GstPad*, GstPadProbeInfo* info, gpointer) {
  GstBuffer* buffer = GST_PAD_PROBE_INFO_BUFFER(info);
  GstMapInfo map;
  if (buffer != nullptr && gst_buffer_map(buffer, &map, GST_MAP_WRITE)) {
    const std::uint64_t t = now_ns();
    std::memcpy(map.data, &t, sizeof t);
    gst_buffer_unmap(buffer, &map);
  }
  return GST_PAD_PROBE_OK;
}

struct ConsumerState {
  Work work;
  SharedSamples* arrivals;
  SharedSamples* latency;
  std::uint64_t sum = 0;
};

void on_handoff(GstElement*, GstBuffer* buffer, GstPad*, gpointer data) {
  auto* s = static_cast<ConsumerState*>(data);
  GstMapInfo map;
  if (!gst_buffer_map(buffer, &map, GST_MAP_READ)) return;
  std::uint64_t t = 0;
  std::memcpy(&t, map.data, sizeof t);
  s->sum += bench::consume({reinterpret_cast<const std::byte*>(map.data), map.size}, s->work);
  gst_buffer_unmap(buffer, &map);
  const std::uint64_t now = now_ns();
  s->arrivals->push(static_cast<double>(now));
  s->latency->push(static_cast<double>(now - t) / 1e3);
}

struct Run {
  bench::Rate rate;
  std::vector<double> latency_us;
  double producer_cpu_ms = 0, consumer_cpu_ms = 0;  // per frame
};

Run run(Transport t, const Size& size, std::uint64_t frames, Work work, const std::string& socket) {
  SharedSamples arrivals(frames), latency(frames), cpu(2);
  const std::size_t frame_bytes = size.width * size.height * 4;
  const std::string caps = "video/x-raw,format=RGBA,width=" + std::to_string(size.width) +
                           ",height=" + std::to_string(size.height) + ",framerate=30/1";
  const std::string topic = "bench";
  const std::string shm_socket = socket + ".shm";
  bench::Signal subscribed;
  const pid_t consumer = bench::spawn([&] {
    if (t == Transport::shm) {
      for (int i = 0; i < 10000 && ::access(shm_socket.c_str(), F_OK) != 0; ++i) ::usleep(1000);
    }
    gst_init(nullptr, nullptr);
    const std::string source = t == Transport::shmfd
                                   ? "shmfdsrc socket-path=" + socket + " topic=" + topic +
                                         " backpressure=block-producer queue-depth=4"
                                   : "shmsrc socket-path=" + shm_socket + " is-live=false";
    GstElement* pipeline = launch(source + " num-buffers=" + std::to_string(frames) +
                                  " ! fakesink name=out sync=false signal-handoffs=true");
    GstElement* out = gst_bin_get_by_name(GST_BIN(pipeline), "out");
    ConsumerState state{work, &arrivals, &latency};
    g_signal_connect(out, "handoff", G_CALLBACK(on_handoff), &state);
    gst_element_set_state(pipeline, GST_STATE_PLAYING);
    subscribed.post();
    const double cpu0 = cpu_seconds();
    const bool ok = run_to_eos(pipeline);
    cpu.push(cpu_seconds() - cpu0);
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(out);
    gst_object_unref(pipeline);
    return ok ? (state.sum == 1 ? 3 : 0) : 1;
  });
  if (t == Transport::shmfd) subscribed.wait();
  const pid_t producer = bench::spawn([&] {
    gst_init(nullptr, nullptr);
    const std::string sink =
        t == Transport::shmfd
            ? "shmfdsink name=sink socket-path=" + socket + " topic=" + topic + " slots=8"
            : "shmsink name=sink socket-path=" + shm_socket +
                  " shm-size=" + std::to_string(8 * (frame_bytes + bench::kPage)) +
                  " wait-for-connection=true";
    GstElement* pipeline = launch("videotestsrc num-buffers=" + std::to_string(frames) +
                                  " pattern=ball ! " + caps + " ! " + sink + " sync=false");
    GstElement* s = gst_bin_get_by_name(GST_BIN(pipeline), "sink");
    GstPad* pad = gst_element_get_static_pad(s, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, stamp, nullptr, nullptr);
    gst_object_unref(pad);
    const double cpu0 = cpu_seconds();
    gst_element_set_state(pipeline, GST_STATE_PLAYING);
    const bool ok = run_to_eos(pipeline);
    cpu.at(1) = cpu_seconds() - cpu0;
    gst_element_set_state(pipeline, GST_STATE_NULL);
    gst_object_unref(s);
    gst_object_unref(pipeline);
    return ok ? 0 : 1;
  });
  const bool produced = bench::wait_ok(producer);
  const bool consumed = bench::wait_ok(consumer);
  ::unlink(shm_socket.c_str());
  if (!produced || !consumed) bench::die(std::string(name_of(t)) + ": a pipeline failed");
  Run r;
  r.rate = bench::rate_of(arrivals.values());
  r.latency_us = latency.values();
  r.consumer_cpu_ms = cpu.at(0) * 1e3 / static_cast<double>(frames);
  r.producer_cpu_ms = cpu.at(1) * 1e3 / static_cast<double>(frames);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  const auto o =
      bench::parse_options(argc, argv, "shmfd-bench-gst-pipelines [--json FILE] [--quick]");
  Results results;
  if (!o.runs("S7")) {
    results.write(o.json);
    return 0;
  }
  // The plugin from this build, unless GST_PLUGIN_PATH names another.
  ::setenv("GST_PLUGIN_PATH", (bench::self_dir() + "/../gst").c_str(), 0);
  gst_init(&argc, &argv);
  if (GstElementFactory* f = gst_element_factory_find("shmfdsink")) {
    gst_object_unref(f);
  } else {
    results.skip("S7", "shmfdsink", "the gstshmfd plugin is not found (GST_PLUGIN_PATH)");
    results.write(o.json);
    return 1;
  }
  if (GstElementFactory* f = gst_element_factory_find("shmsink")) {
    gst_object_unref(f);
  } else {
    results.skip("S7", "shmsink",
                 "GStreamer's shm elements are missing (gstreamer1.0-plugins-bad)");
  }
  bench::BrokerProcess broker;
  for (const Size& size : kSizes) {
    for (Work work : {Work::touch, Work::read}) {
      const std::string variant = std::string(size.name) + ", " + bench::to_string(work);
      for (Transport t : {Transport::shmfd, Transport::shm}) {
        if (t == Transport::shm && gst_element_factory_find("shmsink") == nullptr) continue;
        std::vector<Run> runs;
        for (int i = 0; i < 3; ++i)
          runs.push_back(run(t, size, o.n(size.frames), work, broker.socket()));
        std::vector<bench::Rate> rates;
        std::vector<double> lat, pcpu, ccpu;
        for (const Run& r : runs) {
          rates.push_back(r.rate);
          lat.insert(lat.end(), r.latency_us.begin(), r.latency_us.end());
          pcpu.push_back(r.producer_cpu_ms);
          ccpu.push_back(r.consumer_cpu_ms);
        }
        const std::string n = name_of(t);
        bench::add_rates(results, "S7", variant, "frames per second: " + n, rates);
        results.add("S7", variant, "latency: " + n, "sink pad to consumer", "µs",
                    bench::median(lat), bench::percentile(lat, 0.99), "µs", lat.size());
        results.add("S7", variant, "producer CPU per frame: " + n, "CPU time", "ms",
                    bench::median(pcpu));
        results.add("S7", variant, "consumer CPU per frame: " + n, "CPU time", "ms",
                    bench::median(ccpu));
      }
    }
  }
  results.write(o.json);
  return 0;
}
