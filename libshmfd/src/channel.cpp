#include "shmfd/wire/channel.hpp"

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <climits>
#include <cstring>
#include <thread>

#include "channel_format.hpp"

namespace shmfd {

using namespace channel_format;

namespace {

// Whether the side that just advanced an index must wake its peer, whose sleep epoch is
// `epoch` (read after the index store: Dekker). An odd epoch is one wait; one wake per epoch is
// enough, so `last_woken` remembers it. But an epoch counts as woken only if the peer had not
// already caught up (`caught_up`, read after the epoch): a peer can see our store, use it, and
// start a new sleep before we read its epoch, and marking that sleep as woken would skip the
// wake for the next store (the lost wake-up of the fastpath prototype).
template <typename CaughtUp>
bool wake_needed(std::uint32_t epoch, std::uint32_t& last_woken, CaughtUp caught_up) {
  if ((epoch & 1U) == 0 || epoch == last_woken) return false;
  if (caught_up()) return false;  // it sleeps for a later store; that store will wake it
  last_woken = epoch;
  return true;
}

struct FutexWait {
  const Word* word;
  std::uint32_t expected;
};

// Sleeps while every word still holds its expected value, until a wake or `deadline`.
WaitStatus sleep_on(std::span<const FutexWait> waits,
                    std::chrono::steady_clock::time_point deadline) {
  std::array<futex_waitv, FUTEX_WAITV_MAX> v{};
  const std::size_t count = std::min<std::size_t>(waits.size(), FUTEX_WAITV_MAX);
  for (std::size_t i = 0; i < count; ++i) {
    v[i].val = waits[i].expected;
    v[i].uaddr = reinterpret_cast<std::uintptr_t>(waits[i].word);
    v[i].flags = FUTEX_32;  // shared: no FUTEX_PRIVATE_FLAG
  }
  const auto since_epoch = deadline.time_since_epoch();
  const auto secs = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(secs.count());
  ts.tv_nsec = static_cast<long>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(since_epoch - secs).count());
  // steady_clock is CLOCK_MONOTONIC on Linux; futex_waitv takes an absolute time on it.
  const long rc =
      ::syscall(SYS_futex_waitv, v.data(), static_cast<unsigned>(count), 0U, &ts, CLOCK_MONOTONIC);
  if (rc < 0 && errno == ETIMEDOUT) return WaitStatus::timed_out;
  return WaitStatus::ready;  // woken, a value already differed (EAGAIN), or a signal: re-check
}

// Spinning helps only when the peer can run meanwhile: on another CPU.
bool may_spin(const WaitOptions& options) {
  if (options.spin.count() <= 0) return false;
  cpu_set_t set;
  CPU_ZERO(&set);
  return ::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 1;
}

template <typename Ready>
bool spin_until(const WaitOptions& options, Ready ready) {
  if (!may_spin(options)) return false;
  const auto until = std::chrono::steady_clock::now() + options.spin;
  do {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
  } while (std::chrono::steady_clock::now() < until);
  return false;
}

Error channel_error(std::string text) {
  return Error(make_error_code(Errc::malformed_message), std::move(text));
}

}  // namespace

// --- What a reader accepts ---

void FrameShapes::add_pool(std::uint32_t pool, std::uint32_t slot_count, std::uint64_t slot_size) {
  remove_pool(pool);
  pools_.push_back({pool, slot_count, slot_size});
}

void FrameShapes::remove_pool(std::uint32_t pool) {
  std::erase_if(pools_, [&](const Pool& p) { return p.id == pool; });
}

void FrameShapes::add_layout(std::uint32_t layout, std::uint64_t extent) {
  std::erase_if(layouts_, [&](const LayoutExtent& l) { return l.id == layout; });
  layouts_.push_back({layout, extent});
}

// On every frame: the success path allocates nothing; the message is built only on refusal.
Status FrameShapes::check(const Descriptor& d) const {
  const auto refuse = [&](const std::string& why) {
    return fail(Errc::malformed_message, "frame " + n(d.sequence) + ": " + why);
  };
  const auto pool =
      std::find_if(pools_.begin(), pools_.end(), [&](const Pool& p) { return p.id == d.pool; });
  if (pool == pools_.end()) return refuse("unknown pool " + n(d.pool));
  if (d.slot >= pool->slot_count) {
    return refuse("slot " + n(d.slot) + " of pool " + n(d.pool) + ", which has " +
                  n(pool->slot_count) + " slots");
  }
  const auto layout = std::find_if(layouts_.begin(), layouts_.end(),
                                   [&](const LayoutExtent& l) { return l.id == d.layout; });
  if (layout == layouts_.end()) return refuse("unknown layout " + n(d.layout));
  if (layout->extent > pool->slot_size) {
    return refuse("layout " + n(d.layout) + " reaches " + n(layout->extent) +
                  " bytes, slots of pool " + n(d.pool) + " hold " + n(pool->slot_size));
  }
  return {};
}

