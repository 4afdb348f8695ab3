// The limits one client meets as it goes: its message rate, the bytes of its buffers the broker
// pins, and how long it may hold frames. Slots held (--max-slots-held) are counted where
// frames are delivered (outbox.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "log.hpp"
#include "options.hpp"
#include "refusal.hpp"
#include "registry.hpp"

namespace shmfd::broker {

struct ClientState;

// --max-message-rate as a token bucket: at most one second's worth saved up, so bursts up to
// the rate pass at once.
class RateBudget {
 public:
  explicit RateBudget(std::uint64_t per_second);  // 0: unlimited
  // How long until the budget holds a whole message (zero: read one now).
  std::chrono::nanoseconds wait(std::chrono::steady_clock::time_point now);
  void spend();  // a message was read

 private:
  std::uint64_t rate_;
  double budget_;
  std::chrono::steady_clock::time_point refilled_;
};

// Whether `bytes` more may be charged to `account` under --max-pinned-bytes; a LIMIT_EXCEEDED
// refusal naming both figures when not.
Outcome check_pinned(const Account& account, std::uint64_t bytes, std::uint64_t limit,
                     const std::string& topic, std::uint64_t sequence);

// Reports (once per frame) each frame `client` has held past --hold-deadline-ms and returns
// the final refusal that disconnects it when Limits::stuck says so.
std::optional<Refusal> judge_holds(ClientState& client, const Limits& limits, const Logger& log,
                                   std::chrono::steady_clock::time_point now);

}  // namespace shmfd::broker
