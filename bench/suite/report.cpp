// shmfd-bench-report: turns the rows written by the suite's programs into bench/results/:
//   results.md    the tables (median, p99, ratio to the named baseline and to iceoryx) and
//                 the targets, met or missed, with the figures
//   results.json  the same, machine-readable
//   chart.svg     S1 latency and S2 4K frame rate, drawn by gnuplot (from chart.gp, chart-*.dat)
//
//   shmfd-bench-report --out DIR --machine TEXT --command TEXT [--skipped NAME WHY]...
//                      FILE.json...
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace {

using nlohmann::json;

struct Row {
  std::string scenario, variant, name, metric, unit, p99_unit;
  double median = NAN, p99 = NAN;
  std::uint64_t samples = 0;
};

std::vector<Row> rows;
std::vector<std::pair<std::string, std::string>> skipped;  // name, why

std::optional<Row> find_row(const std::string& scenario, const std::string& variant,
                            const std::string& prefix) {
  for (const Row& r : rows) {
    if (r.scenario == scenario && r.variant == variant && r.name.rfind(prefix, 0) == 0) return r;
  }
  return std::nullopt;
}

std::string fmt(double v, int digits = 2) {
  if (std::isnan(v)) return "";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}
std::string ratio(double v) {
  if (std::isnan(v) || std::isinf(v)) return "";
  return fmt(v, v >= 10 ? 1 : 2) + "×";
}

// The baseline a row is compared with in its scenario.
std::optional<Row> baseline(const Row& r) {
  if (r.scenario == "S1") return find_row("S1", r.variant, "direct SEQPACKET hop");
  if (r.scenario == "S2") return find_row("S2", r.variant, "Unix stream socket copy");
  if (r.scenario == "S4") return find_row("S4", r.variant, "direct SEQPACKET stream");
  if (r.scenario == "S5" && r.variant == "broker") {
    return find_row("S5", "broker", "shmfd broker RSS, idle");
  }
  if (r.scenario == "S5") return find_row("S5", r.variant, "Unix socket copy");
  if (r.scenario == "S3") return find_row("S3", "1 consumers", r.name);
  if (r.scenario == "S6") return find_row("S6", r.variant, "C++ consumer");
  if (r.scenario == "S7") {  // "METRIC: shmfdsink → shmfdsrc" against "METRIC: shmsink → shmsrc"
    return find_row("S7", r.variant, r.name.substr(0, r.name.find(": ") + 2) + "shmsink");
  }
  return std::nullopt;
}

// iceoryx runs on 4 KiB pages: a shmfd row on huge pages gets no "vs iceoryx".
std::optional<Row> iceoryx(const Row& r) {
  if (r.name.rfind("shmfd", 0) != 0 || r.name.find("huge pages") != std::string::npos) {
    return std::nullopt;
  }
  // Rows of several consumer counts in one variant pair up by the count they name.
  const bool four = r.name.find("4 consumers") != std::string::npos;
  for (const Row& other : rows) {
    if (other.scenario == r.scenario && other.variant == r.variant &&
        other.name.rfind("iceoryx", 0) == 0 &&
        (other.name.find("4 consumers") != std::string::npos) == four) {
      return other;
    }
  }
  return std::nullopt;
}

const std::map<std::string, std::string> kTitles{
    {"S1", "S1: small-message latency (64 B ping-pong, half the round trip)"},
    {"S2", "S2: 4K video (3840×2160 RGBA, 33 MB a frame) at saturation"},
    {"S3",
     "S3: fan-out of 4K pool frames (paced at 100 fps; each consumer receives, reads one byte, "
     "releases)"},
    {"S4", "S4: streaming 1 KiB frames, no ping-pong"},
    {"S5", "S5: memory"},
    {"S6",
     "S6: a Python consumer's time per frame against a C++ consumer's (4K pool frames, "
     "channels)"},
    {"S7",
     "S7: GStreamer pipelines, videotestsrc ! shmfdsink → shmfdsrc ! fakesink against "
     "videotestsrc ! shmsink → shmsrc ! fakesink (RGBA, at saturation)"},
    {"S8",
     "S8: request/response round trip, one call at a time (each side writes a 64-byte header of "
     "its frame and reads the other's)"},
};

struct Target {
  std::string what;
  std::string measured;
  bool met = false;
};

std::vector<Target> evaluate() {
  std::vector<Target> out;
  for (const char* variant : {"unpinned", "pinned to one CPU", "ping and pong on two CPUs"}) {
    auto direct = find_row("S1", variant, "direct SEQPACKET hop");
    for (const char* path : {"shmfd broker, pool", "shmfd broker, sealed"}) {
      auto broker = find_row("S1", variant, path);
      if (!direct || !broker) continue;
      const double r = broker->median / direct->median;
      out.push_back(
          {std::string("S1 ") + path + " latency ≤ 2.5× the direct fd hop (" + variant + ")",
           fmt(broker->median) + " µs vs " + fmt(direct->median) + " µs: " + ratio(r), r <= 2.5});
    }
  }
  for (const auto& [variant, want] :
       {std::pair{"touch one byte per page", 20.0}, std::pair{"read every byte", 3.0}}) {
    auto copy = find_row("S2", variant, "Unix stream socket copy");
    auto gst = find_row("S2", variant, "GStreamer");
    for (const auto& [prefix, label] :
         {std::pair{"shmfd pool (4 slots) via", "pool"},
          std::pair{"shmfd pool (4 slots, 2 MiB huge pages)", "pool on huge pages"}}) {
      auto pool = find_row("S2", variant, prefix);
      if (pool && copy) {
        const double r = pool->median / copy->median;
        out.push_back({std::string("S2 ") + label + " ≥ " + fmt(want, 0) + "× the socket copy (" +
                           variant + ")",
                       fmt(pool->median, 1) + " vs " + fmt(copy->median, 1) + " fps: " + ratio(r),
                       r >= want});
      }
      if (pool && gst) {
        const double r = pool->median / gst->median;
        out.push_back({std::string("S2 ") + label + " ≥ 2× GStreamer shm (" + variant + ")",
                       fmt(pool->median, 1) + " vs " + fmt(gst->median, 1) + " fps: " + ratio(r),
                       r >= 2.0});
      }
    }
  }
  // Services: a call's round trip through the broker against iceoryx's Client/Server.
  for (const char* variant : {"64 B each way, unpinned", "64 B each way, pinned to one CPU",
                              "64 B each way, caller and server on two CPUs"}) {
    auto call = find_row("S8", variant, "shmfd call via broker (pool slots)");
    auto iox = find_row("S8", variant, "iceoryx");
    if (call && iox) {
      const double r = call->median / iox->median;
      out.push_back(
          {std::string("S8 64 B call round trip in pool slots ≤ 1.0× iceoryx (") + variant + ")",
           fmt(call->median) + " µs vs " + fmt(iox->median) + " µs: " + ratio(r), r <= 1.0});
    }
  }
  // Channels (issue: frames on shared rings): the pool path once the broker has set a channel
  // up, against iceoryx and against the direct hop or stream, in the same run.
  for (const char* variant : {"unpinned", "pinned to one CPU"}) {
    auto channel = find_row("S1", variant, "shmfd channel");
    auto iox = find_row("S1", variant, "iceoryx");
    if (channel && iox) {
      const double r = channel->median / iox->median;
      out.push_back({std::string("S1 channel latency ≤ 1.0× iceoryx (") + variant + ")",
                     fmt(channel->median) + " µs vs " + fmt(iox->median) + " µs: " + ratio(r),
                     r <= 1.0});
    }
  }
  if (auto channel =
          find_row("S2", "touch one byte per page", "shmfd pool (4 slots) via channel")) {
    if (auto iox = find_row("S2", "touch one byte per page", "iceoryx")) {
      const double r = channel->median / iox->median;
      out.push_back({"S2 channel, touching one byte per page, ≥ 0.9× iceoryx",
                     fmt(channel->median, 0) + " vs " + fmt(iox->median, 0) + " fps: " + ratio(r),
                     r >= 0.9});
    }
  }
  if (auto channel = find_row("S3", "4 consumers", "shmfd pool via channels")) {
    if (auto iox = find_row("S3", "4 consumers", "iceoryx")) {
      const double r = channel->median / iox->median;
      out.push_back({"S3 channels, fan-out to 4 paced, ≤ 1.0× iceoryx",
                     fmt(channel->median, 0) + " µs vs " + fmt(iox->median, 0) + " µs: " + ratio(r),
                     r <= 1.0});
    }
  }
  // The same through the client library (Producer, Consumer) on the channels the broker set up:
  // what programs get.
  for (const char* variant : {"unpinned", "pinned to one CPU"}) {
    auto library = find_row("S1", variant, "shmfd library");
    auto iox = find_row("S1", variant, "iceoryx");
    if (library && iox) {
      const double r = library->median / iox->median;
      out.push_back({std::string("S1 library on a channel ≤ 1.0× iceoryx (") + variant + ")",
                     fmt(library->median) + " µs vs " + fmt(iox->median) + " µs: " + ratio(r),
                     r <= 1.0});
    }
  }
  if (auto library = find_row("S3", "4 consumers", "shmfd library")) {
    if (auto iox = find_row("S3", "4 consumers", "iceoryx")) {
      const double r = library->median / iox->median;
      out.push_back({"S3 library on channels, fan-out to 4 paced, ≤ 1.0× iceoryx",
                     fmt(library->median, 0) + " µs vs " + fmt(iox->median, 0) + " µs: " + ratio(r),
                     r <= 1.0});
    }
  }
  if (auto library = find_row("S4", "1 KiB frames", "shmfd library")) {
    for (const char* peer : {"iceoryx", "direct SEQPACKET stream"}) {
      if (auto other = find_row("S4", "1 KiB frames", peer)) {
        const double r = library->median / other->median;
        out.push_back(
            {std::string("S4 library on a channel ≥ 2× ") + peer,
             fmt(library->median, 0) + " vs " + fmt(other->median, 0) + " fps: " + ratio(r),
             r >= 2.0});
      }
    }
  }
  if (auto library = find_row("S4", "1 KiB frames to 4 consumers", "shmfd library")) {
    if (auto iox = find_row("S4", "1 KiB frames to 4 consumers", "iceoryx")) {
      const double r = library->median / iox->median;
      out.push_back({"S4 library on channels, streaming to 4 consumers, ≥ 1× iceoryx",
                     fmt(library->median, 0) + " vs " + fmt(iox->median, 0) + " fps: " + ratio(r),
                     r >= 1.0});
    }
  }
  // Metadata on every frame (pts, duration, flags, a 64-byte header) against none, same run.
  for (const char* path : {"shmfd pool via broker", "shmfd library, pool on a channel"}) {
    auto plain = find_row("S4", "1 KiB frames", path);
    auto meta = find_row("S4", "1 KiB frames, each with pts, duration, flags, 64-B header", path);
    if (plain && meta) {
      const double r = meta->median / plain->median;
      out.push_back({std::string("S4 with metadata on every frame ≥ 0.9× without (") + path + ")",
                     fmt(meta->median, 0) + " vs " + fmt(plain->median, 0) + " fps: " + ratio(r),
                     r >= 0.9});
    }
  }
  for (const char* path : {"shmfd library, pool on a channel", "shmfd library, pool on channels"}) {
    if (auto calls = find_row("S4", "system calls per 1 KiB frame", path)) {
      out.push_back({std::string("S4 system calls per streamed frame < 0.1, all processes (") +
                         calls->name + ")",
                     fmt(calls->median, 3) + " per frame", calls->median < 0.1});
    }
  }
  if (auto channel = find_row("S4", "1 KiB frames", "shmfd pool via channel")) {
    for (const char* peer : {"iceoryx", "direct SEQPACKET stream"}) {
      if (auto other = find_row("S4", "1 KiB frames", peer)) {
        const double r = channel->median / other->median;
        out.push_back(
            {std::string("S4 channel ≥ 2× ") + peer,
             fmt(channel->median, 0) + " vs " + fmt(other->median, 0) + " fps: " + ratio(r),
             r >= 2.0});
      }
    }
  }
  // The cost of each extra consumer: the least-squares slope of the time until all have the
  // frame against the number of consumers (every point counts, not just the ends).
  std::vector<std::pair<double, double>> points;
  std::string series;
  for (int n : {1, 2, 4, 8, 16}) {
    if (auto r = find_row("S3", std::to_string(n) + " consumers", "shmfd pool via broker")) {
      points.emplace_back(n, r->median);
      series += (series.empty() ? "" : ", ") + std::to_string(n) + ": " + fmt(r->median, 0);
    }
  }
  // Deliveries to 16 consumers on 2 CPUs cross CPUs: the baseline is a direct hop across CPUs
  // (the unpinned hop is either that or a same-CPU hop, as the scheduler places the two ends).
  auto hop = find_row("S1", "ping and pong on two CPUs", "direct SEQPACKET hop");
  auto unpinned = find_row("S1", "unpinned", "direct SEQPACKET hop");
  if (points.size() >= 2 && hop) {
    double mx = 0, my = 0;
    for (auto [x, y] : points) {
      mx += x;
      my += y;
    }
    mx /= static_cast<double>(points.size());
    my /= static_cast<double>(points.size());
    double sxy = 0, sxx = 0;
    for (auto [x, y] : points) {
      sxy += (x - mx) * (y - my);
      sxx += (x - mx) * (x - mx);
    }
    const double per_consumer = sxy / sxx;
    const double r = per_consumer / hop->median;
    out.push_back({"S3 each extra consumer adds ≤ 1.5× one direct hop (across CPUs)",
                   fmt(per_consumer) + " µs per consumer (least squares over " + series +
                       " µs) vs a hop across CPUs of " + fmt(hop->median) + " µs: " + ratio(r) +
                       (unpinned ? " (the unpinned hop was " + fmt(unpinned->median) + " µs)" : ""),
                   r <= 1.5});
  }
  return out;
}

void write_chart(const std::string& dir) {
  // S1: one row per transport, columns unpinned and pinned.
  std::ofstream s1(dir + "/chart-s1.dat");
  std::set<std::string> names;
  for (const Row& r : rows) {
    if (r.scenario == "S1") names.insert(r.name);
  }
  for (const std::string& n : names) {
    auto u = find_row("S1", "unpinned", n);
    auto p = find_row("S1", "pinned to one CPU", n);
    auto two = find_row("S1", "ping and pong on two CPUs", n);
    s1 << '"' << n << "\" " << (u ? u->median : NAN) << " " << (p ? p->median : NAN) << " "
       << (two ? two->median : NAN) << "\n";
  }
  std::ofstream s2(dir + "/chart-s2.dat");
  names.clear();
  for (const Row& r : rows) {
    if (r.scenario == "S2") names.insert(r.name);
  }
  for (const std::string& n : names) {
    auto t = find_row("S2", "touch one byte per page", n);
    auto rd = find_row("S2", "read every byte", n);
    s2 << '"' << n << "\" " << (t ? t->median : NAN) << " " << (rd ? rd->median : NAN) << "\n";
  }
  std::ofstream gp(dir + "/chart.gp");
  gp << R"GP(set terminal svg size 1100,900 dynamic font "sans,11"
set output "chart.svg"
set multiplot layout 2,1
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set grid ytics
set key outside right top vertical
set xtics rotate by -20 noenhance
set datafile missing "nan"
set title "S1: 64 B ping-pong, half round trip (µs, lower is better)"
set ylabel "µs"
plot "chart-s1.dat" using 2:xtic(1) title "unpinned", "" using 3 title "pinned to one CPU", \
     "" using 4 title "ping and pong on two CPUs"
set title "S2: 3840x2160 RGBA frames per second (log scale, higher is better)"
set ylabel "frames/s"
set logscale y
plot "chart-s2.dat" using 2:xtic(1) title "touch one byte per page", "" using 3 title "read every byte"
unset multiplot
)GP";
}

}  // namespace

