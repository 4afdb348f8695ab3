/// @file
/// memfd buffers with a typed lifecycle:
///
/// @code
/// WritableBuffer --seal()------> SealedBuffer  (immutable; mapping dropped, fd can be sent)
///                --into_pool()-> PoolBuffer    (producer keeps its writable mapping; nobody
///                                               else can ever write)
/// @endcode
///
/// Each transition is a type change, so a writable buffer cannot be sent by mistake and a sealed
/// one cannot be written. See guarantee.hpp for what each level promises a receiver.
///
/// Buffers are values that own an fd (and a mapping): each is used by one thread at a time, and
/// may be moved to another thread. Errors name the call and its arguments, e.g.
/// `memfd_create("shmfd:cam0,size=33177600"): Too many open files`.
#pragma once

#include <cstddef>
#include <span>
#include <string>
#include <string_view>

#include "shmfd/error.hpp"
#include "shmfd/mapping.hpp"
#include "shmfd/unique_fd.hpp"

namespace shmfd {

/// How a buffer is created.
struct MemfdOptions {
  /// MFD_HUGETLB with the system's default huge page size (2 MiB on x86-64). The size is rounded
  /// up to whole huge pages. Fails with Errc::huge_pages_unavailable when none are reserved.
  bool huge_pages = false;
  /// With huge_pages, for Producer::create_pool: when too few huge pages are free, use normal
  /// pages instead of failing. (A consumer reading every byte of a 33 MB frame gets about twice
  /// the frame rate on huge pages: see bench/README.md.)
  bool fall_back_to_normal_pages = false;
  /// Fault all pages in at creation (MAP_POPULATE) instead of on first write.
  bool populate = false;
};

/// The memfd name shmfd gives a buffer: "shmfd:<name>,size=<bytes>", so /proc/PID/fd shows
/// "/memfd:shmfd:cam0,size=8294400 (deleted)". Truncated to the kernel's 249-byte limit.
std::string memfd_name(std::string_view name, std::size_t size);

/// The page size buffers created with `options` have: the system page size, or the default
/// huge page size with huge_pages (found from a hugetlbfs memfd, which reserves nothing).
Result<std::size_t> page_size(MemfdOptions options = {});

/// Creates a sealable memfd of `size` bytes: MFD_CLOEXEC | MFD_ALLOW_SEALING, plus MFD_NOEXEC_SEAL
/// where the kernel has it (6.3+; older kernels fall back without it).
Result<UniqueFd> create_memfd(std::string_view name, std::size_t size, MemfdOptions options = {});

class SealedBuffer;
class PoolBuffer;

/// A fresh memfd of fixed size, mapped read-write for its creator, not sealed yet: write into
/// bytes(), then seal() it to send it, or into_pool() to make it a pool. Move-only.
class WritableBuffer {
 public:
  /// A memfd named memfd_name(`name`, `size`), sized and mapped read-write. Errors:
  /// Errc::invalid_size for a size of 0, Errc::huge_pages_unavailable, and the system's
  /// (memfd_create, ftruncate, mmap), each naming the call.
  static Result<WritableBuffer> create(std::string_view name, std::size_t size,
                                       MemfdOptions options = {});

  /// The whole buffer, writable.
  std::span<std::byte> bytes() const { return mapping_.writable_bytes(); }
  /// Its size in bytes, as asked for (the memfd itself may be rounded up to whole huge pages).
  std::size_t size() const noexcept { return size_; }
  /// The memfd, still owned by the buffer.
  int fd() const noexcept { return fd_.get(); }

  /// Drops the writable mapping (F_SEAL_WRITE fails with EBUSY while one exists), then seals
  /// SHRINK|GROW|WRITE|SEAL. On failure the buffer is restored and stays usable.
  Result<SealedBuffer> seal() &&;
  /// Seals SHRINK|GROW|FUTURE_WRITE|SEAL and keeps the writable mapping.
  Result<PoolBuffer> into_pool() &&;

 private:
  WritableBuffer(UniqueFd fd, Mapping mapping, std::size_t size)
      : fd_(std::move(fd)), mapping_(std::move(mapping)), size_(size) {}

  UniqueFd fd_;
  Mapping mapping_;
  std::size_t size_ = 0;
};

/// An immutable memfd (Guarantee::sealed), no longer mapped here: what publish() sends.
/// Move-only.
class SealedBuffer {
 public:
  /// The memfd, still owned by the buffer.
  int fd() const noexcept { return fd_.get(); }
  /// Its size in bytes.
  std::size_t size() const noexcept { return size_; }
  /// A read-only view of the contents.
  Result<Mapping> map(MapOptions options = {}) const {
    return Mapping::map(fd_.get(), size_, Access::read_only, 0, options);
  }
  /// Gives up the fd (e.g. after it was sent and nothing else needs it).
  [[nodiscard]] UniqueFd release() && { return std::move(fd_); }

 private:
  friend class WritableBuffer;
  SealedBuffer(UniqueFd fd, std::size_t size) : fd_(std::move(fd)), size_(size) {}

  UniqueFd fd_;
  std::size_t size_ = 0;
};

/// A memfd sealed for Guarantee::pool: its creator's writable mapping is the only one there
/// will ever be. Producer::create_pool() makes one for its slots. Move-only.
class PoolBuffer {
 public:
  /// The memfd, still owned by the buffer.
  int fd() const noexcept { return fd_.get(); }
  /// Its size in bytes.
  std::size_t size() const noexcept { return size_; }
  /// The producer's writable mapping, the only one there will ever be.
  std::span<std::byte> bytes() const { return mapping_.writable_bytes(); }

 private:
  friend class WritableBuffer;
  PoolBuffer(UniqueFd fd, Mapping mapping, std::size_t size)
      : fd_(std::move(fd)), mapping_(std::move(mapping)), size_(size) {}

  UniqueFd fd_;
  Mapping mapping_;
  std::size_t size_ = 0;
};

}  // namespace shmfd
