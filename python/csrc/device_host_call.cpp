// device_host_call.cpp: a graph compiled over CPU tensors runs in one native
// call. The call spec (made once per compiled signature by compiled.py) says
// where each program parameter comes from; host_run looks the arguments up in
// the buffer cache (device_buffer_cache.cpp; a miss calls the Python upload),
// allocates the CPU results, launches through tpj_program_run and waits,
// caches the result buffers (and write-backs into mutated inputs), and
// builds the graph's flat outputs.
#include <Python.h>

#include <ATen/ATen.h>
#include <torch/csrc/Dtype.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <cstring>
#include <memory>
#include <vector>

#include "device_internal.h"
#include "tpj/program.h"

extern "C" {
#include "tpj_py.h"
}

namespace {
using namespace tpj_device;

// Feed kinds (exported as _eager.HOST_FEED_*): parameter i is a cached
// argument, a donated argument (its cache entry is taken), the program's
// constant, or the pjrt device 0 generator's next state.
enum HostFeed { kArg = 0, kDonate = 1, kConst = 2, kSeed = 3 };

struct HostSpec {
  PyObject* program_obj = nullptr;  // the _C.Program (strong)
  PyObject* client = nullptr;       // its _C.Client (strong)
  PyObject* upload = nullptr;       // upload(t, cache: bool) -> Buffer (strong)
  tpj_program_t* program = nullptr;
  Py_ssize_t num_args = 0;
  std::vector<std::pair<int, Py_ssize_t>> feeds;   // (kind, argument position)
  std::vector<TensorSig> arg_sigs;                 // per feed (args and donations)
  std::vector<TensorSig> results;
  std::vector<std::pair<size_t, Py_ssize_t>> writebacks;  // (result, argument)
  OutputLeaves outputs;
  ~HostSpec() {
    Py_XDECREF(upload);
    Py_XDECREF(client);
    Py_XDECREF(program_obj);
  }
};

const char* kCapsule = "torch_pjrt.host_spec";

void spec_free(PyObject* capsule) {
  delete static_cast<HostSpec*>(PyCapsule_GetPointer(capsule, kCapsule));
}

// Calls f(item) for each item of a sequence.
template <typename F>
void each(PyObject* seq, const char* what, F&& f) {
  PyObject* fast = PySequence_Fast(seq, what);
  if (!fast) throw python_error();
  try {
    for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(fast); ++i) f(PySequence_Fast_GET_ITEM(fast, i));
  } catch (...) {
    Py_DECREF(fast);
    throw;
  }
  Py_DECREF(fast);
}

void parse_spec(HostSpec* s, PyObject* feeds, PyObject* results, PyObject* writebacks) {
  each(feeds, "host_create: feeds", [&](PyObject* o) {
    int kind = 0;
    Py_ssize_t pos = 0;
    PyObject *dtype = nullptr, *shape = nullptr;
    if (!PyArg_ParseTuple(o, "inOO", &kind, &pos, &dtype, &shape)) throw python_error();
    bool arg = kind == kArg || kind == kDonate;
    TORCH_CHECK(!arg || (pos >= 0 && pos < s->num_args), "host_create: feed reads argument ",
                pos, " of ", s->num_args);
    s->feeds.emplace_back(kind, pos);
    s->arg_sigs.push_back(arg ? parse_tensor_sig(dtype, shape) : TensorSig{at::kFloat, {}});
  });
  each(results, "host_create: results", [&](PyObject* o) {
    PyObject *dtype = nullptr, *shape = nullptr;
    if (!PyArg_ParseTuple(o, "OO", &dtype, &shape)) throw python_error();
    s->results.push_back(parse_tensor_sig(dtype, shape));
  });
  each(writebacks, "host_create: writebacks", [&](PyObject* o) {
    Py_ssize_t k = 0, pos = 0;
    if (!PyArg_ParseTuple(o, "nn", &k, &pos)) throw python_error();
    TORCH_CHECK(k >= 0 && (size_t)k < s->results.size() && pos >= 0 && pos < s->num_args,
                "host_create: bad write-back (", k, ", ", pos, ")");
    s->writebacks.emplace_back((size_t)k, pos);
  });
}

