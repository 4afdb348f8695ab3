// Caller and Server (protocol version 6, docs/PROTOCOL.md section 16) over a BrokerLink: what a
// call, a request, a response and a cancel mean to a client. The broker does the routing, the
// verification and the failure of calls; this side numbers its calls, maps the frames that come
// and keeps the responses of each call apart.
#include "shmfd/service.hpp"

#include <algorithm>

#include "call_pools.hpp"
#include "consumer_channels.hpp"
#include "producer_state.hpp"

namespace shmfd {
namespace detail {
namespace {

// The broker's CallError and CallErrc number their failures alike (0 is "none").
static_assert(static_cast<int>(proto::CallError::NO_SERVER) ==
              static_cast<int>(CallErrc::no_server));
static_assert(static_cast<int>(proto::CallError::CANCELLED) ==
              static_cast<int>(CallErrc::cancelled));
static_assert(static_cast<int>(proto::CancelReason::CALLER_GONE) ==
              static_cast<int>(CancelReason::caller_gone));
static_assert(static_cast<int>(proto::CancelReason::CANCELLED) ==
              static_cast<int>(CancelReason::cancelled));

std::string n(std::uint64_t v) {
  return std::to_string(v);
}

Status needs_services(const BrokerLink& link) {
  const std::uint32_t version = link.connection().version();
  if (version >= 6) return {};
  return tl::unexpected(Error(make_error_code(BrokerErrc::protocol_version),
                              "the broker speaks protocol version " + n(version) +
                                  "; services need version 6 (shmfd 0.5 or later)"));
}

// A caller's or server's connection: no channels (calls go through the broker), frames of
// peers' pools that release from any thread (as a consumer's), and a broker that speaks
// services.
Result<BrokerLink> open_service_link(const std::string& socket_path, std::string_view name) {
  auto link = BrokerLink::open(socket_path, name, Channels::off, true);
  if (!link) return fail(std::move(link.error()));
  if (auto ok = needs_services(*link); !ok) return fail(std::move(ok.error()));
  return link;
}

// A frame of a Request or Response with a buffer of its own, mapped read-only and checked again
// here. (A frame in a slot of a peer's pool is CallPools::frame().)
Result<Frame> received_frame(const std::string& service, proto::Frame::Reader frame,
                             proto::Guarantee guarantee, std::vector<UniqueFd>& fds) {
  auto level = guarantee_from_proto(guarantee);
  if (!level) return fail(std::move(level.error()));
  Frame out = FrameBuilder::make();
  if (auto ok = describe_call_frame(out, service, frame); !ok) return fail(std::move(ok.error()));
  if (auto ok = map_own_frame(out, frame, fds, *level); !ok) return fail(std::move(ok.error()));
  return out;
}

// Seals `buffer` and fills `frame` for it (fd index 0); the sealed buffer goes with the message.
Result<SealedBuffer> seal_into(proto::Frame::Builder frame, WritableBuffer buffer,
                               const Layout& layout, const FrameMeta& meta,
                               std::uint64_t sequence) {
  if (auto fits = validate_layout(layout, buffer.size()); !fits) {
    return fail(Errc::invalid_argument, "the layout does not fit the buffer of " +
                                            n(buffer.size()) + " bytes: " + fits.error().message());
  }
  if (auto ok = check_frame_meta(meta, service_frame_options(), layout); !ok)
    return fail(std::move(ok.error()));
  auto sealed = std::move(buffer).seal();
  if (!sealed) return fail(std::move(sealed.error()));
  fill_frame(frame, sequence, 0, layout, meta);
  frame.setFd(0);
  return sealed;
}

// acquire() of a Caller or a Server: `try_once()` until a slot is free, `wait_once()` between
// tries (reading the broker); `holders` names who holds the slots, for Errc::no_free_slot.
template <typename Try, typename WaitOnce>
Result<Slot> acquire_loop(std::uint32_t pool, Wait wait, const char* holders, Try&& try_once,
                          WaitOnce&& wait_once) {
  for (;;) {
    auto slot = try_once();
    if (!slot) return fail(std::move(slot.error()));
    if (*slot) return **slot;
    if (wait == Wait::fail_fast) {
      return fail(Errc::no_free_slot,
                  "pool " + std::to_string(pool) + ": every slot is held by " + holders);
    }
    if (auto ok = wait_once(); !ok) return fail(std::move(ok.error()));
  }
}

}  // namespace

// ---- Caller ----

struct CallerState {
  explicit CallerState(BrokerLink l) : link(std::move(l)) {}
  // Frames of servers' pools that this caller returned keep its connection open while they
  // live: its calls still in flight end here, not when the last such frame goes.
  ~CallerState() {
    if (lost || link.shared().use_count() == 1) return;  // closing: the broker cancels them
    for (const auto& [id, call] : calls) {
      if (call.over || call.dropping) continue;
      ControlMessageBuilder message;
      message.initRoot<proto::Message>().initCancelCall().setCall(id);
      if (!link.send(message, {}, IoMode::non_blocking)) return;
    }
  }
  CallerState(const CallerState&) = delete;
  CallerState& operator=(const CallerState&) = delete;

