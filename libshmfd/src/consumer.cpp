#include "shmfd/consumer.hpp"

#include <poll.h>

#include <algorithm>
#include <climits>
#include <map>

#include "shmfd/channel.hpp"

#include "shmfd/intake.hpp"
#include "shmfd/verify.hpp"
#include "shmfd/wire.hpp"

namespace shmfd {
namespace detail {

struct PoolView {
  std::string topic;
  std::uint64_t producer = 0;  // the broker's client id of the producer that registered it
  Mapping mapping;
  std::uint64_t slot_size = 0;
  std::uint32_t slot_count = 0;
};

// A channel this consumer reads (docs/PROTOCOL.md, section 14). Shared with the frames read
// from it, which release into its page, also after the channel ended for the consumer.
struct ChannelIn {
  ChannelIn(std::uint32_t channel, std::string of, ChannelReader r)
      : id(channel), topic(std::move(of)), reader(std::move(r)) {}
  std::uint32_t id;
  std::string topic;
  ChannelReader reader;
  std::uint64_t producer = 0;         // the broker's client id of its producer
  std::uint64_t dropped_before = 0;   // dropped by the broker before the channel opened
  bool active = true;                 // still read: not unsubscribed, not ended
  std::optional<EndOfStream> ending;  // the producer's end, delivered once the ring is empty
  bool parked = false;                // a descriptor names what the socket has not told yet
  std::uint32_t parked_at = 0;        // the doorbell's count then
};

// What a Consumer and its Frames share: the connection (so a Frame can release itself after
// the Consumer moved) and the releases that found the socket full.
struct ConsumerLink {
  explicit ConsumerLink(Connection c) : connection(std::move(c)) {}

  void send_release(const std::string& topic, std::uint64_t sequence) noexcept {
    try {
      ControlMessageBuilder message;
      auto release = message.initRoot<proto::Message>().initRelease();
      release.setTopic(topic);
      release.setSequence(sequence);
      auto words = encode_message(message);
      if (unsent.empty()) {
        auto sent = connection.send(words.bytes(), {}, IoMode::non_blocking);
        if (!sent || *sent == SendStatus::sent) return;  // an error means the broker is gone
      }
      unsent.push_back(std::move(words));
    } catch (...) {
      // Out of memory while building a 40-byte message: the broker frees the slot when this
      // consumer disconnects.
    }
  }

  Status flush() {
    while (!unsent.empty()) {
      auto sent = connection.send(unsent.front().bytes());
      if (!sent) return fail(std::move(sent.error()));
      unsent.pop_front();
    }
    return {};
  }

  Connection connection;
  std::deque<EncodedMessage> unsent;
  std::deque<Event> early;  // frames that arrived while subscribe() waited for its answer
  std::map<std::uint32_t, std::shared_ptr<const PoolView>> pools;
  // Channels: pages made for the broker's requests, the channels open, what descriptors of
  // each topic may name, and the doorbell's count when the socket was last read.
  std::map<std::uint32_t, OwnPage> asked;
  std::vector<std::shared_ptr<ChannelIn>> channels;
  // By producer (its broker client id): a topic's next producer numbers its layouts afresh,
  // and its pools and layouts may arrive before the end of the last one's stream.
  std::map<std::uint64_t, FrameShapes> shapes;
  std::map<std::uint64_t, std::map<std::uint32_t, Layout>> layouts;
  std::uint32_t bell_seen = 0;
  // A broker that died rings no bell: the socket is read at least this often.
  std::chrono::steady_clock::time_point socket_read{};
  std::size_t next_channel = 0;       // round-robin position
  std::uint64_t refusals_before = 0;  // of channels no longer read

