// Consumer: subscriptions, receiving and reconnecting, over a BrokerLink; one handler for each
// kind of message a consumer gets.
#include "shmfd/consumer.hpp"

#include <algorithm>
#include <atomic>
#include <deque>
#include <map>

#include "broker_link.hpp"
#include "consumer_channels.hpp"
#include "shmfd/wire/intake.hpp"
#include "subscriptions.hpp"

namespace shmfd {
namespace detail {
namespace {

// A Subscribed or Unsubscribed answer.
struct Answered {
  std::string topic;
  bool subscribed = true;
  std::uint32_t depth = 0;
};

// What one message comes to for the call that read it: nothing more (handled), an event for
// the program, an answer, or a refusal.
using Incoming = std::variant<std::monostate, Event, Answered, Error>;

}  // namespace

struct ConsumerState {
  explicit ConsumerState(BrokerLink l) : link(std::move(l)) {}
  ConsumerState(const ConsumerState&) = delete;
  ConsumerState& operator=(const ConsumerState&) = delete;

  BrokerLink link;
  ConsumerChannels channels;
  Subscriptions subscriptions;
  // What each topic's producer declared (TopicAdvertised, version 5).
  detail::TopicOptionsMap topic_options;
  std::deque<Event> early;  // events read while a call waited for something else
  // Made once: a std::function per frame would cost on the channel path's every frame.
  const Accounting accounting = [this](const std::string& topic, std::uint64_t sequence,
                                       std::uint64_t reported) {
    return subscriptions.account(topic, sequence, reported);
  };

  Result<std::optional<Incoming>> read_one(IoMode mode) {
    return link.read(
        mode, [&](proto::Message::Reader r, std::vector<UniqueFd>& fds) { return handle(r, fds); });
  }
  Result<Incoming> handle(proto::Message::Reader r, std::vector<UniqueFd>& fds);
  Result<Incoming> on_deliver(proto::Deliver::Reader deliver, std::vector<UniqueFd>& fds);
  Incoming on_end_of_stream(proto::EndOfStream::Reader end);
  Result<Incoming> on_channel_request(proto::ChannelRequest::Reader request);

  // Sends `message` and reads until its answer for `topic`; events that come meanwhile are kept
  // for receive(), unless `drop` says to drop them.
  template <typename Drop>
  Result<std::uint32_t> request(capnp::MessageBuilder& message, std::string_view topic,
                                bool subscribe, Drop drop);
  Result<std::uint32_t> send_subscribe(std::string_view topic, std::uint32_t depth,
                                       Backpressure policy);
  // Connects again after `lost` and renews every subscription: the event to report first.
  Result<Event> reconnect(const Error& lost);
  Result<std::optional<Event>> next(IoMode mode);
  Result<std::optional<Event>> next_with_channels(IoMode mode,
                                                  std::chrono::steady_clock::time_point deadline);
  // A frame handed to the program: one that came through the broker counts for the Read sent
  // when the program asks for more (report_reads), or at once to a program that waits on the
  // socket (native_handle()), which may wait while it holds this frame.
  void handed(const Event& event) {
    const auto* frame = std::get_if<Frame>(&event);
    if (frame == nullptr || FrameBuilder::on_channel(*frame)) return;
    subscriptions.handed(*frame);
    if (waits_on_socket.load(std::memory_order_relaxed)) report_reads();
  }
  void report_reads() { subscriptions.report_reads(link); }
  // native_handle() was asked for (an event loop polls it); set from any thread.
  std::atomic<bool> waits_on_socket{false};