// Whether args is the program's signature (nothing has happened yet).
bool args_match(const HostSpec& s, PyObject* args) {
  if (PyTuple_GET_SIZE(args) != s.num_args) return false;
  for (size_t i = 0; i < s.feeds.size(); ++i) {
    if (s.feeds[i].first != kArg && s.feeds[i].first != kDonate) continue;
    PyObject* o = PyTuple_GET_ITEM(args, s.feeds[i].second);
    if (!THPVariable_Check(o)) return false;
    const at::Tensor& t = THPVariable_Unpack(o);
    if (!t.device().is_cpu() || !s.arg_sigs[i].matches(t)) return false;
  }
  return true;
}

// The device buffer of an argument: cached, or uploaded by Python (which
// materializes a saved-activation placeholder first). New reference.
PyObject* buffer_for(const HostSpec& s, PyObject* obj, bool donate) {
  const at::Tensor& t = THPVariable_Unpack(obj);
  PyObject* b = cache_lookup(t);
  if (b) {
    Py_INCREF(b);
    // A mutated input is overwritten right after this call: its buffer is
    // handed to the program (taken out of the cache) instead of kept.
    if (donate) cache_evict(t);
    return b;
  }
  b = PyObject_CallFunction(s.upload, "OO", obj, donate ? Py_False : Py_True);
  if (!b) throw python_error();
  if (!PyObject_TypeCheck(b, &tpj_py_buffer_type) || !((tpj_py_buffer_t*)b)->buffer) {
    Py_DECREF(b);
    TORCH_CHECK(false, "torch_pjrt: upload returned no live Buffer");
  }
  return b;
}

struct Refs {  // strong references released at scope exit
  std::vector<PyObject*> v;
  ~Refs() {
    for (PyObject* o : v) Py_XDECREF(o);
  }
};

// Caches the result buffers (any alias of a result matches) and the
// write-backs: AOTAutograd copies those results into the mutated inputs right
// after the call, bumping their version by one.
void cache_results(const HostSpec& s, PyObject* args, std::vector<at::Tensor>& outs,
                   std::vector<PyObject*>& bufs) {
  cache_sweep();  // the results of earlier calls that are gone
  for (size_t k = 0; k < outs.size(); ++k) cache_insert(outs[k], bufs[k], -1, true);
  for (const auto& [k, pos] : s.writebacks) {
    PyObject* o = PyTuple_GET_ITEM(args, pos);
    if (!THPVariable_Check(o)) continue;
    const at::Tensor& t = THPVariable_Unpack(o);
    if (t.scalar_type() == outs[k].scalar_type() && t.sizes() == outs[k].sizes() &&
        t.is_contiguous()) {
      cache_insert(t, bufs[k], (int64_t)t._version() + 1, false);
    }
  }
}

PyObject* run_spec(const HostSpec& s, PyObject* args) {
  if (!args_match(s, args)) return Py_NewRef(Py_NotImplemented);
  Refs held;
  std::vector<tpj_program_arg_t> vals(s.feeds.size());
  std::memset(vals.data(), 0, vals.size() * sizeof(tpj_program_arg_t));
  for (size_t i = 0; i < s.feeds.size(); ++i) {
    auto [kind, pos] = s.feeds[i];
    if (kind == kSeed) {
      generator_words(std::nullopt, "torch_pjrt: compiled random op", 0, vals[i].seed);
    } else if (kind != kConst) {
      PyObject* b = buffer_for(s, PyTuple_GET_ITEM(args, pos), kind == kDonate);
      held.v.push_back(b);
      vals[i].buffer = ((tpj_py_buffer_t*)b)->buffer;
    }
  }
  size_t nres = s.results.size();
  std::vector<at::Tensor> outs(nres);
  std::vector<tpj_program_result_t> res(nres);
  std::memset(res.data(), 0, nres * sizeof(tpj_program_result_t));
  for (size_t k = 0; k < nres; ++k) {
    outs[k] = at::empty(s.results[k].sizes, at::TensorOptions().dtype(s.results[k].dtype));
    res[k].host = outs[k].nbytes() ? outs[k].data_ptr() : nullptr;
    res[k].host_nbytes = (size_t)outs[k].nbytes();
    res[k].keep = true;
  }
  tpj_program_call_t call = {vals.data(), 1, 0, res.data(), true};
  tpj_status_t st;
  Py_BEGIN_ALLOW_THREADS
  st = tpj_program_run(s.program, &call);
  Py_END_ALLOW_THREADS
  if (st) return tpj_py_raise(st);  // the errors _C.Program.run raises
  std::vector<PyObject*> bufs(nres, nullptr);
  Refs owned;
  for (size_t k = 0; k < nres; ++k) {
    tpj_buffer_t* b = res[k].buffer;
    res[k].buffer = nullptr;
    bufs[k] = tpj_py_buffer_wrap(s.client, b, nullptr);  // destroys b on failure
    if (!bufs[k]) {
      for (size_t j = k + 1; j < nres; ++j) tpj_buffer_destroy(res[j].buffer);
      throw python_error();
    }
    owned.v.push_back(bufs[k]);
  }
  cache_results(s, args, outs, bufs);
  return s.outputs.build(args, outs);
}

}  // namespace

