#include "shmfd/verify.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/memfd.hpp"
#include "support/fd_count.hpp"

namespace shmfd {
namespace {

constexpr std::uint64_t kSize = 8192;

class VerifyTest : public testing::FdLeakTest {
 protected:
  // A memfd of kSize bytes carrying exactly `seals`.
  static UniqueFd memfd_with_seals(unsigned seals) {
    auto fd = create_memfd("verify", kSize);
    EXPECT_TRUE(fd) << fd.error().message();
    if (seals != 0) {
      EXPECT_EQ(::fcntl(fd->get(), F_ADD_SEALS, seals), 0) << std::strerror(errno);
    }
    return std::move(*fd);
  }

  // A kSize buffer, sealed (`sealed`) or made a pool.
  static Result<SealedBuffer> sealed_buffer() {
    return WritableBuffer::create("verify", kSize).and_then([](WritableBuffer b) {
      return std::move(b).seal();
    });
  }
  static Result<PoolBuffer> pool_buffer() {
    return WritableBuffer::create("verify", kSize).and_then([](WritableBuffer b) {
      return std::move(b).into_pool();
    });
  }

  static void expect_not_memfd(int fd, const std::string& kind) {
    auto r = verify_buffer(fd, Guarantee::sealed, 1);
    ASSERT_FALSE(r) << kind << " was accepted";
    EXPECT_TRUE(r.error().is(Errc::not_memfd)) << r.error().message();
    EXPECT_NE(r.error().message().find("not a memfd"), std::string::npos) << r.error().message();
    EXPECT_NE(r.error().message().find("fd " + std::to_string(fd)), std::string::npos);
  }
};

TEST_F(VerifyTest, SealedBufferPassesBothLevels) {
  auto sealed = sealed_buffer();
  ASSERT_TRUE(sealed) << sealed.error().message();

  auto sut = verify_buffer(sealed->fd(), Guarantee::sealed, kSize);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(sut->size, kSize);
  EXPECT_FALSE(sut->huge_pages);
  EXPECT_TRUE(verify_buffer(sealed->fd(), Guarantee::pool, kSize));
}

TEST_F(VerifyTest, PoolBufferPassesPoolLevelButNotSealed) {
  auto pool = pool_buffer();
  ASSERT_TRUE(pool) << pool.error().message();

  EXPECT_TRUE(verify_buffer(pool->fd(), Guarantee::pool, kSize));
  auto sut = verify_buffer(pool->fd(), Guarantee::sealed, kSize);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::missing_seals));
  EXPECT_NE(sut.error().message().find("F_SEAL_WRITE"), std::string::npos) << sut.error().message();
}

TEST_F(VerifyTest, RefusesPipes) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0);
  UniqueFd r(p[0]), w(p[1]);
  expect_not_memfd(r.get(), "pipe read end");
  expect_not_memfd(w.get(), "pipe write end");
}

TEST_F(VerifyTest, RefusesSockets) {
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
  UniqueFd a(sv[0]), b(sv[1]);
  expect_not_memfd(a.get(), "socket");
}

TEST_F(VerifyTest, RefusesRegularFile) {
  // Unlinked like a memfd, but a file of the filesystem the tests run in (usually a disk).
  std::string path = "verify-test-XXXXXX";
  UniqueFd file(::mkstemp(path.data()));
  ASSERT_TRUE(file) << std::strerror(errno);
  ::unlink(path.c_str());
  ASSERT_EQ(::ftruncate(file.get(), kSize), 0);
  expect_not_memfd(file.get(), "regular file");
}

TEST_F(VerifyTest, RefusesSharedMemoryFileWithAName) {
  const std::string name = "/shmfd-verify-test-" + std::to_string(::getpid());
  UniqueFd shm(::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  ASSERT_TRUE(shm) << std::strerror(errno);
  ::shm_unlink(name.c_str());
  ASSERT_EQ(::ftruncate(shm.get(), kSize), 0);
  expect_not_memfd(shm.get(), "shm_open file");
}

TEST_F(VerifyTest, RefusesDevZeroEventfdTimerfdEpollAndDirectories) {
  UniqueFd zero(::open("/dev/zero", O_RDWR | O_CLOEXEC));
  UniqueFd event(::eventfd(0, EFD_CLOEXEC));
  UniqueFd timer(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC));
  UniqueFd epoll(::epoll_create1(EPOLL_CLOEXEC));
  UniqueFd dir(::open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  for (const auto* fd : {&zero, &event, &timer, &epoll, &dir}) ASSERT_TRUE(*fd);
  expect_not_memfd(zero.get(), "/dev/zero");
  expect_not_memfd(event.get(), "eventfd");
  expect_not_memfd(timer.get(), "timerfd");
  expect_not_memfd(epoll.get(), "epoll");
  expect_not_memfd(dir.get(), "directory");
}

TEST_F(VerifyTest, RefusesClosedFd) {
  auto sut = verify_buffer(12345, Guarantee::sealed, 1);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(std::errc::bad_file_descriptor)) << sut.error().message();
}

