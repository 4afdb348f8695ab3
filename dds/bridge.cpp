// shmfd-dds-bridge: shmfd topics on a DDS domain (Eclipse Cyclone DDS), a client of the broker
// like any other. Export: subscribes to a local topic and publishes each frame as a DDS sample
// (layout, sequence, capture time, bytes). Import: takes DDS samples, validates each, and
// publishes it into a local pool. See dds/README.md.
#include <dds/dds.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "convert.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/wire/parse.hpp"

namespace {

using namespace shmfd;
using Clock = std::chrono::steady_clock;

constexpr const char* kUsage =
    "usage: shmfd-dds-bridge [--socket PATH] [--config FILE] [--domain N] [--partition NAME]...\n"
    "                        [--export TOPIC]... [--export-ros2 TOPIC]... [--import TOPIC]...\n"
    "                        [--import-ros2 TOPIC]... [--block] [--depth N] [--slots N]\n"
    "                        [--name NAME] [--stats SECONDS]\n"
    "Bridges shmfd topics to a DDS domain (Eclipse Cyclone DDS) and back.\n"
    "  --export TOPIC       local TOPIC out to DDS topic shmfd2/TOPIC (type\n"
    "                       shmfd::bridge::Frame2: layout, times, metadata, bytes)\n"
    "  --export-ros2 TOPIC  local image TOPIC out to rt/TOPIC as ROS 2 sensor_msgs/msg/Image\n"
    "  --import TOPIC       DDS topic shmfd2/TOPIC into local TOPIC (a pool of --slots slots)\n"
    "  --import-ros2 TOPIC  ROS 2 images on rt/TOPIC into local TOPIC\n"
    "  --block              no loss: reliable DDS, keep-all within --depth samples, and\n"
    "                       block-producer locally (default: best-effort, keep-last --depth,\n"
    "                       drop-oldest)\n"
    "  --depth N            queue depth, locally and in DDS (default 4)\n"
    "  --slots N            slots of each import pool (default 8)\n"
    "  --domain N           DDS domain id (default 0); --partition: DDS partitions\n"
    "  --config FILE        the same options, one a line without the dashes ('export cam/0');\n"
    "                       # starts a comment. Options on the command line come after it.\n"
    "  --name NAME          the client name the broker shows (default shmfd-dds-bridge)\n"
    "  --stats SECONDS      print samples in and out, drops and bytes per second that often\n"
    "                       (default 10; 0: only at exit)\n"
    "Cyclone DDS reads its own configuration from CYCLONEDDS_URI (network interfaces, peers,\n"
    "buffer sizes). SIGINT or SIGTERM stops it with a summary.\n";

std::atomic<bool> g_stop{false};
std::atomic<int> g_running{0};  // bridging threads not yet returned

// Counts a bridging thread as running for as long as it lives.
struct Running {
  Running() { ++g_running; }
  ~Running() { --g_running; }
};

struct Settings {
  std::string socket = default_socket_path();
  std::string name = "shmfd-dds-bridge";
  std::uint32_t domain = 0;
  std::vector<std::string> partitions;
  std::vector<std::string> exports, exports_ros2, imports, imports_ros2;
  bool block = false;
  std::uint32_t depth = 4;
  std::uint32_t slots = 8;
  std::uint32_t stats = 10;
};

[[noreturn]] void usage_error(const std::string& why) {
  std::fprintf(stderr, "shmfd-dds-bridge: %s\n%s", why.c_str(), kUsage);
  std::exit(2);
}

std::uint32_t number(const std::string& option, const std::string& value, std::uint32_t min,
                     std::uint32_t max) {
  auto n = parse_number(option, value, min, max);
  if (!n) usage_error(n.error().message());
  return static_cast<std::uint32_t>(*n);
}

// One option (without its dashes) and its value, from the command line or the config file.
void apply(Settings& s, const std::string& key, const std::string& value) {
  if (key == "socket")
    s.socket = value;
  else if (key == "name")
    s.name = value;
  else if (key == "domain")
    s.domain = number(key, value, 0, 230);
  else if (key == "partition")
    s.partitions.push_back(value);
  else if (key == "export")
    s.exports.push_back(value);
  else if (key == "export-ros2")
    s.exports_ros2.push_back(value);
  else if (key == "import")
    s.imports.push_back(value);
  else if (key == "import-ros2")
    s.imports_ros2.push_back(value);
  else if (key == "depth")
    s.depth = number(key, value, 1, 4096);
  else if (key == "slots")
    s.slots = number(key, value, 2, 1024);
  else if (key == "stats")
    s.stats = number(key, value, 0, 86400);
  else if (key == "block")
    s.block = value.empty() || value == "true" || value == "1";
  else
    usage_error("unknown option '" + key + "'");
}

void read_config(Settings& s, const std::string& path) {
  std::ifstream in(path);
  if (!in) usage_error("cannot read the config file " + path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    std::istringstream words(line);
    std::string key, value, extra;
    if (!(words >> key)) continue;
    words >> value;
    if (words >> extra) usage_error(path + ":" + std::to_string(n) + ": more than one value");
    if (key != "block" && value.empty()) {
      usage_error(path + ":" + std::to_string(n) + ": '" + key + "' needs a value");
    }
    apply(s, key, value);
  }
}

Settings parse(int argc, char** argv) {
  Settings s;
  std::vector<std::pair<std::string, std::string>> options;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (a.rfind("--", 0) != 0) usage_error("unexpected argument '" + a + "'");
    if (a == "--block") {
      options.emplace_back("block", "");
    } else if (i + 1 < argc) {
      options.emplace_back(a.substr(2), argv[++i]);
    } else {
      usage_error(a + " needs a value");
    }
  }
  for (const auto& [k, v] : options) {
    if (k == "config") read_config(s, v);
  }
  for (const auto& [k, v] : options) {
    if (k != "config") apply(s, k, v);
  }
  if (s.exports.empty() && s.exports_ros2.empty() && s.imports.empty() && s.imports_ros2.empty()) {
    usage_error("nothing to bridge: give --export, --export-ros2, --import or --import-ros2");
  }
  // A topic both exported and imported by one bridge would come back to it.
  for (const auto& t : s.imports) {
    for (const auto* list : {&s.exports, &s.exports_ros2}) {
      if (std::find(list->begin(), list->end(), t) != list->end()) {
        usage_error("topic '" + t + "' is both exported and imported: it would loop");
      }
    }
  }
  return s;
}