// --- The consumer's end ---

ChannelReader::ChannelReader(OwnPage own, PeerPage peer)
    : own_(std::move(own)), peer_(std::move(peer)) {
  if (peer_.meta_bytes() != 0) header_.reserve(peer_.meta_bytes() - kChannelMetaFixedBytes);
}

void ChannelReader::refused(Error why) {
  ++refusals_;
  last_refusal_ = std::move(why);
}

std::uint32_t ChannelReader::peer_head() const noexcept {
  return word(peer_.data(), kIndexAt).load(std::memory_order_acquire);
}

bool ChannelReader::readable() const noexcept {
  if (broken_) return false;
  return peer_head() != tail_ || word(peer_.data(), kClosedAt).load(std::memory_order_acquire);
}

bool ChannelReader::ended() const noexcept {
  return !broken_ && peer_head() == tail_ &&
         word(peer_.data(), kClosedAt).load(std::memory_order_acquire) != 0;
}

bool FrameShapes::knows(const Descriptor& d) const noexcept {
  return std::any_of(pools_.begin(), pools_.end(), [&](const Pool& p) { return p.id == d.pool; }) &&
         std::any_of(layouts_.begin(), layouts_.end(),
                     [&](const LayoutExtent& l) { return l.id == d.layout; });
}

std::optional<Descriptor> ChannelReader::next(const FrameShapes& shapes) {
  return next(shapes, false);
}

std::optional<Descriptor> ChannelReader::next(const FrameShapes& shapes, bool stop_at_unknown) {
  stopped_ = false;
  while (!broken_) {
    const std::uint32_t head = peer_head();
    const std::uint32_t waiting = head - tail_;  // modulo 2^32: free-running indices
    if (waiting == 0) return std::nullopt;
    if (waiting > peer_.capacity()) {
      broken_ = channel_error("channel: the producer's head " + n(head) + " is " + n(waiting) +
                              " ahead of tail " + n(tail_) + ", beyond the ring's " +
                              n(peer_.capacity()) + " entries");
      return std::nullopt;
    }
    RingDescriptor raw{};  // copied once; only the copy is checked and used
    std::memcpy(&raw, peer_.data() + kRingAt + (tail_ & (peer_.capacity() - 1)) * sizeof raw,
                sizeof raw);
    const Descriptor d{raw.pool, raw.slot, raw.layout, raw.sequence, raw.timestamp_ns, raw.dropped};
    if (stop_at_unknown && !shapes.knows(d)) {
      stopped_ = true;  // not taken: read again once the definitions may have come
      return std::nullopt;
    }
    // The metadata entry of the same index, copied once before the entry can be reused (the
    // tail store below frees it); only the copy is bounded and used.
    RingMeta meta{};
    const std::uint32_t meta_bytes = peer_.meta_bytes();
    const std::uint32_t index = tail_;
    if ((raw.flags & kDescriptorHasMeta) != 0 && meta_bytes != 0) {
      std::memcpy(&meta, peer_.data() + meta_at(peer_.capacity(), meta_bytes, index), sizeof meta);
      if (meta.header_bytes <= meta_bytes - kChannelMetaFixedBytes) {
        header_.assign(peer_.data() + meta_at(peer_.capacity(), meta_bytes, index) + sizeof meta,
                       peer_.data() + meta_at(peer_.capacity(), meta_bytes, index) + sizeof meta +
                           meta.header_bytes);
      }
    }
    ++tail_;
    word(own_.data(), kIndexAt).store(tail_, std::memory_order_release);
    if (auto ok = shapes.check(d); !ok) {
      ++refusals_;
      last_refusal_ = std::move(ok.error());
      continue;
    }
    if (raw.flags != 0) {
      std::string why;
      if ((raw.flags & ~kDescriptorHasMeta) != 0) {
        why = "descriptor flags " + n(raw.flags) + " set reserved bits";
      } else if (meta_bytes == 0) {
        why = "metadata on a channel whose page has no metadata entries";
      } else if (meta.header_bytes > meta_bytes - kChannelMetaFixedBytes) {
        why = "a user header of " + n(meta.header_bytes) + " bytes, but the page's entries hold " +
              n(meta_bytes - kChannelMetaFixedBytes);
      }
      if (!why.empty()) {
        ++refusals_;
        last_refusal_ =
            Error(make_error_code(Errc::invalid_metadata), "frame " + n(d.sequence) + ": " + why);
        (void)release(d.pool, d.slot, d.sequence);  // a real slot: the producer gets it back
        continue;
      }
      meta_.pts = time_from_wire(meta.pts);
      meta_.dts = time_from_wire(meta.dts);
      meta_.duration = time_from_wire(meta.duration);
      meta_.flags = meta.flags;
      if (meta.crop_x == 0 && meta.crop_y == 0 && meta.crop_width == 0 && meta.crop_height == 0) {
        meta_.crop.reset();
      } else {
        meta_.crop = Crop{meta.crop_x, meta.crop_y, meta.crop_width, meta.crop_height};
      }
      meta_.header = std::span<const std::byte>(header_.data(), header_.size());
      Descriptor with = d;
      with.has_meta = true;
      return with;
    }
    return d;
  }
  return std::nullopt;
}

