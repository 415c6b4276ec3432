// device_compiled.cpp: a graph compiled over pjrt tensors runs in one native
// call. The call spec (made once per compiled signature by compiled_device.py)
// says where each program parameter comes from and where each result goes;
// compiled_run reads the at::Tensor arguments, launches through
// tpj_program_run (tpj/program.h) without waiting, and builds the graph's
// flat outputs, so no per-call Python runs between Dynamo's guards and the
// launch.
#include <Python.h>

#include <ATen/ATen.h>
#include <torch/csrc/Dtype.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <cstring>
#include <vector>

#include "device_internal.h"
#include "tpj/program.h"

namespace {
using namespace tpj_device;

// Feed kinds (exported as _eager.FEED_*): where parameter i of the program
// comes from: a CPU tensor argument, the program's constant, the device's
// generator, a pjrt tensor argument's storage.
enum FeedKind { kFeedHost = 0, kFeedConst = 1, kFeedSeed = 2, kFeedStorage = 3 };


struct Feed {
  int kind;
  Py_ssize_t pos;             // argument position (host, storage)
  TensorSig sig;              // host, storage: the argument's dtype and sizes
};

struct Result {
  bool on_device;             // a pjrt tensor (else a CPU tensor)
  TensorSig sig;
  Py_ssize_t writeback;       // argument whose storage receives it, or -1
};

struct Spec {
  PyObject* program_obj;      // the _C.Program (strong): keeps `program` alive
  tpj_program_t* program;
  c10::DeviceIndex device;
  Py_ssize_t num_args;        // the graph's placeholders
  std::vector<Feed> feeds;    // (num_inputs of the program)
  std::vector<Result> results;
  OutputLeaves outputs;
  ~Spec() { Py_XDECREF(program_obj); }
};

const char* kCapsule = "torch_pjrt.compiled_spec";

void spec_free(PyObject* capsule) {
  delete static_cast<Spec*>(PyCapsule_GetPointer(capsule, kCapsule));
}

// feeds [(kind, position, dtype | None, shape | None)]
void parse_feeds(Spec* s, PyObject* seq) {
  PyObject* fast = PySequence_Fast(seq, "compiled_create: feeds must be a list");
  if (!fast) throw python_error();
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); ++i) {
    int kind = 0;
    Py_ssize_t pos = 0;
    PyObject *dtype = nullptr, *shape = nullptr;
    if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "inOO", &kind, &pos, &dtype,
                          &shape)) {
      Py_DECREF(fast);
      throw python_error();
    }
    Feed f{kind, pos, {at::kFloat, {}}};
    if (kind == kFeedHost || kind == kFeedStorage) {
      if (!THPDtype_Check(dtype) || pos < 0 || pos >= s->num_args) {
        Py_DECREF(fast);
        PyErr_Format(PyExc_ValueError, "compiled_create: feed %zd needs a dtype and an argument "
                     "position below %zd (got %zd)", i, s->num_args, pos);
        throw python_error();
      }
      try {
        f.sig = parse_tensor_sig(dtype, shape);
      } catch (...) {
        Py_DECREF(fast);
        throw;
      }
    }
    s->feeds.push_back(std::move(f));
  }
  Py_DECREF(fast);
}

void parse_results(Spec* s, PyObject* seq) {
  PyObject* fast = PySequence_Fast(seq, "compiled_create: results must be a list");
  if (!fast) throw python_error();
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); ++i) {
    PyObject *shape = nullptr, *dtype = nullptr;
    int on_device = 0;
    Py_ssize_t wb = -1;
    if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "pOO!n", &on_device, &shape,
                          &THPDtypeType, &dtype, &wb)) {
      Py_DECREF(fast);
      throw python_error();
    }
    Result r{on_device != 0, {}, wb};
    try {
      r.sig = parse_tensor_sig(dtype, shape);
    } catch (...) {
      Py_DECREF(fast);
      throw;
    }
    s->results.push_back(std::move(r));
  }
  Py_DECREF(fast);
}

Spec* spec_of(PyObject* capsule) {
  auto* s = static_cast<Spec*>(PyCapsule_GetPointer(capsule, kCapsule));
  if (!s) throw python_error();
  return s;
}

