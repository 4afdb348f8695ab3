#include "shmfd/wire/transport.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/memfd.hpp"
#include "shmfd/wire/peer_credentials.hpp"
#include "support/bytes.hpp"
#include "support/fd_count.hpp"

namespace shmfd {
namespace {

using testing::bytes_of;
using testing::string_of;

struct Pipe {
  UniqueFd read, write;
};

Pipe make_pipe() {
  int p[2];
  EXPECT_EQ(::pipe2(p, O_CLOEXEC | O_NONBLOCK), 0);
  return {UniqueFd(p[0]), UniqueFd(p[1])};
}

// True when every write end of the pipe is closed everywhere: read() sees EOF, not EAGAIN.
bool sees_eof(const Pipe& p) {
  char c;
  return ::read(p.read.get(), &c, 1) == 0;
}

class TransportTest : public testing::FdLeakTest {
 protected:
  void SetUp() override {
    FdLeakTest::SetUp();
    auto pair = make_seqpacket_pair();
    ASSERT_TRUE(pair) << pair.error().message();
    sender_ = std::move(pair->first);
    receiver_ = std::move(pair->second);
  }
  void TearDown() override {
    sender_.reset();
    receiver_.reset();
    FdLeakTest::TearDown();
  }

  // Sends `count` memfds and checks each received fd is the same file, in order.
  void round_trip_memfds(std::size_t count) {
    std::vector<UniqueFd> owned;
    std::vector<int> raw;
    for (std::size_t i = 0; i < count; ++i) {
      auto fd = create_memfd("t" + std::to_string(i), 4096 + i);
      ASSERT_TRUE(fd) << fd.error().message();
      raw.push_back(fd->get());
      owned.push_back(std::move(*fd));
    }
    auto sent = send_message(sender_.get(), bytes_of("fds"), raw);
    ASSERT_TRUE(sent) << sent.error().message();

    std::array<std::byte, 64> buf{};
    auto sut = receive_message(receiver_.get(), buf, kMaxFdsPerMessage);
    ASSERT_TRUE(sut) << sut.error().message();
    ASSERT_EQ(sut->status, RecvStatus::message);
    EXPECT_EQ(string_of(std::span(buf).first(sut->size)), "fds");
    ASSERT_EQ(sut->fds.size(), count);
    for (std::size_t i = 0; i < count; ++i) {
      struct stat a {
      }, b{};
      ASSERT_EQ(::fstat(raw[i], &a), 0);
      ASSERT_EQ(::fstat(sut->fds[i].get(), &b), 0);
      EXPECT_EQ(a.st_ino, b.st_ino) << "fd #" << i;
      EXPECT_EQ(b.st_size, static_cast<off_t>(4096 + i)) << "fd #" << i;
      EXPECT_EQ(::fcntl(sut->fds[i].get(), F_GETFD) & FD_CLOEXEC, FD_CLOEXEC) << "fd #" << i;
    }
  }

  UniqueFd sender_;
  UniqueFd receiver_;
};

TEST_F(TransportTest, BytesWithoutFds) {
  ASSERT_TRUE(send_message(sender_.get(), bytes_of("hello")));
  std::array<std::byte, 16> buf{};
  auto sut = receive_message(receiver_.get(), buf, 4);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(sut->status, RecvStatus::message);
  EXPECT_EQ(string_of(std::span(buf).first(sut->size)), "hello");
  EXPECT_TRUE(sut->fds.empty());
}

TEST_F(TransportTest, OneFdArrivesIntact) {
  round_trip_memfds(1);
}
TEST_F(TransportTest, SixteenFdsArriveIntact) {
  round_trip_memfds(16);
}
TEST_F(TransportTest, TheMaximumOf253FdsArriveIntact) {
  round_trip_memfds(kMaxFdsPerMessage);
}

TEST_F(TransportTest, MoreThan253FdsIsRefusedBeforeSending) {
  std::vector<int> fds(kMaxFdsPerMessage + 1, sender_.get());
  auto sut = send_message(sender_.get(), bytes_of("x"), fds);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::too_many_fds));
}

TEST_F(TransportTest, SurplusFdsAreClosedAndReported) {
  // Eight pipe write ends; the receiver accepts three. Once the sender drops its copies, every
  // read end must see EOF: proof that the receiver kept none, neither the three nor the rest.
  std::vector<Pipe> pipes;
  std::vector<int> write_ends;
  for (int i = 0; i < 8; ++i) {
    pipes.push_back(make_pipe());
    write_ends.push_back(pipes.back().write.get());
  }
  ASSERT_TRUE(send_message(sender_.get(), bytes_of("eight"), write_ends));
  for (auto& p : pipes) p.write.reset();

  std::array<std::byte, 16> buf{};
  auto sut = receive_message(receiver_.get(), buf, 3);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::fds_truncated));
  EXPECT_NE(sut.error().message().find("more fds than a message may (at most 3)"),
            std::string::npos)
      << sut.error().message();
  for (std::size_t i = 0; i < pipes.size(); ++i) EXPECT_TRUE(sees_eof(pipes[i])) << "pipe " << i;
}

TEST_F(TransportTest, OneFdTooManyIsCaughtThoughTheControlBufferHasRoomForIt) {
  // CMSG_SPACE(1 fd) is 24 bytes, which also holds 2 fds: the kernel sets no MSG_CTRUNC.
  std::vector<Pipe> pipes;
  std::vector<int> write_ends;
  for (int i = 0; i < 2; ++i) {
    pipes.push_back(make_pipe());
    write_ends.push_back(pipes.back().write.get());
  }
  ASSERT_TRUE(send_message(sender_.get(), bytes_of("two"), write_ends));
  for (auto& p : pipes) p.write.reset();
  std::array<std::byte, 16> buf{};
  auto sut = receive_message(receiver_.get(), buf, 1);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::fds_truncated));
  for (const auto& p : pipes) EXPECT_TRUE(sees_eof(p));
}

