#include "shmfd/memfd.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <iostream>
#include <string>

#include <gtest/gtest.h>

#include "shmfd/verify.hpp"
#include "support/bytes.hpp"
#include "support/fd_count.hpp"

namespace shmfd {
namespace {

constexpr std::size_t kSize = 3 * 4096 + 17;  // not a whole number of pages on purpose

std::string fd_link(int fd) {
  std::array<char, 512> buf{};
  auto n = ::readlink(("/proc/self/fd/" + std::to_string(fd)).c_str(), buf.data(), buf.size());
  return n > 0 ? std::string(buf.data(), static_cast<std::size_t>(n)) : std::string();
}

using testing::fill;
using testing::holds_pattern;

class MemfdTest : public testing::FdLeakTest {};

TEST_F(MemfdTest, NameExplainsItselfInProc) {
  auto sut = create_memfd("cam0", 4096);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(fd_link(sut->get()), "/memfd:shmfd:cam0,size=4096 (deleted)");
}

TEST_F(MemfdTest, LongNamesAreTruncatedToTheKernelLimit) {
  const std::string name(400, 'x');
  EXPECT_EQ(memfd_name(name, 4096).size(), 249U);
  auto sut = create_memfd(name, 4096);
  ASSERT_TRUE(sut) << sut.error().message();
}

TEST_F(MemfdTest, IsCloseOnExecSealableAndSized) {
  auto sut = create_memfd("flags", kSize);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(::fcntl(sut->get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
  const int seals = ::fcntl(sut->get(), F_GET_SEALS);
  ASSERT_GE(seals, 0);
  EXPECT_EQ(seals & F_SEAL_SEAL, 0) << "MFD_ALLOW_SEALING missing";
  struct stat st {};
  ASSERT_EQ(::fstat(sut->get(), &st), 0);
  EXPECT_EQ(static_cast<std::size_t>(st.st_size), kSize);
}

TEST_F(MemfdTest, IsNotExecutableWhereTheKernelSupportsNoexecSeal) {
  // MFD_NOEXEC_SEAL (Linux 6.3) also adds F_SEAL_EXEC; older kernels refuse the flag (EINVAL).
  const int probe = ::memfd_create("probe", MFD_CLOEXEC | MFD_ALLOW_SEALING | 0x0008U);
  if (probe < 0) GTEST_SKIP() << "kernel has no MFD_NOEXEC_SEAL (needs Linux 6.3)";
  ::close(probe);
  auto sut = create_memfd("noexec", 4096);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_NE(::fcntl(sut->get(), F_GET_SEALS) & 0x0020 /* F_SEAL_EXEC */, 0);
  struct stat st {};
  ASSERT_EQ(::fstat(sut->get(), &st), 0);
  EXPECT_EQ(st.st_mode & 0111, 0U);
}

TEST_F(MemfdTest, ZeroSizeIsRefused) {
  auto sut = WritableBuffer::create("empty", 0);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::invalid_size));
  EXPECT_NE(sut.error().message().find("shmfd:empty"), std::string::npos);
}

TEST_F(MemfdTest, SealedBufferKeepsContentAndRefusesEveryWrite) {
  auto writable = WritableBuffer::create("sealed", kSize);
  ASSERT_TRUE(writable) << writable.error().message();
  fill(writable->bytes(), 7);
  auto sut = std::move(*writable).seal();
  ASSERT_TRUE(sut) << sut.error().message();

  const int fd = sut->fd();
  EXPECT_EQ(static_cast<unsigned>(::fcntl(fd, F_GET_SEALS)) & required_seals(Guarantee::sealed),
            required_seals(Guarantee::sealed));
  // write(2)
  const char byte = 1;
  EXPECT_EQ(::pwrite(fd, &byte, 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  // ftruncate, both ways
  EXPECT_EQ(::ftruncate(fd, 1), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ftruncate(fd, kSize * 2), -1);
  EXPECT_EQ(errno, EPERM);
  // a new writable shared mapping
  void* rw = ::mmap(nullptr, kSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  EXPECT_EQ(rw, MAP_FAILED);
  EXPECT_EQ(errno, EPERM);
  // more seals (F_SEAL_SEAL)
  EXPECT_EQ(::fcntl(fd, F_ADD_SEALS, F_SEAL_FUTURE_WRITE), -1);
  EXPECT_EQ(errno, EPERM);

  auto view = sut->map();
  ASSERT_TRUE(view) << view.error().message();
  EXPECT_TRUE(holds_pattern(view->bytes(), 7));
  // Upgrading a read-only mapping to writable is refused too.
  void* base = const_cast<std::byte*>(view->bytes().data());
  EXPECT_EQ(::mprotect(base, 4096, PROT_READ | PROT_WRITE), -1);
}

// A child forked while a buffer is being filled (by another thread starting a program, say)
// must not make sealing fail: writable mappings are not inherited (MADV_DONTFORK). Found by
// the reconnect test, whose main thread forks a broker while its producer thread seals.
TEST_F(MemfdTest, SealingSucceedsWhileAChildForkedMeanwhileLives) {
  auto buffer = WritableBuffer::create("forked", 4096);
  ASSERT_TRUE(buffer);
  std::fill(buffer->bytes().begin(), buffer->bytes().end(), std::byte{7});
  const pid_t child = ::fork();
  if (child == 0) {
    ::pause();
    ::_exit(0);
  }
  ASSERT_GT(child, 0);
  auto sealed = std::move(*buffer).seal();
  ::kill(child, SIGKILL);
  ::waitpid(child, nullptr, 0);
  ASSERT_TRUE(sealed) << sealed.error().message();
  EXPECT_TRUE(verify_buffer(sealed->fd(), Guarantee::sealed, 4096));
}

TEST_F(MemfdTest, PoolKeepsProducerMappingWritableAndNoOtherWriter) {
  auto writable = WritableBuffer::create("pool", kSize);
  ASSERT_TRUE(writable) << writable.error().message();
  auto sut = std::move(*writable).into_pool();
  ASSERT_TRUE(sut) << sut.error().message();
  const int fd = sut->fd();

  // The producer's mapping still writes, and readers see it.
  fill(sut->bytes(), 42);
  auto reader = Mapping::map(fd, kSize, Access::read_only);
  ASSERT_TRUE(reader) << reader.error().message();
  EXPECT_TRUE(holds_pattern(reader->bytes(), 42));
  fill(sut->bytes(), 43);
  EXPECT_TRUE(holds_pattern(reader->bytes(), 43));

  // Nobody gets another writable mapping, write(2) or a size change.
  auto writer = Mapping::map(fd, kSize, Access::read_write);
  ASSERT_FALSE(writer);
  EXPECT_TRUE(writer.error().is(std::errc::operation_not_permitted)) << writer.error().message();
  const char byte = 1;
  EXPECT_EQ(::pwrite(fd, &byte, 1, 0), -1);
  EXPECT_EQ(errno, EPERM);
  EXPECT_EQ(::ftruncate(fd, 1), -1);
  EXPECT_EQ(errno, EPERM);
  void* base = const_cast<std::byte*>(reader->bytes().data());
  EXPECT_EQ(::mprotect(base, 4096, PROT_READ | PROT_WRITE), -1);
}

TEST_F(MemfdTest, SealFailsWhileAnotherWritableMappingExistsAndBufferSurvives) {
  auto sut = WritableBuffer::create("busy", kSize);
  ASSERT_TRUE(sut) << sut.error().message();
  auto other = Mapping::map(sut->fd(), kSize, Access::read_write);
  ASSERT_TRUE(other) << other.error().message();

  auto sealed = std::move(*sut).seal();
  ASSERT_FALSE(sealed);
  EXPECT_TRUE(sealed.error().is(std::errc::device_or_resource_busy));
  EXPECT_NE(sealed.error().message().find("writable mapping"), std::string::npos);

  // The failed seal left the buffer writable and usable; once the other mapping is gone it seals.
  fill(sut->bytes(), 9);  // NOLINT(bugprone-use-after-move): seal() restores on failure
  other->reset();
  auto retry = std::move(*sut).seal();
  ASSERT_TRUE(retry) << retry.error().message();
  auto view = retry->map();
  ASSERT_TRUE(view);
  EXPECT_TRUE(holds_pattern(view->bytes(), 9));
}

TEST_F(MemfdTest, PopulatedBufferIsUsable) {
  auto sut = WritableBuffer::create("populated", 1 << 20, MemfdOptions{.populate = true});
  ASSERT_TRUE(sut) << sut.error().message();
  fill(sut->bytes(), 1);
  EXPECT_TRUE(holds_pattern(sut->bytes(), 1));
}

TEST_F(MemfdTest, MappingAtUnalignedOffsetSeesTheRightBytes) {
  auto buffer = WritableBuffer::create("offset", kSize);
  ASSERT_TRUE(buffer);
  fill(buffer->bytes(), 3);
  auto sut = Mapping::map(buffer->fd(), 100, Access::read_only, 4096 + 5);
  ASSERT_TRUE(sut) << sut.error().message();
  ASSERT_EQ(sut->size(), 100U);
  EXPECT_TRUE(
      std::equal(sut->bytes().begin(), sut->bytes().end(), buffer->bytes().begin() + 4096 + 5));
  EXPECT_THROW((void)sut->writable_bytes(), std::logic_error);
}

}  // namespace
}  // namespace shmfd

namespace shmfd {
namespace {

// A process forked by another thread between a buffer's mmap and its MADV_DONTFORK holds a copy
// of the writable mapping until it execs or exits; sealing waits for that instead of failing.
TEST_F(MemfdTest, SealingWaitsOutAWritableMappingAForkedChildStillHolds) {
  auto buffer = WritableBuffer::create("forked", 4096);
  ASSERT_TRUE(buffer);
  // The race, made certain: a second writable mapping without MADV_DONTFORK, inherited by a
  // child that lives 50 ms; the parent drops its own copy at once.
  void* extra = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, buffer->fd(), 0);
  ASSERT_NE(extra, MAP_FAILED);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::usleep(50'000);
    ::_exit(0);
  }
  ASSERT_EQ(::munmap(extra, 4096), 0);
  auto sealed = std::move(*buffer).seal();
  EXPECT_TRUE(sealed) << sealed.error().message();
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
}

}  // namespace
}  // namespace shmfd
