// ConsumerChannels: the consumer's pools, channels and layouts (consumer_channels.hpp).
#include "consumer_channels.hpp"

#include "shmfd/verify.hpp"
#include "shmfd/wire/intake.hpp"

namespace shmfd::detail {

void ChannelIn::release(std::uint32_t pool, std::uint32_t slot, std::uint64_t sequence) noexcept {
  std::lock_guard lock(release_mutex);
  // A full release ring means the producer stopped reading it: the slot stays counted as ours
  // in its books, which is the producer's own loss.
  (void)reader.release(pool, slot, sequence);
}

Result<std::shared_ptr<PoolView>> map_pool(proto::PoolAttach::Reader attach,
                                           std::vector<UniqueFd>& fds) {
  // As for every fd from outside: verify before mapping, at the level a pool needs.
  auto accepted = accept_pool(attach.getFd(), attach.getSlotCount(), attach.getSlotSize(), fds);
  if (!accepted) return fail(std::move(accepted.error()));
  // MAP_POPULATE: a pool is mapped once and its slots are read again and again, so its page
  // faults (~3.7 µs a 4 KiB page: 120 ms for four 4K frames) belong here, once, and not to the
  // first frames of every slot.
  auto mapping = Mapping::map(accepted->fd.get(), static_cast<std::size_t>(accepted->bytes),
                              Access::read_only, 0, MapOptions{.populate = true});
  if (!mapping) return fail(std::move(mapping.error()));
  auto view = std::make_shared<PoolView>();
  view->topic = text_of(attach.getTopic());
  view->producer = attach.getProducer();
  view->mapping = std::move(*mapping);
  view->slot_size = attach.getSlotSize();
  view->slot_count = attach.getSlotCount();
  return view;
}

Status ConsumerChannels::attach_pool(proto::PoolAttach::Reader attach, std::vector<UniqueFd>& fds) {
  auto view = map_pool(attach, fds);
  if (!view) return fail(std::move(view.error()));
  shapes_[attach.getProducer()].add_pool(attach.getPool(), attach.getSlotCount(),
                                         attach.getSlotSize());
  pools_[attach.getPool()] = std::move(*view);
  return {};
}

Status ConsumerChannels::open(proto::ChannelOpen::Reader open, std::optional<AskedChannel> asked,
                              std::vector<UniqueFd>& fds) {
  if (!asked || fds.size() != kFdsPerMessage) {
    return fail(Errc::protocol_violation, "ChannelOpen for channel " +
                                              std::to_string(open.getChannel()) +
                                              ", which was never asked for, or without its page");
  }
  // The producer's page, verified again here: a memfd sealed at the pool level, of the size
  // its header says, mapped read-only.
  auto peer = PeerPage::accept(std::move(fds[0]), ChannelSide::producer, asked->meta_bytes);
  if (!peer) return fail(std::move(peer.error()).prefixed("the producer's channel page"));
  auto channel =
      std::make_shared<ChannelIn>(open.getChannel(), text_of(open.getTopic()),
                                  ChannelReader(std::move(asked->page), std::move(*peer)));
  channel->dropped_before = open.getDropped();
  channel->producer = open.getProducer();
  channel->depth = std::max<std::uint32_t>(1, asked->depth);
  channel->policy = asked->policy;
  channels_.push_back(std::move(channel));
  return {};
}

void ConsumerChannels::close(std::uint32_t id) {
  std::erase_if(channels_, [&](const std::shared_ptr<ChannelIn>& c) {
    if (c->id != id) return false;
    c->active = false;
    refusals_before_ += c->reader.refusals();
    return true;
  });
}

Status ConsumerChannels::define_layout(proto::DefineLayout::Reader define) {
  auto layout = layout_from_proto(define.getLayout());
  if (!layout) return fail(std::move(layout.error()));
  auto extent = layout_extent(*layout);
  if (!extent) return fail(std::move(extent.error()));
  shapes_[define.getProducer()].add_layout(define.getId(), *extent);
  layouts_[define.getProducer()].insert_or_assign(define.getId(), *layout);
  return {};
}

bool ConsumerChannels::end_stream(EndOfStream& end, std::uint64_t producer) {
  for (auto& c : channels_) {
    if (c->topic == end.topic && (producer == 0 || c->producer == producer) && c->active &&
        !c->ending) {
      // Frames the producer left on the channel come first; then this.
      c->ending = std::move(end);
      return true;
    }
  }
  // The producer's pools get no new frames: forget them (held frames keep their mapping). A
  // next producer's pools may have come already: those stay.
  forget_pools(end.topic, producer);
  if (producer != 0) {
    shapes_.erase(producer);
    layouts_.erase(producer);
  }
  return false;
}

void ConsumerChannels::unsubscribed(std::string_view topic) {
  stop(topic, 0);
  forget_pools(topic, 0);
}

void ConsumerChannels::forget_pools(std::string_view topic, std::uint64_t producer) {
  std::erase_if(pools_, [&](const auto& p) {
    const PoolView& v = *p.second;
    if (v.topic != topic || (producer != 0 && v.producer != producer)) return false;
    if (auto it = shapes_.find(v.producer); it != shapes_.end()) it->second.remove_pool(p.first);
    return true;
  });
}

void ConsumerChannels::stop(std::string_view topic, std::uint64_t producer) {
  std::erase_if(channels_, [&](const std::shared_ptr<ChannelIn>& c) {
    if (c->topic != topic || (producer != 0 && c->producer != producer)) return false;
    c->active = false;
    refusals_before_ += c->reader.refusals();
    layouts_.erase(c->producer);
    shapes_.erase(c->producer);
    return true;
  });
}

Result<Frame> ConsumerChannels::pool_frame(std::uint32_t pool, std::uint32_t slot, Frame frame) {
  auto it = pools_.find(pool);
  if (it == pools_.end() || slot >= it->second->slot_count) {
    return fail(Errc::protocol_violation, "frame in slot " + std::to_string(slot) + " of pool " +
                                              std::to_string(pool) + ", which was never attached");
  }
  if (auto fits = validate_layout(FrameBuilder::layout(frame), it->second->slot_size); !fits) {
    return fail(std::move(fits.error()));
  }
  FrameBuilder::in_pool(frame, it->second, slot);
  return frame;
}

Status check_received_meta(const FrameMeta& meta, const TopicOptions* options,
                           const Layout& layout) {
  if (options != nullptr) return check_frame_meta(meta, *options, layout);
  TopicOptions any;  // not told (never so from a broker of version 5)
  any.max_header_bytes = kMaxUserHeaderBytes;
  return check_frame_meta(meta, any, layout);
}

Status check_received_meta(const FrameMeta& meta, const TopicOptionsMap& options,
                           std::string_view topic, const Layout& layout) {
  const auto known = options.find(topic);
  return check_received_meta(meta, known != options.end() ? &known->second : nullptr, layout);
}

std::optional<Event> ConsumerChannels::next(const TopicOptionsMap& options,
                                            std::uint32_t bell_count, std::uint32_t bell_seen,
                                            const Accounting& account) {
  for (;;) {
    const std::size_t n = channels_.size();
    bool restart = false;
    for (std::size_t i = 0; i < n && !restart; ++i) {
      const std::size_t at = (next_channel_ + i) % n;
      std::shared_ptr<ChannelIn> c = channels_[at];
      if (c->parked) {
        if (bell_count == c->parked_at) continue;
        c->parked = false;
      }
      auto shapes = shapes_.find(c->producer);
      static const FrameShapes none;
      const FrameShapes& known = shapes != shapes_.end() ? shapes->second : none;
      // Drop-oldest: the oldest of the newest `depth` frames published, never an older one.
      auto d = c->policy == Backpressure::drop_oldest
                   ? c->reader.next_fresh(known, c->depth, c->ending.has_value())
                   : c->reader.next(known, true);
      if (!d) {
        if (c->reader.stopped()) {
          // Its pool or layout is on its way through the socket (or never comes: a producer
          // that names what it never defined stalls only its own channel).
          c->parked = true;
          c->parked_at = bell_seen;
          continue;
        }
        if (c->reader.ended() && !c->ending) {
          // The producer closed it and everything on it has been read: the broker's word on
          // what comes next (an end of stream, a new channel) comes through the socket. What
          // it dropped and skipped stays counted for that end of stream.
          (void)account(c->topic, 0,
                        c->dropped_before + c->reader.producer_dropped() + c->reader.skipped());
          c->active = false;
          refusals_before_ += c->reader.refusals();
          channels_.erase(channels_.begin() + static_cast<std::ptrdiff_t>(at));
          restart = true;
          continue;
        }
        // (readable() also says the producer closed it: then ended() says the ring is empty.)
        if (c->reader.broken() || (c->ending && (c->reader.ended() || !c->reader.readable()))) {
          EndOfStream end = c->ending ? std::move(*c->ending)
                                      : EndOfStream{c->topic, c->reader.broken()->message()};
          // Also the frames the producer dropped for this consumer after the last one it put.
          end.dropped = account(
              c->topic, 0, c->dropped_before + c->reader.producer_dropped() + c->reader.skipped());
          stop(end.topic, c->producer);
          forget_pools(end.topic, c->producer);
          return Event(std::move(end));
        }
        continue;
      }
      next_channel_ = (at + 1) % n;
      auto pool = pools_.find(d->pool);
      const auto& layouts = layouts_[c->producer];
      auto layout = layouts.find(d->layout);
      if (pool == pools_.end() || layout == layouts.end()) {
        // Known to the shapes, so never: but a frame is never built from a guess.
        c->release(d->pool, d->slot, d->sequence);
        continue;
      }
      if (d->has_meta) {
        if (c->options == nullptr) {
          if (auto declared = options.find(c->topic); declared != options.end()) {
            c->options = &declared->second;
          }
        }
        if (auto ok = check_received_meta(c->reader.meta(), c->options, layout->second); !ok) {
          c->reader.refused(std::move(ok.error()).prefixed("frame " + std::to_string(d->sequence)));
          c->release(d->pool, d->slot, d->sequence);
          continue;
        }
      }
      Frame out = FrameBuilder::make();
      FrameBuilder::topic(out) = c->topic;
      FrameBuilder::set(out, d->sequence, d->timestamp_ns, layout->second);
      if (d->has_meta) FrameBuilder::meta(out, c->reader.meta());
      FrameBuilder::in_pool(out, pool->second, d->slot);
      FrameBuilder::from_channel(out, c, d->pool, d->slot);
      FrameBuilder::dropped(out, account(c->topic, d->sequence,
                                         c->dropped_before + d->dropped + c->reader.skipped()));
      return Event(std::move(out));
    }
    if (!restart) return std::nullopt;
  }
}

std::vector<ChannelReader*> ConsumerChannels::readers() {
  std::vector<ChannelReader*> out;
  for (const auto& c : channels_) {
    if (c->active && !c->parked && out.size() < 62) out.push_back(&c->reader);
  }
  return out;
}

std::uint64_t ConsumerChannels::refusals() const noexcept {
  std::uint64_t n = refusals_before_;
  for (const auto& c : channels_) n += c->reader.refusals();
  return n;
}

}  // namespace shmfd::detail
