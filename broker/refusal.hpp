// A refused request, as a value: what a handler returns instead of calling back into the
// session. The session turns it into an Error reply, a log line and (usually) a strike.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

#include "shmfd/wire/protocol.hpp"

namespace shmfd::broker {

struct Refusal {
  proto::ErrorCode code = proto::ErrorCode::MALFORMED_MESSAGE;
  std::string message;  // what was wrong, naming the request and its arguments
  std::string topic;    // empty when the request had none
  std::uint64_t sequence = 0;
  bool strike = true;  // counts towards --max-errors (a state conflict does not)
  bool final = false;  // the client is disconnected once it has read this
};

// What a handler returns: done, or refused.
using Outcome = tl::expected<void, Refusal>;

inline tl::unexpected<Refusal> refuse(proto::ErrorCode code, std::string message,
                                      std::string topic = {}, std::uint64_t sequence = 0) {
  return tl::unexpected<Refusal>(
      Refusal{code, std::move(message), std::move(topic), sequence, true, false});
}

// A refusal after which the client is disconnected (once it has read it).
inline Refusal final_refusal(proto::ErrorCode code, std::string message) {
  return Refusal{code, std::move(message), {}, 0, true, true};
}

// A peer's text made safe for a log line or an Error: at most `max` bytes, each byte outside
// printable ASCII (NUL among them) shown as '?'.
inline std::string printable(std::string_view text, std::size_t max = kMaxTopicLength) {
  std::string out(text.substr(0, max));
  for (char& c : out) {
    if (c < ' ' || c > '~') c = '?';
  }
  return out;
}

}  // namespace shmfd::broker
