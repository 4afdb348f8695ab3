// Services (protocol version 6, issue 35): round trips of verified frames both ways, routing to
// the server with the fewest calls in flight (ties in turn), busy and deadlines, streams, and
// every failure the issue names: a server that dies, withdraws, never answers, answers a call it
// was not sent or with a frame the broker refuses; a caller that dies or cancels; a broker
// restart; a client of an older version. Fds are counted after each (BrokerFixture).
#include <gtest/gtest.h>

#include <sys/mman.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <thread>
#include <variant>

#include "shmfd/memfd.hpp"
#include "shmfd/service.hpp"
#include "support/broker_fixture.hpp"
#include "support/raw_client.hpp"

namespace shmfd {
namespace {

using namespace std::chrono_literals;

WritableBuffer filled(std::size_t size, std::byte value) {
  auto buffer = WritableBuffer::create("services-test", size);
  EXPECT_TRUE(buffer);
  std::memset(buffer->bytes().data(), static_cast<int>(value), size);
  return std::move(*buffer);
}

// The next event of `server`, which must be a Request.
Request next_request(Server& server) {
  auto event = server.receive_for(5s);
  EXPECT_TRUE(event && *event) << (event ? "nothing within 5 s" : event.error().message());
  if (!event || !*event || !std::holds_alternative<Request>(**event)) {
    ADD_FAILURE() << "not a Request";
    return Request{};
  }
  return std::get<Request>(std::move(**event));
}

Cancel next_cancel(Server& server) {
  auto event = server.receive_for(5s);
  EXPECT_TRUE(event && *event);
  if (!event || !*event || !std::holds_alternative<Cancel>(**event)) {
    ADD_FAILURE() << "not a Cancel";
    return Cancel{};
  }
  return std::get<Cancel>(**event);
}

Server serving(const std::string& socket, const std::string& name, std::uint32_t max = 0,
               const std::string& service = "blur") {
  auto server = Server::connect(socket, name);
  EXPECT_TRUE(server) << server.error().message();
  auto granted = server->offer(service, max);
  EXPECT_TRUE(granted) << granted.error().message();
  return std::move(*server);
}

// After each test, whose clients are gone by then, the broker keeps nothing of its services.
class ServicesTest : public testing::BrokerFixture {
 protected:
  void TearDown() override {
    EXPECT_TRUE(broker().wait_until([](broker::Broker& b) { return b.services().empty(); }))
        << "the broker kept a service or a call after every client left";
    BrokerFixture::TearDown();
  }
};

TEST_F(ServicesTest, ARequestAndItsResponseAreVerifiedFramesMappedReadOnly) {
  Server server = serving(socket(), "worker");
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller) << caller.error().message();

  FrameMeta meta;
  meta.pts = 1234;
  meta.flags = static_cast<std::uint32_t>(FrameFlag::marker);
  auto id = caller->start("blur", filled(4096, std::byte{7}), blob_layout(4096), {}, meta);
  ASSERT_TRUE(id) << id.error().message();

  Request request = next_request(server);
  EXPECT_EQ(request.service, "blur");
  ASSERT_TRUE(request.frame);
  ASSERT_EQ(request.frame->bytes().size(), 4096u);
  EXPECT_EQ(request.frame->bytes()[4095], std::byte{7});
  EXPECT_EQ(request.frame->meta().pts, 1234u);
  EXPECT_EQ(request.frame->meta().flags, static_cast<std::uint32_t>(FrameFlag::marker));
  EXPECT_GT(request.deadline, std::chrono::steady_clock::now());
  // Read-only: the kernel refuses a writable view of the request's pages.
  EXPECT_NE(::mprotect(const_cast<std::byte*>(request.frame->bytes().data()), 4096,
                       PROT_READ | PROT_WRITE),
            0);

