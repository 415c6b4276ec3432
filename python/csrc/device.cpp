// device.cpp: registers the eager "pjrt" device (PrivateUse1) with PyTorch.
// PyTorch's registration API is C++, so this one file holds the glue: the
// allocator, device guard and hooks, metadata-only view kernels, copies, and a
// boxed fallback that turns every other op into a call of the C eager runtime
// (include/tpj/eager.h), or runs it on CPU when it has no lowering. The
// allocator and memory statistics are in device_memory.cpp.
#include <Python.h>

#include <ATen/ATen.h>
#include <ATen/EmptyTensor.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/PrivateUse1HooksInterface.h>
#include <ATen/native/CPUFallback.h>
#include <ATen/native/Resize.h>
#include <ATen/native/transformers/attention.h>
#include <ATen/SDPBackend.h>
#include <ATen/ops/as_strided_native.h>
#include <ATen/ops/view_native.h>
#include <ATen/ops/_reshape_alias_native.h>
#include <ATen/ops/unfold_native.h>
#include <ATen/ops/view_as_real_native.h>
#include <ATen/ops/view_as_complex_native.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/library.h>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <deque>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <set>
#include <string>
#include <vector>

#include "device_internal.h"
#include "tpj/eager.h"
#include "tpj/runtime.h"

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

}  // namespace tpj_device

