// device_comm.cpp: collectives across the local pjrt devices of one process
// (torch_pjrt.comm), run by the plugin as one compiled StableHLO program
// over those devices (tpj/collective.h). Each tensor's values go in as a flat
// 1-D buffer; torch_pjrt/comm.py moves the dims so that dim 0 is the one the
// collective works along.
#include <Python.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <vector>

#include "device_internal.h"
#include "tpj/collective.h"
#include "tpj/eager.h"

using tpj_device::check;
using tpj_device::kDev;

namespace {

// The tensors of a Python list: tensor d on pjrt:d, one dtype, one shape.
std::vector<at::Tensor> operands(PyObject* list) {
  TORCH_CHECK(PyList_Check(list), "torch_pjrt.comm: expected a list of tensors (got ",
              Py_TYPE(list)->tp_name, ")");
  Py_ssize_t n = PyList_GET_SIZE(list);
  TORCH_CHECK(n >= 1, "torch_pjrt.comm: no tensors given (expected one per device)");
  std::vector<at::Tensor> ts;
  for (Py_ssize_t d = 0; d < n; ++d) {
    PyObject* o = PyList_GET_ITEM(list, d);
    TORCH_CHECK(THPVariable_Check(o), "torch_pjrt.comm: item ", d, " is not a tensor (got ",
                Py_TYPE(o)->tp_name, ")");
    const at::Tensor& t = THPVariable_Unpack(o);
    TORCH_CHECK(t.device().type() == kDev && t.device().index() == d, "torch_pjrt.comm: tensor ",
                d, " must be on pjrt:", d, " (got ", t.device(), ")");
    TORCH_CHECK(ts.empty() || t.scalar_type() == ts[0].scalar_type(),
                "torch_pjrt.comm: tensor ", d, " is ", t.scalar_type(), " (expected ",
                ts[0].scalar_type(), " as tensor 0)");
    TORCH_CHECK(ts.empty() || t.sizes() == ts[0].sizes(), "torch_pjrt.comm: tensor ", d,
                " has shape ", t.sizes(), " (expected ", ts[0].sizes(), " as tensor 0)");
    ts.push_back(t);
  }
  return ts;
}

// A flat buffer of t's values (borrowed from its storage, or from `keep`, a
// contiguous copy that covers its whole storage).
tpj_buffer_t* flat_buffer(const at::Tensor& t, at::Tensor* keep) {
  *keep = t;
  tpj_eager_tensor_t v = tpj_device::view_of(t);
  bool whole = t.is_contiguous() && t.storage_offset() == 0 &&
               (size_t)t.nbytes() == tpj_eager_storage_nbytes(v.storage);
  if (!whole) {
    *keep = t.clone(at::MemoryFormat::Contiguous);
    v = tpj_device::view_of(*keep);
  }
  tpj_buffer_t* b = nullptr;
  check(tpj_eager_storage_buffer(v.storage, v.dtype, &b));
  if (!b) {  // kept as another dtype: read through a view into a new storage
    *keep = keep->clone(at::MemoryFormat::Contiguous);
    v = tpj_device::view_of(*keep);
    check(tpj_eager_storage_buffer(v.storage, v.dtype, &b));
  }
  TORCH_CHECK(b, "torch_pjrt.comm: no device buffer for a ", t.scalar_type(), " tensor");
  return b;
}

}  // namespace

// local_collective(kind, reduce, tensors) -> flat 1-D results, one per device
PyObject* tpj_py_local_collective(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  int kind = 0, reduce = 0;
  PyObject* list = nullptr;
  if (!PyArg_ParseTuple(args, "iiO:local_collective", &kind, &reduce, &list)) return nullptr;
  std::vector<at::Tensor> ts = operands(list);
  size_t n = ts.size();
  std::vector<at::Tensor> keep(n);
  std::vector<tpj_buffer_t*> in(n), out(n, nullptr);
  for (size_t d = 0; d < n; ++d) in[d] = flat_buffer(ts[d], &keep[d]);
  tpj_collective_op_t op = {};
  op.kind = (tpj_collective_kind_t)kind;
  op.reduce = (tpj_reduce_kind_t)reduce;
  tpj_client_t* client = tpj_eager_client();
  TORCH_CHECK(client, "torch_pjrt.comm: the pjrt device has not started");
  tpj_status_t st = nullptr;
  Py_BEGIN_ALLOW_THREADS
  st = tpj_collective_run(client, &op, in.data(), n, /*wait=*/false, out.data());
  Py_END_ALLOW_THREADS
  check(st);
  std::vector<at::Tensor> rs;
  try {
    for (size_t d = 0; d < n; ++d) {
      tpj_buffer_t* b = out[d];
      out[d] = nullptr;  // wrap_buffer owns it from here
      int64_t numel = 1;
      for (size_t i = 0; i < tpj_buffer_rank(b); ++i) numel *= tpj_buffer_dims(b)[i];
      rs.push_back(tpj_device::wrap_buffer(b, {numel}, ts[0].scalar_type()));
    }
  } catch (...) {
    for (tpj_buffer_t* b : out) tpj_buffer_destroy(b);
    throw;
  }
  PyObject* result = PyList_New((Py_ssize_t)n);
  for (size_t d = 0; result && d < n; ++d) {
    PyList_SET_ITEM(result, (Py_ssize_t)d, THPVariable_Wrap(rs[d]));
  }
  return result;
  END_HANDLE_TH_ERRORS
}
