// CallPools: a caller's or a server's pools for calls (protocol version 6, docs/PROTOCOL.md
// section 16), the piece Caller and Server share.
//
// Its own pools, whose slots it fills and sends in a Call or a Respond: one memfd each,
// registered once with no topic; a slot sent is busy until the broker's SlotFree, which comes
// when the peer released the frame, and also for a slot the broker did not take (a refused or
// late message). Its peers' pools, which the broker attaches (PoolAttach, with the fd) before
// the first Request or Response that names them and detaches (PoolDetach) when their owner
// leaves: each is checked and mapped read-only once, and each frame in one is a view of its slot,
// released by the number the broker gave it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker_link.hpp"
#include "consumer_channels.hpp"
#include "pool_slots.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/producer.hpp"

namespace shmfd::detail {

// Fills `out` (for `service`) from a Request's or Response's frame: its layout, sequence,
// timestamp and metadata, checked as a service's frames are (Errc::protocol_violation).
Status describe_call_frame(Frame& out, const std::string& service, proto::Frame::Reader frame);

class CallPools {
 public:
  // Reads and handles one message, blocking: what a registration waits with.
  using Pump = std::function<Status()>;

  // The messages about pools (PoolRegistered with no topic, PoolAttach, PoolDetach, SlotFree, and
  // the refusal of a registration); nullopt for any other.
  std::optional<Status> handle(proto::Message::Reader m, std::vector<UniqueFd>& fds);

  // A new pool of `slot_count` slots of `slot_bytes` or more (whole pages), registered through
  // `link`. Its id, for try_take().
  Result<std::uint32_t> create(BrokerLink& link, const Pump& pump, std::size_t slot_bytes,
                               std::uint32_t slot_count, MemfdOptions options);
  // A free slot of `pool` (now the program's), or nullopt when every slot is busy.
  Result<std::optional<Slot>> try_take(std::uint32_t pool);
  // Fills `frame` for `slot` with `layout` and `meta` and marks it sent: busy until SlotFree.
  Status stage(proto::Frame::Builder frame, const Slot& slot, const Layout& layout,
               const FrameMeta& meta, std::uint64_t sequence);
  // The message `slot` was staged in was never sent: the slot is the program's again.
  void unstage(const Slot& slot) { own_.unpublish(slot); }
  Status discard(const Slot& slot) { return own_.discard(slot); }
  std::size_t free_slots(std::uint32_t pool);
  std::size_t slot_size(std::uint32_t pool);
  // After a reconnect: each pool registered again on a fresh memfd (frames in the old one stay
  // valid where they are held), every slot free; the old broker's attachments forgotten.
  Status renew(BrokerLink& link, const Pump& pump);

  // The frame in a slot of a peer's pool that a Request or Response carried, for `service`: a
  // view of the slot, released by its number on `connection` when the frame is dropped.
  Result<Frame> frame(const std::string& service, proto::Frame::Reader frame,
                      const std::shared_ptr<SharedConnection>& connection);

  // Peers' pools mapped now.
  std::size_t attached() const noexcept { return attached_.size(); }

 private:
  Result<std::uint32_t> register_pool(BrokerLink& link, const Pump& pump, const PoolBuffer& buffer,
                                      std::size_t slot_size, std::uint32_t slot_count);

  PoolSlots own_;
  std::map<std::uint32_t, std::shared_ptr<const PoolView>> attached_;
  bool registering_ = false;
  std::optional<Result<std::uint32_t>> answer_;  // the broker's answer to the RegisterPool
};

}  // namespace shmfd::detail
