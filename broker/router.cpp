// Topics and subscriptions: advertise, subscribe, their undoing, releases, and a client's
// leaving. Frames and pools are in publish.cpp.
#include "router.hpp"

#include <algorithm>

#include "access.hpp"
#include "introspection.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::broker {

using Code = proto::ErrorCode;

Router::Router(Registry& registry, const Options& options, const Logger& log, CloserPtr closer,
               Wakeups& wakeups)
    : registry_(registry),
      options_(options),
      log_(log),
      closer_(std::move(closer)),
      wakeups_(wakeups),
      services_(options, log, closer_) {}

void Router::join(ClientState& client) {
  clients_.emplace(client.id, &client);
}

void Router::remove(ClientState& client) {
  leave(client);
  clients_.erase(client.id);
}

void Router::leave(ClientState& client) {
  services_.leave(client);
  const auto produced = client.produced;  // stop_producing erases from it
  for (Topic* t : produced)
    stop_producing(client, t, "the producer, " + client.describe() + ", left");
  for (auto& [id, pool] : client.pools) {
    pool->owner = nullptr;  // pools of no topic
    // A pool for calls: every client it was attached to may unmap it once it lets go of the
    // frames of it it holds.
    for (std::uint64_t holder : std::exchange(pool->attached, {})) {
      auto other = clients_.find(holder);
      if (other == clients_.end()) continue;
      ControlMessageBuilder message;
      message.initRoot<proto::Message>().initPoolDetach().setPool(id);
      other->second->outbox.post(message);
      other->second->outbox.forget_pool(id);
    }
  }
  client.pools.clear();
  for (const auto& weak : client.call_pools_attached) {
    if (auto pool = weak.lock()) std::erase(pool->attached, client.id);
  }
  client.call_pools_attached.clear();
  client.call_frames.clear();  // their slots are free: SlotFree to their owners
  // Channels it was the consumer of: the producer takes back what it held.
  for (auto it = lingering_.begin(); it != lingering_.end();) {
    if (it->consumer != client.id && it->producer != client.id) {
      ++it;
      continue;
    }
    if (it->consumer == client.id) {
      if (auto p = clients_.find(it->producer); p != clients_.end()) {
        ControlMessageBuilder message;
        auto close = message.initRoot<proto::Message>().initChannelClose();
        close.setChannel(it->channel);
        close.setTopic(it->topic);
        close.setReason("the consumer, " + client.describe() + ", left");
        close.setReclaim(true);
        p->second->outbox.post(message);
      }
    }
    it = lingering_.erase(it);
  }
  for (auto& [name, sub] : client.subscriptions) {
    Topic* t = sub->topic;
    if (t == nullptr) continue;  // unsubscribed already; only held frames remained
    close_channel(*sub, "the consumer, " + client.describe() + ", left", true, false);
    std::erase(t->subscribers, sub.get());
    update_route(*t);
    if (t->producer != nullptr) wakeups_.reader(t->producer->id);
    registry_.release(t);
  }
  client.subscriptions.clear();  // frees the slots it held, queueing SlotFree for producers
}

namespace {

// Version 5: tells a subscriber what the topic's producer declared, before its frames.
void post_topic_advertised(ClientState& to, const Topic& t) {
  if (to.version < 5 || t.producer == nullptr) return;
  ControlMessageBuilder message;
  auto advertised = message.initRoot<proto::Message>().initTopicAdvertised();
  advertised.setTopic(t.name);
  advertised.setKind(to_proto(t.kind));
  advertised.setGuarantee(to_proto(t.guarantee));
  topic_options_to_proto(t.options, advertised.initOptions());
  advertised.setProducer(t.producer->id);
  to.outbox.post(message);
}

}  // namespace

