#include "shmfd/consumer.hpp"

#include <map>

#include "shmfd/intake.hpp"
#include "shmfd/verify.hpp"
#include "shmfd/wire.hpp"

namespace shmfd {
namespace detail {

struct PoolView {
  std::string topic;
  Mapping mapping;
  std::uint64_t slot_size = 0;
  std::uint32_t slot_count = 0;
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
    pool_ = std::move(other.pool_);
    view_ = other.view_;
  }
  return *this;
}

Frame::~Frame() {
  release();
}

void Frame::release() noexcept {
  view_ = {};
  mapping_.reset();
  pool_.reset();
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
  view->mapping = std::move(*mapping);
  view->slot_size = attach.getSlotSize();
  view->slot_count = attach.getSlotCount();
  return std::shared_ptr<const detail::PoolView>(std::move(view));
}

}  // namespace

Result<Consumer> Consumer::connect(const std::string& socket_path, std::string_view client_name) {
  auto connection = Connection::open(socket_path, client_name);
  if (!connection) return fail(std::move(connection.error()));
  Consumer consumer(std::make_shared<detail::ConsumerLink>(std::move(*connection)));
  consumer.socket_path_ = socket_path;
  consumer.client_name_ = std::string(client_name);
  return consumer;
}

Result<Event> Consumer::reconnect() {
  const auto lost = std::chrono::steady_clock::now();
  for (;;) {
    auto connection = Connection::reopen(socket_path_, client_name_, *reconnect_);
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
      return Event(Reconnected{std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - lost)});
    }
  }
}

int Consumer::native_handle() const noexcept {
  return link_->connection.fd();
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
  // No frame of the topic's pools comes any more; frames still held keep their mapping.
  std::erase_if(link_->pools, [&](const auto& p) { return p.second->topic == topic; });
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

Result<std::optional<Event>> Consumer::next(IoMode mode) {
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
  if (m->status == RecvStatus::would_block) return Incoming{};

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
          in.event = EndOfStream{text_of(end.getTopic()), text_of(end.getReason())};
          // The topic's pools get no new frames: forget them (held frames keep their mapping).
          std::erase_if(link_->pools,
                        [&](const auto& p) { return p.second->topic == view(end.getTopic()); });
          return in;
        }
        if (r.isPoolAttach()) {
          auto attach = r.getPoolAttach();
          auto pool = attach_pool(attach, m->fds);
          if (!pool) return fail(std::move(pool.error()));
          link_->pools[attach.getPool()] = std::move(*pool);
          return in;
        }
        if (r.isError()) {
          in.topic = text_of(r.getError().getTopic());
          in.error = broker_error(r.getError());
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
        if (auto sub = subscriptions_.find(out.topic_); sub != subscriptions_.end()) {
          Subscription& st = sub->second;
          // After a reconnect, a producer that kept its numbering shows what was lost.
          if (st.renewed && out.sequence_ > st.last_sequence + 1 && st.last_sequence != 0) {
            st.dropped_before += out.sequence_ - st.last_sequence - 1;
          }
          st.renewed = false;
          st.last_sequence = out.sequence_;
          st.dropped = st.dropped_before + deliver.getDropped();
          out.dropped_ = st.dropped;
        } else {
          out.dropped_ = deliver.getDropped();
        }
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

}  // namespace shmfd
