// Channels: pool frames from one producer to one consumer through shared memory, with no
// socket message and, while both sides keep up, no system call.
//
// A channel is two pages, each a memfd written by one side only and sealed with the pool
// guarantee after its owner mapped it (so nobody else can ever map it writable):
//
//   producer page  header | head | sleep epoch, closed | releases read | descriptor ring
//   consumer page  header | tail | sleep epoch         | releases      | release ring
//
// The producer writes a Descriptor {pool, slot, layout, sequence, timestamp, dropped} into its
// ring and advances `head`; the consumer reads it, advances `tail`, and later writes
// {pool, slot, sequence} into its release ring and advances `releases`. All indices are
// free-running 32-bit counters; the rings hold `capacity` entries (a power of two).
//
// Wake-ups cost a system call only when the other side sleeps. A sleeper makes its epoch odd,
// checks once more, and waits on the peer's index word (FUTEX_WAIT on a shared mapping); the
// side that advances an index then reads the peer's epoch and wakes it once per odd epoch. An
// epoch covers exactly one wait, so a wake is never spent on a wait that already ended (the
// lost wake-up of deduplicating "once per sleep" when one sleep spans several waits); and an
// epoch counts as woken only if the peer had not already caught up with the store that woke it.
// waitv() sleeps on many channels at once (futex_waitv, Linux 5.16).
//
// Neither side trusts the other. Every shared field is copied once and then checked; nothing
// is read again after its check:
//   - a descriptor must name a pool and layout the reader knows, a slot in range, and a layout
//     whose extent fits the slot; a bad one is skipped, counted and reported (refusals());
//   - an index that moved backwards or further than the ring holds breaks the channel for the
//     reader of it (broken()), which never reads that ring again;
//   - a release must name a slot this consumer holds, at the sequence it was given; any other
//     is ignored and counted (bogus_releases()). The writer tracks holders in private memory.
// A peer can make its own side fail, wake the other side spuriously, or never wake it (waits
// take a deadline), and nothing more.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "shmfd/error.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/wire/channel_page.hpp"

namespace shmfd {

// One frame on a channel, as the consumer gets it (copied out of the ring and checked).
struct Descriptor {
  std::uint32_t pool = 0;    // the producer's pool id (as registered with the broker)
  std::uint32_t slot = 0;    // slot index in that pool
  std::uint32_t layout = 0;  // layout id (as registered with the broker)
  std::uint64_t sequence = 0;
  std::uint64_t timestamp_ns = 0;  // CLOCK_MONOTONIC
  std::uint64_t dropped = 0;       // frames dropped for this consumer before this one
  // Version 5: the frame carries metadata; a reader's is in ChannelReader::meta() until its
  // next read.
  bool has_meta = false;
};

// What a reader accepts: the pools it has attached (slots and their size) and the layouts it
// knows (their extent: the bytes of a slot the layout reaches).
class FrameShapes {
 public:
  void add_pool(std::uint32_t pool, std::uint32_t slot_count, std::uint64_t slot_size);
  void remove_pool(std::uint32_t pool);
  void add_layout(std::uint32_t layout, std::uint64_t extent);
  // Ok, or Errc::malformed_message naming what is wrong with `d`.
  Status check(const Descriptor& d) const;
  // Whether `d` names a pool and a layout this knows (whatever else is wrong with it).
  bool knows(const Descriptor& d) const noexcept;

 private:
  struct Pool {
    std::uint32_t id;
    std::uint32_t slot_count;
    std::uint64_t slot_size;
  };
  std::vector<Pool> pools_;
  struct LayoutExtent {
    std::uint32_t id;
    std::uint64_t extent;
  };
  // A few of each, looked up by id: any u32 id costs one entry, never a table up to it.
  std::vector<LayoutExtent> layouts_;
};

struct WaitOptions {
  // Spin this long on the peer's index before sleeping, and only when this thread may run on
  // more than one CPU (on one CPU a spin only delays the peer it waits for). Zero: never spin.
  std::chrono::nanoseconds spin{0};
};

// Result of a wait.
enum class WaitStatus { ready, timed_out };

// The consumer's end.
class ChannelReader {
 public:
  ChannelReader(OwnPage own, PeerPage peer);