std::optional<Descriptor> ChannelReader::next_fresh(const FrameShapes& shapes, std::uint32_t depth,
                                                    bool producer_gone) {
  for (;;) {
    auto d = next(shapes, true);
    if (!d) return d;
    // Frames offered after d: put in the ring after it (d is at tail - 1), and dropped since
    // (each descriptor carries the count before it; the page's word, the count now). A count
    // that went backwards is taken as none. Once the producer is gone, frames dropped after d
    // have no successor to wait for: only those in the ring count, or the last frames of the
    // stream would all be skipped. (The closed word is stored after the last head.)
    // The closed word is read only when the producer dropped frames since d: the usual frame
    // costs no more than before.
    const std::uint64_t dropped_now = producer_dropped();
    const bool dropped_since = dropped_now > d->dropped;
    const bool gone =
        dropped_since &&
        (producer_gone || word(peer_.data(), kClosedAt).load(std::memory_order_acquire) != 0);
    const std::uint64_t put_after = peer_head() - tail_;  // after closed: then the last head
    const std::uint64_t dropped_after = dropped_since && !gone ? dropped_now - d->dropped : 0;
    // Among the newest `depth`, or a skipped frame could not be handed back (the release ring
    // is full): this one.
    if (put_after + dropped_after < depth || !release_room()) return d;
    (void)release(d->pool, d->slot, d->sequence);
    ++skipped_;
  }
}

std::uint64_t ChannelReader::producer_dropped() const noexcept {
  return word64(peer_.data(), kDroppedAt).load(std::memory_order_acquire);
}

bool ChannelReader::release_room() const noexcept {
  const std::uint32_t read = word(peer_.data(), kReleasesAt).load(std::memory_order_acquire);
  return releases_ - read < own_.capacity();
}

Status ChannelReader::release(std::uint32_t pool, std::uint32_t slot, std::uint64_t sequence) {
  if (!release_room()) {
    const std::uint32_t read = word(peer_.data(), kReleasesAt).load(std::memory_order_acquire);
    return fail(Errc::limit_exceeded, "channel: release ring full (" + n(releases_ - read) +
                                          " releases unread by the producer)");
  }
  const RingRelease entry{pool, slot, sequence};
  std::memcpy(own_.data() + kRingAt + (releases_ & (own_.capacity() - 1)) * sizeof entry, &entry,
              sizeof entry);
  ++releases_;
  word(own_.data(), kReleasesAt).store(releases_, std::memory_order_seq_cst);
  // Dekker with the producer's begin_sleep: our store, then its epoch.
  const std::uint32_t epoch = word(peer_.data(), kEpochAt).load(std::memory_order_seq_cst);
  const auto collected = [&] {
    return word(peer_.data(), kReleasesAt).load(std::memory_order_acquire) == releases_;
  };
  if (wake_needed(epoch, last_woken_, collected)) futex_wake(word(own_.data(), kReleasesAt));
  return {};
}

WaitStatus ChannelReader::wait(std::chrono::steady_clock::time_point deadline,
                               WaitOptions options) {
  if (readable() || broken_) return WaitStatus::ready;
  if (spin_until(options, [&] { return readable(); })) return WaitStatus::ready;
  ChannelReader* self = this;
  return waitv(std::span<ChannelReader* const>(&self, 1), deadline);
}

