// shmfd._shmfd: the Python binding of the C++ client library (pybind11). Frames come out as
// numpy arrays that are the mapped pages themselves: read-only for a consumer, and kept
// mapped for as long as any array of them lives.
//
// Threads: a blocking receive runs without the GIL, holding its consumer's lock. A frame
// dropped meanwhile by another thread (the garbage collector runs anywhere) cannot take that
// lock without waiting for the receive, which may wait for that very release (block-producer):
// so such a release is queued, and the receive does it on its next turn (every 50 ms at most).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "bindings.hpp"
#include "shmfd/consumer.hpp"
#include "shmfd/producer.hpp"

namespace py = pybind11;
using namespace std::chrono_literals;

using shmfd_py::acquire_slot;
using shmfd_py::PySlot;
using shmfd_py::SlotOwner;

namespace {

// ---- Errors --------------------------------------------------------------------------------

// shmfd.Error and its subclasses, made at import (see PYBIND11_MODULE).
struct Exceptions {
  py::object base, os, disconnected, broker_refused, layout, verification, no_free_slot,
      invalid_argument, limit_exceeded, protocol, transport, call_failed;
};
Exceptions* exceptions = nullptr;

// The exception for `e`, with .code, .errno and .broker_error set.
py::object exception_for(const shmfd::Error& e) {
  const std::error_code& code = e.code();
  py::object cls = exceptions->base;
  py::object name = py::none(), err = py::none(), broker = py::none(), call = py::none();
  if (code.category() == shmfd::call_category()) {
    cls = exceptions->call_failed;
    name = py::str("call_failed");
    call = py::str(std::string(shmfd::name(static_cast<shmfd::CallErrc>(code.value()))));
  } else if (code.category() == shmfd::broker_category()) {
    cls = exceptions->broker_refused;
    name = py::str("broker_refused");
    broker = py::str(std::string(shmfd::name(static_cast<shmfd::BrokerErrc>(code.value()))));
  } else if (code.category() == shmfd::error_category()) {
    using shmfd::Errc;
    const auto c = static_cast<Errc>(code.value());
    name = py::str(std::string(shmfd::name(c)));
    if (c == Errc::disconnected) {
      cls = exceptions->disconnected;
    } else if (c == Errc::broker_refused) {
      cls = exceptions->broker_refused;
    } else if (c >= Errc::layout_unknown_format && c <= Errc::layout_out_of_bounds) {
      cls = exceptions->layout;
    } else if (c >= Errc::not_memfd && c <= Errc::not_readable) {
      cls = exceptions->verification;
    } else if (c == Errc::no_free_slot) {
      cls = exceptions->no_free_slot;
    } else if (c == Errc::invalid_argument || c == Errc::invalid_topic_name ||
               c == Errc::invalid_size || c == Errc::invalid_configuration ||
               c == Errc::invalid_metadata) {
      cls = exceptions->invalid_argument;
    } else if (c == Errc::limit_exceeded || c == Errc::huge_pages_unavailable) {
      cls = exceptions->limit_exceeded;
    } else if (c == Errc::protocol_violation || c == Errc::malformed_message ||
               c == Errc::fd_index_out_of_range) {
      cls = exceptions->protocol;
    } else {
      cls = exceptions->transport;
    }
  } else {
    cls = exceptions->os;
    name = py::str("system");
    err = py::int_(code.value());
  }
  py::object instance = err.is_none() ? cls(e.message()) : cls(err, e.message());
  instance.attr("code") = name;
  instance.attr("broker_error") = broker;
  instance.attr("call_error") = call;
  if (err.is_none()) instance.attr("errno") = py::none();
  return instance;
}

[[noreturn]] void raise(const shmfd::Error& e) {
  py::object instance = exception_for(e);
  PyErr_SetObject(instance.get_type().ptr(), instance.ptr());
  throw py::error_already_set();
}

template <typename T>
T ok(shmfd::Result<T> r) {
  if (!r) raise(r.error());
  if constexpr (!std::is_void_v<T>) return std::move(*r);
}

[[noreturn]] void value_error(const std::string& message) {
  throw py::value_error(message);
}

// ---- Layouts -------------------------------------------------------------------------------

template <typename E>
E parse_enum(const std::string& text, int count, const char* what) {
  std::string known;
  for (int i = 0; i < count; ++i) {
    const auto e = static_cast<E>(i);
    if (shmfd::to_string(e) == text) return e;
    known += (known.empty() ? "" : ", ") + std::string(shmfd::to_string(e));
  }
  value_error("unknown " + std::string(what) + " '" + text + "': one of " + known);
}

std::string kind_name(const shmfd::Layout& l) {
  return std::string(shmfd::to_string(shmfd::layout_kind(l)));
}

shmfd::LayoutKind parse_kind(const std::string& text) {
  for (auto k : {shmfd::LayoutKind::blob, shmfd::LayoutKind::image, shmfd::LayoutKind::audio,
                 shmfd::LayoutKind::tensor}) {
    if (shmfd::to_string(k) == text) return k;
  }
  value_error("unknown layout kind '" + text + "': one of blob, image, audio, tensor");
}

py::dtype sample_dtype(shmfd::SampleFormat f) {
  switch (f) {
    case shmfd::SampleFormat::u8:
      return py::dtype::of<std::uint8_t>();
    case shmfd::SampleFormat::s16:
      return py::dtype::of<std::int16_t>();
    case shmfd::SampleFormat::s32:
      return py::dtype::of<std::int32_t>();
    case shmfd::SampleFormat::f32:
      return py::dtype::of<float>();
    case shmfd::SampleFormat::f64:
      return py::dtype::of<double>();
  }
  return py::dtype::of<std::uint8_t>();
}

py::dtype tensor_dtype(shmfd::DType d) {
  switch (d) {
    case shmfd::DType::u8:
      return py::dtype::of<std::uint8_t>();
    case shmfd::DType::i8:
      return py::dtype::of<std::int8_t>();
    case shmfd::DType::u16:
    case shmfd::DType::bf16:  // numpy has no bfloat16: its bits, as uint16
      return py::dtype::of<std::uint16_t>();
    case shmfd::DType::i16:
      return py::dtype::of<std::int16_t>();
    case shmfd::DType::u32:
      return py::dtype::of<std::uint32_t>();
    case shmfd::DType::i32:
      return py::dtype::of<std::int32_t>();
    case shmfd::DType::u64:
      return py::dtype::of<std::uint64_t>();
    case shmfd::DType::i64:
      return py::dtype::of<std::int64_t>();
    case shmfd::DType::f16:
      return py::dtype("float16");
    case shmfd::DType::f32:
      return py::dtype::of<float>();
    case shmfd::DType::f64:
      return py::dtype::of<double>();
  }
  return py::dtype::of<std::uint8_t>();
}

// One array of a layout: dtype, shape, strides (bytes), and where it starts.
struct ArraySpec {
  py::dtype dtype;
  std::vector<py::ssize_t> shape, strides;
  std::uint64_t offset = 0;
};

py::ssize_t ss(std::uint64_t v) {
  return static_cast<py::ssize_t>(v);
}

// The arrays a layout describes: one, or one per plane of NV12 and I420.
std::vector<ArraySpec> arrays_of(const shmfd::Layout& layout) {
  std::vector<ArraySpec> out;
  std::visit(
      [&](const auto& l) {
        using T = std::decay_t<decltype(l)>;
        const py::dtype u8 = py::dtype::of<std::uint8_t>();
        if constexpr (std::is_same_v<T, shmfd::BlobLayout>) {
          out.push_back({u8, {ss(l.size)}, {1}, l.offset});
        } else if constexpr (std::is_same_v<T, shmfd::ImageLayout>) {
          const auto w = ss(l.width), h = ss(l.height);
          const auto cw = ss((l.width + 1) / 2), ch = ss((l.height + 1) / 2);
          const auto& p = l.planes;
          using F = shmfd::PixelFormat;
          switch (l.format) {
            case F::rgba8:
            case F::bgra8:
              out.push_back({u8, {h, w, 4}, {ss(p[0].stride), 4, 1}, p[0].offset});
              break;
            case F::rgb24:
              out.push_back({u8, {h, w, 3}, {ss(p[0].stride), 3, 1}, p[0].offset});
              break;
            case F::yuyv:
              out.push_back({u8, {h, w, 2}, {ss(p[0].stride), 2, 1}, p[0].offset});
              break;
            case F::gray8:
              out.push_back({u8, {h, w}, {ss(p[0].stride), 1}, p[0].offset});
              break;
            case F::gray16:
              out.push_back({py::dtype("<u2"), {h, w}, {ss(p[0].stride), 2}, p[0].offset});
              break;
            case F::nv12:
              out.push_back({u8, {h, w}, {ss(p[0].stride), 1}, p[0].offset});
              out.push_back({u8, {ch, cw, 2}, {ss(p[1].stride), 2, 1}, p[1].offset});
              break;
            case F::i420:
              out.push_back({u8, {h, w}, {ss(p[0].stride), 1}, p[0].offset});
              out.push_back({u8, {ch, cw}, {ss(p[1].stride), 1}, p[1].offset});
              out.push_back({u8, {ch, cw}, {ss(p[2].stride), 1}, p[2].offset});
              break;
          }
        } else if constexpr (std::is_same_v<T, shmfd::AudioLayout>) {
          const auto bps = ss(shmfd::bytes_per_sample(l.format));
          const auto channels = ss(l.channels);
          if (l.planar) {
            out.push_back({sample_dtype(l.format),
                           {ss(l.frames), channels},
                           {bps, ss(l.plane_stride)},
                           l.offset});
          } else {
            out.push_back({sample_dtype(l.format),
                           {ss(l.frames), channels},
                           {bps * channels, bps},
                           l.offset});
          }
        } else {
          ArraySpec a{tensor_dtype(l.dtype), {}, {}, l.offset};
          for (std::uint32_t i = 0; i < l.rank; ++i) {
            a.shape.push_back(ss(l.shape[i]));
            a.strides.push_back(ss(l.strides[i]));
          }
          out.push_back(std::move(a));
        }
      },
      layout);
  return out;
}

// Arrays over `base` (bytes of at least the layout's extent), kept alive by `owner`.
py::list make_arrays(const shmfd::Layout& layout, const std::byte* base, py::handle owner,
                     bool writable) {
  py::list out;
  for (ArraySpec& a : arrays_of(layout)) {
    py::array array(a.dtype, a.shape, a.strides, base + a.offset, owner);
    if (!writable) array.attr("setflags")(py::arg("write") = false);
    out.append(array);
  }
  return out;
}

struct PyLayout {
  shmfd::Layout layout;
};

py::object plane_list(const shmfd::ImageLayout& l) {
  py::list planes;
  for (const auto& p : l.used_planes()) planes.append(py::make_tuple(p.offset, p.stride, p.size));
  return planes;
}

std::string repr(const shmfd::Layout& layout) {
  return std::visit(
      [](const auto& l) -> std::string {
        using T = std::decay_t<decltype(l)>;
        if constexpr (std::is_same_v<T, shmfd::BlobLayout>) {
          return "Layout.blob(" + std::to_string(l.size) + ")";
        } else if constexpr (std::is_same_v<T, shmfd::ImageLayout>) {
          return "Layout.image('" + std::string(shmfd::to_string(l.format)) + "', " +
                 std::to_string(l.width) + ", " + std::to_string(l.height) + ", strides=" +
                 [&] {
                   std::string s;
                   for (const auto& p : l.used_planes()) {
                     s += (s.empty() ? "" : "/") + std::to_string(p.stride);
                   }
                   return s;
                 }() +
                 ")";
        } else if constexpr (std::is_same_v<T, shmfd::AudioLayout>) {
          return "Layout.audio('" + std::string(shmfd::to_string(l.format)) + "', " +
                 std::to_string(l.sample_rate) + ", " + std::to_string(l.channels) + ", " +
                 std::to_string(l.frames) + (l.planar ? ", planar=True)" : ")");
        } else {
          std::string shape;
          for (std::uint32_t i = 0; i < l.rank; ++i) {
            shape += (i ? ", " : "") + std::to_string(l.shape[i]);
          }
          return "Layout.tensor('" + std::string(shmfd::to_string(l.dtype)) + "', (" + shape +
                 (l.rank == 1 ? ",))" : "))");
        }
      },
      layout);
}

// ---- Consumer ------------------------------------------------------------------------------

struct ConsumerCore {
  explicit ConsumerCore(shmfd::Consumer c, bool poll) : consumer(std::move(c)), pollable(poll) {}
  std::mutex mutex;  // the consumer's: one call at a time
  shmfd::Consumer consumer;
  bool pollable;
};

// Frame metadata from Python's keywords: None for an absent time or crop, bytes-like for the
// header (copied: at most 4 KiB).
using PyCrop = std::tuple<std::uint32_t, std::uint32_t, std::uint32_t, std::uint32_t>;
struct PyMeta {
  shmfd::FrameMeta meta;
  std::vector<std::byte> header;
  PyMeta(std::optional<std::uint64_t> pts, std::optional<std::uint64_t> dts,
         std::optional<std::uint64_t> duration, std::uint32_t flags, std::optional<PyCrop> crop,
         const std::optional<py::buffer>& header_data) {
    meta.pts = pts;
    meta.dts = dts;
    meta.duration = duration;
    meta.flags = flags;
    if (crop) {
      meta.crop = shmfd::Crop{std::get<0>(*crop), std::get<1>(*crop), std::get<2>(*crop),
                              std::get<3>(*crop)};
    }
    if (header_data) {
      const py::buffer_info info = header_data->request();
      const auto* begin = static_cast<const std::byte*>(info.ptr);
      header.assign(begin, begin + info.size * info.itemsize);
      meta.header = header;
    }
  }
};

struct PyFrame {
  std::optional<shmfd::Frame> frame;  // until released
  std::shared_ptr<const void> pages;  // the mapping, for arrays that outlive the release
  std::string topic;
  std::uint64_t sequence = 0, timestamp_ns = 0, dropped = 0;
  shmfd::Layout layout;
  const std::byte* data = nullptr;
  std::size_t size = 0;
  bool in_pool = false;
  shmfd::FrameMeta meta;  // its header is in `header`
  py::bytes header;

