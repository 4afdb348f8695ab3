// Producer: advertising, sealed frames with their credit window, and pool frames through the
// broker and on channels, over a BrokerLink; one handler for each kind of message a producer
// gets. Pool frames are producer_pools.cpp's; the slots PoolSlots', the channels ProducerChannels'.
#include "shmfd/producer.hpp"

#include <time.h>

#include <algorithm>

#include "producer_state.hpp"

namespace shmfd {
namespace detail {

std::uint64_t monotonic_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000U +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void fill_frame(proto::Frame::Builder frame, std::uint64_t sequence, std::uint64_t timestamp_ns,
                const Layout& layout, const FrameMeta& meta) {
  frame.setSequence(sequence);
  frame.setTimestampNs(timestamp_ns != 0 ? timestamp_ns : monotonic_ns());
  layout_to_proto(layout, frame.initLayout());
  if (!meta.empty()) meta_to_proto(meta, frame.initMeta());
}

Status ProducerState::check_meta(std::string_view topic, const FrameMeta& meta,
                                 const Layout& layout) const {
  // A frame without metadata breaks no rule unless its topic requires timestamps: the usual
  // frame costs no lookup.
  if (meta.empty() && !any_timestamps_required) return {};
  static const TopicOptions defaults;
  const auto it = advertised.find(topic);
  const TopicOptions& options = it != advertised.end() ? it->second.options : defaults;
  if (auto ok = check_frame_meta(meta, options, layout); !ok) return ok;
  if (!meta.empty() && link.connection().version() < 5) {
    return fail(Errc::invalid_argument,
                "frame metadata needs protocol version 5; the broker speaks " +
                    std::to_string(link.connection().version()));
  }
  return {};
}

Status ProducerState::handle(proto::Message::Reader r, std::vector<UniqueFd>& fds) {
  using M = proto::Message;
  switch (r.which()) {
    case M::ERROR:
      errors.push_back(broker_error(r.getError()));
      // A refused pool frame never made its slot busy in the broker.
      pools.refused(view(r.getError().getTopic()), r.getError().getSequence());
      return {};
    case M::CREDIT:
      fd_frames_in_flight -= std::min(fd_frames_in_flight, r.getCredit().getFrames());
      return {};
    case M::SLOT_FREE:
      pools.freed(r.getSlotFree().getPool(), r.getSlotFree().getSlot());
      return {};
    case M::ROUTE:
      channels.route(text_of(r.getRoute().getTopic()), r.getRoute().getViaBroker());
      return {};
    case M::CHANNEL_REQUEST:
      return on_channel_request(r.getChannelRequest());
    case M::CHANNEL_OPEN:
      return on_channel_open(r.getChannelOpen(), fds);
    case M::CHANNEL_CLOSE:
      link.forget_asked(r.getChannelClose().getChannel());
      channels.close(r.getChannelClose().getChannel(), r.getChannelClose().getReclaim());
      return {};
    default:
      return {};  // answers: the wait that asked for one looks at it
  }
}

Status ProducerState::on_channel_request(proto::ChannelRequest::Reader request) {
  if (request.getSide() != proto::ChannelSide::PRODUCER) return {};  // a consumer's
  // A page this side cannot make leaves the consumer on the broker's path: the producer hears
  // why from its next call, and goes on.
  if (auto ok = link.answer_channel_request(request); !ok) errors.push_back(std::move(ok.error()));
  return {};
}

Status ProducerState::on_channel_open(proto::ChannelOpen::Reader open, std::vector<UniqueFd>& fds) {
  auto opened = channels.open(open, link.take_asked(open.getChannel()), fds);
  if (!opened) {
    errors.push_back(std::move(opened.error()));
    return {};
  }
  if (!*opened) return {};  // closed meanwhile
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initChannelStarted().setChannel(**opened);
  return link.queue(message);  // out before this producer's next Publish
}

Result<bool> ProducerState::recovered(const Error& error) {
  return link.recovered(error, [this]() -> Status {
    fd_frames_in_flight = 0;  // the old broker's window went with it
    // The old broker's channels went with it: their consumers hold frames of the old pools,
    // which stay intact (each pool is registered again as a fresh memfd).
    channels.forget_all();
    for (const auto& [topic, a] : advertised) {
      if (auto ok = send_advertise(topic, a); !ok) return ok;
    }
    return pools.renew([this](const PoolState& pool, const PoolBuffer& buffer) {
      return register_pool(pool.topic, buffer, pool.slot_size,
                           static_cast<std::uint32_t>(pool.slots.size()));
    });
  });
}

template <typename Answer>
Status ProducerState::request(capnp::MessageBuilder& message, std::span<const int> fds,
                              std::string_view topic, Answer answer) {
  if (auto sent = link.send(message, fds); !sent) return fail(std::move(sent.error()));
  std::optional<Error> refused;
  auto ok = wait_for([&](proto::Message::Reader r) -> Result<bool> {
    // A refusal that answers a request (sequence 0) ends the wait as an error.
    if (r.isError() && view(r.getError().getTopic()) == topic && r.getError().getSequence() == 0) {
      refused = std::move(errors.back());
      errors.pop_back();
      return true;
    }
    return answer(r);
  });
  if (!ok) return ok;
  if (refused) return fail(std::move(*refused));
  return {};
}

Status ProducerState::send_advertise(std::string_view topic, const Advertised& a) {
  ControlMessageBuilder message;
  auto advertise = message.initRoot<proto::Message>().initAdvertise();
  advertise.setTopic(std::string(topic));
  advertise.setKind(to_proto(a.kind));
  advertise.setGuarantee(to_proto(a.level));
  static const TopicOptions defaults;
  if (a.options != defaults) topic_options_to_proto(a.options, advertise.initOptions());
  return request(message, {}, topic, [&](proto::Message::Reader r) {
    return r.isAdvertised() && view(r.getAdvertised().getTopic()) == topic;
  });
}

Result<std::uint32_t> ProducerState::register_pool(std::string_view topic, const PoolBuffer& buffer,
                                                   std::size_t slot_size,
                                                   std::uint32_t slot_count) {
  ControlMessageBuilder message;
  auto reg = message.initRoot<proto::Message>().initRegisterPool();
  reg.setTopic(std::string(topic));
  reg.setSlotCount(slot_count);
  reg.setSlotSize(slot_size);
  reg.setFd(0);
  const int fd = buffer.fd();
  std::uint32_t id = 0;
  auto ok = request(message, std::span(&fd, 1), topic, [&](proto::Message::Reader r) {
    if (!r.isPoolRegistered() || view(r.getPoolRegistered().getTopic()) != topic) return false;
    id = r.getPoolRegistered().getPool();
    return true;
  });
  if (!ok) return fail(std::move(ok.error()));
  return id;
}

std::uint64_t ProducerState::take_sequence(std::string_view topic) {
  auto it = next_sequence.find(topic);
  if (it == next_sequence.end()) it = next_sequence.emplace(std::string(topic), 1).first;
  return it->second++;
}

Result<std::uint64_t> ProducerState::sent_or_refused(std::uint64_t sequence) {
  if (auto ok = poll(); !ok) return fail(std::move(ok.error()));
  if (!errors.empty()) {
    Error first = std::move(errors.front());
    errors.pop_front();
    return fail(std::move(first));
  }
  return sequence;
}

Result<std::pair<std::uint64_t, PoolState*>> ProducerState::stage(std::string_view topic,
                                                                  const Slot& slot,
                                                                  const Layout& layout) {
  const std::uint64_t sequence = take_sequence(topic);
  auto pool = pools.publish(topic, slot, layout, sequence);
  if (!pool) {
    give_back_sequence(topic);
    return fail(std::move(pool.error()));
  }
  return std::pair(sequence, *pool);
}

EncodedMessage ProducerState::publish_message(std::string_view topic, const PoolState& pool,
                                              const Slot& slot, std::uint64_t sequence,
                                              std::uint64_t timestamp_ns, const Layout& layout,
                                              const FrameMeta& meta) {
  ControlMessageBuilder message;
  auto publish = message.initRoot<proto::Message>().initPublish();
  publish.setTopic(std::string(topic));
  auto frame = publish.initFrame();
  frame.setPool(pool.broker_id);
  frame.setSlot(slot.index);
  fill_frame(frame, sequence, timestamp_ns, layout, meta);
  return encode_message(message);
}

}  // namespace detail

Producer::Producer(std::unique_ptr<detail::ProducerState> state) : state_(std::move(state)) {}
Producer::Producer(Producer&&) noexcept = default;
Producer& Producer::operator=(Producer&&) noexcept = default;
Producer::~Producer() = default;

Result<Producer> Producer::connect(const std::string& socket_path, std::string_view client_name,
                                   Channels channels) {
  auto link = detail::BrokerLink::open(socket_path, client_name, channels, false);
  if (!link) return fail(std::move(link.error()));
  return Producer(std::make_unique<detail::ProducerState>(std::move(*link)));
}

void Producer::reconnect_on_loss(ReconnectOptions options) {
  state_->link.reconnect_on_loss(options);
}
std::uint64_t Producer::reconnects() const noexcept {
  return state_->link.reconnects();
}
int Producer::native_handle() const noexcept {
  return state_->link.connection().fd();
}
bool Producer::uses_channels() const noexcept {
  return state_->link.bell() != nullptr;
}
std::size_t Producer::channels() const noexcept {
  return state_->channels.size();
}

Status Producer::advertise(std::string_view topic, LayoutKind kind, Guarantee level) {
  return advertise(topic, kind, level, TopicOptions{});
}

Status Producer::advertise(std::string_view topic, LayoutKind kind, Guarantee level,
                           const TopicOptions& options) {
  if (auto ok = check_topic_name(topic); !ok) return ok;
  if (auto ok = check_topic_options(options); !ok) return ok;
  if (options != TopicOptions{} && state_->link.connection().version() < 5) {
    return fail(Errc::invalid_argument,
                "topic options need protocol version 5; the broker speaks " +
                    std::to_string(state_->link.connection().version()));
  }
  const detail::Advertised a{kind, level, options};
  auto ok = state_->send_advertise(topic, a);
  if (ok) {
    state_->advertised[std::string(topic)] = a;
    state_->any_timestamps_required |= options.timestamps_required;
  }
  return ok;
}

Status Producer::unadvertise(std::string_view topic) {
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initUnadvertise().setTopic(std::string(topic));
  auto ok = state_->request(message, {}, topic, [&](proto::Message::Reader r) {
    return r.isUnadvertised() && view(r.getUnadvertised().getTopic()) == topic;
  });
  if (!ok) return ok;
  state_->pools.erase_topic(topic);
  if (auto it = state_->advertised.find(topic); it != state_->advertised.end()) {
    state_->advertised.erase(it);
  }
  // Its channels are over (the broker ended them): what consumers hold of the pools stays.
  state_->channels.forget_topic(topic);
  state_->link.forget_asked_of(topic);
  return {};
}

Result<WritableBuffer> Producer::allocate(std::string_view topic, const Layout& layout,
                                          MemfdOptions options) {
  auto extent = layout_extent(layout);
  if (!extent) return fail(std::move(extent.error()));
  return WritableBuffer::create(topic, static_cast<std::size_t>(*extent), options);
}

Result<PreparedFrame> Producer::prepare(std::string_view topic, WritableBuffer buffer,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  return prepare(topic, std::move(buffer), layout, FrameMeta{}, timestamp_ns);
}

Result<PreparedFrame> Producer::prepare(std::string_view topic, WritableBuffer buffer,
                                        const Layout& layout, const FrameMeta& meta,
                                        std::uint64_t timestamp_ns) {
  auto extent = validate_layout(layout, buffer.size());
  if (!extent) return fail(std::move(extent.error()));
  if (auto ok = state_->check_meta(topic, meta, layout); !ok) return fail(std::move(ok.error()));
  auto sealed = std::move(buffer).seal();
  if (!sealed) return fail(std::move(sealed.error()));
  const std::uint64_t sequence = state_->take_sequence(topic);
  ControlMessageBuilder message;
  auto publish = message.initRoot<proto::Message>().initPublish();
  publish.setTopic(std::string(topic));
  auto frame = publish.initFrame();
  frame.setFd(0);
  detail::fill_frame(frame, sequence, timestamp_ns, layout, meta);
  return PreparedFrame{std::string(topic), sequence, std::move(*sealed), encode_message(message)};
}

bool Producer::window_full() const noexcept {
  return state_->window_full();
}

Result<std::optional<std::uint64_t>> Producer::try_send(PreparedFrame& frame) {
  const int fd = frame.buffer ? frame.buffer->fd() : -1;
  if (fd >= 0 && window_full()) {
    if (auto ok = state_->drain(); !ok) return fail(std::move(ok.error()));
    if (window_full()) return std::optional<std::uint64_t>();
  }
  auto sent =
      state_->link.send(frame.message.bytes(), fd >= 0 ? std::span(&fd, 1) : std::span<const int>(),
                        IoMode::non_blocking);
  if (!sent) return fail(std::move(sent.error()));
  if (*sent == SendStatus::would_block) return std::optional<std::uint64_t>();
  if (fd >= 0) ++state_->fd_frames_in_flight;
  auto done = state_->sent_or_refused(frame.sequence);
  if (!done) return fail(std::move(done.error()));
  return std::optional<std::uint64_t>(*done);
}

Result<std::uint64_t> Producer::publish(std::string_view topic, WritableBuffer buffer,
                                        const Layout& layout, std::uint64_t timestamp_ns) {
  return publish(topic, std::move(buffer), layout, FrameMeta{}, timestamp_ns);
}

Result<std::uint64_t> Producer::publish(std::string_view topic, WritableBuffer buffer,
                                        const Layout& layout, const FrameMeta& meta,
                                        std::uint64_t timestamp_ns) {
  auto frame = prepare(topic, std::move(buffer), layout, meta, timestamp_ns);
  if (!frame) return fail(std::move(frame.error()));
  detail::ProducerState& s = *state_;
  const int fd = frame->buffer->fd();
  for (;;) {
    // Blocking: under block-producer backpressure the broker stops reading, its Credit
    // stops, and this waits here once the window is full.
    Status ok =
        s.window_full()
            ? s.wait_for([&](proto::Message::Reader) { return Result<bool>(!s.window_full()); })
            : Status{};
    if (ok) ok = s.link.send(frame->message.bytes(), std::span(&fd, 1)).map([](SendStatus) {});
    if (!ok) {
      // To the new broker, with the same sequence number.
      if (auto again = s.recovered(ok.error()); !again) return fail(std::move(again.error()));
      continue;
    }
    ++s.fd_frames_in_flight;
    auto done = s.sent_or_refused(frame->sequence);
    if (!done && s.recovered(done.error())) return frame->sequence;  // sent; the broker then went
    return done;
  }
}

Result<std::vector<Error>> Producer::poll_errors() {
  // The refusals that came before a disconnect say why it happened: they are returned first,
  // the disconnect on the next call.
  if (auto ok = state_->drain(); !ok && state_->errors.empty()) {
    if (auto again = state_->recovered(ok.error()); !again) return fail(std::move(again.error()));
  }
  std::vector<Error> out(std::make_move_iterator(state_->errors.begin()),
                         std::make_move_iterator(state_->errors.end()));
  state_->errors.clear();
  return out;
}

}  // namespace shmfd
