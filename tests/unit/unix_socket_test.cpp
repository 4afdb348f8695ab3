#include "shmfd/wire/unix_socket.hpp"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "shmfd/wire/peer_credentials.hpp"
#include "shmfd/wire/transport.hpp"
#include "support/bytes.hpp"
#include "support/fd_count.hpp"

namespace shmfd {
namespace {

class UnixSocketTest : public testing::FdLeakTest {
 protected:
  void SetUp() override {
    FdLeakTest::SetUp();
    std::string templ = "/tmp/shmfd-sock-XXXXXX";
    ASSERT_NE(::mkdtemp(templ.data()), nullptr);
    dir_ = templ;
    path_ = dir_ + "/broker.sock";
  }
  void TearDown() override {
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
    FdLeakTest::TearDown();
  }

  std::string dir_;
  std::string path_;
};

TEST_F(UnixSocketTest, ListenCreatesASocketFileWithTheRequestedMode) {
  auto sut = listen_seqpacket(path_, ListenOptions{.mode = 0600});
  ASSERT_TRUE(sut) << sut.error().message();
  struct stat st {};
  ASSERT_EQ(::lstat(path_.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600U);
}

TEST_F(UnixSocketTest, ClientConnectsAndExchangesFdsAndCredentials) {
  auto listener = listen_seqpacket(path_);
  ASSERT_TRUE(listener) << listener.error().message();
  auto client = connect_seqpacket(path_);
  ASSERT_TRUE(client) << client.error().message();
  UniqueFd server(::accept4(listener->get(), nullptr, nullptr, SOCK_CLOEXEC));
  ASSERT_TRUE(server);

  auto cred = peer_credentials(server.get());
  ASSERT_TRUE(cred) << cred.error().message();
  EXPECT_EQ(cred->pid, ::getpid());

  const int fd = client->get();
  ASSERT_TRUE(send_message(client->get(), testing::bytes_of("hi"), std::span(&fd, 1)));
  std::array<std::byte, 8> buf{};
  auto m = receive_message(server.get(), buf, 1);
  ASSERT_TRUE(m) << m.error().message();
  EXPECT_EQ(m->size, 2U);
  EXPECT_EQ(m->fds.size(), 1U);
}

TEST_F(UnixSocketTest, ALiveListenerIsNotReplaced) {
  auto first = listen_seqpacket(path_);
  ASSERT_TRUE(first) << first.error().message();
  auto sut = listen_seqpacket(path_);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(std::errc::address_in_use));
  EXPECT_NE(sut.error().message().find("already listening"), std::string::npos);
  // The first listener still works.
  EXPECT_TRUE(connect_seqpacket(path_));
  UniqueFd pending(::accept4(first->get(), nullptr, nullptr, SOCK_CLOEXEC));
}

TEST_F(UnixSocketTest, AStaleSocketFileIsReplaced) {
  {
    auto dead = listen_seqpacket(path_);  // closed at the end of the scope; its file stays
    ASSERT_TRUE(dead);
  }
  ASSERT_EQ(::access(path_.c_str(), F_OK), 0);
  auto sut = listen_seqpacket(path_);
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_TRUE(connect_seqpacket(path_));
}

TEST_F(UnixSocketTest, AFileThatIsNotASocketIsLeftAlone) {
  { std::ofstream(path_) << "precious"; }
  auto sut = listen_seqpacket(path_);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(std::errc::file_exists));
  std::ifstream in(path_);
  std::string content;
  in >> content;
  EXPECT_EQ(content, "precious");
}

TEST_F(UnixSocketTest, OverlongPathIsRefusedWithTheLimit) {
  const std::string long_path = dir_ + "/" + std::string(200, 'p');
  auto sut = listen_seqpacket(long_path);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(std::errc::filename_too_long));
  EXPECT_NE(sut.error().message().find("1 to 107 allowed"), std::string::npos)
      << sut.error().message();
  EXPECT_FALSE(connect_seqpacket(long_path));
}

TEST_F(UnixSocketTest, ConnectingToNothingNamesThePath) {
  auto sut = connect_seqpacket(path_);
  ASSERT_FALSE(sut);
  EXPECT_TRUE(sut.error().is(std::errc::no_such_file_or_directory));
  EXPECT_NE(sut.error().message().find(path_), std::string::npos);
}

}  // namespace
}  // namespace shmfd
