// The suite's rows for services (shmfd/service.hpp): a Caller's round trip to a Server through
// the broker, both frames verified on the way.
#pragma once

#include <cstdint>
#include <vector>

#include "common.hpp"

namespace bench {

// What the frames of S8's calls are.
enum class CallFrames {
  sealed_memfds,  // a new sealed memfd each way, each call
  pool_slots,     // slots of each side's pool for calls (2 slots each)
};

// S8: `iterations` calls of `bytes` each way, one at a time: the caller writes a 64-byte header
// of a new request (a sealed memfd, or a slot of its pool), the server reads it and answers with a
// response of the same size whose header it writes, the caller reads that. µs per round trip, per
// call. The broker runs on `caller_cpu` when both ends share it, else unpinned.
std::vector<double> call_round_trip(std::uint64_t iterations, std::size_t bytes, int caller_cpu,
                                    int server_cpu, CallFrames frames);

}  // namespace bench
