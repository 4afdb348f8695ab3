#include "shmfd/mapping.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <stdexcept>

namespace shmfd {
namespace {

std::uint64_t page_size() {
  static const auto size = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  return size;
}

}  // namespace

Result<Mapping> Mapping::map(int fd, std::size_t size, Access access, std::uint64_t offset,
                             MapOptions options) {
  const auto context = [&] {
    return "mmap(fd " + std::to_string(fd) + ", offset " + std::to_string(offset) + ", " +
           std::to_string(size) + " bytes, " +
           (access == Access::read_write ? "PROT_READ|PROT_WRITE" : "PROT_READ") + ")";
  };
  if (size == 0) return fail(Errc::invalid_size, context() + ": cannot map zero bytes");

  // mmap(2) needs a page-aligned offset: map from the page start and point past the slack.
  const std::uint64_t slack = offset % page_size();
  const std::uint64_t aligned = offset - slack;
  std::size_t length = 0;
  if (__builtin_add_overflow(size, slack, &length) || aligned > INT64_MAX) {
    return fail(Errc::layout_overflow, context() + ": offset + size overflows");
  }

  const int prot = access == Access::read_write ? PROT_READ | PROT_WRITE : PROT_READ;
  const int flags = MAP_SHARED | (options.populate ? MAP_POPULATE : 0);
  void* base = ::mmap(nullptr, length, prot, flags, fd, static_cast<off_t>(aligned));
  if (base == MAP_FAILED) return fail_errno(errno, context());
  if (access == Access::read_write) {
    // Not inherited across fork(): a child forked meanwhile (by any thread: to start a program,
    // say) would otherwise hold a writable mapping until it execs, and sealing the buffer
    // (F_SEAL_WRITE) fails with EBUSY while one exists. No child needs to write our buffers.
    // Failure only loses that protection, so it is not an error.
    (void)::madvise(base, length, MADV_DONTFORK);
  }
  return Mapping(base, length, static_cast<std::byte*>(base) + slack, size, access);
}

Mapping::Mapping(Mapping&& other) noexcept
    : base_(std::exchange(other.base_, nullptr)),
      map_length_(std::exchange(other.map_length_, 0)),
      data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      access_(other.access_) {}

Mapping& Mapping::operator=(Mapping&& other) noexcept {
  if (this != &other) {
    reset();
    base_ = std::exchange(other.base_, nullptr);
    map_length_ = std::exchange(other.map_length_, 0);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    access_ = other.access_;
  }
  return *this;
}

std::span<std::byte> Mapping::writable_bytes() const {
  if (access_ != Access::read_write) {
    throw std::logic_error("shmfd::Mapping::writable_bytes() on a read-only mapping");
  }
  return {data_, size_};
}

void Mapping::reset() noexcept {
  if (base_ != nullptr) ::munmap(base_, map_length_);
  base_ = nullptr;
  map_length_ = 0;
  data_ = nullptr;
  size_ = 0;
}

}  // namespace shmfd
