// device.cpp: registers the eager "pjrt" device (PrivateUse1) with PyTorch and
// builds the torch_pjrt._eager module: client start-up, the hooks, storage
// views for the C eager runtime (include/tpj/eager.h), factories,
// metadata-only view kernels and copies. The boxed fallback is in
// device_dispatch.cpp, device kernels and autocast in device_kernels.cpp, the
// allocator in device_memory.cpp, the guard and streams in device_stream.cpp.
#include <Python.h>

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <ATen/detail/PrivateUse1HooksInterface.h>
#include <ATen/native/Resize.h>
#include <c10/core/impl/alloc_cpu.h>
#include <ATen/ops/as_strided_native.h>
#include <ATen/ops/view_native.h>
#include <ATen/ops/_reshape_alias_native.h>
#include <ATen/ops/unfold_native.h>
#include <ATen/ops/view_as_real_native.h>
#include <ATen/ops/view_as_complex_native.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <unordered_set>
#include <string>
#include <vector>

#include "device_internal.h"
#include "tpj/eager.h"

// torch_pjrt._C's status -> exception (python/csrc/module.c).
extern "C" PyObject* tpj_py_raise(tpj_status_t status);

namespace tpj_device {

thread_local c10::DeviceIndex g_current = 0;

// The client is created on first use: torch_pjrt.device._lazy_init() makes the
// default client and calls _eager.init(client).
void ensure_client() {
  if (tpj_eager_client()) return;
  PyGILState_STATE gs = PyGILState_Ensure();
  PyObject* mod = PyImport_ImportModule("torch_pjrt.device");
  PyObject* r = mod ? PyObject_CallMethod(mod, "_lazy_init", nullptr) : nullptr;
  std::string err;
  if (!r) {
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject* str = value ? PyObject_Str(value) : nullptr;
    const char* msg = str ? PyUnicode_AsUTF8(str) : nullptr;
    err = msg ? msg : "unknown error";
    Py_XDECREF(str);
    Py_XDECREF(type);
    Py_XDECREF(value);
    Py_XDECREF(tb);
    PyErr_Clear();
  }
  Py_XDECREF(r);
  Py_XDECREF(mod);
  PyGILState_Release(gs);
  TORCH_CHECK(err.empty(), "torch_pjrt: cannot start the pjrt device: ", err);
}

c10::DeviceIndex device_count() {
  ensure_client();
  return (c10::DeviceIndex)tpj_eager_device_count();
}

// ------------------------------------------- dtypes, storages, views in C --

// The one map from c10's dtypes to the C core's (the core knows no c10 numbers).
tpj_dtype_t to_tpj(at::ScalarType t) {
  switch (t) {
    case at::kByte: return TPJ_DTYPE_U8;
    case at::kChar: return TPJ_DTYPE_S8;
    case at::kShort: return TPJ_DTYPE_S16;
    case at::kInt: return TPJ_DTYPE_S32;
    case at::kLong: return TPJ_DTYPE_S64;
    case at::kHalf: return TPJ_DTYPE_F16;
    case at::kFloat: return TPJ_DTYPE_F32;
    case at::kDouble: return TPJ_DTYPE_F64;
    case at::kComplexFloat: return TPJ_DTYPE_C64;
    case at::kComplexDouble: return TPJ_DTYPE_C128;
    case at::kBool: return TPJ_DTYPE_PRED;
    case at::kBFloat16: return TPJ_DTYPE_BF16;
    case at::kUInt16: return TPJ_DTYPE_U16;
    case at::kUInt32: return TPJ_DTYPE_U32;
    case at::kUInt64: return TPJ_DTYPE_U64;
    default: return TPJ_DTYPE_INVALID;
  }
}

static tpj_eager_storage_t* storage_of(const at::Tensor& t) {
  return (tpj_eager_storage_t*)t.storage().data_ptr().get_context();
}

tpj_eager_tensor_t view_of(const at::Tensor& t) {
  tpj_eager_tensor_t v;
  memset(&v, 0, sizeof(v));
  TORCH_CHECK(t.dim() <= TPJ_MAX_RANK, "torch_pjrt: tensors of rank > ", TPJ_MAX_RANK,
              " are not supported (got ", t.dim(), ")");
  v.storage = storage_of(t);
  v.dtype = to_tpj(t.scalar_type());
  TORCH_CHECK(v.dtype != TPJ_DTYPE_INVALID, "torch_pjrt: unsupported dtype ", t.scalar_type());
  v.rank = (int32_t)t.dim();
  for (int64_t i = 0; i < t.dim(); ++i) {
    v.sizes[i] = t.size(i);
    v.strides[i] = t.stride(i);
  }
  v.offset = t.storage_offset();
  return v;
}

// A new contiguous pjrt tensor owning `buffer` (a flat result buffer).
at::Tensor wrap_buffer(tpj_buffer_t* buffer, at::IntArrayRef sizes, at::ScalarType dtype) {
  tpj_eager_storage_t* s = nullptr;
  check(tpj_eager_storage_wrap(buffer, &s));
  size_t nbytes = tpj_eager_storage_nbytes(s);
  c10::Device dev(kDev, (c10::DeviceIndex)tpj_eager_storage_device(s));
  c10::Storage storage(c10::Storage::use_byte_size_t(), nbytes,
                       at::DataPtr(s, s, &storage_deleter, dev), allocator(), true);
  auto t = at::detail::make_tensor<c10::TensorImpl>(std::move(storage),
                                                    c10::DispatchKeySet(c10::DispatchKey::PrivateUse1),
                                                    caffe2::TypeMeta::fromScalarType(dtype));
  t.unsafeGetTensorImpl()->set_sizes_contiguous(sizes);
  return t;
}

}  // namespace tpj_device