  ASSERT_TRUE(server.respond(request, filled(8192, std::byte{8}), blob_layout(8192)));
  auto response = caller->next(*id);
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_TRUE(response->last);
  ASSERT_TRUE(response->frame);
  EXPECT_EQ(response->frame->bytes().size(), 8192u);
  EXPECT_EQ(response->frame->bytes()[0], std::byte{8});
  EXPECT_EQ(response->frame->topic(), "blur");
  EXPECT_EQ(caller->in_flight(), 0u);
  // Over: its id is unknown now.
  auto again = caller->next(*id);
  ASSERT_FALSE(again);
  EXPECT_TRUE(again.error().is(Errc::invalid_argument));
}

TEST_F(ServicesTest, ACallMayCarryNoFrameAndGetNone) {
  Server server = serving(socket(), "worker");
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  std::thread worker([&] {
    Request request = next_request(server);
    EXPECT_FALSE(request.frame);
    EXPECT_TRUE(server.respond(request));
  });
  auto response = caller->call("blur");
  worker.join();
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_FALSE(response->frame);
  EXPECT_TRUE(response->last);
}

TEST_F(ServicesTest, ACallToAServiceNoOneOffersFailsAtOnceNamingIt) {
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto response = caller->call("nobody");
  ASSERT_FALSE(response);
  EXPECT_TRUE(response.error().is(CallErrc::no_server));
  EXPECT_TRUE(response.error().is(Errc::call_failed));
  EXPECT_NE(response.error().message().find("'nobody'"), std::string::npos)
      << response.error().message();
}

TEST_F(ServicesTest, EachCallGoesToTheServerWithFewestInFlightTiesInTurn) {
  Server a = serving(socket(), "a", 4);
  Server b = serving(socket(), "b", 4);
  Server c = serving(socket(), "c", 4);
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  // Six calls while none is answered: two each, in turn a, b, c, a, b, c.
  std::vector<CallId> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(*caller->start("blur"));
  Request a1 = next_request(a);
  Request a2 = next_request(a);
  Request b1 = next_request(b);
  Request b2 = next_request(b);
  Request c1 = next_request(c);
  Request c2 = next_request(c);
  // b answers its first (the second call): it has the fewest in flight now, so the next call
  // goes to it.
  ASSERT_TRUE(b.respond(b1));
  ASSERT_TRUE(caller->next(ids[1]));
  auto seventh = caller->start("blur");
  ASSERT_TRUE(seventh);
  Request b3 = next_request(b);
  EXPECT_EQ(b3.service, "blur");
  for (Server* s : {&a, &c}) {
    auto nothing = s->receive_for(50ms);
    ASSERT_TRUE(nothing);
    EXPECT_FALSE(*nothing) << "a server with more in flight got the call";
  }
  for (CallId id : ids) (void)caller->cancel(id);
  (void)caller->cancel(*seventh);
}

TEST_F(ServicesTest, AtItsBoundAServerIsBusyAndACallFailsOrWaitsAsItChose) {
  Server server = serving(socket(), "worker", 1);
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto first = caller->start("blur");
  Request r1 = next_request(server);
  auto busy = caller->call("blur", {.deadline = 5s, .when_busy = WhenBusy::fail});
  ASSERT_FALSE(busy);
  EXPECT_TRUE(busy.error().is(CallErrc::busy)) << busy.error().message();

  auto waiting = caller->start("blur", {.deadline = 5s, .when_busy = WhenBusy::wait});
  ASSERT_TRUE(waiting);
  auto nothing = server.receive_for(100ms);
  ASSERT_TRUE(nothing);
  EXPECT_FALSE(*nothing) << "a server got more calls than its bound";
  ASSERT_TRUE(server.respond(r1));
  ASSERT_TRUE(caller->next(*first));
  Request r2 = next_request(server);  // the waiting call, once the server had room
  ASSERT_TRUE(server.respond(r2, filled(4096, std::byte{2}), blob_layout(16)));
  auto second = caller->next(*waiting);
  ASSERT_TRUE(second) << second.error().message();
  EXPECT_EQ(second->frame->layout(), Layout(blob_layout(16)));
}

TEST_F(ServicesTest, ACallerPastItsOwnBoundIsBusy) {
  broker::Options options;
  options.limits.max_calls_in_flight = 2;
  start_broker(options);
  Server server = serving(socket(), "worker", 8);
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto one = caller->start("blur");
  auto two = caller->start("blur");
  auto three = caller->call("blur", {.when_busy = WhenBusy::wait});
  ASSERT_FALSE(three);
  EXPECT_TRUE(three.error().is(CallErrc::busy));
  EXPECT_NE(three.error().message().find("--max-calls-in-flight"), std::string::npos);
}

TEST_F(ServicesTest, ADeadlineFailsOnlyItsCallAndCancelsItAtTheServer) {
  Server server = serving(socket(), "worker", 2);
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto quick = caller->start("blur", {.deadline = 100ms});
  auto patient = caller->start("blur", {.deadline = 10s});
  Request r1 = next_request(server);
  Request r2 = next_request(server);
  const auto started = std::chrono::steady_clock::now();
  auto expired = caller->next(*quick);
  ASSERT_FALSE(expired);
  EXPECT_TRUE(expired.error().is(CallErrc::deadline)) << expired.error().message();
  // Far sooner than the other call's 10 s (a margin for sanitizer builds on a busy machine).
  EXPECT_LT(std::chrono::steady_clock::now() - started, 8s);
  Cancel cancel = next_cancel(server);
  EXPECT_EQ(cancel.id, r1.id);
  EXPECT_EQ(cancel.reason, CancelReason::deadline);
  // A response that crossed the Cancel is dropped: no strike, counted.
  ASSERT_TRUE(server.respond(r1));
  ASSERT_TRUE(server.respond(r2));
  auto answered = caller->next(*patient);
  ASSERT_TRUE(answered) << answered.error().message();
  EXPECT_TRUE(broker().wait_until([](broker::Broker& b) {
    return b.services().late_responses() == 1 && b.services().forged_responses() == 0;
  }));
}

TEST_F(ServicesTest, AServerThatNeverAnswersCostsItsCallersTheirDeadlinesOnly) {
  Server silent = serving(socket(), "silent", 1);
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto lost = caller->call("blur", {.deadline = 50ms});
  ASSERT_FALSE(lost);
  EXPECT_TRUE(lost.error().is(CallErrc::deadline));
  (void)next_request(silent);
  (void)next_cancel(silent);
  // Its slot is free again: the next call reaches it.
  auto next = caller->start("blur", {.deadline = 5s});
  Request r = next_request(silent);
  ASSERT_TRUE(silent.respond(r));
  EXPECT_TRUE(caller->next(*next));
}

TEST_F(ServicesTest, AServerThatDiesFailsItsCallsAtOnceAndARetryLandsOnAnother) {
  std::optional<Server> first(serving(socket(), "first", 1));
  Server second = serving(socket(), "second", 1);
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto id = caller->start("blur", filled(4096, std::byte{1}), blob_layout(4096));
  Request taken = next_request(*first);  // the first in turn
  const auto killed = std::chrono::steady_clock::now();
  first.reset();  // its connection closes, as when the process dies
  auto failed = caller->next(*id);
  ASSERT_FALSE(failed);
  EXPECT_TRUE(failed.error().is(CallErrc::server_gone)) << failed.error().message();
  // At once, not at the call's deadline (the broker's 60 s; a margin for sanitizer builds).
  EXPECT_LT(std::chrono::steady_clock::now() - killed, 20s);
  // Retry: the one server left takes it.
  std::thread worker([&] {
    Request r = next_request(second);
    ASSERT_TRUE(r.frame);
    EXPECT_TRUE(second.respond(r, filled(4096, std::byte{9}), blob_layout(4096)));
  });
  auto retried = caller->call("blur", filled(4096, std::byte{1}), blob_layout(4096));
  worker.join();
  ASSERT_TRUE(retried) << retried.error().message();
  EXPECT_EQ(retried->frame->bytes()[0], std::byte{9});
}

TEST_F(ServicesTest, WhenTheLastServerDiesItsCallAndTheCallsWaitingForItFailAtOnce) {
  std::optional<Server> only(serving(socket(), "only", 1));
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto at_server = caller->start("blur", {.deadline = 30s});
  (void)next_request(*only);
  auto waiting = caller->start("blur", {.deadline = 30s, .when_busy = WhenBusy::wait});
  ASSERT_TRUE(at_server && waiting);
  ASSERT_TRUE(broker().wait_until([](broker::Broker& b) {
    const auto views = b.services().view();
    return views.size() == 1 && views[0].waiting == 1;
  }));
  only.reset();
  auto gone = caller->next(*at_server);
  ASSERT_FALSE(gone);
  EXPECT_TRUE(gone.error().is(CallErrc::server_gone)) << gone.error().message();
  // Not handed to the server that was going: no server is left for it.
  auto orphan = caller->next(*waiting);
  ASSERT_FALSE(orphan);
  EXPECT_TRUE(orphan.error().is(CallErrc::no_server)) << orphan.error().message();
  EXPECT_TRUE(broker().wait_until([](broker::Broker& b) { return b.services().view().empty(); }));
}

TEST_F(ServicesTest, WithdrawingFailsTheCallsInFlightAndTheServiceGoes) {
  Server server = serving(socket(), "worker");
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto id = caller->start("blur");
  (void)next_request(server);
  ASSERT_TRUE(server.withdraw("blur"));
  auto failed = caller->next(*id);
  ASSERT_FALSE(failed);
  EXPECT_TRUE(failed.error().is(CallErrc::server_gone));
  auto none = caller->call("blur");
  ASSERT_FALSE(none);
  EXPECT_TRUE(none.error().is(CallErrc::no_server));
}

TEST_F(ServicesTest, ACallerThatDiesOrCancelsIsCancelledAtItsServer) {
  Server server = serving(socket(), "worker", 4);
  {
    auto caller = Caller::connect(socket(), "doomed");
    ASSERT_TRUE(caller);
    ASSERT_TRUE(caller->start("blur", filled(1 << 20, std::byte{3}), blob_layout(1 << 20)));
    Request r = next_request(server);
    ASSERT_TRUE(r.frame);
  }  // the caller's connection closes
  Cancel gone = next_cancel(server);
  EXPECT_EQ(gone.reason, CancelReason::caller_gone);

  auto caller = Caller::connect(socket(), "fickle");
  ASSERT_TRUE(caller);
  auto id = caller->start("blur");
  Request r = next_request(server);
  ASSERT_TRUE(caller->cancel(*id));
  Cancel cancelled = next_cancel(server);
  EXPECT_EQ(cancelled.id, r.id);
  EXPECT_EQ(cancelled.reason, CancelReason::cancelled);
  EXPECT_TRUE(caller->next(*id).error().is(Errc::invalid_argument));
  // Answering it anyway is dropped on the way, not an error.
  EXPECT_TRUE(server.respond(r, filled(4096, std::byte{1}), blob_layout(4096)));
  EXPECT_TRUE(
      broker().wait_until([](broker::Broker& b) { return b.services().late_responses() == 1; }));
}

TEST_F(ServicesTest, AStreamOfResponsesEndsWithTheLast) {
  Server server = serving(socket(), "worker");
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto id = caller->start("blur");
  Request r = next_request(server);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(server.respond(r, filled(4096, std::byte(i)), blob_layout(64), false));
  }
  ASSERT_TRUE(server.respond(r));
  for (std::uint64_t i = 1; i <= 3; ++i) {
    auto part = caller->next(*id);
    ASSERT_TRUE(part) << part.error().message();
    EXPECT_FALSE(part->last);
    ASSERT_TRUE(part->frame);
    EXPECT_EQ(part->frame->sequence(), i);
    EXPECT_EQ(part->frame->bytes()[0], std::byte(i - 1));
  }
  auto end = caller->next(*id);
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->last);
  EXPECT_FALSE(end->frame);
  EXPECT_EQ(caller->in_flight(), 0u);
}

