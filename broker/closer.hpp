// Closes the broker's memfds on a thread of its own. Closing the last fd of a memfd frees its
// pages there and then: about 4 ms for a 33 MB frame on the development VM, time the event loop
// would take from every client. The broker is the last holder whenever it drops a frame nobody
// received (drop-oldest, no subscriber, a refusal) or a pool outlives its producer.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "shmfd/unique_fd.hpp"

namespace shmfd::broker {

class Closer {
 public:
  Closer();
  // Closes what is still queued, then stops the thread.
  ~Closer();
  Closer(const Closer&) = delete;
  Closer& operator=(const Closer&) = delete;

  void close(UniqueFd fd);
  // Returns once every fd handed over so far is closed (tests and the fuzzer count fds).
  void wait_idle();

 private:
  void run();

  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable idle_;
  std::vector<int> queue_;
  bool busy_ = false;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the rest is ready
};
using CloserPtr = std::shared_ptr<Closer>;

// An fd whose close is left to a Closer (inline when there is none).
class DeferredFd {
 public:
  // Freeing a buffer this small costs less than waking the closer thread (a futex wake and a
  // context switch, which on one CPU the event loop pays in full): such buffers close inline.
  static constexpr std::uint64_t kCloseInlineBelow = 256 * 1024;

  DeferredFd() = default;
  DeferredFd(UniqueFd fd, CloserPtr closer) : fd_(std::move(fd)), closer_(std::move(closer)) {}
  // Deferred only if the buffer of `bytes` is big enough for freeing it to stall the loop.
  DeferredFd(UniqueFd fd, CloserPtr closer, std::uint64_t bytes)
      : fd_(std::move(fd)), closer_(bytes < kCloseInlineBelow ? nullptr : std::move(closer)) {}
  DeferredFd(DeferredFd&&) noexcept = default;
  DeferredFd& operator=(DeferredFd&& other) noexcept {
    if (this != &other) {
      release();
      fd_ = std::move(other.fd_);
      closer_ = std::move(other.closer_);
    }
    return *this;
  }
  ~DeferredFd() { release(); }

  int get() const noexcept { return fd_.get(); }
  // Whether the close will happen on the Closer's thread.
  bool deferred() const noexcept { return fd_ && closer_; }

 private:
  void release() {
    if (fd_ && closer_) closer_->close(std::move(fd_));
    fd_.reset();
  }

  UniqueFd fd_;
  CloserPtr closer_;
};

}  // namespace shmfd::broker
