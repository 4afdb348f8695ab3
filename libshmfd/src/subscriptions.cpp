// Subscriptions: a consumer's books of each topic (subscriptions.hpp).
#include "subscriptions.hpp"

#include <algorithm>

namespace shmfd::detail {

std::uint32_t prefetch_of(Backpressure policy, std::uint32_t version) {
  return policy != Backpressure::block_producer && version >= 4 ? 1 : 0;
}

void Subscriptions::add(std::string_view topic, std::uint32_t depth, Backpressure policy,
                        std::uint32_t version) {
  Subscription& sub = topics_[std::string(topic)];
  sub = Subscription{};
  sub.depth = depth;
  sub.policy = policy;
  sub.prefetch = prefetch_of(policy, version);
}

void Subscriptions::erase(std::string_view topic) {
  if (auto it = topics_.find(topic); it != topics_.end()) topics_.erase(it);
}

Status Subscriptions::renew(
    std::uint32_t version,
    const std::function<Status(const std::string&, const Subscription&)>& subscribe) {
  for (auto& [topic, sub] : topics_) {
    if (auto ok = subscribe(topic, sub); !ok) return ok;
    sub.prefetch = prefetch_of(sub.policy, version);
    sub.handed = sub.reported = 0;  // counts since this Subscribe
    sub.dropped_before = sub.dropped;
    sub.renewed = true;
  }
  return {};
}

std::uint64_t Subscriptions::account(const std::string& topic, std::uint64_t sequence,
                                     std::uint64_t reported) {
  auto it = topics_.find(topic);
  if (it == topics_.end()) return reported;
  Subscription& st = it->second;
  if (sequence == 0) {  // an end of stream: a count, and no frame
    st.dropped = std::max(st.dropped, st.dropped_before + reported);
    return st.dropped;
  }
  // After a reconnect, a producer that kept its numbering shows what was lost: the frames
  // between the last one before and the first one after, whichever path each came on.
  if (st.renewed && sequence > st.last_sequence + 1 && st.last_sequence != 0) {
    st.dropped_before += sequence - st.last_sequence - 1;
  }
  st.renewed = false;
  st.last_sequence = sequence;
  st.dropped = st.dropped_before + reported;
  return st.dropped;
}

void Subscriptions::handed(const Frame& frame) {
  auto it = topics_.find(frame.topic());
  if (it == topics_.end() || it->second.prefetch == 0) return;
  ++it->second.handed;
  reads_due_ = true;
}

void Subscriptions::report_reads(BrokerLink& link) {
  if (!reads_due_) return;
  reads_due_ = false;
  for (auto& [topic, sub] : topics_) {
    if (sub.handed == sub.reported) continue;
    ControlMessageBuilder message;
    auto read = message.initRoot<proto::Message>().initRead();
    read.setTopic(topic);
    read.setCount(sub.handed);
    if (!link.send(message)) return;
    sub.reported = sub.handed;
  }
}

}  // namespace shmfd::detail
