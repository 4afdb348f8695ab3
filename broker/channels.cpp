// Channels (docs/PROTOCOL.md, section 14): the broker sets each up between a pool topic's
// producer and one subscriber, verifies both pages, and hands each side the other's, opened
// read-only. From the producer's ChannelStarted on, the topic's pool frames reach that
// subscriber on the channel and never pass through here; the broker keeps the pages mapped to
// show progress, tells the producer whether anyone still needs frames through the broker
// (Route), and closes channels when either side goes.
#include <bit>

#include "router.hpp"
#include "shmfd/verify.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::broker {

using Code = proto::ErrorCode;

namespace {

proto::ChannelSide to_proto(ChannelSide side) {
  return side == ChannelSide::producer ? proto::ChannelSide::PRODUCER
                                       : proto::ChannelSide::CONSUMER;
}

// `depth`: what the consumer may hold at once, its queue depth within --max-slots-held.
void post_request(ClientState& to, const ChannelRecord& c, ChannelSide side,
                  const Subscription& sub, std::uint32_t depth) {
  ControlMessageBuilder message;
  auto request = message.initRoot<proto::Message>().initChannelRequest();
  request.setChannel(c.id);
  request.setTopic(c.topic);
  request.setSide(to_proto(side));
  request.setCapacity(c.capacity);
  request.setQueueDepth(depth);
  request.setBackpressure(shmfd::to_proto(sub.policy));
  request.setConsumerSkips(side == ChannelSide::producer && c.consumer->version >= 4);
  if (to.version >= 5) request.setMetaBytes(c.meta_bytes);
  to.outbox.post(message);
}

void post_close(ClientState& to, std::uint32_t channel, const std::string& topic,
                const std::string& why, bool reclaim) {
  ControlMessageBuilder message;
  auto close = message.initRoot<proto::Message>().initChannelClose();
  close.setChannel(channel);
  close.setTopic(topic);
  close.setReason(why);
  close.setReclaim(reclaim);
  to.outbox.post(message);
}

void post_layout(ClientState& to, const std::string& topic, std::uint64_t producer,
                 std::uint32_t id, const Layout& layout) {
  ControlMessageBuilder message;
  auto define = message.initRoot<proto::Message>().initDefineLayout();
  define.setTopic(topic);
  define.setId(id);
  define.setProducer(producer);
  layout_to_proto(layout, define.initLayout());
  to.outbox.post(message);
}

}  // namespace

bool Router::closed_before(std::uint32_t id) const {
  // Ids are handed out in order (wrapping after 2^32 channels): one below the next to hand out
  // and not open has closed.
  return id != 0 && id < next_channel_ && channels_.count(id) == 0;
}

void Router::offer_channel(Subscription& sub) {
  Topic* t = sub.topic;
  if (t == nullptr || sub.channel != nullptr || t->producer == nullptr || !t->producer->channels ||
      !sub.client->channels || t->guarantee != Guarantee::pool) {
    return;
  }
  auto c = std::make_shared<ChannelRecord>();
  c->id = next_channel_++;
  if (next_channel_ == 0) next_channel_ = 1;  // 0 is no channel
  c->topic = t->name;
  c->producer = t->producer;
  c->producer_id = t->producer->id;
  c->consumer = sub.client;
  c->sub = &sub;
  // The ring holds every frame the consumer may hold at once, and a few more to read ahead; for
  // drop-oldest, also the newest `depth` frames behind those it holds (section 14, Backpressure).
  const std::uint32_t frames = sub.policy == Backpressure::drop_oldest && sub.client->version >= 4
                                   ? 2 * sub.depth
                                   : sub.depth;
  c->capacity = std::min(kMaxChannelCapacity, std::bit_ceil(std::max<std::uint32_t>(frames, 8)));
  // Metadata travels on the channel only between two clients of version 5; an older consumer
  // gets none (as through the broker), and an older producer sends none.
  if (t->producer->version >= 5 && sub.client->version >= 5) {
    c->meta_bytes = channel_meta_bytes(t->options.max_header_bytes);
  }
  sub.channel = c;
  channels_[c->id] = c;
  const std::uint32_t depth = std::min(sub.depth, options_.limits.max_slots_held);
  post_request(*c->producer, *c, ChannelSide::producer, sub, depth);
  post_request(*c->consumer, *c, ChannelSide::consumer, sub, depth);
  log_.debug("channel " + std::to_string(c->id) + " of '" + t->name + "' offered to " +
             c->producer->describe() + " and " + c->consumer->describe());
}

