// Subscriptions: what a consumer asked for and saw of each topic, renewed after a reconnect:
// the count of lost frames that each frame and end of stream reports, and protocol version 4's
// prefetch, whose reads it tells the broker (docs/PROTOCOL.md, section 6). Internal to libshmfd.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>

#include "broker_link.hpp"
#include "shmfd/consumer.hpp"

namespace shmfd::detail {

struct Subscription {
  std::uint32_t depth = 0;
  Backpressure policy = Backpressure::drop_oldest;
  // 1 for drop-oldest and latest (only the frame the program asks for is on its way through
  // the broker, and the rest wait there, where the newest are kept); 0 for block-producer or a
  // broker before version 4. Frames that came through the broker and were handed to the
  // program, and the count last told in a Read (both since the Subscribe).
  std::uint32_t prefetch = 0;
  std::uint64_t handed = 0;
  std::uint64_t reported = 0;
  std::uint64_t last_sequence = 0;   // of the last frame delivered
  std::uint64_t dropped = 0;         // reported with the last frame, reconnects included
  std::uint64_t dropped_before = 0;  // what earlier connections counted
  bool renewed = false;  // reconnected, and no frame seen since: a sequence gap is a loss
};

// The prefetch a subscription of `policy` asks for on a connection of protocol `version`.
std::uint32_t prefetch_of(Backpressure policy, std::uint32_t version);

class Subscriptions {
 public:
  // Subscribed (again) to `topic` on a connection of protocol `version`: counting afresh.
  void add(std::string_view topic, std::uint32_t depth, Backpressure policy, std::uint32_t version);
  void erase(std::string_view topic);
  // After a reconnect: each subscription, renewed by `subscribe` on a connection of protocol
  // `version`; losses meanwhile show in the gap of sequence numbers.
  Status renew(std::uint32_t version,
               const std::function<Status(const std::string&, const Subscription&)>& subscribe);

  // What Frame::dropped() says for frame `sequence` of `topic`, whose path counted `reported`
  // frames dropped so far (sequence 0: an end of stream, whose count includes everything).
  std::uint64_t account(const std::string& topic, std::uint64_t sequence, std::uint64_t reported);
  // A frame that came through the broker, handed to the program: counted for report_reads().
  void handed(const Frame& frame);
  // Sends a Read for each subscription with a prefetch whose program took frames since its
  // last. Best effort: a send that fails (the broker went) is met by the read that follows.
  void report_reads(BrokerLink& link);

 private:
  std::map<std::string, Subscription, std::less<>> topics_;
  bool reads_due_ = false;
};

}  // namespace shmfd::detail