  // The pools of `topic` (of its `producer` only, unless 0) are of no more use: the stream
  // ended, or this consumer unsubscribed. Held frames keep their mapping.
  void forget_pools_of(std::string_view topic, std::uint64_t producer = 0) {
    std::erase_if(pools, [&](const auto& p) {
      const PoolView& v = *p.second;
      if (v.topic != topic || (producer != 0 && v.producer != producer)) return false;
      if (auto it = shapes.find(v.producer); it != shapes.end()) it->second.remove_pool(p.first);
      return true;
    });
  }
  // Stops reading the channels of `topic` (of its `producer` only, unless 0).
  void stop_channels_of(std::string_view topic, std::uint64_t producer = 0) {
    std::erase_if(channels, [&](const std::shared_ptr<ChannelIn>& c) {
      if (c->topic != topic || (producer != 0 && c->producer != producer)) return false;
      c->active = false;
      refusals_before += c->reader.refusals();
      layouts.erase(c->producer);
      shapes.erase(c->producer);
      return true;
    });
  }
};

}  // namespace detail

Frame& Frame::operator=(Frame&& other) noexcept {
  if (this != &other) {
    release();
    link_ = std::move(other.link_);
    topic_ = std::move(other.topic_);
    sequence_ = other.sequence_;
    timestamp_ns_ = other.timestamp_ns_;
    dropped_ = other.dropped_;
    layout_ = other.layout_;
    mapping_ = std::move(other.mapping_);
    shared_mapping_ = std::move(other.shared_mapping_);
    pool_ = std::move(other.pool_);
    view_ = other.view_;
    channel_ = std::move(other.channel_);
    pool_id_ = other.pool_id_;
    slot_ = other.slot_;
  }
  return *this;
}

Frame::~Frame() {
  release();
}

std::shared_ptr<const void> Frame::keep_mapped() {
  if (pool_) return pool_;
  if (!shared_mapping_) shared_mapping_ = std::make_shared<const Mapping>(std::move(mapping_));
  return shared_mapping_;
}

void Frame::release() noexcept {
  view_ = {};
  mapping_.reset();
  shared_mapping_.reset();
  pool_.reset();
  if (channel_) {
    // A full release ring means the producer stopped reading it: the slot stays counted as
    // ours in its books, which is the producer's own loss.
    (void)channel_->reader.release(pool_id_, slot_, sequence_);
    channel_.reset();
  }
  if (link_) link_->send_release(topic_, sequence_);
  link_.reset();
}

namespace {

Result<std::shared_ptr<const detail::PoolView>> attach_pool(proto::PoolAttach::Reader attach,
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
  auto view = std::make_shared<detail::PoolView>();
  view->topic = text_of(attach.getTopic());
  view->producer = attach.getProducer();
  view->mapping = std::move(*mapping);
  view->slot_size = attach.getSlotSize();
  view->slot_count = attach.getSlotCount();
  return std::shared_ptr<const detail::PoolView>(std::move(view));
}

// The broker's channel messages to a consumer (docs/PROTOCOL.md, section 14).
Status channel_message(detail::ConsumerLink& link, proto::Message::Reader r,
                       std::vector<UniqueFd>& fds) {
  if (r.isChannelRequest()) {
    auto request = r.getChannelRequest();
    if (request.getSide() != proto::ChannelSide::CONSUMER) {
      return fail(Errc::protocol_violation, "the broker asked a consumer for a producer's page");
    }
    auto page = OwnPage::create(ChannelSide::consumer, request.getCapacity());
    if (!page) return fail(std::move(page.error()).prefixed("channel request"));
    ControlMessageBuilder message;
    auto reply = message.initRoot<proto::Message>().initChannelPage();
    reply.setChannel(request.getChannel());
    reply.setSide(proto::ChannelSide::CONSUMER);
    reply.setFd(0);
    const int fd = page->fd();
    // A broker that has gone shows when the socket is read further (perhaps after a last
    // Error that says why): not here.
    if (!link.flush()) return {};
    if (!send_message(link.connection, message, std::span(&fd, 1))) return {};
    link.asked.insert_or_assign(request.getChannel(), std::move(*page));
    return {};
  }
  if (r.isChannelOpen()) {
    auto open = r.getChannelOpen();
    auto asked = link.asked.find(open.getChannel());
    if (asked == link.asked.end() || fds.size() != kFdsPerMessage) {
      return fail(Errc::protocol_violation, "ChannelOpen for channel " +
                                                std::to_string(open.getChannel()) +
                                                ", which was never asked for, or without its page");
    }
    // The producer's page, verified again here: a memfd sealed at the pool level, of the
    // size its header says, mapped read-only.
    auto peer = PeerPage::accept(std::move(fds[0]), ChannelSide::producer);
    if (!peer) return fail(std::move(peer.error()).prefixed("the producer's channel page"));
    auto channel = std::make_shared<detail::ChannelIn>(
        open.getChannel(), text_of(open.getTopic()),
        ChannelReader(std::move(asked->second), std::move(*peer)));
    channel->dropped_before = open.getDropped();
    channel->producer = open.getProducer();
    link.asked.erase(asked);
    link.channels.push_back(std::move(channel));
    return {};
  }
  if (r.isChannelClose()) {
    const std::uint32_t id = r.getChannelClose().getChannel();
    link.asked.erase(id);
    std::erase_if(link.channels, [&](const std::shared_ptr<detail::ChannelIn>& c) {
      if (c->id != id) return false;
      c->active = false;
      link.refusals_before += c->reader.refusals();
      return true;
    });
    return {};
  }
  auto define = r.getDefineLayout();
  auto layout = layout_from_proto(define.getLayout());
  if (!layout) return fail(std::move(layout.error()));
  auto extent = layout_extent(*layout);
  if (!extent) return fail(std::move(extent.error()));
  const std::string topic = text_of(define.getTopic());
  link.shapes[define.getProducer()].add_layout(define.getId(), *extent);
  link.layouts[define.getProducer()].insert_or_assign(define.getId(), *layout);
  return {};
}

}  // namespace

Consumer& Consumer::operator=(Consumer&& other) noexcept {
  if (this != &other) {
    drop_queued();
    link_ = std::move(other.link_);
    socket_path_ = std::move(other.socket_path_);
    client_name_ = std::move(other.client_name_);
    reconnect_ = std::move(other.reconnect_);
    channels_ = other.channels_;
    subscriptions_ = std::move(other.subscriptions_);
  }
  return *this;
}

Consumer::~Consumer() {
  drop_queued();
}

void Consumer::drop_queued() noexcept {
  if (!link_) return;
  std::deque<Event> queued;
  queued.swap(link_->early);
}  // `queued` goes here: each frame's release, and the link's last owners

Result<Consumer> Consumer::connect(const std::string& socket_path, std::string_view client_name,
                                   Channels channels) {
  const bool want = channels == Channels::automatic && channels_wanted();
  auto connection = Connection::open(socket_path, client_name, kMaxMessageBytes, want);
  if (!connection) return fail(std::move(connection.error()));
  Consumer consumer(std::make_shared<detail::ConsumerLink>(std::move(*connection)));
  consumer.channels_ = channels;
  consumer.socket_path_ = socket_path;
  consumer.client_name_ = std::string(client_name);
  return consumer;
}

Result<Event> Consumer::reconnect() {
  const auto lost = std::chrono::steady_clock::now();
  // Events read from the lost connection but not received yet: delivered before Reconnected
  // (their frames were counted when read, and their pages stay mapped). Left in the old link,
  // each frame would hold that link, and its socket, for good, and never be seen.
  std::deque<Event> before;
  for (;;) {
    for (Event& e : link_->early) before.push_back(std::move(e));
    link_->early.clear();
    const bool want = channels_ == Channels::automatic && channels_wanted();
    auto connection = Connection::reopen(socket_path_, client_name_, *reconnect_, want);
    if (!connection) return fail(std::move(connection.error()));
    // Frames held from before keep the old link: their releases go nowhere, harmlessly.
    link_ = std::make_shared<detail::ConsumerLink>(std::move(*connection));
    bool renewed = true;
    for (auto& [topic, sub] : subscriptions_) {
      auto granted = send_subscribe(topic, sub.depth, sub.policy);
      if (!granted && granted.error().is(Errc::disconnected)) {
        renewed = false;  // gone again already: start over
        break;
      }
      if (!granted) return fail(std::move(granted.error()));
      sub.dropped_before = sub.dropped;
      sub.renewed = true;
    }
    if (renewed) {
      // Then the new connection's own (frames that came while subscribe() waited).
      std::deque<Event>& queue = link_->early;
      queue.push_front(Event(Reconnected{std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - lost)}));
      for (auto it = before.rbegin(); it != before.rend(); ++it) queue.push_front(std::move(*it));
      Event first = std::move(queue.front());
      queue.pop_front();
      return first;
    }
  }
}

