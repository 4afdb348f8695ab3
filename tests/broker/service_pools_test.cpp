// Services with frames in pool slots (protocol version 6, docs/PROTOCOL.md section 16): a caller's
// request and a server's response in slots of their own pools travel with no fd, are read in
// place and read-only, and keep their slots until the other side lets go; a slot the broker did
// not take comes back; a pool whose owner leaves is detached from its peers, who unmap it; a
// server that dies frees the caller's slots. And a hostile client's pool frames: pools not its
// own or not for calls, slots out of range or held, fds beside a slot, layouts past the slot,
// releases of what it does not hold. Fds are counted after each (BrokerFixture).
#include <gtest/gtest.h>

#include <sys/mman.h>

#include <chrono>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <variant>

#include "shmfd/memfd.hpp"
#include "shmfd/service.hpp"
#include "support/broker_fixture.hpp"
#include "support/raw_client.hpp"

namespace shmfd {
namespace {

using namespace std::chrono_literals;

// Mappings of this process whose file is a pool for calls (memfd "calls/pool").
std::size_t call_pool_mappings() {
  std::ifstream maps("/proc/self/maps");
  std::size_t n = 0;
  for (std::string line; std::getline(maps, line);)
    n += line.find("calls/pool") != std::string::npos;
  return n;
}

// A slot of `pool` within 5 s, or the error of the last try: a slot the broker never frees fails
// the test instead of hanging it.
template <typename Client>
Result<Slot> acquire_within(Client& client, std::uint32_t pool) {
  const auto until = std::chrono::steady_clock::now() + 5s;
  for (;;) {
    auto slot = client.try_acquire(pool);
    if (!slot) return fail(std::move(slot.error()));
    if (*slot) return **slot;
    if (std::chrono::steady_clock::now() > until) {
      return fail(Errc::no_free_slot, "no slot of pool " + std::to_string(pool) + " within 5 s");
    }
    std::this_thread::sleep_for(1ms);
  }
}

Request next_request(Server& server) {
  auto event = server.receive_for(5s);
  EXPECT_TRUE(event && *event) << (event ? "nothing within 5 s" : event.error().message());
  if (!event || !*event || !std::holds_alternative<Request>(**event)) {
    ADD_FAILURE() << "not a Request";
    return Request{};
  }
  return std::get<Request>(std::move(**event));
}

Server serving(const std::string& socket, const std::string& name) {
  auto server = Server::connect(socket, name);
  EXPECT_TRUE(server) << server.error().message();
  auto granted = server->offer("blur");
  EXPECT_TRUE(granted) << granted.error().message();
  return std::move(*server);
}

class ServicePoolsTest : public testing::BrokerFixture {
 protected:
  void TearDown() override {
    EXPECT_TRUE(broker().wait_until([](broker::Broker& b) { return b.services().empty(); }));
    BrokerFixture::TearDown();
  }
};

TEST_F(ServicePoolsTest, RequestAndResponseInSlotsAreReadInPlaceAndKeepTheirSlotsUntilReleased) {
  Server server = serving(socket(), "worker");
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller) << caller.error().message();
  auto requests = caller->create_pool(4096, 1);
  ASSERT_TRUE(requests) << requests.error().message();
  auto responses = server.create_pool(8192, 1);
  ASSERT_TRUE(responses) << responses.error().message();

