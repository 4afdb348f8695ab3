// shmfd.Caller and shmfd.Server: services (protocol version 6) for Python. A blocking call runs
// without the GIL, in slices of 50 ms between which Ctrl-C is seen, holding its client's lock
// only for a slice, so that other threads (asyncio's executor) may use the same client for
// other calls in between.
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <variant>

#include "bindings.hpp"
#include "shmfd/service.hpp"

namespace shmfd_py {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr auto kSlice = 50ms;

template <typename T>
T ok(shmfd::Result<T> r) {
  if (!r) raise_error(r.error());
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

// A timeout in seconds (None: for good) as a deadline.
std::optional<Clock::time_point> deadline_of(std::optional<double> seconds, const char* what) {
  if (!seconds) return std::nullopt;
  if (*seconds < 0) throw py::value_error(std::string(what) + ": timeout must be >= 0 or None");
  return Clock::now() +
         std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(*seconds));
}

// The next slice to wait, up to `deadline`.
std::chrono::milliseconds slice_until(const std::optional<Clock::time_point>& deadline) {
  if (!deadline) return kSlice;
  return std::clamp(std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now()),
                    0ms, std::chrono::milliseconds(kSlice));
}

// Runs `f` without the GIL, holding `mutex` (its client's); a failure in its Result is raised
// after, with the GIL (raising needs it).
template <typename F>
auto unlocked(std::mutex& mutex, F&& f) {
  py::gil_scoped_release nogil;
  std::lock_guard lock(mutex);
  return f();
}

void check_signals() {
  if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C
}

struct PyResponse {
  py::object frame;  // a shmfd.Frame, or None
  bool last = true;
};

struct CallerCore : SlotOwner {
  explicit CallerCore(shmfd::Caller c) : caller(std::move(c)) {}
  shmfd::Status discard(const shmfd::Slot& slot) override { return caller.discard(slot); }
  shmfd::Caller caller;
};

// A pool's MemfdOptions from create_pool()'s arguments.
shmfd::MemfdOptions pool_options(bool huge_pages) {
  shmfd::MemfdOptions options;
  options.huge_pages = huge_pages;
  options.fall_back_to_normal_pages = huge_pages;
  return options;
}

// The slot `data` is, if it is a shmfd.Slot: checked to be acquired from `owner`, for `what`.
PySlot* slot_in(const py::object& data, const SlotOwner* owner, const char* what) {
  if (!py::isinstance<PySlot>(data)) return nullptr;
  auto& slot = data.cast<PySlot&>();
  slot.check_acquired(what);
  if (slot.core.get() != owner) {
    throw py::value_error(std::string(what) + ": the slot is of another client's pool");
  }
  return &slot;
}

// A slot's layout: `layout`, else the one it was acquired with, else a blob of the whole slot.
shmfd::Layout slot_layout(const PySlot& slot, const py::object& layout) {
  if (!layout.is_none()) return layout_of(layout, 0);
  if (slot.layout) return *slot.layout;
  return shmfd::blob_layout(slot.slot.bytes.size());
}

struct PyCaller {
  std::shared_ptr<CallerCore> core;

  std::uint32_t create_pool(std::size_t slot_bytes, std::uint32_t slots, bool huge_pages) {
    return ok(unlocked(core->mutex, [&] {
      return core->caller.create_pool(slot_bytes, slots, pool_options(huge_pages));
    }));
  }

  PySlot acquire(std::uint32_t pool, const py::object& layout, bool block) {
    return acquire_slot(core, layout.is_none() ? std::nullopt : std::optional(layout_of(layout, 0)),
                        block, [&](shmfd::Wait w) { return core->caller.acquire(pool, w); });
  }

  shmfd::CallId start(const std::string& service, const py::object& data, const py::object& layout,
                      std::optional<double> deadline, bool wait) {
    shmfd::CallOptions options;
    if (deadline) {
      if (*deadline <= 0) throw py::value_error("call: deadline must be > 0 seconds, or None");
      options.deadline = std::max(1ms, std::chrono::duration_cast<std::chrono::milliseconds>(
                                           std::chrono::duration<double>(*deadline)));
    }
    options.when_busy = wait ? shmfd::WhenBusy::wait : shmfd::WhenBusy::fail;
    if (data.is_none())
      return ok(unlocked(core->mutex, [&] { return core->caller.start(service, options); }));
    if (PySlot* slot = slot_in(data, core.get(), "call")) {
      const shmfd::Layout l = slot_layout(*slot, layout);
      const shmfd::CallId id = ok(unlocked(
          core->mutex, [&] { return core->caller.start(service, slot->slot, l, options); }));
      slot->sent();
      return id;
    }
    shmfd::WritableBuffer buffer = buffer_of(data.cast<py::buffer>(), "call");
    const shmfd::Layout l = layout_of(layout, buffer.size());
    return ok(unlocked(core->mutex,
                       [&] { return core->caller.start(service, std::move(buffer), l, options); }));
  }

