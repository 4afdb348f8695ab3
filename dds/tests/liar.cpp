// shmfd-dds-liar: a DDS writer built from shmfd's own IDL whose samples lie, for the bridge's
// tests. On DDS topic shmfd2/TOPIC it writes, ROUNDS times over, one sample of each lie (an
// image layout far larger than its bytes, planes past the end, an unknown pixel format, too
// many tensor dimensions, an overflowing stride, flags no shmfd knows, a header longer than its
// topic allows, a crop outside the image), then one honest 64-byte blob, and exits.
//   shmfd-dds-liar DOMAIN TOPIC ROUNDS
// With --old it plays a bridge older than shmfd 0.4 instead: a writer of shmfd::bridge::Frame on
// shmfd/TOPIC, which waits until a reader matches and then for 2 seconds, and exits.
//   shmfd-dds-liar --old DOMAIN TOPIC
#include <dds/dds.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "shmfd_frame.h"

namespace {

shmfd_bridge_Frame2 sample(std::vector<std::uint8_t>& bytes) {
  shmfd_bridge_Frame2 f{};
  f.origin = 42;
  f.data._buffer = bytes.data();
  f.data._length = static_cast<uint32_t>(bytes.size());
  f.data._maximum = f.data._length;
  f.data._release = false;
  return f;
}

}  // namespace

