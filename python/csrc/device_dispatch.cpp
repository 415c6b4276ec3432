// device_dispatch.cpp: the boxed fallback every pjrt op without its own kernel
// goes through: it encodes the op's arguments for the C eager runtime
// (include/tpj/eager.h), infers the output types on meta tensors, finds the
// functional overload of a mutating op, and runs the op on CPU when it has no
// lowering. Kernels that decompose an op first are in device_kernels.cpp.
#include <Python.h>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/CPUFallback.h>
#include <ATen/native/Resize.h>
#include <torch/csrc/Exceptions.h>
#include <torch/library.h>

#include <cstring>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "device_internal.h"
#include "tpj/eager.h"
#include "tpj/lower.h"
#include "tpj/runtime.h"

namespace {
using namespace tpj_device;

std::mutex g_lock;

// The fallback policy (torch_pjrt/fallback_policy.py): raises when
// fallbacks are off, else warns once per op and counts the run.
void fallback_allowed(const std::string& target, const std::string& why) {
  PyGILState_STATE gs = PyGILState_Ensure();
  PyObject* mod = PyImport_ImportModule("torch_pjrt.fallback_policy");
  PyObject* r = mod ? PyObject_CallMethod(mod, "run_elsewhere", "ss", target.c_str(), why.c_str())
                    : nullptr;
  Py_XDECREF(mod);
  bool ok = r != nullptr;
  Py_XDECREF(r);
  if (!ok) {
    python_error e;  // the Python exception (UnsupportedOpError) propagates as it is
    e.persist();
    PyGILState_Release(gs);
    throw e;
  }
  PyGILState_Release(gs);
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
    if (!is_type(args[i], c10::TypeKind::GeneratorType)) continue;  // Generator or Generator?
    c10::IValue& v = (*stack)[base + i];
    std::optional<at::Generator> gen;
    if (v.isGenerator()) gen = v.toGenerator();
    uint64_t words[2];
    generator_words(gen, op.schema().name().c_str(), device, words);
    v = c10::IValue(at::detail::createCPUGenerator(words[0] ^ words[1]));
  }
}

void run_on_cpu(const c10::OperatorHandle& op, torch::jit::Stack* stack, const std::string& target,
                const std::string& why) {
  fallback_allowed(target, why);
  seed_cpu_generator(op, stack);
  at::native::cpu_fallback(op, stack);
}

bool writes_arg(const c10::Argument& a) { return a.alias_info() && a.alias_info()->isWrite(); }

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

}  // namespace

namespace tpj_device {

// The op's generator argument (absent, None or a Generator).
std::optional<at::Generator> generator_arg(const std::vector<c10::IValue>& in) {
  for (const auto& v : in) {
    if (v.isGenerator()) return v.toGenerator();
  }
  return std::nullopt;
}

}  // namespace tpj_device

namespace {

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

}  // namespace

