// Two real processes: the consumer maps the producer's pool pages and sees each write the
// producer makes through its own mapping, with no copy, while it can never write itself.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <numeric>
#include <string>

#include <gtest/gtest.h>

#include "shmfd/memfd.hpp"
#include "shmfd/verify.hpp"
#include "shmfd/wire/transport.hpp"
#include "support/bytes.hpp"
#include "support/fd_count.hpp"

namespace shmfd {
namespace {

constexpr std::size_t kSize = 1 << 20;

std::uint64_t sum(std::span<const std::byte> bytes) {
  return std::accumulate(
      bytes.begin(), bytes.end(), std::uint64_t{0},
      [](std::uint64_t a, std::byte b) { return a + std::to_integer<unsigned>(b); });
}

void reply(int sock, const std::string& text) {
  (void)send_message(sock, testing::bytes_of(text));
}

// The consumer process: verify, map read-only, try to write, then answer "sum" requests.
[[noreturn]] void consumer(int sock) {
  std::array<std::byte, 64> buf{};
  auto first = receive_message(sock, buf, 1);
  if (!first || first->fds.size() != 1) {
    reply(sock, "error: no fd");
    std::_Exit(1);
  }
  const int fd = first->fds[0].get();
  auto verified = verify_buffer(fd, Guarantee::pool, kSize);
  if (!verified) {
    reply(sock, "error: " + verified.error().message());
    std::_Exit(1);
  }
  auto view = Mapping::map(fd, kSize, Access::read_only);
  auto writer = Mapping::map(fd, kSize, Access::read_write);
  if (!view) {
    reply(sock, "error: " + view.error().message());
    std::_Exit(1);
  }
  reply(sock, writer ? "writable" : "read-only");
  for (;;) {
    auto m = receive_message(sock, buf, 0);
    if (!m || m->status != RecvStatus::message) std::_Exit(0);
    reply(sock, std::to_string(sum(view->bytes())));
  }
}

class CrossProcessTest : public testing::FdLeakTest {};

TEST_F(CrossProcessTest, ConsumerSeesTheProducersPoolPagesWithoutACopy) {
  auto pair = make_seqpacket_pair();
  ASSERT_TRUE(pair);
  auto pool = WritableBuffer::create("cross", kSize).and_then([](WritableBuffer b) {
    return std::move(b).into_pool();
  });
  ASSERT_TRUE(pool) << pool.error().message();

  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pair->first.reset();
    consumer(pair->second.get());
  }
  pair->second.reset();
  const int sock = pair->first.get();
  std::array<std::byte, 64> buf{};
  const auto ask = [&](const std::string& text) {
    EXPECT_TRUE(send_message(sock, testing::bytes_of(text)));
    auto m = receive_message(sock, buf, 0);
    return m && m->status == RecvStatus::message ? testing::string_of(std::span(buf).first(m->size))
                                                 : std::string("no answer");
  };

  const int fd = pool->fd();
  ASSERT_TRUE(send_message(sock, testing::bytes_of("pool"), std::span(&fd, 1)));
  auto answer = receive_message(sock, buf, 0);
  ASSERT_TRUE(answer && answer->status == RecvStatus::message);
  EXPECT_EQ(testing::string_of(std::span(buf).first(answer->size)), "read-only");

  // Each write through the producer's mapping is what the consumer reads next.
  std::fill(pool->bytes().begin(), pool->bytes().end(), std::byte{1});
  EXPECT_EQ(ask("sum"), std::to_string(kSize));
  std::fill(pool->bytes().begin(), pool->bytes().end(), std::byte{3});
  EXPECT_EQ(ask("sum"), std::to_string(3 * kSize));

  pair->first.reset();
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

}  // namespace
}  // namespace shmfd