  std::optional<Event> pop_early() {
    if (early.empty()) return std::nullopt;
    Event e = std::move(early.front());
    early.pop_front();
    return e;
  }
};

Result<Incoming> ConsumerState::handle(proto::Message::Reader r, std::vector<UniqueFd>& fds) {
  using M = proto::Message;
  switch (r.which()) {
    case M::DELIVER:
      return on_deliver(r.getDeliver(), fds);
    case M::SUBSCRIBED:
      return Incoming(
          Answered{text_of(r.getSubscribed().getTopic()), true, r.getSubscribed().getQueueDepth()});
    case M::UNSUBSCRIBED:
      return Incoming(Answered{text_of(r.getUnsubscribed().getTopic()), false, 0});
    case M::END_OF_STREAM:
      return on_end_of_stream(r.getEndOfStream());
    case M::ERROR:
      return Incoming(broker_error(r.getError()));
    case M::POOL_ATTACH:
      if (auto ok = channels.attach_pool(r.getPoolAttach(), fds); !ok) return fail(ok.error());
      return Incoming();
    case M::CHANNEL_REQUEST:
      return on_channel_request(r.getChannelRequest());
    case M::TOPIC_ADVERTISED: {
      auto advertised = r.getTopicAdvertised();
      topic_options.insert_or_assign(text_of(advertised.getTopic()),
                                     topic_options_from_proto(advertised.getOptions()));
      return Incoming();
    }
    case M::CHANNEL_OPEN: {
      auto open = r.getChannelOpen();
      if (auto ok = channels.open(open, link.take_asked(open.getChannel()), fds); !ok) {
        return fail(std::move(ok.error()));
      }
      return Incoming();
    }
    case M::CHANNEL_CLOSE:
      link.forget_asked(r.getChannelClose().getChannel());
      channels.close(r.getChannelClose().getChannel());
      return Incoming();
    case M::DEFINE_LAYOUT:
      if (auto ok = channels.define_layout(r.getDefineLayout()); !ok) return fail(ok.error());
      return Incoming();
    default:
      return fail(Errc::protocol_violation, "the broker sent a message consumers never get (" +
                                                message_name(r.which()) + ")");
  }
}

Result<Incoming> ConsumerState::on_channel_request(proto::ChannelRequest::Reader request) {
  if (request.getSide() != proto::ChannelSide::CONSUMER) {
    return fail(Errc::protocol_violation, "the broker asked a consumer for a producer's page");
  }
  if (auto ok = link.answer_channel_request(request); !ok) return fail(std::move(ok.error()));
  return Incoming();
}

Incoming ConsumerState::on_end_of_stream(proto::EndOfStream::Reader end) {
  EndOfStream eos{text_of(end.getTopic()), text_of(end.getReason()),
                  subscriptions.account(text_of(end.getTopic()), 0, end.getDropped())};
  // With frames still on a channel of the topic, the end comes from the channel, after them.
  if (channels.end_stream(eos, end.getProducer())) return Incoming();
  return Incoming(Event(std::move(eos)));
}

Result<Incoming> ConsumerState::on_deliver(proto::Deliver::Reader deliver,
                                           std::vector<UniqueFd>& fds) {
  auto frame = deliver.getFrame();
  auto layout = layout_from_proto(frame.getLayout());
  Frame out = FrameBuilder::make();
  FrameBuilder::topic(out) = text_of(deliver.getTopic());
  // From here on the broker counts this frame as ours: it is released on every path.
  FrameBuilder::from_socket(out, link.shared());
  if (!layout) return fail(std::move(layout.error()));
  FrameBuilder::set(out, frame.getSequence(), frame.getTimestampNs(), std::move(*layout));
  if (frame.hasMeta()) {
    // Checked by the broker; checked again here against what this consumer knows of the topic,
    // so a frame never shows what its topic does not allow.
    const FrameMeta meta = meta_from_proto(frame.getMeta());
    if (auto ok = detail::check_received_meta(meta, topic_options, out.topic(),
                                              FrameBuilder::layout(out));
        !ok) {
      return fail(Errc::protocol_violation, "the broker delivered frame " +
                                                std::to_string(frame.getSequence()) + " of '" +
                                                out.topic() + "' with " + ok.error().message());
    }
    FrameBuilder::meta(out, meta);
  }
  FrameBuilder::dropped(
      out, subscriptions.account(out.topic(), frame.getSequence(), deliver.getDropped()));
  if (frame.getPool() != 0) {
    auto in_pool = channels.pool_frame(frame.getPool(), frame.getSlot(), std::move(out));
    if (!in_pool) return fail(std::move(in_pool.error()));
    return Incoming(Event(std::move(*in_pool)));
  }
  // The broker verified it; checking again, at the level the broker says it checked, costs
  // ~0.4 us and guards against a broker bug.
  auto guarantee = guarantee_from_proto(deliver.getGuarantee());
  if (!guarantee) return fail(std::move(guarantee.error()));
  if (auto ok = map_own_frame(out, frame, fds, *guarantee); !ok) return fail(std::move(ok.error()));
  return Incoming(Event(std::move(out)));
}

template <typename Drop>
Result<std::uint32_t> ConsumerState::request(capnp::MessageBuilder& message, std::string_view topic,
                                             bool subscribe, Drop drop) {
  if (auto sent = link.send(message); !sent) return fail(std::move(sent.error()));
  for (;;) {
    auto incoming = read_one(IoMode::blocking);
    if (!incoming) return fail(std::move(incoming.error()));
    Incoming& in = **incoming;
    if (auto* a = std::get_if<Answered>(&in);
        a && a->subscribed == subscribe && a->topic == topic) {
      return a->depth;
    }
    if (auto* e = std::get_if<Error>(&in)) return fail(std::move(*e));
    if (auto* event = std::get_if<Event>(&in); event && !drop(*event)) {
      early.push_back(std::move(*event));
    }
  }
}

Result<std::uint32_t> ConsumerState::send_subscribe(std::string_view topic, std::uint32_t depth,
                                                    Backpressure policy) {
  ControlMessageBuilder message;
  auto subscribe = message.initRoot<proto::Message>().initSubscribe();
  subscribe.setTopic(std::string(topic));
  // Latest is drop-oldest with a depth of 1 on the wire: the broker keeps the newest frame.
  subscribe.setQueueDepth(policy == Backpressure::latest ? 1 : depth);
  subscribe.setBackpressure(to_proto(policy));
  subscribe.setPrefetch(prefetch_of(policy, link.connection().version()));
  return request(message, topic, true, [](const Event&) { return false; });
}

Result<Event> ConsumerState::reconnect(const Error& lost) {
  const auto start = std::chrono::steady_clock::now();
  // Events read from the lost connection but not received yet: delivered before Reconnected
  // (their frames were counted when read, and their pages stay mapped).
  std::deque<Event> before;
  auto again = link.recovered(lost, [&]() -> Status {
    for (Event& e : early) before.push_back(std::move(e));
    early.clear();
    // The old broker's pools and channels went with it; frames held from before keep theirs.
    channels = ConsumerChannels();
    return subscriptions.renew(link.connection().version(),
                               [&](const std::string& topic, const Subscription& sub) -> Status {
                                 auto granted = send_subscribe(topic, sub.depth, sub.policy);
                                 if (!granted) return fail(std::move(granted.error()));
                                 return {};
                               });
  });
  if (!again) return fail(std::move(again.error()));
  // Then the new connection's own (frames that came while subscribe() waited).
  early.push_front(Event(Reconnected{std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - start)}));
  for (auto it = before.rbegin(); it != before.rend(); ++it) early.push_front(std::move(*it));
  return *pop_early();
}

Result<std::optional<Event>> ConsumerState::next(IoMode mode) {
  if (link.bell() != nullptr) {
    return next_with_channels(mode, std::chrono::steady_clock::time_point::max());
  }
  if (auto e = pop_early()) return e;
  auto incoming = read_one(mode);
  if (!incoming && incoming.error().is(Errc::disconnected) && link.reconnects_on_loss()) {
    auto reconnected = reconnect(incoming.error());
    if (!reconnected) return fail(std::move(reconnected.error()));
    return std::optional<Event>(std::move(*reconnected));
  }
  if (!incoming) return fail(std::move(incoming.error()));
  if (!*incoming) return std::optional<Event>();
  if (auto* e = std::get_if<Error>(&**incoming)) return fail(std::move(*e));
  if (auto* event = std::get_if<Event>(&**incoming)) return std::optional<Event>(std::move(*event));
  return std::optional<Event>();
}

Result<std::optional<Event>> ConsumerState::next_with_channels(
    IoMode mode, std::chrono::steady_clock::time_point deadline) {
  constexpr auto never = std::chrono::steady_clock::time_point::max();
  for (;;) {
    if (link.socket_due()) {
      for (;;) {
        auto incoming = read_one(IoMode::non_blocking);
        if (!incoming && incoming.error().is(Errc::disconnected) && link.reconnects_on_loss()) {
          auto reconnected = reconnect(incoming.error());
          if (!reconnected) return fail(std::move(reconnected.error()));
          return std::optional<Event>(std::move(*reconnected));
        }
        if (!incoming) return fail(std::move(incoming.error()));
        if (!*incoming) break;
        if (auto* e = std::get_if<Error>(&**incoming)) return fail(std::move(*e));
        if (auto* event = std::get_if<Event>(&**incoming)) early.push_back(std::move(*event));
      }
    } else if (auto ok = link.flush(); !ok) {
      return fail(std::move(ok.error()));  // releases of frames dropped on other threads
    }
    // What came through the socket is older than what waits on the channels.
    if (auto e = pop_early()) return e;
    if (auto event =
            channels.next(topic_options, link.bell()->count(), link.bell_seen(), accounting)) {
      return event;
    }
    // The deadline on the precise clock, as waitv sleeps on it: the coarse one lags it by up
    // to a tick, and waitv would return at once, again and again, until it caught up.
    if (mode == IoMode::non_blocking ||
        (deadline != never && std::chrono::steady_clock::now() >= deadline)) {
      return std::optional<Event>();
    }
    const auto readers = channels.readers();
    const LocalWake wake = link.release_wake();  // its value before announcing the sleep
    ReleaseQueue& releases = link.shared()->releases;
    if (!releases.begin_sleep(ReleaseQueue::Sleep::on_futex)) continue;
    waitv(readers, link.bell(), link.bell_seen(),
          std::min(deadline, std::chrono::steady_clock::now() + kSocketCheck), wake);
    releases.end_sleep();
  }
}

}  // namespace detail

