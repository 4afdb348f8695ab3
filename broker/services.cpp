#include "services.hpp"

#include <algorithm>

#include "access.hpp"
#include "quota.hpp"
#include "shmfd/frame_meta.hpp"
#include "shmfd/verify.hpp"
#include "shmfd/wire/intake.hpp"
#include "shmfd/wire/wire.hpp"

namespace shmfd::broker {

using Code = proto::ErrorCode;
using proto::CallError;
using proto::CancelReason;

namespace {

// What a server offers when it asks for 0 calls in flight (capped by --max-calls-in-flight).
constexpr std::uint32_t kDefaultServerInFlight = 4;
// Answered calls whose latency a service keeps, for shmfdctl's percentiles.
constexpr std::size_t kLatencyWindow = 512;
// Ended calls remembered per server, so that a response crossing a Cancel is not a strike.
constexpr std::size_t kEndedRemembered = 1024;
// The longest error text a server may send a caller.
constexpr std::size_t kMaxErrorText = 1024;

std::string n(std::uint64_t v) {
  return std::to_string(v);
}

}  // namespace

Services::Services(const Options& options, const Logger& log, CloserPtr closer)
    : options_(options), log_(log), closer_(std::move(closer)) {}

Services::Service* Services::find(const std::string& name) {
  auto it = services_.find(name);
  return it == services_.end() ? nullptr : it->second.get();
}

Services::Server* Services::server_of(Service* s, const ClientState& client) {
  if (s == nullptr) return nullptr;
  for (auto& server : s->servers) {
    if (server->client == &client) return server.get();
  }
  return nullptr;
}

Outcome Services::offer(ClientState& client, proto::Offer::Reader offer) {
  const std::string name = text_of(offer.getService());
  if (auto ok = check_topic_name(name); !ok)
    return refuse(Code::INVALID_TOPIC_NAME, "service name: " + ok.error().message(),
                  printable(name));
  if (auto ok = check_access(options_.policy.get(), client, Right::serve, name); !ok) return ok;
  const std::uint32_t cap = options_.limits.max_calls_in_flight;
  const std::uint32_t asked = offer.getMaxInFlight();
  const std::uint32_t granted = std::min(asked == 0 ? kDefaultServerInFlight : asked, cap);
  Service* s = find(name);
  Server* mine = server_of(s, client);
  if (mine == nullptr) {
    std::size_t offers = 0;
    for (const auto& [_, service] : services_) {
      for (const auto& server : service->servers)
        if (server->client == &client) ++offers;
    }
    if (offers >= options_.limits.max_subscriptions_per_client) {
      return refuse(Code::LIMIT_EXCEEDED,
                    "a client may offer at most " +
                        n(options_.limits.max_subscriptions_per_client) +
                        " services (--max-subscriptions)",
                    name);
    }
    if (s == nullptr) {
      auto fresh = std::make_unique<Service>();
      fresh->name = name;
      s = fresh.get();
      services_.emplace(name, std::move(fresh));
    }
    auto server = std::make_unique<Server>();
    server->client = &client;
    server->service = s;
    mine = server.get();
    s->servers.push_back(std::move(server));
    log_.info(client.describe() + " offers service '" + name + "' (" + n(granted) +
              " calls in flight)");
  }
  // Offering again changes only the bound; calls beyond a lowered one finish.
  mine->max_in_flight = granted;
  ControlMessageBuilder message;
  auto offered = message.initRoot<proto::Message>().initOffered();
  offered.setService(name);
  offered.setMaxInFlight(granted);
  client.outbox.post(message);
  drain_waiting(*s);
  return {};
}

Outcome Services::withdraw(ClientState& client, proto::Withdraw::Reader withdraw) {
  const std::string name = text_of(withdraw.getService());
  Service* s = find(name);
  Server* mine = server_of(s, client);
  if (mine == nullptr) {
    return refuse(Code::UNKNOWN_TOPIC,
                  "withdraw of service '" + printable(name) + "', which this client does not offer",
                  printable(name));
  }
  ControlMessageBuilder message;
  message.initRoot<proto::Message>().initWithdrawn().setService(name);
  client.outbox.post(message);
  remove_server(mine, client.describe() + " withdrew service '" + name + "'");
  return {};
}

tl::expected<FramePtr, Refusal> Services::take_frame(ClientState& sender, bool has_frame,
                                                     proto::Frame::Reader frame,
                                                     std::vector<UniqueFd>& fds,
                                                     const std::string& service,
                                                     std::uint64_t call) {
  if (!has_frame) {
    if (!fds.empty()) {
      return refuse(
          Code::WRONG_FD_COUNT,
          "a message without a frame carries no fd; the " + n(fds.size()) + " attached were closed",
          service, call);
    }
    return FramePtr();
  }
  if (frame.getPool() != 0) return take_slot(sender, frame, fds, service, call);
  if (fds.size() != kFdsPerMessage) {
    return refuse(Code::WRONG_FD_COUNT,
                  "a frame carries exactly one fd, this message carried " + n(fds.size()), service,
                  call);
  }
  auto layout = layout_from_proto(frame.getLayout());
  if (!layout)
    return refuse(wire_error_code(layout.error()), layout.error().message(), service, call);
  FrameMeta meta;
  if (frame.hasMeta()) meta = meta_from_proto(frame.getMeta());
  if (auto ok = check_frame_meta(meta, service_frame_options(), *layout); !ok)
    return refuse(Code::INVALID_METADATA, ok.error().message(), service, call);
  auto accepted = accept_frame(frame, fds, Guarantee::sealed);
  if (!accepted) {
    return refuse(wire_error_code(accepted.error()), accepted.error().message(), service, call);
  }
  const std::uint64_t size = accepted->verified.size;
  if (auto ok =
          check_pinned(*sender.account, size, options_.limits.max_pinned_bytes, service, call);
      !ok) {
    return tl::unexpected(ok.error());
  }
  // The other side gets a read-only open of the broker's own, as a consumer does.
  auto read_only = reopen_read_only(accepted->fd.get());
  if (!read_only) {
    return refuse(wire_error_code(read_only.error()), read_only.error().message(), service, call);
  }
  auto record = std::make_shared<FrameRecord>();
  record->fd = DeferredFd(std::move(*read_only), closer_, size);
  record->layout = std::move(*layout);
  record->guarantee = Guarantee::sealed;
  record->sequence = frame.getSequence();
  record->timestamp_ns = frame.getTimestampNs();
  record->bytes = size;
  record->charge = Charge(sender.account, size);
  if (!meta.empty()) {
    record->header.assign(meta.header.begin(), meta.header.end());
    record->meta = meta;
    record->meta.header = record->header;
  }
  return FramePtr(std::move(record));
}

tl::expected<FramePtr, Refusal> Services::take_slot(ClientState& sender, proto::Frame::Reader frame,
                                                    std::vector<UniqueFd>& fds,
                                                    const std::string& service,
                                                    std::uint64_t call) {
  const std::uint32_t id = frame.getPool();
  const std::uint32_t slot = frame.getSlot();
  if (!fds.empty()) {
    return refuse(
        Code::WRONG_FD_COUNT,
        "a frame in a pool slot carries no fd; the " + n(fds.size()) + " attached were closed",
        service, call);
  }
  auto it = sender.pools.find(id);
  if (it == sender.pools.end() || !it->second->for_calls()) {
    return refuse(Code::UNKNOWN_POOL,
                  "pool " + n(id) +
                      " is not one of this client's pools for calls (a RegisterPool with no "
                      "topic)",
                  service, call);
  }
  PoolRecord& pool = *it->second;
  if (slot >= pool.slot_count) {
    return refuse(
        Code::UNKNOWN_POOL,
        "slot " + n(slot) + " of pool " + n(id) + ", a pool of " + n(pool.slot_count) + " slots",
        service, call);
  }
  if (pool.busy[slot]) {
    return refuse(Code::SLOT_BUSY,
                  "slot " + n(slot) + " of pool " + n(id) +
                      " is still held by the client it was sent to; send it again only after "
                      "SlotFree",
                  service, call);
  }
  auto layout = layout_from_proto(frame.getLayout());
  if (!layout)
    return refuse(wire_error_code(layout.error()), layout.error().message(), service, call);
  if (auto fits = validate_layout(*layout, pool.slot_size); !fits) {
    return refuse(Code::INVALID_LAYOUT,
                  "slot of " + n(pool.slot_size) + " bytes: " + fits.error().message(), service,
                  call);
  }
  FrameMeta meta;
  if (frame.hasMeta()) meta = meta_from_proto(frame.getMeta());
  if (auto ok = check_frame_meta(meta, service_frame_options(), *layout); !ok)
    return refuse(Code::INVALID_METADATA, ok.error().message(), service, call);
  pool.busy[slot] = true;
  // No slot left: the holders are judged by how long this lasts (judge_holds).
  if (pool.all_busy() && !pool.dry_since) pool.dry_since = Clock::now();
  auto record = std::make_shared<FrameRecord>();
  record->layout = std::move(*layout);
  record->guarantee = Guarantee::pool;
  record->sequence = frame.getSequence();
  record->timestamp_ns = frame.getTimestampNs();
  record->pool = it->second;
  record->slot = slot;
  record->bytes = pool.slot_size;
  if (!meta.empty()) {
    record->header.assign(meta.header.begin(), meta.header.end());
    record->meta = meta;
    record->meta.header = record->header;
  }
  return FramePtr(std::move(record));
}

void Services::post_with_frame(ClientState& to, capnp::MessageBuilder& message,
                               proto::Frame::Builder out, FramePtr frame) {
  out.setTimestampNs(frame->timestamp_ns);
  out.setFd(0);
  layout_to_proto(frame->layout, out.initLayout());
  if (!frame->meta.empty()) meta_to_proto(frame->meta, out.initMeta());
  if (frame->pool == nullptr) {
    out.setSequence(frame->sequence);
    // The outbox keeps the frame (and its fd) until the message is sent.
    const int fd = frame->fd.get();
    to.outbox.post(message, fd, std::move(frame));
    return;
  }
  // A slot: its pool's fd first (once), then the message with none. The receiver holds the
  // frame, and its slot stays busy, until it releases it by the number given here.
  PoolRecord& pool = *frame->pool;
  if (pool.for_calls() && !to.outbox.has_pool(pool.id)) {
    if (std::find(pool.attached.begin(), pool.attached.end(), to.id) == pool.attached.end()) {
      pool.attached.push_back(to.id);
      to.call_pools_attached.push_back(frame->pool);
    }
  }
  to.outbox.attach_pool(frame->pool);
  const std::uint64_t number = ++to.call_frames_sent;
  out.setSequence(number);
  out.setPool(pool.id);
  out.setSlot(frame->slot);
  to.outbox.post(message);
  to.call_frames.emplace(number, InFlight{number, std::move(frame), Clock::now(), false});
}

void Services::give_back(ClientState& sender, bool has_frame, proto::Frame::Reader frame) {
  if (!has_frame || frame.getPool() == 0) return;
  auto it = sender.pools.find(frame.getPool());
  if (it == sender.pools.end() || !it->second->for_calls()) return;
  const std::uint32_t slot = frame.getSlot();
  // A busy slot is another frame's, held: it comes back with that frame's release.
  if (slot >= it->second->slot_count || it->second->busy[slot]) return;
  sender.outbox.slot_free(it->second->id, slot);
}

Outcome Services::call(ClientState& client, proto::Call::Reader call, std::vector<UniqueFd>& fds) {
  auto out = place_call(client, call, fds);
  // A slot the broker did not take (the Call was refused) is the caller's again.
  if (!out) give_back(client, call.getHasFrame(), call.getFrame());
  return out;
}

Outcome Services::place_call(ClientState& client, proto::Call::Reader call,
                             std::vector<UniqueFd>& fds) {
  const std::string name = text_of(call.getService());
  const std::uint64_t caller_call = call.getCall();
  if (auto ok = check_topic_name(name); !ok) {
    return refuse(Code::INVALID_TOPIC_NAME, "service name: " + ok.error().message(),
                  printable(name), caller_call);
  }
  if (auto ok = check_access(options_.policy.get(), client, Right::call, name); !ok) {
    auto refusal = ok.error();
    refusal.sequence = caller_call;
    return tl::unexpected(std::move(refusal));
  }
  if (by_caller_.count({client.id, caller_call}) != 0) {
    return refuse(Code::INVALID_CALL,
                  "call " + n(caller_call) +
                      " is still in flight: a caller numbers its calls "
                      "in flight apart",
                  name, caller_call);
  }
  auto frame = take_frame(client, call.getHasFrame(), call.getFrame(), fds, name, caller_call);
  if (!frame) return tl::unexpected(std::move(frame.error()));

  Service* s = find(name);
  if (s != nullptr) ++s->calls;
  if (s == nullptr || s->servers.empty()) {
    post_response(client, caller_call, true, nullptr, CallError::NO_SERVER,
                  "no client offers service '" + name + "'");
    return {};
  }
  const auto counted = caller_in_flight_.find(client.id);
  const std::uint32_t before = counted == caller_in_flight_.end() ? 0 : counted->second;
  if (before >= options_.limits.max_calls_in_flight) {
    ++s->failed;
    post_response(client, caller_call, true, nullptr, CallError::BUSY,
                  "this caller has " + n(before) +
                      " calls in flight, the broker's limit "
                      "(--max-calls-in-flight)");
    return {};
  }
  const std::uint64_t max_ms = options_.limits.max_call_deadline_ms;
  const std::uint64_t asked_ms = call.getDeadlineMs();
  const auto now = Clock::now();
  Call c;
  c.id = next_call_++;
  c.caller_call = caller_call;
  c.caller = &client;
  c.service = s;
  c.received = now;
  c.deadline = now + std::chrono::milliseconds(asked_ms == 0 ? max_ms : std::min(asked_ms, max_ms));
  c.request = std::move(*frame);
  auto [it, inserted] = calls_.emplace(c.id, std::move(c));
  Call& placed = it->second;
  if (!dispatch(placed)) {
    if (call.getWhenBusy() != proto::WhenBusy::WAIT) {
      ++s->failed;
      post_response(client, caller_call, true, nullptr, CallError::BUSY,
                    "every server of '" + name + "' has its most calls in flight");
      calls_.erase(it);
      return {};
    }
    s->waiting.push_back(placed.id);
  }
  ++caller_in_flight_[client.id];
  by_caller_.emplace(std::make_pair(client.id, caller_call), placed.id);
  deadlines_.emplace(placed.deadline, placed.id);
  return {};
}

Services::Server* Services::pick(Service& s) {
  // The fewest calls in flight; among equals, the first from `turn` on, so that idle servers
  // take calls in turn.
  Server* best = nullptr;
  std::size_t best_index = 0;
  const std::size_t count = s.servers.size();
  for (std::size_t k = 0; k < count; ++k) {
    const std::size_t i = (s.turn + k) % count;
    Server* server = s.servers[i].get();
    if (server->in_flight >= server->max_in_flight) continue;
    if (best == nullptr || server->in_flight < best->in_flight) {
      best = server;
      best_index = i;
    }
  }
  if (best != nullptr) s.turn = (best_index + 1) % count;
  return best;
}

bool Services::dispatch(Call& c) {
  Server* server = pick(*c.service);
  if (server == nullptr) return false;
  c.server = server;
  ++server->in_flight;
  ++server->calls;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(c.deadline - Clock::now());
  ControlMessageBuilder message;
  auto request = message.initRoot<proto::Message>().initRequest();
  request.setService(c.service->name);
  request.setCall(c.id);
  request.setCaller(c.caller->id);
  request.setDeadlineMs(static_cast<std::uint32_t>(std::max<std::int64_t>(left.count(), 1)));
  if (c.request) {
    request.setHasFrame(true);
    request.setGuarantee(to_proto(c.request->guarantee));
    post_with_frame(*server->client, message, request.initFrame(), std::move(c.request));
  } else {
    server->client->outbox.post(message);
  }
  if (log_.enabled(LogLevel::debug)) {
    log_.debug("call " + n(c.id) + " of '" + c.service->name + "' from " + c.caller->describe() +
               " to " + server->client->describe());
  }
  return true;
}

void Services::drain_waiting(Service& s) {
  while (!s.waiting.empty()) {
    auto it = calls_.find(s.waiting.front());
    if (it == calls_.end()) {
      s.waiting.pop_front();
      continue;
    }
    if (!dispatch(it->second)) return;
    s.waiting.pop_front();
  }
}

void Services::post_response(ClientState& caller, std::uint64_t caller_call, bool last,
                             const FramePtr& frame, CallError error, const std::string& text) {
  ControlMessageBuilder message;
  auto response = message.initRoot<proto::Message>().initResponse();
  response.setCall(caller_call);
  response.setLast(last);
  response.setError(error);
  if (!text.empty()) response.setMessage(text);
  if (frame) {
    response.setHasFrame(true);
    response.setGuarantee(to_proto(frame->guarantee));
    post_with_frame(caller, message, response.initFrame(), frame);
  } else {
    caller.outbox.post(message);
  }
}

void Services::remember_ended(std::uint64_t server_client, std::uint64_t id) {
  auto& ended = ended_[server_client];
  ended.insert(id);
  if (ended.size() > kEndedRemembered) ended.erase(ended.begin());  // ids only grow
}

void Services::end(std::uint64_t id, CallError error, const std::string& text,
                   std::optional<CancelReason> cancel) {
  auto it = calls_.find(id);
  if (it == calls_.end()) return;
  Call c = std::move(it->second);
  calls_.erase(it);
  deadlines_.erase({c.deadline, c.id});
  by_caller_.erase({c.caller->id, c.caller_call});
  if (auto mine = caller_in_flight_.find(c.caller->id); mine != caller_in_flight_.end()) {
    if (--mine->second == 0) caller_in_flight_.erase(mine);
  }
  Service& s = *c.service;
  if (error != CallError::NONE) {
    ++s.failed;
    if (error != CallError::CANCELLED || !cancel || *cancel != CancelReason::CALLER_GONE) {
      post_response(*c.caller, c.caller_call, true, nullptr, error, text);
    }
  } else {
    const auto us =
        std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - c.received);
    s.latency_us.push_back(static_cast<std::uint64_t>(us.count()));
    if (s.latency_us.size() > kLatencyWindow) s.latency_us.pop_front();
  }
  if (c.server == nullptr) {
    std::erase(s.waiting, c.id);
    return;
  }
  --c.server->in_flight;
  remember_ended(c.server->client->id, c.id);
  if (cancel) {
    ControlMessageBuilder message;
    auto out = message.initRoot<proto::Message>().initCancel();
    out.setCall(c.id);
    out.setReason(*cancel);
    c.server->client->outbox.post(message);
  }
  drain_waiting(s);
}