namespace {
using namespace tpj_device;

// ------------------------------------------------------- pinned host memory --

std::mutex g_pinned_mu;
std::unordered_set<const void*> g_pinned;

void pinned_delete(void* p) {
  {
    std::lock_guard<std::mutex> lock(g_pinned_mu);
    g_pinned.erase(p);
  }
  c10::free_cpu(p);
}

struct HostPinnedAllocator final : at::Allocator {
  at::DataPtr allocate(size_t nbytes) override {
    void* p = nbytes ? c10::alloc_cpu(nbytes) : nullptr;
    if (p) {
      std::lock_guard<std::mutex> lock(g_pinned_mu);
      g_pinned.insert(p);
    }
    return {p, p, &pinned_delete, at::Device(at::kCPU)};
  }
  at::DeleterFnPtr raw_deleter() const override { return &pinned_delete; }
  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }
};

bool host_pinned_contains(const void* p) {
  std::lock_guard<std::mutex> lock(g_pinned_mu);
  return g_pinned.count(p) > 0;
}

at::Allocator* host_pinned_allocator() {
  static HostPinnedAllocator a;
  return &a;
}

// ------------------------------------------------------------------ hooks --

// The device guard (current device, streams, events) is in device_stream.cpp.

struct PjrtHooks final : at::PrivateUse1HooksInterface {
  bool isBuilt() const override { return true; }
  bool isAvailable() const override { return device_count() > 0; }
  bool hasPrimaryContext(c10::DeviceIndex) const override { return true; }
  at::Device getDeviceFromPtr(void* data) const override {
    return c10::Device(kDev, (c10::DeviceIndex)tpj_eager_storage_device((tpj_eager_storage_t*)data));
  }
  c10::DeviceIndex deviceCount() const override { return device_count(); }
  c10::DeviceIndex getCurrentDevice() const override { return g_current; }
  void setCurrentDevice(c10::DeviceIndex d) const override { g_current = d; }
  c10::DeviceIndex exchangeDevice(c10::DeviceIndex d) const override {
    auto old = g_current;
    g_current = d;
    return old;
  }
  c10::DeviceIndex maybeExchangeDevice(c10::DeviceIndex d) const override { return exchangeDevice(d); }
  const at::Generator& getDefaultGenerator(c10::DeviceIndex index) const override {
    return default_generator(index);
  }
  at::Generator getNewGenerator(c10::DeviceIndex index) const override { return new_generator(index); }
  // Host staging memory (pin_memory(), non_blocking copies) is plain CPU memory,
  // from an allocator that remembers its blocks so is_pinned() is true for them
  // (DDP's reducer asserts it for its staging copies).
  bool isPinnedPtr(const void* p) const override { return host_pinned_contains(p); }
  at::Allocator* getPinnedMemoryAllocator() const override { return host_pinned_allocator(); }
  // storage.resize_(n) in place (FSDP2 frees and re-allocates its unsharded
  // parameters this way): a new device allocation holding the first
  // min(old, new) bytes, installed in the same StorageImpl.
  void resizePrivateUse1Bytes(const c10::Storage& storage, size_t newsize) const override {
    c10::StorageImpl* impl = storage.unsafeGetStorageImpl();
    TORCH_CHECK(impl->resizable(), "torch_pjrt: this storage is not resizable");
    size_t old = impl->nbytes();
    if (newsize == old) return;
    c10::DeviceGuard guard(storage.device());
    at::DataPtr fresh = allocator()->allocate(newsize);
    size_t keep = std::min(old, newsize);
    if (keep > 0) {
      auto opts = at::TensorOptions().dtype(at::kByte).device(storage.device());
      at::Tensor src = at::empty({0}, opts);
      src.set_(storage, 0, {(int64_t)keep}, {1});
      c10::Storage tmp(c10::Storage::use_byte_size_t(), newsize, std::move(fresh), allocator(), false);
      at::Tensor dst = at::empty({0}, opts);
      dst.set_(tmp, 0, {(int64_t)keep}, {1});
      dst.copy_(src);
      fresh = tmp.unsafeGetStorageImpl()->set_data_ptr(at::DataPtr(nullptr, storage.device()));
    }
    impl->set_data_ptr_noswap(std::move(fresh));
    impl->set_nbytes(newsize);
  }
};