// Whether args is the signature the program was compiled for (placeholder
// count, and each tensor parameter's dtype, sizes and device). Read before
// anything happens, so a mismatch can take the slow path instead.
bool args_match(const Spec& s, PyObject* args) {
  if (PyTuple_GET_SIZE(args) != s.num_args) return false;
  for (const Feed& f : s.feeds) {
    if (f.kind != kFeedHost && f.kind != kFeedStorage) continue;
    PyObject* o = PyTuple_GET_ITEM(args, f.pos);
    if (!THPVariable_Check(o)) return false;
    const at::Tensor& t = THPVariable_Unpack(o);
    if (!f.sig.matches(t)) return false;
    c10::Device d = t.device();
    bool ok = f.kind == kFeedHost ? d.is_cpu() : d.type() == kDev && d.index() == s.device;
    if (!ok) return false;
  }
  return true;
}

at::Tensor tensor_arg(PyObject* args, Py_ssize_t pos) {
  TORCH_CHECK(pos >= 0 && pos < PyTuple_GET_SIZE(args), "torch_pjrt: compiled call has ",
              PyTuple_GET_SIZE(args), " arguments, the program reads argument ", pos);
  PyObject* o = PyTuple_GET_ITEM(args, pos);
  TORCH_CHECK(THPVariable_Check(o), "torch_pjrt: compiled call argument ", pos,
              " must be a tensor (got ", Py_TYPE(o)->tp_name, ")");
  return THPVariable_Unpack(o);
}

// The program's parameter values; `keep` holds host tensors made contiguous.
void pack_inputs(const Spec& s, PyObject* args, std::vector<tpj_program_arg_t>* vals,
                 std::vector<at::Tensor>* keep, std::vector<tpj_eager_storage_t*>* whole) {
  for (size_t i = 0; i < s.feeds.size(); ++i) {
    const Feed& f = s.feeds[i];
    tpj_program_arg_t& a = (*vals)[i];
    if (f.kind == kFeedStorage) {
      at::Tensor t = tensor_arg(args, f.pos);
      TORCH_CHECK(t.device().type() == kDev && t.device().index() == s.device,
                  "torch_pjrt: compiled call argument ", f.pos, " is on ", t.device(),
                  ", the program runs on pjrt:", (int)s.device);
      a.view = view_of(t);
      if (tpj_eager_storage_nbytes(a.view.storage) == (size_t)t.nbytes() &&
          t.storage_offset() == 0 && t.is_contiguous()) {
        (*whole)[f.pos] = a.view.storage;  // a writeback may go into it
      }
    } else if (f.kind == kFeedHost) {
      at::Tensor t = tensor_arg(args, f.pos).resolve_conj().resolve_neg().contiguous();
      TORCH_CHECK(t.device().is_cpu(), "torch_pjrt: compiled call argument ", f.pos,
                  " is on ", t.device(), ", expected the CPU or pjrt:", (int)s.device);
      a.host = t.data_ptr();
      keep->push_back(std::move(t));
    } else if (f.kind == kFeedSeed) {
      generator_words(std::nullopt, "torch_pjrt: compiled random op", s.device, a.seed);
    }
  }
}

// Result destinations: writebacks into whole input storages, host results
// into new CPU tensors; every other result comes back as a buffer.
void plan_results(const Spec& s, PyObject* args, const std::vector<tpj_eager_storage_t*>& whole,
                  std::vector<tpj_program_result_t>* res, std::vector<at::Tensor>* outs) {
  std::vector<tpj_eager_storage_t*> taken;
  for (size_t k = 0; k < s.results.size(); ++k) {
    const Result& r = s.results[k];
    tpj_eager_storage_t* st = r.writeback >= 0 ? whole[r.writeback] : nullptr;
    bool dup = false;
    for (auto* t : taken) dup = dup || t == st;
    if (st && !dup && r.on_device) {
      // The result becomes the input's storage (every view of it sees the
      // write); AOTAutograd's copy_ of it into the input then is a no-op.
      taken.push_back(st);
      (*res)[k].storage = st;
      (*outs)[k] = tensor_arg(args, r.writeback).detach();
    } else if (!r.on_device) {
      (*outs)[k] = at::empty(r.sig.sizes, at::TensorOptions().dtype(r.sig.dtype));
      (*res)[k].host = (*outs)[k].data_ptr();
      (*res)[k].host_nbytes = (size_t)(*outs)[k].nbytes();
    }
  }
}

