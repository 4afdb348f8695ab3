#include "closer.hpp"

#include <unistd.h>

namespace shmfd::broker {

Closer::Closer() : thread_([this] { run(); }) {}

Closer::~Closer() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void Closer::close(UniqueFd fd) {
  const int raw = fd.release();
  if (raw < 0) return;
  {
    std::lock_guard lock(mutex_);
    queue_.push_back(raw);
  }
  wake_.notify_one();
}

void Closer::wait_idle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return queue_.empty() && !busy_; });
}

void Closer::run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to close
    std::vector<int> batch;
    batch.swap(queue_);
    busy_ = true;
    lock.unlock();
    for (int fd : batch) ::close(fd);
    lock.lock();
    busy_ = false;
    if (queue_.empty()) idle_.notify_all();
  }
}

}  // namespace shmfd::broker
