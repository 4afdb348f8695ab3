#include "registry.hpp"

#include "client_state.hpp"
#include "shmfd/wire/channel.hpp"

namespace shmfd::broker {

void PoolRecord::release_slot(std::uint32_t slot) {
  busy[slot] = false;
  dry_since.reset();
  if (owner != nullptr) owner->outbox.slot_free(id, slot);
}

std::size_t Subscription::queued_frames() const {
  return static_cast<std::size_t>(std::count_if(
      pending.begin(), pending.end(), [](const Pending& p) { return p.frame != nullptr; }));
}

Result<Topic*> Registry::topic(const std::string& name) {
  if (Topic* t = find(name)) return t;
  if (topics_.size() >= max_topics_) {
    return fail(Errc::limit_exceeded, "the broker has reached its limit of " +
                                          std::to_string(max_topics_) + " topics (--max-topics)");
  }
  auto t = std::make_unique<Topic>();
  t->name = name;
  Topic* raw = t.get();
  topics_.emplace(name, std::move(t));
  return raw;
}

Topic* Registry::find(std::string_view name) {
  auto it = topics_.find(name);
  return it == topics_.end() ? nullptr : it->second.get();
}

void count_channel_frames(Topic& topic) {
  // Each of the topic's channels says the same figures, written as they change: the highest.
  Topic::ChannelCounted& seen = topic.channel_counted;
  ChannelCounts now;
  for (const Subscription* sub : topic.subscribers) {
    const ChannelRecord* c = sub->channel.get();
    if (c == nullptr || !c->producer_page || topic.producer == nullptr ||
        c->producer_id != topic.producer->id) {
      continue;  // a channel of an earlier producer was counted as it went
    }
    const ChannelCounts p = channel_counts(*c->producer_page);
    now.frames = std::max(now.frames, p.frames);
    now.bytes = std::max(now.bytes, p.bytes);
  }
  if (topic.producer == nullptr) return;
  if (seen.producer != topic.producer->id) seen = {topic.producer->id, 0, 0};
  // Figures that go back (a producer that lies, or none yet on a new page) count nothing.
  if (now.frames > seen.frames) topic.frames += now.frames - std::exchange(seen.frames, now.frames);
  if (now.bytes > seen.bytes) topic.bytes += now.bytes - std::exchange(seen.bytes, now.bytes);
}

void Registry::release(Topic* topic) {
  if (topic->producer == nullptr && topic->subscribers.empty()) topics_.erase(topic->name);
}

}  // namespace shmfd::broker