  struct Pending {
    std::string service;
    std::deque<Result<Response>> responses;  // come and not yet taken
    bool over = false;                       // the last response (or the failure) is among them
    bool dropping = false;  // cancelled here: what comes is dropped until the broker's last
  };

  Result<CallId> start(std::string_view service, std::optional<WritableBuffer> buffer,
                       const Slot* slot, const Layout* layout, const CallOptions& options,
                       const FrameMeta& meta);
  Result<Response> next(CallId id, IoMode mode, std::chrono::steady_clock::time_point deadline,
                        bool& timed_out);
  Status handle(proto::Message::Reader m, std::vector<UniqueFd>& fds);
  // Reads and handles one message; false when non-blocking and none was there.
  Result<bool> pump(IoMode mode);
  // The broker is gone: every call not over fails with `lost`.
  void lose(const Error& lost);
  // After a loss: connected again (pools registered again), if this caller reconnects; else
  // the loss.
  Status reconnect_if_lost() {
    if (!lost) return {};
    if (!link.reconnects_on_loss()) return fail(Error(*lost));
    auto again =
        link.recovered(*lost, [this] { return pools.renew(link, [this] { return pump_one(); }); });
    if (!again) return fail(std::move(again.error()));
    lost.reset();
    return {};
  }

  // Reads and handles one message, blocking: what a wait for the broker does.
  Status pump_one() {
    auto got = pump(IoMode::blocking);
    return got ? Status{} : Status(tl::unexpect, std::move(got.error()));
  }