Consumer::Consumer(std::unique_ptr<detail::ConsumerState> state) : state_(std::move(state)) {}
Consumer::Consumer(Consumer&&) noexcept = default;

Consumer& Consumer::operator=(Consumer&& other) noexcept {
  if (this != &other) {
    drop_queued();
    state_ = std::move(other.state_);
  }
  return *this;
}

Consumer::~Consumer() {
  drop_queued();
}

void Consumer::drop_queued() noexcept {
  if (!state_) return;
  std::deque<Event> queued;
  queued.swap(state_->early);
}  // `queued` goes here: each frame's release (sent now: no call runs), and perhaps the
   // connection's last owners

Result<Consumer> Consumer::connect(const std::string& socket_path, std::string_view client_name,
                                   Channels channels) {
  auto link = detail::BrokerLink::open(socket_path, client_name, channels, true);
  if (!link) return fail(std::move(link.error()));
  return Consumer(std::make_unique<detail::ConsumerState>(std::move(*link)));
}

void Consumer::reconnect_on_loss(ReconnectOptions options) {
  state_->link.reconnect_on_loss(options);
}

int Consumer::native_handle() const noexcept {
  state_->waits_on_socket.store(true, std::memory_order_relaxed);
  return state_->link.connection().fd();
}

bool Consumer::uses_channels() const noexcept {
  return state_->link.bell() != nullptr;
}

