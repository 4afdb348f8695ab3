// shmfd-broker as a real process: signals, a second broker on the same path, and clients that
// die with kill -9. The broker's own fd count (/proc/PID/fd) must return to its baseline.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_harness.hpp"
#include "support/frames.hpp"
#include "support/program.hpp"

namespace shmfd {
namespace {

using testing::SubprocessBroker;

// A child process that publishes 4 KiB frames on `topic` until it is killed.
pid_t spawn_endless_producer(const std::string& socket, const std::string& topic, int ready_fd) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  auto producer = Producer::connect(socket, "doomed-producer");
  if (!producer || !producer->advertise(topic, LayoutKind::blob)) ::_exit(1);
  (void)!::write(ready_fd, "r", 1);
  for (std::uint64_t seq = 1;; ++seq) {
    if (!testing::publish_pattern(*producer, topic, seq, 4096)) ::_exit(2);
  }
}

// A child process that subscribes and then never reads.
pid_t spawn_stuck_consumer(const std::string& socket, const std::string& topic, int ready_fd) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  auto consumer = Consumer::connect(socket, "stuck-consumer");
  if (!consumer || !consumer->subscribe(topic, 8)) ::_exit(1);
  (void)!::write(ready_fd, "r", 1);
  for (;;) ::pause();
}

void wait_ready(int fd) {
  char c = 0;
  ASSERT_EQ(::read(fd, &c, 1), 1) << "the child could not start";
}

