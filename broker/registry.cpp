#include "registry.hpp"

#include "client_state.hpp"

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

void Registry::release(Topic* topic) {
  if (topic->producer == nullptr && topic->subscribers.empty()) topics_.erase(topic->name);
}

}  // namespace shmfd::broker
