// device_stream.cpp: the pjrt device guard (c10::impl::DeviceGuardImplInterface):
// current device, streams and events. PJRT gives a device one queue, so every
// stream of a device shares that ordering; events capture the device's work
// in flight through the C runtime (src/runtime/eager_event.c).
#include <Python.h>

#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>

#include <atomic>
#include <unordered_map>

#include "device_internal.h"
#include "tpj/eager.h"

namespace tpj_device {
namespace {

// Stream ids: 0 is each device's default stream; every new stream gets the
// next id. All streams of a device are one queue (see docs/design.md).
std::atomic<c10::StreamId> g_next_stream{1};
// This thread's current stream id per device (absent: the default stream).
thread_local std::unordered_map<c10::DeviceIndex, c10::StreamId> t_current_stream;

c10::DeviceIndex index_or_current(c10::Device d) { return d.has_index() ? d.index() : g_current; }

c10::Stream make_stream(c10::DeviceIndex index, c10::StreamId id) {
  return c10::Stream(c10::Stream::UNSAFE, c10::Device(kDev, index), id);
}

void check_index(c10::DeviceIndex index, const char* what) {
  TORCH_CHECK(index >= 0 && index < device_count(), "torch_pjrt: ", what,
              ": invalid pjrt device index ", (int)index, " (have ", (int)device_count(),
              " devices)");
}

tpj_eager_event_t* as_event(void* e) { return static_cast<tpj_eager_event_t*>(e); }

c10::Stream current_stream_of(c10::DeviceIndex index) {
  auto it = t_current_stream.find(index);
  return make_stream(index, it == t_current_stream.end() ? 0 : it->second);
}

c10::Stream set_current_stream(const c10::Stream& s) {
  c10::Stream old = current_stream_of(s.device_index());
  t_current_stream[s.device_index()] = s.id();
  return old;
}

struct PjrtGuardImpl final : c10::impl::DeviceGuardImplInterface {
  c10::DeviceType type() const override { return kDev; }
  c10::Device exchangeDevice(c10::Device d) const override {
    c10::Device old(kDev, g_current);
    if (d.has_index()) g_current = d.index();
    return old;
  }
  c10::Device getDevice() const override { return c10::Device(kDev, g_current); }
  void setDevice(c10::Device d) const override {
    TORCH_CHECK(!d.has_index() || d.index() < device_count(), "torch_pjrt: invalid device ", d);
    if (d.has_index()) g_current = d.index();
  }
  void uncheckedSetDevice(c10::Device d) const noexcept override {
    if (d.has_index()) g_current = d.index();
  }
  c10::DeviceIndex deviceCount() const noexcept override {
    try {
      return device_count();
    } catch (...) {  // required not to throw: a device that cannot start has none
      return 0;
    }
  }

  // ---------------------------------------------------------------- streams --
  c10::Stream getStream(c10::Device d) const override {
    return current_stream_of(index_or_current(d));
  }
  c10::Stream getDefaultStream(c10::Device d) const override {
    return make_stream(index_or_current(d), 0);
  }
  c10::Stream getStreamFromGlobalPool(c10::Device d, bool) const override {
    return getNewStream(d, 0);
  }
  c10::Stream getNewStream(c10::Device d, int) const override {
    c10::DeviceIndex index = index_or_current(d);
    check_index(index, "new stream");
    return make_stream(index, g_next_stream.fetch_add(1));
  }
  c10::Stream exchangeStream(c10::Stream s) const override { return set_current_stream(s); }
  // One queue per device: a stream is idle when nothing is in flight on it.
  bool queryStream(const c10::Stream& s) const override {
    bool idle = true;
    check(tpj_eager_device_query((size_t)s.device_index(), &idle));
    return idle;
  }
  void synchronizeStream(const c10::Stream&) const override { check(tpj_eager_synchronize()); }
  void synchronizeDevice(const c10::DeviceIndex) const override { check(tpj_eager_synchronize()); }