void kill_and_reap(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

TEST(BrokerProcessTest, SigtermClosesClientsRemovesTheSocketAndExitsZero) {
  SubprocessBroker broker;
  ASSERT_TRUE(broker.listening()) << broker.output();
  auto consumer = Consumer::connect(broker.path());
  ASSERT_TRUE(consumer);
  ASSERT_TRUE(consumer->subscribe("t"));

  const int status = broker.stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << broker.output();
  EXPECT_NE(::access(broker.path().c_str(), F_OK), 0) << "socket file left behind";
  auto event = consumer->receive();
  ASSERT_FALSE(event);
  EXPECT_TRUE(event.error().is(Errc::disconnected)) << event.error().message();
}

TEST(BrokerProcessTest, ALiveBrokerIsNotReplacedButAStaleSocketIs) {
  SubprocessBroker first;
  ASSERT_TRUE(first.listening()) << first.output();
  {
    SubprocessBroker second({}, first.path());
    const int status = second.wait();
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    EXPECT_NE(second.output().find("another shmfd-broker is running there"), std::string::npos)
        << second.output();
  }
  first.stop(SIGKILL);  // dies without cleaning up: its socket file stays
  ASSERT_EQ(::access(first.path().c_str(), F_OK), 0);
  SubprocessBroker third({}, first.path());
  EXPECT_TRUE(third.listening()) << third.output();
  EXPECT_TRUE(Consumer::connect(third.path()));
}

TEST(BrokerProcessTest, KilledProducerEndsTheStreamAndTheBrokerKeepsServing) {
  SubprocessBroker broker;
  ASSERT_TRUE(broker.listening()) << broker.output();
  const std::size_t baseline = broker.fd_count();
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  {
    auto consumer = Consumer::connect(broker.path(), "watcher");
    ASSERT_TRUE(consumer);
    ASSERT_TRUE(consumer->subscribe("doomed", 4, Backpressure::block_producer));
    const pid_t producer = spawn_endless_producer(broker.path(), "doomed", ready[1]);
    wait_ready(ready[0]);
    for (int i = 0; i < 20; ++i) {
      auto event = consumer->receive();
      ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
      EXPECT_TRUE(testing::holds_pattern(std::get<Frame>(*event)));
    }
    kill_and_reap(producer);  // mid-stream, probably blocked on a full queue
    for (;;) {
      auto event = consumer->receive();
      ASSERT_TRUE(event) << event.error().message();
      if (auto* end = std::get_if<EndOfStream>(&*event)) {
        EXPECT_NE(end->reason.find("doomed-producer"), std::string::npos) << end->reason;
        break;
      }
    }
    // The broker still serves: a new producer and consumer exchange a frame.
    auto producer2 = Producer::connect(broker.path());
    auto consumer2 = Consumer::connect(broker.path());
    ASSERT_TRUE(producer2 && consumer2);
    ASSERT_TRUE(consumer2->subscribe("fresh"));
    ASSERT_TRUE(producer2->advertise("fresh", LayoutKind::blob));
    ASSERT_TRUE(testing::publish_pattern(*producer2, "fresh", 1, 128));
    auto event = consumer2->receive();
    ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
  }
  ::close(ready[0]);
  ::close(ready[1]);
  EXPECT_TRUE(broker.wait_for_fd_count(baseline))
      << "broker holds " << broker.fd_count() << " fds, baseline " << baseline;
}

TEST(BrokerProcessTest, KilledConsumerWithQueuedFramesIsCleanedUp) {
  SubprocessBroker broker;
  ASSERT_TRUE(broker.listening()) << broker.output();
  const std::size_t baseline = broker.fd_count();
  int ready[2];
  ASSERT_EQ(::pipe2(ready, O_CLOEXEC), 0);
  {
    const pid_t stuck = spawn_stuck_consumer(broker.path(), "q", ready[1]);
    wait_ready(ready[0]);
    auto healthy = Consumer::connect(broker.path(), "healthy");
    ASSERT_TRUE(healthy);
    ASSERT_TRUE(healthy->subscribe("q", 32, Backpressure::block_producer));
    auto producer = Producer::connect(broker.path());
    ASSERT_TRUE(producer);
    ASSERT_TRUE(producer->advertise("q", LayoutKind::blob));
    for (std::uint64_t seq = 1; seq <= 30; ++seq) {
      ASSERT_TRUE(testing::publish_pattern(*producer, "q", seq, 4096));
    }
    ASSERT_TRUE(producer->advertise("sync", LayoutKind::blob));  // all 30 routed by now
    // The stuck consumer's queue pins frames in the broker (fds beyond the 3 clients).
    EXPECT_GT(broker.fd_count(), baseline + 3);
    kill_and_reap(stuck);
    for (std::uint64_t seq = 1; seq <= 30; ++seq) {
      auto event = healthy->receive();
      ASSERT_TRUE(event && std::holds_alternative<Frame>(*event));
      EXPECT_EQ(std::get<Frame>(*event).sequence(), seq);
    }
  }
  ::close(ready[0]);
  ::close(ready[1]);
  EXPECT_TRUE(broker.wait_for_fd_count(baseline))
      << "broker holds " << broker.fd_count() << " fds, baseline " << baseline;
}

// Two brokers started at the same instant on one path: exactly one runs (it holds PATH.lock);
// before the lock, both ran about one time in ten.
TEST(BrokerOperationsTest, TwoBrokersStartedAtOnceNeverBothRun) {
  for (int round = 0; round < 10; ++round) {
    testing::TempDir dir;
    const std::string path = dir.path() + "/broker.sock";
    testing::Program a({SHMFD_BROKER_BIN, "--socket", path});
    testing::Program b({SHMFD_BROKER_BIN, "--socket", path});
    const bool a_runs = a.wait_for("listening on");
    const bool b_runs = b.wait_for("listening on");
    ASSERT_NE(a_runs, b_runs) << "round " << round << ":\n" << a.output() << "\n" << b.output();
    const std::string& refused = a_runs ? b.output() : a.output();
    EXPECT_NE(refused.find("another shmfd-broker is running there"), std::string::npos) << refused;
    (a_runs ? a : b).signal(SIGTERM);
    EXPECT_EQ((a_runs ? a : b).wait(), 0);
    (a_runs ? b : a).wait();
  }
}

// SIGHUP reloads --policy; a policy with a mistake is reported and the one in force kept, and
// the broker keeps serving either way.
TEST(BrokerOperationsTest, SighupReloadsThePolicyAndKeepsItOnAMistake) {
  testing::TempDir dir;
  const std::string policy = dir.path() + "/policy";
  std::ofstream(policy) << "subscribe * *\n";
  const std::string path = dir.path() + "/broker.sock";
  testing::Program broker(
      {SHMFD_BROKER_BIN, "--socket", path, "--policy", policy, "--log-level", "info"});
  ASSERT_TRUE(broker.wait_for("listening on")) << broker.output();
  std::ofstream(policy) << "subscribe * *\npublish cam/* group:video\n";
  broker.signal(SIGHUP);
  EXPECT_TRUE(broker.wait_for("reloaded the policy from " + policy)) << broker.output();
  std::ofstream(policy) << "subscribe * *\npublish\n";
  broker.signal(SIGHUP);
  EXPECT_TRUE(broker.wait_for("keeping the policy in force")) << broker.output();
  EXPECT_NE(broker.output().find(policy + ":2"), std::string::npos) << broker.output();
  EXPECT_TRUE(Consumer::connect(path)) << "the broker stopped serving";
  broker.signal(SIGTERM);
  EXPECT_EQ(broker.wait(), 0) << broker.output();
}

TEST(BrokerOperationsTest, APolicyThatIsADirectoryIsRefused) {
  testing::TempDir dir;
  testing::Program broker(
      {SHMFD_BROKER_BIN, "--socket", dir.path() + "/b.sock", "--policy", "/tmp"});
  EXPECT_EQ(broker.wait(), 2) << broker.output();
  EXPECT_NE(broker.output().find("policy /tmp is not a regular file"), std::string::npos)
      << broker.output();
}

// The limit on socket paths is the kernel's (107 bytes), not the broker's: a temporary name
// with a suffix used to push paths of 97 to 107 bytes over it.
TEST(BrokerOperationsTest, SocketPathsUpToTheKernelLimitWork) {
  testing::TempDir dir;
  std::string path = dir.path() + "/";
  path += std::string(107 - path.size(), 's');
  ASSERT_EQ(path.size(), 107U);
  testing::Program broker({SHMFD_BROKER_BIN, "--socket", path});
  ASSERT_TRUE(broker.wait_for("listening on")) << broker.output();
  EXPECT_TRUE(Consumer::connect(path));
  broker.signal(SIGTERM);
  EXPECT_EQ(broker.wait(), 0) << broker.output();
  EXPECT_NE(::access(path.c_str(), F_OK), 0) << "socket file left behind";
  testing::Program too_long({SHMFD_BROKER_BIN, "--socket", path + "s"});
  EXPECT_EQ(too_long.wait(), 1);
  EXPECT_NE(too_long.output().find("108 bytes; 1 to 107 allowed"), std::string::npos)
      << too_long.output();
}

// A non-root user without XDG_RUNTIME_DIR is told what was tried and what to do.
TEST(BrokerOperationsTest, NonRootWithoutXdgRuntimeDirIsToldWhatToDo) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run the broker as another uid";
  testing::Program broker({"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                           "/usr/bin/env", "-u", "XDG_RUNTIME_DIR", SHMFD_BROKER_BIN});
  EXPECT_EQ(broker.wait(), 1) << broker.output();
  EXPECT_NE(broker.output().find("/run/shmfd/broker.sock"), std::string::npos) << broker.output();
  EXPECT_NE(broker.output().find("set XDG_RUNTIME_DIR or pass --socket PATH"), std::string::npos)
      << broker.output();
}

}  // namespace
}  // namespace shmfd