// What the bridge counts, per topic and in all.
struct Counters {
  std::atomic<std::uint64_t> in{0}, out{0}, bytes{0}, dropped{0}, bad{0};
};

struct Dds {
  dds_entity_t participant = 0;
  dds_entity_t frame_topic(const std::string& topic) const;
};

std::uint64_t g_origin = 0;  // this bridge, in every sample it writes

// Block-producer topics: reliable and keep-all, the writer holding at most --depth samples
// not yet acknowledged (so it waits, and the local producer with it, when the far side falls
// behind). The reader's cache is not limited: Cyclone DDS 0.10 rejects samples past a reader's
// limit in a way that left a writer waiting for acknowledgements for good in our tests.
// Drop-oldest topics: best-effort, keep-last --depth on both sides.
dds_qos_t* make_qos(const Settings& s, bool writer) {
  dds_qos_t* qos = dds_create_qos();
  if (s.block) {
    dds_qset_reliability(qos, DDS_RELIABILITY_RELIABLE, DDS_SECS(10));
    dds_qset_history(qos, DDS_HISTORY_KEEP_ALL, 0);
    if (writer) {
      dds_qset_resource_limits(qos, static_cast<int32_t>(s.depth), DDS_LENGTH_UNLIMITED,
                               static_cast<int32_t>(s.depth));
    }
  } else {
    dds_qset_reliability(qos, DDS_RELIABILITY_BEST_EFFORT, 0);
    dds_qset_history(qos, DDS_HISTORY_KEEP_LAST, static_cast<int32_t>(s.depth));
  }
  dds_qset_ignorelocal(qos, DDS_IGNORELOCAL_PARTICIPANT);
  if (!s.partitions.empty()) {
    std::vector<const char*> names;
    for (const auto& p : s.partitions) names.push_back(p.c_str());
    dds_qset_partition(qos, static_cast<uint32_t>(names.size()), names.data());
  }
  return qos;
}

std::string dds_error(const std::string& what, dds_return_t rc) {
  return what + ": " + dds_strretcode(rc);
}

