// device_spmd.cpp: one SPMD (or replicated) program over P local pjrt
// devices in one native call (torch_pjrt.spmd). Row d's pjrt tensors are
// device d's storage inputs; each device's flat results come back as pjrt
// tensors on that device, through tpj_program_run like every other launch.
// Inputs are checked before the launch (device, plan dtype, the same size in
// every row, and the optional shapes): the XLA CPU plugin does not check
// dtypes, and after a multi-device execute it refused (a wrong size) its next
// execute of that program hangs.
#include <Python.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <cstring>
#include <vector>

#include "device_internal.h"
#include "tpj/program.h"

using tpj_device::check;
using tpj_device::kDev;

namespace {

// A strong reference for the length of the call.
struct Ref {
  PyObject* o;
  ~Ref() { Py_XDECREF(o); }
};

// Every input of p is a storage; their plan dtypes (INVALID: any).
std::vector<tpj_dtype_t> input_dtypes(const tpj_program_t* p) {
  std::vector<tpj_dtype_t> dts;
  for (size_t i = 0; i < tpj_program_num_inputs(p); ++i) {
    const tpj_program_input_t* in = tpj_program_input(p, i);
    TORCH_CHECK_VALUE(in->kind == TPJ_PROGRAM_INPUT_STORAGE, "torch_pjrt.spmd: program input ",
                      i, " is not a storage input (got plan kind ", (int)in->kind, ")");
    dts.push_back(in->dtype);
  }
  return dts;
}

// Row d's input i, checked against its device, the plan's dtype, row 0's
// size (an input's shards are the same size on every device) and `sig`.
const at::Tensor& row_input(PyObject* row, size_t d, size_t i, tpj_dtype_t dtype,
                            const std::vector<at::Tensor>& keep,
                            const tpj_device::TensorSig* sig) {
  PyObject* o = PySequence_Fast_GET_ITEM(row, (Py_ssize_t)i);
  TORCH_CHECK_TYPE(THPVariable_Check(o), "torch_pjrt.spmd: row ", d, " input ", i,
                   " is not a tensor (got ", Py_TYPE(o)->tp_name, ")");
  const at::Tensor& t = THPVariable_Unpack(o);
  TORCH_CHECK(t.device().type() == kDev && (size_t)t.device().index() == d,
              "torch_pjrt.spmd: row ", d, " input ", i, " is on ", t.device(),
              " (expected pjrt:", d, ")");
  tpj_dtype_t dt = tpj_device::to_tpj(t.scalar_type());
  TORCH_CHECK(dtype == TPJ_DTYPE_INVALID || dt == dtype, "torch_pjrt.spmd: row ", d, " input ",
              i, " is ", tpj_dtype_name(dt), " (expected ", tpj_dtype_name(dtype),
              ", the program's)");
  TORCH_CHECK(!sig || sig->matches(t), "torch_pjrt.spmd: row ", d, " input ", i, " is ",
              t.scalar_type(), t.sizes(), " (expected ", sig ? sig->dtype : t.scalar_type(),
              sig ? c10::IntArrayRef(sig->sizes) : t.sizes(), ")");
  TORCH_CHECK(d == 0 || t.numel() == keep[i].numel(), "torch_pjrt.spmd: row ", d, " input ",
              i, " has ", t.numel(), " elements (expected ", keep[i].numel(), " as in row 0)");
  return t;
}

// rows[d][i] -> args[d * ni + i] (STORAGE views); keep[d * ni + i] holds
// the tensors. sigs: empty, or one per input.
void parse_rows(PyObject* rows, const tpj_program_t* p, size_t nd,
                const std::vector<tpj_device::TensorSig>& sigs,
                std::vector<tpj_program_arg_t>* args, std::vector<at::Tensor>* keep) {
  std::vector<tpj_dtype_t> dts = input_dtypes(p);
  size_t ni = dts.size();
  TORCH_CHECK_TYPE(PyList_Check(rows) || PyTuple_Check(rows), "torch_pjrt.spmd: rows must be "
                   "a list of lists of tensors (got ", Py_TYPE(rows)->tp_name, ")");
  Py_ssize_t n = PySequence_Fast_GET_SIZE(rows);
  TORCH_CHECK_VALUE((size_t)n == nd, "torch_pjrt.spmd: wrong number of rows (got ", n,
                    ", expected ", nd, ": one per device of the program)");
  for (size_t d = 0; d < nd; ++d) {
    PyObject* row = PySequence_Fast_GET_ITEM(rows, (Py_ssize_t)d);
    TORCH_CHECK_TYPE(PyList_Check(row) || PyTuple_Check(row), "torch_pjrt.spmd: row ", d,
                     " must be a list of tensors (got ", Py_TYPE(row)->tp_name, ")");
    Py_ssize_t m = PySequence_Fast_GET_SIZE(row);
    TORCH_CHECK_VALUE((size_t)m == ni, "torch_pjrt.spmd: row ", d, " has ", m,
                      " inputs (expected ", ni, ")");
    for (size_t i = 0; i < ni; ++i) {
      const at::Tensor& t = row_input(row, d, i, dts[i], *keep,
                                      sigs.empty() ? nullptr : &sigs[i]);
      (*args)[d * ni + i].view = tpj_device::view_of(t);
      keep->push_back(t);
    }
  }
}

// specs [(shape, dtype)]: n of them, one per program `what` (result, input).
std::vector<tpj_device::TensorSig> parse_specs(PyObject* specs, size_t n, const char* what) {
  TORCH_CHECK_TYPE(PyList_Check(specs) || PyTuple_Check(specs), "torch_pjrt.spmd: ", what,
                   "s must be a list of (shape, dtype) (got ", Py_TYPE(specs)->tp_name, ")");
  Py_ssize_t got = PySequence_Fast_GET_SIZE(specs);
  TORCH_CHECK_VALUE((size_t)got == n, "torch_pjrt.spmd: wrong number of ", what, " specs (got ",
                    got, ", expected ", n, ": one per program ", what, ")");
  std::vector<tpj_device::TensorSig> sigs;
  for (size_t k = 0; k < n; ++k) {
    PyObject* e = PySequence_Fast_GET_ITEM(specs, (Py_ssize_t)k);
    TORCH_CHECK_TYPE(PyTuple_Check(e) && PyTuple_GET_SIZE(e) == 2, "torch_pjrt.spmd: ", what,
                     " ", k, " must be (shape, dtype) (got ", Py_TYPE(e)->tp_name, ")");
    sigs.push_back(tpj_device::parse_tensor_sig(PyTuple_GET_ITEM(e, 1), PyTuple_GET_ITEM(e, 0)));
  }
  return sigs;
}

// Device d's result k as a pjrt tensor of sig (takes b, also on error).
at::Tensor wrap_result(tpj_buffer_t* b, const tpj_device::TensorSig& sig, size_t d, size_t k) {
  int64_t want = 1, numel = 1;
  for (int64_t s : sig.sizes) want *= s;
  for (size_t i = 0; i < tpj_buffer_rank(b); ++i) numel *= tpj_buffer_dims(b)[i];
  size_t rank = tpj_buffer_rank(b);
  tpj_dtype_t dt = tpj_buffer_dtype(b), want_dt = tpj_device::to_tpj(sig.dtype);
  if (rank != 1 || numel != want || dt != want_dt) {
    tpj_buffer_destroy(b);
    TORCH_CHECK(false, "torch_pjrt.spmd: device ", d, " result ", k, " does not fit its spec "
                "(got rank ", rank, ", ", numel, " ", tpj_dtype_name(dt), " elements, expected "
                "a flat buffer of ", want, " ", tpj_dtype_name(want_dt), ")");
  }
  return tpj_device::wrap_buffer(b, sig.sizes, sig.dtype);
}

// res (nd * nres) as nd rows of tensors; destroys the unwrapped on error.
std::vector<at::Tensor> wrap_results(std::vector<tpj_program_result_t>* res, size_t nres,
                                     const std::vector<tpj_device::TensorSig>& sigs) {
  std::vector<at::Tensor> out;
  try {
    for (size_t k = 0; k < res->size(); ++k) {
      tpj_buffer_t* b = (*res)[k].buffer;
      (*res)[k].buffer = nullptr;  // wrap_result owns it from here
      out.push_back(wrap_result(b, sigs[k % nres], k / nres, k % nres));
    }
  } catch (...) {
    for (auto& r : *res) tpj_buffer_destroy(r.buffer);
    throw;
  }
  return out;
}

PyObject* rows_list(const std::vector<at::Tensor>& ts, size_t nd, size_t nres) {
  PyObject* out = PyList_New((Py_ssize_t)nd);
  for (size_t d = 0; out && d < nd; ++d) {
    PyObject* row = PyList_New((Py_ssize_t)nres);
    for (size_t k = 0; row && k < nres; ++k) {
      PyObject* t = THPVariable_Wrap(ts[d * nres + k]);
      if (!t) Py_CLEAR(row);
      else PyList_SET_ITEM(row, (Py_ssize_t)k, t);
    }
    if (!row) Py_CLEAR(out);
    else PyList_SET_ITEM(out, (Py_ssize_t)d, row);
  }
  if (!out) throw python_error();
  return out;
}

}  // namespace

