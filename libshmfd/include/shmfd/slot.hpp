/// @file
/// A slot of a pool, acquired for writing, and how an acquire waits: shared by Producer (pools
/// of a topic) and by Caller and Server (pools for calls).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace shmfd {

/// What an acquire does when every slot of the pool is held.
enum class Wait {
  block,      ///< wait until the holder lets one go
  fail_fast,  ///< return Errc::no_free_slot at once
};

/// A pool slot acquired for writing: fill `bytes`, then publish (or send) it.
struct Slot {
  std::uint32_t pool = 0;      ///< the pool's id, as create_pool() returned it
  std::uint32_t index = 0;     ///< the slot's number in the pool, from 0
  std::span<std::byte> bytes;  ///< the whole slot, writable (slot_size() bytes)
};

}  // namespace shmfd