  // Any thread, with or without the consumer's mutex: the library queues the release, and the
  // consumer sends it from its next call, or at once if it is waiting in receive().
  void release() { frame.reset(); }
  ~PyFrame() { release(); }
};

py::object make_frame(shmfd::Frame&& f) {
  auto frame = std::make_unique<PyFrame>();
  frame->topic = f.topic();
  frame->sequence = f.sequence();
  frame->timestamp_ns = f.timestamp_ns();
  frame->dropped = f.dropped();
  frame->layout = f.layout();
  frame->data = f.bytes().data();
  frame->size = f.bytes().size();
  frame->in_pool = f.in_pool();
  frame->meta = f.meta();
  frame->header =
      py::bytes(reinterpret_cast<const char*>(f.meta().header.data()), f.meta().header.size());
  frame->meta.header = {};
  frame->pages = f.keep_mapped();
  frame->frame.emplace(std::move(f));
  return py::cast(std::move(frame));
}

struct EndOfStream {
  std::string topic, reason;
  std::uint64_t dropped = 0;
};
struct Reconnected {
  double gap_seconds = 0;
};

struct PyConsumer {
  std::shared_ptr<ConsumerCore> core;

  py::object to_python(shmfd::Event event) {
    if (auto* f = std::get_if<shmfd::Frame>(&event)) return make_frame(std::move(*f));
    if (auto* e = std::get_if<shmfd::EndOfStream>(&event)) {
      return py::cast(EndOfStream{e->topic, e->reason, e->dropped});
    }
    const auto& r = std::get<shmfd::Reconnected>(event);
    return py::cast(Reconnected{static_cast<double>(r.gap.count()) / 1e3});
  }

