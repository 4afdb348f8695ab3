// shmfd::restrict_syscalls(): the steady-state allow list holds real clients (a consumer of pool
// frames on channels, a producer of sealed frames) in a child that locks itself down, and
// stops everything else. Each locked process is a child: the lock cannot be lifted.
#include "shmfd/sandbox.hpp"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <thread>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"
#include "support/frames.hpp"

namespace shmfd {
namespace {

bool has(const std::vector<std::string>& names, const std::string& name) {
  return std::count(names.begin(), names.end(), name) == 1;
}

// How a child ended, for a failure message.
std::string ended(int status) {
  if (WIFEXITED(status)) return "exited with " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return "killed by signal " + std::to_string(WTERMSIG(status));
  return "status " + std::to_string(status);
}

int wait_child(pid_t child) {
  int status = 0;
  EXPECT_EQ(::waitpid(child, &status, 0), child);
  return status;
}

TEST(SandboxTest, TheListsHoldWhatServingTakesAndNothingThatReachesOutside) {
  const auto steady = steady_state_syscalls();
  EXPECT_TRUE(std::is_sorted(steady.begin(), steady.end()));
  for (const char* needed : {"recvmsg", "sendmsg", "futex", "futex_waitv", "mmap", "munmap",
                             "memfd_create", "fcntl", "fstatfs", "close", "exit_group"}) {
    EXPECT_TRUE(has(steady, needed)) << needed;
  }
  for (const char* outside : {"open", "openat", "socket", "connect", "bind", "execve", "clone",
                              "clone3", "ptrace", "kill", "unlink"}) {
    EXPECT_FALSE(has(steady, outside)) << outside;
  }
  const auto all = allowed_syscalls({.allow = {"openat", "recvmsg", "openat"}, .threads = true});
  EXPECT_TRUE(std::is_sorted(all.begin(), all.end()));
  EXPECT_TRUE(has(all, "openat"));   // once
  EXPECT_TRUE(has(all, "recvmsg"));  // once
  EXPECT_TRUE(has(all, "clone3"));
  EXPECT_EQ(allowed_syscalls().size(), steady.size() + sanitizer_syscalls().size());
}

TEST(SandboxTest, AnUnknownNameIsRefusedAndInstallsNothing) {
  const pid_t child = ::fork();
  if (child == 0) {
    auto locked = restrict_syscalls({.allow = {"recvmsg", "no_such_call"}});
    if (locked || !locked.error().is(Errc::invalid_argument)) ::_exit(1);
    if (locked.error().message().find("'no_such_call'") == std::string::npos) ::_exit(2);
    const int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);  // still allowed
    ::_exit(fd >= 0 ? 0 : 3);
  }
  const int status = wait_child(child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ended(status);
}

// A child that locks itself (kill on violation) and runs `body`, which returns its exit code;
// then it opens a file, which must kill it with SIGSYS. What the parent does meanwhile is
// `parent`. `ready` tells the parent the child is locked.
template <typename Child, typename Parent>
void locked_child(SyscallPolicy policy, Child body, Parent parent) {
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    ::close(ready[0]);
    const int code = body(ready[1], policy);
    if (code != 0) ::_exit(code);
    (void)!::write(ready[1], "d", 1);  // done: what follows must kill it
    (void)::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    ::_exit(100);
  }
  ::close(ready[1]);
  char c = 0;
  const bool locked = ::read(ready[0], &c, 1) == 1 && c == 'l';
  if (locked) parent();
  const bool done = locked && ::read(ready[0], &c, 1) == 1 && c == 'd';
  ::close(ready[0]);
  const int status = wait_child(child);
  EXPECT_TRUE(locked) << "the child did not lock itself: " << ended(status);
  EXPECT_TRUE(done) << "the locked child did not finish: " << ended(status);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
      << "socket() after the lock: " << ended(status);
}

class LockedClientTest : public testing::FdLeakTest {};

TEST_F(LockedClientTest, AConsumerReceivesPoolFramesOnChannels) {
  testing::InProcessBroker broker;
  constexpr std::uint64_t kFrames = 40;
  std::optional<Producer> producer;
  locked_child(
      {},
      [&](int ready, const SyscallPolicy& policy) {
        auto consumer = Consumer::connect(broker.path(), "locked-consumer");
        if (!consumer || !consumer->uses_channels() ||
            !consumer->subscribe("locked/pool", 4, Backpressure::block_producer))
          return 10;
        if (!restrict_syscalls(policy)) return 11;
        (void)!::write(ready, "l", 1);
        for (std::uint64_t n = 1; n <= kFrames; ++n) {
          auto event = consumer->receive();
          if (!event || !std::holds_alternative<Frame>(*event)) return 12;
          const Frame& frame = std::get<Frame>(*event);
          if (!frame.in_pool() || frame.sequence() != n || !testing::holds_pattern(frame)) {
            std::fprintf(stderr, "frame %llu: in pool %d, sequence %llu, pattern %d\n",
                         static_cast<unsigned long long>(n), frame.in_pool(),
                         static_cast<unsigned long long>(frame.sequence()),
                         testing::holds_pattern(frame));
            return 13;
          }
        }
        return 0;
      },
      [&] {
        auto p = Producer::connect(broker.path(), "pool-producer");
        ASSERT_TRUE(p);
        ASSERT_TRUE(p->advertise("locked/pool", LayoutKind::blob, Guarantee::pool));
        auto pool = p->create_pool("locked/pool", 4096, 4);
        ASSERT_TRUE(pool) << pool.error().message();
        for (std::uint64_t n = 1; n <= kFrames; ++n) {
          auto slot = p->acquire(*pool, Wait::block);
          ASSERT_TRUE(slot) << slot.error().message();
          for (std::size_t i = 0; i < slot->bytes.size(); ++i)
            slot->bytes[i] = testing::pattern_byte(n, i);
          ASSERT_TRUE(p->publish("locked/pool", *slot, blob_layout(slot->bytes.size())));
        }
        producer.emplace(std::move(*p));  // until the child has them all
      });
}

TEST_F(LockedClientTest, AProducerPublishesSealedFrames) {
  testing::InProcessBroker broker;
  constexpr std::uint64_t kFrames = 20;
  auto consumer = Consumer::connect(broker.path(), "sealed-consumer");
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("locked/sealed", 32));
  locked_child(
      {},
      [&](int ready, const SyscallPolicy& policy) {
        auto producer = Producer::connect(broker.path(), "locked-producer");
        if (!producer || !producer->advertise("locked/sealed", LayoutKind::blob)) return 10;
        if (!restrict_syscalls(policy)) return 11;
        (void)!::write(ready, "l", 1);
        for (std::uint64_t n = 1; n <= kFrames; ++n) {
          if (!testing::publish_pattern(*producer, "locked/sealed", n, 8192)) return 12;
        }
        return 0;
      },
      [&] {
        for (std::uint64_t n = 1; n <= kFrames; ++n) {
          auto event = consumer->receive();
          ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
          EXPECT_TRUE(testing::holds_pattern(std::get<Frame>(*event)));
        }
      });
}

// Starting a thread after the lock takes `threads`; without it, the first clone kills.
TEST(SandboxTest, ThreadsStartOnlyWhenAllowed) {
  for (const bool threads : {true, false}) {
    const pid_t child = ::fork();
    if (child == 0) {
      if (!restrict_syscalls({.threads = threads})) ::_exit(10);
      std::thread([] {}).join();
      ::_exit(0);
    }
    const int status = wait_child(child);
    if (threads) {
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << ended(status);
    } else {
      EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS) << ended(status);
    }
  }
}

}  // namespace
}  // namespace shmfd