TEST_F(ServicesTest, AServerErrorReachesTheCallerWithItsText) {
  Server server = serving(socket(), "worker");
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto id = caller->start("blur");
  Request r = next_request(server);
  ASSERT_TRUE(server.respond_error(r, "kernel size 0 is not odd"));
  auto failed = caller->next(*id);
  ASSERT_FALSE(failed);
  EXPECT_TRUE(failed.error().is(CallErrc::server_error));
  EXPECT_NE(failed.error().message().find("kernel size 0 is not odd"), std::string::npos);
}

// --- Hostile servers and callers, spoken by hand. ---

TEST_F(ServicesTest, AResponseToACallNotSentToThatServerIsRefusedAndCounted) {
  Server honest = serving(socket(), "honest", 1);
  auto forger = testing::RawClient::greeted(socket(), "forger");
  forger.send([](proto::Message::Builder m) {
    auto offer = m.initOffer();
    offer.setService("blur");
    offer.setMaxInFlight(1);
  });
  ASSERT_TRUE(forger.next().is(proto::Message::OFFERED));
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto id = caller->start("blur");
  Request r = next_request(honest);  // honest is first in turn
  // The forger answers the honest server's call, and one that never was.
  for (std::uint64_t call : {r.id, std::uint64_t{999}}) {
    forger.send([&](proto::Message::Builder m) {
      auto respond = m.initRespond();
      respond.setCall(call);
      respond.setLast(true);
    });
    auto refused = forger.next();
    ASSERT_TRUE(refused.is_error(proto::ErrorCode::INVALID_CALL)) << refused.message;
    EXPECT_EQ(refused.sequence, call);
  }
  ASSERT_TRUE(honest.respond(r, filled(4096, std::byte{5}), blob_layout(4096)));
  auto response = caller->next(*id);
  ASSERT_TRUE(response) << response.error().message();
  EXPECT_EQ(response->frame->bytes()[0], std::byte{5});
  EXPECT_TRUE(
      broker().wait_until([](broker::Broker& b) { return b.services().forged_responses() == 2; }));
}

