// ProducerChannels: the producer's end of its channels (producer_channels.hpp).
#include "producer_channels.hpp"

#include <algorithm>

namespace shmfd::detail {

Result<std::optional<std::uint32_t>> ProducerChannels::open(proto::ChannelOpen::Reader open,
                                                            std::optional<AskedChannel> asked,
                                                            std::vector<UniqueFd>& fds) {
  if (!asked || fds.size() != kFdsPerMessage) return std::optional<std::uint32_t>();
  auto peer = PeerPage::accept(std::move(fds[0]), ChannelSide::consumer);
  if (!peer) {
    return fail(std::move(peer.error()).prefixed("channel " + std::to_string(open.getChannel())));
  }
  ChannelOut out;
  out.id = open.getChannel();
  out.topic = std::move(asked->topic);
  out.depth = std::max<std::uint32_t>(1, asked->depth);
  out.policy = asked->policy;
  out.consumer_skips = asked->consumer_skips;
  out.writer.reset(new ChannelWriter(std::move(asked->page), std::move(*peer)));
  channels_.push_back(std::move(out));
  return std::optional<std::uint32_t>(open.getChannel());
}

void ProducerChannels::close(std::uint32_t id, bool reclaim) {
  for (auto it = channels_.begin(); it != channels_.end(); ++it) {
    if (it->id != id) continue;
    if (reclaim) {
      channels_.erase(it);  // the consumer has gone: every slot it held is free
    } else {
      it->closing = true;  // it unsubscribed: its slots come back as it releases them
    }
    return;
  }
}

bool ProducerChannels::via_broker(std::string_view topic) const {
  auto it = via_broker_.find(topic);
  return it == via_broker_.end() || it->second;
}

bool ProducerChannels::holds(const PoolState& pool, std::uint32_t slot) const {
  return std::any_of(channels_.begin(), channels_.end(), [&](const ChannelOut& c) {
    return c.topic == pool.topic && c.writer->holds(pool.broker_id, slot);
  });
}

void ProducerChannels::collect(std::string_view topic) {
  for (ChannelOut& c : channels_) {
    if (c.topic == topic) c.writer->collect_releases([](std::uint32_t, std::uint32_t) {});
  }
  std::erase_if(channels_, [](const ChannelOut& c) {
    return (c.closing && c.writer->held() == 0) || c.writer->broken();
  });
}

std::vector<ChannelWriter*> ProducerChannels::writers(std::string_view topic) {
  std::vector<ChannelWriter*> out;
  for (ChannelOut& c : channels_) {
    if (c.topic == topic) out.push_back(c.writer.get());
  }
  return out;
}

void ProducerChannels::note_dry(const PoolState& pool, bool found) {
  const auto dry = std::find(dry_pools_.begin(), dry_pools_.end(), pool.broker_id);
  if (found) {
    if (dry == dry_pools_.end()) return;
    dry_pools_.erase(dry);
  } else if (dry == dry_pools_.end()) {
    dry_pools_.push_back(pool.broker_id);
    if (++dry_spell_ == 0) dry_spell_ = 1;  // 0 means none
  }
  for (ChannelOut& c : channels_) {
    if (c.topic != pool.topic) continue;
    const bool holds_dry = std::any_of(dry_pools_.begin(), dry_pools_.end(),
                                       [&](std::uint32_t p) { return c.writer->held_of(p) != 0; });
    c.writer->pool_dry(holds_dry ? dry_spell_ : 0);
  }
}

void ProducerChannels::forget_topic(std::string_view topic) {
  std::erase_if(channels_, [&](const ChannelOut& c) { return c.topic == topic; });
  if (auto it = via_broker_.find(topic); it != via_broker_.end()) via_broker_.erase(it);
  if (auto it = layouts_.find(topic); it != layouts_.end()) layouts_.erase(it);
}

void ProducerChannels::forget_all() {
  channels_.clear();
  dry_pools_.clear();
  via_broker_.clear();
  layouts_.clear();
}

Result<const ProducerChannels::DefinedLayout*> ProducerChannels::layout_id(BrokerLink& link,
                                                                           std::string_view topic,
                                                                           const Layout& layout,
                                                                           std::size_t slot_size) {
  auto it = layouts_.find(topic);
  if (it == layouts_.end()) it = layouts_.emplace(std::string(topic), TopicLayouts{}).first;
  for (const DefinedLayout& known : it->second.ids) {
    if (known.layout == layout) return &known;
  }
  // New: sent, not waited for (the broker may not be reading us: backpressure on another
  // topic). A consumer that meets the id first waits for the definition on its socket.
  if (it->second.ids.size() >= kMaxChannelLayouts) {
    return fail(Errc::limit_exceeded, "topic '" + std::string(topic) + "' has used " +
                                          std::to_string(kMaxChannelLayouts) +
                                          " layouts, the most a topic's channels may name");
  }
  auto extent = validate_layout(layout, slot_size);
  if (!extent) return fail(std::move(extent.error()));
  const std::uint32_t id = it->second.next++;
  ControlMessageBuilder message;
  auto define = message.initRoot<proto::Message>().initDefineLayout();
  define.setTopic(std::string(topic));
  define.setId(id);
  layout_to_proto(layout, define.initLayout());
  if (auto sent = link.send(message); !sent) return fail(std::move(sent.error()));
  it->second.ids.push_back({layout, id, *extent});
  return &it->second.ids.back();
}

Status ProducerChannels::put(BrokerLink& link, std::string_view topic, const PoolState& pool,
                             std::uint32_t slot, const Layout& layout, std::uint64_t sequence,
                             std::uint64_t timestamp_ns, const FrameMeta& meta, const Wait& wait) {
  const auto live = [&](const ChannelOut& c) { return c.topic == topic && !c.closing; };
  if (std::none_of(channels_.begin(), channels_.end(), live)) return {};
  auto defined = layout_id(link, topic, layout, pool.slot_size);
  if (!defined) return fail(std::move(defined.error()));
  const std::uint64_t frame_bytes = (*defined)->bytes;
  Descriptor d{pool.broker_id, slot, (*defined)->id, sequence, timestamp_ns, 0};
  const auto now = coarse_now();  // since when the channels hold the slot
  // A consumer may hold its depth, and never every slot of a pool (as through the broker).
  const std::size_t window_cap = std::max<std::size_t>(1, pool.slots.size() - 1);
  // Every channel of the topic gets the frame, also one that opened while this waited for
  // another: its ChannelStarted went out before this frame's Publish could, so the broker
  // will not route the frame to that consumer.
  std::vector<std::uint32_t> done;
  for (;;) {
    auto pending = std::find_if(channels_.begin(), channels_.end(), [&](const ChannelOut& c) {
      return live(c) && std::find(done.begin(), done.end(), c.id) == done.end();
    });
    if (pending == channels_.end()) break;
    const std::uint32_t id = pending->id;
    done.push_back(id);
    for (;;) {
      // Found again each time: a wait reads messages, which may end the channel.
      auto c = std::find_if(channels_.begin(), channels_.end(),
                            [&](const ChannelOut& o) { return o.id == id; });
      if (c == channels_.end() || c->closing) break;
      ChannelWriter& w = *c->writer;
      const auto full = [&] {
        return w.held() >= c->depth ||
               w.held_of(pool.broker_id) >= std::min<std::size_t>(c->depth, window_cap);
      };
      // A drop-oldest consumer that holds its depth still gets the newest frames behind, up to
      // 2 x depth in all (its window and queue through the broker), while the pool has a slot
      // to spare besides: reading, it skips to the oldest of the newest `depth` and hands the
      // older back unseen (ChannelReader::next_fresh). A ring cannot give back a frame its
      // consumer has not read, so this is what keeps such a consumer's frames fresh.
      const auto ahead = [&] {
        const std::size_t limit = std::min<std::size_t>(2 * std::size_t{c->depth}, w.capacity());
        if (c->policy != Backpressure::drop_oldest || !c->consumer_skips || w.held() >= limit ||
            w.held_of(pool.broker_id) >= std::min(limit, window_cap)) {
          return false;
        }
        const HeldOnChannels held = [this](const PoolState& p, std::uint32_t i) {
          return holds(p, i);
        };
        for (std::uint32_t i = 0; i < pool.slots.size(); ++i) {
          if (i != slot && slot_free(pool, i, held)) return true;
        }
        return false;
      };
      if (full()) w.collect_releases([](std::uint32_t, std::uint32_t) {});
      if (!full() || ahead()) {
        d.dropped = c->dropped;
        auto put = w.publish(d, now, meta.empty() ? nullptr : &meta);
        if (!put) {
          channels_.erase(c);  // the consumer broke its side: it is on its own now
          break;
        }
        if (*put) break;
      }
      if (c->policy == Backpressure::drop_oldest) {
        ++c->dropped;  // behind by its whole depth: it misses this frame, and is told
        w.missed(c->dropped);
        break;
      }
      // Block-producer: wait for this consumer to release, or for the broker's word.
      if (auto ok = wait(w); !ok) return ok;
    }
  }
  // A frame that does not go through the broker too is counted here, for its counters.
  if (via_broker(topic)) return {};
  auto counts = layouts_.find(topic);
  if (counts == layouts_.end()) return {};
  TopicLayouts& t = counts->second;
  ++t.channel_frames;
  t.channel_bytes += frame_bytes;
  for (ChannelOut& c : channels_) {
    if (c.topic == topic) c.writer->counted(t.channel_frames, t.channel_bytes);
  }
  return {};
}

}  // namespace shmfd::detail
