#include "shmfd/wire/intake.hpp"

#include <string>

#include "shmfd/wire/wire.hpp"

namespace shmfd {

Result<AcceptedFrame> accept_frame(proto::Frame::Reader frame, std::vector<UniqueFd>& fds,
                                   Guarantee guarantee) {
  auto index = fd_index(frame.getFd(), fds.size());
  if (!index) return fail(std::move(index.error()));
  auto layout = layout_from_proto(frame.getLayout());
  if (!layout) return fail(std::move(layout.error()));
  auto extent = layout_extent(*layout);
  if (!extent) return fail(std::move(extent.error()));
  auto verified = verify_buffer(fds[*index].get(), guarantee, *extent);
  if (!verified) return fail(std::move(verified.error()));
  return AcceptedFrame{std::move(fds[*index]), *layout, *extent, *verified};
}

Result<AcceptedPool> accept_pool(std::uint32_t fd_index_, std::uint32_t slot_count,
                                 std::uint64_t slot_size, std::vector<UniqueFd>& fds) {
  auto index = fd_index(fd_index_, fds.size());
  if (!index) return fail(std::move(index.error()));
  std::uint64_t bytes = 0;
  if (slot_count == 0 || slot_size == 0 ||
      __builtin_mul_overflow(slot_size, std::uint64_t{slot_count}, &bytes)) {
    return fail(Errc::invalid_size, "a pool of " + std::to_string(slot_count) + " slots of " +
                                        std::to_string(slot_size) + " bytes is not a size");
  }
  auto verified = verify_buffer(fds[*index].get(), Guarantee::pool, bytes);
  if (!verified) return fail(std::move(verified.error()));
  if (slot_size % verified->page_size != 0) {
    return fail(Errc::invalid_size, "slot size " + std::to_string(slot_size) +
                                        " is not a multiple of the pool's page size " +
                                        std::to_string(verified->page_size));
  }
  return AcceptedPool{std::move(fds[*index]), bytes, *verified};
}

}  // namespace shmfd
