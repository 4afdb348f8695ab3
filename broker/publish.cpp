// Frames and pools: a Publish is checked, its buffer verified, and the frame queued for every
// subscriber of its topic; a RegisterPool is checked and its memfd verified once.
#include <algorithm>
#include <utility>

#include "access.hpp"
#include "quota.hpp"
#include "router.hpp"
#include "shmfd/verify.hpp"
#include "shmfd/wire/intake.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::broker {

using Code = proto::ErrorCode;

namespace {

Outcome check_kind(const Topic& t, const Layout& layout, std::uint64_t sequence) {
  if (layout_kind(layout) == t.kind) return {};
  return refuse(Code::INVALID_LAYOUT,
                "topic '" + t.name + "' carries " + std::string(to_string(t.kind)) +
                    " layouts, this frame has a " + std::string(to_string(layout_kind(layout))) +
                    " layout",
                t.name, sequence);
}

}  // namespace

Outcome Router::publish(ClientState& client, proto::Publish::Reader publish,
                        std::vector<UniqueFd>& fds) {
  const std::string name = text_of(publish.getTopic());
  const auto frame = publish.getFrame();
  const std::uint64_t sequence = frame.getSequence();
  auto layout = layout_from_proto(frame.getLayout());

  Topic* t = registry_.find(name);
  if (t == nullptr || t->producer != &client) {
    return refuse(Code::UNKNOWN_TOPIC,
                  "publish on '" + printable(name) + "', which this client has not advertised",
                  printable(name), sequence);
  }
  if (!layout)
    return refuse(wire_error_code(layout.error()), layout.error().message(), name, sequence);
  if (sequence == 0 || sequence <= t->last_sequence) {
    // Releases name a frame by (topic, sequence): two frames held under one sequence could
    // not be told apart, and 0 means "no frame" in an Error.
    return refuse(Code::BAD_SEQUENCE,
                  "frame sequence " + std::to_string(sequence) +
                      (sequence == 0 ? std::string(" is reserved; sequences start at 1")
                                     : " is not greater than this producer's last on '" + name +
                                           "', " + std::to_string(t->last_sequence)),
                  name, sequence);
  }
  // Version 5: the frame's metadata, checked against its topic's options (from an older
  // client, whose schema has no such field, none is read).
  FrameMeta meta;
  if (client.version >= 5) {
    if (frame.hasMeta()) meta = meta_from_proto(frame.getMeta());
    if (auto ok = check_frame_meta(meta, t->options, *layout); !ok) {
      return refuse(Code::INVALID_METADATA, ok.error().message(), name, sequence);
    }
  }
  if (frame.getPool() == 0) return publish_fd(client, *t, frame, *layout, meta, fds);
  if (!fds.empty()) {
    return refuse(Code::WRONG_FD_COUNT,
                  "a frame in a pool slot carries no fd; the " + std::to_string(fds.size()) +
                      " attached were closed",
                  name, sequence);
  }
  return publish_slot(client, *t, frame, *layout, meta);
}

namespace {
// The record keeps its own copy of the header: the message it came in is gone after this event.
void keep_meta(FrameRecord& record, const FrameMeta& meta) {
  if (meta.empty()) return;
  record.meta = meta;
  record.header.assign(meta.header.begin(), meta.header.end());
  record.meta.header = record.header;
}
}  // namespace