int Consumer::native_handle() const noexcept {
  return link_->connection.fd();
}

bool Consumer::uses_channels() const noexcept {
  return link_->connection.bell() != nullptr;
}

std::uint64_t Consumer::channel_refusals() const noexcept {
  std::uint64_t n = link_->refusals_before;
  for (const auto& c : link_->channels) n += c->reader.refusals();
  return n;
}

Result<std::uint32_t> Consumer::subscribe(std::string_view topic, std::uint32_t depth,
                                          Backpressure policy) {
  if (auto ok = check_topic_name(topic); !ok) return fail(std::move(ok.error()));
  auto granted = send_subscribe(topic, depth, policy);
  if (granted) {
    auto& sub = subscriptions_[std::string(topic)];
    sub = Subscription{};
    sub.depth = depth;
    sub.policy = policy;
  }
  return granted;
}

Result<std::uint32_t> Consumer::send_subscribe(std::string_view topic, std::uint32_t depth,
                                               Backpressure policy) {
  ControlMessageBuilder message;
  auto subscribe = message.initRoot<proto::Message>().initSubscribe();
  subscribe.setTopic(std::string(topic));
  subscribe.setQueueDepth(depth);
  subscribe.setBackpressure(to_proto(policy));
  if (auto ok = link_->flush(); !ok) return fail(std::move(ok.error()));
  if (auto sent = send_message(link_->connection, message); !sent)
    return fail(std::move(sent.error()));

  // Frames of other topics may arrive first; keep them for receive().
  for (;;) {
    auto incoming = read_one(IoMode::blocking);
    if (!incoming) return fail(std::move(incoming.error()));
    if (incoming->subscribed && incoming->topic == topic) return incoming->depth;
    if (incoming->error) return fail(std::move(*incoming->error));
    if (incoming->event) link_->early.push_back(std::move(*incoming->event));
  }
}

