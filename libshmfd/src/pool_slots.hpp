// PoolSlots: a producer's pools and the state of every slot in them. A slot is free, acquired
// (the program writes it), or published (consumers may read it). A published slot is free
// again once nobody holds it: not the broker (no SlotFree yet) and no channel (held() decides,
// since the channels' books are ProducerChannels').
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmfd/layout.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/producer.hpp"

namespace shmfd::detail {

enum class SlotState { free, acquired, published };

struct PoolState {
  std::string topic;
  PoolBuffer buffer;
  std::size_t slot_size = 0;
  std::vector<SlotState> slots;
  std::vector<std::uint64_t> sequence;  // of the frame last published in each slot
  std::vector<bool> broker_busy;        // published through the broker, no SlotFree yet
  std::uint32_t next_free = 0;          // where a take looks first
  std::uint32_t broker_id = 0;          // the broker's id (the caller's may differ)
  MemfdOptions options;
  std::vector<PoolBuffer> retired;  // earlier buffers, kept while slots into them may live

  std::span<std::byte> slot_bytes(std::uint32_t slot) {
    return buffer.bytes().subspan(slot * slot_size, slot_size);
  }
};

// The memfd of a new pool, `name` for it: `slot_count` slots of `slot_bytes` or more, each
// rounded up to whole pages of `options` (huge pages fall back to normal ones where `options`
// allows, which it then says). `slot_size` gets the rounded size. Errc::invalid_size for no
// slots, slots of no bytes, or a size that overflows.
Result<PoolBuffer> create_pool_buffer(const std::string& name, std::size_t slot_bytes,
                                      std::uint32_t slot_count, MemfdOptions& options,
                                      std::size_t& slot_size);

// Whether slot `slot` of `pool` is held by a channel's consumer.
using HeldOnChannels = std::function<bool(const PoolState& pool, std::uint32_t slot)>;

// Whether nobody holds `slot` of `pool`: neither the program, the broker nor a channel.
bool slot_free(const PoolState& pool, std::uint32_t slot, const HeldOnChannels& held);

class PoolSlots {
 public:
  // A new pool of `slot_count` slots of `slot_size` in `buffer`, registered with the broker as
  // `broker_id`: the caller's id for it.
  std::uint32_t add(std::string topic, PoolBuffer buffer, std::size_t slot_size,
                    std::uint32_t slot_count, std::uint32_t broker_id, MemfdOptions options);
  PoolState* find(std::uint32_t pool);
  std::map<std::uint32_t, PoolState>& all() noexcept { return pools_; }
  void erase_topic(std::string_view topic);

  // A free slot of `pool`, now acquired; nullopt when every slot is held.
  std::optional<Slot> take(std::uint32_t pool, const HeldOnChannels& held);
  // The pool of `slot` if the slot is acquired; else Errc::invalid_argument, naming `what`.
  Result<PoolState*> acquired(const Slot& slot, std::string_view what);
  // Checks `slot` for publishing on `topic` with `layout` and marks it published as frame
  // `sequence` (copying it into the pool's current memfd if a reconnect replaced it).
  // Its pool.
  Result<PoolState*> publish(std::string_view topic, const Slot& slot, const Layout& layout,
                             std::uint64_t sequence);
  // Undoes publish(): the slot is the program's again.
  void unpublish(const Slot& slot);
  Status discard(const Slot& slot);
  std::size_t free_slots(std::uint32_t pool, const HeldOnChannels& held);

  // The broker's word: frame `sequence` of `topic` was refused (so never made a slot busy);
  // `slot` of its pool `broker_id` is free of the broker.
  void refused(std::string_view topic, std::uint64_t sequence);
  void freed(std::uint32_t broker_id, std::uint32_t slot);

  // After a reconnect: each pool gets a fresh memfd, registered by `register_pool` (consumers
  // of the old broker may still read the old one, which is kept), and every published slot is
  // free (the new broker holds none).
  Status renew(const std::function<Result<std::uint32_t>(const PoolState&, const PoolBuffer&)>&
                   register_pool);

 private:
  std::uint32_t next_id_ = 1;
  std::map<std::uint32_t, PoolState> pools_;
};

}  // namespace shmfd::detail