namespace {
using namespace tpj_device;

// ------------------------------------------------------------------ dtypes --

tpj_dtype_t to_tpj(at::ScalarType t) { return tpj_eager_dtype_from_torch((int)t); }

// ------------------------------------------------------ allocator, storage --

tpj_eager_storage_t* storage_of(const at::Tensor& t) {
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

// --------------------------------------------------------- guard and hooks --

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
  // Host staging memory (pin_memory(), non_blocking copies) is plain CPU memory.
  bool isPinnedPtr(const void*) const override { return false; }
  at::Allocator* getPinnedMemoryAllocator() const override { return at::getCPUAllocator(); }
  void resizePrivateUse1Bytes(const c10::Storage& storage, size_t newsize) const override {
    TORCH_CHECK(false, "torch_pjrt: storage resize to ", newsize, " bytes is not supported");
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


// ------------------------------------------------------- the boxed fallback --
namespace {

std::mutex g_lock;
std::set<std::string> g_warned;

bool fallback_is_error() {
  PyGILState_STATE gs = PyGILState_Ensure();
  bool err = false;
  PyObject* mod = PyImport_ImportModule("torch_pjrt.config");
  PyObject* v = mod ? PyObject_GetAttrString(mod, "fallback") : nullptr;
  const char* s = v ? PyUnicode_AsUTF8(v) : nullptr;
  err = s && strcmp(s, "error") == 0;
  Py_XDECREF(v);
  Py_XDECREF(mod);
  PyErr_Clear();
  PyGILState_Release(gs);
  return err;
}

// A random op run on the CPU draws from a CPU generator seeded by the pjrt
// generator it was given (or the device's default), so a pjrt seed still
// fixes its numbers and CPU random calls elsewhere do not move them.
void seed_cpu_generator(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  const auto& args = op.schema().arguments();
  size_t base = stack->size() - args.size();
  c10::DeviceIndex device = g_current;
  for (size_t i = 0; i < args.size(); ++i) {
    const c10::IValue& v = (*stack)[base + i];
    if (v.isTensor() && v.toTensor().defined() && v.toTensor().device().type() == kDev) {
      device = v.toTensor().device().index();
      break;
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i].real_type()->kind() != c10::TypeKind::OptionalType &&
        args[i].real_type()->kind() != c10::TypeKind::GeneratorType) {
      continue;
    }
    c10::IValue& v = (*stack)[base + i];
    bool gen_arg = v.isGenerator() ||
                   (v.isNone() && args[i].real_type()->kind() == c10::TypeKind::OptionalType &&
                    static_cast<const c10::OptionalType*>(args[i].real_type().get())
                            ->getElementType()->kind() == c10::TypeKind::GeneratorType);
    if (!gen_arg) continue;
    std::optional<at::Generator> gen;
    if (v.isGenerator()) gen = v.toGenerator();
    uint64_t words[2];
    generator_words(gen, op.schema().name().c_str(), device, words);
    v = c10::IValue(at::detail::createCPUGenerator(words[0] ^ words[1]));
  }
}

void run_on_cpu(const c10::OperatorHandle& op, torch::jit::Stack* stack, const std::string& target,
                const std::string& why) {
  TORCH_CHECK(!fallback_is_error(), "torch_pjrt: ", target, " cannot run on the pjrt device (",
              why, ") and torch_pjrt.config.fallback is 'error'");
  {
    std::lock_guard<std::mutex> lk(g_lock);
    if (g_warned.insert(target).second) {
      TORCH_WARN("torch_pjrt: ", target, " runs on CPU (", why,
                 "); its tensors are copied to the host and back");
    }
  }
  tpj_runtime_metrics_add_fallback();
  seed_cpu_generator(op, stack);
  at::native::cpu_fallback(op, stack);
}

std::string target_of(const c10::FunctionSchema& s) {
  return s.name() + "." + (s.overload_name().empty() ? "default" : s.overload_name());
}

// target_of for the per-op path, built once per schema and thread (a schema
// lives as long as its registration; the name check catches a reused address).
const std::string& target_of_cached(const c10::FunctionSchema& s) {
  thread_local std::unordered_map<const c10::FunctionSchema*, std::pair<std::string, std::string>>
      cache;
  auto& entry = cache[&s];
  if (entry.first != s.name() || entry.second.empty()) {
    entry.first = s.name();
    entry.second = target_of(s);
  }
  return entry.second;
}

bool writes_arg(const c10::Argument& a) { return a.alias_info() && a.alias_info()->isWrite(); }

// The functional overload whose arguments match the mutating op's non-out
// arguments (add_.Tensor -> add.Tensor, sum.IntList_out -> sum.dim_IntList),
// possibly followed by tensor-options arguments (arange.start_out ->
// arange.start_step + dtype, layout, device, pin_memory).
struct Functional {
  std::string target;              // empty: none with a lowering
  std::vector<std::string> extra;  // trailing tensor-options argument names
  bool drop_generator = false;     // the op's Generator argument is not passed
};
std::unordered_map<std::string, Functional> g_functional;

bool is_options_arg(const std::string& n) {
  return n == "dtype" || n == "layout" || n == "device" || n == "pin_memory";
}

bool matches(const c10::FunctionSchema& fs, const std::vector<const c10::Argument*>& want,
             std::vector<std::string>* extra) {
  if (fs.arguments().size() < want.size() || fs.is_mutable()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    const c10::Argument& a = fs.arguments()[i];
    if (a.name() != want[i]->name() || a.real_type()->kind() != want[i]->real_type()->kind()) {
      return false;
    }
  }
  extra->clear();
  for (size_t i = want.size(); i < fs.arguments().size(); ++i) {
    if (!is_options_arg(fs.arguments()[i].name())) return false;
    extra->push_back(fs.arguments()[i].name());
  }
  for (const auto& r : fs.returns()) {
    if (r.alias_info()) return false;
  }
  return tpj_lower_is_supported(target_of(fs).c_str());
}

bool is_type(const c10::Argument& a, c10::TypeKind kind);

// The lowered non-mutating overload of `base` whose leading arguments are `want`.
Functional search_overloads(const std::string& base, const std::vector<const c10::Argument*>& want) {
  Functional found;
  for (const auto& name : c10::Dispatcher::singleton().getAllOpNames()) {
    if (name.name != base) continue;
    auto h = c10::Dispatcher::singleton().findSchema(name);
    std::vector<std::string> extra;
    if (h && h->hasSchema() && matches(h->schema(), want, &extra)) {
      found.target = target_of(h->schema());
      found.extra = extra;
      if (extra.empty()) break;  // prefer an exact match
    }
  }
  return found;
}

// The lowering a mutating op (or a `generator=` overload) runs as: the
// functional overload with the same leading arguments; failing that, for ops
// with a generator argument, the overload without it (rand.generator ->
// rand.default), the generator's state going in as the trailing seed.
Functional functional_of(const c10::FunctionSchema& s) {
  std::string key = target_of(s);
  std::lock_guard<std::mutex> lk(g_lock);
  auto it = g_functional.find(key);
  if (it != g_functional.end()) return it->second;
  std::string base = s.name();
  if (!base.empty() && base.back() == '_') base.pop_back();
  std::vector<const c10::Argument*> want, no_gen;
  bool has_gen = false;
  for (const auto& a : s.arguments()) {
    if (a.is_out()) continue;
    want.push_back(&a);
    bool gen = is_type(a, c10::TypeKind::GeneratorType);
    has_gen = has_gen || gen;
    if (!gen) no_gen.push_back(&a);
  }
  Functional found = s.is_mutable() ? search_overloads(base, want) : Functional{};
  if (found.target.empty() && has_gen) {
    found = search_overloads(base, no_gen);
    found.drop_generator = !found.target.empty();
    if (!s.is_mutable() && !found.extra.empty()) found = Functional{};
  }
  g_functional[key] = found;
  return found;
}

bool is_type(const c10::Argument& a, c10::TypeKind kind) {
  const c10::Type* t = a.real_type().get();  // no shared_ptr copies: this runs per argument
  if (t->kind() == c10::TypeKind::OptionalType) {
    t = static_cast<const c10::OptionalType*>(t)->getElementType().get();
  }
  return t->kind() == kind;
}

struct Encoded {
  std::vector<tpj_arg_t> args;
  std::vector<tpj_eager_tensor_t> inputs;
  std::vector<at::Tensor> keep;
  // Lists: element addresses stay put, and an empty one allocates nothing
  // (a std::deque allocates on construction, on every op).
  std::list<std::vector<int64_t>> ints;
  std::list<std::vector<double>> floats;
  std::list<std::vector<tpj_value_t>> lists;
  std::list<std::string> strs;
  c10::DeviceIndex device = -1;
};

void note_device(Encoded& e, const at::Tensor& t) {
  if (!t.defined()) return;
  if (t.device().type() == kDev) {
    if (e.device < 0) e.device = t.device().index();
    TORCH_CHECK(e.device == t.device().index(), "Expected all tensors to be on the same device, "
                "but found at least two devices, pjrt:", e.device, " and ", t.device(), "!");
  }
}

tpj_value_t add_tensor(Encoded& e, const at::Tensor& t) {
  if (!t.defined()) return TPJ_VALUE_NONE;
  if (t.device().type() != kDev) {
    TORCH_CHECK(t.device().is_cpu() && t.dim() == 0, "Expected all tensors to be on the same "
                "device, but found at least two devices, pjrt:", e.device, " and ", t.device(), "!");
    // A CPU scalar becomes a constant of the program: no transfer per op.
    at::Tensor c = t.contiguous();
    e.keep.push_back(c);
    tpj_eager_tensor_t v;
    memset(&v, 0, sizeof(v));
    v.dtype = to_tpj(c.scalar_type());
    TORCH_CHECK(v.dtype != TPJ_DTYPE_INVALID, "torch_pjrt: unsupported dtype ", c.scalar_type());
    v.host_scalar = c.data_ptr();
    e.inputs.push_back(v);
    return (tpj_value_t)(e.inputs.size() - 1);
  }
  e.inputs.push_back(view_of(t));
  return (tpj_value_t)(e.inputs.size() - 1);
}

tpj_arg_t encode_one(Encoded& e, const c10::Argument& a, const c10::IValue& v) {
  tpj_arg_t r;
  memset(&r, 0, sizeof(r));
  r.kind = TPJ_ARG_KIND_NONE;
  if (v.isNone()) return r;
  if (is_type(a, c10::TypeKind::ScalarTypeType)) {
    r.kind = TPJ_ARG_KIND_DTYPE;
    r.i = to_tpj((at::ScalarType)v.toInt());
  } else if (is_type(a, c10::TypeKind::LayoutType) || is_type(a, c10::TypeKind::MemoryFormatType) ||
             v.isDevice() || v.isGenerator()) {
    r.kind = TPJ_ARG_KIND_OTHER;
  } else if (v.isTensor()) {
    r.kind = TPJ_ARG_KIND_TENSOR;
    r.tensor = add_tensor(e, v.toTensor());
    if (r.tensor == TPJ_VALUE_NONE) r.kind = TPJ_ARG_KIND_NONE;
  } else if (v.isBool()) {
    r.kind = TPJ_ARG_KIND_BOOL;
    r.i = v.toBool();
  } else if (v.isInt() || v.isSymInt()) {
    r.kind = TPJ_ARG_KIND_INT;
    r.i = v.isInt() ? v.toInt() : v.toSymInt().expect_int();
  } else if (v.isDouble()) {
    r.kind = TPJ_ARG_KIND_FLOAT;
    r.f = v.toDouble();
  } else if (v.isString()) {
    e.strs.push_back(v.toStringRef());
    r.kind = TPJ_ARG_KIND_STRING;
    r.str = e.strs.back().c_str();
  } else if (v.isIntList() || v.isSymIntList() || v.isBoolList()) {
    std::vector<int64_t> xs;
    if (v.isBoolList()) {
      for (bool b : v.toBoolList()) xs.push_back(b);
    } else {
      for (const auto& x : v.toListRef()) xs.push_back(x.isInt() ? x.toInt() : x.toSymInt().expect_int());
    }
    e.ints.push_back(std::move(xs));
    r.kind = v.isBoolList() ? TPJ_ARG_KIND_BOOL_LIST : TPJ_ARG_KIND_INT_LIST;
    r.ints = e.ints.back().data();
    r.count = e.ints.back().size();
  } else if (v.isDoubleList()) {
    e.floats.push_back(v.toDoubleVector());
    r.kind = TPJ_ARG_KIND_FLOAT_LIST;
    r.floats = e.floats.back().data();
    r.count = e.floats.back().size();
  } else if (v.isList()) {
    std::vector<tpj_value_t> ids;
    for (const auto& x : v.toListRef()) {
      TORCH_CHECK(x.isTensor() || x.isNone(), "torch_pjrt: unsupported list argument ", a.name());
      ids.push_back(x.isNone() ? TPJ_VALUE_NONE : add_tensor(e, x.toTensor()));
    }
    e.lists.push_back(std::move(ids));
    r.kind = TPJ_ARG_KIND_TENSOR_LIST;
    r.tensors = e.lists.back().data();
    r.count = e.lists.back().size();
  } else {
    TORCH_CHECK(false, "torch_pjrt: unsupported argument ", a.name(), " of type ", v.tagKind());
  }
  return r;
}

c10::IValue to_meta(const c10::IValue& v) {
  auto meta = [](const at::Tensor& t) {
    if (!t.defined()) return t;
    return at::empty_strided(t.sizes(), t.strides(), t.options().device(at::kMeta));
  };
  if (v.isTensor()) return meta(v.toTensor());
  if (v.isDevice()) return c10::IValue(c10::Device(at::kMeta));
  if (v.isGenerator()) return c10::IValue();  // shapes do not depend on it; refs reject it
  if (v.isTensorList()) {
    c10::List<at::Tensor> out;
    for (const at::Tensor& t : v.toTensorList()) out.push_back(meta(t));
    return out;
  }
  if (v.isList() && !v.isIntList() && !v.isDoubleList() && !v.isBoolList() && !v.isSymIntList()) {
    c10::List<std::optional<at::Tensor>> out;
    for (const auto& x : v.toListRef()) {
      if (x.isNone()) out.push_back(std::nullopt);
      else out.push_back(meta(x.toTensor()));
    }
    return out;
  }
  return v;
}


struct OutMeta {
  bool defined = false;
  at::ScalarType dtype = at::kFloat;
  std::vector<int64_t> sizes;
};
std::unordered_map<std::string, std::vector<OutMeta>> g_meta_cache;

void key_bytes(std::string& k, const void* p, size_t n) { k.append((const char*)p, n); }

// The call's signature: op, encoded arguments and input metadata (out=
// tensors included), which determine the output types.
std::string meta_key(const std::string& target, const Encoded& e, const std::vector<c10::IValue>& in) {
  std::string k;
  k.reserve(512);  // one allocation for almost every call
  k = target;
  for (const auto& a : e.args) {
    key_bytes(k, &a.kind, sizeof(a.kind));
    key_bytes(k, &a.i, sizeof(a.i));
    key_bytes(k, &a.f, sizeof(a.f));
    key_bytes(k, &a.tensor, sizeof(a.tensor));
    if (a.ints) key_bytes(k, a.ints, a.count * sizeof(int64_t));
    if (a.floats) key_bytes(k, a.floats, a.count * sizeof(double));
    if (a.tensors) key_bytes(k, a.tensors, a.count * sizeof(tpj_value_t));
    if (a.str) k.append(a.str).push_back('\0');
  }
  for (const auto& v : e.inputs) {
    key_bytes(k, &v.dtype, sizeof(v.dtype));
    key_bytes(k, &v.rank, sizeof(v.rank));
    key_bytes(k, v.sizes, sizeof(int64_t) * (size_t)v.rank);
    key_bytes(k, v.strides, sizeof(int64_t) * (size_t)v.rank);
  }
  for (const auto& v : in) {
    if (!v.isTensor() || !v.toTensor().defined()) continue;
    const at::Tensor& t = v.toTensor();
    auto st = t.scalar_type();
    bool wrapped = t.unsafeGetTensorImpl()->is_wrapped_number();
    key_bytes(k, &st, sizeof(st));
    key_bytes(k, &wrapped, sizeof(wrapped));
    key_bytes(k, t.sizes().data(), t.dim() * sizeof(int64_t));
  }
  return k;
}

// Expected outputs: the op run on meta tensors of the same sizes, strides and
// dtypes, cached by signature. Returns false (with *why) when it cannot tell.
bool expected_outputs(const c10::OperatorHandle& op, const std::vector<c10::IValue>& in,
                      const std::string& key, std::vector<OutMeta>* outs, std::string* why) {
  {
    std::lock_guard<std::mutex> lk(g_lock);
    auto it = g_meta_cache.find(key);
    if (it != g_meta_cache.end()) {
      *outs = it->second;
      return true;
    }
  }
  std::vector<c10::IValue> meta;
  for (const auto& v : in) meta.push_back(to_meta(v));
  try {
    op.redispatchBoxed(c10::DispatchKeySet(c10::DispatchKey::Meta), &meta);
  } catch (const c10::Error&) {
    if (op.hasKernelForDispatchKey(c10::DispatchKey::Meta)) throw;
    *why = "no meta kernel";
    return false;
  }
  outs->clear();
  for (const auto& v : meta) {
    OutMeta m;
    if (v.isTensor() && v.toTensor().defined()) {
      m.defined = true;
      m.dtype = v.toTensor().scalar_type();
      m.sizes = v.toTensor().sizes().vec();
    } else if (!v.isNone() && !v.isTensor()) {
      *why = "list outputs";
      return false;
    }
    outs->push_back(std::move(m));
  }
  std::lock_guard<std::mutex> lk(g_lock);
  if (g_meta_cache.size() >= 8192) g_meta_cache.clear();  // keys hold scalar values
  g_meta_cache.emplace(key, *outs);
  return true;
}

tpj_type_t type_of(const OutMeta& m) {
  tpj_type_t r;
  memset(&r, 0, sizeof(r));
  if (!m.defined) return r;
  r.dtype = to_tpj(m.dtype);
  r.rank = (int32_t)m.sizes.size();
  TORCH_CHECK(r.rank <= TPJ_MAX_RANK, "torch_pjrt: rank ", r.rank, " is not supported");
  for (int32_t i = 0; i < r.rank; ++i) r.dims[i] = m.sizes[(size_t)i];
  return r;
}

// The op's generator argument (absent, None or a Generator).
std::optional<at::Generator> generator_arg(const std::vector<c10::IValue>& in) {
  for (const auto& v : in) {
    if (v.isGenerator()) return v.toGenerator();
  }
  return std::nullopt;
}

// The seed as the trailing extra tensor argument of a random op: the next
// state of the op's generator, or of the device's default one.
tpj_buffer_t* make_seed(Encoded& e, const std::string& target, const std::vector<c10::IValue>& in) {
  uint64_t words[2];
  generator_words(generator_arg(in), target.c_str(), (c10::DeviceIndex)e.device, words);
  tpj_buffer_t* seed = nullptr;
  check(tpj_eager_seed_create(words, (size_t)e.device, &seed));
  tpj_arg_t r;
  memset(&r, 0, sizeof(r));
  r.kind = TPJ_ARG_KIND_TENSOR;
  r.tensor = (tpj_value_t)e.inputs.size();
  e.args.push_back(r);
  return seed;
}

// In-place and out= ops: result k goes into written argument k.
tpj_status_t run_mutating(const tpj_eager_op_t& call, const std::vector<c10::IValue>& in,
                          const std::vector<size_t>& written, bool is_out,
                          const std::vector<OutMeta>& outs) {
  std::vector<tpj_eager_tensor_t> dsts;
  for (size_t k = 0; k < written.size(); ++k) {
    if (is_out && k < outs.size()) at::native::resize_output(in[written[k]].toTensor(), outs[k].sizes);
    dsts.push_back(view_of(in[written[k]].toTensor()));
  }
  return tpj_eager_op_run_writes(&call, dsts.data(), dsts.size());
}

void fallback(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack);

// self.normal_(mean, std) through the lowering table; false without it.
bool normal_into(const at::Tensor& self, double mean, double std,
                 const std::optional<at::Generator>& gen) {
  if (!tpj_lower_is_supported("aten::normal.float_float") ||
      !at::isFloatingType(self.scalar_type())) {
    return false;  // complex: no lowering
  }
  uint64_t words[2];
  generator_words(gen, "aten::normal_", self.device().index(), words);
  tpj_eager_tensor_t d = view_of(self);
  check(tpj_eager_normal_into(&d, mean, std, words));
  return true;
}

// Boolean / byte masks among the indices of index.Tensor -> one int64 index
// per mask dim; at::nonzero runs on the device (python/torch_pjrt/eager_decomp.py:
// a synchronizing count, then a static-shape program). False: no mask.
bool masks_to_long(const c10::IValue& v, c10::List<std::optional<at::Tensor>>* out) {
  bool any = false;
  for (const auto& o : v.toOptionalTensorList()) {
    std::optional<at::Tensor> t = o;
    if (t && t->defined() && (t->scalar_type() == at::kBool || t->scalar_type() == at::kByte)) {
      at::Tensor nz = at::nonzero(*t);
      for (int64_t d = 0; d < t->dim(); ++d) out->push_back(std::optional<at::Tensor>(nz.select(1, d)));
      any = true;
    } else {
      out->push_back(t);
    }
  }
  return any;
}

// Ops without a lowering that have a short exact decomposition into lowered
// ops on the device. Returns false when `target` is not one of them.
bool decomposed(const c10::OperatorHandle& op, const std::string& target, torch::jit::Stack* stack,
                size_t nargs) {
  std::string name = op.schema().name();
  bool inplace = !name.empty() && name.back() == '_';
  if (inplace) name.pop_back();
  std::vector<c10::IValue> in(stack->end() - (ptrdiff_t)nargs, stack->end());
  at::Tensor result;
  if ((target == "aten::native_batch_norm.default" ||
       target == "aten::_native_batch_norm_legit.default") &&
      in[5].toBool() && in[3].isTensor() && in[3].toTensor().defined() && in[4].isTensor() &&
      in[4].toTensor().defined()) {  // C++ callers pass absent stats as undefined tensors
    // Training with running stats: the update of running_mean / running_var
    // is a side effect the schema of native_batch_norm does not show.
    const at::Tensor& rm = in[3].toTensor();
    const at::Tensor& rv = in[4].toTensor();
    // Its composite kernel calls the mutating op again: go to the lowering
    // table directly through this fallback.
    static const auto functional = c10::Dispatcher::singleton().findSchemaOrThrow(
        "aten::_native_batch_norm_legit_functional", "");
    torch::jit::Stack fs(in.begin(), in.begin() + 8);
    fallback(functional, c10::DispatchKeySet(c10::DispatchKey::PrivateUse1), &fs);
    rm.copy_(fs[3].toTensor());
    rv.copy_(fs[4].toTensor());
    torch::jit::drop(*stack, nargs);
    for (size_t i = 0; i < 3; ++i) stack->push_back(fs[i]);
    return true;
  }
  c10::List<std::optional<at::Tensor>> long_idx;
  if (target == "aten::index.Tensor" && masks_to_long(in[1], &long_idx)) {
    result = at::index(in[0].toTensor(), long_idx);
  } else if ((name == "aten::index_put" || name == "aten::_index_put_impl") && nargs >= 4 &&
             in[2].isTensor() && in[2].toTensor().numel() != 1 && masks_to_long(in[1], &long_idx)) {
    // Values that vary along the masked elements (x[mask] = v, x[mask]'s backward).
    if (inplace) in[0].toTensor().index_put_(long_idx, in[2].toTensor(), in[3].toBool());
    else result = at::index_put(in[0].toTensor(), long_idx, in[2].toTensor(), in[3].toBool());
  } else if (name == "aten::zero" && inplace) {
    in[0].toTensor().fill_(0);
  } else if (target == "aten::normal_.default") {
    if (!normal_into(in[0].toTensor(), in[1].toDouble(), in[2].toDouble(), generator_arg(in))) {
      return false;
    }
  } else if ((name == "aten::addcmul" || name == "aten::addcdiv") && nargs >= 4 &&
             in[1].isTensor() && in[2].isTensor()) {
    const at::Tensor& t1 = in[1].toTensor();
    const at::Tensor& t2 = in[2].toTensor();
    at::Tensor prod = name == "aten::addcmul" ? at::mul(t1, t2) : at::div(t1, t2);
    result = at::add(in[0].toTensor(), prod, in[3].toScalar());
  } else {
    return false;
  }
  c10::IValue ret = in[0];
  if (result.defined()) {
    if (inplace) {
      in[0].toTensor().copy_(result);
    } else if (nargs > 4 && in[4].isTensor()) {  // out=
      at::native::resize_output(in[4].toTensor(), result.sizes());
      in[4].toTensor().copy_(result);
      ret = in[4];
    } else {
      ret = result;
    }
  }
  torch::jit::drop(*stack, nargs);
  stack->push_back(ret);
  return true;
}

void fallback(const c10::OperatorHandle& op, c10::DispatchKeySet, torch::jit::Stack* stack) {
  const auto& schema = op.schema();
  const std::string& target = target_of_cached(schema);
  size_t nargs = schema.arguments().size();
  std::vector<c10::IValue> in(stack->end() - (ptrdiff_t)nargs, stack->end());
  for (const auto& r : schema.returns()) {
    TORCH_CHECK(!r.alias_info() || r.alias_info()->isWrite(), "torch_pjrt: the view op ", target,
                " is not supported on the pjrt device");
  }
  if (decomposed(op, target, stack, nargs)) return;
  bool mutates = schema.is_mutable();
  Functional fn = mutates || !tpj_lower_is_supported(target.c_str()) ? functional_of(schema)
                                                                     : Functional{target, {}};
  const std::string& lowered = fn.target;
  if (lowered.empty() || !tpj_lower_is_supported(lowered.c_str())) {
    return run_on_cpu(op, stack, target, "no lowering");
  }
  Encoded e;
  for (const auto& v : in) {
    if (v.isTensor()) note_device(e, v.toTensor());
    if (v.isTensorList()) for (const at::Tensor& t : v.toTensorList()) note_device(e, t);
  }
  if (e.device < 0) e.device = g_current;
  std::vector<size_t> written;
  for (size_t i = 0; i < nargs; ++i) {
    if (writes_arg(schema.arguments()[i])) written.push_back(i);
  }
  bool is_out = !written.empty() && schema.arguments()[written[0]].is_out();
  std::vector<char> lift;
  for (size_t i = 0; i < nargs; ++i) {
    const c10::Argument& a = schema.arguments()[i];
    if ((is_out && a.is_out()) || (fn.drop_generator && is_type(a, c10::TypeKind::GeneratorType))) {
      continue;
    }
    e.args.push_back(encode_one(e, a, in[i]));
    // Scalar and float arguments are values, not sizes: runtime inputs.
    lift.push_back(is_type(a, c10::TypeKind::NumberType) || is_type(a, c10::TypeKind::FloatType));
  }
  for (const auto& name : fn.extra) {  // tensor options of the out tensor
    tpj_arg_t r;
    memset(&r, 0, sizeof(r));
    r.kind = name == "dtype" ? TPJ_ARG_KIND_DTYPE : name == "pin_memory" ? TPJ_ARG_KIND_NONE
                                                                         : TPJ_ARG_KIND_OTHER;
    r.i = name == "dtype" ? to_tpj(in[written[0]].toTensor().scalar_type()) : 0;
    e.args.push_back(r);
    lift.push_back(0);
  }
  std::vector<OutMeta> outs;
  std::string why;
  if (!expected_outputs(op, in, meta_key(target, e, in), &outs, &why)) {
    return run_on_cpu(op, stack, target, why);
  }
  // Random ops: a Generator argument, or seeded without one (native_dropout,
  // randperm, randint). The CPU flash attention op is tagged for its dropout,
  // which its lowering does not take.
  bool random = op.hasTag(at::Tag::nondeterministic_seeded) &&
                target.rfind("aten::_scaled_dot_product", 0) != 0;
  for (const auto& a : schema.arguments()) random = random || is_type(a, c10::TypeKind::GeneratorType);
  tpj_buffer_t* seed = random ? make_seed(e, target, in) : nullptr;
  lift.resize(e.args.size(), 0);
  std::unique_ptr<bool[]> liftable(new bool[lift.size() + 1]);
  for (size_t i = 0; i < lift.size(); ++i) liftable[i] = lift[i] != 0;
  std::vector<tpj_type_t> out_types;
  for (const auto& m : outs) out_types.push_back(type_of(m));
  tpj_eager_op_t call = {lowered.c_str(), e.args.data(), e.args.size(), e.inputs.data(),
                         e.inputs.size(), seed ? &seed : nullptr, seed ? 1u : 0u,
                         out_types.data(), out_types.size(), (size_t)e.device, liftable.get()};
  std::vector<c10::IValue> results;
  tpj_status_t st = nullptr;
  if (!mutates) {
    std::vector<tpj_buffer_t*> bufs(out_types.size(), nullptr);
    st = tpj_eager_op_run(&call, bufs.data());
    for (size_t i = 0; i < bufs.size() && !st; ++i) {
      if (!bufs[i]) results.emplace_back(at::Tensor());  // an undefined Tensor, not None
      else results.emplace_back(wrap_buffer(bufs[i], outs[i].sizes, outs[i].dtype));
    }
  } else {
    st = run_mutating(call, in, written, is_out, outs);
    for (size_t k = 0; k < schema.returns().size(); ++k) {
      results.push_back(k < written.size() ? in[written[k]] : c10::IValue());
    }
  }
  tpj_buffer_destroy(seed);
  if (st) {
    // Only "no lowering for this case" runs elsewhere; a device error
    // (out of memory, a failed execution) is raised.
    auto code = tpj_status_code(st);
    if (code != TPJ_STATUS_UNIMPLEMENTED && code != TPJ_STATUS_NOT_FOUND &&
        code != TPJ_STATUS_INVALID_ARGUMENT) {
      check(st);
    }
    why = tpj_status_message(st);
    tpj_status_free(st);
    return run_on_cpu(op, stack, target, why);
  }
  torch::jit::drop(*stack, nargs);
  for (auto& r : results) stack->push_back(std::move(r));
}

// `param.data = pjrt_tensor` (what Module.to() does, keeping tied weights tied)
// needs CPU and pjrt dense tensors to be shallow-copy compatible.
bool compatible_shallow_copy(const at::Tensor& self, const at::Tensor& from) {
  auto dense = [](const at::Tensor& t) {
    return t.layout() == at::kStrided && (t.device().type() == kDev || t.device().is_cpu());
  };
  return dense(self) && dense(from);
}

}  // namespace

TORCH_LIBRARY_IMPL(_, PrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&fallback>());
}

// torch.autocast("pjrt", dtype=...): PyTorch's own op lists and cast policies
// (matmuls and convolutions in the low precision, reductions and losses in
// f32), as it registers them for CUDA; every other op passes through.
#define TPJ_AUTOCAST_LOW(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, lower_precision_fp)
#define TPJ_AUTOCAST_FP32(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, fp32)
#define TPJ_AUTOCAST_FP32_OPT(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, fp32_set_opt_dtype)
#define TPJ_AUTOCAST_PROMOTE(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, promote)
namespace tpj_autocast {
using namespace at;  // the op lists name ATen types unqualified
TORCH_LIBRARY_IMPL(_, AutocastPrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFallthrough());
}
TORCH_LIBRARY_IMPL(aten, AutocastPrivateUse1, m) {
  AT_FORALL_LOWER_PRECISION_FP(TPJ_AUTOCAST_LOW)
  AT_FORALL_FP32(TPJ_AUTOCAST_FP32)
  AT_FORALL_FP32_SET_OPT_DTYPE(TPJ_AUTOCAST_FP32_OPT)
  AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE(KERNEL_DIFFERENT_REDISPATCH_SIGNATURE_PRIVATEUSEONE)
  AT_FORALL_PROMOTE(TPJ_AUTOCAST_PROMOTE)
}
}  // namespace tpj_autocast