  // The next event, or None after `timeout` seconds (None: wait for one).
  py::object receive(std::optional<double> timeout) {
    const auto start = std::chrono::steady_clock::now();
    std::optional<std::chrono::steady_clock::time_point> deadline;
    if (timeout) {
      if (*timeout < 0) value_error("receive: timeout must be >= 0 or None");
      deadline = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                             std::chrono::duration<double>(*timeout));
    }
    for (;;) {
      std::optional<shmfd::Result<std::optional<shmfd::Event>>> got;
      {
        py::gil_scoped_release nogil;
        std::lock_guard lock(core->mutex);
        auto slice = std::chrono::milliseconds(50);
        if (deadline) {
          const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
              *deadline - std::chrono::steady_clock::now());
          slice = std::clamp(left, std::chrono::milliseconds(0), slice);
        }
        got.emplace(slice.count() == 0 ? core->consumer.try_receive()
                                       : core->consumer.receive_for(slice));
      }
      if (!*got) raise(got->error());
      if (**got) return to_python(std::move(***got));
      if (deadline && std::chrono::steady_clock::now() >= *deadline) return py::none();
      if (PyErr_CheckSignals() != 0) throw py::error_already_set();  // Ctrl-C
    }
  }
};

PyConsumer connect_consumer(std::optional<std::string> socket, const std::string& name,
                            bool pollable, bool reconnect) {
  const std::string path = socket ? *socket : shmfd::default_socket_path();
  auto c = [&] {
    py::gil_scoped_release nogil;
    return shmfd::Consumer::connect(path, name,
                                    pollable ? shmfd::Channels::off : shmfd::Channels::automatic);
  }();
  if (!c) raise(c.error());
  if (reconnect) c->reconnect_on_loss();
  return PyConsumer{std::make_shared<ConsumerCore>(std::move(*c), pollable)};
}

shmfd::Backpressure parse_backpressure(const std::string& text) {
  if (text == "drop-oldest") return shmfd::Backpressure::drop_oldest;
  if (text == "block-producer") return shmfd::Backpressure::block_producer;
  if (text == "latest") return shmfd::Backpressure::latest;
  value_error("unknown backpressure '" + text + "': 'drop-oldest', 'block-producer' or 'latest'");
}

// ---- Producer ------------------------------------------------------------------------------

struct ProducerCore : SlotOwner {
  explicit ProducerCore(shmfd::Producer p) : producer(std::move(p)) {}
  shmfd::Status discard(const shmfd::Slot& slot) override { return producer.discard(slot); }
  shmfd::Producer producer;
};

