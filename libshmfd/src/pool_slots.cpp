// PoolSlots: the slot state machine of a producer's pools (pool_slots.hpp).
#include "pool_slots.hpp"

#include <cstring>

namespace shmfd::detail {

Result<PoolBuffer> create_pool_buffer(const std::string& name, std::size_t slot_bytes,
                                      std::uint32_t slot_count, MemfdOptions& options,
                                      std::size_t& slot_size) {
  if (slot_bytes == 0 || slot_count == 0) {
    return fail(Errc::invalid_size,
                "create_pool(\"" + name + "\"): slot size and slot count must be positive");
  }
  auto writable = [&]() -> Result<WritableBuffer> {
    auto page = page_size(options);
    if (!page) return fail(std::move(page.error()));
    slot_size = (slot_bytes + *page - 1) / *page * *page;
    std::size_t total = 0;
    if (__builtin_mul_overflow(slot_size, std::size_t{slot_count}, &total)) {
      return fail(Errc::invalid_size, "create_pool: " + std::to_string(slot_count) + " slots of " +
                                          std::to_string(slot_size) + " bytes overflow");
    }
    return WritableBuffer::create(name + "/pool", total, options);
  };
  auto created = writable();
  if (!created && options.huge_pages && options.fall_back_to_normal_pages &&
      created.error().is(Errc::huge_pages_unavailable)) {
    options.huge_pages = false;
    created = writable();
  }
  if (!created) return fail(std::move(created.error()));
  return std::move(*created).into_pool();
}

std::uint32_t PoolSlots::add(std::string topic, PoolBuffer buffer, std::size_t slot_size,
                             std::uint32_t slot_count, std::uint32_t broker_id,
                             MemfdOptions options) {
  const std::uint32_t id = next_id_++;
  PoolState p{std::move(topic),
              std::move(buffer),
              slot_size,
              std::vector<SlotState>(slot_count, SlotState::free),
              std::vector<std::uint64_t>(slot_count, 0),
              std::vector<bool>(slot_count, false),
              0,
              broker_id,
              options,
              {}};
  pools_.emplace(id, std::move(p));
  return id;
}

PoolState* PoolSlots::find(std::uint32_t pool) {
  auto it = pools_.find(pool);
  return it == pools_.end() ? nullptr : &it->second;
}

void PoolSlots::erase_topic(std::string_view topic) {
  std::erase_if(pools_, [&](const auto& p) { return p.second.topic == topic; });
}

std::optional<Slot> PoolSlots::take(std::uint32_t pool, const HeldOnChannels& held) {
  PoolState& p = pools_.at(pool);
  // From the slot after the last one taken: slots come back in about the order they went out,
  // so the next one is usually free, and the scan does not pass every held slot each time.
  const auto n = static_cast<std::uint32_t>(p.slots.size());
  std::uint32_t index = p.next_free;
  std::uint32_t looked = 0;
  for (; looked < n; ++looked, index = index + 1 == n ? 0 : index + 1) {
    if (p.slots[index] == SlotState::free) break;
    if (p.slots[index] == SlotState::published && !p.broker_busy[index] && !held(p, index)) break;
  }
  if (looked == n) return std::nullopt;
  p.next_free = index + 1 == n ? 0 : index + 1;
  p.slots[index] = SlotState::acquired;
  return Slot{pool, index, p.slot_bytes(index)};
}

Result<PoolState*> PoolSlots::acquired(const Slot& slot, std::string_view what) {
  auto it = pools_.find(slot.pool);
  if (it == pools_.end() || slot.index >= it->second.slots.size() ||
      it->second.slots[slot.index] != SlotState::acquired) {
    return fail(Errc::invalid_argument, std::string(what) + ": slot " + std::to_string(slot.index) +
                                            " of pool " + std::to_string(slot.pool) +
                                            " is not acquired");
  }
  return &it->second;
}

Result<PoolState*> PoolSlots::publish(std::string_view topic, const Slot& slot,
                                      const Layout& layout, std::uint64_t sequence) {
  auto acquired_pool = acquired(slot, "publish");
  if (!acquired_pool) return fail(std::move(acquired_pool.error()));
  PoolState& p = **acquired_pool;
  if (p.topic != topic) {
    return fail(Errc::invalid_argument,
                "publish: pool " + std::to_string(slot.pool) + " belongs to '" + p.topic + "'");
  }
  if (auto extent = validate_layout(layout, p.slot_size); !extent) {
    return fail(std::move(extent.error()));
  }
  const auto here = p.slot_bytes(slot.index);
  if (slot.bytes.data() != here.data() && slot.bytes.size() == here.size()) {
    // Acquired before a reconnect replaced the pool's memfd: the frame moves to the new one.
    std::memcpy(here.data(), slot.bytes.data(), here.size());
  }
  p.slots[slot.index] = SlotState::published;
  p.sequence[slot.index] = sequence;
  p.broker_busy[slot.index] = false;  // set by the caller once it goes through the broker
  return &p;
}

void PoolSlots::unpublish(const Slot& slot) {
  if (PoolState* p = find(slot.pool); p != nullptr && slot.index < p->slots.size()) {
    p->slots[slot.index] = SlotState::acquired;
    p->broker_busy[slot.index] = false;
  }
}

Status PoolSlots::discard(const Slot& slot) {
  auto pool = acquired(slot, "discard");
  if (!pool) return fail(std::move(pool.error()));
  (*pool)->slots[slot.index] = SlotState::free;
  return {};
}

bool slot_free(const PoolState& pool, std::uint32_t slot, const HeldOnChannels& held) {
  return pool.slots[slot] == SlotState::free ||
         (pool.slots[slot] == SlotState::published && !pool.broker_busy[slot] && !held(pool, slot));
}

std::size_t PoolSlots::free_slots(std::uint32_t pool, const HeldOnChannels& held) {
  PoolState* p = find(pool);
  if (p == nullptr) return 0;
  std::size_t n = 0;
  for (std::uint32_t i = 0; i < p->slots.size(); ++i) n += slot_free(*p, i, held);
  return n;
}

void PoolSlots::refused(std::string_view topic, std::uint64_t sequence) {
  for (auto& [id, pool] : pools_) {
    if (pool.topic != topic) continue;
    for (std::size_t i = 0; i < pool.slots.size(); ++i) {
      if (pool.slots[i] == SlotState::published && pool.sequence[i] == sequence) {
        pool.broker_busy[i] = false;
      }
    }
  }
}

void PoolSlots::freed(std::uint32_t broker_id, std::uint32_t slot) {
  for (auto& [id, pool] : pools_) {
    if (pool.broker_id == broker_id && slot < pool.slots.size()) pool.broker_busy[slot] = false;
  }
}

Status PoolSlots::renew(
    const std::function<Result<std::uint32_t>(const PoolState&, const PoolBuffer&)>&
        register_pool) {
  for (auto& [id, pool] : pools_) {
    // A fresh memfd: consumers of the old broker may still read frames in the old one.
    auto created = WritableBuffer::create(pool.topic + "/pool", pool.slot_size * pool.slots.size(),
                                          pool.options);
    if (!created) return fail(std::move(created.error()));
    auto buffer = std::move(*created).into_pool();
    if (!buffer) return fail(std::move(buffer.error()));
    auto registered = register_pool(pool, *buffer);
    if (!registered) return fail(std::move(registered.error()));
    pool.broker_id = *registered;
    pool.retired.push_back(std::move(pool.buffer));
    pool.buffer = std::move(*buffer);
    for (auto& slot : pool.slots) {
      if (slot == SlotState::published) slot = SlotState::free;  // the new broker: all free
    }
    pool.broker_busy.assign(pool.slots.size(), false);
  }
  return {};
}

}  // namespace shmfd::detail
