#include "shmfd/memfd.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>

#include "shmfd/guarantee.hpp"

#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U  // Linux 6.3, include/uapi/linux/memfd.h
#endif

namespace shmfd {
namespace {

constexpr std::size_t kMaxMemfdName = 249;  // NAME_MAX - strlen("memfd:"), memfd_create(2)

// Whether MFD_NOEXEC_SEAL is accepted; learned from the first EINVAL, then remembered.
std::atomic<bool> g_noexec_seal_supported{true};

std::string meminfo_value(const std::string& key) {
  std::ifstream meminfo("/proc/meminfo");
  std::string line;
  while (std::getline(meminfo, line)) {
    if (line.rfind(key + ":", 0) == 0) {
      auto value = line.substr(key.size() + 1);
      value.erase(0, value.find_first_not_of(' '));
      return value;
    }
  }
  return "unknown";
}

Error huge_pages_error(const std::string& context, std::size_t size, std::size_t huge_page) {
  return Error(Errc::huge_pages_unavailable,
               context + ": needs " + std::to_string(size / huge_page) + " free huge pages of " +
                   std::to_string(huge_page / 1024) +
                   " KiB, but /proc/meminfo has HugePages_Free " + meminfo_value("HugePages_Free") +
                   "; reserve some with `sysctl vm.nr_hugepages=N` or use normal pages");
}

}  // namespace

std::string memfd_name(std::string_view name, std::size_t size) {
  std::string suffix = ",size=" + std::to_string(size);
  std::string out = "shmfd:";
  const std::size_t room = kMaxMemfdName - out.size() - suffix.size();
  out.append(name.substr(0, room));
  out += suffix;
  return out;
}

Result<UniqueFd> create_memfd(std::string_view name, std::size_t size, MemfdOptions options) {
  const std::string full_name = memfd_name(name, size);
  const std::string context =
      "memfd_create(\"" + full_name + "\"" + (options.huge_pages ? ", MFD_HUGETLB" : "") + ")";
  if (size == 0) return fail(Errc::invalid_size, context + ": size must be at least 1 byte");

  unsigned flags = MFD_CLOEXEC | MFD_ALLOW_SEALING | (options.huge_pages ? MFD_HUGETLB : 0U);
  int fd = -1;
  if (g_noexec_seal_supported.load(std::memory_order_relaxed)) {
    fd = ::memfd_create(full_name.c_str(), flags | MFD_NOEXEC_SEAL);
    if (fd < 0 && errno == EINVAL) g_noexec_seal_supported.store(false);
  }
  if (fd < 0) fd = ::memfd_create(full_name.c_str(), flags);
  if (fd < 0) return fail_errno(errno, context);
  UniqueFd owned(fd);

  std::size_t length = size;
  if (options.huge_pages) {
    // hugetlbfs only accepts sizes in whole huge pages; st_blksize is the huge page size.
    struct stat st {};
    if (::fstat(fd, &st) != 0) return fail_errno(errno, context + ": fstat");
    const auto huge = static_cast<std::size_t>(st.st_blksize);
    if (__builtin_add_overflow(size, huge - 1, &length)) {
      return fail(Errc::invalid_size, context + ": size overflows when rounded to huge pages");
    }
    length -= length % huge;
  }
  if (length > static_cast<std::size_t>(INT64_MAX)) {
    return fail(Errc::invalid_size, context + ": size " + std::to_string(size) + " too large");
  }
  if (retry_eintr([&] { return ::ftruncate(fd, static_cast<off_t>(length)); }) != 0) {
    return fail_errno(errno, context + ": ftruncate(" + std::to_string(length) + ")");
  }
  return owned;
}

Result<std::size_t> page_size(MemfdOptions options) {
  if (!options.huge_pages) return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  UniqueFd probe(::memfd_create("shmfd:page-size-probe", MFD_CLOEXEC | MFD_HUGETLB));
  if (!probe) return fail_errno(errno, "memfd_create(\"shmfd:page-size-probe\", MFD_HUGETLB)");
  struct stat st {};
  if (::fstat(probe.get(), &st) != 0) return fail_errno(errno, "fstat(hugetlbfs memfd)");
  return static_cast<std::size_t>(st.st_blksize);
}

Result<WritableBuffer> WritableBuffer::create(std::string_view name, std::size_t size,
                                              MemfdOptions options) {
  auto fd = create_memfd(name, size, options);
  if (!fd) return fail(std::move(fd.error()));
  struct stat st {};
  if (::fstat(fd->get(), &st) != 0) return fail_errno(errno, "fstat(new memfd)");
  const auto length = static_cast<std::size_t>(st.st_size);

  auto mapping =
      Mapping::map(fd->get(), length, Access::read_write, 0, MapOptions{options.populate});
  if (!mapping) {
    // hugetlbfs reserves the pages at mmap time and reports a shortage as ENOMEM.
    if (options.huge_pages && mapping.error().is(std::errc::not_enough_memory)) {
      return fail(huge_pages_error("memfd_create(\"" + memfd_name(name, size) + "\", MFD_HUGETLB)",
                                   length, static_cast<std::size_t>(st.st_blksize)));
    }
    return fail(std::move(mapping.error()));
  }
  return WritableBuffer(std::move(*fd), std::move(*mapping), length);
}

Result<SealedBuffer> WritableBuffer::seal() && {
  mapping_.reset();
  const unsigned seals = required_seals(Guarantee::sealed);
  // F_SEAL_WRITE fails with EBUSY while any writable mapping of the memfd exists, in any
  // process. Ours is gone, and it is MADV_DONTFORK; but a process that another thread forked
  // between our mmap and that madvise holds a copy until it execs or exits (a broker or a
  // program started meanwhile: seen in the reconnect test under ASan). Such a copy goes away
  // within milliseconds, so EBUSY is retried for a while before it is reported.
  int rc = ::fcntl(fd_.get(), F_ADD_SEALS, seals);
  for (int waited_ms = 0; rc != 0 && errno == EBUSY && waited_ms < 500; ++waited_ms) {
    ::usleep(1000);
    rc = ::fcntl(fd_.get(), F_ADD_SEALS, seals);
  }
  if (rc != 0) {
    const int err = errno;
    // Restore the writable state so the caller still holds a usable buffer.
    if (auto m = Mapping::map(fd_.get(), size_, Access::read_write)) mapping_ = std::move(*m);
    return fail_errno(err, "fcntl(fd " + std::to_string(fd_.get()) + ", F_ADD_SEALS, " +
                               seal_names(seals) + ")" +
                               (err == EBUSY ? " (another writable mapping still exists)" : ""));
  }
  return SealedBuffer(std::move(fd_), size_);
}

Result<PoolBuffer> WritableBuffer::into_pool() && {
  const unsigned seals = required_seals(Guarantee::pool);
  if (::fcntl(fd_.get(), F_ADD_SEALS, seals) != 0) {
    return fail_errno(errno, "fcntl(fd " + std::to_string(fd_.get()) + ", F_ADD_SEALS, " +
                                 seal_names(seals) + ")");
  }
  return PoolBuffer(std::move(fd_), std::move(mapping_), size_);
}

}  // namespace shmfd