// A bridging thread that cannot go on: says why, and stops the bridge.
void give_up(const std::string& why) {
  std::fprintf(stderr, "shmfd-dds-bridge: %s\n", why.c_str());
  g_stop = true;
}

// The DDS topic that carries local `topic`: shmfd2/TOPIC (shmfd frames, Frame2) or rt/TOPIC
// (ROS 2 images), and its name.
std::pair<dds_entity_t, std::string> dds_topic(dds_entity_t participant, const std::string& topic,
                                               bool ros2) {
  std::string name = (ros2 ? "rt/" : "shmfd2/") + topic;
  const dds_entity_t t = dds_create_topic(
      participant, ros2 ? &sensor_msgs_msg_dds__Image__desc : &shmfd_bridge_Frame2_desc,
      name.c_str(), nullptr, nullptr);
  return {t, std::move(name)};
}

// Bridges before shmfd 0.4 carry shmfd::bridge::Frame on shmfd/TOPIC: no metadata, and no
// interoperation with Frame2. A bridge watches the old topic with an endpoint that never sends
// and never reads, and says once, naming both types and topics, when an older bridge is there:
// otherwise the two would miss each other without a word.
class OlderBridgeWatch {
 public:
  OlderBridgeWatch(const Settings& s, dds_entity_t participant, const std::string& topic,
                   bool exporting)
      : topic_(topic), exporting_(exporting) {
    const std::string name = "shmfd/" + topic;
    const dds_entity_t t =
        dds_create_topic(participant, &shmfd_bridge_Frame_desc, name.c_str(), nullptr, nullptr);
    if (t < 0) return;
    dds_qos_t* qos = dds_create_qos();
    // Matches an old endpoint of either reliability: a reliable writer, a best-effort reader.
    if (exporting) {
      dds_qset_reliability(qos, DDS_RELIABILITY_RELIABLE, DDS_SECS(1));
    } else {
      dds_qset_reliability(qos, DDS_RELIABILITY_BEST_EFFORT, 0);
    }
    dds_qset_history(qos, DDS_HISTORY_KEEP_LAST, 1);
    dds_qset_ignorelocal(qos, DDS_IGNORELOCAL_PARTICIPANT);
    if (!s.partitions.empty()) {
      std::vector<const char*> names;
      for (const auto& p : s.partitions) names.push_back(p.c_str());
      dds_qset_partition(qos, static_cast<uint32_t>(names.size()), names.data());
    }
    endpoint_ = exporting ? dds_create_writer(participant, t, qos, nullptr)
                          : dds_create_reader(participant, t, qos, nullptr);
    dds_delete_qos(qos);
  }

  // Says so when an older bridge appeared since the last look (cheap: a status read).
  void check() {
    if (endpoint_ <= 0) return;
    std::uint32_t count = 0;
    if (exporting_) {
      dds_publication_matched_status_t m{};
      if (dds_get_publication_matched_status(endpoint_, &m) == 0) count = m.current_count;
    } else {
      dds_subscription_matched_status_t m{};
      if (dds_get_subscription_matched_status(endpoint_, &m) == 0) count = m.current_count;
    }
    if (count > said_) {
      std::fprintf(stderr,
                   "shmfd-dds-bridge: %s: a bridge older than shmfd 0.4 %s DDS topic 'shmfd/%s' "
                   "(sample type shmfd::bridge::Frame, without frame metadata); this bridge %s "
                   "shmfd::bridge::Frame2 on 'shmfd2/%s', and the two do not interoperate: upgrade "
                   "the older bridge\n",
                   topic_.c_str(), exporting_ ? "imports from" : "exports to", topic_.c_str(),
                   exporting_ ? "exports" : "imports", topic_.c_str());
    }
    said_ = count;
  }

 private:
  std::string topic_;
  bool exporting_;
  dds_entity_t endpoint_ = 0;
  std::uint32_t said_ = 0;
};

// CLOCK_MONOTONIC capture time as wall-clock time (what ROS 2 stamps carry).
std::uint64_t monotonic_to_realtime(std::uint64_t mono_ns) {
  timespec now_mono{}, now_real{};
  ::clock_gettime(CLOCK_MONOTONIC, &now_mono);
  ::clock_gettime(CLOCK_REALTIME, &now_real);
  const auto ns = [](const timespec& t) {
    return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
  };
  return static_cast<std::uint64_t>(ns(now_real) -
                                    (ns(now_mono) - static_cast<std::int64_t>(mono_ns)));
}