void Router::close_channel(Subscription& sub, const std::string& why, bool reclaim,
                           bool tell_consumer) {
  if (sub.channel == nullptr) return;
  if (sub.topic != nullptr) broker::count_channel_frames(*sub.topic);  // before its page goes
  ChannelPtr c = std::exchange(sub.channel, nullptr);
  channels_.erase(c->id);
  // Not opened for the consumer yet: it never will be.
  std::erase_if(sub.pending, [&](const Pending& p) { return p.channel == c; });
  if (c->producer != nullptr && clients_.count(c->producer->id) != 0 &&
      c->producer->produced.count(sub.topic) != 0) {
    post_close(*c->producer, c->id, c->topic, why, reclaim);
    if (!reclaim) lingering_.push_back({c->id, c->consumer->id, c->producer->id, c->topic});
  }
  if (tell_consumer) post_close(*c->consumer, c->id, c->topic, why, reclaim);
  log_.debug("channel " + std::to_string(c->id) + " of '" + c->topic + "' closed: " + why);
}

void Router::update_route(Topic& t) {
  if (t.producer == nullptr || !t.producer->channels) return;
  const bool via = std::any_of(t.subscribers.begin(), t.subscribers.end(),
                               [](const Subscription* s) { return !s->on_channel(); });
  if (via == t.via_broker) return;
  t.via_broker = via;
  ControlMessageBuilder message;
  auto route = message.initRoot<proto::Message>().initRoute();
  route.setTopic(t.name);
  route.setViaBroker(via);
  t.producer->outbox.post(message);
}

Outcome Router::channel_page(ClientState& client, proto::ChannelPage::Reader page,
                             std::vector<UniqueFd>& fds) {
  const std::uint32_t id = page.getChannel();
  const ChannelSide side = page.getSide() == proto::ChannelSide::PRODUCER ? ChannelSide::producer
                                                                          : ChannelSide::consumer;
  const char* side_name = side == ChannelSide::producer ? "producer" : "consumer";
  if (fds.size() != kFdsPerMessage) {
    return refuse(Code::WRONG_FD_COUNT, "a ChannelPage carries exactly one fd, this one carried " +
                                            std::to_string(fds.size()));
  }
  auto it = channels_.find(id);
  // A channel that closed while the page was on its way (its consumer left or unsubscribed):
  // nothing to do, and the page closes with `fds`.
  if (it == channels_.end() && closed_before(id)) return {};
  if (it == channels_.end() ||
      (side == ChannelSide::producer ? it->second->producer : it->second->consumer) != &client) {
    return refuse(Code::UNEXPECTED_MESSAGE, "ChannelPage for channel " + std::to_string(id) +
                                                " as its " + side_name +
                                                ", which this client was not asked for");
  }
  ChannelRecord& c = *it->second;
  auto& view = side == ChannelSide::producer ? c.producer_page : c.consumer_page;
  if (view) {
    return refuse(
        Code::UNEXPECTED_MESSAGE,
        "ChannelPage for channel " + std::to_string(id) + " sent twice by its " + side_name,
        c.topic);
  }
  // Verified as every fd from outside: a memfd, sealed at the pool level, of the size its
  // capacity needs, with the header of its side. The peer gets a read-only open of our own.
  const auto refused = [&](const Error& e) {
    Subscription& sub = *c.sub;
    auto r = refuse(wire_error_code(e),
                    "channel " + std::to_string(id) + " " + side_name + " page: " + e.message(),
                    c.topic);
    close_channel(sub, std::string("the ") + side_name + "'s page was refused: " + e.message(),
                  true, true);
    update_route(*sub.topic);
    return r;
  };
  auto for_us = reopen_read_only(fds[0].get());
  if (!for_us) return refused(for_us.error());
  auto for_peer = reopen_read_only(fds[0].get());
  if (!for_peer) return refused(for_peer.error());
  auto accepted =
      PeerPage::accept(std::move(*for_us), side, side == ChannelSide::producer ? c.meta_bytes : 0);
  if (!accepted) return refused(accepted.error());
  if (accepted->capacity() != c.capacity) {
    return refused(Error(Errc::invalid_size, "a ring of " + std::to_string(accepted->capacity()) +
                                                 " entries, asked for " +
                                                 std::to_string(c.capacity)));
  }
  view = std::move(*accepted);
  (side == ChannelSide::producer ? c.producer_fd : c.consumer_fd) =
      std::make_shared<UniqueFd>(std::move(*for_peer));
  if (c.producer_page && c.consumer_page) {
    ControlMessageBuilder message;
    auto open = message.initRoot<proto::Message>().initChannelOpen();
    open.setChannel(c.id);
    open.setTopic(c.topic);
    open.setFd(0);
    c.producer->outbox.post(message, c.consumer_fd->get(), it->second);
    c.opened = true;
  }
  return {};
}