// `data`'s bytes in `view`, released when the result goes; a ValueError naming `what` for data
// that is not C-contiguous.
using HeldView = std::unique_ptr<Py_buffer, void (*)(Py_buffer*)>;
HeldView contiguous_view(const py::buffer& data, Py_buffer& view, const char* what) {
  if (PyObject_GetBuffer(data.ptr(), &view, PyBUF_C_CONTIGUOUS) != 0) {
    PyErr_Clear();
    value_error(std::string(what) + ": the data must be C-contiguous (numpy.ascontiguousarray)");
  }
  return HeldView(&view, PyBuffer_Release);
}

struct PyProducer {
  std::shared_ptr<ProducerCore> core;

  PySlot acquire(std::uint32_t pool, std::optional<PyLayout> layout, bool block) {
    return acquire_slot(core, layout ? std::optional(layout->layout) : std::nullopt, block,
                        [&](shmfd::Wait wait) { return core->producer.acquire(pool, wait); });
  }

  std::uint64_t publish(const std::string& topic, PySlot& slot, std::optional<PyLayout> layout,
                        std::uint64_t timestamp_ns, const PyMeta& meta) {
    slot.check_acquired("publish");
    const shmfd::Layout l = layout ? layout->layout
                            : slot.layout
                                ? *slot.layout
                                : shmfd::Layout(shmfd::blob_layout(slot.slot.bytes.size()));
    auto sequence = [&] {
      py::gil_scoped_release nogil;
      std::lock_guard lock(core->mutex);
      return core->producer.publish(topic, slot.slot, l, meta.meta, timestamp_ns);
    }();
    if (!sequence) raise(sequence.error());
    slot.sent();
    return *sequence;
  }

  std::uint64_t publish_bytes(const std::string& topic, const py::buffer& data,
                              std::optional<PyLayout> layout, std::uint64_t timestamp_ns,
                              const PyMeta& meta) {
    Py_buffer view;
    const HeldView held = contiguous_view(data, view, "publish_bytes");
    const auto bytes = static_cast<std::size_t>(view.len);
    const shmfd::Layout l = layout ? layout->layout : shmfd::Layout(shmfd::blob_layout(bytes));
    auto sequence = [&]() -> shmfd::Result<std::uint64_t> {
      py::gil_scoped_release nogil;
      std::lock_guard lock(core->mutex);
      auto buffer = core->producer.allocate(topic, shmfd::blob_layout(bytes));
      if (!buffer) return shmfd::fail(std::move(buffer.error()));
      std::memcpy(buffer->bytes().data(), view.buf, bytes);
      return core->producer.publish(topic, std::move(*buffer), l, meta.meta, timestamp_ns);
    }();
    return ok(std::move(sequence));
  }
};

}  // namespace

namespace shmfd_py {

void raise_error(const shmfd::Error& e) {
  raise(e);
}

py::object frame_object(shmfd::Frame frame) {
  return make_frame(std::move(frame));
}

shmfd::Layout layout_of(const py::object& layout, std::size_t bytes) {
  if (layout.is_none()) return shmfd::blob_layout(bytes);
  return layout.cast<PyLayout>().layout;
}

void PySlot::check_acquired(const char* what) const {
  if (state != State::acquired) {
    value_error(std::string(what) + ": slot " + std::to_string(slot.index) + " of pool " +
                std::to_string(slot.pool) + " was already " +
                (state == State::published ? "published or sent" : "discarded"));
  }
}

void PySlot::discard() {
  if (state != State::acquired) return;
  {
    std::lock_guard lock(core->mutex);
    ok(core->discard(slot));
  }
  state = State::discarded;
  for (py::handle a : arrays) a.attr("setflags")(py::arg("write") = false);
  arrays = py::list();
}

void PySlot::sent() {
  state = State::published;
  for (py::handle a : arrays) a.attr("setflags")(py::arg("write") = false);
  arrays = py::list();
}

shmfd::WritableBuffer buffer_of(const py::buffer& data, const char* what) {
  Py_buffer view;
  const HeldView held = contiguous_view(data, view, what);
  const auto bytes = static_cast<std::size_t>(view.len);
  auto buffer = shmfd::WritableBuffer::create(std::string("shmfd-py:") + what, bytes);
  if (!buffer) raise(buffer.error());
  std::memcpy(buffer->bytes().data(), view.buf, bytes);
  return std::move(*buffer);
}

}  // namespace shmfd_py