Outcome Router::publish_fd(ClientState& client, Topic& t, proto::Frame::Reader frame,
                           const Layout& layout, const FrameMeta& meta,
                           std::vector<UniqueFd>& fds) {
  const std::uint64_t sequence = frame.getSequence();
  if (fds.size() != kFdsPerMessage) {
    return refuse(
        Code::WRONG_FD_COUNT,
        "a Publish carries exactly one fd, this one carried " + std::to_string(fds.size()), t.name,
        sequence);
  }
  if (auto ok = check_kind(t, layout, sequence); !ok) return ok;
  auto accepted = accept_frame(frame, fds, t.guarantee);
  if (!accepted) {
    return refuse(wire_error_code(accepted.error()), accepted.error().message(), t.name, sequence);
  }
  const VerifiedBuffer& verified = accepted->verified;
  const bool kept = !t.subscribers.empty() || options_.keep_last_frame;
  // Only a frame the broker keeps pins memory (with no subscriber it is closed right away).
  if (kept) {
    auto ok = check_pinned(*client.account, verified.size, options_.limits.max_pinned_bytes, t.name,
                           sequence);
    if (!ok) return ok;
  }
  t.last_sequence = sequence;
  ++t.frames;
  t.bytes += accepted->extent;
  if (!kept) {
    // Its last close may free the whole buffer: off the event loop when that is slow.
    DeferredFd(std::move(accepted->fd), closer_, verified.size);
    return {};
  }
  // Consumers get a read-only open of the memfd of the broker's own, not the producer's file
  // description: it cannot write whatever the seals, and shares no flags with the producer's.
  auto read_only = reopen_read_only(accepted->fd.get());
  if (!read_only) {
    return refuse(wire_error_code(read_only.error()), read_only.error().message(), t.name,
                  sequence);
  }
  auto record = std::make_shared<FrameRecord>();
  record->fd = DeferredFd(std::move(*read_only), closer_, verified.size);
  record->layout = layout;
  record->guarantee = t.guarantee;
  record->sequence = sequence;
  record->timestamp_ns = frame.getTimestampNs();
  record->bytes = verified.size;
  record->charge = Charge(client.account, verified.size);
  keep_meta(*record, meta);
  FramePtr shared = std::move(record);
  if (options_.keep_last_frame) t.last = shared;  // fd frames only: never a pool slot
  fan_out(client, t, std::move(shared));
  return {};
}

Outcome Router::publish_slot(ClientState& client, Topic& t, proto::Frame::Reader frame,
                             const Layout& layout, const FrameMeta& meta) {
  const std::uint64_t sequence = frame.getSequence();
  const std::uint32_t id = frame.getPool();
  const std::uint32_t slot = frame.getSlot();
  auto it = client.pools.find(id);
  if (it == client.pools.end() || it->second->topic != t.name) {
    return refuse(
        Code::UNKNOWN_POOL,
        "pool " + std::to_string(id) + " is not one of this client's pools for '" + t.name + "'",
        t.name, sequence);
  }
  PoolRecord& pool = *it->second;
  if (slot >= pool.slot_count) {
    return refuse(Code::UNKNOWN_POOL,
                  "slot " + std::to_string(slot) + " of pool " + std::to_string(id) +
                      ", a pool of " + std::to_string(pool.slot_count) + " slots",
                  t.name, sequence);
  }
  if (pool.busy[slot]) {
    return refuse(Code::SLOT_BUSY,
                  "slot " + std::to_string(slot) + " of pool " + std::to_string(id) +
                      " is still held by a consumer; publish it again only after SlotFree",
                  t.name, sequence);
  }
  if (auto ok = check_kind(t, layout, sequence); !ok) return ok;
  auto extent = validate_layout(layout, pool.slot_size);
  if (!extent) {
    return refuse(
        Code::INVALID_LAYOUT,
        "slot of " + std::to_string(pool.slot_size) + " bytes: " + extent.error().message(), t.name,
        sequence);
  }
  pool.busy[slot] = true;
  t.last_sequence = sequence;
  ++t.frames;
  t.bytes += *extent;
  auto record = std::make_shared<FrameRecord>();
  record->layout = layout;
  record->guarantee = Guarantee::pool;
  record->sequence = sequence;
  record->timestamp_ns = frame.getTimestampNs();
  record->pool = it->second;
  record->slot = slot;
  record->bytes = pool.slot_size;
  keep_meta(*record, meta);
  // With no subscriber, fan_out held the last reference: the slot is free again on return.
  fan_out(client, t, std::move(record));
  // The producer has no slot left: once this event's deliveries are out, see who is behind.
  if (pool.all_busy()) dry_pools_.push_back(it->second);
  return {};
}

void Router::settle() {
  services_.settle(wakeups_);
  for (const PoolPtr& pool : std::exchange(dry_pools_, {})) {
    if (!pool->all_busy()) continue;
    // Frames of it still queued (not delivered at the end of the event) for drop-oldest
    // subscribers give their slots up, counted as drops: such a subscriber is behind, and holds
    // back no one beyond the slots it holds, bounded by its pool window (registry.hpp).
    if (Topic* t = registry_.find(pool->topic); t != nullptr && pool->owner != nullptr) {
      for (Subscription* sub : t->subscribers) {
        if (sub->policy == Backpressure::drop_oldest) sub->drop_queued_frames_of(*pool);
      }
    }
    // Still dry: the slots are held (or queued for block-producer subscribers). judge_holds
    // judges holders stuck past the deadline by how long this lasts.
    if (pool->all_busy() && !pool->dry_since) pool->dry_since = std::chrono::steady_clock::now();
  }
}

