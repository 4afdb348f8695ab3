// Mapping: an owning mmap of (part of) a file, read-only or read-write. Unmapped on destruction.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "shmfd/error.hpp"

namespace shmfd {

enum class Access { read_only, read_write };

struct MapOptions {
  // MAP_POPULATE: fault every page in now, not on first touch (first touch of fresh shmem costs
  // ~3.7 us per 4 KiB page on the target machines; populate moves that off the hot path).
  bool populate = false;
};

class Mapping {
 public:
  // Maps `size` bytes of `fd` from `offset` (any offset: the page rounding is done here) with
  // MAP_SHARED, so the very pages of the file are seen and nothing is copied.
  static Result<Mapping> map(int fd, std::size_t size, Access access, std::uint64_t offset = 0,
                             MapOptions options = {});

  Mapping() noexcept = default;
  Mapping(Mapping&& other) noexcept;
  Mapping& operator=(Mapping&& other) noexcept;
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() { reset(); }

  std::span<const std::byte> bytes() const noexcept { return {data_, size_}; }
  // Only for read-write mappings; asking a read-only mapping for write access is a programming
  // error (std::logic_error), since writing would fault with SIGSEGV.
  std::span<std::byte> writable_bytes() const;

  std::size_t size() const noexcept { return size_; }
  Access access() const noexcept { return access_; }
  bool valid() const noexcept { return base_ != nullptr; }
  explicit operator bool() const noexcept { return valid(); }

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