PyObject* run_spec(const Spec& s, PyObject* args) {
  if (!args_match(s, args)) return Py_NewRef(Py_NotImplemented);
  size_t nres = s.results.size();
  std::vector<tpj_program_arg_t> vals(s.feeds.size());
  std::memset(vals.data(), 0, vals.size() * sizeof(tpj_program_arg_t));
  std::vector<at::Tensor> keep, outs(nres);
  std::vector<tpj_eager_storage_t*> whole((size_t)PyTuple_GET_SIZE(args), nullptr);
  std::vector<tpj_program_result_t> res(nres);
  std::memset(res.data(), 0, nres * sizeof(tpj_program_result_t));
  pack_inputs(s, args, &vals, &keep, &whole);
  plan_results(s, args, whole, &res, &outs);
  // Not waiting: the launch is tracked in flight, as an eager op's, and a
  // failed check raises at the next synchronization.
  tpj_program_call_t call = {vals.data(), 1, (size_t)s.device, res.data(), false};
  tpj_status_t st;
  Py_BEGIN_ALLOW_THREADS
  st = tpj_program_run(s.program, &call);
  Py_END_ALLOW_THREADS
  check(st);
  for (size_t k = 0; k < nres; ++k) {
    const TensorSig& r = s.results[k].sig;
    if (res[k].buffer) outs[k] = wrap_buffer(res[k].buffer, r.sizes, r.dtype);
  }
  return s.outputs.build(args, outs);
}

}  // namespace

// ----------------------------------------------------- shared spec pieces --

bool tpj_device::TensorSig::matches(const at::Tensor& t) const {
  return t.scalar_type() == dtype && t.sizes() == c10::IntArrayRef(sizes);
}

tpj_device::TensorSig tpj_device::parse_tensor_sig(PyObject* dtype, PyObject* shape) {
  TORCH_CHECK_TYPE(THPDtype_Check(dtype), "compiled call spec: expected a torch.dtype, got ",
                   Py_TYPE(dtype)->tp_name);
  TensorSig s{((THPDtype*)dtype)->scalar_type, {}};
  PyObject* dims = PySequence_Fast(shape, "compiled call spec: a shape must be a sequence");
  if (!dims) throw python_error();
  for (Py_ssize_t k = 0; k < PySequence_Fast_GET_SIZE(dims); ++k) {
    s.sizes.push_back(PyLong_AsLongLong(PySequence_Fast_GET_ITEM(dims, k)));
  }
  Py_DECREF(dims);
  if (PyErr_Occurred()) throw python_error();
  return s;
}

tpj_program_t* tpj_device::program_handle(PyObject* program) {
  PyObject* handle = PyObject_GetAttrString(program, "handle");  // a _C.Program
  if (!handle) throw python_error();
  void* p = PyLong_AsVoidPtr(handle);
  Py_DECREF(handle);
  if (!p && PyErr_Occurred()) throw python_error();
  TORCH_CHECK_VALUE(p, "torch_pjrt: compiled call spec: the Program has no program");
  return static_cast<tpj_program_t*>(p);
}

// ------------------------------------------------------------ OutputLeaves --

tpj_device::OutputLeaves::~OutputLeaves() {
  for (auto& l : leaves_) Py_XDECREF(l.value);
}

void tpj_device::OutputLeaves::parse(PyObject* seq, int flat, size_t num_results,
                                     Py_ssize_t num_args) {
  TORCH_CHECK(flat >= 0 && flat <= 2, "torch_pjrt: output structure ", flat, " (expected 0-2)");
  flat_ = flat;
  PyObject* fast = PySequence_Fast(seq, "compiled call spec: leaves must be a list");
  if (!fast) throw python_error();
  for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); ++i) {
    int kind = 0;
    PyObject* v = nullptr;
    if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, i), "iO", &kind, &v)) {
      Py_DECREF(fast);
      throw python_error();
    }
    if (kind == kLeafValue) {
      leaves_.push_back(Leaf{kind, 0, Py_NewRef(v)});
      continue;
    }
    Py_ssize_t index = PyLong_AsSsize_t(v);
    Py_ssize_t bound = kind == kLeafResult ? (Py_ssize_t)num_results : num_args;
    bool known = kind == kLeafResult || kind == kLeafInput || kind == kLeafAlias;
    if (PyErr_Occurred() || !known || index < 0 || index >= bound) {
      Py_DECREF(fast);
      if (PyErr_Occurred()) throw python_error();
      TORCH_CHECK(false, "torch_pjrt: output leaf ", i, " (kind ", kind, ") reads index ",
                  index, " of ", bound);
    }
    leaves_.push_back(Leaf{kind, index, nullptr});
  }
  Py_DECREF(fast);
}

