#include "shmfd/producer.hpp"

#include <time.h>

#include <algorithm>
#include <cstring>

#include "shmfd/wire.hpp"

namespace shmfd {
namespace {

// How often a client on channels reads its socket though its doorbell is quiet: how long it
// may take to notice that the broker has gone.
constexpr auto kSocketCheck = std::chrono::milliseconds(100);

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void fill_frame(proto::Frame::Builder frame, std::uint64_t sequence, std::uint64_t timestamp_ns,
                const Layout& layout) {
  frame.setSequence(sequence);
  frame.setTimestampNs(timestamp_ns != 0 ? timestamp_ns : monotonic_ns());
  layout_to_proto(layout, frame.initLayout());
}

}  // namespace

Result<Producer> Producer::connect(const std::string& socket_path, std::string_view client_name,
                                   Channels channels) {
  const bool want = channels == Channels::automatic && channels_wanted();
  auto connection = Connection::open(socket_path, client_name, kMaxMessageBytes, want);
  if (!connection) return fail(std::move(connection.error()));
  Producer producer(std::move(*connection));
  producer.channels_wanted_ = channels;
  producer.socket_path_ = socket_path;
  producer.client_name_ = std::string(client_name);
  return producer;
}

Result<bool> Producer::recovered(const Error& error) {
  if (!reconnect_ || !error.is(Errc::disconnected)) return fail(Error(error));
  if (auto ok = reconnect(); !ok) return fail(std::move(ok.error()));
  return true;
}

Status Producer::reconnect() {
  for (;;) {
    const bool want = channels_wanted_ == Channels::automatic && channels_wanted();
    auto connection = Connection::reopen(socket_path_, client_name_, *reconnect_, want);
    if (!connection) return fail(std::move(connection.error()));
    connection_ = std::move(*connection);
    fd_frames_in_flight_ = 0;  // the old broker's window went with it
    // The old broker's channels went with it: their consumers hold frames of the old pools,
    // which stay intact (each pool is registered again as a fresh memfd below).
    forget_channels();
    const auto renew = [&]() -> Status {
      for (const auto& [topic, a] : advertised_) {
        if (auto ok = send_advertise(topic, a.kind, a.level); !ok) return ok;
      }
      for (auto& [id, pool] : pools_) {
        // A fresh memfd: consumers of the old broker may still read frames in the old one.
        auto created = WritableBuffer::create(pool.topic + "/pool",
                                              pool.slot_size * pool.slots.size(), pool.options);
        if (!created) return fail(std::move(created.error()));
        auto buffer = std::move(*created).into_pool();
        if (!buffer) return fail(std::move(buffer.error()));
        auto registered = register_pool(pool.topic, *buffer, pool.slot_size,
                                        static_cast<std::uint32_t>(pool.slots.size()));
        if (!registered) return fail(std::move(registered.error()));
        pool.broker_id = *registered;
        pool.retired.push_back(std::move(pool.buffer));
        pool.buffer = std::move(*buffer);
        for (auto& slot : pool.slots) {
          if (slot == Producer::SlotState::published)
            slot = Producer::SlotState::free;  // the new broker: all free
        }
        pool.broker_busy.assign(pool.slots.size(), false);
      }
      return {};
    };
    auto renewed = renew();
    if (renewed) {
      ++reconnects_;
      return {};
    }
    if (!renewed.error().is(Errc::disconnected)) return renewed;  // gone again: start over
  }
}

// What the broker's messages change in a Producer: refusals are kept, freed slots marked, credit
// counted, channels set up and closed. A friend, so that producer.hpp names no Cap'n Proto type.
struct detail::ProducerIncoming {
  static void handle(Producer& p, proto::Message::Reader message, std::vector<UniqueFd>& fds);
  static void channel_request(Producer& p, proto::ChannelRequest::Reader request);
  static void channel_open(Producer& p, proto::ChannelOpen::Reader open,
                           std::vector<UniqueFd>& fds);
  static void channel_close(Producer& p, proto::ChannelClose::Reader close);
};

void detail::ProducerIncoming::handle(Producer& p, proto::Message::Reader message,
                                      std::vector<UniqueFd>& fds) {
  using M = proto::Message;
  switch (message.which()) {
    case M::ERROR: {
      auto error = message.getError();
      p.errors_.push_back(broker_error(error));
      // A refused pool frame never made its slot busy in the broker.
      for (auto& [id, pool] : p.pools_) {
        if (view(error.getTopic()) != pool.topic) continue;
        for (std::size_t i = 0; i < pool.slots.size(); ++i) {
          if (pool.slots[i] == Producer::SlotState::published &&
              pool.sequence[i] == error.getSequence()) {
            pool.broker_busy[i] = false;
          }
        }
      }
      break;
    }
    case M::CREDIT:
      p.fd_frames_in_flight_ -= std::min(p.fd_frames_in_flight_, message.getCredit().getFrames());
      break;
    case M::SLOT_FREE: {
      auto freed = message.getSlotFree();
      for (auto& [id, pool] : p.pools_) {
        if (pool.broker_id == freed.getPool() && freed.getSlot() < pool.slots.size()) {
          pool.broker_busy[freed.getSlot()] = false;
        }
      }
      break;
    }
    case M::ROUTE:
      p.via_broker_[text_of(message.getRoute().getTopic())] = message.getRoute().getViaBroker();
      break;
    case M::CHANNEL_REQUEST:
      channel_request(p, message.getChannelRequest());
      break;
    case M::CHANNEL_OPEN:
      channel_open(p, message.getChannelOpen(), fds);
      break;
    case M::CHANNEL_CLOSE:
      channel_close(p, message.getChannelClose());
      break;
    default:
      break;  // answers: wait_for's `done` looks at them
  }
}

void detail::ProducerIncoming::channel_request(Producer& p, proto::ChannelRequest::Reader request) {
  if (request.getSide() != proto::ChannelSide::PRODUCER) return;  // a consumer's (ours too)
  auto policy = backpressure_from_proto(request.getBackpressure());
  auto page = OwnPage::create(ChannelSide::producer, request.getCapacity());
  if (!policy || !page) {
    Error e = policy ? std::move(page.error()) : std::move(policy.error());
    p.errors_.push_back(std::move(e).prefixed("channel request"));
    return;
  }
  ControlMessageBuilder message;
  auto reply = message.initRoot<proto::Message>().initChannelPage();
  reply.setChannel(request.getChannel());
  reply.setSide(proto::ChannelSide::PRODUCER);
  reply.setFd(0);
  const int fd = page->fd();
  // A lost broker shows on the next call that needs it.
  if (!send_message(p.connection_, message, std::span(&fd, 1))) return;
  p.asked_.insert_or_assign(
      request.getChannel(),
      Producer::ChannelAsked{text_of(request.getTopic()), request.getQueueDepth(), *policy,
                             std::move(*page)});
}

void detail::ProducerIncoming::channel_open(Producer& p, proto::ChannelOpen::Reader open,
                                            std::vector<UniqueFd>& fds) {
  auto asked = p.asked_.find(open.getChannel());
  if (asked == p.asked_.end() || fds.size() != kFdsPerMessage) return;  // closed meanwhile
  auto peer = PeerPage::accept(std::move(fds[0]), ChannelSide::consumer);
  if (!peer) {
    // The consumer's page, verified by the broker, fails here: a broker bug. The consumer
    // stays on the broker's path.
    p.errors_.push_back(
        std::move(peer.error()).prefixed("channel " + std::to_string(open.getChannel())));
    p.asked_.erase(asked);
    return;
  }
  Producer::ChannelAsked& a = asked->second;
  Producer::ChannelOut out;
  out.id = open.getChannel();
  out.topic = a.topic;
  out.depth = std::max<std::uint32_t>(1, a.depth);
  out.policy = a.policy;
  out.writer.reset(new ChannelWriter(std::move(a.page), std::move(*peer)));
  p.asked_.erase(asked);
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initChannelStarted().setChannel(out.id);
  if (!send_message(p.connection_, message)) return;
  p.channels_.push_back(std::move(out));
}

void detail::ProducerIncoming::channel_close(Producer& p, proto::ChannelClose::Reader close) {
  const std::uint32_t id = close.getChannel();
  p.asked_.erase(id);
  for (auto it = p.channels_.begin(); it != p.channels_.end(); ++it) {
    if (it->id != id) continue;
    if (close.getReclaim()) {
      p.channels_.erase(it);  // the consumer has gone: every slot it held is free
    } else {
      it->closing = true;  // it unsubscribed: its slots come back as it releases them
    }
    return;
  }
}

template <typename Done>
Status Producer::wait_for(Done done) {
  for (;;) {
    auto m = connection_.receive();
    if (!m) return fail(std::move(m.error()));
    auto finished = decode_message<proto::Message>(
        connection_.message(*m), [&](proto::Message::Reader r) -> Result<bool> {
          detail::ProducerIncoming::handle(*this, r, m->fds);
          return done(r);
        });
    if (!finished) return fail(std::move(finished.error()));
    if (*finished) return {};
  }
}

Status Producer::drain() {
  for (;;) {
    auto m = connection_.receive(IoMode::non_blocking);
    if (!m) return fail(std::move(m.error()));
    if (m->status == RecvStatus::would_block) return {};
    auto ok = decode_message<proto::Message>(connection_.message(*m),
                                             [&](proto::Message::Reader r) -> Status {
                                               detail::ProducerIncoming::handle(*this, r, m->fds);
                                               return {};
                                             });
    if (!ok) return ok;
  }
}

// A refusal for `topic` that answers a request (sequence 0) ends the wait as an error.
static Result<bool> answered(std::deque<Error>& errors, proto::Message::Reader r,
                             std::string_view topic, bool matched) {
  if (r.isError() && view(r.getError().getTopic()) == topic && r.getError().getSequence() == 0) {
    Error e = std::move(errors.back());
    errors.pop_back();
    return fail(std::move(e));
  }
  return matched;
}

Status Producer::advertise(std::string_view topic, LayoutKind kind, Guarantee level) {
  if (auto ok = check_topic_name(topic); !ok) return ok;
  auto ok = send_advertise(topic, kind, level);
  if (ok) advertised_[std::string(topic)] = Advertised{kind, level};
  return ok;
}

Status Producer::send_advertise(std::string_view topic, LayoutKind kind, Guarantee level) {
  ControlMessageBuilder message;
  auto advertise = message.initRoot<proto::Message>().initAdvertise();
  advertise.setTopic(std::string(topic));
  advertise.setKind(to_proto(kind));
  advertise.setGuarantee(to_proto(level));
  if (auto sent = send_message(connection_, message); !sent) return fail(std::move(sent.error()));
  return wait_for([&](proto::Message::Reader r) {
    return answered(errors_, r, topic,
                    r.isAdvertised() && view(r.getAdvertised().getTopic()) == topic);
  });
}

Status Producer::unadvertise(std::string_view topic) {
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initUnadvertise().setTopic(std::string(topic));
  if (auto sent = send_message(connection_, message); !sent) return fail(std::move(sent.error()));
  auto ok = wait_for([&](proto::Message::Reader r) {
    return answered(errors_, r, topic,
                    r.isUnadvertised() && view(r.getUnadvertised().getTopic()) == topic);
  });
  if (!ok) return ok;
  std::erase_if(pools_, [&](const auto& p) { return p.second.topic == topic; });
  if (auto it = advertised_.find(topic); it != advertised_.end()) advertised_.erase(it);
  // Its channels are over (the broker ended them): what consumers hold of the pools stays.
  std::erase_if(channels_, [&](const ChannelOut& c) { return c.topic == topic; });
  std::erase_if(asked_, [&](const auto& a) { return a.second.topic == topic; });
  if (auto it = via_broker_.find(topic); it != via_broker_.end()) via_broker_.erase(it);
  if (auto it = layouts_.find(topic); it != layouts_.end()) layouts_.erase(it);
  return {};
}

Result<WritableBuffer> Producer::allocate(std::string_view topic, const Layout& layout,
                                          MemfdOptions options) {
  auto extent = layout_extent(layout);
  if (!extent) return fail(std::move(extent.error()));
  return WritableBuffer::create(topic, static_cast<std::size_t>(*extent), options);
}

std::uint64_t Producer::next_sequence(std::string_view topic) {
  auto it = next_sequence_.find(topic);
  if (it == next_sequence_.end()) it = next_sequence_.emplace(std::string(topic), 1).first;
  return it->second++;
}

Result<PreparedFrame> Producer::prepare(std::string_view topic, WritableBuffer buffer,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  auto extent = validate_layout(layout, buffer.size());
  if (!extent) return fail(std::move(extent.error()));
  auto sealed = std::move(buffer).seal();
  if (!sealed) return fail(std::move(sealed.error()));
  const std::uint64_t sequence = next_sequence(topic);

  ControlMessageBuilder message;
  auto publish = message.initRoot<proto::Message>().initPublish();
  publish.setTopic(std::string(topic));
  auto frame = publish.initFrame();
  frame.setFd(0);
  fill_frame(frame, sequence, timestamp_ns, layout);
  return PreparedFrame{std::string(topic), sequence, std::move(*sealed), encode_message(message)};
}

Result<std::uint64_t> Producer::sent_or_refused(std::uint64_t sequence) {
  if (auto ok = poll_bell(); !ok) return fail(std::move(ok.error()));
  if (!errors_.empty()) {
    Error first = std::move(errors_.front());
    errors_.pop_front();
    return fail(std::move(first));
  }
  return sequence;
}

bool Producer::window_full() const noexcept {
  const std::uint32_t window = connection_.publish_window();
  return window != 0 && fd_frames_in_flight_ >= window;
}

Result<std::optional<std::uint64_t>> Producer::try_send(PreparedFrame& frame) {
  const int fd = frame.buffer ? frame.buffer->fd() : -1;
  if (fd >= 0 && window_full()) {
    if (auto ok = drain(); !ok) return fail(std::move(ok.error()));
    if (window_full()) return std::optional<std::uint64_t>();
  }
  auto sent =
      connection_.send(frame.message.bytes(), fd >= 0 ? std::span(&fd, 1) : std::span<const int>(),
                       IoMode::non_blocking);
  if (!sent) return fail(std::move(sent.error()));
  if (*sent == SendStatus::would_block) return std::optional<std::uint64_t>();
  if (fd >= 0) ++fd_frames_in_flight_;
  auto done = sent_or_refused(frame.sequence);
  if (!done) return fail(std::move(done.error()));
  return std::optional<std::uint64_t>(*done);
}

Result<std::uint64_t> Producer::publish(std::string_view topic, WritableBuffer buffer,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  auto frame = prepare(topic, std::move(buffer), layout, timestamp_ns);
  if (!frame) return fail(std::move(frame.error()));
  const int fd = frame->buffer->fd();
  for (;;) {
    // Blocking: under block-producer backpressure the broker stops reading, its Credit
    // stops, and this waits here once the window is full.
    if (window_full()) {
      auto ok = wait_for([&](proto::Message::Reader) { return Result<bool>(!window_full()); });
      if (!ok) {
        if (auto again = recovered(ok.error()); !again) return fail(std::move(again.error()));
        continue;  // to the new broker, with the same sequence number
      }
    }
    auto sent = connection_.send(frame->message.bytes(), std::span(&fd, 1));
    if (!sent) {
      if (auto again = recovered(sent.error()); !again) return fail(std::move(again.error()));
      continue;
    }
    ++fd_frames_in_flight_;
    auto done = sent_or_refused(frame->sequence);
    if (!done && recovered(done.error())) return frame->sequence;  // sent; the broker then went
    return done;
  }
}

Result<std::vector<Error>> Producer::poll_errors() {
  // The refusals that came before a disconnect say why it happened: they are returned first,
  // the disconnect on the next call.
  if (auto ok = drain(); !ok && errors_.empty()) {
    if (auto again = recovered(ok.error()); !again) return fail(std::move(again.error()));
  }
  std::vector<Error> out(std::make_move_iterator(errors_.begin()),
                         std::make_move_iterator(errors_.end()));
  errors_.clear();
  return out;
}

Result<std::uint32_t> Producer::create_pool(std::string_view topic, std::size_t slot_bytes,
                                            std::uint32_t slot_count, MemfdOptions options) {
  if (slot_bytes == 0 || slot_count == 0) {
    return fail(Errc::invalid_size, "create_pool(\"" + std::string(topic) +
                                        "\"): slot size and slot count must be positive");
  }
  std::size_t slot_size = 0;
  auto writable = [&]() -> Result<WritableBuffer> {
    auto page = page_size(options);
    if (!page) return fail(std::move(page.error()));
    slot_size = (slot_bytes + *page - 1) / *page * *page;
    std::size_t total = 0;
    if (__builtin_mul_overflow(slot_size, std::size_t{slot_count}, &total)) {
      return fail(Errc::invalid_size, "create_pool: " + std::to_string(slot_count) + " slots of " +
                                          std::to_string(slot_size) + " bytes overflow");
    }
    return WritableBuffer::create(std::string(topic) + "/pool", total, options);
  };
  auto created = writable();
  if (!created && options.huge_pages && options.fall_back_to_normal_pages &&
      created.error().is(Errc::huge_pages_unavailable)) {
    options.huge_pages = false;
    created = writable();
  }
  if (!created) return fail(std::move(created.error()));
  auto buffer = std::move(*created).into_pool();
  if (!buffer) return fail(std::move(buffer.error()));

  auto registered = register_pool(topic, *buffer, slot_size, slot_count);
  if (!registered) return fail(std::move(registered.error()));
  const std::uint32_t id = next_pool_id_++;
  pools_.emplace(id, PoolState{std::string(topic),
                               std::move(*buffer),
                               slot_size,
                               std::vector<SlotState>(slot_count, SlotState::free),
                               std::vector<std::uint64_t>(slot_count, 0),
                               std::vector<bool>(slot_count, false),
                               0,
                               *registered,
                               options,
                               {}});
  return id;
}

Result<std::uint32_t> Producer::register_pool(std::string_view topic, const PoolBuffer& buffer,
                                              std::size_t slot_size, std::uint32_t slot_count) {
  ControlMessageBuilder message;
  auto reg = message.initRoot<proto::Message>().initRegisterPool();
  reg.setTopic(std::string(topic));
  reg.setSlotCount(slot_count);
  reg.setSlotSize(slot_size);
  reg.setFd(0);
  const int fd = buffer.fd();
  if (auto sent = send_message(connection_, message, std::span(&fd, 1)); !sent) {
    return fail(std::move(sent.error()));
  }
  std::uint32_t id = 0;
  auto ok = wait_for([&](proto::Message::Reader r) {
    if (r.isPoolRegistered() && view(r.getPoolRegistered().getTopic()) == topic) {
      id = r.getPoolRegistered().getPool();
      return Result<bool>(true);
    }
    return answered(errors_, r, topic, false);
  });
  if (!ok) return fail(std::move(ok.error()));
  return id;
}

Result<std::optional<Slot>> Producer::try_acquire(std::uint32_t pool) {
  auto it = pools_.find(pool);
  if (it == pools_.end()) {
    return fail(Errc::invalid_argument, "acquire: no pool " + std::to_string(pool));
  }
  if (auto ok = poll_bell(); !ok) {
    if (auto again = recovered(ok.error()); !again) return fail(std::move(again.error()));
  }
  PoolState& p = it->second;
  // What the channels' consumers released since the last look; channels that ended once
  // their consumer released everything, or that it broke, go.
  for (ChannelOut& c : channels_) {
    if (c.topic == p.topic) c.writer->collect_releases([](std::uint32_t, std::uint32_t) {});
  }
  std::erase_if(channels_, [](const ChannelOut& c) {
    return (c.closing && c.writer->held() == 0) || c.writer->broken();
  });
  // From the slot after the last one taken: slots come back in about the order they went out,
  // so the next one is usually free, and the scan does not pass every held slot each time.
  const auto n = static_cast<std::uint32_t>(p.slots.size());
  std::uint32_t index = p.next_free;
  std::uint32_t looked = 0;
  for (; looked < n; ++looked, index = index + 1 == n ? 0 : index + 1) {
    if (p.slots[index] == SlotState::free) break;
    if (p.slots[index] == SlotState::published && !slot_held(p, index)) break;
  }
  if (looked == n) return std::optional<Slot>();
  p.next_free = index + 1 == n ? 0 : index + 1;
  p.slots[index] = SlotState::acquired;
  return std::optional<Slot>(
      Slot{pool, index, p.buffer.bytes().subspan(index * p.slot_size, p.slot_size)});
}

Result<Slot> Producer::acquire(std::uint32_t pool, Wait wait) {
  for (;;) {
    auto slot = try_acquire(pool);
    if (!slot) return fail(std::move(slot.error()));
    if (*slot) return **slot;
    if (wait == Wait::fail_fast) {
      return fail(Errc::no_free_slot, "pool " + std::to_string(pool) + ": all " +
                                          std::to_string(pools_.at(pool).slots.size()) +
                                          " slots are held by consumers");
    }
    if (const PeerBell* bell = connection_.bell()) {
      // Until a channel's consumer releases, or the broker says something (a SlotFree, a
      // channel closed): try_acquire then looks again.
      std::vector<ChannelWriter*> writers;
      for (ChannelOut& c : channels_) {
        if (c.topic == pools_.at(pool).topic) writers.push_back(c.writer.get());
      }
      waitv(writers, bell, bell_seen_, std::chrono::steady_clock::now() + std::chrono::seconds(1));
      continue;
    }
    // Block until the broker frees a slot of this pool.
    const std::uint32_t broker_id = pools_.at(pool).broker_id;
    auto ok = wait_for([&](proto::Message::Reader r) {
      return Result<bool>(r.isSlotFree() && r.getSlotFree().getPool() == broker_id);
    });
    if (!ok) {
      if (auto again = recovered(ok.error()); !again) return fail(std::move(again.error()));
    }
  }
}

Result<PreparedFrame> Producer::prepare(std::string_view topic, const Slot& slot,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  auto sequence = stage(topic, slot, layout);
  if (!sequence) return fail(std::move(sequence.error()));
  const PoolState& p = pools_.at(slot.pool);
  ControlMessageBuilder message;
  auto publish = message.initRoot<proto::Message>().initPublish();
  publish.setTopic(std::string(topic));
  auto frame = publish.initFrame();
  frame.setPool(p.broker_id);
  frame.setSlot(slot.index);
  fill_frame(frame, *sequence, timestamp_ns, layout);
  return PreparedFrame{std::string(topic), *sequence, std::nullopt, encode_message(message)};
}

Result<std::uint64_t> Producer::stage(std::string_view topic, const Slot& slot,
                                      const Layout& layout) {
  auto acquired = acquired_pool(slot, "publish");
  if (!acquired) return fail(std::move(acquired.error()));
  PoolState& p = **acquired;
  if (p.topic != topic) {
    return fail(Errc::invalid_argument,
                "publish: pool " + std::to_string(slot.pool) + " belongs to '" + p.topic + "'");
  }
  if (auto extent = validate_layout(layout, p.slot_size); !extent) {
    return fail(std::move(extent.error()));
  }
  const auto here = p.buffer.bytes().subspan(slot.index * p.slot_size, p.slot_size);
  if (slot.bytes.data() != here.data() && slot.bytes.size() == here.size()) {
    // Acquired before a reconnect replaced the pool's memfd: the frame moves to the new one.
    std::memcpy(here.data(), slot.bytes.data(), here.size());
  }
  const std::uint64_t sequence = next_sequence(topic);
  p.slots[slot.index] = SlotState::published;
  p.sequence[slot.index] = sequence;
  p.broker_busy[slot.index] = true;  // until SlotFree (or a refusal)
  return sequence;
}

Result<std::uint64_t> Producer::publish(std::string_view topic, const Slot& slot,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  if (timestamp_ns == 0) timestamp_ns = monotonic_ns();
  for (;;) {
    // Route changes, channels opened or closed, refusals: one load when nothing came.
    if (auto ok = poll_bell(); !ok) {
      if (auto again = recovered(ok.error()); !again) return fail(std::move(again.error()));
    }
    if (!via_broker(topic)) {
      // Every subscriber is on a channel: the broker does not see the frame, and no message
      // is encoded for it.
      auto sequence = stage(topic, slot, layout);
      if (!sequence) return fail(std::move(sequence.error()));
      PoolState& pool = pools_.at(slot.pool);
      pool.broker_busy[slot.index] = false;
      auto ok = to_channels(topic, pool, slot.index, layout, *sequence, timestamp_ns);
      if (!ok) {
        if (auto again = recovered(ok.error()); !again) return fail(std::move(again.error()));
        --next_sequence_.find(topic)->second;
        pool.slots[slot.index] = SlotState::acquired;
        continue;
      }
      return *sequence;
    }
    auto frame = prepare(topic, slot, layout, timestamp_ns);
    if (!frame) return fail(std::move(frame.error()));
    PoolState& pool = pools_.at(slot.pool);
    if (has_channels(topic)) {
      auto ok = to_channels(topic, pool, slot.index, layout, frame->sequence, timestamp_ns);
      if (!ok) {
        pool.broker_busy[slot.index] = false;
        if (auto again = recovered(ok.error()); !again) return fail(std::move(again.error()));
        --next_sequence_.find(topic)->second;
        pool.slots[slot.index] = SlotState::acquired;
        continue;
      }
    }
    if (!via_broker(topic)) {
      // Every subscriber is on a channel: the broker does not see the frame.
      pool.broker_busy[slot.index] = false;
      return frame->sequence;
    }
    // Blocking: under block-producer backpressure this waits for the broker to read again.
    auto sent = connection_.send(frame->message.bytes());
    if (!sent) {
      if (auto again = recovered(sent.error()); !again) return fail(std::move(again.error()));
      // Never sent: to the new broker with the same number, from the same slot (still ours).
      --next_sequence_.find(topic)->second;
      pools_.at(slot.pool).slots[slot.index] = SlotState::acquired;
      pools_.at(slot.pool).broker_busy[slot.index] = false;
      continue;
    }
    auto done = sent_or_refused(frame->sequence);
    if (!done && recovered(done.error())) return frame->sequence;  // sent; the broker then went
    return done;
  }
}

Result<Producer::PoolState*> Producer::acquired_pool(const Slot& slot, std::string_view what) {
  auto it = pools_.find(slot.pool);
  if (it == pools_.end() || slot.index >= it->second.slots.size() ||
      it->second.slots[slot.index] != SlotState::acquired) {
    return fail(Errc::invalid_argument, std::string(what) + ": slot " + std::to_string(slot.index) +
                                            " of pool " + std::to_string(slot.pool) +
                                            " is not acquired");
  }
  return &it->second;
}

Status Producer::discard(const Slot& slot) {
  auto pool = acquired_pool(slot, "discard");
  if (!pool) return fail(std::move(pool.error()));
  (*pool)->slots[slot.index] = SlotState::free;
  return {};
}

std::size_t Producer::slot_size(std::uint32_t pool) const {
  auto it = pools_.find(pool);
  return it == pools_.end() ? 0 : it->second.slot_size;
}

std::size_t Producer::free_slots(std::uint32_t pool) const {
  auto it = pools_.find(pool);
  if (it == pools_.end()) return 0;
  const PoolState& p = it->second;
  std::size_t n = 0;
  for (std::uint32_t i = 0; i < p.slots.size(); ++i) {
    n += p.slots[i] == SlotState::free || (p.slots[i] == SlotState::published && !slot_held(p, i));
  }
  return n;
}

// --- Channels ---

Status Producer::poll_bell() {
  if (const PeerBell* bell = connection_.bell()) {
    const std::uint32_t rung = bell->count();
    const auto now = coarse_now();
    // A broker that died rings no bell: the socket is read at least every kSocketCheck.
    if (rung == bell_seen_ && now - socket_read_ < kSocketCheck) return {};
    bell_seen_ = rung;  // read before draining: a message after the drain rings again
    socket_read_ = now;
  }
  return drain();
}

bool Producer::has_channels(std::string_view topic) const {
  return std::any_of(channels_.begin(), channels_.end(),
                     [&](const ChannelOut& c) { return c.topic == topic && !c.closing; });
}

bool Producer::via_broker(std::string_view topic) const {
  auto it = via_broker_.find(topic);
  return it == via_broker_.end() || it->second;
}

bool Producer::slot_held(const PoolState& pool, std::uint32_t slot) const {
  if (pool.broker_busy[slot]) return true;
  return std::any_of(channels_.begin(), channels_.end(), [&](const ChannelOut& c) {
    return c.topic == pool.topic && c.writer->holds(pool.broker_id, slot);
  });
}

void Producer::forget_channels() {
  channels_.clear();
  asked_.clear();
  via_broker_.clear();
  layouts_.clear();
  bell_seen_ = 0;
}

Result<std::uint32_t> Producer::layout_id(std::string_view topic, const Layout& layout) {
  auto it = layouts_.find(topic);
  if (it == layouts_.end()) it = layouts_.emplace(std::string(topic), TopicLayouts{}).first;
  for (const auto& [known, id] : it->second.ids) {
    if (known == layout) return id;
  }
  // New: sent, not waited for (the broker may not be reading us: backpressure on another
  // topic). A consumer that meets the id first waits for the definition on its socket.
  if (it->second.ids.size() >= kMaxChannelLayouts) {
    return fail(Errc::limit_exceeded, "topic '" + std::string(topic) + "' has used " +
                                          std::to_string(kMaxChannelLayouts) +
                                          " layouts, the most a topic's channels may name");
  }
  const std::uint32_t id = it->second.next++;
  ControlMessageBuilder message;
  auto define = message.initRoot<proto::Message>().initDefineLayout();
  define.setTopic(std::string(topic));
  define.setId(id);
  layout_to_proto(layout, define.initLayout());
  if (auto sent = send_message(connection_, message); !sent) return fail(std::move(sent.error()));
  it->second.ids.emplace_back(layout, id);
  return id;
}

Status Producer::to_channels(std::string_view topic, const PoolState& pool, std::uint32_t slot,
                             const Layout& layout, std::uint64_t sequence,
                             std::uint64_t timestamp_ns) {
  auto layout_ok = layout_id(topic, layout);
  if (!layout_ok) return fail(std::move(layout_ok.error()));
  Descriptor d{pool.broker_id, slot, *layout_ok, sequence, timestamp_ns, 0};
  const auto now = coarse_now();  // since when the channels hold the slot
  // A consumer may hold its depth, and never every slot of a pool (as through the broker).
  const std::size_t window_cap = std::max<std::size_t>(1, pool.slots.size() - 1);
  // Every channel of the topic gets the frame, also one that opened while this waited for
  // another: its ChannelStarted went out before this frame's Publish could, so the broker
  // will not route the frame to that consumer.
  std::vector<std::uint32_t> done;
  for (;;) {
    auto pending = std::find_if(channels_.begin(), channels_.end(), [&](const ChannelOut& c) {
      return c.topic == topic && !c.closing &&
             std::find(done.begin(), done.end(), c.id) == done.end();
    });
    if (pending == channels_.end()) break;
    const std::uint32_t id = pending->id;
    done.push_back(id);
    for (;;) {
      // Found again each time: a wait reads messages, which may end the channel.
      auto c = std::find_if(channels_.begin(), channels_.end(),
                            [&](const ChannelOut& o) { return o.id == id; });
      if (c == channels_.end() || c->closing) break;
      ChannelWriter& w = *c->writer;
      const auto full = [&] {
        return w.held() >= c->depth ||
               w.held_of(pool.broker_id) >= std::min<std::size_t>(c->depth, window_cap);
      };
      if (full()) w.collect_releases([](std::uint32_t, std::uint32_t) {});
      if (!full()) {
        d.dropped = c->dropped;
        auto put = w.publish(d, now);
        if (!put) {
          channels_.erase(c);  // the consumer broke its side: it is on its own now
          break;
        }
        if (*put) break;
      }
      if (c->policy == Backpressure::drop_oldest) {
        ++c->dropped;  // behind by its whole depth: it misses this frame, and is told
        break;
      }
      // Block-producer: wait for this consumer to release, or for the broker's word.
      ChannelWriter* waiting = &w;
      waitv(std::span(&waiting, 1), connection_.bell(), bell_seen_,
            std::chrono::steady_clock::now() + std::chrono::milliseconds(100));
      if (auto ok = poll_bell(); !ok) return ok;
    }
  }
  return {};
}

}  // namespace shmfd
