#include "shmfd/unique_fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "support/fd_count.hpp"

namespace shmfd {
namespace {

bool is_open(int fd) {
  return ::fcntl(fd, F_GETFD) != -1;
}

int open_devnull() {
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
}

class UniqueFdTest : public testing::FdLeakTest {};

TEST_F(UniqueFdTest, DefaultIsInvalid) {
  UniqueFd sut;
  EXPECT_FALSE(sut.valid());
  EXPECT_FALSE(sut);
  EXPECT_EQ(sut.get(), -1);
}

TEST_F(UniqueFdTest, ClosesOnDestruction) {
  int raw = open_devnull();
  ASSERT_GE(raw, 0);
  {
    UniqueFd sut(raw);
    EXPECT_TRUE(is_open(raw));
  }
  EXPECT_FALSE(is_open(raw));
}

TEST_F(UniqueFdTest, MoveTransfersOwnership) {
  int raw = open_devnull();
  UniqueFd a(raw);
  UniqueFd b(std::move(a));
  EXPECT_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  EXPECT_EQ(b.get(), raw);
  UniqueFd c;
  c = std::move(b);
  EXPECT_EQ(c.get(), raw);
  EXPECT_TRUE(is_open(raw));
}

TEST_F(UniqueFdTest, MoveAssignClosesPreviousFd) {
  int first = open_devnull();
  int second = open_devnull();
  UniqueFd sut(first);
  sut = UniqueFd(second);
  EXPECT_FALSE(is_open(first));
  EXPECT_EQ(sut.get(), second);
}

TEST_F(UniqueFdTest, ReleaseGivesUpOwnershipWithoutClosing) {
  int raw = open_devnull();
  int released = -1;
  {
    UniqueFd sut(raw);
    released = sut.release();
    EXPECT_FALSE(sut.valid());
  }
  EXPECT_EQ(released, raw);
  EXPECT_TRUE(is_open(raw));
  ::close(raw);
}

TEST_F(UniqueFdTest, ResetClosesAndAdopts) {
  int first = open_devnull();
  int second = open_devnull();
  UniqueFd sut(first);
  sut.reset(second);
  EXPECT_FALSE(is_open(first));
  sut.reset();
  EXPECT_FALSE(is_open(second));
  EXPECT_FALSE(sut.valid());
}

TEST_F(UniqueFdTest, DuplicateRefersToSameFileAndIsCloseOnExec) {
  UniqueFd sut(open_devnull());
  auto dup = sut.duplicate();
  ASSERT_TRUE(dup) << dup.error().message();
  EXPECT_NE(dup->get(), sut.get());
  struct stat a {
  }, b{};
  ASSERT_EQ(::fstat(sut.get(), &a), 0);
  ASSERT_EQ(::fstat(dup->get(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(::fcntl(dup->get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC);
}

TEST_F(UniqueFdTest, DuplicateOfInvalidFdIsAnError) {
  UniqueFd sut;
  auto dup = sut.duplicate();
  ASSERT_FALSE(dup);
  EXPECT_TRUE(dup.error().is(std::errc::bad_file_descriptor));
  EXPECT_NE(dup.error().message().find("F_DUPFD_CLOEXEC"), std::string::npos);
}

}  // namespace
}  // namespace shmfd
