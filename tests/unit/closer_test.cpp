// The broker's closer thread: every fd handed to it is closed, wait_idle() means done, and
// destroying the Closer closes what is still queued.
#include "closer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <vector>

#include <gtest/gtest.h>

#include "support/fd_count.hpp"

namespace shmfd::broker {
namespace {

using CloserTest = testing::FdLeakTest;

// A pipe's read end, and its write end to hand over: EOF on the read end proves the close.
struct Pipe {
  UniqueFd read_end, write_end;
  Pipe() {
    int p[2];
    if (::pipe2(p, O_CLOEXEC | O_NONBLOCK) == 0) {
      read_end.reset(p[0]);
      write_end.reset(p[1]);
    }
  }
  bool closed_at_the_other_end() const {
    char c;
    return ::read(read_end.get(), &c, 1) == 0;  // EOF, not EAGAIN
  }
};

TEST_F(CloserTest, ClosesEveryFdItIsGiven) {
  auto closer = std::make_shared<Closer>();
  std::vector<Pipe> pipes(100);
  for (auto& p : pipes) closer->close(std::move(p.write_end));
  closer->wait_idle();
  for (const auto& p : pipes) EXPECT_TRUE(p.closed_at_the_other_end());
}

TEST_F(CloserTest, DeferredFdsCloseThroughItAndItsDestructorDrains) {
  std::vector<Pipe> pipes(50);
  {
    auto closer = std::make_shared<Closer>();
    std::vector<DeferredFd> held;
    for (auto& p : pipes) held.emplace_back(std::move(p.write_end), closer);
    DeferredFd moved = std::move(held.front());  // a moved-from DeferredFd closes nothing
    held.erase(held.begin());
    EXPECT_FALSE(pipes.front().closed_at_the_other_end());
  }  // the DeferredFds, then the last reference to the Closer: all closed by now
  for (const auto& p : pipes) EXPECT_TRUE(p.closed_at_the_other_end());
}

TEST_F(CloserTest, SmallBuffersCloseInlineAndLargeOnesThroughTheCloser) {
  auto closer = std::make_shared<Closer>();
  Pipe small, large;
  {
    DeferredFd a(std::move(small.write_end), closer, DeferredFd::kCloseInlineBelow - 1);
    DeferredFd b(std::move(large.write_end), closer, DeferredFd::kCloseInlineBelow);
    EXPECT_FALSE(a.deferred());
    EXPECT_TRUE(b.deferred());
  }
  EXPECT_TRUE(small.closed_at_the_other_end()) << "closed before the destructor returned";
  closer->wait_idle();
  EXPECT_TRUE(large.closed_at_the_other_end());
}

}  // namespace
}  // namespace shmfd::broker
