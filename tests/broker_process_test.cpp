// shmfd-broker as a real process: signals, a second broker on the same path, and clients that
// die with kill -9. The broker's own fd count (/proc/PID/fd) must return to its baseline.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "support/broker_harness.hpp"
#include "support/frames.hpp"

namespace shmfd {
namespace {

using testing::SubprocessBroker;

// A child process that publishes 4 KiB frames on `topic` until it is killed.
pid_t spawn_endless_producer(const std::string& socket, const std::string& topic, int ready_fd) {
  const pid_t pid = ::fork();
  if (pid != 0) return pid;
  auto producer = Producer::connect(socket, "doomed-producer");
  if (!producer || !producer->advertise(topic, LayoutKind::BLOB)) ::_exit(1);
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
    EXPECT_NE(second.output().find("already listening"), std::string::npos) << second.output();
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
    ASSERT_TRUE(consumer->subscribe("doomed", 4, Backpressure::BLOCK_PRODUCER));
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
    ASSERT_TRUE(producer2->advertise("fresh", LayoutKind::BLOB));
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
    ASSERT_TRUE(healthy->subscribe("q", 32, Backpressure::BLOCK_PRODUCER));
    auto producer = Producer::connect(broker.path());
    ASSERT_TRUE(producer);
    ASSERT_TRUE(producer->advertise("q", LayoutKind::BLOB));
    for (std::uint64_t seq = 1; seq <= 30; ++seq) {
      ASSERT_TRUE(testing::publish_pattern(*producer, "q", seq, 4096));
    }
    ASSERT_TRUE(producer->advertise("sync", LayoutKind::BLOB));  // all 30 routed by now
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

}  // namespace
}  // namespace shmfd