// spmd_run(program, rows, results, wait=False, inputs=None)
//   -> [[tensor] per result] per device
PyObject* tpj_py_spmd_run(PyObject*, PyObject* args, PyObject* kwargs) {
  HANDLE_TH_ERRORS
  static const char* kwlist[] = {"program", "rows", "results", "wait", "inputs", nullptr};
  PyObject *program = nullptr, *rows = nullptr, *results = nullptr, *inputs = Py_None;
  int wait = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO|pO:spmd_run", const_cast<char**>(kwlist),
                                   &program, &rows, &results, &wait, &inputs)) {
    return nullptr;
  }
  Ref hold{Py_NewRef(program)};
  tpj_program_t* p = tpj_device::program_handle(program);
  size_t nd = tpj_executable_num_devices(tpj_cached_executable_get(tpj_program_executable(p)));
  size_t ni = tpj_program_num_inputs(p), nres = tpj_program_num_results(p);
  std::vector<tpj_device::TensorSig> in_sigs;
  if (inputs != Py_None) in_sigs = parse_specs(inputs, ni, "input");
  std::vector<tpj_device::TensorSig> sigs = parse_specs(results, nres, "result");
  std::vector<tpj_program_arg_t> vals(nd * ni + 1);
  std::memset(vals.data(), 0, vals.size() * sizeof(tpj_program_arg_t));
  std::vector<at::Tensor> keep;
  parse_rows(rows, p, nd, in_sigs, &vals, &keep);
  std::vector<tpj_program_result_t> res(nd * nres);
  if (!res.empty()) std::memset(res.data(), 0, res.size() * sizeof(tpj_program_result_t));
  tpj_program_call_t call = {vals.data(), nd, 0, res.data(), wait != 0};
  tpj_status_t st;
  Py_BEGIN_ALLOW_THREADS
  st = tpj_program_run(p, &call);
  Py_END_ALLOW_THREADS
  check(st);  // on error no result buffers are left
  return rows_list(wrap_results(&res, nres, sigs), nd, nres);
  END_HANDLE_TH_ERRORS
}
