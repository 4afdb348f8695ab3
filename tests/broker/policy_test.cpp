// The access policy: parsing, matching, and the broker enforcing it on a client that runs as
// another user (forked and setuid, so as root in CI the test still means something).
#include "policy.hpp"

#include <grp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <variant>

#include <gtest/gtest.h>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"
#include "shmfd/service.hpp"
#include "support/broker_harness.hpp"

namespace shmfd {
namespace {

using broker::Identity;
using broker::Policy;
using broker::Right;

constexpr uid_t kNobody = 65534;

TEST(PolicyTest, GrantsByUserGroupAndPattern) {
  auto sut = Policy::parse(R"(
    # cameras publish, everyone watches
    publish    cam/*   uid:1000 gid:44
    subscribe  cam/*   *
    introspect -       gid:4
  )",
                           "test");
  ASSERT_TRUE(sut) << sut.error().message();
  const Identity camera{1000, {1000}};
  const Identity video_member{2000, {2000, 44}};  // 44 as a supplementary group
  const Identity stranger{3000, {3000}};
  EXPECT_TRUE(sut->allows(camera, Right::publish, "cam/front"));
  EXPECT_TRUE(sut->allows(video_member, Right::publish, "cam/back"));
  EXPECT_FALSE(sut->allows(stranger, Right::publish, "cam/front"));
  EXPECT_FALSE(sut->allows(camera, Right::publish, "mic/0")) << "pattern must match";
  EXPECT_TRUE(sut->allows(stranger, Right::subscribe, "cam/front"));
  EXPECT_FALSE(sut->allows(stranger, Right::subscribe, "mic/0"));
  EXPECT_FALSE(sut->allows(stranger, Right::introspect, ""));
  EXPECT_TRUE(sut->allows(Identity{3000, {3000, 4}}, Right::introspect, ""));
}

// Services (issue 35): serve and call are rights of their own, on service-name patterns.
TEST(PolicyTest, ServeAndCallAreGrantedApartFromPublishAndSubscribe) {
  auto sut = Policy::parse(R"(
    serve      blur*   uid:1000
    call       blur    gid:44
    publish    blur    uid:2000
  )",
                           "test");
  ASSERT_TRUE(sut) << sut.error().message();
  const Identity worker{1000, {1000}};
  const Identity app{2000, {2000, 44}};
  EXPECT_TRUE(sut->allows(worker, Right::serve, "blur"));
  EXPECT_TRUE(sut->allows(worker, Right::serve, "blur/fast"));
  EXPECT_FALSE(sut->allows(worker, Right::call, "blur")) << "serving grants no calling";
  EXPECT_TRUE(sut->allows(app, Right::call, "blur"));
  EXPECT_FALSE(sut->allows(app, Right::call, "sharpen"));
  EXPECT_FALSE(sut->allows(app, Right::serve, "blur")) << "publish on a topic grants no serving";
  EXPECT_FALSE(sut->allows(worker, Right::publish, "blur"));
  EXPECT_EQ(broker::to_string(Right::serve), "serve");
  EXPECT_EQ(broker::to_string(Right::call), "call");
}

TEST(PolicyTest, ErrorsNameTheLineAndTheProblem) {
  const std::pair<const char*, const char*> cases[] = {
      {"read cam/* *", "test:1: unknown right 'read'"},
      {"\npublish", "test:2: missing topic pattern"},
      {"publish cam/*", "test:1: the rule names nobody"},
      {"publish cam/* uid:x", "test:1: 'x' is not a numeric id"},
      {"publish cam/* user:no-such-user-here", "test:1: no user 'no-such-user-here'"},
      {"publish cam/* someone", "test:1: 'someone' is not *, user:, uid:, group: or gid:"},
  };
  for (auto [text, expected] : cases) {
    auto sut = Policy::parse(text, "test");
    ASSERT_FALSE(sut) << text;
    EXPECT_NE(sut.error().message().find(expected), std::string::npos) << sut.error().message();
  }
  auto missing = Policy::load("/nonexistent/policy");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().message().find("/nonexistent/policy"), std::string::npos);
}

// Runs `body` in a child process as uid/gid `kNobody`; returns its exit status.
template <typename F>
int as_nobody(F body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setgid(kNobody) != 0 || ::setuid(kNobody) != 0)
      ::_exit(100);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

bool denied(const Status& s, const std::string& what) {
  return !s && s.error().is(BrokerErrc::permission_denied) &&
         s.error().message().find(what) != std::string::npos;
}

TEST(PolicyBrokerTest, WithoutAPolicyOnlyRootAndTheBrokerUserMayConnect) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another uid";
  testing::SubprocessBroker broker({"--socket-mode", "0666"});
  ASSERT_TRUE(broker.listening()) << broker.output();
  broker.open_directory();
  const int status = as_nobody([&] {
    auto p = Producer::connect(broker.path(), "outsider");
    if (p) return 1;
    return p.error().message().find("needs --policy to admit uid 65534") != std::string::npos ? 0
                                                                                              : 2;
  });
  EXPECT_EQ(status, 0);
  EXPECT_TRUE(Producer::connect(broker.path(), "root")) << "root is always admitted";
}

TEST(PolicyBrokerTest, ThePolicyDecidesWhoPublishesAndSubscribesWhere) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another uid";
  testing::TempDir dir;
  const std::string policy = dir.path() + "/policy";
  std::ofstream(policy) << "publish   cam/*  uid:65534\nsubscribe cam/*  *\n";
  testing::SubprocessBroker broker({"--socket-mode", "0666", "--policy", policy});
  ASSERT_TRUE(broker.listening()) << broker.output();
  broker.open_directory();
  const int status = as_nobody([&] {
    auto p = Producer::connect(broker.path(), "camera");
    if (!p) return 1;
    if (!p->advertise("cam/1", LayoutKind::blob)) return 2;  // granted
    if (!denied(p->advertise("secret", LayoutKind::blob), "may not publish on 'secret'")) return 3;
    auto c = Consumer::connect(broker.path(), "viewer");
    if (!c) return 4;
    if (!c->subscribe("cam/1")) return 5;  // granted
    auto other = c->subscribe("mic/0");
    if (other || other.error().message().find("may not subscribe on 'mic/0'") == std::string::npos)
      return 6;
    return 0;
  });
  EXPECT_EQ(status, 0) << "step " << status << " failed";
}

TEST(PolicyBrokerTest, ThePolicyDecidesWhoServesAndCallsWhichService) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another uid";
  testing::TempDir dir;
  const std::string policy = dir.path() + "/policy";
  std::ofstream(policy) << "serve blur uid:65534\ncall blur uid:65534\nserve secret uid:0\n";
  testing::SubprocessBroker broker({"--socket-mode", "0666", "--policy", policy});
  ASSERT_TRUE(broker.listening()) << broker.output();
  broker.open_directory();
  auto root_server = Server::connect(broker.path(), "root-worker");
  ASSERT_TRUE(root_server);
  ASSERT_TRUE(root_server->offer("secret"));
  const int status = as_nobody([&] {
    auto server = Server::connect(broker.path(), "worker");
    if (!server) return 1;
    if (!server->offer("blur")) return 2;  // granted
    auto other = server->offer("secret");
    if (other || !other.error().is(BrokerErrc::permission_denied) ||
        other.error().message().find("may not serve service 'secret'") == std::string::npos) {
      return 3;
    }
    auto caller = Caller::connect(broker.path(), "app");
    if (!caller) return 4;
    auto id = caller->start("blur");  // granted
    if (!id) return 5;
    auto event = server->receive_for(std::chrono::seconds(5));
    if (!event || !*event || !std::holds_alternative<Request>(**event)) return 6;
    if (!server->respond(std::get<Request>(**event))) return 7;
    if (!caller->next(*id)) return 8;
    // A service that has a server, but that this uid may not call.
    auto denied_call = caller->call("secret");
    if (denied_call || !denied_call.error().is(BrokerErrc::permission_denied) ||
        denied_call.error().message().find("may not call service 'secret'") == std::string::npos) {
      return 9;
    }
    return 0;
  });
  EXPECT_EQ(status, 0) << "step " << status << " failed";
  auto nothing = root_server->receive_for(std::chrono::milliseconds(100));
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(*nothing) << "a call the policy denies reached the server";
}

// At --max-clients, anyone else is refused, but the operator (root, or the broker's uid)
// still gets in to see why with shmfdctl.
TEST(PolicyBrokerTest, AFullBrokerRefusesOthersButAdmitsItsOperator) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to run a client as another uid";
  testing::TempDir dir;
  const std::string policy = dir.path() + "/policy";
  std::ofstream(policy) << "subscribe * *\n";
  testing::SubprocessBroker broker(
      {"--socket-mode", "0666", "--max-clients", "1", "--policy", policy});
  ASSERT_TRUE(broker.listening()) << broker.output();
  broker.open_directory();
  auto first = Consumer::connect(broker.path(), "first");
  ASSERT_TRUE(first);
  const int status = as_nobody([&] {
    auto c = Consumer::connect(broker.path(), "outsider");
    if (c) return 1;
    return c.error().message().find("limit of 1 clients (--max-clients)") != std::string::npos ? 0
                                                                                               : 2;
  });
  EXPECT_EQ(status, 0) << "a non-operator got past the client limit";
  auto op = Consumer::connect(broker.path(), "operator");
  EXPECT_TRUE(op) << op.error().message();
}

}  // namespace
}  // namespace shmfd
