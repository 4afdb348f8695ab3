// The suite's rows for channels (shmfd/wire/channel.hpp) between two processes, with no broker:
// what a pool frame costs once the broker has set a channel up. Each process creates its own pages
// and pool, sends the fds over a socket and verifies the peer's, as clients will.
#pragma once

#include <cstdint>
#include <vector>

#include "common.hpp"

namespace bench {

// S1: 64 B ping-pong over two channels (one each way), pool slots of 4 KiB: the half round trip
// in µs, per round. Futex wake-ups, no spinning.
std::vector<double> channel_hop(std::uint64_t iterations, int ping_cpu, int pong_cpu);

// S2: 4K RGBA frames (33 MB) from a pool of 4 slots, at most 2 with the consumer (the broker
// rows' depth); the producer fills each as `v` says, the consumer does its work and releases.
Rate channel_4k(std::uint64_t frames, const S2Variant& v);

// S3: 4K frames from one pool of 5 slots to `consumers` processes, a channel each, paced 10 ms
// apart; per frame, µs until the slowest consumer has it (the first `warmup` frames left out).
std::vector<double> channel_fan_out(std::uint32_t consumers, std::uint64_t frames,
                                    std::uint64_t warmup);

// S4: 1 KiB slots streamed, the producer writes 64 B of each and the consumer touches a byte
// and releases it; the consumer's arrival times.
Rate channel_stream(std::uint64_t frames);

}  // namespace bench