  BrokerLink link;
  CallPools pools;
  CallId next_id = 1;
  std::map<CallId, Pending> calls;
  std::optional<Error> lost;  // the broker went; reconnected at the next start()
};

void CallerState::lose(const Error& error) {
  for (auto& [id, call] : calls) {
    if (!call.over && !call.dropping) call.responses.emplace_back(tl::unexpect, error);
    call.over = true;
  }
  std::erase_if(calls, [](const auto& c) { return c.second.dropping; });
  lost = error;
}

Result<bool> CallerState::pump(IoMode mode) {
  auto m = link.receive(mode);
  if (!m) {
    lose(m.error());
    return fail(std::move(m.error()));
  }
  if (!*m) return false;
  auto ok = decode_message<proto::Message>(
      link.bytes(**m), [&](proto::Message::Reader r) { return handle(r, (*m)->fds); });
  if (!ok) return fail(std::move(ok.error()));
  return true;
}

Status CallerState::handle(proto::Message::Reader m, std::vector<UniqueFd>& fds) {
  using M = proto::Message;
  if (auto done = pools.handle(m, fds)) return *done;
  if (m.which() == M::ERROR) {
    // A refused Call names its service and the caller's call id.
    const auto e = m.getError();
    Error error = broker_error(e);
    auto it = calls.find(e.getSequence());
    if (it != calls.end() && !it->second.over && e.hasTopic() &&
        view(e.getTopic()) == it->second.service) {
      if (!it->second.dropping) it->second.responses.emplace_back(tl::unexpect, std::move(error));
      it->second.over = true;
      if (it->second.dropping) calls.erase(it);
      return {};
    }
    return fail(std::move(error));  // about no call: the caller's own mistake, or a final one
  }
  if (m.which() != M::RESPONSE) {
    return fail(Errc::protocol_violation,
                "the broker sent " + message_name(m.which()) + " to a caller");
  }
  const auto r = m.getResponse();
  auto it = calls.find(r.getCall());
  // A frame in a pool slot is this caller's from here on: dropped below, it is released.
  std::optional<Frame> frame;
  if (r.getHasFrame() && r.getError() == proto::CallError::NONE && r.getFrame().getPool() != 0) {
    auto got = pools.frame(it == calls.end() ? std::string() : it->second.service, r.getFrame(),
                           link.shared());
    if (!got) return fail(std::move(got.error()));
    frame.emplace(std::move(*got));
  }
  // A call cancelled here and over: what was still on its way is dropped (its fd closes).
  if (it == calls.end() || it->second.over) return {};
  Pending& call = it->second;
  const bool last = r.getLast() || r.getError() != proto::CallError::NONE;
  if (call.dropping) {
    if (last) calls.erase(it);
    return {};
  }
  if (r.getError() != proto::CallError::NONE) {
    const auto code = static_cast<CallErrc>(r.getError());
    call.responses.emplace_back(
        tl::unexpect, Error(make_error_code(code), "call to '" + call.service + "' failed (" +
                                                       std::string(name(code)) +
                                                       "): " + text_of(r.getMessage())));
  } else {
    Response response;
    response.last = last;
    response.frame = std::move(frame);
    if (!response.frame && r.getHasFrame()) {
      auto got = received_frame(call.service, r.getFrame(), r.getGuarantee(), fds);
      if (!got) return fail(std::move(got.error()));
      response.frame.emplace(std::move(*got));
    }
    call.responses.emplace_back(std::move(response));
  }
  call.over = last;
  return {};
}

Result<CallId> CallerState::start(std::string_view service, std::optional<WritableBuffer> buffer,
                                  const Slot* slot, const Layout* layout,
                                  const CallOptions& options, const FrameMeta& meta) {
  if (auto ok = check_topic_name(service); !ok) return fail(std::move(ok.error()));
  if (auto ok = reconnect_if_lost(); !ok) return fail(std::move(ok.error()));
  if (auto ok = needs_services(link); !ok) return fail(std::move(ok.error()));
  const CallId id = next_id++;
  ControlMessageBuilder message;
  auto call = message.initRoot<proto::Message>().initCall();
  call.setService(std::string(service));
  call.setCall(id);
  const auto ms = std::clamp<std::int64_t>(options.deadline.count(), 0, 0xFFFFFFFF);
  call.setDeadlineMs(static_cast<std::uint32_t>(ms));
  call.setWhenBusy(options.when_busy == WhenBusy::wait ? proto::WhenBusy::WAIT
                                                       : proto::WhenBusy::FAIL);
  std::optional<SealedBuffer> sealed;
  if (buffer) {
    auto s = seal_into(call.initFrame(), std::move(*buffer), *layout, meta, id);
    if (!s) return fail(std::move(s.error()));
    sealed.emplace(std::move(*s));
    call.setHasFrame(true);
  } else if (slot != nullptr) {
    if (auto ok = pools.stage(call.initFrame(), *slot, *layout, meta, id); !ok)
      return fail(std::move(ok.error()));
    call.setHasFrame(true);
  }
  const int fd = sealed ? sealed->fd() : -1;
  auto sent = fd >= 0 ? link.send(message, std::span(&fd, 1)) : link.send(message);
  if (!sent) {
    if (slot != nullptr) pools.unstage(*slot);  // never sent: the program's again
    lose(sent.error());
    return fail(std::move(sent.error()));
  }
  calls.emplace(id, Pending{std::string(service), {}, false, false});
  return id;
}

Result<Response> CallerState::next(CallId id, IoMode mode,
                                   std::chrono::steady_clock::time_point deadline,
                                   bool& timed_out) {
  timed_out = false;
  for (;;) {
    auto it = calls.find(id);
    if (it == calls.end() || it->second.dropping) {
      return fail(Errc::invalid_argument, "this caller has no call " + n(id) + " in flight");
    }
    if (!it->second.responses.empty()) {
      Result<Response> out = std::move(it->second.responses.front());
      it->second.responses.pop_front();
      if (it->second.over && it->second.responses.empty()) calls.erase(it);
      return out;
    }
    if (lost) return fail(Error(*lost));
    auto got = pump(IoMode::non_blocking);
    if (!got) {
      if (calls.count(id) != 0) continue;  // the loss failed this call too: returned above
      return fail(std::move(got.error()));
    }
    if (*got) continue;
    if (mode == IoMode::non_blocking && std::chrono::steady_clock::now() >= deadline) {
      timed_out = true;
      return Response{};
    }
    if (auto ok = link.wait_readable(deadline); !ok) return fail(std::move(ok.error()));
  }
}

}  // namespace detail

Caller::Caller(std::unique_ptr<detail::CallerState> state) : state_(std::move(state)) {}
Caller::Caller(Caller&&) noexcept = default;
Caller& Caller::operator=(Caller&& other) noexcept = default;
Caller::~Caller() = default;

Result<Caller> Caller::connect(const std::string& socket_path, std::string_view client_name) {
  auto link = detail::open_service_link(socket_path, client_name);
  if (!link) return fail(std::move(link.error()));
  return Caller(std::make_unique<detail::CallerState>(std::move(*link)));
}

Result<CallId> Caller::start(std::string_view service, WritableBuffer buffer, const Layout& layout,
                             const CallOptions& options, const FrameMeta& meta) {
  detail::InCall in(state_->link);
  return state_->start(service, std::move(buffer), nullptr, &layout, options, meta);
}

Result<CallId> Caller::start(std::string_view service, const Slot& slot, const Layout& layout,
                             const CallOptions& options, const FrameMeta& meta) {
  detail::InCall in(state_->link);
  return state_->start(service, std::nullopt, &slot, &layout, options, meta);
}

Result<CallId> Caller::start(std::string_view service, const CallOptions& options) {
  detail::InCall in(state_->link);
  return state_->start(service, std::nullopt, nullptr, nullptr, options, FrameMeta{});
}

Result<std::uint32_t> Caller::create_pool(std::size_t slot_bytes, std::uint32_t slot_count,
                                          MemfdOptions options) {
  detail::InCall in(state_->link);
  auto& s = *state_;
  return s.pools.create(
      s.link, [&s] { return s.pump_one(); }, slot_bytes, slot_count, options);
}

Result<std::optional<Slot>> Caller::try_acquire(std::uint32_t pool) {
  detail::InCall in(state_->link);
  auto& s = *state_;
  // SlotFree that came meanwhile.
  for (;;) {
    auto got = s.pump(IoMode::non_blocking);
    if (!got || !*got) break;  // a lost broker: the calls in flight failed (lose())
  }
  // A new broker holds no slot: all free once connected again.
  if (auto ok = s.reconnect_if_lost(); !ok) return fail(std::move(ok.error()));
  return s.pools.try_take(pool);
}

Result<Slot> Caller::acquire(std::uint32_t pool, Wait wait) {
  return detail::acquire_loop(
      pool, wait, "a server", [&] { return try_acquire(pool); },
      [&]() -> Status {
        detail::InCall in(state_->link);
        // Until the broker frees one (responses that come meanwhile wait for next()).
        return state_->pump_one();
      });
}

Status Caller::discard(const Slot& slot) {
  return state_->pools.discard(slot);
}

std::size_t Caller::free_slots(std::uint32_t pool) const {
  return state_->pools.free_slots(pool);
}

Result<Response> Caller::next(CallId id) {
  detail::InCall in(state_->link);
  bool timed_out = false;
  return state_->next(id, IoMode::blocking, std::chrono::steady_clock::time_point::max(),
                      timed_out);
}

Result<std::optional<Response>> Caller::next_for(CallId id, std::chrono::milliseconds timeout) {
  detail::InCall in(state_->link);
  bool timed_out = false;
  auto r =
      state_->next(id, IoMode::non_blocking, std::chrono::steady_clock::now() + timeout, timed_out);
  if (!r) return fail(std::move(r.error()));
  if (timed_out) return std::optional<Response>();
  return std::optional<Response>(std::move(*r));
}

Result<Response> Caller::call(std::string_view service, WritableBuffer buffer, const Layout& layout,
                              const CallOptions& options, const FrameMeta& meta) {
  auto id = start(service, std::move(buffer), layout, options, meta);
  if (!id) return fail(std::move(id.error()));
  auto response = next(*id);
  if (response && !response->last) (void)cancel(*id);  // a stream: only its first is taken
  return response;
}

Result<Response> Caller::call(std::string_view service, const Slot& slot, const Layout& layout,
                              const CallOptions& options, const FrameMeta& meta) {
  auto id = start(service, slot, layout, options, meta);
  if (!id) return fail(std::move(id.error()));
  auto response = next(*id);
  if (response && !response->last) (void)cancel(*id);
  return response;
}

Result<Response> Caller::call(std::string_view service, const CallOptions& options) {
  auto id = start(service, options);
  if (!id) return fail(std::move(id.error()));
  auto response = next(*id);
  if (response && !response->last) (void)cancel(*id);
  return response;
}

Status Caller::cancel(CallId id) {
  detail::InCall in(state_->link);
  auto& s = *state_;
  auto it = s.calls.find(id);
  if (it == s.calls.end() || it->second.dropping) {
    return fail(Errc::invalid_argument, "this caller has no call " + detail::n(id) + " in flight");
  }
  if (it->second.over) {
    s.calls.erase(it);  // its responses, taken or not, are dropped
    return {};
  }
  it->second.dropping = true;
  it->second.responses.clear();
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initCancelCall().setCall(id);
  if (auto sent = s.link.send(message); !sent) {
    s.lose(sent.error());
    return fail(std::move(sent.error()));
  }
  return {};
}

std::size_t Caller::in_flight() const noexcept {
  return static_cast<std::size_t>(std::count_if(state_->calls.begin(), state_->calls.end(),
                                                [](const auto& c) { return !c.second.over; }));
}

void Caller::reconnect_on_loss(ReconnectOptions options) {
  state_->link.reconnect_on_loss(options);
}

int Caller::native_handle() const noexcept {
  return state_->link.connection().fd();
}

// ---- Server ----

namespace detail {

struct ServerState {
  explicit ServerState(BrokerLink l) : link(std::move(l)) {}
  // Requests this server returned keep its connection open while their frames live: it stops
  // serving here (its calls in flight fail with serverGone), not when the last such frame goes.
  ~ServerState() {
    if (link.shared().use_count() == 1) return;  // closing: the broker withdraws them
    for (const auto& [service, max] : offered) {
      ControlMessageBuilder message;
      message.initRoot<proto::Message>().initWithdraw().setService(service);
      if (!link.send(message, {}, IoMode::non_blocking)) return;
    }
  }
  ServerState(const ServerState&) = delete;
  ServerState& operator=(const ServerState&) = delete;

