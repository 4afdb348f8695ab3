// Test support: BrokerFixture, the fixture of tests that run the client library against a broker
// in this process. Each test gets its own broker on a private socket, started in SetUp (with
// options() of a derived fixture) or again by start_broker(options), stopped at the end of the
// test; and then the fds of the whole process are counted: a test that leaks one, in a client
// or in the broker, fails.
//
//   class PoolTest : public shmfd::testing::BrokerFixture {};
//   TEST_F(PoolTest, Something) {
//     auto producer = Producer::connect(socket(), "camera");
//     ... broker().wait_until(...) ...
//   }
//
// The broker runs before the test body, so a child forked there shares its socket path and
// starts none of its own. Clients made in the test body are gone before TearDown; a client kept
// in a member of a derived fixture must be reset in that fixture's TearDown before it calls
// this one.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"

namespace shmfd::testing {

class BrokerFixture : public FdLeakTest {
 protected:
  // The options of the broker that SetUp starts.
  virtual broker::Options options() { return {}; }

  void SetUp() override {
    FdLeakTest::SetUp();
    broker_.emplace(options());
  }
  void TearDown() override {
    broker_.reset();  // the broker's thread joined, its sockets and fds closed
    FdLeakTest::TearDown();
  }

  InProcessBroker& broker() { return *broker_; }
  // Its socket's path, for Producer::connect and Consumer::connect.
  const std::string& socket() { return broker_->path(); }
  // Replaces the broker with one started with `options` (on a new socket path), for a test
  // that needs its own.
  InProcessBroker& start_broker(broker::Options options) {
    broker_.reset();
    broker_.emplace(std::move(options));
    return *broker_;
  }

 private:
  std::optional<InProcessBroker> broker_;
};

}  // namespace shmfd::testing