Status Consumer::unsubscribe(std::string_view topic) {
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initUnsubscribe().setTopic(std::string(topic));
  if (auto ok = link_->flush(); !ok) return fail(std::move(ok.error()));
  if (auto sent = send_message(link_->connection, message); !sent)
    return fail(std::move(sent.error()));
  const auto of_topic = [&](const Event& e) {
    const auto* frame = std::get_if<Frame>(&e);
    return frame != nullptr && frame->topic() == topic;
  };
  std::erase_if(link_->early, of_topic);  // released here, unseen
  for (;;) {
    auto incoming = read_one(IoMode::blocking);
    if (!incoming) return fail(std::move(incoming.error()));
    if (incoming->unsubscribed && incoming->topic == topic) break;
    if (incoming->error) return fail(std::move(*incoming->error));
    if (incoming->event && !of_topic(*incoming->event)) {
      link_->early.push_back(std::move(*incoming->event));
    }
  }
  // No frame of the topic's pools comes any more; frames still held keep their mapping (and
  // release into their channel's page: the producer waits for those).
  link_->stop_channels_of(topic);
  link_->forget_pools_of(topic);
  if (auto it = subscriptions_.find(topic); it != subscriptions_.end()) subscriptions_.erase(it);
  return {};
}

Result<Event> Consumer::receive() {
  for (;;) {
    auto event = next(IoMode::blocking);
    if (!event) return fail(std::move(event.error()));
    if (*event) return std::move(**event);
  }
}

