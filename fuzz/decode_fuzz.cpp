// libFuzzer target: any datagram through decode_message, read the way the broker and the
// clients read each message type. Nothing may crash, hang or leak; every failure must be an
// Error, never an escaping exception.
#include <cstddef>
#include <cstdint>
#include <span>

#include "shmfd/wire/wire.hpp"

namespace {

using shmfd::Result;
using M = shmfd::proto::Message;

std::uint64_t read_layout(shmfd::proto::Layout::Reader layout) {
  auto converted = shmfd::layout_from_proto(layout);
  if (!converted) return 1;
  auto extent = shmfd::layout_extent(*converted);
  return extent ? *extent : 2;
}

std::uint64_t read_frame(shmfd::proto::Frame::Reader f) {
  return f.getFd() + f.getSequence() + f.getTimestampNs() + f.getPool() + f.getSlot() +
         read_layout(f.getLayout());
}

Result<std::uint64_t> read_message(M::Reader m) {
  std::uint64_t sum = m.totalSize().wordCount;  // walks every pointer
  switch (m.which()) {
    case M::HELLO:
      return sum + m.getHello().getVersion() + m.getHello().getClientName().size();
    case M::ADVERTISE: {
      auto a = m.getAdvertise();
      return sum + a.getTopic().size() + static_cast<std::uint64_t>(a.getKind()) +
             static_cast<std::uint64_t>(a.getGuarantee());
    }
    case M::SUBSCRIBE: {
      auto s = m.getSubscribe();
      return sum + s.getTopic().size() + s.getQueueDepth() +
             static_cast<std::uint64_t>(s.getBackpressure());
    }
    case M::PUBLISH:
      return sum + m.getPublish().getTopic().size() + read_frame(m.getPublish().getFrame());
    case M::DELIVER:
      return sum + m.getDeliver().getDropped() + read_frame(m.getDeliver().getFrame());
    case M::ERROR:
      return sum + m.getError().getMessage().size() + m.getError().getTopic().size();
    case M::REGISTER_POOL: {
      auto r = m.getRegisterPool();
      return sum + r.getTopic().size() + r.getSlotCount() + r.getSlotSize() + r.getFd();
    }
    case M::BROKER_STATE: {
      auto state = m.getBrokerState();
      for (auto t : state.getTopics()) {
        sum += t.getName().size();
        for (auto s : t.getSubscribers()) sum += s.getClient() + s.getQueueDepth();
      }
      for (auto c : state.getClients()) sum += c.getName().size() + c.getCommand().size();
      for (auto p : state.getPools()) {
        for (auto h : p.getHolders()) sum += h.getClient() + h.getSlots();
      }
      return sum;
    }
    default:
      return sum;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  auto result = shmfd::decode_message<M>(bytes, read_message);
  if (!result && result.error().message().empty()) __builtin_trap();  // errors name the fault
  return 0;
}