Outcome Router::advertise(ClientState& client, proto::Advertise::Reader advertise) {
  const std::string name = text_of(advertise.getTopic());
  auto kind = layout_kind_from_proto(advertise.getKind());
  auto guarantee = guarantee_from_proto(advertise.getGuarantee());
  if (auto ok = check_topic_name(name); !ok)
    return refuse(Code::INVALID_TOPIC_NAME, ok.error().message(), printable(name));
  if (!guarantee) return refuse(Code::MALFORMED_MESSAGE, guarantee.error().message(), name);
  if (!kind) return refuse(Code::MALFORMED_MESSAGE, kind.error().message(), name);
  // Options only from version 5: an older client's message has no such field to set.
  TopicOptions topic_options;
  if (client.version >= 5 && advertise.hasOptions()) {
    topic_options = topic_options_from_proto(advertise.getOptions());
    if (auto ok = check_topic_options(topic_options); !ok) {
      return refuse(Code::INVALID_METADATA, ok.error().message(), name);
    }
  }
  if (auto ok = check_access(options_.policy.get(), client, Right::publish, name); !ok) return ok;
  Topic* t = registry_.find(name);
  if (t != nullptr && t->producer != nullptr && t->producer != &client && t->producer->hung_up &&
      t->producer->hung_up()) {
    // A producer restarted after a crash often advertises before the broker has read the
    // old connection's end of file: that one is gone, let the new one take over now. The old
    // client gives the topic up here and is closed at the end of this event.
    ClientState& old = *t->producer;
    wakeups_.close(old.id,
                   "hung up (noticed when " + client.describe() + " advertised '" + name + "')");
    stop_producing(old, t, "the producer, " + old.describe() + ", left");
  }
  auto topic = registry_.topic(name);  // the old producer's leaving may have removed the topic
  if (!topic) return refuse(Code::LIMIT_EXCEEDED, topic.error().message(), name);
  t = *topic;
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initAdvertised().setTopic(name);
  if (t->producer == &client) {
    // Advertising again is harmless when nothing changes; a topic's kind and guarantee are
    // fixed while it has a producer, since subscribers and pools rely on them.
    if (t->kind != *kind || t->guarantee != *guarantee || t->options != topic_options) {
      return refuse(Code::ALREADY_ADVERTISED,
                    "this client already produces '" + name + "' as " +
                        std::string(to_string(t->kind)) + ", " +
                        std::string(to_string(t->guarantee)) +
                        (t->options != topic_options ? " with other topic options" : "") +
                        "; Unadvertise it to change that",
                    name);
    }
    client.outbox.post(message);
    return {};
  }
  if (t->producer != nullptr) {
    // A state conflict, not misbehaviour: it counts no strike (the rate limit bounds retries).
    auto conflict =
        refuse(Code::TOPIC_TAKEN,
               "topic '" + name + "' already has a producer: " + t->producer->describe(), name);
    conflict.value().strike = false;
    return conflict;
  }
  t->producer = &client;
  t->kind = *kind;
  t->guarantee = *guarantee;
  t->options = std::move(topic_options);
  t->last_sequence = 0;  // sequences are the producer's: a new one starts afresh
  t->via_broker = true;  // what a producer assumes until told otherwise
  client.produced.insert(t);
  client.outbox.post(message);
  for (Subscription* s : t->subscribers) post_topic_advertised(*s->client, *t);
  update_route(*t);
  for (Subscription* s : t->subscribers) offer_channel(*s);
  log_.info(client.describe() + " produces '" + name + "' (" + std::string(to_string(*kind)) +
            ", " + std::string(to_string(*guarantee)) + ")");
  return {};
}

Outcome Router::unadvertise(ClientState& client, proto::Unadvertise::Reader unadvertise) {
  const std::string name = text_of(unadvertise.getTopic());
  Topic* t = registry_.find(name);
  if (t == nullptr || t->producer != &client) {
    return refuse(Code::UNKNOWN_TOPIC,
                  "unadvertise '" + printable(name) + "', which this client does not produce",
                  printable(name));
  }
  stop_producing(client, t, "the producer, " + client.describe() + ", stopped producing it");
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initUnadvertised().setTopic(name);
  client.outbox.post(message);
  log_.info(client.describe() + " no longer produces '" + name + "'");
  return {};
}

void Router::stop_producing(ClientState& producer, Topic* t, const std::string& why) {
  broker::count_channel_frames(*t);  // its last frames on channels, before the pages go
  t->producer = nullptr;
  t->last.reset();
  // Its channels end with it: each consumer reads what is on its channel, then the end of
  // the stream queued below (a channel not yet open for it opens first, in queue order).
  for (Subscription* s : t->subscribers) {
    if (s->channel) channels_.erase(s->channel->id);
    s->channel.reset();
  }
  std::erase_if(lingering_, [&](const Lingering& l) {
    return l.producer == producer.id && l.topic == t->name;
  });
  t->layouts.clear();
  for (Subscription* s : t->subscribers)
    s->client->outbox.enqueue(*s, Pending{nullptr, why, nullptr, producer.id});
  producer.produced.erase(t);
  // Pools live on while frames of them are queued or held; their freed slots go nowhere now.
  for (auto it = producer.pools.begin(); it != producer.pools.end();) {
    if (it->second->topic != t->name) {
      ++it;
      continue;
    }
    it->second->owner = nullptr;
    producer.outbox.forget_slot_frees_of(it->first);
    it = producer.pools.erase(it);
  }
  registry_.release(t);
}

