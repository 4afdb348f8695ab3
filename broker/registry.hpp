// The broker's routing state: topics, their subscriptions, pools, and the frames queued and
// held. Plain records with no I/O: the router (router.hpp) changes them, the outbox
// (outbox.hpp) delivers from them, introspection (introspection.hpp) reads them.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "closer.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/guarantee.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/protocol.hpp"
#include "shmfd/unique_fd.hpp"
#include "shmfd/wire/channel_page.hpp"

namespace shmfd::broker {

struct ClientState;

// What one client makes the broker hold: shared with every record charged to it, so the
// charge is returned when the record goes, even after the client has gone.
struct Account {
  std::uint64_t pinned_bytes = 0;
};
using AccountPtr = std::shared_ptr<Account>;

// Bytes charged to an account for as long as this object lives.
class Charge {
 public:
  Charge() = default;
  Charge(AccountPtr account, std::uint64_t bytes) : account_(std::move(account)), bytes_(bytes) {
    account_->pinned_bytes += bytes_;
  }
  Charge(const Charge&) = delete;
  Charge& operator=(const Charge&) = delete;
  Charge(Charge&&) noexcept = default;  // the moved-from Charge holds nothing
  Charge& operator=(Charge&& other) noexcept {
    if (this != &other) {
      release();
      account_ = std::move(other.account_);
      bytes_ = other.bytes_;
    }
    return *this;
  }
  ~Charge() { release(); }

 private:
  void release() {
    if (account_) account_->pinned_bytes -= bytes_;
    account_.reset();
  }

  AccountPtr account_;
  std::uint64_t bytes_ = 0;
};

// A producer's registered pool: one memfd of slot_count slots, verified once. Kept alive by
// its producer and by every frame of it still queued or held, so a consumer that attaches
// late still gets the fd, and slots freed after the producer left go nowhere.
struct PoolRecord {
  std::uint32_t id = 0;
  std::string topic;
  DeferredFd fd;  // closed on the broker's closer thread
  std::uint32_t slot_count = 0;
  std::uint64_t slot_size = 0;
  ClientState* owner = nullptr;   // the producer; null once it has gone
  std::uint64_t owner_id = 0;     // its client id, for ever
  std::vector<bool> busy;         // published, and not yet let go by every subscriber
  std::vector<bool> free_queued;  // a SlotFree for the slot waits in the owner's queue
  Charge charge;                  // the whole pool, to its producer
  // Since when every slot has been busy (a publish took the last free one and no slot has
  // been freed since); empty while the producer has a slot to fill.
  std::optional<std::chrono::steady_clock::time_point> dry_since;
  // A pool for calls (version 6: no topic) carries its owner's requests and responses; the
  // clients it was attached to, told when it goes (PoolDetach).
  std::vector<std::uint64_t> attached;

  bool for_calls() const { return topic.empty(); }

  // The last subscriber let go of `slot`: it is free, and a SlotFree for the producer is
  // queued (sent at the end of the event, never from here).
  void release_slot(std::uint32_t slot);
  bool all_busy() const { return std::find(busy.begin(), busy.end(), false) == busy.end(); }
};
using PoolPtr = std::shared_ptr<PoolRecord>;

// One published, verified frame: its own fd, or a slot of a pool. Shared by every subscriber
// queue and window it is in, so the broker holds one fd per frame whatever the fan-out, and a
// pool slot is free exactly when the last subscriber lets go: the shared_ptr count is the
// release count across fan-out.
struct FrameRecord {
  FrameRecord() = default;
  FrameRecord(const FrameRecord&) = delete;
  FrameRecord& operator=(const FrameRecord&) = delete;
  ~FrameRecord() {
    if (pool) pool->release_slot(slot);
  }

