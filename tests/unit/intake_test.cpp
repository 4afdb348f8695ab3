// Frame and pool intake (shmfd/wire/intake.hpp): the checks every receiver runs before touching a
// buffer from another process, and that a refused fd stays with its owner to be closed.
#include "shmfd/wire/intake.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "shmfd/memfd.hpp"
#include "shmfd/wire/wire.hpp"
#include "support/fd_count.hpp"

namespace shmfd {
namespace {

UniqueFd dup_fd(int fd) {
  return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
}

class IntakeTest : public ::testing::Test {
 protected:
  // A Frame naming fd `index` with a blob layout of `bytes`.
  proto::Frame::Reader frame(std::uint32_t index, std::uint64_t bytes) {
    auto f = message_->initRoot<proto::Frame>();
    f.setSequence(1);
    f.setFd(index);
    layout_to_proto(blob_layout(bytes), f.initLayout());
    return f.asReader();
  }
  static std::vector<UniqueFd> fds_of(int fd) {
    std::vector<UniqueFd> fds;
    fds.push_back(dup_fd(fd));
    return fds;
  }

  // Behind a pointer: capnp's builders may throw from their destructors.
  std::unique_ptr<ControlMessageBuilder> message_ = std::make_unique<ControlMessageBuilder>();
};

TEST_F(IntakeTest, AcceptsASealedFrameAndTakesItsFd) {
  auto buffer = std::move(*WritableBuffer::create("intake", 4096)).seal();
  auto fds = fds_of(buffer->fd());

  auto sut = accept_frame(frame(0, 4096), fds, Guarantee::sealed);

  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_TRUE(sut->fd);
  EXPECT_FALSE(fds[0]) << "the fd moved out of the message's list";
  EXPECT_EQ(sut->extent, 4096U);
  EXPECT_EQ(sut->verified.size, 4096U);
}

TEST_F(IntakeTest, AFrameSealedOnlyForAPoolIsRefusedWhereSealedIsRequired) {
  auto pool = std::move(*WritableBuffer::create("intake", 4096)).into_pool();
  auto fds = fds_of(pool->fd());

  auto sealed = accept_frame(frame(0, 4096), fds, Guarantee::sealed);
  ASSERT_FALSE(sealed);
  EXPECT_TRUE(sealed.error().is(Errc::missing_seals)) << sealed.error().message();
  EXPECT_TRUE(fds[0]) << "a refused fd stays with its owner";

  EXPECT_TRUE(accept_frame(frame(0, 4096), fds, Guarantee::pool));
}

TEST_F(IntakeTest, RefusesAnFdIndexOutOfRangeALayoutPastTheBufferAndNotAMemfd) {
  const std::size_t before = testing::open_fd_count();
  {
    auto buffer = std::move(*WritableBuffer::create("intake", 4096)).seal();
    auto fds = fds_of(buffer->fd());

    auto index = accept_frame(frame(1, 4096), fds, Guarantee::sealed);
    auto past = accept_frame(frame(0, 8192), fds, Guarantee::sealed);
    int pipe_fds[2];
    ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
    ::close(pipe_fds[1]);
    std::vector<UniqueFd> pipe;
    pipe.emplace_back(pipe_fds[0]);
    auto not_memfd = accept_frame(frame(0, 16), pipe, Guarantee::sealed);

    ASSERT_FALSE(index);
    EXPECT_TRUE(index.error().is(Errc::fd_index_out_of_range));
    ASSERT_FALSE(past);
    EXPECT_TRUE(past.error().is(Errc::buffer_too_small)) << past.error().message();
    ASSERT_FALSE(not_memfd);
    EXPECT_TRUE(not_memfd.error().is(Errc::not_memfd));
  }
  EXPECT_EQ(testing::open_fd_count(), before);
}

TEST_F(IntakeTest, APoolMustBeASizeInWholePagesWithThePoolSeals) {
  const std::uint64_t page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
  auto pool = std::move(*WritableBuffer::create("intake", 4 * page)).into_pool();
  auto fds = fds_of(pool->fd());

  auto overflow = accept_pool(0, 4, ~std::uint64_t{0} / 2, fds);
  auto partial_pages = accept_pool(0, 4, page / 2, fds);
  auto too_big = accept_pool(0, 5, page, fds);
  auto sut = accept_pool(0, 4, page, fds);

  ASSERT_FALSE(overflow);
  EXPECT_TRUE(overflow.error().is(Errc::invalid_size));
  ASSERT_FALSE(partial_pages);
  EXPECT_TRUE(partial_pages.error().is(Errc::invalid_size)) << partial_pages.error().message();
  ASSERT_FALSE(too_big);
  EXPECT_TRUE(too_big.error().is(Errc::buffer_too_small));
  ASSERT_TRUE(sut) << sut.error().message();
  EXPECT_EQ(sut->bytes, 4 * page);
}

}  // namespace
}  // namespace shmfd