TEST_F(TransportTest, FdsToAReceiverThatAcceptsNoneAreClosed) {
  Pipe p = make_pipe();
  const int fd = p.write.get();
  ASSERT_TRUE(send_message(sender_.get(), bytes_of("one"), std::span(&fd, 1)));
  p.write.reset();
  std::array<std::byte, 16> buf{};
  auto sut = receive_message(receiver_.get(), buf, 0);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::fds_truncated));
  EXPECT_TRUE(sees_eof(p));
}

TEST_F(TransportTest, OversizedDatagramIsAnErrorAndItsFdsAreClosed) {
  Pipe p = make_pipe();
  const int fd = p.write.get();
  const std::string big(100, 'b');
  ASSERT_TRUE(send_message(sender_.get(), bytes_of(big), std::span(&fd, 1)));
  p.write.reset();

  std::array<std::byte, 10> buf{};
  auto sut = receive_message(receiver_.get(), buf, 4);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::message_truncated));
  EXPECT_NE(sut.error().message().find("datagram of 100 bytes exceeds the 10-byte limit"),
            std::string::npos)
      << sut.error().message();
  EXPECT_TRUE(sees_eof(p));

  // The stream goes on: the next datagram is received whole.
  ASSERT_TRUE(send_message(sender_.get(), bytes_of("next")));
  auto next = receive_message(receiver_.get(), buf, 4);
  ASSERT_TRUE(next) << next.error().message();
  EXPECT_EQ(string_of(std::span(buf).first(next->size)), "next");
}

TEST_F(TransportTest, PeerCloseIsItsOwnOutcome) {
  sender_.reset();
  std::array<std::byte, 16> buf{};
  auto sut = receive_message(receiver_.get(), buf, 4);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(sut->status, RecvStatus::peer_closed);
}

// The kernel reports ECONNRESET to a socket whose peer closed with messages of its own
// unread, ahead of what that peer sent before it closed. Those messages must still arrive.
TEST_F(TransportTest, APeerThatClosesWithRepliesUnreadStillDeliversWhatItSent) {
  for (IoMode mode : {IoMode::blocking, IoMode::non_blocking}) {
    SCOPED_TRACE(mode == IoMode::blocking ? "blocking" : "non-blocking");
    auto pair = make_seqpacket_pair();
    ASSERT_TRUE(pair) << pair.error().message();
    auto [peer, self] = std::move(*pair);
    ASSERT_TRUE(send_message(peer.get(), bytes_of("last words")));
    ASSERT_TRUE(send_message(self.get(), bytes_of("never read")));
    peer.reset();

    std::array<std::byte, 16> buf{};
    auto first = receive_message(self.get(), buf, 4, mode);
    ASSERT_TRUE(first) << first.error().message();
    ASSERT_EQ(first->status, RecvStatus::message);
    EXPECT_EQ(string_of(std::span(buf).first(first->size)), "last words");
    auto second = receive_message(self.get(), buf, 4, mode);
    ASSERT_TRUE(second) << second.error().message();
    EXPECT_EQ(second->status, RecvStatus::peer_closed);
  }
}

TEST_F(TransportTest, EmptySocketWouldBlockInNonBlockingMode) {
  std::array<std::byte, 16> buf{};
  auto sut = receive_message(receiver_.get(), buf, 4, IoMode::non_blocking);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(sut->status, RecvStatus::would_block);
}

TEST_F(TransportTest, FullSocketWouldBlockInNonBlockingMode) {
  const std::string chunk(4096, 'f');
  int sent = 0;
  for (;; ++sent) {
    auto r = send_message(sender_.get(), bytes_of(chunk), {}, IoMode::non_blocking);
    ASSERT_TRUE(r) << r.error().message();
    if (*r == SendStatus::would_block) break;
    ASSERT_LT(sent, 100000) << "socket never filled";
  }
  EXPECT_GT(sent, 0);
}

TEST_F(TransportTest, EmptyMessageIsRefused) {
  auto sut = send_message(sender_.get(), {});
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(Errc::empty_message));
}

TEST_F(TransportTest, SendingToAClosedPeerIsEpipeNotSigpipe) {
  receiver_.reset();
  auto sut = send_message(sender_.get(), bytes_of("anyone?"));
  ASSERT_FALSE(sut);  // and the process is still alive: MSG_NOSIGNAL
  EXPECT_TRUE(sut.error().is(std::errc::broken_pipe)) << sut.error().message();
  EXPECT_NE(sut.error().message().find("sendmsg"), std::string::npos);
}

TEST_F(TransportTest, SendingAnInvalidFdIsAnError) {
  const int bad = 9999;
  auto sut = send_message(sender_.get(), bytes_of("x"), std::span(&bad, 1));
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(std::errc::bad_file_descriptor)) << sut.error().message();
}

TEST_F(TransportTest, PeerCredentialsNameThisProcess) {
  auto sut = peer_credentials(receiver_.get());
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(sut->pid, ::getpid());
  EXPECT_EQ(sut->uid, ::getuid());
  EXPECT_EQ(sut->gid, ::getgid());
}

TEST_F(TransportTest, PeerCredentialsOfANonSocketIsAnError) {
  UniqueFd file(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  auto sut = peer_credentials(file.get());
  ASSERT_FALSE(sut);
  EXPECT_NE(sut.error().message().find("SO_PEERCRED"), std::string::npos);
}

}  // namespace
}  // namespace shmfd