// ------------------------------------------------- factories, views, copies --

c10::DeviceIndex index_of(std::optional<at::Device> d) {
  return d && d->has_index() ? d->index() : g_current;
}

at::Tensor empty_memory_format(at::IntArrayRef size, std::optional<at::ScalarType> dtype,
                               std::optional<at::Layout>, std::optional<at::Device> device,
                               std::optional<bool>, std::optional<at::MemoryFormat> mf) {
  c10::DeviceGuard guard(c10::Device(kDev, index_of(device)));
  return at::detail::empty_generic(size, allocator(), c10::DispatchKeySet(c10::DispatchKey::PrivateUse1),
                                   c10::dtype_or_default(dtype), mf);
}

at::Tensor empty_strided(at::IntArrayRef size, at::IntArrayRef stride,
                         std::optional<at::ScalarType> dtype, std::optional<at::Layout>,
                         std::optional<at::Device> device, std::optional<bool>) {
  c10::DeviceGuard guard(c10::Device(kDev, index_of(device)));
  return at::detail::empty_strided_generic(size, stride, allocator(),
                                           c10::DispatchKeySet(c10::DispatchKey::PrivateUse1),
                                           c10::dtype_or_default(dtype));
}

const at::Tensor& resize_(const at::Tensor& self, at::IntArrayRef size,
                          std::optional<at::MemoryFormat> mf) {
  int64_t numel = 1;
  for (auto s : size) numel *= s;
  size_t need = (size_t)(numel + self.storage_offset()) * self.element_size();
  if (need > self.storage().nbytes()) {
    // A fresh storage keeps the old elements in front (PyTorch semantics).
    c10::DeviceGuard guard(self.device());
    at::Tensor fresh = at::empty({numel + self.storage_offset()}, self.options());
    if (self.numel() > 0) {
      at::Tensor old_flat = at::empty({0}, self.options());
      int64_t old_n = (int64_t)(self.storage().nbytes() / self.element_size());
      old_flat.set_(self.storage(), 0, {old_n}, {1});
      fresh.narrow(0, 0, old_n).copy_(old_flat);
    }
    self.unsafeGetTensorImpl()->set_storage_keep_dtype(fresh.storage());
  }
  self.unsafeGetTensorImpl()->set_sizes_contiguous(size);
  if (mf && *mf != at::MemoryFormat::Preserve) {
    self.unsafeGetTensorImpl()->empty_tensor_restride(*mf);
  }
  return self;
}

