#include "shmfd/wire/asio_transport.hpp"

#include <sys/socket.h>
#include <sys/stat.h>

#include <array>
#include <string>

#include <gtest/gtest.h>
#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/generic/seq_packet_protocol.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include "shmfd/memfd.hpp"
#include "support/bytes.hpp"
#include "support/fd_count.hpp"

namespace shmfd {
namespace {

using testing::bytes_of;

using Socket = asio::generic::seq_packet_protocol::socket;

class AsioTransportTest : public testing::FdLeakTest {
 protected:
  void SetUp() override {
    FdLeakTest::SetUp();
    auto pair = make_seqpacket_pair();
    ASSERT_TRUE(pair) << pair.error().message();
    const asio::generic::seq_packet_protocol protocol(AF_UNIX, SOCK_SEQPACKET);
    a_.assign(protocol, pair->first.release());
    b_.assign(protocol, pair->second.release());
  }
  void TearDown() override {
    a_.close();
    b_.close();
    FdLeakTest::TearDown();
  }

  asio::io_context io_;
  Socket a_{io_};
  Socket b_{io_};
  std::array<std::byte, 256> buf_{};
};

TEST_F(AsioTransportTest, ReceiveWaitsForDataAndNeverCompletesInline) {
  std::optional<Result<ReceivedMessage>> got;
  async_receive_message(b_, buf_, 4, [&](Result<ReceivedMessage> r) { got = std::move(r); });
  EXPECT_FALSE(got) << "completed inside the initiating call";
  io_.poll();
  EXPECT_FALSE(got) << "completed with no data";

  ASSERT_TRUE(send_message(a_.native_handle(), bytes_of("ping")));
  io_.run();
  ASSERT_TRUE(got);
  ASSERT_TRUE(*got) << (*got).error().message();
  EXPECT_EQ((*got)->status, RecvStatus::message);
  EXPECT_EQ((*got)->size, 4U);
}

TEST_F(AsioTransportTest, ReadyDataStillCompletesThroughTheExecutor) {
  ASSERT_TRUE(send_message(a_.native_handle(), bytes_of("ready")));
  bool done = false;
  async_receive_message(b_, buf_, 4, [&](Result<ReceivedMessage> r) {
    ASSERT_TRUE(r);
    EXPECT_EQ(r->size, 5U);
    done = true;
  });
  EXPECT_FALSE(done);
  io_.run();
  EXPECT_TRUE(done);
}

TEST_F(AsioTransportTest, CoroutineRoundTripWithAnFd) {
  auto memfd = create_memfd("asio", 12345);
  ASSERT_TRUE(memfd);
  struct stat sent_stat {};
  ASSERT_EQ(::fstat(memfd->get(), &sent_stat), 0);

  std::optional<Result<ReceivedMessage>> got;
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        const int fd = memfd->get();
        const std::string text = "frame";
        auto sent =
            co_await async_send_message(a_, bytes_of(text), std::span(&fd, 1), asio::use_awaitable);
        EXPECT_TRUE(sent) << sent.error().message();
        got = co_await async_receive_message(b_, buf_, 4, asio::use_awaitable);
      },
      asio::detached);
  io_.run();

  ASSERT_TRUE(got && *got) << (got ? (*got).error().message() : "never completed");
  ASSERT_EQ((*got)->fds.size(), 1U);
  struct stat got_stat {};
  ASSERT_EQ(::fstat((*got)->fds[0].get(), &got_stat), 0);
  EXPECT_EQ(got_stat.st_ino, sent_stat.st_ino);
}

TEST_F(AsioTransportTest, SendWaitsWhileTheSocketIsFull) {
  const std::string chunk(4096, 'x');
  std::size_t queued = 0;
  while (*send_message(a_.native_handle(), bytes_of(chunk), {}, IoMode::non_blocking) ==
         SendStatus::sent) {
    ++queued;
  }
  std::optional<Result<SendStatus>> sent;
  async_send_message(a_, bytes_of(chunk), {}, [&](Result<SendStatus> r) { sent = std::move(r); });
  io_.poll();
  EXPECT_FALSE(sent) << "sent into a full socket";

  // Draining makes room (a unix socket polls writable again once its queued bytes fall to a
  // quarter of the send buffer); the pending send then completes.
  std::array<std::byte, 4096> sink{};
  for (std::size_t i = 0; i < queued; ++i) {
    ASSERT_TRUE(receive_message(b_.native_handle(), sink, 0, IoMode::non_blocking));
  }
  io_.run();
  ASSERT_TRUE(sent && *sent);
  EXPECT_EQ(**sent, SendStatus::sent);
  EXPECT_GT(queued, 0U);
}

TEST_F(AsioTransportTest, PeerCloseIsReported) {
  std::optional<Result<ReceivedMessage>> got;
  async_receive_message(b_, buf_, 4, [&](Result<ReceivedMessage> r) { got = std::move(r); });
  a_.close();
  io_.run();
  ASSERT_TRUE(got && *got);
  EXPECT_EQ((*got)->status, RecvStatus::peer_closed);
}

TEST_F(AsioTransportTest, CancellationIsAnErrorValue) {
  std::optional<Result<ReceivedMessage>> got;
  async_receive_message(b_, buf_, 4, [&](Result<ReceivedMessage> r) { got = std::move(r); });
  io_.poll();
  b_.cancel();
  io_.run();
  ASSERT_TRUE(got);
  ASSERT_FALSE(*got);
  EXPECT_EQ((*got).error().code(), asio::error::operation_aborted);
}

}  // namespace
}  // namespace shmfd
