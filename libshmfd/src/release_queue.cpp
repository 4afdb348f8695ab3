// ReleaseQueue: frames' releases from any thread, sent by the consumer's owner (release_queue.hpp).
#include "release_queue.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <thread>

#include "channel_format.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::detail {

Result<ReleaseQueue> ReleaseQueue::create() {
  const int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (fd < 0) return fail_errno(errno, "eventfd for frames released on other threads");
  return ReleaseQueue(UniqueFd(fd));
}

void ReleaseQueue::push(std::string topic, std::uint64_t sequence) noexcept {
  try {
    std::lock_guard lock(mutex_);
    pending_.push_back({std::move(topic), sequence});
    any_.store(true, std::memory_order_seq_cst);
  } catch (...) {
    return;  // out of memory: see the header
  }
  // Dekker with begin_sleep: the push, then the owner's state (seq_cst on both sides).
  const Sleep how = sleeping_.load(std::memory_order_seq_cst);
  if (how == Sleep::awake) return;  // it takes the queue before it next sleeps
  rung_.fetch_add(1, std::memory_order_seq_cst);
  if (how == Sleep::on_futex) {
    channel_format::futex_wake(rung_);
  } else {
    const std::uint64_t one = 1;
    (void)!::write(event_.get(), &one, sizeof one);  // a full counter is still readable
  }
}

std::vector<ReleaseQueue::Release> ReleaseQueue::take() {
  std::vector<Release> out;
  if (empty()) return out;  // no lock on the owner's every call
  std::lock_guard lock(mutex_);
  out.swap(pending_);
  any_.store(false, std::memory_order_seq_cst);
  return out;
}

void ReleaseQueue::put_back(std::vector<Release> releases) noexcept {
  try {
    std::lock_guard lock(mutex_);
    releases.insert(releases.end(), std::make_move_iterator(pending_.begin()),
                    std::make_move_iterator(pending_.end()));
    pending_.swap(releases);
    any_.store(!pending_.empty(), std::memory_order_seq_cst);
  } catch (...) {
    // Out of memory: those releases are lost; the broker frees them when the connection closes.
  }
}

bool ReleaseQueue::begin_sleep(Sleep how) noexcept {
  sleeping_.store(how, std::memory_order_seq_cst);
  const bool queued = !empty();  // Dekker with push(): its store of any_, then our state
  if (queued) sleeping_.store(Sleep::awake, std::memory_order_seq_cst);
  return !queued;
}

void ReleaseQueue::end_sleep() noexcept {
  if (sleeping_.exchange(Sleep::awake, std::memory_order_seq_cst) == Sleep::on_poll) {
    std::uint64_t count = 0;
    (void)!::read(event_.get(), &count, sizeof count);  // EAGAIN when nothing rang: fine
  }
}

void SharedConnection::release(std::string topic, std::uint64_t sequence) noexcept {
  releases.push(std::move(topic), sequence);
  send_if_idle();
}

void SharedConnection::enter_call() noexcept {
  for (;;) {
    std::uint32_t idle = 0;
    if (state_.compare_exchange_weak(idle, kInCall, std::memory_order_seq_cst)) return;
    std::this_thread::yield();  // a releasing thread is sending: a few microseconds
  }
}

void SharedConnection::leave_call() noexcept {
  state_.store(0, std::memory_order_seq_cst);
  // A release queued during the call, after its last flush, goes now.
  if (!releases.empty()) send_if_idle();
}

void SharedConnection::begin_read_only() noexcept {
  state_.store(kReadOnly, std::memory_order_seq_cst);
  // A release queued since the owner's last flush would otherwise wait out the read.
  if (!releases.empty()) send_if_idle();
}

void SharedConnection::end_read_only() noexcept {
  for (;;) {
    std::uint32_t reading = kReadOnly;
    if (state_.compare_exchange_weak(reading, kInCall, std::memory_order_seq_cst)) return;
    std::this_thread::yield();  // a releasing thread is sending: a few microseconds
  }
}

void SharedConnection::send_if_idle() noexcept {
  for (;;) {
    // The socket is free to write while the owner is idle or only reading.
    std::uint32_t base = state_.load(std::memory_order_seq_cst);
    if ((base != 0 && base != kReadOnly) ||
        !state_.compare_exchange_strong(base, base | kSending, std::memory_order_seq_cst)) {
      return;  // the owner is in a call that writes (it sends them), or another thread sends
    }
    bool full = false;
    try {
      auto pending = releases.take();
      std::size_t sent = 0;
      for (; sent < pending.size(); ++sent) {
        ControlMessageBuilder message;
        auto r = message.initRoot<proto::Message>().initRelease();
        r.setTopic(pending[sent].topic);
        r.setSequence(pending[sent].sequence);
        auto words = encode_message(message);
        auto done = connection.send(words.bytes(), {}, IoMode::non_blocking);
        if (!done) {  // the broker is gone: it freed everything
          sent = pending.size();
          break;
        }
        if (*done == SendStatus::would_block) {
          full = true;
          break;
        }
      }
      if (sent < pending.size()) {
        pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(sent));
        releases.put_back(std::move(pending));
      }
    } catch (...) {
      // Out of memory building a 40-byte message: the broker frees it when the connection closes.
    }
    state_.fetch_and(~kSending, std::memory_order_seq_cst);
    // A release pushed while this sent found the socket taken: look again, unless the socket
    // is full (the owner's next call sends those).
    if (full || releases.empty()) return;
  }
}

}  // namespace shmfd::detail