  // The next frame, checked against `shapes`; nullopt when the ring is empty (or the channel is
  // broken). A descriptor that fails the check is skipped, counted in refusals() and reported in
  // last_refusal(); the next one is tried.
  std::optional<Descriptor> next(const FrameShapes& shapes);
  // The same, but a descriptor naming a pool or layout `shapes` does not know yet is left in the
  // ring (stopped() is then true): a consumer reads its socket, where the definition comes, and
  // tries again.
  std::optional<Descriptor> next(const FrameShapes& shapes, bool stop_at_unknown);
  bool stopped() const noexcept { return stopped_; }
  // The metadata of the frame the last read returned, when its Descriptor::has_meta: copied out
  // of the page once, as it was when the descriptor was read, and only bounded here (its header
  // fits the page's entries); the caller checks it against the topic (check_frame_meta). Valid
  // until the next read.
  const FrameMeta& meta() const noexcept { return meta_; }
  // A frame the caller refused after next() returned it (its metadata broke the topic's rules):
  // counted in refusals() and last_refusal(), as next() counts its own. The caller releases it.
  void refused(Error why);
  // Drop-oldest with a depth: the next frame that is among the newest `depth` frames the
  // producer offered this consumer (put in the ring or dropped for it: head plus the page's
  // dropped word, section 14). Older frames waiting are released unseen and counted in
  // skipped(), while the release ring has room. Stops at an unknown pool or layout as
  // next(.., true). Once the producer is gone (it closed the ring, or `producer_gone`: the
  // broker ended its stream), frames dropped for this consumer no longer count: nothing newer
  // will come, and the newest `depth` in the ring are the newest it can still get.
  std::optional<Descriptor> next_fresh(const FrameShapes& shapes, std::uint32_t depth,
                                       bool producer_gone = false);
  // The producer's count of frames dropped for this consumer (its dropped word), which also
  // counts those after the last descriptor: what an end of stream reports.
  std::uint64_t producer_dropped() const noexcept;
  // Whether next() has something (or the producer closed the channel).
  bool readable() const noexcept;
  // Whether the producer closed the channel and every frame before that has been read.
  bool ended() const noexcept;

  // Hands `slot` of `pool`, delivered as `sequence`, back to the producer. Errc::limit_exceeded
  // when the release ring is full: the producer has stopped reading it (its fault; the slot
  // stays counted as held by this consumer in the producer's books).
  Status release(std::uint32_t pool, std::uint32_t slot, std::uint64_t sequence);

  // Waits until readable() or `deadline` (CLOCK_MONOTONIC).
  WaitStatus wait(std::chrono::steady_clock::time_point deadline, WaitOptions options = {});

  std::uint64_t refusals() const noexcept { return refusals_; }
  std::uint64_t skipped() const noexcept { return skipped_; }
  const std::optional<Error>& last_refusal() const noexcept { return last_refusal_; }
  // Set once the producer's head left the ring's bounds; the channel is then dead for reading.
  const std::optional<Error>& broken() const noexcept { return broken_; }
  int own_fd() const noexcept { return own_.fd(); }

 private:
  friend struct ChannelSleep;  // channel.cpp: the wait of both ends
  std::uint32_t peer_head() const noexcept;
  bool release_room() const noexcept;

  OwnPage own_;
  PeerPage peer_;
  std::uint32_t tail_ = 0;      // private copy of what was written to the own page
  std::uint32_t releases_ = 0;  // ditto
  std::uint32_t last_woken_ = 0;
  std::uint64_t refusals_ = 0;
  std::uint64_t skipped_ = 0;
  bool stopped_ = false;
  std::optional<Error> last_refusal_;
  std::optional<Error> broken_;
  FrameMeta meta_;                 // the last frame's, when it had any
  std::vector<std::byte> header_;  // meta_.header's bytes: room for the page's largest
};

// The producer's end. It tracks in private memory which slots this consumer holds.
class ChannelWriter {
 public:
  ChannelWriter(OwnPage own, PeerPage peer);

  // Puts `d` in the ring and wakes the consumer if it sleeps. false: the ring is full, or the
  // consumer already holds `capacity` slots (it is behind; the caller drops or waits).
  // Errc::invalid_argument if this consumer still holds d.slot of d.pool (reusing a held slot
  // would change a frame under its reader); the channel's broken() error once the consumer's
  // tail left the ring's bounds.
  // `now` is when the slot counts as held from, for oldest_hold() (a caller that already read
  // the clock for this frame passes what it read).
  // `meta` (version 5, checked by the caller against the topic) goes in the ring entry's
  // metadata entry, when the page has them; a consumer whose page has none (it predates them)
  // gets the frame without. Errc::invalid_argument for a header larger than the entries hold.
  Result<bool> publish(const Descriptor& d,
                       std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now(),
                       const FrameMeta* meta = nullptr);

  // Reads the consumer's new releases; `freed(pool, slot)` is called for each slot it really
  // held, which it no longer does. Others are counted in bogus_releases(). Returns the number
  // freed. A release ring out of bounds breaks the channel (broken()).
  std::size_t collect_releases(const std::function<void(std::uint32_t, std::uint32_t)>& freed);

  // Every slot this consumer holds, taken back (it died, or passed the hold deadline); `freed`
  // as above. The channel's rings are not read again.
  std::size_t reclaim_all(const std::function<void(std::uint32_t, std::uint32_t)>& freed);

  // A frame this consumer does not get (it is behind): `dropped` is its count of such frames so
  // far, written to the page for it to read.
  void missed(std::uint64_t dropped) noexcept;