  // The next response of `id`, or None after `timeout` seconds (None: wait for it).
  py::object next(shmfd::CallId id, std::optional<double> timeout) {
    const auto deadline = deadline_of(timeout, "next");
    for (;;) {
      std::optional<shmfd::Result<std::optional<shmfd::Response>>> got;
      {
        py::gil_scoped_release nogil;
        std::lock_guard lock(core->mutex);
        got.emplace(core->caller.next_for(id, slice_until(deadline)));
      }
      if (!*got) raise_error(got->error());
      if (**got) {
        shmfd::Response& r = ***got;
        PyResponse out{py::none(), r.last};
        if (r.frame) out.frame = frame_object(std::move(*r.frame));
        return py::cast(std::move(out));
      }
      if (deadline && Clock::now() >= *deadline) return py::none();
      check_signals();
    }
  }

  py::object call(const std::string& service, const py::object& data, const py::object& layout,
                  std::optional<double> deadline, bool wait) {
    const shmfd::CallId id = start(service, data, layout, deadline, wait);
    py::object response = next(id, std::nullopt);
    if (!response.cast<const PyResponse&>().last) cancel(id);  // a stream: its first only
    return response;
  }

  void cancel(shmfd::CallId id) {
    ok(unlocked(core->mutex, [&] { return core->caller.cancel(id); }));
  }
};

// A request as Python sees it: its frame moved out into a shmfd.Frame; the rest kept for
// respond().
struct PyRequest {
  shmfd::Request request;
  py::object frame;
};

struct PyCancel {
  std::uint64_t id = 0;
  std::string reason;
};

const char* reason_name(shmfd::CancelReason r) {
  switch (r) {
    case shmfd::CancelReason::caller_gone:
      return "caller_gone";
    case shmfd::CancelReason::deadline:
      return "deadline";
    case shmfd::CancelReason::cancelled:
      return "cancelled";
  }
  return "?";
}

struct ServerCore : SlotOwner {
  explicit ServerCore(shmfd::Server s) : server(std::move(s)) {}
  shmfd::Status discard(const shmfd::Slot& slot) override { return server.discard(slot); }
  shmfd::Server server;
};

struct PyServer {
  std::shared_ptr<ServerCore> core;

  py::object receive(std::optional<double> timeout) {
    const auto deadline = deadline_of(timeout, "receive");
    for (;;) {
      std::optional<shmfd::Result<std::optional<shmfd::ServerEvent>>> got;
      {
        py::gil_scoped_release nogil;
        std::lock_guard lock(core->mutex);
        got.emplace(core->server.receive_for(slice_until(deadline)));
      }
      if (!*got) raise_error(got->error());
      if (**got) {
        shmfd::ServerEvent& e = ***got;
        if (auto* c = std::get_if<shmfd::Cancel>(&e)) {
          return py::cast(PyCancel{c->id, reason_name(c->reason)});
        }
        auto& r = std::get<shmfd::Request>(e);
        PyRequest out{std::move(r), py::none()};
        if (out.request.frame) {
          out.frame = frame_object(std::move(*out.request.frame));
          out.request.frame.reset();
        }
        return py::cast(std::move(out));
      }
      if (deadline && Clock::now() >= *deadline) return py::none();
      check_signals();
    }
  }

  std::uint32_t create_pool(std::size_t slot_bytes, std::uint32_t slots, bool huge_pages) {
    return ok(unlocked(core->mutex, [&] {
      return core->server.create_pool(slot_bytes, slots, pool_options(huge_pages));
    }));
  }

  PySlot acquire(std::uint32_t pool, const py::object& layout, bool block) {
    return acquire_slot(core, layout.is_none() ? std::nullopt : std::optional(layout_of(layout, 0)),
                        block, [&](shmfd::Wait w) { return core->server.acquire(pool, w); });
  }

  void respond(const PyRequest& request, const py::object& data, const py::object& layout,
               bool last) {
    if (data.is_none()) {
      ok(unlocked(core->mutex, [&] { return core->server.respond(request.request, last); }));
      return;
    }
    if (PySlot* slot = slot_in(data, core.get(), "respond")) {
      const shmfd::Layout l = slot_layout(*slot, layout);
      ok(unlocked(core->mutex,
                  [&] { return core->server.respond(request.request, slot->slot, l, last); }));
      slot->sent();
      return;
    }
    shmfd::WritableBuffer buffer = buffer_of(data.cast<py::buffer>(), "respond");
    const shmfd::Layout l = layout_of(layout, buffer.size());
    ok(unlocked(core->mutex,
                [&] { return core->server.respond(request.request, std::move(buffer), l, last); }));
  }