at::Tensor& set_storage(at::Tensor& self, at::Storage source, c10::SymInt offset,
                        c10::SymIntArrayRef size, c10::SymIntArrayRef stride) {
  self.unsafeGetTensorImpl()->set_storage_keep_dtype(std::move(source));
  self.unsafeGetTensorImpl()->set_sizes_and_strides(size, stride, offset);
  return self;
}

at::Tensor& set_source_storage(at::Tensor& self, at::Storage source) {
  int64_t n = (int64_t)(source.nbytes() / self.element_size());
  std::vector<c10::SymInt> sz{c10::SymInt(n)}, st{c10::SymInt(1)};
  return set_storage(self, std::move(source), 0, sz, st);
}

at::Tensor& set_source_tensor(at::Tensor& self, const at::Tensor& src) {
  return set_storage(self, src.storage(), src.sym_storage_offset(), src.sym_sizes(),
                     src.sym_strides());
}

at::Tensor& set_empty(at::Tensor& self) {
  at::Tensor fresh = at::empty({0}, self.options());
  return set_source_tensor(self, fresh);
}

// dst = src; one of them (or both) lives on pjrt.
at::Tensor copy_from(const at::Tensor& self, const at::Tensor& dst, bool) {
  if (dst.numel() == 0) return dst;
  // The same view of the same storage (AOTAutograd's copy_ of a compiled
  // graph's write-back, installed in place): nothing to copy.
  if (self.device() == dst.device() && self.is_alias_of(dst) &&
      self.storage_offset() == dst.storage_offset() && self.sizes().equals(dst.sizes()) &&
      self.strides().equals(dst.strides()) && self.scalar_type() == dst.scalar_type()) {
    return dst;
  }
  if (self.device().type() == kDev && dst.device().type() == kDev) {
    at::Tensor src = self.expand_as(dst);
    tpj_eager_tensor_t s = view_of(src), d = view_of(dst);
    check(tpj_eager_copy(&s, &d));
  } else if (dst.device().type() == kDev) {
    at::Tensor src = self.to(dst.scalar_type()).expand_as(dst).contiguous();
    tpj_eager_tensor_t d = view_of(dst);
    check(tpj_eager_write_host(src.data_ptr(), (size_t)src.nbytes(), &d));
  } else {
    TORCH_CHECK(self.device().type() == kDev, "torch_pjrt: copy without a pjrt tensor");
    at::Tensor host = at::empty(self.sizes(), self.options().device(at::kCPU));
    tpj_eager_tensor_t s = view_of(self);
    check(tpj_eager_read_host(&s, host.data_ptr(), (size_t)host.nbytes()));
    dst.copy_(host);
  }
  return dst;
}

at::Tensor copy_from_and_resize(const at::Tensor& self, const at::Tensor& dst) {
  at::native::resize_output(dst, self.sizes());
  return copy_from(self, dst, false);
}

at::Scalar local_scalar_dense(const at::Tensor& self) {
  at::Tensor host = at::empty({}, self.options().device(at::kCPU));
  tpj_eager_tensor_t s = view_of(self);
  check(tpj_eager_read_host(&s, host.data_ptr(), (size_t)host.nbytes()));
  return host.item();
}

}  // namespace

TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) {
  m.impl("empty.memory_format", empty_memory_format);
  m.impl("empty_strided", empty_strided);
  m.impl("resize_", resize_);
  m.impl("set_.source_Storage_storage_offset", set_storage);
  m.impl("set_.source_Storage", set_source_storage);
  m.impl("set_.source_Tensor", set_source_tensor);
  m.impl("set_", set_empty);
  m.impl("_copy_from", copy_from);
  m.impl("_copy_from_and_resize", copy_from_and_resize);
  m.impl("_local_scalar_dense", local_scalar_dense);
  m.impl("as_strided", at::native::as_strided_tensorimpl);
  m.impl("view", at::native::view);
  m.impl("_reshape_alias", at::native::_reshape_alias);
  m.impl("unfold", at::native::unfold);
  m.impl("view_as_real", at::native::view_as_real);
  m.impl("view_as_complex", at::native::view_as_complex);
}