Result<std::optional<Event>> Consumer::try_receive() {
  return next(IoMode::non_blocking);
}

Result<std::optional<Event>> Consumer::receive_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  if (link_->connection.bell() != nullptr) {
    if (!link_->early.empty()) return next(IoMode::non_blocking);
    return next_with_channels(IoMode::blocking, deadline);
  }
  for (;;) {
    auto event = next(IoMode::non_blocking);
    if (!event || *event) return event;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return event;
    pollfd p{link_->connection.fd(), POLLIN, 0};
    ::poll(&p, 1, static_cast<int>(std::min<std::int64_t>(left.count() + 1, INT32_MAX)));
  }
}

Result<std::optional<Event>> Consumer::next(IoMode mode) {
  if (link_->connection.bell() != nullptr) return next_with_channels(mode);
  if (!link_->early.empty()) {
    Event e = std::move(link_->early.front());
    link_->early.pop_front();
    return std::optional<Event>(std::move(e));
  }
  auto incoming = read_one(mode);
  if (!incoming && incoming.error().is(Errc::disconnected) && reconnect_) {
    auto reconnected = reconnect();
    if (!reconnected) return fail(std::move(reconnected.error()));
    return std::optional<Event>(std::move(*reconnected));
  }
  if (!incoming) return fail(std::move(incoming.error()));
  if (incoming->error) return fail(std::move(*incoming->error));
  return std::move(incoming->event);
}