namespace tpj_device {

namespace {

// One op's arguments for the C runtime: the encoded call, the written
// (in-place / out=) argument positions, and which arguments are liftable values.
struct Prepared {
  Encoded e;
  std::vector<size_t> written;
  bool is_out = false;
  std::vector<char> lift;
};

void prepare_call(const c10::FunctionSchema& schema, const std::vector<c10::IValue>& in,
                  const Functional& fn, Prepared* p) {
  size_t nargs = schema.arguments().size();
  for (const auto& v : in) {
    if (v.isTensor()) note_device(p->e, v.toTensor());
    if (v.isTensorList()) for (const at::Tensor& t : v.toTensorList()) note_device(p->e, t);
  }
  if (p->e.device < 0) p->e.device = g_current;
  for (size_t i = 0; i < nargs; ++i) {
    if (writes_arg(schema.arguments()[i])) p->written.push_back(i);
  }
  p->is_out = !p->written.empty() && schema.arguments()[p->written[0]].is_out();
  for (size_t i = 0; i < nargs; ++i) {
    const c10::Argument& a = schema.arguments()[i];
    if ((p->is_out && a.is_out()) ||
        (fn.drop_generator && is_type(a, c10::TypeKind::GeneratorType))) {
      continue;
    }
    p->e.args.push_back(encode_one(p->e, a, in[i]));
    // Scalar and float arguments are values, not sizes: runtime inputs.
    p->lift.push_back(is_type(a, c10::TypeKind::NumberType) ||
                      is_type(a, c10::TypeKind::FloatType));
  }
  for (const auto& name : fn.extra) {  // tensor options of the out tensor
    tpj_arg_t r;
    memset(&r, 0, sizeof(r));
    r.kind = name == "dtype" ? TPJ_ARG_KIND_DTYPE : name == "pin_memory" ? TPJ_ARG_KIND_NONE
                                                                         : TPJ_ARG_KIND_OTHER;
    r.i = name == "dtype" ? to_tpj(in[p->written[0]].toTensor().scalar_type()) : 0;
    p->e.args.push_back(r);
    p->lift.push_back(0);
  }
}

// Random ops: a Generator argument, or seeded without one (native_dropout,
// randperm, randint). The CPU flash attention op is tagged for its dropout,
// which its lowering does not take.
bool is_random(const c10::OperatorHandle& op, const std::string& target) {
  bool random = op.hasTag(at::Tag::nondeterministic_seeded) &&
                target.rfind("aten::_scaled_dot_product", 0) != 0;
  for (const auto& a : op.schema().arguments()) {
    random = random || is_type(a, c10::TypeKind::GeneratorType);
  }
  return random;
}

// Runs the prepared op; *results get the op's returns.
tpj_status_t run_prepared(const c10::OperatorHandle& op, const std::string& lowered,
                          const std::string& target, const std::vector<c10::IValue>& in,
                          Prepared& p, const std::vector<OutMeta>& outs,
                          std::vector<c10::IValue>* results) {
  tpj_buffer_t* seed = is_random(op, target) ? make_seed(p.e, target, in) : nullptr;
  p.lift.resize(p.e.args.size(), 0);
  std::unique_ptr<bool[]> liftable(new bool[p.lift.size() + 1]);
  for (size_t i = 0; i < p.lift.size(); ++i) liftable[i] = p.lift[i] != 0;
  std::vector<tpj_type_t> out_types;
  for (const auto& m : outs) out_types.push_back(type_of(m));
  tpj_eager_op_t call = {lowered.c_str(), p.e.args.data(), p.e.args.size(), p.e.inputs.data(),
                         p.e.inputs.size(), seed ? &seed : nullptr, seed ? 1u : 0u,
                         out_types.data(), out_types.size(), (size_t)p.e.device, liftable.get()};
  tpj_status_t st = nullptr;
  if (!op.schema().is_mutable()) {
    std::vector<tpj_buffer_t*> bufs(out_types.size(), nullptr);
    st = tpj_eager_op_run(&call, bufs.data());
    for (size_t i = 0; i < bufs.size() && !st; ++i) {
      if (!bufs[i]) results->emplace_back(at::Tensor());  // an undefined Tensor, not None
      else results->emplace_back(wrap_buffer(bufs[i], outs[i].sizes, outs[i].dtype));
    }
  } else {
    st = run_mutating(call, in, p.written, p.is_out, outs);
    for (size_t k = 0; k < op.schema().returns().size(); ++k) {
      results->push_back(k < p.written.size() ? in[p.written[k]] : c10::IValue());
    }
  }
  tpj_buffer_destroy(seed);
  return st;
}

}  // namespace

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
  Functional fn = schema.is_mutable() || !tpj_lower_is_supported(target.c_str())
                      ? functional_of(schema) : Functional{target, {}};
  if (fn.target.empty() || !tpj_lower_is_supported(fn.target.c_str())) {
    return run_on_cpu(op, stack, target, "no lowering");
  }
  Prepared p;
  prepare_call(schema, in, fn, &p);
  std::vector<OutMeta> outs;
  std::string why;
  if (!expected_outputs(op, in, meta_key(target, p.e, in), &outs, &why)) {
    return run_on_cpu(op, stack, target, why);
  }
  std::vector<c10::IValue> results;
  if (tpj_status_t st = run_prepared(op, fn.target, target, in, p, outs, &results)) {
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

}  // namespace tpj_device

TORCH_LIBRARY_IMPL(_, PrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFromBoxedFunction<&fallback>());
}
