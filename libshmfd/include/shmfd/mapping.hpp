/// @file
/// Mapping: an owning mmap of (part of) a file, read-only or read-write. Unmapped on destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "shmfd/error.hpp"

namespace shmfd {

/// Whether a mapping may be written through.
enum class Access { read_only, read_write };

/// How a Mapping is made.
struct MapOptions {
  /// MAP_POPULATE: fault every page in now, not on first touch (first touch of fresh shmem costs
  /// ~3.7 us per 4 KiB page on the target machines; populate moves that off the hot path).
  bool populate = false;
};

/// An owning MAP_SHARED mapping: move-only, unmapped on destruction or reset(). Like any value,
/// one thread at a time; the bytes it maps may be read from any thread.
class Mapping {
 public:
  /// Maps `size` bytes of `fd` from `offset` (any offset: the page rounding is done here) with
  /// MAP_SHARED, so the very pages of the file are seen and nothing is copied.
  static Result<Mapping> map(int fd, std::size_t size, Access access, std::uint64_t offset = 0,
                             MapOptions options = {});

  /// No mapping: valid() is false.
  Mapping() noexcept = default;
  /// Takes `other`'s mapping; `other` is left without one.
  Mapping(Mapping&& other) noexcept;
  /// Unmaps this one's mapping, then takes `other`'s.
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  /// The `size` bytes asked for, read-only.
  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  /// Only for read-write mappings; asking a read-only mapping for write access is a programming
  /// error (std::logic_error), since writing would fault with SIGSEGV.
  std::span<std::byte> writable_bytes() const;

  /// The bytes asked for (not rounded to pages).
  std::size_t size() const noexcept { return size_; }
  /// How it was mapped.
  Access access() const noexcept { return access_; }
  /// Whether it maps anything.
  bool valid() const noexcept { return base_ != nullptr; }
  /// valid().
  explicit operator bool() const noexcept { return valid(); }

  /// Unmaps now; valid() is false after.
  void reset() noexcept;

 private:
  Mapping(void* base, std::size_t map_length, std::byte* data, std::size_t size, Access access)
      : base_(base), map_length_(map_length), data_(data), size_(size), access_(access) {}

  void* base_ = nullptr;
  std::size_t map_length_ = 0;
  std::byte* data_ = nullptr;
  std::size_t size_ = 0;
  Access access_ = Access::read_only;
};

}  // namespace shmfd