// ------------------------------------------------------------ Python module --

namespace {

PyObject* py_init(PyObject*, PyObject* client) {
  PyObject* handle = PyObject_GetAttrString(client, "handle");  // a torch_pjrt._C.Client
  if (!handle) return nullptr;
  auto* c = static_cast<tpj_client_t*>(PyLong_AsVoidPtr(handle));
  Py_DECREF(handle);
  if (!c) {
    if (!PyErr_Occurred()) {
      PyErr_SetString(PyExc_RuntimeError, "torch_pjrt._eager.init: the client is closed");
    }
    return nullptr;
  }
  tpj_status_t st = tpj_eager_init(c);
  if (st) {
    PyErr_SetString(PyExc_RuntimeError, tpj_status_message(st));
    tpj_status_free(st);
    return nullptr;
  }
  Py_RETURN_NONE;
}

PyObject* py_device_count(PyObject*, PyObject*) {
  try {
    ensure_client();
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    return nullptr;
  }
  return PyLong_FromSize_t(tpj_eager_device_count());
}

PyObject* py_synchronize(PyObject*, PyObject*) {
  tpj_status_t st;
  Py_BEGIN_ALLOW_THREADS
  st = tpj_eager_synchronize();
  Py_END_ALLOW_THREADS
  if (st) return tpj_py_raise(st);  // a failed index check: _C.IndexError, as in check()
  Py_RETURN_NONE;
}

PyObject* py_current_device(PyObject*, PyObject*) { return PyLong_FromLong(g_current); }

PyObject* py_set_device(PyObject*, PyObject* arg) {
  long d = PyLong_AsLong(arg);
  if (d == -1 && PyErr_Occurred()) return nullptr;
  if (d < 0 || d >= device_count()) {
    PyErr_Format(PyExc_RuntimeError, "torch_pjrt: invalid device index %ld (have %d devices)", d,
                 (int)device_count());
    return nullptr;
  }
  g_current = (c10::DeviceIndex)d;
  Py_RETURN_NONE;
}

PyObject* py_stats(PyObject*, PyObject*) {
  tpj_eager_stats_t s;
  tpj_eager_stats_get(&s);
  return Py_BuildValue("{s:K,s:K,s:K,s:K,s:K}", "ops", (unsigned long long)s.ops,
                       "signature_hits", (unsigned long long)s.signature_hits, "programs",
                       (unsigned long long)s.programs, "live_storages",
                       (unsigned long long)s.live_storages, "cross_device_copies",
                       (unsigned long long)s.cross_device_copies);
}

// scalar_type_name(number) -> "float32": a c10::ScalarType number (how
// TorchScript schema defaults spell a dtype) as the torch attribute name.
PyObject* py_scalar_type_name(PyObject*, PyObject* arg) {
  long code = PyLong_AsLong(arg);
  if (code == -1 && PyErr_Occurred()) return nullptr;
  if (code < 0 || code >= (long)c10::ScalarType::NumOptions) {
    return PyErr_Format(PyExc_TypeError, "unsupported ScalarType number %ld (expected 0 to %d)",
                        code, (int)c10::ScalarType::NumOptions - 1);
  }
  auto names = c10::getDtypeNames((c10::ScalarType)code);
  return PyUnicode_FromStringAndSize(names.first.data(), (Py_ssize_t)names.first.size());
}

PyMethodDef g_methods[] = {
    {"scalar_type_name", py_scalar_type_name, METH_O,
     "scalar_type_name(number) -> str: a c10::ScalarType number's torch dtype name"},
    {"init", py_init, METH_O, "init(client): runs the pjrt device on a torch_pjrt._C.Client"},
    {"device_count", py_device_count, METH_NOARGS, "addressable devices"},
    {"synchronize", py_synchronize, METH_NOARGS, "waits for every pending computation"},
    {"current_device", py_current_device, METH_NOARGS, "the current device index"},
    {"set_device", py_set_device, METH_O, "sets the current device index"},
    {"stats", py_stats, METH_NOARGS, "eager op counters"},
    {"default_generator", tpj_py_default_generator, METH_O,
     "default_generator(index): the device's default torch.Generator"},
    {"rng_words", tpj_py_rng_words, METH_O,
     "rng_words(index): state words of the next random op from the default generator"},
    {"functional_lowered", tpj_py_functional_lowered, METH_VARARGS,
     "functional_lowered(name, overload) -> bool: the fallback runs it as a lowered "
     "functional overload"},
    {"cache_lookup", tpj_py_cache_lookup, METH_O, "cache_lookup(t) -> Buffer | None"},
    {"cache_insert", tpj_py_cache_insert, METH_VARARGS,
     "cache_insert(t, buffer, version=-1, alias_ok=False)"},
    {"cache_evict", tpj_py_cache_evict, METH_O, "cache_evict(t)"},
    {"cache_clear", tpj_py_cache_clear, METH_NOARGS, "cache_clear()"},
    {"cache_len", tpj_py_cache_len, METH_NOARGS, "cache_len() -> live entries"},
    {"host_create", tpj_py_host_create, METH_VARARGS,
     "host_create(program, num_args, feeds, results, writebacks, leaves, flat, upload) -> "
     "the call spec of a graph compiled over CPU tensors (see device_host_call.cpp)"},
    {"host_run", tpj_py_host_run, METH_VARARGS,
     "host_run(spec, args: tuple) -> the graph's flat outputs, in one native call"},
    {"compiled_create", tpj_py_compiled_create, METH_VARARGS,
     "compiled_create(program, device, feeds, results, leaves, flat) -> the call spec of a "
     "graph compiled over pjrt tensors (see device_compiled.cpp)"},
    {"compiled_run", tpj_py_compiled_run, METH_VARARGS,
     "compiled_run(spec, args: tuple) -> the graph's flat outputs, in one native call"},
    {"local_collective", tpj_py_local_collective, METH_VARARGS,
     "local_collective(kind, reduce, tensors) -> one flat result per device: a collective "
     "over tensors[d] on pjrt:d as one program (see device_comm.cpp)"},
    {"spmd_run", (PyCFunction)(void (*)(void))tpj_py_spmd_run, METH_VARARGS | METH_KEYWORDS,
     "spmd_run(program, rows, results, wait=False, inputs=None) -> rows of result tensors: "
     "a _C.Program of storage inputs over P devices, rows[d][i] (on pjrt:d) its input i on "
     "device d, results [(shape, dtype)] per program result (each device's a flat buffer of "
     "that many elements), inputs [(shape, dtype)] per input to check (see device_spmd.cpp)"},
    {"dist_backend", tpj_py_dist_backend, METH_VARARGS,
     "dist_backend(host_backend, rank, size) -> the c10d backend for pjrt tensors, staging "
     "each collective through host memory on host_backend (see device_dist.cpp)"},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef g_module = {PyModuleDef_HEAD_INIT, "torch_pjrt._eager",
                        "The eager pjrt device (PrivateUse1) registration.", -1, g_methods,
                        nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__eager(void) {
  at::RegisterPrivateUse1HooksInterface(new PjrtHooks());
  // The Python device kernels (eager_decomp.register) are registered by
  // torch_pjrt.device once this module exists: they ask it which ops it runs.
  PyObject* m = PyModule_Create(&g_module);
  if (m && tpj_device::add_stream_functions(m) < 0) Py_CLEAR(m);
  if (m && tpj_device::add_compiled_constants(m) < 0) Py_CLEAR(m);
  if (m && tpj_device::add_host_call_constants(m) < 0) Py_CLEAR(m);
  return m;
}
