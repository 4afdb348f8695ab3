// Test support: BrokerFixture, the fixture of tests that run the client library against a broker
// in this process. Each test gets its own broker on a private socket, started on first use (or
// with options by start_broker), stopped at the end of the test, and then the fds of the whole
// process are counted: a test that leaks one, in a client or in the broker, fails.
//
//   class PoolTest : public shmfd::testing::BrokerFixture {};
//   TEST_F(PoolTest, Something) {
//     auto producer = Producer::connect(socket(), "camera");
//     ... broker().wait_until(...) ...
//   }
//
// Clients made in the test body are gone before TearDown. A client kept in a member of a
// derived fixture must be reset in that fixture's TearDown before it calls this one.
#pragma once

#include <optional>
#include <string>
#include <utility>

#include "support/broker_harness.hpp"
#include "support/fd_count.hpp"

namespace shmfd::testing {

class BrokerFixture : public FdLeakTest {
 protected:
  // The broker, started with default options on first use.
  InProcessBroker& broker() {
    if (!broker_) broker_.emplace();
    return *broker_;
  }
  // Starts the broker with `options` (before anything used broker() or socket()).
  InProcessBroker& start_broker(broker::Options options) {
    if (broker_) ADD_FAILURE() << "start_broker after the broker started: the options are lost";
    broker_.emplace(std::move(options));
    return *broker_;
  }
  // Its socket's path, for Producer::connect and Consumer::connect.
  const std::string& socket() { return broker().path(); }

  void TearDown() override {
    broker_.reset();  // the broker's thread joined, its sockets and fds closed
    FdLeakTest::TearDown();
  }

 private:
  std::optional<InProcessBroker> broker_;
};

}  // namespace shmfd::testing