// scaled_dot_product_attention takes the flash path (one lowered op, with a
// lowered backward) instead of the math composite (bmm, _safe_softmax: ~10 ops)
// where that kernel's contract holds: 4-d q/k/v of one floating dtype, no
// dropout, k/v heads equal to or (enable_gqa) dividing q's, no mask or one of q's dtype that needs no
// gradient (the flash op is not differentiable in its mask: T5's position bias).
namespace {
int64_t sdp_choice(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                   const std::optional<at::Tensor>& mask, double dropout_p, bool is_causal,
                   std::optional<double> scale, bool enable_gqa) {
  bool heads = q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.size(1) == v.size(1) &&
               (q.size(1) == k.size(1) ||
                (enable_gqa && k.size(1) > 0 && q.size(1) % k.size(1) == 0));
  bool ok = heads && dropout_p == 0.0 && at::isFloatingType(q.scalar_type()) &&
            k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type() &&
            (!mask.has_value() || !mask->defined() ||
             (mask->scalar_type() == q.scalar_type() && !mask->requires_grad()));
  return static_cast<int64_t>(ok ? at::SDPBackend::flash_attention : at::SDPBackend::math);
}
}  // namespace
namespace at::native {
REGISTER_PRIVATEUSE1_DISPATCH(_fused_sdp_choice_stub, &sdp_choice)
}  // namespace at::native