  DeferredFd fd;  // closed on the broker's closer thread
  Layout layout;
  Guarantee guarantee = Guarantee::sealed;  // the level it was verified at
  std::uint64_t sequence = 0;
  std::uint64_t timestamp_ns = 0;
  PoolPtr pool;
  std::uint32_t slot = 0;
  std::uint64_t bytes = 0;  // the buffer's (or slot's) size, for introspection
  Charge charge;            // a fresh frame's buffer, to its producer (a slot is in its pool's)
  // Version 5: what the frame carries beside its bytes, checked; its header points into
  // `header`. Empty for most frames, which then cost nothing more.
  FrameMeta meta;
  std::vector<std::byte> header;
};
using FramePtr = std::shared_ptr<const FrameRecord>;

// A frame delivered to a consumer and not yet released. A pool frame keeps its FramePtr (the
// slot stays busy); an fd frame keeps only its sequence (the broker holds no fd for it).
struct InFlight {
  std::uint64_t sequence = 0;
  FramePtr pool_frame;
  std::chrono::steady_clock::time_point since;
  bool reported = false;  // past the hold deadline, already logged
};

struct Topic;
struct Subscription;

// A channel (docs/PROTOCOL.md, section 14) between a topic's producer and one subscriber: set
// up by the broker, which verified both pages and keeps a read-only view of each to show the
// channel's progress. Pool frames of the topic go on it, not through the broker, once the
// producer has started it.
struct ChannelRecord {
  std::uint32_t id = 0;
  std::string topic;
  ClientState* producer = nullptr;
  ClientState* consumer = nullptr;
  std::uint64_t producer_id = 0;
  Subscription* sub = nullptr;  // the consumer's subscription
  std::uint32_t capacity = 0;
  // Version 5, both sides: the producer page's metadata entries (0: none).
  std::uint32_t meta_bytes = 0;
  std::optional<PeerPage> producer_page;  // verified, mapped read-only
  std::optional<PeerPage> consumer_page;
  std::shared_ptr<UniqueFd> producer_fd;  // read-only reopenings, for the peers
  std::shared_ptr<UniqueFd> consumer_fd;
  bool opened = false;   // ChannelOpen sent to the producer
  bool started = false;  // the producer said ChannelStarted: pool frames go on the channel
  // The hold deadline (quota.cpp): the consumer's release count when last seen to move, and
  // since when it has not while frames were outstanding.
  std::uint32_t released_seen = 0;
  std::chrono::steady_clock::time_point progress_at{};
  bool reported = false;
  // The producer's word on its page that the consumer holds a slot of a pool with none free:
  // the dry spell's number, and since the first check that saw it (--stuck-policy pool-dry).
  std::uint32_t dry_spell = 0;
  std::optional<std::chrono::steady_clock::time_point> dry_since;
};
using ChannelPtr = std::shared_ptr<ChannelRecord>;

// An entry of a subscriber's queue: a frame, or (frame == nullptr) the end of the stream, or
// (channel set) the moment the subscriber's channel takes over, kept in order so a consumer
// sees every frame before the end, and every frame that came through the broker before the
// first that comes on the channel.
struct Pending {
  FramePtr frame;
  std::string end_reason;
  ChannelPtr channel;
  std::uint64_t producer = 0;  // an end of stream: whose
};

struct Subscription {
  Topic* topic = nullptr;  // null once unsubscribed: then only its held frames remain
  ClientState* client = nullptr;
  std::uint32_t depth = 0;
  Backpressure policy = Backpressure::drop_oldest;
  std::deque<Pending> pending;     // waiting in the broker
  std::deque<InFlight> in_flight;  // delivered, not yet released by the consumer
  std::uint64_t dropped = 0;
  std::uint64_t delivered = 0;
  // Version 4's prefetch (0: none): Delivers sent since the Subscribe that the consumer has
  // neither read (its Read count) nor released may number at most this.
  std::uint32_t prefetch = 0;
  std::uint64_t delivered_since = 0;  // since the Subscribe
  std::uint64_t read_since = 0;       // the consumer's last Read
  std::uint64_t released_since = 0;   // Releases since the Subscribe (a released frame was read)
  ChannelPtr channel;                 // this subscriber's channel, while it has one
  // Whether pool frames of the topic reach this subscriber on its channel (not the broker).
  bool on_channel() const { return channel != nullptr && channel->started; }

