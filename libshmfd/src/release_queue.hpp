// ReleaseQueue: releases of frames that came through the socket, from any thread. A Frame may
// be dropped anywhere (a GStreamer streaming thread, Python's garbage collector, a worker
// pool, inside the consumer's own receive), and its release must reach the broker promptly
// without two threads ever writing the socket at once, and without a destructor ever blocking.
//
// While the consumer's owner is inside a call, a release is queued: the call sends it (it
// flushes before each read), and an owner that sleeps waiting for the broker announces it
// first (begin_sleep), so that a release queued meanwhile wakes it, through a futex word for a
// wait on channels or an eventfd for a poll() on the socket. A release never waits for a frame
// that will not come without it (a block-producer subscriber whose whole depth is held).
// Between calls the consumer is idle, and the thread that drops the frame sends the release
// itself, non-blocking, with the socket to itself (SharedConnection::release); a full socket
// leaves it queued for the next call.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "shmfd/connection.hpp"
#include "shmfd/unique_fd.hpp"

namespace shmfd::detail {

class ReleaseQueue {
 public:
  struct Release {
    std::string topic;
    std::uint64_t sequence = 0;
  };
  // How the owner sleeps, so that a release wakes it the one way that reaches it.
  enum class Sleep : std::uint32_t { awake, on_futex, on_poll };

  // Makes the eventfd (EFD_NONBLOCK | EFD_CLOEXEC) that wakes a poll().
  static Result<ReleaseQueue> create();
  // One that nobody sleeps on (a producer's link): no eventfd.
  static ReleaseQueue unused() { return ReleaseQueue(UniqueFd()); }
  ReleaseQueue(ReleaseQueue&& other) noexcept : event_(std::move(other.event_)) {}

  // Any thread. Never blocks on the socket and never throws: out of memory, the release is
  // lost, and the broker frees the frame when the connection closes.
  void push(std::string topic, std::uint64_t sequence) noexcept;
  // The owner: everything queued so far, oldest first.
  std::vector<Release> take();
  // Puts back what could not be sent, before anything queued since.
  void put_back(std::vector<Release> releases) noexcept;
  bool empty() const noexcept { return !any_.load(std::memory_order_seq_cst); }

  // The owner, around a sleep: begin_sleep returns false if a release is already queued (then
  // it must not sleep, and need not call end_sleep).
  bool begin_sleep(Sleep how) noexcept;
  void end_sleep() noexcept;
  // What a futex wait watches (with its value at begin_sleep), and what poll() watches.
  const std::atomic<std::uint32_t>& word() const noexcept { return rung_; }
  int event_fd() const noexcept { return event_.get(); }

 private:
  explicit ReleaseQueue(UniqueFd event) : event_(std::move(event)) {}

  std::mutex mutex_;
  std::vector<Release> pending_;  // under mutex_
  // Whether pending_ holds anything: read without the lock on every call of the owner, which
  // finds it empty nearly always.
  std::atomic<bool> any_{false};
  std::atomic<Sleep> sleeping_{Sleep::awake};
  std::atomic<std::uint32_t> rung_{0};
  UniqueFd event_;
};

// What a consumer's socket frames share with it: the connection, which stays open while one of
// them lives (so the broker keeps their pool slots from the producer), and the queue their
// releases go to. After a reconnect, frames from before keep the old one: their releases go
// nowhere, which is right, since the new broker never sent them.
struct SharedConnection {
  SharedConnection(Connection c, ReleaseQueue q)
      : connection(std::move(c)), releases(std::move(q)) {}

  // Any thread: frame `sequence` of `topic` is released.
  void release(std::string topic, std::uint64_t sequence) noexcept;
  // The owner, around each call that may use the socket: releases are queued meanwhile (see
  // above); leaving sends what came in the meantime, if the call did not.
  void enter_call() noexcept;
  void leave_call() noexcept;
  // The owner, inside a call, around a blocking read of the socket (it writes nothing then):
  // meanwhile other threads send their releases themselves, as while it is idle, so the read
  // costs one recvmsg and still never waits for a release.
  void begin_read_only() noexcept;
  void end_read_only() noexcept;

  Connection connection;
  ReleaseQueue releases;

 private:
  // Sends the queued releases, non-blocking, if nobody else uses the socket now.
  void send_if_idle() noexcept;
  static constexpr std::uint32_t kInCall = 1;    // the owner is inside a call
  static constexpr std::uint32_t kSending = 2;   // a releasing thread is sending
  static constexpr std::uint32_t kReadOnly = 4;  // the owner only reads the socket now
  std::atomic<std::uint32_t> state_{0};
};

}  // namespace shmfd::detail