PyObject* tpj_device::OutputLeaves::build(PyObject* args,
                                          const std::vector<at::Tensor>& results) const {
  Py_ssize_t n = (Py_ssize_t)leaves_.size();
  PyObject* out = flat_ == 0 ? PyTuple_New(n) : PyList_New(n);
  if (!out) throw python_error();
  for (Py_ssize_t j = 0; j < n; ++j) {
    const Leaf& l = leaves_[j];
    PyObject* v = nullptr;
    if (l.kind == kLeafResult) v = THPVariable_Wrap(results.at(l.index));
    else if (l.kind == kLeafInput) v = Py_NewRef(PyTuple_GET_ITEM(args, l.index));
    else if (l.kind == kLeafAlias) v = THPVariable_Wrap(tensor_arg(args, l.index).detach());
    else v = Py_NewRef(l.value);
    if (!v) {
      Py_DECREF(out);
      throw python_error();
    }
    if (flat_ == 0) PyTuple_SET_ITEM(out, j, v);
    else PyList_SET_ITEM(out, j, v);
  }
  return out;
}

int tpj_device::add_compiled_constants(PyObject* m) {
  const std::pair<const char*, int> names[] = {
      {"FEED_HOST", kFeedHost},     {"FEED_CONST", kFeedConst},   {"FEED_RNG", kFeedSeed},
      {"FEED_DEV", kFeedStorage},   {"LEAF_RESULT", kLeafResult}, {"LEAF_INPUT", kLeafInput},
      {"LEAF_ALIAS", kLeafAlias},   {"LEAF_VALUE", kLeafValue}};
  for (const auto& [name, value] : names) {
    if (PyModule_AddIntConstant(m, name, value) < 0) return -1;
  }
  return 0;
}

// compiled_create(program, device, num_args, feeds, results, leaves, flat)
// -> spec. feeds [(kind, argument position, dtype | None, shape | None)],
// results [(on_device, shape, dtype, writeback position or -1)], leaves
// [(kind, index or value)], flat 0 (tuple), 1 (list) or 2 (a list the caller
// unflattens).
PyObject* tpj_py_compiled_create(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  PyObject *program = nullptr, *feeds = nullptr, *results = nullptr, *leaves = nullptr;
  int device = 0, flat = 0;
  Py_ssize_t num_args = 0;
  if (!PyArg_ParseTuple(args, "OinOOOi:compiled_create", &program, &device, &num_args, &feeds,
                        &results, &leaves, &flat)) {
    return nullptr;
  }
  auto spec = std::make_unique<Spec>();
  spec->program = program_handle(program);
  spec->program_obj = Py_NewRef(program);
  spec->device = (c10::DeviceIndex)device;
  spec->num_args = num_args;
  parse_feeds(spec.get(), feeds);
  TORCH_CHECK(spec->feeds.size() == tpj_program_num_inputs(spec->program),
              "torch_pjrt: compiled_create: ", spec->feeds.size(), " feeds for a program of ",
              tpj_program_num_inputs(spec->program), " inputs");
  parse_results(spec.get(), results);
  TORCH_CHECK(spec->results.size() == tpj_program_num_results(spec->program),
              "torch_pjrt: compiled_create: ", spec->results.size(),
              " results for a program of ", tpj_program_num_results(spec->program));
  spec->outputs.parse(leaves, flat, spec->results.size(), num_args);
  PyObject* cap = PyCapsule_New(spec.get(), kCapsule, spec_free);
  if (cap) spec.release();
  return cap;
  END_HANDLE_TH_ERRORS
}

// compiled_run(spec, args: tuple) -> the graph's flat outputs, or
// NotImplemented when args is not the program's signature (nothing ran).
PyObject* tpj_py_compiled_run(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  PyObject *cap = nullptr, *call_args = nullptr;
  if (!PyArg_ParseTuple(args, "OO!:compiled_run", &cap, &PyTuple_Type, &call_args)) {
    return nullptr;
  }
  return run_spec(*spec_of(cap), call_args);
  END_HANDLE_TH_ERRORS
}
