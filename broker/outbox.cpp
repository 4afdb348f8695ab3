#include "outbox.hpp"

#include <algorithm>
#include <chrono>

#include "client_state.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::broker {

Outbox::Outbox(ClientState& owner, const Limits& limits, const Logger& log, Wakeups& wakeups)
    : owner_(owner), limits_(limits), log_(log), wakeups_(wakeups) {}

void Outbox::mark_dirty() {
  if (dirty_ || mode_ == Mode::closed) return;
  dirty_ = true;
  wakeups_.writer(owner_.id);
}

void Outbox::set_mode(Mode mode) {
  mode_ = mode;
  if (mode == Mode::closed) {
    replies_.clear();
    slot_frees_.clear();
    credit_owed_ = 0;
  } else {
    mark_dirty();  // replies_only: the session closes once the queue is empty
  }
}

void Outbox::post(capnp::MessageBuilder& message) {
  if (mode_ == Mode::closed) return;
  if (replies_.size() >= limits_.max_pending_replies) {
    wakeups_.close(owner_.id, "does not read the broker's replies (" +
                                  std::to_string(replies_.size()) +
                                  " queued, the broker's --max-queued-messages)");
    set_mode(Mode::closed);
    return;
  }
  replies_.push_back(Outgoing{encode_message(message), -1, nullptr});
  mark_dirty();
}

void Outbox::post(capnp::MessageBuilder& message, int fd, std::shared_ptr<const void> keep) {
  post(message);
  if (mode_ == Mode::closed) return;
  replies_.back().fd = fd;
  replies_.back().keep = std::move(keep);
}

void Outbox::attach_pool(const PoolPtr& pool) {
  if (attached_pools_.count(pool->id) != 0) return;
  ControlMessageBuilder message;
  auto attach = message.initRoot<proto::Message>().initPoolAttach();
  attach.setTopic(pool->topic);
  attach.setPool(pool->id);
  attach.setSlotCount(pool->slot_count);
  attach.setSlotSize(pool->slot_size);
  attach.setFd(0);
  attach.setProducer(pool->owner_id);
  attached_pools_.emplace(pool->id, pool->topic);
  post(message, pool->fd.get(), pool);
}

void Outbox::enqueue(Subscription& sub, Pending entry) {
  if (entry.frame != nullptr && sub.policy == Backpressure::drop_oldest) {
    while (sub.queued_frames() >= sub.depth) {
      auto oldest = std::find_if(sub.pending.begin(), sub.pending.end(),
                                 [](const Pending& p) { return p.frame != nullptr; });
      if (log_.enabled(LogLevel::debug)) {
        log_.debug("dropped frame " + std::to_string(oldest->frame->sequence) + " for " +
                   owner_.describe() + " (drop-oldest, queue of " + std::to_string(sub.depth) +
                   " full)");
      }
      sub.pending.erase(oldest);  // its fd closes here unless another queue still holds it
      ++sub.dropped;
    }
  }
  if (entry.frame == nullptr && entry.channel == nullptr && !sub.pending.empty() &&
      sub.pending.back().frame == nullptr && sub.pending.back().channel == nullptr) {
    // Back-to-back ends of stream (a producer that comes and goes while this consumer does
    // not read) say no more than the last: keep one, so the queue stays bounded by its depth.
    sub.pending.back() = std::move(entry);
  } else {
    sub.pending.push_back(std::move(entry));
  }
  mark_dirty();
}

void Outbox::slot_free(std::uint32_t pool, std::uint32_t slot) {
  if (mode_ != Mode::everything) return;
  auto it = owner_.pools.find(pool);
  if (it == owner_.pools.end() || it->second->free_queued[slot]) return;  // one says it all
  it->second->free_queued[slot] = true;
  slot_frees_.emplace_back(pool, slot);
  mark_dirty();
}

void Outbox::forget_slot_frees_of(std::uint32_t pool) {
  std::erase_if(slot_frees_, [pool](const auto& free) { return free.first == pool; });
}

void Outbox::publish_read() {
  // Counted on reading, whatever the answer: the producer's window is about its sends.
  if (++credit_owed_ >= credit_threshold()) mark_dirty();
}

std::uint32_t Outbox::credit_threshold() const {
  return std::max<std::uint32_t>(1, limits_.publish_window / 2);
}

void Outbox::released(bool pool_slot) {
  if (pool_slot && --slots_held_ < limits_.max_slots_held) told_slots_held_ = false;
  mark_dirty();  // its window has room: a queued frame may go
}

void Outbox::forget_pools_of(std::string_view topic) {
  std::erase_if(attached_pools_, [&](const auto& pool) { return pool.second == topic; });
}