void Router::fan_out(const ClientState& producer, Topic& t, FramePtr frame) {
  if (log_.enabled(LogLevel::debug)) {
    const std::string where = frame->pool ? "slot " + std::to_string(frame->slot) + " of pool " +
                                                std::to_string(frame->pool->id)
                                          : std::to_string(frame->bytes) + " bytes";
    log_.debug(producer.describe() + " published frame " + std::to_string(frame->sequence) +
               " of '" + t.name + "' (" + where + ") to " + std::to_string(t.subscribers.size()) +
               " subscribers");
  }
  for (Subscription* sub : t.subscribers) {
    if (frame->pool != nullptr && sub->on_channel()) continue;  // it had it on its channel
    sub->client->outbox.enqueue(*sub, Pending{frame, {}, nullptr});
  }
}

Outcome Router::register_pool(ClientState& client, proto::RegisterPool::Reader reg,
                              std::vector<UniqueFd>& fds) {
  const std::string name = text_of(reg.getTopic());
  const std::uint32_t slots = reg.getSlotCount();
  const std::uint64_t slot_size = reg.getSlotSize();
  const Limits& limits = options_.limits;
  // Version 6: no topic is a pool for the client's frames of calls (section 16).
  const bool for_calls = name.empty() && client.version >= 6;
  Topic* t = for_calls ? nullptr : registry_.find(name);
  if (!for_calls && (t == nullptr || t->producer != &client)) {
    return refuse(Code::UNKNOWN_TOPIC,
                  "pool for '" + printable(name) + "', which this client has not advertised",
                  printable(name));
  }
  if (t != nullptr && t->guarantee != Guarantee::pool) {
    return refuse(Code::GUARANTEE_MISMATCH,
                  "topic '" + name +
                      "' was advertised with the sealed guarantee; pools need the pool guarantee",
                  name);
  }
  if (client.pools.size() >= limits.max_pools_per_client) {
    return refuse(Code::LIMIT_EXCEEDED,
                  "a client may register at most " + std::to_string(limits.max_pools_per_client) +
                      " pools (--max-pools)",
                  name);
  }
  if (fds.size() != kFdsPerMessage) {
    return refuse(
        Code::WRONG_FD_COUNT,
        "a RegisterPool carries exactly one fd, this one carried " + std::to_string(fds.size()),
        name);
  }
  if (slots == 0 || slots > limits.max_pool_slots) {
    return refuse(Code::LIMIT_EXCEEDED,
                  "a pool has 1 to " + std::to_string(limits.max_pool_slots) +
                      " slots (--max-pool-slots), not " + std::to_string(slots),
                  name);
  }
  auto accepted = accept_pool(reg.getFd(), slots, slot_size, fds);
  if (!accepted) return refuse(wire_error_code(accepted.error()), accepted.error().message(), name);
  const VerifiedBuffer& verified = accepted->verified;
  if (auto ok = check_pinned(*client.account, verified.size, limits.max_pinned_bytes, name, 0);
      !ok) {
    return ok;
  }
  // As for fd frames: consumers get a read-only open of the broker's own.
  auto read_only = reopen_read_only(accepted->fd.get());
  if (!read_only)
    return refuse(wire_error_code(read_only.error()), read_only.error().message(), name);
  auto pool = std::make_shared<PoolRecord>();
  pool->charge = Charge(client.account, verified.size);
  pool->id = registry_.next_pool_id();
  pool->topic = name;
  pool->fd = DeferredFd(std::move(*read_only), closer_);
  pool->slot_count = slots;
  pool->slot_size = slot_size;
  pool->owner = &client;
  pool->owner_id = client.id;
  pool->busy.assign(slots, false);
  pool->free_queued.assign(slots, false);
  client.pools.emplace(pool->id, pool);
  // Consumers on channels meet the pool in a descriptor: they get it first.
  if (t != nullptr) {
    for (Subscription* sub : t->subscribers) {
      if (sub->on_channel()) sub->client->outbox.attach_pool(pool);
    }
  }

  ControlMessageBuilder message;
  auto registered = message.initRoot<proto::Message>().initPoolRegistered();
  registered.setTopic(name);
  registered.setPool(pool->id);
  client.outbox.post(message);
  log_.info(client.describe() + " registered pool " + std::to_string(pool->id) +
            (for_calls ? std::string(" for calls") : " for '" + name + "'") + ": " +
            std::to_string(slots) + " slots of " + std::to_string(slot_size) + " bytes" +
            (verified.huge_pages ? " (huge pages)" : ""));
  return {};
}

}  // namespace shmfd::broker
