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

// Bytes of a channel page of `side` with `capacity` ring entries: a whole number of 4 KiB pages.
std::size_t channel_page_bytes(ChannelSide side, std::uint32_t capacity) noexcept;

// A page of one's own: a sealed memfd (pool guarantee) and the only writable mapping of it.
// Send fd() to the broker, which verifies it and passes a read-only reopening to the peer.
class OwnPage {
 public:
  // Creates the page for `side` (Errc::invalid_argument for a capacity that is not a power of
  // two in 2..kMaxChannelCapacity).
  static Result<OwnPage> create(ChannelSide side, std::uint32_t capacity = kDefaultChannelCapacity);

  int fd() const noexcept { return buffer_.fd(); }
  ChannelSide side() const noexcept { return side_; }
  std::uint32_t capacity() const noexcept { return capacity_; }
  std::byte* data() const { return buffer_.bytes().data(); }

 private:
  OwnPage(PoolBuffer buffer, ChannelSide side, std::uint32_t capacity)
      : buffer_(std::move(buffer)), side_(side), capacity_(capacity) {}
  PoolBuffer buffer_;
  ChannelSide side_;
  std::uint32_t capacity_;
};

// The peer's page, verified and mapped read-only: a memfd with the pool seals, of exactly the
// size its header's capacity needs, for the side expected, with magic and version this build
// reads (Errc::not_memfd, missing_seals, invalid_size, malformed_message). Takes the fd.
class PeerPage {
 public:
  static Result<PeerPage> accept(UniqueFd fd, ChannelSide side);

  std::uint32_t capacity() const noexcept { return capacity_; }
  const std::byte* data() const noexcept { return mapping_.bytes().data(); }

 private:
  PeerPage(Mapping mapping, std::uint32_t capacity)
      : mapping_(std::move(mapping)), capacity_(capacity) {}
  Mapping mapping_;
  std::uint32_t capacity_;
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
