// The broker's routing state: topics, their subscriptions and the frames queued for them.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "shmfd/guarantee.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/protocol.hpp"
#include "shmfd/unique_fd.hpp"

namespace shmfd::broker {

class Client;

// One published, verified frame. Shared by every subscriber queue it is in: the broker holds
// one fd per frame, whatever the fan-out, and closes it when the last queue lets go.
struct FrameRecord {
  UniqueFd fd;
  Layout layout;
  std::uint64_t sequence = 0;
  std::uint64_t timestamp_ns = 0;
};
using FramePtr = std::shared_ptr<const FrameRecord>;

// An entry of a subscriber's queue: a frame, or (frame == nullptr) the end of the stream, kept
// in order so a consumer sees every frame before the end.
struct Pending {
  FramePtr frame;
  std::string end_reason;
};

struct Topic;

struct Subscription {
  Topic* topic = nullptr;
  Client* client = nullptr;
  std::uint32_t depth = 0;
  Backpressure policy = Backpressure::DROP_OLDEST;
  std::deque<Pending> pending;          // waiting in the broker
  std::deque<std::uint64_t> in_flight;  // delivered, not yet released by the consumer
  std::uint64_t dropped = 0;

  std::size_t queued_frames() const;
  // True when a block-producer subscriber cannot take another frame.
  bool blocks_producer() const {
    return policy == Backpressure::BLOCK_PRODUCER && queued_frames() >= depth;
  }
  // Whether the head of `pending` may be sent now (the consumer's window has room).
  bool can_send() const {
    return !pending.empty() && (pending.front().frame == nullptr || in_flight.size() < depth);
  }
};

struct Topic {
  std::string name;
  LayoutKind kind = LayoutKind::BLOB;
  Guarantee guarantee = Guarantee::sealed;
  Client* producer = nullptr;
  std::vector<Subscription*> subscribers;
  FramePtr last;  // only with --keep-last-frame
};

}  // namespace shmfd::broker