// --- Export: local topic -> DDS ---

// Disposes the keyless topic's one instance: the readers see a sample without data whose
// instance state is NOT_ALIVE_DISPOSED, which is how the end of a stream crosses DDS.
template <typename Sample>
dds_return_t dispose_instance(dds_entity_t writer) {
  Sample key{};  // a keyless topic: any sample names its instance
  return dds_dispose(writer, &key);
}

void export_loop(const Settings& s, dds_entity_t participant, std::string topic, bool ros2,
                 Counters& c) {
  const Running running;
  const auto [dtopic, dds_name] = dds_topic(participant, topic, ros2);
  dds_qos_t* qos = make_qos(s, true);
  const dds_entity_t writer =
      dtopic < 0 ? dtopic : dds_create_writer(participant, dtopic, qos, nullptr);
  dds_delete_qos(qos);
  if (writer < 0) return give_up(dds_error("DDS writer of " + dds_name, writer));
  auto consumer = Consumer::connect(s.socket, s.name);
  if (!consumer) return give_up(consumer.error().message());
  consumer->reconnect_on_loss();
  auto depth = consumer->subscribe(
      topic, s.depth, s.block ? Backpressure::block_producer : Backpressure::drop_oldest);
  if (!depth) return give_up("subscribe " + topic + ": " + depth.error().message());
  std::fprintf(stderr, "shmfd-dds-bridge: exporting '%s' to DDS topic '%s'%s\n", topic.c_str(),
               dds_name.c_str(), ros2 ? " (sensor_msgs/msg/Image)" : "");
  std::optional<OlderBridgeWatch> older;
  if (!ros2) older.emplace(s, participant, topic, true);
  std::uint64_t seen_dropped = 0;
  std::vector<std::uint8_t> rows;  // a ROS 2 image whose last row the slot does not hold whole
  while (!g_stop) {
    auto event = consumer->receive_for(std::chrono::milliseconds(100));
    if (!event) return give_up(topic + ": " + event.error().message());
    if (older) older->check();
    if (!*event) continue;
    if (std::holds_alternative<EndOfStream>(**event)) {
      // The producer on this side left: the topic's one DDS instance is disposed, and each
      // importer ends the stream on its side too (a producer that comes back revives it).
      const dds_return_t rc = ros2 ? dispose_instance<sensor_msgs_msg_dds__Image_>(writer)
                                   : dispose_instance<shmfd_bridge_Frame2>(writer);
      if (rc < 0) {
        std::fprintf(stderr, "shmfd-dds-bridge: %s: the end of the stream did not go out: %s\n",
                     topic.c_str(), dds_strretcode(rc));
      }
      continue;
    }
    auto* frame = std::get_if<Frame>(&**event);
    if (frame == nullptr) continue;  // reconnected to a restarted broker
    c.in.fetch_add(1, std::memory_order_relaxed);
    if (frame->dropped() > seen_dropped) {
      c.dropped.fetch_add(frame->dropped() - seen_dropped, std::memory_order_relaxed);
      seen_dropped = frame->dropped();
    }
    const auto extent = layout_extent(frame->layout());  // verified by the broker
    const auto bytes = frame->bytes();
    dds_return_t rc = 0;
    if (!ros2) {
      shmfd_bridge_Frame2 sample{};
      sample.origin = g_origin;
      sample.frame_sequence = frame->sequence();
      sample.timestamp_ns = frame->timestamp_ns();
      bridge::DdsLayout layout;
      bridge::to_dds(frame->layout(), layout);
      sample.layout = layout.layout;
      bridge::DdsMeta meta;
      bridge::to_dds(frame->meta(), meta);
      sample.meta = meta.meta;
      if (auto options = consumer->topic_options(topic)) bridge::to_dds(*options, sample.options);
      sample.data._buffer =
          const_cast<std::uint8_t*>(reinterpret_cast<const std::uint8_t*>(bytes.data()));
      sample.data._length = static_cast<uint32_t>(*extent);
      sample.data._maximum = sample.data._length;
      sample.data._release = false;
      rc = dds_write(writer, &sample);
    } else {
      const auto* image = std::get_if<ImageLayout>(&frame->layout());
      const auto encoding = image ? bridge::ros2_encoding(image->format) : std::nullopt;
      if (!encoding) {
        c.bad.fetch_add(1, std::memory_order_relaxed);  // NV12, I420, not an image
        continue;
      }
      const Plane& p = image->planes[0];
      sensor_msgs_msg_dds__Image_ msg{};
      const std::uint64_t wall = monotonic_to_realtime(frame->timestamp_ns());
      msg.header.stamp.sec = static_cast<int32_t>(wall / 1'000'000'000);
      msg.header.stamp.nanosec = static_cast<uint32_t>(wall % 1'000'000'000);
      std::string frame_id = topic;
      msg.header.frame_id = frame_id.data();
      std::string enc(*encoding);
      msg.encoding = enc.data();
      msg.width = image->width;
      msg.height = image->height;
      msg.is_bigendian = 0;
      msg.step = static_cast<uint32_t>(p.stride);
      const std::uint64_t need = p.stride * image->height;
      const auto* first = reinterpret_cast<const std::uint8_t*>(bytes.data()) + p.offset;
      if (p.offset + need <= bytes.size()) {
        msg.data._buffer = const_cast<std::uint8_t*>(first);
      } else {
        rows.assign(first, first + (*extent - p.offset));
        rows.resize(need);
        msg.data._buffer = rows.data();
      }
      msg.data._length = static_cast<uint32_t>(need);
      msg.data._maximum = msg.data._length;
      msg.data._release = false;
      rc = dds_write(writer, &msg);
    }
    if (rc < 0) {
      c.dropped.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    c.out.fetch_add(1, std::memory_order_relaxed);
    c.bytes.fetch_add(*extent, std::memory_order_relaxed);
  }
}

// --- Import: DDS -> local topic ---

struct LocalTopic {
  Producer producer;
  std::string topic;
  std::optional<LayoutKind> kind;
  TopicOptions options;  // what it was advertised with (the samples' options)
  std::uint32_t pool = 0;
  std::size_t slot_size = 0;
};

// Publishes `data` with `layout` (both checked) into `local`'s pool.
void end_stream(LocalTopic& local, const char* why);

Status publish_local(LocalTopic& local, const Settings& s, const Layout& layout,
                     std::span<const std::uint8_t> data, std::uint64_t timestamp_ns,
                     const TopicOptions& options, const FrameMeta& meta) {
  const LayoutKind kind = layout_kind(layout);
  // The far producer declared other options (it came back changed): a new stream here too.
  if (local.kind && !(local.options == options)) end_stream(local, "its topic options changed");
  if (!local.kind) {
    if (auto ok = local.producer.advertise(local.topic, kind, Guarantee::pool, options); !ok) {
      return ok;
    }
    local.kind = kind;
    local.options = options;
  } else if (*local.kind != kind) {
    return fail(Errc::invalid_argument, "a " + std::string(to_string(kind)) +
                                            " sample on a topic of " +
                                            std::string(to_string(*local.kind)) + " frames");
  }
  if (local.pool == 0 || local.slot_size < data.size()) {
    auto pool =
        local.producer.create_pool(local.topic, std::max<std::size_t>(data.size(), 1), s.slots);
    if (!pool) return fail(std::move(pool.error()));
    local.pool = *pool;
    local.slot_size = local.producer.slot_size(*pool);
  }
  // Block-producer: wait for a slot as long as it takes, but not past a stop.
  auto slot = local.producer.acquire(local.pool, Wait::fail_fast);
  while (s.block && !slot && slot.error().is(Errc::no_free_slot) && !g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    slot = local.producer.acquire(local.pool, Wait::fail_fast);
  }
  if (!slot) return fail(std::move(slot.error()));
  std::memcpy(slot->bytes.data(), data.data(), data.size());
  auto sent = local.producer.publish(local.topic, *slot, layout, meta, timestamp_ns);
  if (!sent) return fail(std::move(sent.error()));
  return {};
}

// The end of a stream, from DDS: the topic's one instance was disposed (its producer left the
// exporting broker) or has no writer left (every bridge exporting it stopped). The local topic
// is unadvertised, so its subscribers get EndOfStream; the next sample advertises it again.
void end_stream(LocalTopic& local, const char* why) {
  if (!local.kind) return;  // already ended, or never started here
  if (auto gone = local.producer.unadvertise(local.topic); !gone) {
    std::fprintf(stderr, "shmfd-dds-bridge: %s: ending the stream: %s\n", local.topic.c_str(),
                 gone.error().message().c_str());
  }
  local.kind.reset();
  local.pool = 0;
  local.slot_size = 0;
  std::fprintf(stderr, "shmfd-dds-bridge: %s: end of stream (%s)\n", local.topic.c_str(), why);
}

const char* ended_why(const dds_sample_info_t& info) {
  return info.instance_state == DDS_IST_NOT_ALIVE_DISPOSED ? "its producer left"
                                                           : "no bridge exports it any more";
}

void import_loop(const Settings& s, dds_entity_t participant, std::string topic, bool ros2,
                 Counters& c) {
  const Running running;
  const auto [dtopic, dds_name] = dds_topic(participant, topic, ros2);
  dds_qos_t* qos = make_qos(s, false);
  const dds_entity_t reader =
      dtopic < 0 ? dtopic : dds_create_reader(participant, dtopic, qos, nullptr);
  dds_delete_qos(qos);
  if (reader < 0) return give_up(dds_error("DDS reader of " + dds_name, reader));
  auto producer = Producer::connect(s.socket, s.name);
  if (!producer) return give_up(producer.error().message());
  producer->reconnect_on_loss();
  LocalTopic local{std::move(*producer), topic, std::nullopt, {}, 0, 0};
  std::optional<OlderBridgeWatch> older;
  if (!ros2) older.emplace(s, participant, topic, false);
  const dds_entity_t waitset = dds_create_waitset(participant);
  const dds_entity_t readable = dds_create_readcondition(reader, DDS_ANY_STATE);
  dds_waitset_attach(waitset, readable, reader);
  std::fprintf(stderr, "shmfd-dds-bridge: importing DDS topic '%s' into '%s'\n", dds_name.c_str(),
               topic.c_str());
  std::uint64_t refusals_said = 0;
  std::uint32_t generation_seen = 0;
  while (!g_stop) {
    dds_waitset_wait(waitset, nullptr, 0, DDS_MSECS(100));
    if (older) older->check();
    void* samples[16] = {};
    dds_sample_info_t infos[16];
    const dds_return_t n = dds_take(reader, samples, infos, 16, 16);  // loans
    for (dds_return_t i = 0; i < n; ++i) {
      // A stream that ended before this sample (its instance's generation moved on): the far
      // producer left and came back, or every exporter went and one returned.
      const std::uint32_t generation =
          infos[i].disposed_generation_count + infos[i].no_writers_generation_count;
      if (generation != generation_seen) end_stream(local, "ended before this sample");
      generation_seen = generation;
      if (!infos[i].valid_data) {
        if (infos[i].instance_state != DDS_IST_ALIVE) end_stream(local, ended_why(infos[i]));
        continue;
      }
      c.in.fetch_add(1, std::memory_order_relaxed);
      Result<Layout> layout = fail(Errc::invalid_argument, "");
      std::span<const std::uint8_t> data;
      std::uint64_t ts = 0;
      TopicOptions options;
      FrameMeta meta;
      if (!ros2) {
        const auto* f = static_cast<const shmfd_bridge_Frame2*>(samples[i]);
        if (f->origin == g_origin) continue;  // our own, come back
        data = {f->data._buffer, f->data._length};
        layout = bridge::from_dds(f->layout, f->data._length);
        ts = f->timestamp_ns;
        // The metadata is checked as the broker will check it, against what the sample says
        // of its topic, so that a lying sample is counted as bad here, not as a local refusal.
        if (layout) {
          auto o = bridge::from_dds(f->options);
          auto m = o ? bridge::from_dds(f->meta, *o, *layout) : fail(Error(o.error()));
          if (!m) {
            layout = fail(std::move(m.error()));
          } else {
            options = std::move(*o);
            meta = *m;
          }
        }
      } else {
        const auto* img = static_cast<const sensor_msgs_msg_dds__Image_*>(samples[i]);
        data = {img->data._buffer, img->data._length};
        auto l = bridge::from_ros2(*img);
        layout = l ? Result<Layout>(Layout{*l}) : fail(std::move(l.error()));
      }
      if (!layout) {
        // Counted and dropped, never trusted; said the first few times.
        c.bad.fetch_add(1, std::memory_order_relaxed);
        if (refusals_said++ < 5) {
          std::fprintf(stderr, "shmfd-dds-bridge: %s: dropped a sample: %s\n", dds_name.c_str(),
                       layout.error().message().c_str());
        }
        continue;
      }
      if (auto ok = publish_local(local, s, *layout, data, ts, options, meta); !ok) {
        c.dropped.fetch_add(1, std::memory_order_relaxed);
        if (!ok.error().is(Errc::no_free_slot) && refusals_said++ < 5) {
          std::fprintf(stderr, "shmfd-dds-bridge: %s: %s\n", topic.c_str(),
                       ok.error().message().c_str());
        }
        continue;
      }
      c.out.fetch_add(1, std::memory_order_relaxed);
      c.bytes.fetch_add(data.size(), std::memory_order_relaxed);
    }
    // Its state when taken: the stream ended after the last of these samples.
    if (n > 0 && infos[n - 1].instance_state != DDS_IST_ALIVE) {
      end_stream(local, ended_why(infos[n - 1]));
    }
    if (n > 0) dds_return_loan(reader, samples, n);
  }
}

void print_stats(const char* when, const Counters& c, double seconds, std::uint64_t bytes_before) {
  std::fprintf(
      stderr,
      "shmfd-dds-bridge: %s: %llu samples in, %llu out, %llu dropped, %llu bad; "
      "%.1f MB/s\n",
      when, static_cast<unsigned long long>(c.in.load()),
      static_cast<unsigned long long>(c.out.load()),
      static_cast<unsigned long long>(c.dropped.load()),
      static_cast<unsigned long long>(c.bad.load()),
      seconds > 0 ? static_cast<double>(c.bytes.load() - bytes_before) / seconds / 1e6 : 0);
}

}  // namespace

int main(int argc, char** argv) {
  const Settings s = parse(argc, argv);
  std::random_device rd;
  g_origin =
      (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ static_cast<std::uint64_t>(::getpid());
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = true; };
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);

  const dds_entity_t participant = dds_create_participant(s.domain, nullptr, nullptr);
  if (participant < 0) {
    std::fprintf(stderr, "shmfd-dds-bridge: %s\n",
                 dds_error("DDS participant (is CYCLONEDDS_URI right?)", participant).c_str());
    return 1;
  }
  Counters counters;
  std::vector<std::thread> threads;
  for (const auto& t : s.exports)
    threads.emplace_back(export_loop, std::cref(s), participant, t, false, std::ref(counters));
  for (const auto& t : s.exports_ros2)
    threads.emplace_back(export_loop, std::cref(s), participant, t, true, std::ref(counters));
  for (const auto& t : s.imports)
    threads.emplace_back(import_loop, std::cref(s), participant, t, false, std::ref(counters));
  for (const auto& t : s.imports_ros2)
    threads.emplace_back(import_loop, std::cref(s), participant, t, true, std::ref(counters));
  std::fprintf(stderr, "shmfd-dds-bridge: running on DDS domain %u, broker %s\n", s.domain,
               s.socket.c_str());
  const auto start = Clock::now();
  auto last = start;
  std::uint64_t bytes_before = 0;
  while (!g_stop) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto now = Clock::now();
    if (s.stats != 0 && now - last >= std::chrono::seconds(s.stats)) {
      print_stats("stats", counters, std::chrono::duration<double>(now - last).count(),
                  bytes_before);
      bytes_before = counters.bytes.load();
      last = now;
    }
  }
  // Each thread looks at g_stop at least every 100 ms, except inside a publish that waits for a
  // block-producer consumer: after a second, the summary is printed and the process exits
  // anyway (the broker takes back whatever its connections held).
  const auto deadline = Clock::now() + std::chrono::seconds(1);
  while (g_running.load() > 0 && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  print_stats("total", counters, std::chrono::duration<double>(Clock::now() - start).count(), 0);
  std::fflush(stderr);
  if (g_running.load() > 0) ::_exit(0);
  for (auto& t : threads) t.join();
  dds_delete(participant);
  return 0;
}