// Waits until `writer` has matched a reader, for up to 5 s.
void wait_for_match(dds_entity_t writer) {
  for (int i = 0; i < 200; ++i) {
    dds_publication_matched_status_t m{};
    dds_get_publication_matched_status(writer, &m);
    if (m.current_count > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
}

int old_bridge(dds_domainid_t domain, const std::string& topic) {
  const dds_entity_t participant = dds_create_participant(domain, nullptr, nullptr);
  const std::string name = "shmfd/" + topic;
  const dds_entity_t t =
      dds_create_topic(participant, &shmfd_bridge_Frame_desc, name.c_str(), nullptr, nullptr);
  dds_qos_t* qos = dds_create_qos();
  dds_qset_reliability(qos, DDS_RELIABILITY_BEST_EFFORT, 0);  // an old exporter's default
  const dds_entity_t writer = dds_create_writer(participant, t, qos, nullptr);
  dds_delete_qos(qos);
  if (participant < 0 || t < 0 || writer < 0) {
    std::fprintf(stderr, "shmfd-dds-liar: cannot create the DDS writer\n");
    return 1;
  }
  wait_for_match(writer);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  dds_delete(participant);
  std::printf("shmfd-dds-liar: was an old bridge on %s\n", name.c_str());
  return 0;
}

int main(int argc, char** argv) {
  if (argc == 4 && std::string(argv[1]) == "--old") {
    return old_bridge(static_cast<dds_domainid_t>(std::strtoul(argv[2], nullptr, 10)), argv[3]);
  }
  if (argc != 4) {
    std::fprintf(stderr,
                 "usage: shmfd-dds-liar DOMAIN TOPIC ROUNDS\n       shmfd-dds-liar --old DOMAIN "
                 "TOPIC\n");
    return 2;
  }
  const auto domain = static_cast<dds_domainid_t>(std::strtoul(argv[1], nullptr, 10));
  const std::string name = std::string("shmfd2/") + argv[2];
  const int rounds = std::atoi(argv[3]);
  const dds_entity_t participant = dds_create_participant(domain, nullptr, nullptr);
  const dds_entity_t topic =
      dds_create_topic(participant, &shmfd_bridge_Frame2_desc, name.c_str(), nullptr, nullptr);
  dds_qos_t* qos = dds_create_qos();
  dds_qset_reliability(qos, DDS_RELIABILITY_RELIABLE, DDS_SECS(10));
  dds_qset_history(qos, DDS_HISTORY_KEEP_ALL, 0);
  const dds_entity_t writer = dds_create_writer(participant, topic, qos, nullptr);
  dds_delete_qos(qos);
  if (participant < 0 || topic < 0 || writer < 0) {
    std::fprintf(stderr, "shmfd-dds-liar: cannot create the DDS writer\n");
    return 1;
  }
  // Until the bridge's reader has matched.
  for (int i = 0; i < 200; ++i) {
    dds_publication_matched_status_t m{};
    dds_get_publication_matched_status(writer, &m);
    if (m.current_count > 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  std::vector<std::uint8_t> small(100, 7), honest(64, 9);
  shmfd_bridge_Plane planes[4] = {};
  std::uint64_t shape[8] = {}, strides[8] = {};
  const auto point = [&](shmfd_bridge_Frame2& f) {
    f.layout.planes._buffer = planes;
    f.layout.planes._maximum = 4;
    f.layout.shape._buffer = shape;
    f.layout.shape._maximum = 8;
    f.layout.strides._buffer = strides;
    f.layout.strides._maximum = 8;
  };
  std::uint64_t seq = 0;
  for (int r = 0; r < rounds; ++r) {
    shmfd_bridge_Frame2 f = sample(small);
    point(f);
    // An RGBA 640x480 image in 100 bytes.
    f.frame_sequence = ++seq;
    f.layout.kind = shmfd_bridge_IMAGE;
    f.layout.pixel_format = 0;
    f.layout.width = 640;
    f.layout.height = 480;
    f.layout.planes._length = 1;
    f.layout.planes._buffer[0] = {0, 640 * 4, 640 * 4 * 480};
    dds_write(writer, &f);
    // A blob that starts inside and ends past the bytes.
    f = sample(small);
    point(f);
    f.frame_sequence = ++seq;
    f.layout.kind = shmfd_bridge_BLOB;
    f.layout.offset = 50;
    f.layout.size = 51;
    dds_write(writer, &f);
    // A pixel format no shmfd knows.
    f = sample(small);
    point(f);
    f.frame_sequence = ++seq;
    f.layout.kind = shmfd_bridge_IMAGE;
    f.layout.pixel_format = 200;
    f.layout.width = 1;
    f.layout.height = 1;
    dds_write(writer, &f);
    // A stride that overflows 64 bits with the rows.
    f = sample(small);
    point(f);
    f.frame_sequence = ++seq;
    f.layout.kind = shmfd_bridge_IMAGE;
    f.layout.pixel_format = 6;  // gray8
    f.layout.width = 4;
    f.layout.height = 3;
    f.layout.planes._length = 1;
    f.layout.planes._buffer[0] = {0, 1ULL << 63, 4};
    dds_write(writer, &f);
    // Strides that do not match the shape's rank.
    f = sample(small);
    point(f);
    f.frame_sequence = ++seq;
    f.layout.kind = shmfd_bridge_TENSOR;
    f.layout.dtype = 0;
    f.layout.shape._length = 2;
    f.layout.shape._buffer[0] = 2;
    f.layout.shape._buffer[1] = 2;
    f.layout.strides._length = 1;
    f.layout.strides._buffer[0] = 2;
    dds_write(writer, &f);
    // Frame metadata (version 5) on an honest 64-byte blob. Flags no shmfd knows:
    f = sample(honest);
    point(f);
    f.frame_sequence = ++seq;
    f.layout.kind = shmfd_bridge_BLOB;
    f.layout.size = 64;
    f.meta.flags = 1U << 30;
    dds_write(writer, &f);
    // A header of 9 bytes on a topic that allows 8:
    f = sample(honest);
    point(f);
    f.frame_sequence = ++seq;
    f.layout.kind = shmfd_bridge_BLOB;
    f.layout.size = 64;
    f.options.max_header_bytes = 8;
    f.meta.header._buffer = honest.data();
    f.meta.header._length = 9;
    f.meta.header._maximum = 9;
    dds_write(writer, &f);
    // A crop outside a 4x4 gray8 image:
    shmfd_bridge_Crop crop{2, 0, 3, 1};
    f = sample(honest);
    point(f);
    f.frame_sequence = ++seq;
    f.layout.kind = shmfd_bridge_IMAGE;
    f.layout.pixel_format = 6;
    f.layout.width = 4;
    f.layout.height = 4;
    f.layout.planes._length = 1;
    f.layout.planes._buffer[0] = {0, 4, 16};
    f.meta.crop._buffer = &crop;
    f.meta.crop._length = 1;
    f.meta.crop._maximum = 1;
    dds_write(writer, &f);
  }
  shmfd_bridge_Frame2 ok = sample(honest);
  ok.frame_sequence = ++seq;
  ok.layout.kind = shmfd_bridge_BLOB;
  ok.layout.size = 64;
  dds_write(writer, &ok);
  // Until every sample is acknowledged (reliable), then go.
  dds_wait_for_acks(writer, DDS_SECS(5));
  dds_delete(participant);
  std::printf("shmfd-dds-liar: wrote %d lying samples and 1 honest one\n", rounds * 8);
  return 0;
}