int main(int argc, char** argv) {
  std::string out = "bench/results", machine, command;
  std::vector<std::string> inputs;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--out" && i + 1 < argc) {
      out = argv[++i];
    } else if (a == "--machine" && i + 1 < argc) {
      machine = argv[++i];
    } else if (a == "--command" && i + 1 < argc) {
      command = argv[++i];
    } else if (a == "--skipped" && i + 2 < argc) {  // a peer that could not run, and why
      skipped.emplace_back(argv[i + 1], argv[i + 2]);
      i += 2;
    } else if (a.rfind("--", 0) == 0) {
      std::fprintf(stderr, "usage: shmfd-bench-report --out DIR --machine TEXT FILE.json...\n");
      return 2;
    } else {
      inputs.push_back(a);
    }
  }
  json all_rows = json::array();
  for (const std::string& path : inputs) {
    std::ifstream in(path);
    json j;
    try {
      in >> j;
    } catch (const std::exception& e) {
      std::fprintf(stderr, "shmfd-bench-report: %s: %s\n", path.c_str(), e.what());
      return 1;
    }
    for (const json& r : j) {
      all_rows.push_back(r);
      if (r.contains("skipped")) {
        skipped.emplace_back(r.value("name", ""), r.value("skipped", ""));
        continue;
      }
      Row row;
      row.scenario = r.value("scenario", "");
      row.variant = r.value("variant", "");
      row.name = r.value("name", "");
      row.metric = r.value("metric", "");
      row.unit = r.value("unit", "");
      row.median = r.value("median", NAN);
      row.p99 = r.contains("p99") ? r["p99"].get<double>() : NAN;
      row.p99_unit = r.value("p99_unit", "");
      row.samples = r.value("samples", std::uint64_t{0});
      rows.push_back(row);
    }
  }

  // Each scenario's variants in the order they first appear (shmfd's own file comes first).
  std::vector<std::string> order;
  for (const Row& r : rows) {
    if (std::find(order.begin(), order.end(), r.variant) == order.end()) order.push_back(r.variant);
  }
  std::stable_sort(rows.begin(), rows.end(), [&](const Row& a, const Row& b) {
    return std::find(order.begin(), order.end(), a.variant) <
           std::find(order.begin(), order.end(), b.variant);
  });
  const auto targets = evaluate();
  std::ostringstream md;
  md << "# shmfd benchmark results\n\n";
  md << "Machine: " << machine << "\n\n";
  md << "Reproduce: `" << command << "`\n\n";
  md << "Medians (and p99) of the runs in one session, all transports measured side by side. "
        "Ratios compare with the baseline named in each table, measured in the same run; "
        "\"vs iceoryx\" is shmfd's figure over iceoryx's in the same scenario (for frame rates "
        "above 1 is faster; for latency, CPU and memory below 1 is better).\n\n";
  for (const auto& [scenario, title] : kTitles) {
    bool any = false;
    for (const Row& r : rows) any |= r.scenario == scenario;
    if (!any) continue;
    md << "## " << title << "\n\n";
    md << "| variant | transport | median | p99 | vs baseline | vs iceoryx |\n";
    md << "| --- | --- | ---: | ---: | ---: | ---: |\n";
    for (const Row& r : rows) {
      if (r.scenario != scenario) continue;
      auto base = baseline(r);
      auto iox = iceoryx(r);
      std::string vs_base, vs_iox;
      if (base && base->name != r.name) {
        vs_base = ratio(r.median / base->median) + " " +
                  (base->name.rfind("direct", 0) == 0 ? "direct"
                   : r.scenario == "S7"               ? "shmsink"
                                                      : base->name.substr(0, 24));
      } else if (base && base->variant != r.variant) {
        vs_base = ratio(r.median / base->median) + " 1 consumer";
      }
      if (iox) vs_iox = ratio(r.median / iox->median);
      const int digits = r.unit == "fps" && r.median > 1000 ? 0 : (r.unit == "fps" ? 1 : 2);
      md << "| " << r.variant << " | " << r.name << " | " << fmt(r.median, digits) << " " << r.unit
         << " | " << (std::isnan(r.p99) ? "" : fmt(r.p99) + " " + r.p99_unit) << " | " << vs_base
         << " | " << vs_iox << " |\n";
    }
    md << "\n";
  }
  if (!skipped.empty()) {
    md << "## Not measured\n\n";
    for (const auto& [name, why] : skipped) md << "- " << name << ": " << why << "\n";
    md << "\n";
  }
  md << "## Targets\n\n| target | measured | |\n| --- | --- | --- |\n";
  json targets_json = json::array();
  for (const Target& t : targets) {
    md << "| " << t.what << " | " << t.measured << " | " << (t.met ? "met" : "**missed**")
       << " |\n";
    targets_json.push_back({{"target", t.what}, {"measured", t.measured}, {"met", t.met}});
  }
  md << "\n![S1 latency and S2 frame rates](chart.svg)\n";

  std::ofstream(out + "/results.md") << md.str();
  std::ofstream(out + "/results.json") << json{{"machine", machine},
                                               {"command", command},
                                               {"rows", all_rows},
                                               {"targets", targets_json}}
                                              .dump(1)
                                       << "\n";
  write_chart(out);
  std::fputs(md.str().c_str(), stdout);
  return 0;
}