std::chrono::steady_clock::time_point coarse_now() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return std::chrono::steady_clock::time_point(std::chrono::seconds(ts.tv_sec) +
                                               std::chrono::nanoseconds(ts.tv_nsec));
}

WaitStatus waitv(std::span<ChannelReader* const> readers,
                 std::chrono::steady_clock::time_point deadline) {
  return waitv(readers, nullptr, 0, deadline);
}

// --- The producer's end ---

ChannelWriter::ChannelWriter(OwnPage own, PeerPage peer)
    : own_(std::move(own)), peer_(std::move(peer)) {
  held_.reserve(own_.capacity());
}

bool ChannelWriter::holds(std::uint32_t pool, std::uint32_t slot) const noexcept {
  return std::any_of(held_.begin(), held_.end(),
                     [&](const Held& h) { return h.pool == pool && h.slot == slot; });
}

Result<bool> ChannelWriter::publish(const Descriptor& d, std::chrono::steady_clock::time_point now,
                                    const FrameMeta* meta) {
  if (broken_) return fail(Error(*broken_));
  if (holds(d.pool, d.slot)) {
    return fail(Errc::invalid_argument, "channel: slot " + n(d.slot) + " of pool " + n(d.pool) +
                                            " is still held by this consumer");
  }
  const std::uint32_t tail = word(peer_.data(), kIndexAt).load(std::memory_order_acquire);
  const std::uint32_t in_ring = head_ - tail;
  if (in_ring > own_.capacity()) {
    broken_ = channel_error("channel: the consumer's tail " + n(tail) + " is not within the " +
                            n(own_.capacity()) + " entries before head " + n(head_));
    return fail(Error(*broken_));
  }
  if (in_ring == own_.capacity() || held_.size() >= own_.capacity()) return false;
  RingDescriptor raw{};
  raw.pool = d.pool;
  raw.slot = d.slot;
  raw.layout = d.layout;
  raw.sequence = d.sequence;
  raw.timestamp_ns = d.timestamp_ns;
  raw.dropped = d.dropped;
  if (meta != nullptr && own_.meta_bytes() != 0 && !meta->empty()) {
    if (meta->header.size() > own_.meta_bytes() - kChannelMetaFixedBytes) {
      return fail(Errc::invalid_argument, "channel: a user header of " + n(meta->header.size()) +
                                              " bytes, but the page's entries hold " +
                                              n(own_.meta_bytes() - kChannelMetaFixedBytes));
    }
    RingMeta entry{};
    entry.pts = time_to_wire(meta->pts);
    entry.dts = time_to_wire(meta->dts);
    entry.duration = time_to_wire(meta->duration);
    entry.flags = meta->flags;
    entry.header_bytes = static_cast<std::uint32_t>(meta->header.size());
    if (meta->crop) {
      entry.crop_x = meta->crop->x;
      entry.crop_y = meta->crop->y;
      entry.crop_width = meta->crop->width;
      entry.crop_height = meta->crop->height;
    }
    std::byte* at = own_.data() + meta_at(own_.capacity(), own_.meta_bytes(), head_);
    std::memcpy(at, &entry, sizeof entry);
    if (!meta->header.empty()) {
      std::memcpy(at + sizeof entry, meta->header.data(), meta->header.size());
    }
    raw.flags = kDescriptorHasMeta;
  }
  std::memcpy(own_.data() + kRingAt + (head_ & (own_.capacity() - 1)) * sizeof raw, &raw,
              sizeof raw);
  held_.push_back({d.pool, d.slot, d.sequence, now});
  ++head_;
  word64(own_.data(), kDroppedAt).store(d.dropped, std::memory_order_release);
  word(own_.data(), kIndexAt).store(head_, std::memory_order_seq_cst);
  // Dekker with the consumer's begin_sleep: our store, then its epoch.
  const std::uint32_t epoch = word(peer_.data(), kEpochAt).load(std::memory_order_seq_cst);
  const auto consumed = [&] {
    return word(peer_.data(), kIndexAt).load(std::memory_order_acquire) == head_;
  };
  if (wake_needed(epoch, last_woken_, consumed)) futex_wake(word(own_.data(), kIndexAt));
  return true;
}

std::optional<std::chrono::steady_clock::time_point> ChannelWriter::oldest_hold() const noexcept {
  if (held_.empty()) return std::nullopt;
  return std::min_element(held_.begin(), held_.end(),
                          [](const Held& a, const Held& b) { return a.since < b.since; })
      ->since;
}

