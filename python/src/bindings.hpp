// What the parts of the extension share: module.cpp (errors, layouts, frames, producers and
// consumers) and services.cpp (callers and servers).
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "shmfd/consumer.hpp"
#include "shmfd/error.hpp"
#include "shmfd/layout.hpp"
#include "shmfd/slot.hpp"

namespace shmfd_py {

namespace py = pybind11;

// Raises the shmfd.Error subclass of `e`, with .code, .errno, .broker_error and .call_error.
[[noreturn]] void raise_error(const shmfd::Error& e);
// A received frame as a shmfd.Frame (its arrays are the frame's pages).
py::object frame_object(shmfd::Frame frame);
// `layout` (a shmfd.Layout, or None for a blob of `bytes`) as a C++ layout.
shmfd::Layout layout_of(const py::object& layout, std::size_t bytes);
// A writable memfd holding a copy of `data` (any C-contiguous buffer), for a request or a
// response; `what` names the call in an error.
shmfd::WritableBuffer buffer_of(const py::buffer& data, const char* what);

// What a shmfd.Slot goes back to when discarded: a producer's, a caller's or a server's pool.
// Its mutex is its client's: one thread at a time in the C++ client.
struct SlotOwner {
  virtual ~SlotOwner() = default;
  virtual shmfd::Status discard(const shmfd::Slot& slot) = 0;
  std::mutex mutex;
};

// shmfd.Slot: a pool slot acquired for writing, until it is published, sent or discarded.
struct PySlot {
  std::shared_ptr<SlotOwner> core;
  shmfd::Slot slot;
  std::optional<shmfd::Layout> layout;
  enum class State { acquired, published, discarded } state = State::acquired;
  py::list arrays;  // handed out: made read-only once the slot is published

  // A ValueError naming `what` unless the slot is still acquired.
  void check_acquired(const char* what) const;
  void discard();
  // The slot went (published or sent): its arrays are read-only from now on.
  void sent();
};

// A slot from `acquire(shmfd::Wait)`, run without the GIL under `owner`'s mutex; with `layout`,
// checked to fit (else discarded, and the error raised).
template <typename Acquire>
PySlot acquire_slot(const std::shared_ptr<SlotOwner>& owner, std::optional<shmfd::Layout> layout,
                    bool block, Acquire&& acquire) {
  shmfd::Result<shmfd::Slot> slot = [&] {
    py::gil_scoped_release nogil;
    std::lock_guard lock(owner->mutex);
    return acquire(block ? shmfd::Wait::block : shmfd::Wait::fail_fast);
  }();
  if (!slot) raise_error(slot.error());
  PySlot s{owner, *slot, std::nullopt, PySlot::State::acquired, py::list()};
  if (layout) {
    if (auto fits = shmfd::validate_layout(*layout, slot->bytes.size()); !fits) {
      {
        std::lock_guard lock(owner->mutex);
        (void)owner->discard(*slot);
      }
      raise_error(fits.error());
    }
    s.layout = std::move(layout);
  }
  return s;
}

// shmfd.Caller, shmfd.Server, shmfd.Request, shmfd.Cancel, shmfd.Response (services.cpp).
void bind_services(py::module_& m);

}  // namespace shmfd_py
