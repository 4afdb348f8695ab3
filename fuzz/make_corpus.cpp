// Writes the seed corpus of the fuzz targets (fuzz/corpus/, kept in the repository): one valid
// message of each kind the broker reads, the hostile messages of the tests, and datagram
// streams that advertise, publish with an fd, subscribe and register a pool.
//   shmfd-fuzz-corpus DIR    writes DIR/decode/, DIR/broker/, DIR/layout/ and DIR/channel/
#include <sys/stat.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "shmfd/protocol.hpp"
#include "shmfd/wire/wire.hpp"
#include "support/hostile_messages.hpp"

namespace {

using namespace shmfd;
using Bytes = std::vector<std::byte>;

void write(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
  if (!out) {
    std::fprintf(stderr, "cannot write %s\n", path.c_str());
    std::exit(1);
  }
}

template <typename Fill>
Bytes message(Fill fill) {
  capnp::MallocMessageBuilder m;
  fill(m.initRoot<proto::Message>());
  return testing::to_bytes(encode_message(m));
}

Bytes hello() {
  return message([](proto::Message::Builder m) {
    auto h = m.initHello();
    h.setVersion(kProtocolVersion);
    h.setClientName("seed");
  });
}
Bytes advertise(const char* topic, proto::LayoutKind kind, proto::Guarantee level) {
  return message([&](proto::Message::Builder m) {
    auto a = m.initAdvertise();
    a.setTopic(topic);
    a.setKind(kind);
    a.setGuarantee(level);
  });
}
Bytes subscribe(const char* topic, std::uint32_t depth, proto::Backpressure policy) {
  return message([&](proto::Message::Builder m) {
    auto s = m.initSubscribe();
    s.setTopic(topic);
    s.setQueueDepth(depth);
    s.setBackpressure(policy);
  });
}
Bytes publish(const char* topic, const Layout& layout, std::uint32_t pool = 0,
              std::uint32_t slot = 0) {
  return message([&](proto::Message::Builder m) {
    auto p = m.initPublish();
    p.setTopic(topic);
    auto f = p.initFrame();
    f.setSequence(1);
    f.setPool(pool);
    f.setSlot(slot);
    layout_to_proto(layout, f.initLayout());
  });
}
Bytes release(const char* topic, std::uint64_t sequence) {
  return message([&](proto::Message::Builder m) {
    auto r = m.initRelease();
    r.setTopic(topic);
    r.setSequence(sequence);
  });
}
Bytes register_pool(const char* topic, std::uint32_t slots, std::uint64_t slot_size) {
  return message([&](proto::Message::Builder m) {
    auto r = m.initRegisterPool();
    r.setTopic(topic);
    r.setSlotCount(slots);
    r.setSlotSize(slot_size);
  });
}
// Services (version 6).
Bytes offer(const char* service) {
  return message([&](proto::Message::Builder m) {
    auto o = m.initOffer();
    o.setService(service);
    o.setMaxInFlight(2);
  });
}
Bytes withdraw(const char* service) {
  return message([&](proto::Message::Builder m) { m.initWithdraw().setService(service); });
}
// A frame in slot `slot` of pool `pool` when `pool` is not 0 (version 6: a pool for calls).
Bytes call(const char* service, std::uint64_t id, const Layout* layout, std::uint32_t pool = 0,
           std::uint32_t slot = 0) {
  return message([&](proto::Message::Builder m) {
    auto c = m.initCall();
    c.setService(service);
    c.setCall(id);
    c.setDeadlineMs(1000);
    c.setWhenBusy(proto::WhenBusy::WAIT);
    if (layout != nullptr) {
      c.setHasFrame(true);
      auto f = c.initFrame();
      layout_to_proto(*layout, f.initLayout());
      f.setPool(pool);
      f.setSlot(slot);
    }
  });
}
Bytes respond(std::uint64_t id, bool last, const Layout* layout, std::uint32_t pool = 0,
              std::uint32_t slot = 0) {
  return message([&](proto::Message::Builder m) {
    auto r = m.initRespond();
    r.setCall(id);
    r.setLast(last);
    if (layout != nullptr) {
      r.setHasFrame(true);
      auto f = r.initFrame();
      layout_to_proto(*layout, f.initLayout());
      f.setPool(pool);
      f.setSlot(slot);
    }
  });
}
Bytes cancel_call(std::uint64_t id) {
  return message([&](proto::Message::Builder m) { m.initCancelCall().setCall(id); });
}
Bytes introspect() {
  return message([](proto::Message::Builder m) { m.initIntrospect(); });
}

// One record of the broker target's input: fds kind, memfd pages, length, datagram.
void record(Bytes& out, std::uint8_t fds, std::uint8_t pages, const Bytes& datagram) {
  out.push_back(std::byte{fds});
  out.push_back(std::byte{pages});
  out.push_back(static_cast<std::byte>(datagram.size() & 0xff));
  out.push_back(static_cast<std::byte>(datagram.size() >> 8));
  out.insert(out.end(), datagram.begin(), datagram.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  for (const char* sub : {"", "/decode", "/broker", "/layout", "/channel"})
    ::mkdir((dir + sub).c_str(), 0755);

  const std::vector<std::uint64_t> shape{2, 3, 4};
  const Layout image = *image_layout(PixelFormat::nv12, 64, 32, 16);
  const Layout audio = *audio_layout(SampleFormat::f32, 48000, 2, 256, true);
  const Layout tensor = *tensor_layout(DType::f16, shape);
  const std::vector<std::pair<std::string, Bytes>> decode{
      {"hello", hello()},
      {"advertise", advertise("cam", proto::LayoutKind::IMAGE, proto::Guarantee::SEALED)},
      {"subscribe", subscribe("cam", 4, proto::Backpressure::BLOCK_PRODUCER)},
      {"publish-blob", publish("cam", blob_layout(4096))},
      {"publish-image", publish("cam", image)},
      {"publish-audio", publish("cam", audio)},
      {"publish-tensor", publish("cam", tensor)},
      {"publish-slot", publish("cam", blob_layout(64), 1, 3)},
      {"release", release("cam", 1)},
      {"register-pool", register_pool("cam", 4, 4096)},
      {"introspect", introspect()},
      {"offer", offer("blur")},
      {"withdraw", withdraw("blur")},
      {"call", call("blur", 1, &image)},
      {"respond", respond(1, true, &image)},
      {"cancel-call", cancel_call(1)},
      {"call-slot", call("blur", 1, &image, 1, 0)},
      {"release-call-frame", release("", 1)},
  };
  for (const auto& [name, bytes] : decode) write(dir + "/decode/" + name, bytes);
  int n = 0;
  for (const auto& hostile : testing::hostile_messages("cam")) {
    write(dir + "/decode/hostile-" + std::to_string(++n), hostile.bytes);
  }

  // Broker streams (a Hello is sent by the harness first).
  {
    Bytes s;  // a sealed producer: advertise, subscribe to itself, publish, release
    record(s, 0, 0, advertise("cam", proto::LayoutKind::BLOB, proto::Guarantee::SEALED));
    record(s, 0, 0, subscribe("cam", 2, proto::Backpressure::DROP_OLDEST));
    record(s, 1, 1, publish("cam", blob_layout(4096)));
    record(s, 1, 1, publish("cam", blob_layout(8192)));  // larger than its buffer
    record(s, 2, 1, publish("cam", blob_layout(64)));    // unsealed
    record(s, 0, 0, release("cam", 1));
    record(s, 0, 0, introspect());
    write(dir + "/broker/sealed-stream", s);
  }
  {
    Bytes s;  // a pool producer
    record(s, 0, 0, advertise("pool", proto::LayoutKind::BLOB, proto::Guarantee::POOL));
    record(s, 0, 0, subscribe("pool", 4, proto::Backpressure::BLOCK_PRODUCER));
    record(s, 1, 4, register_pool("pool", 4, 4096));
    record(s, 0, 0, publish("pool", blob_layout(100), 1, 0));
    record(s, 0, 0, publish("pool", blob_layout(100), 1, 0));  // still busy
    record(s, 0, 0, publish("pool", blob_layout(100), 1, 9));  // no such slot
    record(s, 0, 0, release("pool", 1));
    write(dir + "/broker/pool-stream", s);
  }
  {
    Bytes s;  // fds where none belong, a pipe, two fds
    record(s, 3, 0, advertise("x", proto::LayoutKind::IMAGE, proto::Guarantee::SEALED));
    record(s, 3, 0, publish("x", image));
    record(s, 5, 2, publish("x", image));
    write(dir + "/broker/fd-stream", s);
  }
  {
    Bytes s;  // a client that serves itself: calls, a stream, a forged response, a cancel
    const Layout blob = blob_layout(4096);
    const Layout big = blob_layout(8192);
    record(s, 0, 0, offer("blur"));
    record(s, 1, 1, call("blur", 1, &blob));
    record(s, 1, 1, call("blur", 1, &blob));  // its number is in flight
    record(s, 0, 0, call("blur", 2, nullptr));
    record(s, 2, 1, call("blur", 3, &blob));  // unsealed
    record(s, 1, 1, call("blur", 4, &big));   // larger than its buffer
    record(s, 1, 1, respond(1, false, &blob));
    record(s, 0, 0, respond(1, true, nullptr));
    record(s, 0, 0, respond(999, true, nullptr));  // never sent
    record(s, 0, 0, cancel_call(2));
    record(s, 0, 0, withdraw("blur"));
    write(dir + "/broker/service-stream", s);
  }
  {
    Bytes s;  // the same in slots of pools for calls: held, busy, out of range, released
    const Layout blob = blob_layout(100);
    const Layout big = blob_layout(8192);
    record(s, 0, 0, offer("blur"));
    record(s, 1, 4, register_pool("", 4, 4096));
    record(s, 0, 0, call("blur", 1, &blob, 1, 0));
    record(s, 0, 0, call("blur", 2, &blob, 1, 0));  // still held by the server (itself)
    record(s, 0, 0, call("blur", 3, &blob, 1, 9));  // no such slot
    record(s, 0, 0, call("blur", 4, &big, 1, 1));   // past the slot
    record(s, 1, 1, call("blur", 5, &blob, 1, 2));  // an fd beside a slot
    record(s, 0, 0, respond(1, true, &blob, 1, 3));
    record(s, 0, 0, release("", 1));
    record(s, 0, 0, release("", 2));
    record(s, 0, 0, release("", 99));  // never sent
    record(s, 0, 0, withdraw("blur"));
    write(dir + "/broker/service-pool-stream", s);
  }
  {
    Bytes s;
    for (const auto& hostile : testing::hostile_messages("cam")) record(s, 1, 1, hostile.bytes);
    write(dir + "/broker/hostile-stream", s);
  }

  // Layout target: FuzzedDataProvider reads integers from the end of the input, so random
  // bytes of a few lengths start it on every kind.
  std::mt19937_64 rng(20261122);
  for (int i = 0; i < 8; ++i) {
    Bytes b(static_cast<std::size_t>(16 + i * 24));
    for (auto& x : b) x = static_cast<std::byte>(rng());
    write(dir + "/layout/random-" + std::to_string(i), b);
  }

  // Channel target: a sequence of operations drawn from the input, so random bytes of a few
  // lengths are as good a start as any.
  for (int i = 0; i < 8; ++i) {
    Bytes b(static_cast<std::size_t>(64 + i * 96));
    for (auto& x : b) x = static_cast<std::byte>(rng());
    write(dir + "/channel/random-" + std::to_string(i), b);
  }
  return 0;
}
