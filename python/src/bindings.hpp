// What the parts of the extension share: module.cpp (errors, layouts, frames, producers and
// consumers) and services.cpp (callers and servers).
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>

#include "shmfd/consumer.hpp"
#include "shmfd/error.hpp"
#include "shmfd/layout.hpp"

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

// shmfd.Caller, shmfd.Server, shmfd.Request, shmfd.Cancel, shmfd.Response (services.cpp).
void bind_services(py::module_& m);

}  // namespace shmfd_py
