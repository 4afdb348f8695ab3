// Test support: every test that touches fds proves it leaked none by counting /proc/self/fd.
#pragma once

#include <dirent.h>

#include <cstddef>

#include <gtest/gtest.h>

namespace shmfd::testing {

// Open fds of this process, not counting the one used to list them.
inline std::size_t open_fd_count() {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return 0;
  std::size_t count = 0;
  while (const dirent* entry = ::readdir(dir)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(dir);
  return count - 1;
}

// Fixture base: fails the test if it ends with a different number of open fds than it began.
class FdLeakTest : public ::testing::Test {
 protected:
  void SetUp() override { fds_at_start_ = open_fd_count(); }
  void TearDown() override {
    EXPECT_EQ(open_fd_count(), fds_at_start_) << "the test leaked or closed file descriptors";
  }

 private:
  std::size_t fds_at_start_ = 0;
};

}  // namespace shmfd::testing