std::size_t ChannelWriter::collect_releases(
    const std::function<void(std::uint32_t, std::uint32_t)>& freed) {
  if (broken_) return 0;
  const std::uint32_t written = word(peer_.data(), kReleasesAt).load(std::memory_order_acquire);
  const std::uint32_t unread = written - releases_read_;
  if (unread == 0) {
    seen_releases_ = releases_read_;
    return 0;
  }
  if (unread > peer_.capacity()) {
    broken_ = channel_error("channel: the consumer's release count " + n(written) + " is " +
                            n(unread) + " past the " + n(releases_read_) + " read, beyond the " +
                            "ring's " + n(peer_.capacity()) + " entries");
    return 0;
  }
  std::size_t count = 0;
  for (; releases_read_ != written; ++releases_read_) {
    RingRelease entry{};  // copied once; only the copy is checked and used
    std::memcpy(&entry,
                peer_.data() + kRingAt + (releases_read_ & (peer_.capacity() - 1)) * sizeof entry,
                sizeof entry);
    const auto it = std::find_if(held_.begin(), held_.end(), [&](const Held& h) {
      return h.pool == entry.pool && h.slot == entry.slot && h.sequence == entry.sequence;
    });
    if (it == held_.end()) {
      ++bogus_releases_;
      continue;
    }
    *it = held_.back();
    held_.pop_back();
    ++count;
    freed(entry.pool, entry.slot);
  }
  seen_releases_ = releases_read_;
  word(own_.data(), kReleasesAt).store(releases_read_, std::memory_order_release);
  return count;
}

std::size_t ChannelWriter::reclaim_all(
    const std::function<void(std::uint32_t, std::uint32_t)>& freed) {
  if (!broken_) broken_ = channel_error("channel: reclaimed; the consumer is cut off");
  const std::size_t count = held_.size();
  for (const Held& h : held_) freed(h.pool, h.slot);
  held_.clear();
  return count;
}

void ChannelWriter::missed(std::uint64_t dropped) noexcept {
  word64(own_.data(), kDroppedAt).store(dropped, std::memory_order_release);
}

void ChannelWriter::pool_dry(std::uint32_t spell) noexcept {
  word(own_.data(), kPoolDryAt).store(spell, std::memory_order_release);
}

void ChannelWriter::counted(std::uint64_t frames, std::uint64_t bytes) noexcept {
  word64(own_.data(), kChannelFramesAt).store(frames, std::memory_order_relaxed);
  word64(own_.data(), kChannelBytesAt).store(bytes, std::memory_order_relaxed);
}

void ChannelWriter::close() noexcept {
  word(own_.data(), kClosedAt).store(1, std::memory_order_seq_cst);
  futex_wake(word(own_.data(), kClosedAt));
}

// A producer waits only for releases: a full ring, or `capacity` slots held, needs one (every
// frame in the ring is held), so the consumer's tail alone never unblocks it.
bool ChannelWriter::progressed() const noexcept {
  if (broken_) return true;
  return word(peer_.data(), kReleasesAt).load(std::memory_order_acquire) != seen_releases_;
}

WaitStatus ChannelWriter::wait(std::chrono::steady_clock::time_point deadline,
                               WaitOptions options) {
  if (progressed()) return WaitStatus::ready;
  if (spin_until(options, [&] { return progressed(); })) return WaitStatus::ready;
  ChannelWriter* self = this;
  return waitv(std::span<ChannelWriter* const>(&self, 1), deadline);
}

WaitStatus waitv(std::span<ChannelWriter* const> writers,
                 std::chrono::steady_clock::time_point deadline) {
  return waitv(writers, nullptr, 0, deadline);
}

// --- Sleeping on many channels: the one wait of both ends ---

