// Test support: waiting for a producer's channels to open. Channels open in a few messages'
// time after a subscribe, and both sides must read their sockets for it, so the wait reads
// each consumer and the producer until the producer has the channels.
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"

namespace shmfd::testing {

// Reads the consumers' sockets and the producer's until the producer has `n` channels open
// (true), or `limit` passes (false). A TSan build on a loaded machine may take seconds.
inline bool channels_open(Producer& producer, const std::vector<Consumer*>& consumers,
                          std::size_t n,
                          std::chrono::steady_clock::duration limit = std::chrono::seconds(20)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (producer.channels() < n && std::chrono::steady_clock::now() < until) {
    for (Consumer* c : consumers) (void)c->receive_for(std::chrono::milliseconds(2));
    (void)producer.poll_errors();
  }
  return producer.channels() >= n;
}

}  // namespace shmfd::testing