  Status handle(proto::Message::Reader m, std::vector<UniqueFd>& fds);
  Result<bool> pump(IoMode mode);
  // Sends an Offer or Withdraw for `service` and waits for its answer.
  Result<std::uint32_t> ask(capnp::MessageBuilder& message, const std::string& service);
  // If `error` is a lost broker and this server reconnects: connected again, every service
  // offered again; true then.
  Result<bool> recovered(const Error& error);
  Status respond(const Request& request, std::optional<WritableBuffer> buffer, const Slot* slot,
                 const Layout* layout, bool last, const FrameMeta& meta,
                 std::optional<std::string_view> error);
  Status pump_one() {
    auto got = pump(IoMode::blocking);
    return got ? Status{} : Status(tl::unexpect, std::move(got.error()));
  }

  BrokerLink link;
  CallPools pools;
  std::map<std::string, std::uint32_t, std::less<>> offered;  // asked max in flight
  std::deque<ServerEvent> events;
  std::deque<Error> refusals;  // of responses: returned by the next respond()
  std::uint64_t session = 1;   // the connection's number: a Request of an older one is over
  std::map<std::uint64_t, std::uint64_t> sent;  // responses sent per call of a stream
  // The answer a blocking ask() waits for.
  std::string awaiting;
  std::optional<Result<std::uint32_t>> answer;
};

Status ServerState::handle(proto::Message::Reader m, std::vector<UniqueFd>& fds) {
  using M = proto::Message;
  if (auto done = pools.handle(m, fds)) return *done;
  switch (m.which()) {
    case M::REQUEST: {
      const auto r = m.getRequest();
      Request request;
      request.id = r.getCall();
      request.service = text_of(r.getService());
      request.caller = r.getCaller();
      request.deadline =
          std::chrono::steady_clock::now() + std::chrono::milliseconds(r.getDeadlineMs());
      request.connection = session;
      if (r.getHasFrame()) {
        auto frame = r.getFrame().getPool() != 0
                         ? pools.frame(request.service, r.getFrame(), link.shared())
                         : received_frame(request.service, r.getFrame(), r.getGuarantee(), fds);
        if (!frame) return fail(std::move(frame.error()));
        request.frame.emplace(std::move(*frame));
      }
      events.emplace_back(std::move(request));
      return {};
    }
    case M::CANCEL: {
      const auto c = m.getCancel();
      sent.erase(c.getCall());
      events.emplace_back(Cancel{c.getCall(), static_cast<CancelReason>(c.getReason())});
      return {};
    }
    case M::OFFERED:
    case M::WITHDRAWN: {
      const bool offered_ = m.which() == M::OFFERED;
      const std::string service =
          text_of(offered_ ? m.getOffered().getService() : m.getWithdrawn().getService());
      if (service == awaiting && !answer) {
        answer = offered_ ? m.getOffered().getMaxInFlight() : 0U;
      }
      return {};
    }
    case M::ERROR: {
      const auto e = m.getError();
      Error error = broker_error(e);
      if (!answer && e.getSequence() == 0 && e.hasTopic() && view(e.getTopic()) == awaiting &&
          !awaiting.empty()) {
        answer = Result<std::uint32_t>(tl::unexpect, std::move(error));
        return {};
      }
      refusals.push_back(std::move(error));
      return {};
    }
    default:
      return fail(Errc::protocol_violation,
                  "the broker sent " + message_name(m.which()) + " to a server");
  }
}

Result<bool> ServerState::pump(IoMode mode) {
  auto m = link.receive(mode);
  if (!m) return fail(std::move(m.error()));
  if (!*m) return false;
  auto ok = decode_message<proto::Message>(
      link.bytes(**m), [&](proto::Message::Reader r) { return handle(r, (*m)->fds); });
  if (!ok) return fail(std::move(ok.error()));
  return true;
}

Result<std::uint32_t> ServerState::ask(capnp::MessageBuilder& message, const std::string& service) {
  if (auto ok = link.send(message); !ok) return fail(std::move(ok.error()));
  awaiting = service;
  answer.reset();
  while (!answer) {
    if (auto got = pump(IoMode::blocking); !got) {
      awaiting.clear();
      return fail(std::move(got.error()));
    }
  }
  awaiting.clear();
  auto out = std::move(*answer);
  answer.reset();
  return out;
}

Result<bool> ServerState::recovered(const Error& error) {
  return link.recovered(error, [this]() -> Status {
    ++session;
    sent.clear();
    if (auto ok = pools.renew(link, [this] { return pump_one(); }); !ok) return ok;
    // What came from the old broker and was not received yet: requests of calls that are over.
    std::erase_if(events, [](const ServerEvent& e) { return std::holds_alternative<Request>(e); });
    for (const auto& [service, max] : offered) {
      ControlMessageBuilder message;
      auto offer = message.initRoot<proto::Message>().initOffer();
      offer.setService(service);
      offer.setMaxInFlight(max);
      if (auto ok = ask(message, service); !ok) return fail(std::move(ok.error()));
    }
    return {};
  });
}

Status ServerState::respond(const Request& request, std::optional<WritableBuffer> buffer,
                            const Slot* slot, const Layout* layout, bool last,
                            const FrameMeta& meta, std::optional<std::string_view> error) {
  if (!refusals.empty()) {
    Error refused = std::move(refusals.front());
    refusals.pop_front();
    return fail(std::move(refused));
  }
  // A request from before a reconnection: its call is over, and the new broker's ids are not
  // the old one's. A slot given for it is the program's no longer: free again.
  if (request.connection != session) {
    if (slot != nullptr) (void)pools.discard(*slot);
    return {};
  }
  ControlMessageBuilder message;
  auto respond = message.initRoot<proto::Message>().initRespond();
  respond.setCall(request.id);
  const bool ends = last || error.has_value();
  respond.setLast(ends);
  std::optional<SealedBuffer> sealed;
  if (error) {
    respond.setError(proto::CallError::SERVER_ERROR);
    respond.setMessage(std::string(error->substr(0, 1024)));
  } else if (buffer) {
    const std::uint64_t sequence = ++sent[request.id];
    auto s = seal_into(respond.initFrame(), std::move(*buffer), *layout, meta, sequence);
    if (!s) return fail(std::move(s.error()));
    sealed.emplace(std::move(*s));
    respond.setHasFrame(true);
  } else if (slot != nullptr) {
    if (auto staged = pools.stage(respond.initFrame(), *slot, *layout, meta, ++sent[request.id]);
        !staged) {
      return staged;
    }
    respond.setHasFrame(true);
  }
  if (ends) sent.erase(request.id);
  const int fd = sealed ? sealed->fd() : -1;
  auto ok = fd >= 0 ? link.send(message, std::span(&fd, 1)) : link.send(message);
  if (!ok) {
    // The slot was not sent: free again (the call it answered is over with the broker).
    if (slot != nullptr) {
      pools.unstage(*slot);
      (void)pools.discard(*slot);
    }
    // Lost with the broker: the call failed for its caller already.
    if (auto again = recovered(ok.error()); again) return {};
    return fail(std::move(ok.error()));
  }
  return {};
}

}  // namespace detail

Server::Server(std::unique_ptr<detail::ServerState> state) : state_(std::move(state)) {}
Server::Server(Server&&) noexcept = default;
Server& Server::operator=(Server&& other) noexcept = default;
Server::~Server() = default;

Result<Server> Server::connect(const std::string& socket_path, std::string_view client_name) {
  auto link = detail::open_service_link(socket_path, client_name);
  if (!link) return fail(std::move(link.error()));
  return Server(std::make_unique<detail::ServerState>(std::move(*link)));
}

Result<std::uint32_t> Server::offer(std::string_view service, std::uint32_t max_in_flight) {
  detail::InCall in(state_->link);
  if (auto ok = check_topic_name(service); !ok) return fail(std::move(ok.error()));
  ControlMessageBuilder message;
  auto offer = message.initRoot<proto::Message>().initOffer();
  offer.setService(std::string(service));
  offer.setMaxInFlight(max_in_flight);
  auto granted = state_->ask(message, std::string(service));
  if (granted) state_->offered[std::string(service)] = max_in_flight;
  return granted;
}

Status Server::withdraw(std::string_view service) {
  detail::InCall in(state_->link);
  auto it = state_->offered.find(service);
  if (it == state_->offered.end()) {
    return fail(Errc::invalid_argument,
                "this server does not offer '" + std::string(service) + "'");
  }
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initWithdraw().setService(std::string(service));
  auto done = state_->ask(message, std::string(service));
  state_->offered.erase(it);
  if (!done) return fail(std::move(done.error()));
  return {};
}

Result<ServerEvent> Server::receive() {
  detail::InCall in(state_->link);
  auto& s = *state_;
  for (;;) {
    if (!s.events.empty()) {
      ServerEvent e = std::move(s.events.front());
      s.events.pop_front();
      return e;
    }
    if (auto got = s.pump(IoMode::blocking); !got) {
      if (auto again = s.recovered(got.error()); !again) return fail(std::move(again.error()));
    }
  }
}

Result<std::optional<ServerEvent>> Server::receive_for(std::chrono::milliseconds timeout) {
  detail::InCall in(state_->link);
  auto& s = *state_;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (!s.events.empty()) {
      ServerEvent e = std::move(s.events.front());
      s.events.pop_front();
      return std::optional<ServerEvent>(std::move(e));
    }
    auto got = s.pump(IoMode::non_blocking);
    if (!got) {
      if (auto again = s.recovered(got.error()); !again) return fail(std::move(again.error()));
      continue;
    }
    if (*got) continue;
    if (std::chrono::steady_clock::now() >= deadline) return std::optional<ServerEvent>();
    if (auto ok = s.link.wait_readable(deadline); !ok) return fail(std::move(ok.error()));
  }
}