Outcome Router::subscribe(ClientState& client, proto::Subscribe::Reader subscribe) {
  const std::string name = text_of(subscribe.getTopic());
  auto policy = backpressure_from_proto(subscribe.getBackpressure());
  const Limits& limits = options_.limits;
  if (auto ok = check_topic_name(name); !ok)
    return refuse(Code::INVALID_TOPIC_NAME, ok.error().message(), printable(name));
  if (!policy) return refuse(Code::MALFORMED_MESSAGE, policy.error().message(), name);
  if (auto ok = check_access(options_.policy.get(), client, Right::subscribe, name); !ok) return ok;
  auto& subscriptions = client.subscriptions;
  auto existing = subscriptions.find(name);
  if (existing != subscriptions.end() && existing->second->topic != nullptr) {
    return refuse(Code::ALREADY_SUBSCRIBED, "already subscribed to '" + name + "'", name);
  }
  if (existing == subscriptions.end() &&
      subscriptions.size() >= limits.max_subscriptions_per_client) {
    return refuse(Code::LIMIT_EXCEEDED,
                  "a client may hold at most " +
                      std::to_string(limits.max_subscriptions_per_client) +
                      " subscriptions (--max-subscriptions)",
                  name);
  }
  const std::uint32_t requested = subscribe.getQueueDepth();
  const std::uint32_t depth =
      requested == 0 ? limits.default_queue_depth : std::min(requested, limits.max_queue_depth);
  // A block-producer queue can hold one frame past its depth (the one read before it filled).
  std::size_t queued = depth + 1;
  for (const auto& [other, sub] : subscriptions) {
    if (other != name) queued += sub->depth + 1;
  }
  if (queued > limits.max_queued_fds_per_client) {
    return refuse(Code::LIMIT_EXCEEDED,
                  "queue depth " + std::to_string(depth) + " would let this client have " +
                      std::to_string(queued) + " frames queued in the broker; the limit is " +
                      std::to_string(limits.max_queued_fds_per_client) + " (--max-queued-fds)",
                  name);
  }
  auto topic = registry_.topic(name);
  if (!topic) return refuse(Code::LIMIT_EXCEEDED, topic.error().message(), name);

  // Subscribing again after Unsubscribe takes up the old entry: the frames it still holds
  // stay held, and count against the new depth.
  if (existing == subscriptions.end()) {
    existing = subscriptions.emplace(name, std::make_unique<Subscription>()).first;
  }
  Subscription& s = *existing->second;
  s.topic = *topic;
  s.client = &client;
  s.depth = depth;
  s.policy = *policy;
  // More than the depth could never be unread: the window stops the rest.
  s.prefetch = std::min(subscribe.getPrefetch(), depth);
  s.delivered_since = s.read_since = s.released_since = 0;
  (*topic)->subscribers.push_back(&s);
  // Before the answer: the producer hears that frames must come through the broker before
  // this client hears it is subscribed (and perhaps tells the producer to go ahead).
  update_route(**topic);

  ControlMessageBuilder message;
  auto subscribed = message.initRoot<proto::Message>().initSubscribed();
  subscribed.setTopic(name);
  subscribed.setQueueDepth(depth);
  client.outbox.post(message);
  if ((*topic)->producer != nullptr) post_topic_advertised(client, **topic);
  log_.info(client.describe() + " subscribes to '" + name + "' (depth " + std::to_string(depth) +
            ", " + std::string(to_string(*policy)) + ")");
  if (options_.keep_last_frame && s.topic->last) {
    client.outbox.enqueue(s, Pending{s.topic->last, {}, nullptr});
  }
  offer_channel(s);
  return {};
}

