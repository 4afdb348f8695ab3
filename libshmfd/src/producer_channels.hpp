// ProducerChannels: a producer's end of its channels (docs/PROTOCOL.md, section 14), with their
// state: the channels open to consumers, the layouts defined for each topic's channels, and
// the broker's word on whether a topic's frames must also go through it (Route). put() puts a
// pool frame on every channel of its topic.
#pragma once

#include <algorithm>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "broker_link.hpp"
#include "pool_slots.hpp"
#include "shmfd/wire/channel.hpp"

namespace shmfd::detail {

class ProducerChannels {
 public:
  // ChannelOpen for the page `asked`: the channel is open, and its id returned for the
  // ChannelStarted that the caller queues. nullopt if the channel closed meanwhile; an error
  // if the consumer's page, which the broker verified, fails here (a broker bug: that consumer
  // stays on the broker's path).
  Result<std::optional<std::uint32_t>> open(proto::ChannelOpen::Reader open,
                                            std::optional<AskedChannel> asked,
                                            std::vector<UniqueFd>& fds);
  // ChannelClose: with `reclaim` the consumer has gone and every slot it held is free; without,
  // it unsubscribed, and its slots come back as it releases them.
  void close(std::uint32_t channel, bool reclaim);
  void route(std::string topic, bool via_broker) { via_broker_[std::move(topic)] = via_broker; }
  // Whether frames of `topic` must go through the broker too (some subscriber is not on a
  // channel): the broker's last Route, and yes before any.
  bool via_broker(std::string_view topic) const;
  // Whether a consumer on a channel holds `slot` of `pool`.
  bool holds(const PoolState& pool, std::uint32_t slot) const;
  // Reads what the consumers of `topic` released; channels that ended once their consumer
  // released everything, or that it broke, go.
  void collect(std::string_view topic);
  // The writers of `topic`'s channels, for a wait on their releases.
  std::vector<ChannelWriter*> writers(std::string_view topic);
  std::size_t size() const noexcept { return channels_.size(); }

  // Puts frame `sequence` in `slot` of `pool` on every channel of `topic`. A drop-oldest
  // consumer that holds its whole depth gets it while the pool has a slot to spare, up to twice
  // its depth, and otherwise misses it (and is told); a block-producer one is waited
  // for, with `wait(writer)`, which sleeps until it releases or the broker speaks, and reads
  // the broker (which may close channels meanwhile). `meta` (checked) goes with it on every
  // channel whose page has metadata entries.
  using Wait = std::function<Status(ChannelWriter&)>;
  Status put(BrokerLink& link, std::string_view topic, const PoolState& pool, std::uint32_t slot,
             const Layout& layout, std::uint64_t sequence, std::uint64_t timestamp_ns,
             const FrameMeta& meta, const Wait& wait);

  // What an acquire from `pool` found: a free slot or none. While it finds none, each channel
  // of the topic that holds a slot of it says so on its page, where the broker's
  // --stuck-policy pool-dry reads it (as it judges a dry pool's holders through the broker).
  void found_free_slot(const PoolState& pool, bool found) {
    if (found && dry_pools_.empty()) return;  // every acquire's case: nothing to say
    note_dry(pool, found);
  }

  void forget_topic(std::string_view topic);
  void forget_all();

 private:
  struct ChannelOut {
    std::uint32_t id = 0;
    std::string topic;
    std::uint32_t depth = 0;
    Backpressure policy = Backpressure::drop_oldest;
    bool consumer_skips = false;  // drop-oldest: it may take frames beyond its depth
    std::uint64_t dropped = 0;    // frames not put on it: its consumer held its whole depth
    bool closing = false;         // the consumer unsubscribed: kept until it released every slot
    // Closed when dropped, whyever: the consumer then knows that no frame follows.
    struct CloseAndDelete {
      void operator()(ChannelWriter* w) const noexcept {
        w->close();
        delete w;
      }
    };
    std::unique_ptr<ChannelWriter, CloseAndDelete> writer;
  };
  struct DefinedLayout {
    Layout layout;
    std::uint32_t id = 0;
    std::uint64_t bytes = 0;  // its extent: what a frame of it counts
  };
  struct TopicLayouts {
    std::vector<DefinedLayout> ids;  // defined with the broker
    std::uint32_t next = 1;
    // Frames put on channels only (not through the broker) and their bytes, for its counters.
    std::uint64_t channel_frames = 0;
    std::uint64_t channel_bytes = 0;
  };
  void note_dry(const PoolState& pool, bool found);
  // `layout` on `topic`'s channels, defined with the broker the first time.
  Result<const DefinedLayout*> layout_id(BrokerLink& link, std::string_view topic,
                                         const Layout& layout, std::size_t slot_size);

  std::vector<ChannelOut> channels_;
  std::map<std::string, bool, std::less<>> via_broker_;  // Route; absent: true
  std::map<std::string, TopicLayouts, std::less<>> layouts_;
  std::vector<std::uint32_t> dry_pools_;  // broker ids of the pools last found with no free slot
  std::uint32_t dry_spell_ = 0;           // dry spells so far: the last one's number
};

}  // namespace shmfd::detail