  std::size_t queued_frames() const;
  // True when a block-producer subscriber cannot take another frame.
  bool blocks_producer() const {
    return policy == Backpressure::block_producer && queued_frames() >= depth;
  }
  // Frames of one pool this subscription may hold at once: its depth, but always one slot fewer
  // than the pool has (and at least one). However long a consumer holds them, the producer
  // keeps a slot for everyone else.
  std::size_t pool_window(const PoolRecord& pool) const {
    return std::max<std::size_t>(1, std::min<std::size_t>(depth, pool.slot_count - 1));
  }
  std::size_t held_of(const PoolRecord& pool) const {
    return static_cast<std::size_t>(
        std::count_if(in_flight.begin(), in_flight.end(), [&](const InFlight& f) {
          return f.pool_frame != nullptr && f.pool_frame->pool.get() == &pool;
        }));
  }
  // Whether the head of `pending` may be sent now (the consumer's window has room, and for a
  // pool frame its window of that pool).
  std::uint64_t unread() const {
    const std::uint64_t seen = std::max(read_since, released_since);
    return delivered_since > seen ? delivered_since - seen : 0;
  }
  bool can_send() const {
    if (pending.empty()) return false;
    const FramePtr& head = pending.front().frame;
    if (head == nullptr) return true;
    if (in_flight.size() >= depth) return false;
    if (prefetch != 0 && unread() >= prefetch) return false;
    return head->pool == nullptr || held_of(*head->pool) < pool_window(*head->pool);
  }
  // Drops the frames of `pool` waiting here (not yet delivered), counting them as drops.
  void drop_queued_frames_of(const PoolRecord& pool) {
    const std::size_t before = pending.size();
    std::erase_if(pending, [&](const Pending& p) {
      return p.frame != nullptr && p.frame->pool.get() == &pool;
    });
    dropped += before - pending.size();
  }
};

struct Topic {
  std::string name;
  LayoutKind kind = LayoutKind::blob;
  Guarantee guarantee = Guarantee::sealed;
  TopicOptions options;  // version 5: what its producer declared (defaults before)
  ClientState* producer = nullptr;
  std::vector<Subscription*> subscribers;
  FramePtr last;                    // only with --keep-last-frame
  std::uint64_t last_sequence = 0;  // of the current producer's last accepted frame
  std::uint64_t frames = 0;         // published so far, through the broker or on channels only
  std::uint64_t bytes = 0;
  // Of the frames its producer put on channels only, what the pages said when last counted,
  // for the producer (client id) they came from.
  struct ChannelCounted {
    std::uint64_t producer = 0;
    std::uint64_t frames = 0;
    std::uint64_t bytes = 0;
  } channel_counted;
  // Layouts the producer defined for its channels' descriptors (DefineLayout), by id.
  std::vector<std::pair<std::uint32_t, Layout>> layouts;
  bool via_broker = true;  // what the producer was last told (Route)
};

// Adds to `topic`'s frames and bytes those its producer put on channels only since they were
// last counted, as its channel pages say (the producer's word: it can only misreport its own
// topic). Called before the counters are shown, at each hold check, and before a channel goes.
void count_channel_frames(Topic& topic);

// Every topic by name, and the ids of pools. A topic exists while it has a producer or a
// subscriber.
class Registry {
 public:
  explicit Registry(std::size_t max_topics) : max_topics_(max_topics) {}

  // The topic called `name`, created if needed; past --max-topics a LIMIT_EXCEEDED refusal.
  Result<Topic*> topic(const std::string& name);
  Topic* find(std::string_view name);
  const Topic* find(std::string_view name) const { return const_cast<Registry*>(this)->find(name); }
  // Forgets `topic` if it has neither producer nor subscribers.
  void release(Topic* topic);
  std::uint32_t next_pool_id() { return next_pool_id_++; }
  const std::map<std::string, std::unique_ptr<Topic>, std::less<>>& topics() const {
    return topics_;
  }
  std::chrono::steady_clock::time_point started_at() const { return started_at_; }

 private:
  std::size_t max_topics_;
  std::uint32_t next_pool_id_ = 1;  // 0 means "no pool" on the wire
  std::chrono::steady_clock::time_point started_at_ = std::chrono::steady_clock::now();
  std::map<std::string, std::unique_ptr<Topic>, std::less<>> topics_;
};

}  // namespace shmfd::broker