TEST_F(ServicesTest, AResponseFrameTheBrokerRefusesFailsTheCallNamingWhy) {
  auto server = testing::RawClient::greeted(socket(), "sloppy");
  server.send([](proto::Message::Builder m) { m.initOffer().setService("blur"); });
  ASSERT_TRUE(server.next().is(proto::Message::OFFERED));
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto id = caller->start("blur");
  auto request = server.next();
  ASSERT_TRUE(request.is(proto::Message::REQUEST));
  // A memfd without seals: whoever mapped it could be changed under.
  auto unsealed = WritableBuffer::create("unsealed", 4096);
  ASSERT_TRUE(unsealed);
  server.send(
      [&](proto::Message::Builder m) {
        auto respond = m.initRespond();
        respond.setCall(request.call);
        respond.setLast(true);
        respond.setHasFrame(true);
        auto frame = respond.initFrame();
        frame.setFd(0);
        layout_to_proto(blob_layout(4096), frame.initLayout());
      },
      {unsealed->fd()});
  // The call is over for the server (Cancel), and the refusal says why.
  auto over = server.next();
  ASSERT_TRUE(over.is(proto::Message::CANCEL));
  EXPECT_EQ(over.call, request.call);
  auto refused = server.next();
  ASSERT_TRUE(refused.is_error(proto::ErrorCode::MISSING_SEALS)) << refused.message;
  auto failed = caller->next(*id);
  ASSERT_FALSE(failed);
  EXPECT_TRUE(failed.error().is(CallErrc::server_error));
  EXPECT_NE(failed.error().message().find("refused the server's response"), std::string::npos)
      << failed.error().message();
}