  // Whether this consumer holds a slot of a pool in which the producer last found no free slot:
  // the number of that dry spell (from 1), or 0. Written to the page for the broker (its
  // --stuck-policy pool-dry).
  void pool_dry(std::uint32_t spell) noexcept;

  // The producer's count of the topic's frames that went on channels only, and their bytes,
  // written to the page for the broker's counters.
  void counted(std::uint64_t frames, std::uint64_t bytes) noexcept;

  // Tells the consumer that no frame follows (it sees ended() after the last one) and wakes it.
  void close() noexcept;

  // Waits until the consumer released something collect_releases() has not seen, or
  // `deadline`. (A full ring, or `capacity` slots held, always needs a release to clear.)
  WaitStatus wait(std::chrono::steady_clock::time_point deadline, WaitOptions options = {});

  std::size_t held() const noexcept { return held_.size(); }
  std::uint32_t capacity() const noexcept { return own_.capacity(); }
  // Slots of `pool` this consumer holds.
  std::size_t held_of(std::uint32_t pool) const noexcept;
  // When the longest-held slot of this consumer was published (nullopt: it holds none), for a
  // hold deadline: a consumer past it is cut off with reclaim_all().
  std::optional<std::chrono::steady_clock::time_point> oldest_hold() const noexcept;
  bool holds(std::uint32_t pool, std::uint32_t slot) const noexcept;
  std::uint64_t bogus_releases() const noexcept { return bogus_releases_; }
  const std::optional<Error>& broken() const noexcept { return broken_; }
  int own_fd() const noexcept { return own_.fd(); }

 private:
  friend struct ChannelSleep;
  struct Held {
    std::uint32_t pool;
    std::uint32_t slot;
    std::uint64_t sequence;
    std::chrono::steady_clock::time_point since;
  };
  bool progressed() const noexcept;

  OwnPage own_;
  PeerPage peer_;
  std::uint32_t head_ = 0;
  std::uint32_t releases_read_ = 0;
  std::uint32_t seen_releases_ = 0;  // the consumer's release count when last collected
  std::uint32_t last_woken_ = 0;
  std::vector<Held> held_;  // small: at most `capacity` entries
  std::uint64_t bogus_releases_ = 0;
  std::optional<Error> broken_;
};

// A channel's counters as its pages say (free-running; a hostile side may write anything in
// its own): frames published, read, and released. The broker shows them in introspection.
struct ChannelProgress {
  std::uint32_t published = 0;
  std::uint32_t read = 0;
  std::uint32_t released = 0;
  // The producer says: the consumer holds a slot of a pool with none free, in this dry spell
  // (0: it does not).
  std::uint32_t dry_spell = 0;
};
ChannelProgress channel_progress(const PeerPage& producer, const PeerPage& consumer) noexcept;

// What a producer page says of the topic's frames that went on channels only: how many, and
// their bytes (the producer's word, for the broker's counters).
struct ChannelCounts {
  std::uint64_t frames = 0;
  std::uint64_t bytes = 0;
};
ChannelCounts channel_counts(const PeerPage& producer) noexcept;

// The monotonic clock of steady_clock, read at the kernel's tick (1-4 ms) for a fraction of the
// cost (CLOCK_MONOTONIC_COARSE): for checks every 100 ms and deadlines of seconds, on paths
// where a precise reading per frame would show in the profile.
std::chrono::steady_clock::time_point coarse_now() noexcept;

struct ChannelSleep;

// Sleeps until any of `readers` is readable (or ended, or broken), or `deadline`: one
// futex_waitv over their producers' head and close words (at most 64 readers, 63 beside a
// bell; a caller with more waits on the first ones).
WaitStatus waitv(std::span<ChannelReader* const> readers,
                 std::chrono::steady_clock::time_point deadline);
// A word of this process that another thread changes (and futex-wakes) to end a wait early:
// a consumer's frames released on other threads (their releases must be sent).
struct LocalWake {
  const std::atomic<std::uint32_t>* word = nullptr;
  std::uint32_t seen = 0;
};
// The same, and also until `bell` counts other than `seen`, or `also` changes.
WaitStatus waitv(std::span<ChannelReader* const> readers, const PeerBell* bell, std::uint32_t seen,
                 std::chrono::steady_clock::time_point deadline, LocalWake also = {});
// Sleeps until any of `writers`' consumers released something (or a channel broke), or
// `deadline` (at most 128 writers, 127 beside a bell).
WaitStatus waitv(std::span<ChannelWriter* const> writers,
                 std::chrono::steady_clock::time_point deadline);
// The same, and also until `bell` counts other than `seen` (at most 127 writers then).
WaitStatus waitv(std::span<ChannelWriter* const> writers, const PeerBell* bell, std::uint32_t seen,
                 std::chrono::steady_clock::time_point deadline, LocalWake also = {});

}  // namespace shmfd