// A lost wake-up is fixed here or nowhere: readers and writers sleep through this one function.
// An end announces its sleep by making its own epoch odd (seq_cst, Dekker with the peer's index
// store and epoch load in publish() and release()), checks once more whether there is something
// to do, and only then sleeps on the peer's words; every announced sleep is ended, whatever woke
// it, so the epoch is even again and names exactly one wait.
struct ChannelSleep {
  // The peer's words that change when there is something for this end: a reader waits for a
  // head that moves or the producer's close; a writer for the consumer's release count.
  static constexpr std::size_t kWords(const ChannelReader*) { return 2; }
  static constexpr std::size_t kWords(const ChannelWriter*) { return 1; }
  static void words(const ChannelReader& r, FutexWait* out) {
    out[0] = {&word(r.peer_.data(), kIndexAt), r.tail_};
    out[1] = {&word(r.peer_.data(), kClosedAt), 0};
  }
  static void words(const ChannelWriter& w, FutexWait* out) {
    out[0] = {&word(w.peer_.data(), kReleasesAt), w.seen_releases_};
  }
  // Whether a wait on this end should end: a broken channel ends every wait on it.
  static bool woke(const ChannelReader& r) { return r.broken_.has_value() || r.readable(); }
  static bool woke(const ChannelWriter& w) { return w.progressed(); }
  template <typename End>
  static void step_epoch(End& end) {
    word(end.own_.data(), kEpochAt).fetch_add(1, std::memory_order_seq_cst);
  }

  template <typename End>
  static WaitStatus wait(std::span<End* const> ends, const PeerBell* bell, std::uint32_t seen,
                         std::chrono::steady_clock::time_point deadline, LocalWake also) {
    std::array<FutexWait, FUTEX_WAITV_MAX> waits{};
    std::size_t count = 0;
    if (bell != nullptr) {
      const Word& rung = word(bell->mapping_.bytes().data(), kIndexAt);
      if (rung.load(std::memory_order_acquire) != seen) return WaitStatus::ready;
      waits[count++] = {&rung, seen};
    }
    if (also.word != nullptr) {
      if (also.word->load(std::memory_order_acquire) != also.seen) return WaitStatus::ready;
      waits[count++] = {also.word, also.seen};
    }
    constexpr std::size_t per_end = kWords(static_cast<End*>(nullptr));
    // Ends beyond what one futex_waitv takes are not slept on (their callers cap them).
    const std::size_t used = std::min(ends.size(), (FUTEX_WAITV_MAX - count) / per_end);
    for (std::size_t i = 0; i < used; ++i) {
      step_epoch(*ends[i]);  // odd: asleep, then checked once more
      if (woke(*ends[i])) {
        for (std::size_t j = 0; j <= i; ++j) step_epoch(*ends[j]);
        return WaitStatus::ready;
      }
      words(*ends[i], &waits[count]);
      count += per_end;
    }
    if (count == 0) {
      std::this_thread::sleep_until(deadline);
      return WaitStatus::timed_out;
    }
    const auto status = sleep_on(std::span(waits.data(), count), deadline);
    for (std::size_t i = 0; i < used; ++i) step_epoch(*ends[i]);  // even: awake
    if (status == WaitStatus::timed_out) {
      // A wake that raced the deadline still counts.
      if (bell != nullptr && bell->count() != seen) return WaitStatus::ready;
      if (also.word != nullptr && also.word->load(std::memory_order_acquire) != also.seen) {
        return WaitStatus::ready;
      }
      for (std::size_t i = 0; i < used; ++i)
        if (woke(*ends[i])) return WaitStatus::ready;
    }
    return status;
  }
};

WaitStatus waitv(std::span<ChannelReader* const> readers, const PeerBell* bell, std::uint32_t seen,
                 std::chrono::steady_clock::time_point deadline, LocalWake also) {
  return ChannelSleep::wait(readers, bell, seen, deadline, also);
}

WaitStatus waitv(std::span<ChannelWriter* const> writers, const PeerBell* bell, std::uint32_t seen,
                 std::chrono::steady_clock::time_point deadline, LocalWake also) {
  return ChannelSleep::wait(writers, bell, seen, deadline, also);
}

ChannelProgress channel_progress(const PeerPage& producer, const PeerPage& consumer) noexcept {
  // Loads through read-only mappings: the page is the broker's own verified view.
  const auto load = [](const PeerPage& page, std::size_t at) {
    return word(page.data(), at).load(std::memory_order_acquire);
  };
  return {load(producer, kIndexAt), load(consumer, kIndexAt), load(consumer, kReleasesAt),
          load(producer, kPoolDryAt)};
}

ChannelCounts channel_counts(const PeerPage& producer) noexcept {
  return {word64(producer.data(), kChannelFramesAt).load(std::memory_order_relaxed),
          word64(producer.data(), kChannelBytesAt).load(std::memory_order_relaxed)};
}

std::size_t ChannelWriter::held_of(std::uint32_t pool) const noexcept {
  return static_cast<std::size_t>(
      std::count_if(held_.begin(), held_.end(), [&](const Held& h) { return h.pool == pool; }));
}

}  // namespace shmfd