TEST_F(ServicesTest, ACallIdInUseIsRefusedAndTheFirstCallGoesOn) {
  Server server = serving(socket(), "worker");
  auto caller = testing::RawClient::greeted(socket(), "reuser");
  for (int i = 0; i < 2; ++i) {
    caller.send([](proto::Message::Builder m) {
      auto call = m.initCall();
      call.setService("blur");
      call.setCall(7);
      call.setDeadlineMs(5000);
    });
  }
  auto refused = caller.next();
  ASSERT_TRUE(refused.is_error(proto::ErrorCode::INVALID_CALL)) << refused.message;
  EXPECT_EQ(refused.sequence, 7u);
  Request r = next_request(server);
  ASSERT_TRUE(server.respond(r));
  auto response = caller.next();
  ASSERT_TRUE(response.is(proto::Message::RESPONSE));
  EXPECT_EQ(response.call, 7u);
  EXPECT_TRUE(response.last);
}

TEST_F(ServicesTest, AClientOfAnOlderVersionCannotOfferOrCall) {
  testing::RawClient old(socket(), 5, "old");
  ASSERT_TRUE(old.next().is(proto::Message::WELCOME));
  old.send([](proto::Message::Builder m) { m.initOffer().setService("blur"); });
  auto refused = old.next();
  ASSERT_TRUE(refused.is_error(proto::ErrorCode::UNEXPECTED_MESSAGE)) << refused.message;
  EXPECT_NE(refused.message.find("services need 6"), std::string::npos) << refused.message;
}