std::uint64_t Consumer::channel_refusals() const noexcept {
  return state_->channels.refusals();
}

Result<std::uint32_t> Consumer::subscribe(std::string_view topic, std::uint32_t depth,
                                          Backpressure policy) {
  if (auto ok = check_topic_name(topic); !ok) return fail(std::move(ok.error()));
  detail::InCall call(state_->link);
  auto granted = state_->send_subscribe(topic, depth, policy);
  if (granted) state_->subscriptions.add(topic, depth, policy, state_->link.connection().version());
  return granted;
}

Status Consumer::unsubscribe(std::string_view topic) {
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initUnsubscribe().setTopic(std::string(topic));
  const auto of_topic = [&](const Event& e) {
    const auto* frame = std::get_if<Frame>(&e);
    return frame != nullptr && frame->topic() == topic;
  };
  detail::InCall call(state_->link);
  std::erase_if(state_->early, of_topic);  // released here, unseen
  auto answered = state_->request(message, topic, false, of_topic);
  if (!answered) return fail(std::move(answered.error()));
  // No frame of the topic's pools comes any more; frames still held keep their mapping (and
  // release into their channel's page: the producer waits for those).
  state_->channels.unsubscribed(topic);
  state_->subscriptions.erase(topic);
  return {};
}

Result<Event> Consumer::receive() {
  detail::InCall call(state_->link);
  state_->report_reads();
  for (;;) {
    auto event = state_->next(IoMode::blocking);
    if (!event) return fail(std::move(event.error()));
    if (*event) {
      state_->handed(**event);
      return std::move(**event);
    }
  }
}

Result<std::optional<Event>> Consumer::try_receive() {
  detail::InCall call(state_->link);
  state_->report_reads();
  auto event = state_->next(IoMode::non_blocking);
  if (event && *event) state_->handed(**event);
  return event;
}

Result<std::optional<Event>> Consumer::receive_for(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  detail::InCall call(state_->link);
  state_->report_reads();
  auto event = [&]() -> Result<std::optional<Event>> {
    if (state_->link.bell() != nullptr) {
      if (!state_->early.empty()) return state_->next(IoMode::non_blocking);
      return state_->next_with_channels(IoMode::blocking, deadline);
    }
    for (;;) {
      auto e = state_->next(IoMode::non_blocking);
      if (!e || *e) return e;
      if (auto ok = state_->link.wait_readable(deadline); !ok) return fail(std::move(ok.error()));
      if (std::chrono::steady_clock::now() >= deadline) return state_->next(IoMode::non_blocking);
    }
  }();
  if (event && *event) state_->handed(**event);
  return event;
}

std::optional<TopicOptions> Consumer::topic_options(std::string_view topic) const {
  const auto it = state_->topic_options.find(topic);
  if (it == state_->topic_options.end()) return std::nullopt;
  return it->second;
}

}  // namespace shmfd