PYBIND11_MODULE(_shmfd, m) {
  m.doc() =
      "shmfd: zero-copy frames between processes, verified by shmfd-broker.\n\n"
      "Consumers get frames as read-only numpy arrays that are the producer's pages; producers\n"
      "write pool slots in place through writable arrays. See help(shmfd.Consumer) and\n"
      "help(shmfd.Producer).";

  // Errors: one base class, and one subclass per kind of failure.
  // Never destroyed: a static's destructor would drop these references after the interpreter
  // has finalized.
  auto& ex = *new Exceptions;
  const auto make = [&](const char* name, py::object bases, const char* doc) {
    py::object cls = py::reinterpret_steal<py::object>(PyErr_NewExceptionWithDoc(
        (std::string("shmfd.") + name).c_str(), doc, bases.ptr(), nullptr));
    if (!cls) throw py::error_already_set();
    m.attr(name) = cls;
    return cls;
  };
  ex.base = make("Error", py::reinterpret_borrow<py::object>(PyExc_Exception),
                 "Any shmfd failure. .code names its kind (e.g. 'disconnected'), "
                 ".broker_error the broker's reason for a refusal (e.g. 'topic-taken'), "
                 ".errno the OS error of a failed system call; str() is the full message.");
  ex.os = make("OSFailure", py::make_tuple(ex.base, py::handle(PyExc_OSError)),
               "A system call failed (.errno says which error): e.g. no broker at the socket.");
  ex.disconnected =
      make("DisconnectedError", py::make_tuple(ex.base, py::handle(PyExc_ConnectionError)),
           "The broker closed the connection (it stopped, or cut this client off).");
  ex.broker_refused = make("BrokerRefusedError", ex.base,
                           "The broker refused a request: .broker_error says why "
                           "('topic-taken', 'permission-denied', 'limit-exceeded', ...).");
  ex.layout = make("LayoutError", py::make_tuple(ex.base, py::handle(PyExc_ValueError)),
                   "A layout broke one of its rules, or does not fit its buffer.");
  ex.verification = make("VerificationError", ex.base,
                         "A buffer failed verification: not a memfd, seals missing, too small.");
  ex.no_free_slot = make("NoFreeSlotError", ex.base,
                         "Every slot of the pool is held (acquire with block=False).");
  ex.invalid_argument =
      make("InvalidArgumentError", py::make_tuple(ex.base, py::handle(PyExc_ValueError)),
           "An argument the call does not take: a bad topic name, an unknown pool, a slot "
           "that is not acquired.");
  ex.limit_exceeded = make("LimitExceededError", ex.base,
                           "A configured limit was reached (huge pages unavailable, too many "
                           "layouts on a topic, ...).");
  ex.protocol = make("ProtocolError", ex.base, "The broker sent what the protocol does not allow.");
  ex.transport = make("TransportError", ex.base, "A message or its fds did not arrive whole.");
  ex.call_failed = make("CallFailedError", ex.base,
                        "A call to a service failed: .call_error says why ('no-server', 'busy', "
                        "'deadline', 'server-gone': call again, 'server-error', 'cancelled').");
  exceptions = &ex;

  m.def("default_socket_path", &shmfd::default_socket_path,
        "The broker's default socket: $XDG_RUNTIME_DIR/shmfd/broker.sock, or "
        "/run/shmfd/broker.sock for root.");
  m.attr("PROTOCOL_VERSION") = shmfd::kProtocolVersion;
  m.attr("FLAG_DISCONTINUITY") = static_cast<std::uint32_t>(shmfd::FrameFlag::discontinuity);
  m.attr("FLAG_CORRUPTED") = static_cast<std::uint32_t>(shmfd::FrameFlag::corrupted);
  m.attr("FLAG_DELTA_UNIT") = static_cast<std::uint32_t>(shmfd::FrameFlag::delta_unit);
  m.attr("FLAG_GAP") = static_cast<std::uint32_t>(shmfd::FrameFlag::gap);
  m.attr("FLAG_MARKER") = static_cast<std::uint32_t>(shmfd::FrameFlag::marker);

  py::class_<PyLayout>(m, "Layout",
                       "What a frame's bytes mean: an image with planes and strides, audio, a "
                       "tensor, or a blob. Make one with Layout.image/audio/tensor/blob.")
      .def_static(
          "image",
          [](const std::string& format, std::uint32_t width, std::uint32_t height,
             std::uint32_t row_alignment) {
            return PyLayout{
                ok(shmfd::image_layout(parse_enum<shmfd::PixelFormat>(format, 8, "pixel format"),
                                       width, height, row_alignment))};
          },
          py::arg("format"), py::arg("width"), py::arg("height"), py::arg("row_alignment") = 1,
          "An image: format is one of rgba8, bgra8, rgb24, nv12, i420, yuyv, gray8, gray16. "
          "row_alignment (a power of two) pads each row.")
      .def_static(
          "audio",
          [](const std::string& format, std::uint32_t rate, std::uint32_t channels,
             std::uint64_t frames, bool planar) {
            return PyLayout{
                ok(shmfd::audio_layout(parse_enum<shmfd::SampleFormat>(format, 5, "sample format"),
                                       rate, channels, frames, planar))};
          },
          py::arg("format"), py::arg("sample_rate"), py::arg("channels"), py::arg("frames"),
          py::arg("planar") = false,
          "Audio: format is one of u8, s16, s32, f32, f64; frames is samples per channel.")
      .def_static(
          "tensor",
          [](const std::string& dtype, const std::vector<std::uint64_t>& shape) {
            return PyLayout{
                ok(shmfd::tensor_layout(parse_enum<shmfd::DType>(dtype, 12, "dtype"), shape))};
          },
          py::arg("dtype"), py::arg("shape"),
          "A dense row-major tensor: dtype is one of u8, i8, u16, i16, u32, i32, u64, i64, "
          "f16, bf16, f32, f64 (bf16 arrays come out as uint16).")
      .def_static(
          "blob", [](std::uint64_t size) { return PyLayout{shmfd::blob_layout(size)}; },
          py::arg("size"), "Opaque bytes.")
      .def_property_readonly(
          "kind", [](const PyLayout& l) { return kind_name(l.layout); },
          "'blob', 'image', 'audio' or 'tensor'.")
      .def_property_readonly(
          "extent", [](const PyLayout& l) { return ok(shmfd::layout_extent(l.layout)); },
          "One past the last byte described: the least buffer size.")
      .def_property_readonly(
          "format",
          [](const PyLayout& l) -> py::object {
            if (auto* i = std::get_if<shmfd::ImageLayout>(&l.layout)) {
              return py::str(std::string(shmfd::to_string(i->format)));
            }
            if (auto* a = std::get_if<shmfd::AudioLayout>(&l.layout)) {
              return py::str(std::string(shmfd::to_string(a->format)));
            }
            if (auto* t = std::get_if<shmfd::TensorLayout>(&l.layout)) {
              return py::str(std::string(shmfd::to_string(t->dtype)));
            }
            return py::none();
          },
          "The pixel format, sample format or dtype (None for a blob).")
      .def_property_readonly("width",
                             [](const PyLayout& l) -> py::object {
                               auto* i = std::get_if<shmfd::ImageLayout>(&l.layout);
                               return i ? py::object(py::int_(i->width)) : py::none();
                             })
      .def_property_readonly("height",
                             [](const PyLayout& l) -> py::object {
                               auto* i = std::get_if<shmfd::ImageLayout>(&l.layout);
                               return i ? py::object(py::int_(i->height)) : py::none();
                             })
      .def_property_readonly(
          "planes",
          [](const PyLayout& l) -> py::object {
            auto* i = std::get_if<shmfd::ImageLayout>(&l.layout);
            return i ? plane_list(*i) : py::none();
          },
          "An image's planes, as (offset, stride, size) in bytes.")
      .def_property_readonly(
          "shape",
          [](const PyLayout& l) -> py::object {
            auto* t = std::get_if<shmfd::TensorLayout>(&l.layout);
            if (!t) return py::none();
            py::tuple shape(t->rank);
            for (std::uint32_t i = 0; i < t->rank; ++i) shape[i] = t->shape[i];
            return shape;
          },
          "A tensor's shape.")
      .def("__eq__", [](const PyLayout& a, const PyLayout& b) { return a.layout == b.layout; })
      .def("__repr__", [](const PyLayout& l) { return repr(l.layout); });

  py::class_<EndOfStream>(m, "EndOfStream", "The topic's producer left or stopped producing it.")
      .def_readonly("topic", &EndOfStream::topic)
      .def_readonly("reason", &EndOfStream::reason)
      .def_readonly("dropped", &EndOfStream::dropped,
                    "Frames of the topic missed in all up to the end, as Frame.dropped counts "
                    "them: more than the last frame's if frames were lost after it")
      .def("__repr__", [](const EndOfStream& e) {
        return "EndOfStream(topic='" + e.topic + "', reason='" + e.reason + "')";
      });
  py::class_<Reconnected>(m, "Reconnected",
                          "The broker came back (reconnect=True); every subscription is renewed.")
      .def_readonly("gap_seconds", &Reconnected::gap_seconds);

  py::class_<PyFrame>(m, "Frame",
                      "A received frame: its bytes are the producer's pages, mapped read-only.\n\n"
                      "Use it as a context manager, or call release(), to give it back (a pool "
                      "slot returns to the producer); otherwise it is released when it and "
                      "every array of it are gone. Arrays stay valid after release (the pages "
                      "stay mapped), but a pool frame's bytes may then be overwritten.")
      .def_readonly("topic", &PyFrame::topic)
      .def_readonly("sequence", &PyFrame::sequence)
      .def_readonly("timestamp_ns", &PyFrame::timestamp_ns, "Capture time, CLOCK_MONOTONIC.")
      .def_readonly("dropped", &PyFrame::dropped,
                    "Frames of this topic this consumer missed so far.")
      .def_readonly("in_pool", &PyFrame::in_pool, "A pool slot (else a sealed buffer of its own).")
      .def_property_readonly("layout", [](const PyFrame& f) { return PyLayout{f.layout}; })
      .def_property_readonly(
          "pts", [](const PyFrame& f) { return f.meta.pts; },
          "Presentation time in ns of the stream's time, or None.")
      .def_property_readonly(
          "dts", [](const PyFrame& f) { return f.meta.dts; },
          "Decoding time in ns of the stream's time, or None.")
      .def_property_readonly(
          "duration", [](const PyFrame& f) { return f.meta.duration; }, "In ns, or None.")
      .def_property_readonly(
          "flags", [](const PyFrame& f) { return f.meta.flags; }, "FLAG_* bits.")
      .def_property_readonly(
          "crop",
          [](const PyFrame& f) -> std::optional<PyCrop> {
            if (!f.meta.crop) return std::nullopt;
            return PyCrop{f.meta.crop->x, f.meta.crop->y, f.meta.crop->width, f.meta.crop->height};
          },
          "(x, y, width, height) of the image meant to be shown, or None.")
      .def_property_readonly(
          "header", [](const PyFrame& f) { return py::memoryview(f.header); },
          "The user header, a read-only memoryview (empty when none).")
      .def_property_readonly("released", [](const PyFrame& f) { return !f.frame.has_value(); })
      .def_property_readonly(
          "address", [](const PyFrame& f) { return reinterpret_cast<std::uintptr_t>(f.data); },
          "Where the frame's bytes are mapped in this process.")
      .def_property_readonly("size", [](const PyFrame& f) { return f.size; })
      .def_property_readonly(
          "array",
          [](py::object self) -> py::object {
            auto& f = self.cast<PyFrame&>();
            py::list arrays = make_arrays(f.layout, f.data, self, false);
            if (arrays.size() != 1) {
              throw py::value_error("frame.array: a " + repr(f.layout) + " frame has " +
                                    std::to_string(arrays.size()) + " planes: use frame.planes");
            }
            return arrays[0];
          },
          "The frame as one read-only numpy array: (height, width, channels) for packed "
          "images, (height, width) for gray, (frames, channels) for audio, the tensor's shape, "
          "or flat uint8 for a blob. NV12 and I420 have planes instead.")
      .def_property_readonly(
          "planes",
          [](py::object self) {
            auto& f = self.cast<PyFrame&>();
            return make_arrays(f.layout, f.data, self, false);
          },
          "One read-only array per plane (Y, UV for NV12; Y, U, V for I420); [array] otherwise.")
      .def_property_readonly(
          "bytes",
          [](py::object self) {
            auto& f = self.cast<PyFrame&>();
            py::array a(py::dtype::of<std::uint8_t>(), {ss(f.size)}, {1}, f.data, self);
            a.attr("setflags")(py::arg("write") = false);
            return a;
          },
          "The whole buffer or slot, as a flat read-only uint8 array.")
      .def("release", &PyFrame::release, "Gives the frame back now (idempotent).")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PyFrame& f, py::args) { f.release(); })
      .def("__repr__", [](const PyFrame& f) {
        return "<shmfd.Frame topic='" + f.topic + "' sequence=" + std::to_string(f.sequence) + " " +
               repr(f.layout) + (f.frame ? "" : " released") + ">";
      });

  py::class_<PyConsumer>(m, "Consumer",
                         "Subscribes to topics and receives their frames.\n\n"
                         "    consumer = shmfd.Consumer(name='viewer')\n"
                         "    consumer.subscribe('cam0')\n"
                         "    for event in consumer:            # Frame, EndOfStream, Reconnected\n"
                         "        if isinstance(event, shmfd.Frame):\n"
                         "            with event as frame:\n"
                         "                print(frame.array.mean())\n\n"
                         "pollable=True takes every frame through the broker's socket, so that "
                         "fileno() can be polled (asyncio's add_reader); otherwise pool frames "
                         "come on shared-memory channels, faster, that no fd signals. "
                         "reconnect=True connects again when the broker restarts.")
      .def(py::init(&connect_consumer), py::arg("socket") = py::none(), py::arg("name") = "python",
           py::arg("pollable") = false, py::arg("reconnect") = false)
      .def(
          "subscribe",
          [](PyConsumer& c, const std::string& topic, std::uint32_t depth,
             const std::string& backpressure) {
            const auto policy = parse_backpressure(backpressure);
            auto granted = [&] {
              py::gil_scoped_release nogil;
              std::lock_guard lock(c.core->mutex);
              return c.core->consumer.subscribe(topic, depth, policy);
            }();
            return ok(std::move(granted));
          },
          py::arg("topic"), py::arg("depth") = 0, py::arg("backpressure") = "drop-oldest",
          "Subscribes; returns the queue depth granted (0 asks for the broker's default). "
          "backpressure: 'drop-oldest' (live media) or 'block-producer' (no loss).")
      .def(
          "unsubscribe",
          [](PyConsumer& c, const std::string& topic) {
            auto done = [&] {
              py::gil_scoped_release nogil;
              std::lock_guard lock(c.core->mutex);
              return c.core->consumer.unsubscribe(topic);
            }();
            ok(std::move(done));
          },
          py::arg("topic"))
      .def("receive", &PyConsumer::receive, py::arg("timeout") = py::none(),
           "The next Frame, EndOfStream or Reconnected; None if timeout (seconds) passes first. "
           "Waits without holding the GIL; Ctrl-C interrupts it.")
      .def(
          "fileno",
          [](PyConsumer& c) {
            if (!c.core->pollable) {
              throw py::value_error(
                  "fileno: this consumer takes pool frames on shared-memory channels, which no "
                  "fd signals; create it with pollable=True to poll it");
            }
            std::lock_guard lock(c.core->mutex);
            return c.core->consumer.native_handle();
          },
          "The fd to poll (pollable=True only). Before each wait, receive(timeout=0) until it "
          "returns None. It changes after a Reconnected.")
      .def_property_readonly("pollable", [](const PyConsumer& c) { return c.core->pollable; })
      .def_property_readonly(
          "refusals",
          [](PyConsumer& c) {
            std::lock_guard lock(c.core->mutex);
            return c.core->consumer.channel_refusals();
          },
          "Descriptors producers wrote on this consumer's channels that "
          "failed the checks, and were skipped.")
      .def(
          "topic_options",
          [](PyConsumer& c, const std::string& topic) -> py::object {
            std::optional<shmfd::TopicOptions> options;
            {
              std::lock_guard lock(c.core->mutex);
              options = c.core->consumer.topic_options(topic);
            }
            if (!options) return py::none();
            py::dict d;
            d["max_header_bytes"] = options->max_header_bytes;
            d["header_schema"] = options->header_schema;
            d["frame_rate"] = py::make_tuple(options->frame_rate.num, options->frame_rate.den);
            d["timestamps_required"] = options->timestamps_required;
            return std::move(d);
          },
          py::arg("topic"),
          "What the producer of a subscribed topic declared when it advertised it: a dict of "
          "max_header_bytes, header_schema, frame_rate ((0, 0) when unknown) and "
          "timestamps_required; None until the broker has said (it does before the producer's "
          "first frame reaches this consumer) or from a broker older than protocol 5.")
      .def("__iter__", [](py::object self) { return self; })
      .def("__next__", [](PyConsumer& c) { return c.receive(std::nullopt); });

  py::class_<PySlot>(m, "Slot",
                     "A pool slot acquired for writing. Fill .array (or .planes), then "
                     "producer.publish(topic, slot). Leaving a `with` block without publishing "
                     "gives the slot back. Its arrays turn read-only once it is published.")
      .def_property_readonly("pool", [](const PySlot& s) { return s.slot.pool; })
      .def_property_readonly("index", [](const PySlot& s) { return s.slot.index; })
      .def_property_readonly("size", [](const PySlot& s) { return s.slot.bytes.size(); })
      .def_property_readonly(
          "address",
          [](const PySlot& s) { return reinterpret_cast<std::uintptr_t>(s.slot.bytes.data()); })
      .def_property_readonly("layout",
                             [](const PySlot& s) -> py::object {
                               return s.layout ? py::cast(PyLayout{*s.layout}) : py::none();
                             })
      .def_property_readonly(
          "array",
          [](py::object self) -> py::object {
            auto& s = self.cast<PySlot&>();
            s.check_acquired("slot.array");
            const shmfd::Layout l =
                s.layout ? *s.layout : shmfd::Layout(shmfd::blob_layout(s.slot.bytes.size()));
            py::list arrays = make_arrays(l, s.slot.bytes.data(), self, true);
            if (arrays.size() != 1) {
              throw py::value_error("slot.array: a " + repr(l) + " slot has " +
                                    std::to_string(arrays.size()) + " planes: use slot.planes");
            }
            s.arrays.append(arrays[0]);
            return arrays[0];
          },
          "A writable array of the slot in its layout (flat uint8 without one).")
      .def_property_readonly(
          "planes",
          [](py::object self) {
            auto& s = self.cast<PySlot&>();
            s.check_acquired("slot.planes");
            const shmfd::Layout l =
                s.layout ? *s.layout : shmfd::Layout(shmfd::blob_layout(s.slot.bytes.size()));
            py::list arrays = make_arrays(l, s.slot.bytes.data(), self, true);
            for (py::handle a : arrays) s.arrays.append(a);
            return arrays;
          })
      .def("discard", &PySlot::discard, "Gives the slot back unpublished.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](PySlot& s, py::args) { s.discard(); });

  py::class_<PyProducer>(m, "Producer",
                         "Publishes frames on topics.\n\n"
                         "    producer = shmfd.Producer(name='camera')\n"
                         "    producer.advertise('cam0', 'image', guarantee='pool')\n"
                         "    layout = shmfd.Layout.image('rgba8', 640, 480)\n"
                         "    pool = producer.create_pool('cam0', layout.extent, 4)\n"
                         "    with producer.acquire(pool, layout) as slot:\n"
                         "        slot.array[:] = 255                # writes the slot in place\n"
                         "        producer.publish('cam0', slot)\n\n"
                         "Sealed topics take publish_bytes(topic, data, layout): one copy into a "
                         "fresh memfd, sealed before it is sent.")
      .def(py::init([](std::optional<std::string> socket, const std::string& name, bool reconnect) {
             const std::string path = socket ? *socket : shmfd::default_socket_path();
             auto p = [&] {
               py::gil_scoped_release nogil;
               return shmfd::Producer::connect(path, name);
             }();
             if (!p) raise(p.error());
             if (reconnect) p->reconnect_on_loss();
             return PyProducer{std::make_shared<ProducerCore>(std::move(*p))};
           }),
           py::arg("socket") = py::none(), py::arg("name") = "python", py::arg("reconnect") = false)
      .def(
          "advertise",
          [](PyProducer& p, const std::string& topic, const std::string& kind,
             const std::string& guarantee, std::uint32_t max_header_bytes,
             const std::string& header_schema,
             std::optional<std::tuple<std::uint32_t, std::uint32_t>> frame_rate,
             bool timestamps_required) {
            shmfd::TopicOptions options;
            options.max_header_bytes = max_header_bytes;
            options.header_schema = header_schema;
            if (frame_rate)
              options.frame_rate = {std::get<0>(*frame_rate), std::get<1>(*frame_rate)};
            options.timestamps_required = timestamps_required;
            if (guarantee != "sealed" && guarantee != "pool") {
              throw py::value_error("advertise: guarantee '" + guarantee +
                                    "' is neither 'sealed' nor 'pool'");
            }
            const auto k = parse_kind(kind);
            auto done = [&] {
              py::gil_scoped_release nogil;
              std::lock_guard lock(p.core->mutex);
              return p.core->producer.advertise(
                  topic, k, guarantee == "pool" ? shmfd::Guarantee::pool : shmfd::Guarantee::sealed,
                  options);
            }();
            ok(std::move(done));
          },
          py::arg("topic"), py::arg("kind"), py::arg("guarantee") = "sealed", py::kw_only(),
          py::arg("max_header_bytes") = 0, py::arg("header_schema") = "",
          py::arg("frame_rate") = py::none(), py::arg("timestamps_required") = false,
          "Declares this client the producer of topic, whose layouts are all of kind "
          "('blob', 'image', 'audio', 'tensor'); guarantee 'pool' for pools, 'sealed' for "
          "publish_bytes. Frame metadata (protocol 5): max_header_bytes (0 to 4096) bounds "
          "each frame's header, header_schema names what it holds, frame_rate is (num, den), "
          "timestamps_required makes every frame carry a pts or a dts.")
      .def(
          "unadvertise",
          [](PyProducer& p, const std::string& topic) {
            auto done = [&] {
              py::gil_scoped_release nogil;
              std::lock_guard lock(p.core->mutex);
              return p.core->producer.unadvertise(topic);
            }();
            ok(std::move(done));
          },
          py::arg("topic"), "Stops producing topic: its consumers get EndOfStream.")
      .def(
          "create_pool",
          [](PyProducer& p, const std::string& topic, std::size_t slot_bytes, std::uint32_t slots,
             bool huge_pages) {
            shmfd::MemfdOptions options;
            options.huge_pages = huge_pages;
            options.fall_back_to_normal_pages = huge_pages;
            auto pool = [&] {
              py::gil_scoped_release nogil;
              std::lock_guard lock(p.core->mutex);
              return p.core->producer.create_pool(topic, slot_bytes, slots, options);
            }();
            return ok(std::move(pool));
          },
          py::arg("topic"), py::arg("slot_bytes"), py::arg("slots"), py::arg("huge_pages") = false,
          "Creates and registers a pool of `slots` slots of at least slot_bytes each; returns "
          "its id.")
      .def("acquire", &PyProducer::acquire, py::arg("pool"), py::arg("layout") = py::none(),
           py::arg("block") = true,
           "A free slot (waits for one; block=False raises NoFreeSlotError). With a layout, "
           "slot.array has its shape.")
      .def(
          "publish",
          [](PyProducer& p, const std::string& topic, PySlot& slot, std::optional<PyLayout> layout,
             std::uint64_t timestamp_ns, std::optional<std::uint64_t> pts,
             std::optional<std::uint64_t> dts, std::optional<std::uint64_t> duration,
             std::uint32_t flags, std::optional<PyCrop> crop, std::optional<py::buffer> header) {
            return p.publish(topic, slot, std::move(layout), timestamp_ns,
                             PyMeta(pts, dts, duration, flags, crop, header));
          },
          py::arg("topic"), py::arg("slot"), py::arg("layout") = py::none(),
          py::arg("timestamp_ns") = 0, py::kw_only(), py::arg("pts") = py::none(),
          py::arg("dts") = py::none(), py::arg("duration") = py::none(), py::arg("flags") = 0,
          py::arg("crop") = py::none(), py::arg("header") = py::none(),
          "Publishes an acquired slot (with its layout from acquire, or this one); returns the "
          "sequence number. timestamp_ns 0 means now. Metadata (protocol 5): pts, dts and "
          "duration in ns of the stream's time, flags (FLAG_*), crop (x, y, width, height) "
          "of an image, header (bytes-like, at most the topic's max_header_bytes).")
      .def(
          "publish_bytes",
          [](PyProducer& p, const std::string& topic, const py::buffer& data,
             std::optional<PyLayout> layout, std::uint64_t timestamp_ns,
             std::optional<std::uint64_t> pts, std::optional<std::uint64_t> dts,
             std::optional<std::uint64_t> duration, std::uint32_t flags, std::optional<PyCrop> crop,
             std::optional<py::buffer> header) {
            return p.publish_bytes(topic, data, std::move(layout), timestamp_ns,
                                   PyMeta(pts, dts, duration, flags, crop, header));
          },
          py::arg("topic"), py::arg("data"), py::arg("layout") = py::none(),
          py::arg("timestamp_ns") = 0, py::kw_only(), py::arg("pts") = py::none(),
          py::arg("dts") = py::none(), py::arg("duration") = py::none(), py::arg("flags") = 0,
          py::arg("crop") = py::none(), py::arg("header") = py::none(),
          "Copies data (bytes or a C-contiguous array) into a fresh memfd, seals it and "
          "publishes it on a sealed topic; returns the sequence number. Metadata as publish().")
      .def(
          "poll_errors",
          [](PyProducer& p) {
            auto errors = [&] {
              std::lock_guard lock(p.core->mutex);
              return p.core->producer.poll_errors();
            }();
            py::list out;
            for (const auto& e : ok(std::move(errors))) out.append(exception_for(e));
            return out;
          },
          "Refusals the broker sent for earlier frames, as exception objects (not raised).");

  shmfd_py::bind_services(m);
}