TEST_F(ServicesTest, ABadServiceNameIsRefusedNamingTheRule) {
  auto server = Server::connect(socket(), "worker");
  ASSERT_TRUE(server);
  auto bad = server->offer("no spaces");
  ASSERT_FALSE(bad);
  EXPECT_TRUE(bad.error().is(Errc::invalid_topic_name));
}

// --- A broker restart: calls in flight fail with a named error; both sides go on. ---

class ServicesRestartTest : public testing::FdLeakTest {};

TEST_F(ServicesRestartTest, CallsInFlightFailAndServersAndCallersGoOnAfterARestart) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/broker.sock";
  auto broker = std::make_unique<testing::SubprocessBroker>(std::vector<std::string>{}, path);
  ASSERT_TRUE(broker->listening()) << broker->output();
  const ReconnectOptions quick{10ms, 100ms};
  auto server = Server::connect(path, "worker");
  ASSERT_TRUE(server);
  server->reconnect_on_loss(quick);
  ASSERT_TRUE(server->offer("blur"));
  auto caller = Caller::connect(path, "app");
  ASSERT_TRUE(caller);
  caller->reconnect_on_loss(quick);

  auto id = caller->start("blur");
  ASSERT_TRUE(id);
  Request before = next_request(*server);
  broker->stop(SIGKILL);
  auto failed = caller->next(*id);
  ASSERT_FALSE(failed);
  EXPECT_TRUE(failed.error().is(Errc::disconnected)) << failed.error().message();
  broker = std::make_unique<testing::SubprocessBroker>(std::vector<std::string>{}, path);
  ASSERT_TRUE(broker->listening()) << broker->output();

  std::thread worker([&] {
    // The server notices the loss, connects again and offers again, then serves.
    Request r = next_request(*server);
    EXPECT_TRUE(server->respond(before)) << "a request from before is over: dropped";
    EXPECT_TRUE(server->respond(r, filled(4096, std::byte{4}), blob_layout(4096)));
  });
  Result<Response> after = tl::unexpected(Error(Errc::disconnected, "not called"));
  for (int i = 0; i < 100; ++i) {
    after = caller->call("blur", {.deadline = 5s});
    if (after || !after.error().is(CallErrc::no_server)) break;
    std::this_thread::sleep_for(20ms);  // the server has not offered again yet
  }
  worker.join();
  ASSERT_TRUE(after) << after.error().message();
  EXPECT_EQ(after->frame->bytes()[0], std::byte{4});
}

}  // namespace
}  // namespace shmfd