Outcome Services::respond(ClientState& client, proto::Respond::Reader respond,
                          std::vector<UniqueFd>& fds) {
  auto out = answer(client, respond, fds);
  // A slot the broker did not take (refused, late, or beside an error) is the server's again.
  give_back(client, respond.getHasFrame(), respond.getFrame());
  return out;
}

Outcome Services::answer(ClientState& client, proto::Respond::Reader respond,
                         std::vector<UniqueFd>& fds) {
  const std::uint64_t id = respond.getCall();
  auto it = calls_.find(id);
  if (it == calls_.end() || it->second.server == nullptr || it->second.server->client != &client) {
    if (auto ended = ended_.find(client.id);
        ended != ended_.end() && ended->second.count(id) != 0) {
      // It crossed the Cancel (or the caller left): legal, and dropped with its fd.
      ++late_responses_;
      return {};
    }
    ++forged_responses_;
    return refuse(Code::INVALID_CALL,
                  "a response to call " + n(id) + ", which the broker did not send this client", {},
                  id);
  }
  Call& c = it->second;
  const std::string& name = c.service->name;
  const CallError error = respond.getError();
  if (error != CallError::NONE && error != CallError::SERVER_ERROR) {
    return refuse(Code::MALFORMED_MESSAGE,
                  "a server answers with error none or server-error, not " +
                      n(static_cast<std::uint64_t>(error)),
                  name, id);
  }
  auto frame = take_frame(client, respond.getHasFrame() && error == CallError::NONE,
                          respond.getFrame(), fds, name, id);
  if (!frame) {
    // The caller is not left waiting for a response that will not come.
    end(id, CallError::SERVER_ERROR,
        "the broker refused the server's response: " + frame.error().message,
        CancelReason::CANCELLED);
    return tl::unexpected(std::move(frame.error()));
  }
  if (error == CallError::SERVER_ERROR) {
    std::string text = printable(shmfd::view(respond.getMessage()), kMaxErrorText);
    if (text.empty()) text = "the server answered with an error";
    end(id, CallError::SERVER_ERROR, text, std::nullopt);
    return {};
  }
  ClientState& caller = *c.caller;
  const bool last = respond.getLast();
  post_response(caller, c.caller_call, last, *frame, CallError::NONE, {});
  if (last) {
    end(id, CallError::NONE, {}, std::nullopt);
  } else if (caller.outbox.replies_queued() >= options_.limits.max_calls_in_flight) {
    held_[client.id] = &caller;  // a stream faster than its caller reads
  }
  return {};
}