TEST_F(VerifyTest, RefusesUnsealedMemfd) {
  UniqueFd fd = memfd_with_seals(0);
  for (Guarantee level : {Guarantee::sealed, Guarantee::pool}) {
    auto sut = verify_buffer(fd.get(), level, 1);
    ASSERT_FALSE(sut);
    EXPECT_TRUE(sut.error().is(Errc::missing_seals)) << sut.error().message();
  }
}

TEST_F(VerifyTest, RefusesEachMissingSealOfEachLevel) {
  // The seal sets are spelled out here, not taken from required_seals(), so that a change to
  // what a level requires fails this test.
  const std::pair<Guarantee, std::vector<unsigned>> levels[] = {
      {Guarantee::sealed, {F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_SEAL}},
      {Guarantee::pool, {F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_FUTURE_WRITE, F_SEAL_SEAL}},
  };
  for (const auto& [level, seals] : levels) {
    unsigned all = 0;
    for (unsigned seal : seals) all |= seal;
    UniqueFd complete = memfd_with_seals(all);
    EXPECT_TRUE(verify_buffer(complete.get(), level, 1)) << to_string(level);
    for (unsigned seal : seals) {
      UniqueFd fd = memfd_with_seals(all & ~seal);
      auto sut = verify_buffer(fd.get(), level, 1);
      ASSERT_FALSE(sut) << to_string(level) << " accepted without " << seal_names(seal);
      EXPECT_TRUE(sut.error().is(Errc::missing_seals));
      EXPECT_NE(sut.error().message().find("lacks " + seal_names(seal)), std::string::npos)
          << sut.error().message();
    }
  }
}

TEST_F(VerifyTest, RefusesBufferSmallerThanTheExtent) {
  auto sealed = sealed_buffer();
  ASSERT_TRUE(sealed) << sealed.error().message();

  EXPECT_TRUE(verify_buffer(sealed->fd(), Guarantee::sealed, kSize));
  auto sut = verify_buffer(sealed->fd(), Guarantee::sealed, kSize + 1);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::buffer_too_small));
  EXPECT_NE(sut.error().message().find("holds 8192 bytes but its layout needs 8193"),
            std::string::npos)
      << sut.error().message();
}

// The broker forwards a read-only reopen of each memfd. A sender who took the read bits away
// (fchmod 0) makes that open fail for any uid but root: a refusal (not-readable), not a fault.
TEST(ReopenTest, ReopensReadOnlyAndRefusesAMemfdWhoseModeForbidsReading) {
  auto buffer = WritableBuffer::create("reopen", 4096);
  ASSERT_TRUE(buffer);
  auto sealed = std::move(*buffer).seal();
  ASSERT_TRUE(sealed);
  auto copy = reopen_read_only(sealed->fd());
  ASSERT_TRUE(copy) << copy.error().message();
  EXPECT_EQ(::fcntl(copy->get(), F_GETFL) & O_ACCMODE, O_RDONLY);
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the sender as another uid";
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(65534) != 0 || ::setuid(65534) != 0) _exit(100);
    auto mine = WritableBuffer::create("unreadable", 4096);
    if (!mine) _exit(101);
    auto done = std::move(*mine).seal();
    if (!done || ::fchmod(done->fd(), 0) != 0) _exit(102);
    auto refused = reopen_read_only(done->fd());
    _exit(!refused && refused.error().is(Errc::not_readable) ? 0 : 1);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(GuaranteeTest, SealNamesAreReadable) {
  EXPECT_EQ(seal_names(0), "none");
  EXPECT_EQ(seal_names(F_SEAL_SHRINK | F_SEAL_GROW), "F_SEAL_SHRINK|F_SEAL_GROW");
  EXPECT_EQ(missing_seals(Guarantee::pool, required_seals(Guarantee::sealed)), 0U);
  EXPECT_EQ(missing_seals(Guarantee::sealed, required_seals(Guarantee::pool)),
            static_cast<unsigned>(F_SEAL_WRITE));
}

}  // namespace
}  // namespace shmfd