// Composite kernels that would end in *_overrideable: send them to the
// lowering table instead.
TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) {
  m.impl("convolution", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  m.impl("convolution_backward", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  // Its composite kernel runs a meta function that cannot take boolean masks.
  m.impl("index.Tensor", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  // Composite kernels that call helpers without a lowering; the ops themselves have one.
  m.impl("cummax", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  m.impl("cummin", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  m.impl("logcumsumexp", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  // Its composite kernel runs as several ops (batch norm over a reshape); the op has a lowering.
  m.impl("native_layer_norm", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  m.impl("_has_compatible_shallow_copy_type", compatible_shallow_copy);
}


// ------------------------------------------------------------ Python module --

namespace {

struct PyClientMirror {  // layout of torch_pjrt._C.Client (python/csrc/tpj_py.h)
  PyObject_HEAD
  tpj_client_t* client;
};

PyObject* py_init(PyObject*, PyObject* client) {
  tpj_client_t* c = ((PyClientMirror*)client)->client;
  if (!c) {
    PyErr_SetString(PyExc_RuntimeError, "torch_pjrt._eager.init: the client is closed");
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
  if (st) {  // a failed runtime index check (OUT_OF_RANGE) is an IndexError, as in check()
    bool index = tpj_status_code(st) == TPJ_STATUS_OUT_OF_RANGE;
    PyErr_SetString(index ? PyExc_IndexError : PyExc_RuntimeError, tpj_status_message(st));
    tpj_status_free(st);
    return nullptr;
  }
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

PyMethodDef g_methods[] = {
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
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef g_module = {PyModuleDef_HEAD_INIT, "torch_pjrt._eager",
                        "The eager pjrt device (PrivateUse1) registration.", -1, g_methods,
                        nullptr, nullptr, nullptr, nullptr};

}  // namespace

PyMODINIT_FUNC PyInit__eager(void) {
  at::RegisterPrivateUse1HooksInterface(new PjrtHooks());
  // Python device kernels: decompositions and data-dependent shapes.
  PyObject* decomp = PyImport_ImportModule("torch_pjrt.eager_decomp");
  PyObject* n = decomp ? PyObject_CallMethod(decomp, "register", nullptr) : nullptr;
  Py_XDECREF(decomp);
  if (!n) return nullptr;
  Py_DECREF(n);
  PyObject* m = PyModule_Create(&g_module);
  if (m && tpj_device::add_stream_functions(m) < 0) Py_CLEAR(m);
  return m;
}