Result<Consumer::Incoming> Consumer::read_one(IoMode mode) {
  if (auto ok = link_->flush(); !ok) return fail(std::move(ok.error()));
  Connection& conn = link_->connection;
  auto m = conn.receive(mode);
  if (!m) return fail(std::move(m.error()));
  if (m->status == RecvStatus::would_block) {
    Incoming nothing;
    nothing.empty_socket = true;
    return nothing;
  }

  return decode_message<proto::Message>(
      conn.message(*m), [&](proto::Message::Reader r) -> Result<Incoming> {
        Incoming in;
        if (r.isSubscribed()) {
          in.subscribed = true;
          in.topic = text_of(r.getSubscribed().getTopic());
          in.depth = r.getSubscribed().getQueueDepth();
          return in;
        }
        if (r.isUnsubscribed()) {
          in.unsubscribed = true;
          in.topic = text_of(r.getUnsubscribed().getTopic());
          return in;
        }
        if (r.isEndOfStream()) {
          auto end = r.getEndOfStream();
          EndOfStream eos{text_of(end.getTopic()), text_of(end.getReason())};
          const std::uint64_t producer = end.getProducer();
          for (auto& c : link_->channels) {
            if (c->topic == eos.topic && (producer == 0 || c->producer == producer) && c->active &&
                !c->ending) {
              // Frames the producer left on the channel come first; then this.
              c->ending = std::move(eos);
              return in;
            }
          }
          // The producer's pools get no new frames: forget them (held frames keep their
          // mapping). A next producer's pools may have come already: those stay.
          link_->forget_pools_of(eos.topic, producer);
          if (producer != 0) {
            link_->shapes.erase(producer);
            link_->layouts.erase(producer);
          }
          in.event = std::move(eos);
          return in;
        }
        if (r.isPoolAttach()) {
          auto attach = r.getPoolAttach();
          auto pool = attach_pool(attach, m->fds);
          if (!pool) return fail(std::move(pool.error()));
          link_->shapes[attach.getProducer()].add_pool(attach.getPool(), attach.getSlotCount(),
                                                       attach.getSlotSize());
          link_->pools[attach.getPool()] = std::move(*pool);
          return in;
        }
        if (r.isError()) {
          in.topic = text_of(r.getError().getTopic());
          in.error = broker_error(r.getError());
          return in;
        }
        if (r.isChannelRequest() || r.isChannelOpen() || r.isChannelClose() || r.isDefineLayout()) {
          if (auto ok = channel_message(*link_, r, m->fds); !ok) return fail(std::move(ok.error()));
          return in;
        }
        if (!r.isDeliver()) {
          return fail(Errc::protocol_violation, "the broker sent a message consumers never get");
        }
        auto deliver = r.getDeliver();
        auto frame = deliver.getFrame();
        Frame out;
        out.topic_ = text_of(deliver.getTopic());
        out.sequence_ = frame.getSequence();
        out.timestamp_ns_ = frame.getTimestampNs();
        out.dropped_ = account(out.topic_, out.sequence_, deliver.getDropped());
        // From here on the broker counts this frame as ours: it is released on every path.
        out.link_ = link_;
        auto layout = layout_from_proto(frame.getLayout());
        if (!layout) return fail(std::move(layout.error()));
        out.layout_ = *layout;
        if (frame.getPool() != 0) {
          auto pool = link_->pools.find(frame.getPool());
          if (pool == link_->pools.end() || frame.getSlot() >= pool->second->slot_count) {
            return fail(Errc::protocol_violation,
                        "frame in slot " + std::to_string(frame.getSlot()) + " of pool " +
                            std::to_string(frame.getPool()) + ", which was never attached");
          }
          const detail::PoolView& p = *pool->second;
          if (auto fits = validate_layout(out.layout_, p.slot_size); !fits) {
            return fail(std::move(fits.error()));
          }
          out.view_ = p.mapping.bytes().subspan(frame.getSlot() * p.slot_size, p.slot_size);
          out.pool_ = pool->second;
          in.event = std::move(out);
          return in;
        }
        // The broker verified it; checking again, at the level the broker says it checked,
        // costs ~0.4 us and guards against a broker bug.
        auto guarantee = guarantee_from_proto(deliver.getGuarantee());
        if (!guarantee) return fail(std::move(guarantee.error()));
        auto accepted = accept_frame(frame, m->fds, *guarantee);
        if (!accepted) return fail(std::move(accepted.error()));
        auto mapping =
            Mapping::map(accepted->fd.get(), static_cast<std::size_t>(accepted->verified.size),
                         Access::read_only);
        if (!mapping) return fail(std::move(mapping.error()));
        out.mapping_ = std::move(*mapping);
        out.view_ = out.mapping_.bytes();
        in.event = std::move(out);  // the fd closes with `m`; the mapping keeps the pages
        return in;
      });
}