int tpj_device::add_host_call_constants(PyObject* m) {
  const std::pair<const char*, int> names[] = {{"HOST_FEED_ARG", kArg},
                                               {"HOST_FEED_DONATE", kDonate},
                                               {"HOST_FEED_CONST", kConst},
                                               {"HOST_FEED_RNG", kSeed}};
  for (const auto& [name, value] : names) {
    if (PyModule_AddIntConstant(m, name, value) < 0) return -1;
  }
  return 0;
}

// host_create(program, num_args, feeds, results, writebacks, leaves, flat,
// upload) -> spec. feeds [(kind, position, dtype | None, shape | None)],
// results [(dtype, shape)], writebacks [(result, position)], leaves
// [(LEAF_* kind, index or value)], flat 0 (tuple), 1 (list), 2 (a list the
// caller unflattens), upload(t, cache) -> Buffer for a cache miss.
PyObject* tpj_py_host_create(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  PyObject *program = nullptr, *feeds = nullptr, *results = nullptr, *wbs = nullptr,
           *leaves = nullptr, *upload = nullptr;
  Py_ssize_t num_args = 0;
  int flat = 0;
  if (!PyArg_ParseTuple(args, "OnOOOOiO:host_create", &program, &num_args, &feeds, &results,
                        &wbs, &leaves, &flat, &upload)) {
    return nullptr;
  }
  auto spec = std::make_unique<HostSpec>();
  spec->program = program_handle(program);
  spec->client = PyObject_GetAttrString(program, "client");
  if (!spec->client) return nullptr;
  spec->program_obj = Py_NewRef(program);
  spec->upload = Py_NewRef(upload);
  spec->num_args = num_args;
  parse_spec(spec.get(), feeds, results, wbs);
  spec->outputs.parse(leaves, flat, spec->results.size(), num_args);
  TORCH_CHECK(spec->feeds.size() == tpj_program_num_inputs(spec->program) &&
                  spec->results.size() == tpj_program_num_results(spec->program),
              "torch_pjrt: host_create: ", spec->feeds.size(), " feeds and ",
              spec->results.size(), " results for a program of ",
              tpj_program_num_inputs(spec->program), " and ",
              tpj_program_num_results(spec->program));
  PyObject* cap = PyCapsule_New(spec.get(), kCapsule, spec_free);
  if (cap) spec.release();
  return cap;
  END_HANDLE_TH_ERRORS
}

// host_run(spec, args: tuple) -> the graph's flat outputs, or NotImplemented
// when args is not the program's signature (nothing ran).
PyObject* tpj_py_host_run(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  PyObject *cap = nullptr, *call_args = nullptr;
  if (!PyArg_ParseTuple(args, "OO!:host_run", &cap, &PyTuple_Type, &call_args)) return nullptr;
  auto* s = static_cast<HostSpec*>(PyCapsule_GetPointer(cap, kCapsule));
  if (!s) return nullptr;
  return run_spec(*s, call_args);
  END_HANDLE_TH_ERRORS
}