Outcome Services::cancel_call(ClientState& client, proto::CancelCall::Reader cancel) {
  auto it = by_caller_.find({client.id, cancel.getCall()});
  // A call that ended as the CancelCall crossed its last response: nothing to do.
  if (it == by_caller_.end()) return {};
  end(it->second, CallError::CANCELLED, "cancelled by the caller", CancelReason::CANCELLED);
  return {};
}

void Services::remove_server(Server* server, const std::string& why) {
  Service& s = *server->service;
  // Ending its calls frees room that waiting calls would take: not at a server that is going.
  server->max_in_flight = 0;
  std::vector<std::uint64_t> at_it;
  for (const auto& [id, c] : calls_) {
    if (c.server == server) at_it.push_back(id);
  }
  for (std::uint64_t id : at_it) {
    end(id, CallError::SERVER_GONE, why + " with the call in flight", std::nullopt);
  }
  std::erase_if(s.servers, [server](const auto& p) { return p.get() == server; });
  if (!s.servers.empty()) {
    s.turn %= s.servers.size();
    drain_waiting(s);  // calls waiting may fit the servers left
    return;
  }
  for (std::uint64_t id : std::deque<std::uint64_t>(s.waiting)) {
    end(id, CallError::NO_SERVER, why + "; no server of '" + s.name + "' is left", std::nullopt);
  }
  services_.erase(s.name);
}

