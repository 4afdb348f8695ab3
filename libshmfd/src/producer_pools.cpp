// Producer's pool frames: creating pools, acquiring slots, and publishing a slot as one frame
// on the topic's channels and, where some subscriber is not on one, through the broker.
#include "producer_state.hpp"

namespace shmfd {

Result<std::uint32_t> Producer::create_pool(std::string_view topic, std::size_t slot_bytes,
                                            std::uint32_t slot_count, MemfdOptions options) {
  std::size_t slot_size = 0;
  auto buffer =
      detail::create_pool_buffer(std::string(topic), slot_bytes, slot_count, options, slot_size);
  if (!buffer) return fail(std::move(buffer.error()));
  auto registered = state_->register_pool(topic, *buffer, slot_size, slot_count);
  if (!registered) return fail(std::move(registered.error()));
  return state_->pools.add(std::string(topic), std::move(*buffer), slot_size, slot_count,
                           *registered, options);
}

Result<std::optional<Slot>> Producer::try_acquire(std::uint32_t pool) {
  detail::ProducerState& s = *state_;
  const detail::PoolState* p = s.pools.find(pool);
  if (p == nullptr) return fail(Errc::invalid_argument, "acquire: no pool " + std::to_string(pool));
  if (auto ok = s.poll(); !ok) {
    if (auto again = s.recovered(ok.error()); !again) return fail(std::move(again.error()));
  }
  // What the channels' consumers released since the last look.
  s.channels.collect(p->topic);
  std::optional<Slot> slot = s.pools.take(pool, s.held);
  s.channels.found_free_slot(*p, slot.has_value());
  return slot;
}

Result<Slot> Producer::acquire(std::uint32_t pool, Wait wait) {
  detail::ProducerState& s = *state_;
  for (;;) {
    auto slot = try_acquire(pool);
    if (!slot) return fail(std::move(slot.error()));
    if (*slot) return **slot;
    const detail::PoolState& p = *s.pools.find(pool);
    if (wait == Wait::fail_fast) {
      return fail(Errc::no_free_slot, "pool " + std::to_string(pool) + ": all " +
                                          std::to_string(p.slots.size()) +
                                          " slots are held by consumers");
    }
    if (const PeerBell* bell = s.link.bell()) {
      // Until a channel's consumer releases, or the broker says something (a SlotFree, a
      // channel closed): try_acquire then looks again.
      waitv(s.channels.writers(p.topic), bell, s.link.bell_seen(),
            std::chrono::steady_clock::now() + std::chrono::seconds(1));
      continue;
    }
    // Block until the broker frees a slot of this pool.
    const std::uint32_t broker_id = p.broker_id;
    auto ok = s.wait_for([&](proto::Message::Reader r) {
      return Result<bool>(r.isSlotFree() && r.getSlotFree().getPool() == broker_id);
    });
    if (!ok) {
      if (auto again = s.recovered(ok.error()); !again) return fail(std::move(again.error()));
    }
  }
}

Result<PreparedFrame> Producer::prepare(std::string_view topic, const Slot& slot,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  return prepare(topic, slot, layout, FrameMeta{}, timestamp_ns);
}

Result<PreparedFrame> Producer::prepare(std::string_view topic, const Slot& slot,
                                        const Layout& layout, const FrameMeta& meta,
                                        std::uint64_t timestamp_ns) {
  if (auto ok = state_->check_meta(topic, meta, layout); !ok) return fail(std::move(ok.error()));
  auto staged = state_->stage(topic, slot, layout);
  if (!staged) return fail(std::move(staged.error()));
  auto [sequence, pool] = *staged;
  pool->broker_busy[slot.index] = true;  // until SlotFree (or a refusal)
  return PreparedFrame{
      std::string(topic), sequence, std::nullopt,
      state_->publish_message(topic, *pool, slot, sequence, timestamp_ns, layout, meta)};
}

// Stage, put on the channels, send if the broker routes the topic too; whatever fails on the
// way gives the sequence number and the slot back (one guard), and a lost broker that is
// connected to again gets the same frame.
Result<std::uint64_t> Producer::publish(std::string_view topic, const Slot& slot,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  return publish(topic, slot, layout, FrameMeta{}, timestamp_ns);
}

Result<std::uint64_t> Producer::publish(std::string_view topic, const Slot& slot,
                                        const Layout& layout, const FrameMeta& meta,
                                        std::uint64_t timestamp_ns) {
  detail::ProducerState& s = *state_;
  if (auto ok = s.check_meta(topic, meta, layout); !ok) return fail(std::move(ok.error()));
  if (timestamp_ns == 0) timestamp_ns = detail::monotonic_ns();
  for (;;) {
    // Route changes, channels opened or closed, refusals: one load when nothing came.
    if (auto ok = s.poll(); !ok) {
      if (auto again = s.recovered(ok.error()); !again) return fail(std::move(again.error()));
    }
    auto staged = s.stage(topic, slot, layout);
    if (!staged) return fail(std::move(staged.error()));
    const auto [sequence, pool] = *staged;
    struct Rollback {
      detail::ProducerState& s;
      std::string_view topic;
      const Slot& slot;
      bool armed = true;
      ~Rollback() {
        if (!armed) return;
        s.give_back_sequence(topic);
        s.pools.unpublish(slot);
      }
    } rollback{s, topic, slot};
    Status ok = s.channels.put(s.link, topic, *pool, slot.index, layout, sequence, timestamp_ns,
                               meta, s.wait_for_release);
    // Every subscriber on a channel: the broker does not see the frame, and no message is
    // encoded for it.
    const bool routed = ok && s.channels.via_broker(topic);
    if (routed) {
      auto message = s.publish_message(topic, *pool, slot, sequence, timestamp_ns, layout, meta);
      // Blocking: under block-producer backpressure this waits for the broker to read again.
      ok = s.link.send(message.bytes()).map([](SendStatus) {});
    }
    if (!ok) {
      // Never sent: to the new broker with the same number, from the same slot (still ours).
      if (auto again = s.recovered(ok.error()); !again) return fail(std::move(again.error()));
      continue;
    }
    rollback.armed = false;
    if (!routed) return sequence;
    pool->broker_busy[slot.index] = true;  // until SlotFree (or a refusal)
    auto done = s.sent_or_refused(sequence);
    if (!done && s.recovered(done.error())) return sequence;  // sent; the broker then went
    return done;
  }
}

Status Producer::discard(const Slot& slot) {
  return state_->pools.discard(slot);
}

std::size_t Producer::slot_size(std::uint32_t pool) const {
  const detail::PoolState* p = state_->pools.find(pool);
  return p == nullptr ? 0 : p->slot_size;
}

std::size_t Producer::free_slots(std::uint32_t pool) const {
  return state_->pools.free_slots(pool, state_->held);
}

}  // namespace shmfd