  // ----------------------------------------------------------------- events --
  void record(void** event, const c10::Stream& s, const c10::DeviceIndex,
              const c10::EventFlag flag) const override {
    check_index(s.device_index(), "event record");
    if (!*event) {
      tpj_eager_event_t* e = nullptr;
      check(tpj_eager_event_create(flag == c10::EventFlag::BACKEND_DEFAULT, &e));
      *event = e;
    }
    check(tpj_eager_event_record(as_event(*event), (size_t)s.device_index()));
  }
  // Later work on `s` must come after the event's work. PJRT already orders
  // every program after the programs that make its inputs, but not unrelated
  // work, so this waits on the host until the captured work is done.
  void block(void* event, const c10::Stream&) const override {
    if (event) check(tpj_eager_event_synchronize(as_event(event)));
  }
  bool queryEvent(void* event) const override {
    bool done = true;
    if (event) check(tpj_eager_event_query(as_event(event), &done));
    return done;
  }
  void synchronizeEvent(void* event) const override {
    if (event) check(tpj_eager_event_synchronize(as_event(event)));
  }
  double elapsedTime(void* start, void* end, const c10::DeviceIndex) const override {
    TORCH_CHECK(start && end, "torch_pjrt: both events must be recorded before calculating "
                "elapsed time");
    double ms = 0.0;
    check(tpj_eager_event_elapsed_ms(as_event(start), as_event(end), &ms));
    return ms;
  }
  void destroyEvent(void* event, const c10::DeviceIndex) const noexcept override {
    tpj_eager_event_destroy(as_event(event));
  }
};
C10_REGISTER_GUARD_IMPL(PrivateUse1, PjrtGuardImpl);

// --------------------------------------------------------- Python functions --

// Runs `fn` turning a c10::Error into a Python RuntimeError (nullptr).
template <typename F>
PyObject* guarded(F fn) {
  try {
    return fn();
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    return nullptr;
  }
}

PyObject* stream_tuple(const c10::Stream& s) {
  return Py_BuildValue("(LLi)", (long long)s.id(), (long long)s.device_index(),
                       (int)s.device_type());
}

bool parse_index(PyObject* arg, c10::DeviceIndex* out) {
  long d = PyLong_AsLong(arg);
  if (d == -1 && PyErr_Occurred()) return false;
  *out = d < 0 ? g_current : (c10::DeviceIndex)d;
  return true;
}

PyObject* py_current_stream(PyObject*, PyObject* arg) {
  c10::DeviceIndex index = 0;
  if (!parse_index(arg, &index)) return nullptr;
  return guarded([&] {
    check_index(index, "current_stream");
    return stream_tuple(current_stream_of(index));
  });
}

PyObject* py_default_stream(PyObject*, PyObject* arg) {
  c10::DeviceIndex index = 0;
  if (!parse_index(arg, &index)) return nullptr;
  return guarded([&] {
    check_index(index, "default_stream");
    return stream_tuple(make_stream(index, 0));
  });
}

PyObject* py_set_stream(PyObject*, PyObject* args) {
  long long id = 0, index = 0;
  if (!PyArg_ParseTuple(args, "LL", &id, &index)) return nullptr;
  return guarded([&] {
    check_index((c10::DeviceIndex)index, "set_stream");
    set_current_stream(make_stream((c10::DeviceIndex)index, (c10::StreamId)id));
    Py_RETURN_NONE;
  });
}

// elapsed_time of torch.pjrt.Event: torch.Event.elapsed_time takes only exact
// torch.Event objects, so the subclass passes the events' ids (event_id: the
// tpj_eager_event_t*, 0 before the first record) of two live events.
PyObject* py_event_elapsed(PyObject*, PyObject* args) {
  unsigned long long start = 0, end = 0;
  if (!PyArg_ParseTuple(args, "KK", &start, &end)) return nullptr;
  return guarded([&]() -> PyObject* {
    TORCH_CHECK(start && end, "torch_pjrt: both events must be recorded before calculating "
                "elapsed time");
    double ms = 0.0;
    check(tpj_eager_event_elapsed_ms(as_event((void*)(uintptr_t)start),
                                     as_event((void*)(uintptr_t)end), &ms));
    return PyFloat_FromDouble(ms);
  });
}

PyMethodDef g_stream_methods[] = {
    {"event_elapsed", py_event_elapsed, METH_VARARGS,
     "event_elapsed(start_id, end_id) -> milliseconds between two recorded events"},
    {"current_stream", py_current_stream, METH_O,
     "current_stream(index) -> (stream_id, device_index, device_type); -1 = current device"},
    {"default_stream", py_default_stream, METH_O,
     "default_stream(index) -> (stream_id, device_index, device_type)"},
    {"set_stream", py_set_stream, METH_VARARGS,
     "set_stream(stream_id, device_index): this thread's current stream of that device"},
    {nullptr, nullptr, 0, nullptr}};

}  // namespace

int add_stream_functions(PyObject* module) { return PyModule_AddFunctions(module, g_stream_methods); }

}  // namespace tpj_device
