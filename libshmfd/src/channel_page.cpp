#include "shmfd/wire/channel_page.hpp"

#include <bit>
#include <cstring>

#include "channel_format.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/verify.hpp"

namespace shmfd {

using namespace channel_format;

std::uint32_t channel_meta_bytes(std::uint32_t max_header_bytes) noexcept {
  const std::uint64_t bytes = std::uint64_t{kChannelMetaFixedBytes} + max_header_bytes;
  return static_cast<std::uint32_t>((bytes + 63) / 64 * 64);
}

bool valid_channel_meta_bytes(std::uint32_t meta_bytes) noexcept {
  return meta_bytes == 0 || (meta_bytes % 64 == 0 && meta_bytes >= channel_meta_bytes(0) &&
                             meta_bytes <= channel_meta_bytes(kMaxUserHeaderBytes));
}

std::size_t channel_page_bytes(ChannelSide side, std::uint32_t capacity,
                               std::uint32_t meta_bytes) noexcept {
  const std::size_t bytes =
      kRingAt + std::size_t{capacity} * entry_bytes(side) + std::size_t{capacity} * meta_bytes;
  return (bytes + kPageBytes - 1) / kPageBytes * kPageBytes;
}

// --- Channel pages ---

Result<OwnPage> OwnPage::create(ChannelSide side, std::uint32_t capacity,
                                std::uint32_t meta_bytes) {
  if (capacity < 2 || capacity > kMaxChannelCapacity || !std::has_single_bit(capacity)) {
    return fail(Errc::invalid_argument, "channel capacity " + n(capacity) +
                                            ": must be a power of two from 2 to " +
                                            n(kMaxChannelCapacity));
  }
  if (!valid_channel_meta_bytes(meta_bytes) || (meta_bytes != 0 && side != ChannelSide::producer)) {
    return fail(Errc::invalid_argument,
                std::string("channel metadata entries of ") + n(meta_bytes) + " bytes on a " +
                    side_name(side) + " page: only a producer page has them, of 0 or 64 to " +
                    n(channel_meta_bytes(kMaxUserHeaderBytes)) + " bytes in steps of 64");
  }
  auto buffer = WritableBuffer::create(std::string("channel-") + side_name(side),
                                       channel_page_bytes(side, capacity, meta_bytes));
  if (!buffer) return fail(std::move(buffer.error()));
  const PageHeader header{magic(side), kPageVersion, capacity,
                          static_cast<std::uint32_t>(entry_bytes(side)), meta_bytes};
  std::memcpy(buffer->bytes().data() + kHeaderAt, &header, sizeof header);
  auto pool = std::move(*buffer).into_pool();  // sealed: no other writable mapping, ever
  if (!pool) return fail(std::move(pool.error()));
  return OwnPage(std::move(*pool), side, capacity, meta_bytes);
}

Result<PeerPage> PeerPage::accept(UniqueFd fd, ChannelSide side, std::uint32_t meta_bytes) {
  const std::string what = std::string("channel ") + side_name(side) + " page";
  auto verified = verify_buffer(fd.get(), Guarantee::pool, kPageBytes);
  if (!verified) return fail(std::move(verified.error()).prefixed(what));
  auto mapping =
      Mapping::map(fd.get(), static_cast<std::size_t>(verified->size), Access::read_only);
  if (!mapping) return fail(std::move(mapping.error()).prefixed(what));
  PageHeader header{};  // copied once, then checked; the page is never trusted beyond this
  std::memcpy(&header, mapping->bytes().data() + kHeaderAt, sizeof header);
  if (header.magic != magic(side) || header.version != kPageVersion ||
      header.entry_bytes != entry_bytes(side)) {
    return fail(Errc::malformed_message,
                what + ": header (magic " + n(header.magic) + ", version " + n(header.version) +
                    ", entry " + n(header.entry_bytes) + " bytes) is not a " + side_name(side) +
                    " page of version " + n(kPageVersion));
  }
  if (header.capacity < 2 || header.capacity > kMaxChannelCapacity ||
      !std::has_single_bit(header.capacity)) {
    return fail(Errc::malformed_message, what + ": capacity " + n(header.capacity) +
                                             " is not a power of two in 2.." +
                                             n(kMaxChannelCapacity));
  }
  if (header.meta_bytes != meta_bytes) {
    return fail(Errc::malformed_message, what + ": metadata entries of " + n(header.meta_bytes) +
                                             " bytes, asked for " + n(meta_bytes));
  }
  const std::size_t needed = channel_page_bytes(side, header.capacity, meta_bytes);
  if (verified->size != needed) {
    return fail(Errc::invalid_size, what + ": " + n(verified->size) + " bytes, but capacity " +
                                        n(header.capacity) + " and metadata entries of " +
                                        n(meta_bytes) + " bytes need " + n(needed));
  }
  return PeerPage(std::move(*mapping), header.capacity, meta_bytes);
}

// --- The doorbell ---

Result<OwnBell> OwnBell::create() {
  auto buffer = WritableBuffer::create("bell", kPageBytes);
  if (!buffer) return fail(std::move(buffer.error()));
  const PageHeader header{kBellMagic, kPageVersion, 0, 0, 0};
  std::memcpy(buffer->bytes().data() + kHeaderAt, &header, sizeof header);
  auto pool = std::move(*buffer).into_pool();
  if (!pool) return fail(std::move(pool.error()));
  return OwnBell(std::move(*pool));
}

void OwnBell::ring() noexcept {
  Word& count = word(buffer_.bytes().data(), kIndexAt);
  count.fetch_add(1, std::memory_order_seq_cst);
  futex_wake(count);
}

Result<PeerBell> PeerBell::accept(UniqueFd fd) {
  auto verified = verify_buffer(fd.get(), Guarantee::pool, kPageBytes);
  if (!verified) return fail(std::move(verified.error()).prefixed("doorbell page"));
  if (verified->size != kPageBytes) {
    return fail(Errc::invalid_size,
                "doorbell page: " + n(verified->size) + " bytes, not " + n(kPageBytes));
  }
  auto mapping = Mapping::map(fd.get(), kPageBytes, Access::read_only);
  if (!mapping) return fail(std::move(mapping.error()).prefixed("doorbell page"));
  PageHeader header{};
  std::memcpy(&header, mapping->bytes().data() + kHeaderAt, sizeof header);
  if (header.magic != kBellMagic || header.version != kPageVersion) {
    return fail(Errc::malformed_message, "doorbell page: header (magic " + n(header.magic) +
                                             ", version " + n(header.version) +
                                             ") is not a doorbell of version " + n(kPageVersion));
  }
  return PeerBell(std::move(*mapping));
}

std::uint32_t PeerBell::count() const noexcept {
  return word(mapping_.bytes().data(), kIndexAt).load(std::memory_order_acquire);
}

}  // namespace shmfd
