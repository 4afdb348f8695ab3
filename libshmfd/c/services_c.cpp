// The C API's services (shmfd.h, since libshmfd-c 1.3): callers, servers, their requests and
// responses, over shmfd::Caller and shmfd::Server.
#include <chrono>
#include <variant>

#include "c_api.hpp"

using namespace shmfd::capi;

extern "C" {

// ---- Services ----

shmfd_status shmfd_buffer_create(size_t size, shmfd_buffer** out) {
  return guarded("shmfd_buffer_create", [&] {
    if (!out) return null_argument("shmfd_buffer_create", "out");
    auto buffer = shmfd::WritableBuffer::create("shmfd-c", size);
    if (!buffer) return set_error(buffer.error());
    *out = new shmfd_buffer{std::move(*buffer)};
    return SHMFD_OK;
  });
}

shmfd_status shmfd_caller_connect(const char* socket_path, const char* client_name, uint32_t flags,
                                  shmfd_caller** out) {
  return guarded("shmfd_caller_connect", [&] {
    if (!out) return null_argument("shmfd_caller_connect", "out");
    if ((flags & ~SHMFD_RECONNECT) != 0) {
      return unknown_flags("shmfd_caller_connect", flags, SHMFD_RECONNECT);
    }
    auto caller = shmfd::Caller::connect(socket_or_default(socket_path),
                                         client_name ? client_name : "caller");
    if (!caller) return set_error(caller.error());
    if (flags & SHMFD_RECONNECT) caller->reconnect_on_loss();
    *out = new shmfd_caller{std::move(*caller)};
    return SHMFD_OK;
  });
}

void shmfd_caller_close(shmfd_caller* caller) {
  delete caller;
}

namespace {

// Starts a call with `buffer` (consumed; NULL: no frame), or with `slot` when it is not NULL.
shmfd_status start_call(const char* function, shmfd_caller* caller, const char* service,
                        std::unique_ptr<shmfd_buffer> buffer, const shmfd_slot* slot,
                        const shmfd_layout* layout, uint32_t deadline_ms, uint32_t flags,
                        uint64_t& id) {
  if (!caller) return null_argument(function, "caller");
  if (!service) return null_argument(function, "service");
  if ((flags & ~SHMFD_CALL_WAIT) != 0) return unknown_flags(function, flags, SHMFD_CALL_WAIT);
  const shmfd::CallOptions options{
      std::chrono::milliseconds(deadline_ms),
      (flags & SHMFD_CALL_WAIT) != 0 ? shmfd::WhenBusy::wait : shmfd::WhenBusy::fail};
  shmfd::Result<shmfd::CallId> started = shmfd::CallId{0};
  if (buffer || slot) {
    shmfd::Layout l;
    if (auto s = to_cpp(function, layout, l); s != SHMFD_OK) return s;
    started = slot ? caller->caller.start(service, slot_of(*slot), l, options)
                   : caller->caller.start(service, std::move(buffer->buffer), l, options);
  } else {
    started = caller->caller.start(service, options);
  }
  if (!started) return set_error(started.error());
  id = *started;
  return SHMFD_OK;
}

shmfd_response* make_response(shmfd::Response r) {
  auto made = std::make_unique<shmfd_response>(shmfd_response{std::move(r), {}});
  if (made->response.frame) {
    made->frame.frame = &*made->response.frame;
    made->frame.layout = to_c(made->response.frame->layout());
  }
  return made.release();
}

}  // namespace

shmfd_status shmfd_caller_start(shmfd_caller* caller, const char* service, shmfd_buffer* buffer,
                                const shmfd_layout* layout, uint32_t deadline_ms, uint32_t flags,
                                uint64_t* call_out) {
  std::unique_ptr<shmfd_buffer> owned(buffer);  // consumed whatever happens
  return guarded("shmfd_caller_start", [&] {
    if (!call_out) return null_argument("shmfd_caller_start", "call_out");
    return start_call("shmfd_caller_start", caller, service, std::move(owned), nullptr, layout,
                      deadline_ms, flags, *call_out);
  });
}

shmfd_status shmfd_caller_next(shmfd_caller* caller, uint64_t call, int timeout_ms,
                               shmfd_response** out) {
  return guarded("shmfd_caller_next", [&] {
    if (!caller) return null_argument("shmfd_caller_next", "caller");
    if (!out) return null_argument("shmfd_caller_next", "out");
    *out = nullptr;
    if (timeout_ms < 0) {
      auto r = caller->caller.next(call);
      if (!r) return set_error(r.error());
      *out = make_response(std::move(*r));
      return SHMFD_OK;
    }
    auto r = caller->caller.next_for(call, std::chrono::milliseconds(timeout_ms));
    if (!r) return set_error(r.error());
    if (*r) *out = make_response(std::move(**r));
    return SHMFD_OK;
  });
}

namespace {
// A call and its (first) response, with `buffer` or `slot`.
shmfd_status call_and_wait(const char* function, shmfd_caller* caller, const char* service,
                           std::unique_ptr<shmfd_buffer> buffer, const shmfd_slot* slot,
                           const shmfd_layout* layout, uint32_t deadline_ms, uint32_t flags,
                           shmfd_response** out) {
  if (!out) return null_argument(function, "out");
  *out = nullptr;
  uint64_t id = 0;
  if (auto s = start_call(function, caller, service, std::move(buffer), slot, layout, deadline_ms,
                          flags, id);
      s != SHMFD_OK) {
    return s;
  }
  auto r = caller->caller.next(id);
  if (!r) return set_error(r.error());
  if (!r->last) (void)caller->caller.cancel(id);  // a stream: its first response only
  *out = make_response(std::move(*r));
  return SHMFD_OK;
}
}  // namespace

shmfd_status shmfd_caller_call(shmfd_caller* caller, const char* service, shmfd_buffer* buffer,
                               const shmfd_layout* layout, uint32_t deadline_ms, uint32_t flags,
                               shmfd_response** out) {
  std::unique_ptr<shmfd_buffer> owned(buffer);
  return guarded("shmfd_caller_call", [&] {
    return call_and_wait("shmfd_caller_call", caller, service, std::move(owned), nullptr, layout,
                         deadline_ms, flags, out);
  });
}

shmfd_status shmfd_caller_create_pool(shmfd_caller* caller, size_t slot_bytes, uint32_t slot_count,
                                      uint32_t flags, uint32_t* pool_out) {
  return guarded("shmfd_caller_create_pool", [&] {
    if (!caller) return null_argument("shmfd_caller_create_pool", "caller");
    return create_pool_with("shmfd_caller_create_pool", flags, pool_out,
                            [&](const shmfd::MemfdOptions& options) {
                              return caller->caller.create_pool(slot_bytes, slot_count, options);
                            });
  });
}

shmfd_status shmfd_caller_acquire(shmfd_caller* caller, uint32_t pool, uint32_t flags,
                                  shmfd_slot* out) {
  return guarded("shmfd_caller_acquire", [&] {
    if (!caller) return null_argument("shmfd_caller_acquire", "caller");
    return acquire_with("shmfd_caller_acquire", flags, out,
                        [&](shmfd::Wait wait) { return caller->caller.acquire(pool, wait); });
  });
}

shmfd_status shmfd_caller_call_slot(shmfd_caller* caller, const char* service,
                                    const shmfd_slot* slot, const shmfd_layout* layout,
                                    uint32_t deadline_ms, uint32_t flags, shmfd_response** out) {
  return guarded("shmfd_caller_call_slot", [&] {
    if (!slot) return null_argument("shmfd_caller_call_slot", "slot");
    return call_and_wait("shmfd_caller_call_slot", caller, service, nullptr, slot, layout,
                         deadline_ms, flags, out);
  });
}

shmfd_status shmfd_caller_start_slot(shmfd_caller* caller, const char* service,
                                     const shmfd_slot* slot, const shmfd_layout* layout,
                                     uint32_t deadline_ms, uint32_t flags, uint64_t* call_out) {
  return guarded("shmfd_caller_start_slot", [&] {
    if (!slot) return null_argument("shmfd_caller_start_slot", "slot");
    if (!call_out) return null_argument("shmfd_caller_start_slot", "call_out");
    return start_call("shmfd_caller_start_slot", caller, service, nullptr, slot, layout,
                      deadline_ms, flags, *call_out);
  });
}

shmfd_status shmfd_caller_cancel(shmfd_caller* caller, uint64_t call) {
  return guarded("shmfd_caller_cancel", [&] {
    if (!caller) return null_argument("shmfd_caller_cancel", "caller");
    if (auto ok = caller->caller.cancel(call); !ok) return set_error(ok.error());
    return SHMFD_OK;
  });
}

const shmfd_frame* shmfd_response_frame(const shmfd_response* response) {
  return response && response->frame.frame ? &response->frame : nullptr;
}

int shmfd_response_last(const shmfd_response* response) {
  return response && response->response.last ? 1 : 0;
}

void shmfd_response_free(shmfd_response* response) {
  delete response;
}

shmfd_status shmfd_server_connect(const char* socket_path, const char* client_name, uint32_t flags,
                                  shmfd_server** out) {
  return guarded("shmfd_server_connect", [&] {
    if (!out) return null_argument("shmfd_server_connect", "out");
    if ((flags & ~SHMFD_RECONNECT) != 0) {
      return unknown_flags("shmfd_server_connect", flags, SHMFD_RECONNECT);
    }
    auto server = shmfd::Server::connect(socket_or_default(socket_path),
                                         client_name ? client_name : "server");
    if (!server) return set_error(server.error());
    if (flags & SHMFD_RECONNECT) server->reconnect_on_loss();
    *out = new shmfd_server{std::move(*server)};
    return SHMFD_OK;
  });
}

void shmfd_server_close(shmfd_server* server) {
  delete server;
}

shmfd_status shmfd_server_offer(shmfd_server* server, const char* service, uint32_t max_in_flight,
                                uint32_t* granted_out) {
  return guarded("shmfd_server_offer", [&] {
    if (!server) return null_argument("shmfd_server_offer", "server");
    if (!service) return null_argument("shmfd_server_offer", "service");
    auto granted = server->server.offer(service, max_in_flight);
    if (!granted) return set_error(granted.error());
    if (granted_out) *granted_out = *granted;
    return SHMFD_OK;
  });
}

shmfd_status shmfd_server_withdraw(shmfd_server* server, const char* service) {
  return guarded("shmfd_server_withdraw", [&] {
    if (!server) return null_argument("shmfd_server_withdraw", "server");
    if (!service) return null_argument("shmfd_server_withdraw", "service");
    if (auto ok = server->server.withdraw(service); !ok) return set_error(ok.error());
    return SHMFD_OK;
  });
}

shmfd_status shmfd_server_receive(shmfd_server* server, int timeout_ms, shmfd_request** out) {
  return guarded("shmfd_server_receive", [&] {
    if (!server) return null_argument("shmfd_server_receive", "server");
    if (!out) return null_argument("shmfd_server_receive", "out");
    *out = nullptr;
    std::optional<shmfd::ServerEvent> event;
    if (timeout_ms < 0) {
      auto e = server->server.receive();
      if (!e) return set_error(e.error());
      event = std::move(*e);
    } else {
      auto e = server->server.receive_for(std::chrono::milliseconds(timeout_ms));
      if (!e) return set_error(e.error());
      event = std::move(*e);
    }
    if (!event) return SHMFD_OK;
    auto made = std::make_unique<shmfd_request>(shmfd_request{std::move(*event), {}});
    if (auto* request = std::get_if<shmfd::Request>(&made->event); request && request->frame) {
      made->frame.frame = &*request->frame;
      made->frame.layout = to_c(request->frame->layout());
    }
    *out = made.release();
    return SHMFD_OK;
  });
}

namespace {
const shmfd::Request* request_of(const shmfd_request* request) {
  return request ? std::get_if<shmfd::Request>(&request->event) : nullptr;
}
}  // namespace

shmfd_status shmfd_server_respond(shmfd_server* server, const shmfd_request* request,
                                  shmfd_buffer* buffer, const shmfd_layout* layout, int last) {
  std::unique_ptr<shmfd_buffer> owned(buffer);
  return guarded("shmfd_server_respond", [&] {
    if (!server) return null_argument("shmfd_server_respond", "server");
    const shmfd::Request* r = request_of(request);
    if (!r) {
      return set_error(SHMFD_E_INVALID_ARGUMENT,
                       "shmfd_server_respond: the request is NULL or a cancel");
    }
    shmfd::Status ok;
    if (owned) {
      shmfd::Layout l;
      if (auto s = to_cpp("shmfd_server_respond", layout, l); s != SHMFD_OK) return s;
      ok = server->server.respond(*r, std::move(owned->buffer), l, last != 0);
    } else {
      ok = server->server.respond(*r, last != 0);
    }
    if (!ok) return set_error(ok.error());
    return SHMFD_OK;
  });
}

shmfd_status shmfd_server_create_pool(shmfd_server* server, size_t slot_bytes, uint32_t slot_count,
                                      uint32_t flags, uint32_t* pool_out) {
  return guarded("shmfd_server_create_pool", [&] {
    if (!server) return null_argument("shmfd_server_create_pool", "server");
    return create_pool_with("shmfd_server_create_pool", flags, pool_out,
                            [&](const shmfd::MemfdOptions& options) {
                              return server->server.create_pool(slot_bytes, slot_count, options);
                            });
  });
}

shmfd_status shmfd_server_acquire(shmfd_server* server, uint32_t pool, uint32_t flags,
                                  shmfd_slot* out) {
  return guarded("shmfd_server_acquire", [&] {
    if (!server) return null_argument("shmfd_server_acquire", "server");
    return acquire_with("shmfd_server_acquire", flags, out,
                        [&](shmfd::Wait wait) { return server->server.acquire(pool, wait); });
  });
}

shmfd_status shmfd_server_respond_slot(shmfd_server* server, const shmfd_request* request,
                                       const shmfd_slot* slot, const shmfd_layout* layout,
                                       int last) {
  return guarded("shmfd_server_respond_slot", [&] {
    if (!server) return null_argument("shmfd_server_respond_slot", "server");
    if (!slot) return null_argument("shmfd_server_respond_slot", "slot");
    const shmfd::Request* r = request_of(request);
    if (!r) {
      return set_error(SHMFD_E_INVALID_ARGUMENT,
                       "shmfd_server_respond_slot: the request is NULL or a cancel");
    }
    shmfd::Layout l;
    if (auto s = to_cpp("shmfd_server_respond_slot", layout, l); s != SHMFD_OK) return s;
    if (auto ok = server->server.respond(*r, slot_of(*slot), l, last != 0); !ok) {
      return set_error(ok.error());
    }
    return SHMFD_OK;
  });
}

shmfd_status shmfd_server_respond_error(shmfd_server* server, const shmfd_request* request,
                                        const char* message) {
  return guarded("shmfd_server_respond_error", [&] {
    if (!server) return null_argument("shmfd_server_respond_error", "server");
    const shmfd::Request* r = request_of(request);
    if (!r) {
      return set_error(SHMFD_E_INVALID_ARGUMENT,
                       "shmfd_server_respond_error: the request is NULL or a cancel");
    }
    if (auto ok = server->server.respond_error(*r, message ? message : ""); !ok) {
      return set_error(ok.error());
    }
    return SHMFD_OK;
  });
}

int shmfd_request_cancel_reason(const shmfd_request* request) {
  if (!request) return 0;
  const auto* cancel = std::get_if<shmfd::Cancel>(&request->event);
  return cancel ? 1 + static_cast<int>(cancel->reason) : 0;
}

uint64_t shmfd_request_id(const shmfd_request* request) {
  if (!request) return 0;
  if (const auto* r = std::get_if<shmfd::Request>(&request->event)) return r->id;
  return std::get<shmfd::Cancel>(request->event).id;
}

const char* shmfd_request_service(const shmfd_request* request) {
  const shmfd::Request* r = request_of(request);
  return r ? r->service.c_str() : "";
}

const shmfd_frame* shmfd_request_frame(const shmfd_request* request) {
  return request && request->frame.frame ? &request->frame : nullptr;
}

void shmfd_request_free(shmfd_request* request) {
  delete request;
}

}  // extern "C"
