// Intake: what every receiver of a frame or a pool from another process does before it touches
// the memory, written once. The broker runs it on each Publish and RegisterPool, the consumer
// on each Deliver and PoolAttach (again: a check against a broker bug costs ~0.4 us), and a
// program that passes frames without a broker (examples/sealed_handoff) on each message.
#pragma once

#include <cstdint>
#include <vector>

#include "shmfd/error.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/proto/protocol.capnp.h"
#include "shmfd/unique_fd.hpp"
#include "shmfd/verify.hpp"

namespace shmfd {

// A frame in a buffer of its own, checked: its fd is owned here now.
struct AcceptedFrame {
  UniqueFd fd;
  Layout layout;
  std::uint64_t extent = 0;  // the bytes the layout reaches into the buffer
  VerifiedBuffer verified;   // what the kernel says the buffer is
};

// Accepts `frame` (Frame.pool == 0) with the `fds` its message carried: the fd index is in
// range (Errc::fd_index_out_of_range), the layout decodes and has an extent (Errc::layout_*,
// Errc::malformed_message), and the fd is a memfd with the seals `guarantee` needs, readable,
// holding the extent (Errc::not_memfd, missing_seals, not_readable, buffer_too_small). On
// success the fd is moved out of `fds`; on failure `fds` is untouched, so its owner closes it.
Result<AcceptedFrame> accept_frame(proto::Frame::Reader frame, std::vector<UniqueFd>& fds,
                                   Guarantee guarantee);

// A pool of `slot_count` slots of `slot_size` bytes, checked: its fd is owned here now.
struct AcceptedPool {
  UniqueFd fd;
  std::uint64_t bytes = 0;  // slot_count × slot_size
  VerifiedBuffer verified;
};

// Accepts a pool's fd (fds[fd_index]): the size is 1 slot or more of a non-zero size without
// overflow (Errc::invalid_size), the fd is a memfd with the pool seals holding every slot, and
// the slot size is a multiple of its page size, so each slot can be mapped on its own
// (Errc::invalid_size). On success the fd is moved out of `fds`.
Result<AcceptedPool> accept_pool(std::uint32_t fd_index, std::uint32_t slot_count,
                                 std::uint64_t slot_size, std::vector<UniqueFd>& fds);

}  // namespace shmfd
