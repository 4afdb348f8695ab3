// The pages of channels and doorbells (docs/PROTOCOL.md, section 14): memfds that one side
// writes and seals with the pool guarantee, and that the other side verifies and maps
// read-only. channel.hpp reads and writes through them.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>

#include "shmfd/error.hpp"
#include "shmfd/mapping.hpp"
#include "shmfd/memfd.hpp"
#include "shmfd/unique_fd.hpp"

namespace shmfd {

struct ChannelSleep;  // channel.cpp

enum class ChannelSide { producer, consumer };

// Ring entries per page. 256 descriptors of 64 bytes: a 4 KiB header page plus 4 pages.
inline constexpr std::uint32_t kDefaultChannelCapacity = 256;
inline constexpr std::uint32_t kMaxChannelCapacity = 1U << 16;
// Layouts one topic's descriptors may name by id (DefineLayout).
inline constexpr std::size_t kMaxChannelLayouts = 256;

// Version 5 (docs/PROTOCOL.md, section 15): a producer page may hold, after its ring, one
// metadata entry per ring entry: kChannelMetaFixedBytes of times, flags and crop, then up to the
// topic's largest user header, rounded up to 64 bytes. channel_meta_bytes(max_header_bytes) is
// that size, which the broker asks for in ChannelRequest.metaBytes.
inline constexpr std::uint32_t kChannelMetaFixedBytes = 48;
std::uint32_t channel_meta_bytes(std::uint32_t max_header_bytes) noexcept;
// Whether `meta_bytes` is a size channel_meta_bytes() gives for a header the protocol allows, or 0.
bool valid_channel_meta_bytes(std::uint32_t meta_bytes) noexcept;

// Bytes of a channel page of `side` with `capacity` ring entries, and metadata entries of
// `meta_bytes` (producer pages only): a whole number of 4 KiB pages.
std::size_t channel_page_bytes(ChannelSide side, std::uint32_t capacity,
                               std::uint32_t meta_bytes = 0) noexcept;

// A page of one's own: a sealed memfd (pool guarantee) and the only writable mapping of it.
// Send fd() to the broker, which verifies it and passes a read-only reopening to the peer.
class OwnPage {
 public:
  // Creates the page for `side` (Errc::invalid_argument for a capacity that is not a power of
  // two in 2..kMaxChannelCapacity, or metadata entries on a consumer page or of a size
  // channel_meta_bytes() never gives).
  static Result<OwnPage> create(ChannelSide side, std::uint32_t capacity = kDefaultChannelCapacity,
                                std::uint32_t meta_bytes = 0);

  int fd() const noexcept { return buffer_.fd(); }
  ChannelSide side() const noexcept { return side_; }
  std::uint32_t capacity() const noexcept { return capacity_; }
  std::uint32_t meta_bytes() const noexcept { return meta_bytes_; }
  std::byte* data() const { return buffer_.bytes().data(); }

 private:
  OwnPage(PoolBuffer buffer, ChannelSide side, std::uint32_t capacity, std::uint32_t meta_bytes)
      : buffer_(std::move(buffer)), side_(side), capacity_(capacity), meta_bytes_(meta_bytes) {}
  PoolBuffer buffer_;
  ChannelSide side_;
  std::uint32_t capacity_;
  std::uint32_t meta_bytes_;
};

// The peer's page, verified and mapped read-only: a memfd with the pool seals, of exactly the
// size its header's capacity and metadata entries need, for the side expected, with magic and
// version this build reads, and metadata entries of `meta_bytes` (what the broker asked for)
// (Errc::not_memfd, missing_seals, invalid_size, malformed_message). Takes the fd.
class PeerPage {
 public:
  static Result<PeerPage> accept(UniqueFd fd, ChannelSide side, std::uint32_t meta_bytes = 0);

  std::uint32_t capacity() const noexcept { return capacity_; }
  std::uint32_t meta_bytes() const noexcept { return meta_bytes_; }
  const std::byte* data() const noexcept { return mapping_.bytes().data(); }

 private:
  PeerPage(Mapping mapping, std::uint32_t capacity, std::uint32_t meta_bytes)
      : mapping_(std::move(mapping)), capacity_(capacity), meta_bytes_(meta_bytes) {}
  Mapping mapping_;
  std::uint32_t capacity_;
  std::uint32_t meta_bytes_;
};

// A doorbell: one counter in a page that only its owner (the broker) writes, which a client
// sleeps on beside its channels, so that a control message (a channel opened or closed, a
// peer gone, an error) ends the wait as a frame does. The owner rings it after each message it
// queued for the client; the client reads the count, then drains its socket, then waits while
// the count is still what it read: a message that came after the drain has rung since.
class OwnBell {
 public:
  static Result<OwnBell> create();
  int fd() const noexcept { return buffer_.fd(); }
  void ring() noexcept;

 private:
  explicit OwnBell(PoolBuffer buffer) : buffer_(std::move(buffer)) {}
  PoolBuffer buffer_;
};

// The client's side: verified like a channel page (a memfd with the pool seals, of one page,
// with the bell's magic), mapped read-only.
class PeerBell {
 public:
  static Result<PeerBell> accept(UniqueFd fd);
  std::uint32_t count() const noexcept;

 private:
  friend struct ChannelSleep;  // channel.cpp: sleeps on the bell beside channels
  explicit PeerBell(Mapping mapping) : mapping_(std::move(mapping)) {}
  Mapping mapping_;
};

}  // namespace shmfd