Status Server::respond(const Request& request, WritableBuffer buffer, const Layout& layout,
                       bool last, const FrameMeta& meta) {
  detail::InCall in(state_->link);
  return state_->respond(request, std::move(buffer), nullptr, &layout, last, meta, std::nullopt);
}

Status Server::respond(const Request& request, const Slot& slot, const Layout& layout, bool last,
                       const FrameMeta& meta) {
  detail::InCall in(state_->link);
  return state_->respond(request, std::nullopt, &slot, &layout, last, meta, std::nullopt);
}

Status Server::respond(const Request& request, bool last) {
  detail::InCall in(state_->link);
  return state_->respond(request, std::nullopt, nullptr, nullptr, last, FrameMeta{}, std::nullopt);
}

Status Server::respond_error(const Request& request, std::string_view message) {
  detail::InCall in(state_->link);
  return state_->respond(request, std::nullopt, nullptr, nullptr, true, FrameMeta{}, message);
}

Result<std::uint32_t> Server::create_pool(std::size_t slot_bytes, std::uint32_t slot_count,
                                          MemfdOptions options) {
  detail::InCall in(state_->link);
  auto& s = *state_;
  return s.pools.create(
      s.link, [&s] { return s.pump_one(); }, slot_bytes, slot_count, options);
}