  for (int round = 0; round < 3; ++round) {
    auto slot = acquire_within(*caller, *requests);
    ASSERT_TRUE(slot) << slot.error().message();
    std::memset(slot->bytes.data(), 0x10 + round, 4096);
    FrameMeta meta;
    meta.pts = 77;
    auto id = caller->start("blur", *slot, blob_layout(4096), {}, meta);
    ASSERT_TRUE(id) << id.error().message();

    Request request = next_request(server);
    ASSERT_TRUE(request.frame);
    ASSERT_EQ(request.frame->bytes().size(), 4096u);
    EXPECT_EQ(request.frame->bytes()[4095], std::byte(0x10 + round));
    EXPECT_EQ(request.frame->meta().pts, 77u);
    EXPECT_NE(::mprotect(const_cast<std::byte*>(request.frame->bytes().data()), 4096,
                         PROT_READ | PROT_WRITE),
              0)
        << "a request's slot must be read-only to its server";
    // The server reads the slot in place: the caller cannot have it back meanwhile.
    auto busy = caller->acquire(*requests, Wait::fail_fast);
    ASSERT_FALSE(busy);
    EXPECT_TRUE(busy.error().is(Errc::no_free_slot)) << busy.error().message();

    auto out = server.acquire(*responses);
    ASSERT_TRUE(out) << out.error().message();
    std::memset(out->bytes.data(), 0x20 + round, 8192);
    ASSERT_TRUE(server.respond(request, *out, blob_layout(8192)));
    request.frame.reset();  // the caller's slot is free from here

    auto response = caller->next(*id);
    ASSERT_TRUE(response) << response.error().message();
    ASSERT_TRUE(response->frame);
    EXPECT_EQ(response->frame->bytes().size(), 8192u);
    EXPECT_EQ(response->frame->bytes()[8191], std::byte(0x20 + round));
    EXPECT_EQ(response->frame->topic(), "blur");
    auto held = server.acquire(*responses, Wait::fail_fast);
    ASSERT_FALSE(held) << "the caller still reads the server's only slot";
    EXPECT_TRUE(held.error().is(Errc::no_free_slot));
    response->frame.reset();
    // Blocking, each side gets its slot back once the broker says so.
    auto again = acquire_within(server, *responses);
    ASSERT_TRUE(again) << again.error().message();
    ASSERT_TRUE(server.discard(*again));
  }
  EXPECT_EQ(call_pool_mappings(), 4u) << "each side maps its own pool and its peer's, once";
}

TEST_F(ServicePoolsTest, ASlotTheBrokerDidNotTakeComesBackToItsSender) {
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto pool = caller->create_pool(4096, 1);
  ASSERT_TRUE(pool) << pool.error().message();
  for (int i = 0; i < 3; ++i) {
    // Its SlotFree follows the failure (both are queued together; they may be read apart).
    auto slot = acquire_within(*caller, *pool);
    ASSERT_TRUE(slot) << "round " << i << ": " << slot.error().message();
    // No server: the call fails, and its request's slot is free again.
    auto failed = caller->call("nobody", *slot, blob_layout(64));
    ASSERT_FALSE(failed);
    EXPECT_TRUE(failed.error().is(CallErrc::no_server));
  }
  // And from a server: a response to a call that is over (its caller cancelled).
  Server server = serving(socket(), "worker");
  auto out_pool = server.create_pool(4096, 1);
  ASSERT_TRUE(out_pool);
  auto id = caller->start("blur");
  ASSERT_TRUE(id);
  Request request = next_request(server);
  ASSERT_TRUE(caller->cancel(*id));
  auto cancel = server.receive_for(5s);
  ASSERT_TRUE(cancel && *cancel && std::holds_alternative<Cancel>(**cancel));
  auto out = server.acquire(*out_pool);
  ASSERT_TRUE(out);
  ASSERT_TRUE(server.respond(request, *out, blob_layout(64)));  // late: dropped, not refused
  auto back = acquire_within(server, *out_pool);
  ASSERT_TRUE(back) << back.error().message();
}

TEST_F(ServicePoolsTest, ACallerThatLeavesIsDetachedFromItsServersWhichUnmapItsPool) {
  Server server = serving(socket(), "worker");
  const std::size_t before = call_pool_mappings();
  {
    auto caller = Caller::connect(socket(), "app");
    ASSERT_TRUE(caller);
    auto pool = caller->create_pool(4096, 2);
    ASSERT_TRUE(pool);
    auto slot = caller->acquire(*pool);
    ASSERT_TRUE(slot);
    std::memset(slot->bytes.data(), 0x33, 4096);
    ASSERT_TRUE(caller->start("blur", *slot, blob_layout(4096)));
    Request request = next_request(server);
    ASSERT_TRUE(request.frame);
    EXPECT_EQ(call_pool_mappings(), before + 2);  // the caller's own, and the server's view
    std::optional<Frame> kept = std::move(request.frame);
    caller = Result<Caller>(tl::unexpect, Error(make_error_code(Errc::disconnected), "gone"));
    // The server hears of it (Cancel, then PoolDetach), and still reads what it holds.
    auto cancel = server.receive_for(5s);
    ASSERT_TRUE(cancel && *cancel && std::holds_alternative<Cancel>(**cancel));
    EXPECT_EQ(std::get<Cancel>(**cancel).reason, CancelReason::caller_gone);
    ASSERT_TRUE(server.receive_for(100ms));  // reads the PoolDetach
    EXPECT_EQ(kept->bytes()[0], std::byte{0x33});
    EXPECT_EQ(call_pool_mappings(), before + 1);
  }
  EXPECT_EQ(call_pool_mappings(), before) << "the server kept a dead caller's pool mapped";
}

TEST_F(ServicePoolsTest, AServerThatDiesHoldingARequestFreesItsSlot) {
  auto caller = Caller::connect(socket(), "app");
  ASSERT_TRUE(caller);
  auto pool = caller->create_pool(4096, 1);
  ASSERT_TRUE(pool);
  std::optional<testing::RawClient> server = testing::RawClient::greeted(socket(), "dies");
  server->send([](proto::Message::Builder m) { m.initOffer().setService("blur"); });
  ASSERT_TRUE(server->next().is(proto::Message::OFFERED));
  auto slot = caller->acquire(*pool);
  ASSERT_TRUE(slot);
  auto id = caller->start("blur", *slot, blob_layout(64));
  ASSERT_TRUE(id);
  auto attach = server->next();
  ASSERT_TRUE(attach.is(proto::Message::POOL_ATTACH)) << attach;
  auto request = server->next();
  ASSERT_TRUE(request.is(proto::Message::REQUEST)) << request;
  EXPECT_FALSE(caller->acquire(*pool, Wait::fail_fast));
  server.reset();  // dies holding the request's slot
  auto failed = caller->next(*id);
  ASSERT_FALSE(failed);
  EXPECT_TRUE(failed.error().is(CallErrc::server_gone)) << failed.error().message();
  auto back = acquire_within(*caller, *pool);
  ASSERT_TRUE(back) << back.error().message();
}

// Pools survive a broker restart: each side registers its pool again on its new connection, and
// calls in slots go on.
class ServicePoolsRestartTest : public testing::FdLeakTest {};

TEST_F(ServicePoolsRestartTest, PoolCallsGoOnAfterARestart) {
  testing::TempDir dir;
  const std::string path = dir.path() + "/broker.sock";
  auto broker = std::make_unique<testing::SubprocessBroker>(std::vector<std::string>{}, path);
  ASSERT_TRUE(broker->listening()) << broker->output();
  const ReconnectOptions quick{10ms, 100ms};
  auto server = Server::connect(path, "worker");
  ASSERT_TRUE(server);
  server->reconnect_on_loss(quick);
  ASSERT_TRUE(server->offer("blur"));
  auto responses = server->create_pool(4096, 1);
  ASSERT_TRUE(responses);
  auto caller = Caller::connect(path, "app");
  ASSERT_TRUE(caller);
  caller->reconnect_on_loss(quick);
  auto requests = caller->create_pool(4096, 1);
  ASSERT_TRUE(requests);

  auto slot = caller->acquire(*requests);
  ASSERT_TRUE(slot);
  auto id = caller->start("blur", *slot, blob_layout(64));
  ASSERT_TRUE(id);
  Request before = next_request(*server);  // holds the caller's only slot
  broker->stop(SIGKILL);
  auto failed = caller->next(*id);
  ASSERT_FALSE(failed);
  EXPECT_TRUE(failed.error().is(Errc::disconnected)) << failed.error().message();
  broker = std::make_unique<testing::SubprocessBroker>(std::vector<std::string>{}, path);
  ASSERT_TRUE(broker->listening()) << broker->output();

  std::thread worker([&] {
    Request r = next_request(*server);
    ASSERT_TRUE(r.frame);
    const std::byte seen = r.frame->bytes()[0];
    auto out = server->acquire(*responses);  // the new broker holds none of its slots
    ASSERT_TRUE(out) << out.error().message();
    out->bytes[0] = std::byte{static_cast<unsigned char>(~static_cast<unsigned>(seen))};
    EXPECT_TRUE(server->respond(r, *out, blob_layout(64)));
  });
  // The slot the old server held is free again: the new broker holds nothing.
  Result<Response> after = tl::unexpected(Error(Errc::disconnected, "not called"));
  for (int i = 0; i < 100; ++i) {
    auto again = acquire_within(*caller, *requests);
    if (!again) {  // not ASSERT: the worker thread must be joined
      ADD_FAILURE() << again.error().message();
      break;
    }
    again->bytes[0] = std::byte{0x5a};
    after = caller->call("blur", *again, blob_layout(64), {.deadline = 5s});
    if (after || !after.error().is(CallErrc::no_server)) break;
    std::this_thread::sleep_for(20ms);  // the server has not offered again yet
  }
  worker.join();
  ASSERT_TRUE(after) << after.error().message();
  ASSERT_TRUE(after->frame);
  EXPECT_EQ(after->frame->bytes()[0], std::byte{0xa5});
  EXPECT_EQ(before.frame->bytes()[0], std::byte{0}) << "a frame from before stays readable";
}

// A hostile caller, speaking the wire itself.
TEST_F(ServicePoolsTest, PoolFramesThatAreNotTheCallersOwnAreRefusedNamingWhy) {
  Server server = serving(socket(), "worker");
  auto raw = testing::RawClient::greeted(socket(), "hostile");
  auto made = WritableBuffer::create("raw-calls", 2 * 4096);
  ASSERT_TRUE(made);
  auto pool_buffer = std::move(*made).into_pool();
  ASSERT_TRUE(pool_buffer) << pool_buffer.error().message();
  raw.register_pool("", pool_buffer->fd(), 2, 4096);
  auto registered = raw.next();
  ASSERT_TRUE(registered.is(proto::Message::POOL_REGISTERED)) << registered;
  const std::uint32_t pool = registered.pool;

  auto call = [&](std::uint64_t id, std::uint32_t pool_id, std::uint32_t slot, std::uint64_t size,
                  std::vector<int> fds = {}, const std::string& service = "blur") {
    raw.send(
        [&](proto::Message::Builder m) {
          auto c = m.initCall();
          c.setService(testing::text(service));
          c.setCall(id);
          c.setHasFrame(true);
          auto f = c.initFrame();
          f.setPool(pool_id);
          f.setSlot(slot);
          layout_to_proto(blob_layout(size), f.initLayout());
        },
        std::move(fds));
  };
  auto refused = [&](proto::ErrorCode code, std::uint64_t id, const char* words) {
    auto r = raw.next_not_slot_free();
    ASSERT_TRUE(r.is_error(code)) << r;
    EXPECT_EQ(r.sequence, id);
    EXPECT_NE(r.message.find(words), std::string::npos) << r.message;
  };
  call(1, 999, 0, 64);
  refused(proto::ErrorCode::UNKNOWN_POOL, 1, "not one of this client's pools for calls");
  call(2, pool, 2, 64);
  refused(proto::ErrorCode::UNKNOWN_POOL, 2, "a pool of 2 slots");
  call(3, pool, 0, 8192);
  refused(proto::ErrorCode::INVALID_LAYOUT, 3, "slot of 4096 bytes");
  auto extra = testing::sealed_memfd(4096);
  call(4, pool, 0, 64, {extra.fd()});
  refused(proto::ErrorCode::WRONG_FD_COUNT, 4, "carries no fd");
  call(5, pool, 0, 64, {}, "Bad Name");
  refused(proto::ErrorCode::INVALID_TOPIC_NAME, 5, "service name");

  // A good one reaches the server; the same slot again, while the server holds it, is refused.
  call(6, pool, 0, 64);
  Request request = next_request(server);
  ASSERT_TRUE(request.frame);
  call(7, pool, 0, 64);
  refused(proto::ErrorCode::SLOT_BUSY, 7, "still held");
  // Releasing what it does not hold.
  raw.release("", 12345);
  refused(proto::ErrorCode::NOT_HELD, 12345, "does not hold");
  // A topic's pool is not a pool for calls.
  raw.advertise("cam", proto::LayoutKind::BLOB, proto::Guarantee::POOL);
  ASSERT_TRUE(raw.next_not_slot_free().is(proto::Message::ADVERTISED));
  auto topic_pool = WritableBuffer::create("raw-topic", 4096);
  ASSERT_TRUE(topic_pool);
  auto topic_buffer = std::move(*topic_pool).into_pool();
  ASSERT_TRUE(topic_buffer);
  raw.register_pool("cam", topic_buffer->fd(), 1, 4096);
  auto cam = raw.next();
  ASSERT_TRUE(cam.is(proto::Message::POOL_REGISTERED)) << cam;
  call(8, cam.pool, 0, 64);
  refused(proto::ErrorCode::UNKNOWN_POOL, 8, "not one of this client's pools for calls");
  // The server lets go: slot 0 is the caller's again.
  request.frame.reset();
  ASSERT_TRUE(server.receive_for(50ms));
  auto freed = raw.next_any();
  ASSERT_TRUE(freed.is(proto::Message::SLOT_FREE)) << freed;
}

TEST_F(ServicePoolsTest, AClientOfAnOlderVersionRegistersNoPoolForCalls) {
  testing::RawClient old(socket(), 5);
  auto welcome = old.next();
  ASSERT_TRUE(welcome.is(proto::Message::WELCOME));
  auto made = WritableBuffer::create("old", 4096);
  ASSERT_TRUE(made);
  auto pool = std::move(*made).into_pool();
  ASSERT_TRUE(pool);
  old.register_pool("", pool->fd(), 1, 4096);
  ASSERT_TRUE(old.next().is_error(proto::ErrorCode::UNKNOWN_TOPIC));
}

// A caller that holds a server's response slots past the hold deadline while the server's pool
// is dry is cut off, and the server's slots are free again.
class ServicePoolsDeadlineTest : public ServicePoolsTest {
 protected:
  broker::Options options() override {
    broker::Options o;
    o.limits.hold_deadline_ms = 200;
    return o;
  }
};

TEST_F(ServicePoolsDeadlineTest, ACallerStuckOnADryPoolOfItsServerIsCutOff) {
  Server server = serving(socket(), "worker");
  auto out_pool = server.create_pool(4096, 1);
  ASSERT_TRUE(out_pool);
  auto caller = Caller::connect(socket(), "hoarder");
  ASSERT_TRUE(caller);
  auto id = caller->start("blur");
  ASSERT_TRUE(id);
  Request request = next_request(server);
  auto out = server.acquire(*out_pool);
  ASSERT_TRUE(out);
  ASSERT_TRUE(server.respond(request, *out, blob_layout(64)));
  auto response = caller->next(*id);
  ASSERT_TRUE(response && response->frame);
  // The caller never lets go; the server's only slot stays busy until the broker cuts it off.
  auto back = acquire_within(server, *out_pool);
  ASSERT_TRUE(back) << back.error().message();
  EXPECT_TRUE(broker().wait_until([](broker::Broker& b) { return b.stats().clients == 1; }));
}

}  // namespace
}  // namespace shmfd