Outcome Router::unsubscribe(ClientState& client, proto::Unsubscribe::Reader unsubscribe) {
  const std::string name = text_of(unsubscribe.getTopic());
  auto it = client.subscriptions.find(name);
  if (it == client.subscriptions.end() || it->second->topic == nullptr) {
    return refuse(Code::NOT_SUBSCRIBED,
                  "unsubscribe from '" + printable(name) + "', where this client is not subscribed",
                  printable(name));
  }
  Subscription& sub = *it->second;
  Topic* t = sub.topic;
  close_channel(sub, "the consumer unsubscribed", false, false);
  std::erase(t->subscribers, &sub);
  update_route(*t);
  sub.topic = nullptr;
  sub.pending.clear();  // frames queued here are dropped (a pool slot frees if this held it last)
  // The consumer may unmap the topic's pools now: a later subscription gets their fds again.
  client.outbox.forget_pools_of(name);
  if (sub.in_flight.empty()) client.subscriptions.erase(it);
  if (t->producer != nullptr) wakeups_.reader(t->producer->id);
  registry_.release(t);
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initUnsubscribed().setTopic(name);
  client.outbox.post(message);
  log_.info(client.describe() + " unsubscribed from '" + name + "'");
  return {};
}

Outcome Router::release(ClientState& client, proto::Release::Reader release) {
  const std::string name = text_of(release.getTopic());
  const std::uint64_t sequence = release.getSequence();
  if (name.empty() && client.version >= 6) {
    // A frame of a call's pool slot, by the number it came with (section 16).
    auto held = client.call_frames.find(sequence);
    if (held == client.call_frames.end()) {
      return refuse(
          Code::NOT_HELD,
          "release of call frame " + std::to_string(sequence) + ", which this client does not hold",
          {}, sequence);
    }
    client.call_frames.erase(held);  // its slot is free here; SlotFree goes to the owner
    return {};
  }
  auto it = client.subscriptions.find(name);
  if (it == client.subscriptions.end()) {
    return refuse(Code::NOT_SUBSCRIBED,
                  "release on '" + printable(name) +
                      "', where this client is not subscribed and holds no frame",
                  printable(name), sequence);
  }
  auto& in_flight = it->second->in_flight;
  auto frame = std::find_if(in_flight.begin(), in_flight.end(),
                            [sequence](const InFlight& f) { return f.sequence == sequence; });
  if (frame == in_flight.end()) {
    return refuse(Code::NOT_HELD,
                  "release of frame " + std::to_string(sequence) + " on '" + name +
                      "', which this client does not hold",
                  name, sequence);
  }
  if (log_.enabled(LogLevel::debug)) {
    log_.debug(client.describe() + " released frame " + std::to_string(sequence) + " of '" + name +
               "'");
  }
  const bool pool_slot = frame->pool_frame != nullptr;
  ++it->second->released_since;
  in_flight.erase(frame);  // a pool frame's slot is freed here if this was the last holder
  if (it->second->topic == nullptr && in_flight.empty()) client.subscriptions.erase(it);
  client.outbox.released(pool_slot);
  return {};
}

Outcome Router::read(ClientState& client, proto::Read::Reader read) {
  const std::string name = text_of(read.getTopic());
  auto it = client.subscriptions.find(name);
  if (it == client.subscriptions.end() || it->second->topic == nullptr) {
    return refuse(Code::NOT_SUBSCRIBED,
                  "Read on '" + printable(name) + "', where this client is not subscribed",
                  printable(name));
  }
  Subscription& sub = *it->second;
  const std::uint64_t count = read.getCount();
  if (count > sub.delivered_since) {
    return refuse(Code::MALFORMED_MESSAGE,
                  "Read of " + std::to_string(count) + " frames of '" + name + "', but " +
                      std::to_string(sub.delivered_since) + " were delivered since Subscribe",
                  name);
  }
  if (count > sub.read_since) {  // an older count (reordered by nothing, but harmless) is moot
    sub.read_since = count;
    client.outbox.released(false);  // its prefetch may have room: a queued frame may go
  }
  return {};
}

Outcome Router::introspect(ClientState& client) {
  // Only the broker's own user and root may see everyone's topics and processes.
  if (auto ok = check_access(options_.policy.get(), client, Right::introspect, ""); !ok) return ok;
  count_channel_frames();
  ControlMessageBuilder message;
  fill_state(message.initRoot<proto::Message>().initBrokerState(), registry_, services_, clients_);
  client.outbox.post(message);
  return {};
}

void Router::count_channel_frames() {
  for (auto& [name, topic] : registry_.topics()) broker::count_channel_frames(*topic);
}

bool Router::must_hold(const ClientState& producer) const {
  if (services_.must_hold(producer)) return true;
  for (const Topic* t : producer.produced) {
    for (const Subscription* s : t->subscribers) {
      if (s->blocks_producer()) return true;
    }
  }
  return false;
}

}  // namespace shmfd::broker