Result<std::optional<Slot>> Server::try_acquire(std::uint32_t pool) {
  detail::InCall in(state_->link);
  auto& s = *state_;
  for (;;) {  // SlotFree that came meanwhile
    auto got = s.pump(IoMode::non_blocking);
    if (!got) {
      if (auto again = s.recovered(got.error()); !again) return fail(std::move(again.error()));
      continue;
    }
    if (!*got) break;
  }
  return s.pools.try_take(pool);
}

Result<Slot> Server::acquire(std::uint32_t pool, Wait wait) {
  return detail::acquire_loop(
      pool, wait, "a caller", [&] { return try_acquire(pool); },
      [&]() -> Status {
        detail::InCall in(state_->link);
        // Until the broker frees one (requests that come meanwhile wait for receive()).
        if (auto got = state_->pump(IoMode::blocking); !got) {
          if (auto again = state_->recovered(got.error()); !again) {
            return fail(std::move(again.error()));
          }
        }
        return {};
      });
}

Status Server::discard(const Slot& slot) {
  return state_->pools.discard(slot);
}

std::size_t Server::free_slots(std::uint32_t pool) const {
  return state_->pools.free_slots(pool);
}

void Server::reconnect_on_loss(ReconnectOptions options) {
  state_->link.reconnect_on_loss(options);
}

int Server::native_handle() const noexcept {
  return state_->link.connection().fd();
}

}  // namespace shmfd