  void respond_error(const PyRequest& request, const std::string& message) {
    ok(unlocked(core->mutex, [&] { return core->server.respond_error(request.request, message); }));
  }
};

std::string socket_or_default(const std::optional<std::string>& socket) {
  return socket ? *socket : shmfd::default_socket_path();
}

}  // namespace

void bind_services(py::module_& m) {
  py::class_<PyResponse>(m, "Response", "One response to a call.")
      .def_readonly("frame", &PyResponse::frame,
                    "The server's frame (a read-only shmfd.Frame), or None for no bytes.")
      .def_readonly("last", &PyResponse::last, "No more responses come for the call.")
      .def("__repr__", [](const PyResponse& r) {
        return std::string("<shmfd.Response ") + (r.frame.is_none() ? "no frame" : "frame") +
               (r.last ? " last>" : ">");
      });

  py::class_<PyCaller>(m, "Caller",
                       "Calls services: a frame each way, verified by the broker.\n\n"
                       "    caller = shmfd.Caller(name='app')\n"
                       "    response = caller.call('blur', image, layout, deadline=0.2)\n"
                       "    result = response.frame.array\n\n"
                       "A failed call raises CallFailedError; .call_error says why "
                       "('server-gone': call again, another server takes it). "
                       "await caller.call_async(...) in asyncio.")
      .def(py::init([](std::optional<std::string> socket, const std::string& name, bool reconnect) {
             auto caller = [&] {
               py::gil_scoped_release nogil;
               return shmfd::Caller::connect(socket_or_default(socket), name);
             }();
             if (!caller) raise_error(caller.error());
             if (reconnect) caller->reconnect_on_loss();
             return PyCaller{std::make_shared<CallerCore>(std::move(*caller))};
           }),
           py::arg("socket") = py::none(), py::arg("name") = "caller", py::arg("reconnect") = false,
           "Connects to the broker (socket None: the default). reconnect=True: a lost broker is "
           "connected to again at the next call; calls in flight then fail.")
      .def("call", &PyCaller::call, py::arg("service"), py::arg("data") = py::none(),
           py::arg("layout") = py::none(), py::kw_only(), py::arg("deadline") = py::none(),
           py::arg("wait") = false,
           "Calls `service` with `data` (any C-contiguous buffer, copied once into a sealed "
           "memfd; a Slot of this caller's pool, sent in place; None: no bytes) described by "
           "`layout` (None: the slot's layout, else a blob), and returns its Response. deadline: "
           "seconds (None: the broker's longest). wait=True: wait in the "
           "broker while every server is busy instead of failing with 'busy'. A server's "
           "stream gives its first response only (use start and next).")
      .def("start", &PyCaller::start, py::arg("service"), py::arg("data") = py::none(),
           py::arg("layout") = py::none(), py::kw_only(), py::arg("deadline") = py::none(),
           py::arg("wait") = false,
           "Starts a call without waiting; returns its id for next() and cancel().")
      .def("create_pool", &PyCaller::create_pool, py::arg("slot_bytes"), py::arg("slots"),
           py::kw_only(), py::arg("huge_pages") = false,
           "Creates a pool for requests: `slots` slots of at least `slot_bytes` (whole pages), "
           "registered and verified once. Returns its id for acquire(). Requests in its slots "
           "carry no fd and no fresh memory.")
      .def("acquire", &PyCaller::acquire, py::arg("pool"), py::arg("layout") = py::none(),
           py::kw_only(), py::arg("block") = true,
           "A free Slot of `pool` to write a request into (checked against `layout`, if "
           "given). A slot sent in a call is free again once its server has dropped the "
           "request's frame. block=False raises NoFreeSlotError instead of waiting.")
      .def("next", &PyCaller::next, py::arg("call"), py::arg("timeout") = py::none(),
           "The next Response of `call`, or None after `timeout` seconds (None: wait). "
           "A failure of the call raises CallFailedError.")
      .def("cancel", &PyCaller::cancel, py::arg("call"),
           "Gives the call up: its server is told, and what was on its way is dropped.")
      .def_property_readonly(
          "in_flight",
          [](PyCaller& c) {
            std::lock_guard lock(c.core->mutex);
            return c.core->caller.in_flight();
          },
          "Calls started and not over.");

  py::class_<PyRequest>(m, "Request", "A call a server received.")
      .def_property_readonly(
          "id", [](const PyRequest& r) { return r.request.id; },
          "The broker's number for the call (as in its Cancel).")
      .def_property_readonly("service", [](const PyRequest& r) { return r.request.service; })
      .def_property_readonly(
          "caller", [](const PyRequest& r) { return r.request.caller; },
          "The caller's client id, for logs.")
      .def_property_readonly(
          "deadline",
          [](const PyRequest& r) {
            return std::chrono::duration<double>(r.request.deadline.time_since_epoch()).count();
          },
          "When the caller stops waiting, in time.monotonic() seconds.")
      .def_readonly("frame", &PyRequest::frame,
                    "The request's frame (a read-only shmfd.Frame), or None for no bytes.")
      .def("__repr__", [](const PyRequest& r) {
        return "<shmfd.Request id=" + std::to_string(r.request.id) + " service='" +
               r.request.service + "'" + (r.frame.is_none() ? " no frame>" : ">");
      });

  py::class_<PyCancel>(m, "Cancel",
                       "The broker's word that a call is over for its caller: stop working on "
                       "it; a response to it is dropped.")
      .def_readonly("id", &PyCancel::id, "The Request.id of the call.")
      .def_readonly("reason", &PyCancel::reason, "'caller_gone', 'deadline' or 'cancelled'.")
      .def("__repr__", [](const PyCancel& c) {
        return "<shmfd.Cancel id=" + std::to_string(c.id) + " reason='" + c.reason + "'>";
      });

  py::class_<PyServer>(m, "Server",
                       "Offers services and answers their calls.\n\n"
                       "    server = shmfd.Server(name='blur-worker')\n"
                       "    server.offer('blur', max_in_flight=1)\n"
                       "    for event in server:                # Request or Cancel\n"
                       "        if isinstance(event, shmfd.Request):\n"
                       "            server.respond(event, blur(event.frame.array))\n\n"
                       "async for event in server: in asyncio.")
      .def(py::init([](std::optional<std::string> socket, const std::string& name, bool reconnect) {
             auto server = [&] {
               py::gil_scoped_release nogil;
               return shmfd::Server::connect(socket_or_default(socket), name);
             }();
             if (!server) raise_error(server.error());
             if (reconnect) server->reconnect_on_loss();
             return PyServer{std::make_shared<ServerCore>(std::move(*server))};
           }),
           py::arg("socket") = py::none(), py::arg("name") = "server", py::arg("reconnect") = false,
           "Connects to the broker. reconnect=True: after a broker restart it connects again "
           "and offers its services again.")
      .def(
          "offer",
          [](PyServer& s, const std::string& service, std::uint32_t max_in_flight) {
            return ok(unlocked(s.core->mutex,
                               [&] { return s.core->server.offer(service, max_in_flight); }));
          },
          py::arg("service"), py::arg("max_in_flight") = 0,
          "Offers `service`, taking at most max_in_flight of its calls at once (0: the "
          "broker's default); returns the bound granted.")
      .def(
          "withdraw",
          [](PyServer& s, const std::string& service) {
            ok(unlocked(s.core->mutex, [&] { return s.core->server.withdraw(service); }));
          },
          py::arg("service"), "Stops offering `service`; its calls in flight fail.")
      .def("create_pool", &PyServer::create_pool, py::arg("slot_bytes"), py::arg("slots"),
           py::kw_only(), py::arg("huge_pages") = false,
           "Creates a pool for responses, as Caller.create_pool does for requests.")
      .def("acquire", &PyServer::acquire, py::arg("pool"), py::arg("layout") = py::none(),
           py::kw_only(), py::arg("block") = true,
           "A free Slot of `pool` to write a response into: free again once its caller has "
           "dropped the response's frame.")
      .def("receive", &PyServer::receive, py::arg("timeout") = py::none(),
           "The next Request or Cancel, or None after `timeout` seconds (None: wait).")
      .def("respond", &PyServer::respond, py::arg("request"), py::arg("data") = py::none(),
           py::arg("layout") = py::none(), py::kw_only(), py::arg("last") = true,
           "Answers `request` with `data` (copied once into a sealed memfd; a Slot of this "
           "server's pool, sent in place; None: no bytes) described by `layout` (None: the "
           "slot's layout, else a blob). last=False sends one response of a stream. "
           "A refusal of an earlier response by the broker is raised here.")
      .def("respond_error", &PyServer::respond_error, py::arg("request"), py::arg("message"),
           "Ends the call with an error: its caller's CallFailedError says 'server-error' "
           "and `message`.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](PyServer& s) { return s.receive(std::nullopt); });
}

}  // namespace shmfd_py