void Services::leave(ClientState& client) {
  // Its offers first take no call: ending its own calls below frees room at servers.
  std::vector<Server*> offers;
  for (const auto& [_, s] : services_) {
    for (const auto& server : s->servers) {
      if (server->client != &client) continue;
      server->max_in_flight = 0;
      offers.push_back(server.get());
    }
  }
  std::vector<std::uint64_t> mine;
  for (const auto& [id, c] : calls_) {
    if (c.caller == &client) mine.push_back(id);
  }
  for (std::uint64_t id : mine) end(id, CallError::CANCELLED, {}, CancelReason::CALLER_GONE);
  for (Server* server : offers) {
    remove_server(server, "the server, " + client.describe() + ", left");
  }
  ended_.erase(client.id);
  caller_in_flight_.erase(client.id);
  held_.erase(client.id);
  std::erase_if(held_, [&](const auto& h) { return h.second == &client; });
}

void Services::expire(Clock::time_point now) {
  while (!deadlines_.empty() && deadlines_.begin()->first <= now) {
    const std::uint64_t id = deadlines_.begin()->second;
    deadlines_.erase(deadlines_.begin());
    auto it = calls_.find(id);
    if (it == calls_.end()) continue;
    const bool at_server = it->second.server != nullptr;
    end(id, CallError::DEADLINE,
        at_server ? "the deadline passed with the call at the server"
                  : "the deadline passed with every server busy",
        at_server ? std::optional<CancelReason>(CancelReason::DEADLINE) : std::nullopt);
  }
}

std::optional<Services::Clock::time_point> Services::next_deadline() const {
  if (deadlines_.empty()) return std::nullopt;
  return deadlines_.begin()->first;
}

void Services::settle(Wakeups& wakeups) {
  for (auto it = held_.begin(); it != held_.end();) {
    if (it->second->outbox.replies_queued() < options_.limits.max_calls_in_flight / 2 + 1) {
      wakeups.reader(it->first);
      it = held_.erase(it);
    } else {
      ++it;
    }
  }
}

std::vector<Services::ServiceView> Services::view() const {
  std::vector<ServiceView> out;
  for (const auto& [name, s] : services_) {
    ServiceView v;
    v.name = name;
    for (const auto& server : s->servers) {
      v.servers.push_back(
          {server->client->id, server->max_in_flight, server->in_flight, server->calls});
    }
    v.waiting = s->waiting.size();
    v.calls = s->calls;
    v.failed = s->failed;
    v.latency_us.assign(s->latency_us.begin(), s->latency_us.end());
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace shmfd::broker