std::uint64_t Consumer::account(const std::string& topic, std::uint64_t sequence,
                                std::uint64_t reported) {
  auto sub = subscriptions_.find(topic);
  if (sub == subscriptions_.end()) return reported;
  Subscription& st = sub->second;
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

Result<std::optional<Event>> Consumer::next_with_channels(
    IoMode mode, std::chrono::steady_clock::time_point deadline) {
  for (;;) {
    const PeerBell& bell = *link_->connection.bell();
    const std::uint32_t rung = bell.count();
    const auto now = coarse_now();
    if (rung != link_->bell_seen || now - link_->socket_read >= std::chrono::milliseconds(100)) {
      // Read before draining: a message that comes after the drain rings again.
      link_->bell_seen = rung;
      link_->socket_read = now;
      for (;;) {
        auto incoming = read_one(IoMode::non_blocking);
        if (!incoming && incoming.error().is(Errc::disconnected) && reconnect_) {
          auto reconnected = reconnect();
          if (!reconnected) return fail(std::move(reconnected.error()));
          return std::optional<Event>(std::move(*reconnected));
        }
        if (!incoming) return fail(std::move(incoming.error()));
        if (incoming->error) return fail(std::move(*incoming->error));
        if (incoming->empty_socket) break;
        if (incoming->event) link_->early.push_back(std::move(*incoming->event));
      }
    }
    // What came through the socket is older than what waits on the channels.
    if (!link_->early.empty()) {
      Event e = std::move(link_->early.front());
      link_->early.pop_front();
      return std::optional<Event>(std::move(e));
    }
    if (auto event = from_channels()) return std::optional<Event>(std::move(*event));
    // The deadline on the precise clock, as waitv sleeps on it: the coarse one lags it by up
    // to a tick, and waitv would return at once, again and again, until it caught up.
    if (mode == IoMode::non_blocking || (deadline != std::chrono::steady_clock::time_point::max() &&
                                         std::chrono::steady_clock::now() >= deadline)) {
      return std::optional<Event>();
    }
    std::vector<ChannelReader*> readers;
    for (const auto& c : link_->channels) {
      if (c->active && !c->parked && readers.size() < 62) readers.push_back(&c->reader);
    }
    waitv(readers, &bell, link_->bell_seen,
          std::min(deadline, now + std::chrono::milliseconds(100)));
  }
}

std::optional<Event> Consumer::from_channels() {
  auto& channels = link_->channels;
  const std::size_t n = channels.size();
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t at = (link_->next_channel + i) % n;
    std::shared_ptr<detail::ChannelIn> c = channels[at];
    if (c->parked) {
      if (link_->connection.bell()->count() == c->parked_at) continue;
      c->parked = false;
    }
    auto shapes = link_->shapes.find(c->producer);
    static const FrameShapes none;
    auto d = c->reader.next(shapes != link_->shapes.end() ? shapes->second : none, true);
    if (!d) {
      if (c->reader.stopped()) {
        // Its pool or layout is on its way through the socket (or never comes: a producer
        // that names what it never defined stalls only its own channel).
        c->parked = true;
        c->parked_at = link_->bell_seen;
        continue;
      }
      if (c->reader.ended() && !c->ending) {
        // The producer closed it and everything on it has been read: the broker's word on
        // what comes next (an end of stream, a new channel) comes through the socket.
        c->active = false;
        link_->refusals_before += c->reader.refusals();
        channels.erase(channels.begin() + static_cast<std::ptrdiff_t>(at));
        return from_channels();
      }
      // (readable() also says the producer closed it: then ended() says the ring is empty.)
      if (c->reader.broken() || (c->ending && (c->reader.ended() || !c->reader.readable()))) {
        EndOfStream end = c->ending ? std::move(*c->ending)
                                    : EndOfStream{c->topic, c->reader.broken()->message()};
        link_->stop_channels_of(end.topic, c->producer);
        link_->forget_pools_of(end.topic, c->producer);
        return Event(std::move(end));
      }
      continue;
    }
    link_->next_channel = (at + 1) % n;
    auto pool = link_->pools.find(d->pool);
    const auto& layouts = link_->layouts[c->producer];
    auto layout = layouts.find(d->layout);
    if (pool == link_->pools.end() || layout == layouts.end()) {
      // Known to the shapes, so never: but a frame is never built from a guess.
      (void)c->reader.release(d->pool, d->slot, d->sequence);
      continue;
    }
    Frame out;
    out.topic_ = c->topic;
    out.sequence_ = d->sequence;
    out.timestamp_ns_ = d->timestamp_ns;
    out.layout_ = layout->second;
    const detail::PoolView& p = *pool->second;
    out.view_ = p.mapping.bytes().subspan(d->slot * p.slot_size, p.slot_size);
    out.pool_ = pool->second;
    out.channel_ = c;
    out.pool_id_ = d->pool;
    out.slot_ = d->slot;
    out.dropped_ =
        account(out.topic_, out.sequence_, c->dropped_before + d->dropped + c->reader.skipped());
    return Event(std::move(out));
  }
  return std::nullopt;
}

}  // namespace shmfd