bool Outbox::next(Outgoing& out) {
  if (mode_ == Mode::closed) return false;
  if (!replies_.empty()) {
    out = std::move(replies_.front());
    replies_.pop_front();
    return true;
  }
  if (mode_ == Mode::replies_only) return false;
  if (credit_owed_ >= credit_threshold()) {
    ControlMessageBuilder message;
    message.initRoot<proto::Message>().initCredit().setFrames(credit_owed_);
    credit_owed_ = 0;
    out.words = encode_message(message);
    return true;
  }
  while (!slot_frees_.empty()) {
    const auto [id, slot] = slot_frees_.front();
    slot_frees_.pop_front();
    auto pool = owner_.pools.find(id);
    if (pool == owner_.pools.end()) continue;
    pool->second->free_queued[slot] = false;
    ControlMessageBuilder message;
    auto free = message.initRoot<proto::Message>().initSlotFree();
    free.setPool(id);
    free.setSlot(slot);
    out.words = encode_message(message);
    return true;
  }
  return next_delivery(out);
}

bool Outbox::next_delivery(Outgoing& out) {
  auto& subscriptions = owner_.subscriptions;
  if (subscriptions.empty()) return false;
  // Round-robin over subscriptions so one busy topic cannot starve the others.
  const std::size_t n = subscriptions.size();
  auto it = subscriptions.begin();
  std::advance(it, static_cast<std::ptrdiff_t>(next_subscription_ % n));
  for (std::size_t i = 0; i < n; ++i) {
    if (it == subscriptions.end()) it = subscriptions.begin();
    Subscription& sub = *it->second;
    ++it;
    if (!sub.can_send()) continue;
    const FramePtr& head = sub.pending.front().frame;
    if (head && head->pool && slots_held_ >= limits_.max_slots_held) {
      // Delivered when the consumer releases a slot; meanwhile its queue policy applies.
      if (!told_slots_held_) {
        told_slots_held_ = true;
        log_.warn(owner_.describe() + ": holds " + std::to_string(slots_held_) +
                  " pool slots, the broker's --max-slots-held");
        ControlMessageBuilder builder;
        auto error = builder.initRoot<proto::Message>().initError();
        error.setCode(proto::ErrorCode::LIMIT_EXCEEDED);
        error.setTopic(sub.topic->name);
        error.setMessage("this client holds " + std::to_string(slots_held_) +
                         " pool slots, the broker's --max-slots-held; release frames to get more");
        out.words = encode_message(builder);
        return true;
      }
      continue;
    }
    next_subscription_ = (next_subscription_ + i + 1) % n;

    ControlMessageBuilder message;
    auto root = message.initRoot<proto::Message>();
    if (head && head->pool && attached_pools_.count(head->pool->id) == 0) {
      // First frame of this pool for this client: send the pool's fd; the frame follows.
      const PoolRecord& pool = *head->pool;
      auto attach = root.initPoolAttach();
      attach.setTopic(pool.topic);
      attach.setPool(pool.id);
      attach.setSlotCount(pool.slot_count);
      attach.setSlotSize(pool.slot_size);
      attach.setFd(0);
      attach.setProducer(pool.owner_id);
      attached_pools_.emplace(pool.id, pool.topic);
      out.fd = pool.fd.get();
      out.keep = head->pool;
      out.words = encode_message(message);
      return true;
    }

    Pending entry = std::move(sub.pending.front());
    sub.pending.pop_front();
    if (entry.channel) {
      // The channel takes over from here: every frame queued before came first.
      const ChannelRecord& c = *entry.channel;
      auto open = root.initChannelOpen();
      open.setChannel(c.id);
      open.setTopic(c.topic);
      open.setFd(0);
      open.setDropped(sub.dropped);
      open.setProducer(c.producer_id);
      out.fd = c.producer_fd->get();
      out.keep = entry.channel;
    } else if (entry.frame) {
      const FrameRecord& f = *entry.frame;
      auto deliver = root.initDeliver();
      deliver.setTopic(sub.topic->name);
      deliver.setDropped(sub.dropped);
      deliver.setGuarantee(to_proto(f.guarantee));
      auto frame = deliver.initFrame();
      frame.setSequence(f.sequence);
      frame.setTimestampNs(f.timestamp_ns);
      layout_to_proto(f.layout, frame.initLayout());
      // Version 5 only: an older consumer sees no new field.
      if (!f.meta.empty() && sub.client->version >= 5) meta_to_proto(f.meta, frame.initMeta());
      InFlight held{f.sequence, nullptr, std::chrono::steady_clock::now(), false};
      if (f.pool) {
        frame.setPool(f.pool->id);
        frame.setSlot(f.slot);
        held.pool_frame = entry.frame;  // the slot stays busy until this consumer releases
        ++slots_held_;
      } else {
        frame.setFd(0);
        out.fd = f.fd.get();
        out.keep = entry.frame;
      }
      sub.in_flight.push_back(std::move(held));
      ++sub.delivered;
      ++sub.delivered_since;
    } else {
      auto end = root.initEndOfStream();
      end.setTopic(sub.topic->name);
      end.setReason(entry.end_reason);
      end.setProducer(entry.producer);
      end.setDropped(sub.dropped);
    }
    out.words = encode_message(message);
    // The queue has room again: a producer held back by this block-producer subscriber may
    // be read on.
    if (sub.policy == Backpressure::block_producer && sub.topic->producer != nullptr) {
      wakeups_.reader(sub.topic->producer->id);
    }
    return true;
  }
  return false;
}

}  // namespace shmfd::broker