Outcome Router::channel_started(ClientState& client, proto::ChannelStarted::Reader started) {
  const std::uint32_t id = started.getChannel();
  auto it = channels_.find(id);
  if (it == channels_.end() && closed_before(id)) return {};  // closed on the way: as above
  if (it == channels_.end() || it->second->producer != &client || !it->second->opened ||
      it->second->started) {
    return refuse(Code::UNEXPECTED_MESSAGE, "ChannelStarted for channel " + std::to_string(id) +
                                                ", which is not one this client was given, or "
                                                "was started already");
  }
  const ChannelPtr& c = it->second;
  Subscription& sub = *c->sub;
  Topic& t = *sub.topic;
  c->started = true;
  // Before the channel opens for the consumer: every pool and layout a descriptor may name.
  for (const auto& [pool_id, pool] : client.pools) {
    if (pool->topic == t.name) sub.client->outbox.attach_pool(pool);
  }
  for (const auto& [layout_id, layout] : t.layouts)
    post_layout(*sub.client, t.name, client.id, layout_id, layout);
  sub.client->outbox.enqueue(sub, Pending{nullptr, {}, c});
  update_route(t);
  log_.info("channel " + std::to_string(id) + " of '" + t.name + "' open: " + client.describe() +
            " to " + sub.client->describe());
  return {};
}

Outcome Router::define_layout(ClientState& client, proto::DefineLayout::Reader define) {
  const std::string name = text_of(define.getTopic());
  const std::uint32_t id = define.getId();
  Topic* t = registry_.find(name);
  if (t == nullptr || t->producer != &client) {
    return refuse(Code::UNKNOWN_TOPIC,
                  "DefineLayout for '" + printable(name) + "', which this client does not produce",
                  printable(name));
  }
  auto layout = layout_from_proto(define.getLayout());
  if (!layout) return refuse(Code::INVALID_LAYOUT, layout.error().message(), name);
  if (auto ok = layout_extent(*layout); !ok) {
    return refuse(Code::INVALID_LAYOUT,
                  "layout " + std::to_string(id) + ": " + ok.error().message(), name);
  }
  auto known = std::find_if(t->layouts.begin(), t->layouts.end(),
                            [&](const auto& l) { return l.first == id; });
  if (known != t->layouts.end() && !(known->second == *layout)) {
    return refuse(Code::INVALID_LAYOUT,
                  "layout " + std::to_string(id) + " of '" + name +
                      "' is defined already, as another layout; ids are not reused",
                  name);
  }
  if (known == t->layouts.end()) {
    if (t->layouts.size() >= kMaxChannelLayouts) {
      return refuse(Code::LIMIT_EXCEEDED,
                    "a topic may define at most " + std::to_string(kMaxChannelLayouts) +
                        " layouts for its channels",
                    name);
    }
    t->layouts.emplace_back(id, *layout);
    for (Subscription* sub : t->subscribers) {
      if (sub->on_channel()) post_layout(*sub->client, name, client.id, id, *layout);
    }
  }
  return {};
}

}  // namespace shmfd::broker
