/* graph.c: torch_pjrt._C.Graph, a tpj_graph_t being built from Python: params,
 * one lowering call per ATen op (the encoded arguments are decoded into a
 * tpj_arg_t array whose memory lives in an arena for the call), results, the
 * manual-sharding custom calls and attribute text (SPMD), and StableHLO
 * emission. */
#include "tpj_py.h"

#include <string.h>

#include "tpj/emit.h"
#include "tpj/lower.h"

typedef struct {
  PyObject_HEAD
  tpj_graph_t* graph; /* owned */
} tpj_py_graph_t;

static int graph_init(tpj_py_graph_t* self, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {"checks", "partitioned", NULL};
  int checks = 1, partitioned = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|pp:Graph", kwlist, &checks, &partitioned)) {
    return -1;
  }
  if (self->graph) {
    tpj_graph_destroy(self->graph);
    self->graph = NULL;
  }
  tpj_status_t s = tpj_graph_create(&self->graph);
  if (!s) {
    tpj_graph_set_checks_enabled(self->graph, checks != 0);
    tpj_graph_set_partitioned(self->graph, partitioned != 0);
  }
  return s ? tpj_py_raise_int(s) : 0;
}

static void graph_dealloc(tpj_py_graph_t* self) {
  tpj_graph_destroy(self->graph);
  Py_TYPE(self)->tp_free((PyObject*)self);
}

static int check_graph(tpj_py_graph_t* self) {
  if (self->graph) return 0;
  return tpj_py_raise_int(TPJ_STATUS(FAILED_PRECONDITION, "Graph: not initialized"));
}

/* (dtype, shape) -> tpj_type_t; `what` names the caller in errors. */
static int parse_type(PyObject* dtype_obj, PyObject* shape, tpj_type_t* out,
                      const char* what) {
  long dtype = PyLong_AsLong(dtype_obj);
  if (dtype == -1 && PyErr_Occurred()) return -1;
  if (dtype <= 0 || dtype >= TPJ_DTYPE_COUNT_ || tpj_dtype_size((tpj_dtype_t)dtype) == 0) {
    return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "%s: bad dtype (got %ld)", what,
                                       dtype));
  }
  int64_t dims[TPJ_MAX_RANK];
  size_t rank = 0;
  if (tpj_py_parse_dims(shape, dims, &rank, what) < 0) return -1;
  tpj_status_t s = tpj_type_init((tpj_dtype_t)dtype, dims, rank, out);
  return s ? tpj_py_raise_int(s) : 0;
}

static PyObject* graph_param(tpj_py_graph_t* self, PyObject* args) {
  PyObject *dtype = NULL, *shape = NULL;
  if (!PyArg_ParseTuple(args, "OO:param", &dtype, &shape)) return NULL;
  if (check_graph(self) < 0) return NULL;
  tpj_type_t type;
  if (parse_type(dtype, shape, &type, "Graph.param") < 0) return NULL;
  tpj_value_t v = TPJ_VALUE_NONE;
  tpj_status_t s = tpj_graph_add_param(self->graph, &type, &v);
  if (s) return tpj_py_raise(s);
  return PyLong_FromLong(v);
}

/* Implemented in graph_args.c: decodes the encoded `.lower` arguments. */
int tpj_py_decode_args(PyObject* list, const char* target, tpj_arena_t* arena,
                       tpj_arg_t** out_args, size_t* out_count);

/* Parses out_types: list of (dtype, shape) or None (dtype INVALID). */
static int parse_out_types(PyObject* list, tpj_arena_t* arena, tpj_type_t** out_types,
                           size_t* out_count) {
  PyObject* fast = PySequence_Fast(list, "Graph.lower: out_types must be a list");
  if (!fast) return -1;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  tpj_type_t* types = tpj_arena_alloc(arena, sizeof(tpj_type_t) * (n + 1));
  if (!types) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i);
    if (item == Py_None) {
      memset(&types[i], 0, sizeof(types[i]));
      types[i].dtype = TPJ_DTYPE_INVALID;
      continue;
    }
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2) {
      Py_DECREF(fast);
      return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                         "Graph.lower: out_types[%zu] must be (dtype, shape) "
                                         "or None", i));
    }
    if (parse_type(PyTuple_GET_ITEM(item, 0), PyTuple_GET_ITEM(item, 1), &types[i],
                   "Graph.lower out_types") < 0) {
      Py_DECREF(fast);
      return -1;
    }
  }
  Py_DECREF(fast);
  *out_types = types;
  *out_count = n;
  return 0;
}

static PyObject* values_list(const tpj_value_t* values, const tpj_type_t* types, size_t n) {
  PyObject* list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; ++i) {
    PyObject* v;
    if (values[i] == TPJ_VALUE_NONE || types[i].dtype == TPJ_DTYPE_INVALID) {
      v = Py_None;
      Py_INCREF(v);
    } else {
      v = PyLong_FromLong(values[i]);
    }
    if (!v) Py_CLEAR(list);
    else PyList_SET_ITEM(list, (Py_ssize_t)i, v);
  }
  return list;
}

static PyObject* graph_lower(tpj_py_graph_t* self, PyObject* args) {
  const char* target = NULL;
  PyObject *arg_list = NULL, *out_list = NULL;
  if (!PyArg_ParseTuple(args, "sOO:lower", &target, &arg_list, &out_list)) return NULL;
  if (check_graph(self) < 0) return NULL;
  tpj_arena_t arena;
  tpj_arena_init(&arena, 4096);
  tpj_lower_call_t call = {.target = target};
  tpj_arg_t* call_args = NULL;
  tpj_type_t* outs = NULL;
  PyObject* result = NULL;
  if (tpj_py_decode_args(arg_list, target, &arena, &call_args, &call.num_args) == 0 &&
      parse_out_types(out_list, &arena, &outs, &call.num_outs) == 0) {
    call.args = call_args;
    call.out_types = outs;
    tpj_value_t* values = tpj_arena_alloc(&arena, sizeof(tpj_value_t) * (call.num_outs + 1));
    if (!values) {
      PyErr_NoMemory();
    } else {
      for (size_t i = 0; i < call.num_outs; ++i) values[i] = TPJ_VALUE_NONE;
      tpj_status_t s = tpj_lower_call(self->graph, &call, values);
      result = s ? tpj_py_raise(s) : values_list(values, outs, call.num_outs);
    }
  }
  tpj_arena_deinit(&arena);
  return result;
}

static PyObject* graph_set_results(tpj_py_graph_t* self, PyObject* args) {
  PyObject* list = NULL;
  if (!PyArg_ParseTuple(args, "O:set_results", &list)) return NULL;
  if (check_graph(self) < 0) return NULL;
  PyObject* fast = PySequence_Fast(list, "Graph.set_results: ids must be a list of ints");
  if (!fast) return NULL;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  tpj_value_t* ids = PyMem_Calloc(n + 1, sizeof(tpj_value_t));
  if (!ids) {
    Py_DECREF(fast);
    return PyErr_NoMemory();
  }
  for (size_t i = 0; i < n; ++i) {
    long v = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i));
    if (v == -1 && PyErr_Occurred()) {
      PyMem_Free(ids);
      Py_DECREF(fast);
      return NULL;
    }
    ids[i] = (tpj_value_t)v;
  }
  Py_DECREF(fast);
  tpj_status_t s = tpj_graph_set_results(self->graph, ids, n);
  PyMem_Free(ids);
  if (s) return tpj_py_raise(s);
  Py_RETURN_NONE;
}

static PyObject* graph_to_stablehlo(tpj_py_graph_t* self, PyObject* unused) {
  if (check_graph(self) < 0) return NULL;
  char* text = NULL;
  size_t len = 0;
  tpj_status_t s = tpj_emit_stablehlo(self->graph, &text, &len);
  if (s) return tpj_py_raise(s);
  PyObject* result = PyUnicode_FromStringAndSize(text, (Py_ssize_t)len);
  free(text);
  return result;
}

static PyObject* graph_value_type(tpj_py_graph_t* self, PyObject* arg) {
  if (check_graph(self) < 0) return NULL;
  long id = PyLong_AsLong(arg);
  if (id == -1 && PyErr_Occurred()) return NULL;
  const tpj_type_t* t = tpj_graph_value_type(self->graph, (tpj_value_t)id);
  if (!t) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                                   "Graph.value_type: unknown value id (got %ld)", id));
  }
  PyObject* dims = tpj_py_dims_tuple(t->dims, (size_t)t->rank);
  if (!dims) return NULL;
  PyObject* result = Py_BuildValue("(iN)", (int)t->dtype, dims);
  return result;
}

/* ------------------------------------------------ sharding and attributes -- */

/* A type of value v's dtype and `shape` (v unknown: f32, for the builder to
 * refuse v by name). */
static int operand_shape_type(tpj_py_graph_t* self, int v, PyObject* shape, tpj_type_t* out,
                              const char* what) {
  const tpj_type_t* t = tpj_graph_value_type(self->graph, (tpj_value_t)v);
  int64_t dims[TPJ_MAX_RANK];
  size_t rank = 0;
  if (tpj_py_parse_dims(shape, dims, &rank, what) < 0) return -1;
  tpj_status_t s = tpj_type_init(t ? t->dtype : TPJ_DTYPE_F32, dims, rank, out);
  return s ? tpj_py_raise_int(s) : 0;
}

static PyObject* graph_sharding(tpj_py_graph_t* self, PyObject* args) {
  int x = 0;
  const char* text = NULL;
  if (!PyArg_ParseTuple(args, "is:sharding", &x, &text)) return NULL;
  if (check_graph(self) < 0) return NULL;
  tpj_value_t v = TPJ_VALUE_NONE;
  tpj_status_t s = tpj_build_sharding(self->graph, (tpj_value_t)x, text, &v);
  return s ? tpj_py_raise(s) : PyLong_FromLong(v);
}

static PyObject* graph_full_to_shard(tpj_py_graph_t* self, PyObject* args) {
  int x = 0;
  PyObject* shape = NULL;
  if (!PyArg_ParseTuple(args, "iO:full_to_shard", &x, &shape)) return NULL;
  if (check_graph(self) < 0) return NULL;
  tpj_type_t t;
  if (operand_shape_type(self, x, shape, &t, "Graph.full_to_shard") < 0) return NULL;
  tpj_value_t v = TPJ_VALUE_NONE;
  tpj_status_t s = tpj_build_full_to_shard(self->graph, (tpj_value_t)x, &t, &v);
  return s ? tpj_py_raise(s) : PyLong_FromLong(v);
}

static PyObject* graph_shard_to_full(tpj_py_graph_t* self, PyObject* args) {
  int x = 0;
  const char* text = NULL;
  PyObject* shape = NULL;
  if (!PyArg_ParseTuple(args, "isO:shard_to_full", &x, &text, &shape)) return NULL;
  if (check_graph(self) < 0) return NULL;
  tpj_type_t t;
  if (operand_shape_type(self, x, shape, &t, "Graph.shard_to_full") < 0) return NULL;
  tpj_value_t v = TPJ_VALUE_NONE;
  tpj_status_t s = tpj_build_shard_to_full(self->graph, (tpj_value_t)x, text, &t, &v);
  return s ? tpj_py_raise(s) : PyLong_FromLong(v);
}

/* set_param_attr / set_result_attr: (index, text) for `set`. */
static PyObject* graph_set_attr(tpj_py_graph_t* self, PyObject* args, const char* fmt,
                                const char* what,
                                tpj_status_t (*set)(tpj_graph_t*, size_t, const char*)) {
  Py_ssize_t index = 0;
  const char* text = NULL;
  if (!PyArg_ParseTuple(args, fmt, &index, &text)) return NULL;
  if (check_graph(self) < 0) return NULL;
  if (index < 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "%s: index is negative (got %zd, "
                                   "expected >= 0)", what, index));
  }
  tpj_status_t s = set(self->graph, (size_t)index, text);
  if (s) return tpj_py_raise(s);
  Py_RETURN_NONE;
}

static PyObject* graph_set_param_attr(tpj_py_graph_t* self, PyObject* args) {
  return graph_set_attr(self, args, "ns:set_param_attr", "Graph.set_param_attr",
                        tpj_graph_set_param_attr);
}

static PyObject* graph_set_result_attr(tpj_py_graph_t* self, PyObject* args) {
  return graph_set_attr(self, args, "ns:set_result_attr", "Graph.set_result_attr",
                        tpj_graph_set_result_attr);
}

static PyObject* graph_add_module_attr(tpj_py_graph_t* self, PyObject* args) {
  const char* text = NULL;
  if (!PyArg_ParseTuple(args, "s:add_module_attr", &text)) return NULL;
  if (check_graph(self) < 0) return NULL;
  tpj_status_t s = tpj_graph_add_module_attr(self->graph, text);
  if (s) return tpj_py_raise(s);
  Py_RETURN_NONE;
}

static PyObject* graph_op_count(tpj_py_graph_t* self, void* unused) {
  if (check_graph(self) < 0) return NULL;
  return PyLong_FromSize_t(tpj_graph_op_count(self->graph));
}

static PyObject* graph_param_count(tpj_py_graph_t* self, void* unused) {
  if (check_graph(self) < 0) return NULL;
  return PyLong_FromSize_t(tpj_graph_param_count(self->graph));
}

/* [(kind, message)] of the graph's runtime checks, in check-result order. */
static PyObject* graph_checks(tpj_py_graph_t* self, void* unused) {
  if (check_graph(self) < 0) return NULL;
  size_t n = tpj_graph_check_count(self->graph);
  PyObject* list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; list && i < n; ++i) {
    const tpj_check_t* c = tpj_graph_check(self->graph, i);
    PyObject* item = Py_BuildValue("(is)", (int)c->kind, c->message);
    if (!item) Py_CLEAR(list);
    else PyList_SET_ITEM(list, (Py_ssize_t)i, item);
  }
  return list;
}

static PyMethodDef graph_methods[] = {
    {"param", (PyCFunction)graph_param, METH_VARARGS,
     "param(dtype: int, shape: tuple) -> int"},
    {"lower", (PyCFunction)graph_lower, METH_VARARGS,
     "lower(target: str, args: list, out_types: list[(dtype, shape) | None]) "
     "-> list[int | None]"},
    {"set_results", (PyCFunction)graph_set_results, METH_VARARGS,
     "set_results(ids: list[int])"},
    {"to_stablehlo", (PyCFunction)graph_to_stablehlo, METH_NOARGS, "to_stablehlo() -> str"},
    {"value_type", (PyCFunction)graph_value_type, METH_O, "value_type(id) -> (dtype, shape)"},
    {"sharding", (PyCFunction)graph_sharding, METH_VARARGS,
     "sharding(id, text: str) -> int: custom_call @Sharding of the value (same type), "
     "mhlo.sharding = text, e.g. \"{devices=[4]0,1,2,3}\" or \"{manual}\""},
    {"full_to_shard", (PyCFunction)graph_full_to_shard, METH_VARARGS,
     "full_to_shard(id, shape: tuple) -> int: custom_call @SPMDFullToShardShape "
     "(mhlo.sharding = \"{manual}\") to this partition's shard of `shape` (the value's dtype)"},
    {"shard_to_full", (PyCFunction)graph_shard_to_full, METH_VARARGS,
     "shard_to_full(id, text: str, shape: tuple) -> int: custom_call @SPMDShardToFullShape "
     "to the full value of `shape` (the value's dtype), mhlo.sharding = text"},
    {"set_param_attr", (PyCFunction)graph_set_param_attr, METH_VARARGS,
     "set_param_attr(index: int, text: str): attribute text of @main's argument, e.g. "
     "'mhlo.sharding = \"{replicated}\"'"},
    {"set_result_attr", (PyCFunction)graph_set_result_attr, METH_VARARGS,
     "set_result_attr(index: int, text: str): attribute text of @main's result (after "
     "set_results)"},
    {"add_module_attr", (PyCFunction)graph_add_module_attr, METH_VARARGS,
     "add_module_attr(text: str): module attribute text, e.g. "
     "'mhlo.num_partitions = 4 : i32'"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef graph_getset[] = {
    {"op_count", (getter)graph_op_count, NULL, "ops in the graph, regions included", NULL},
    {"param_count", (getter)graph_param_count, NULL, "parameters of @main", NULL},
    {"checks", (getter)graph_checks, NULL,
     "[(kind, message)] runtime checks; after set_results the program has one more "
     "result, int64[2 * len(checks)] of (bad, value) pairs", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject tpj_py_graph_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "torch_pjrt._C.Graph",
    .tp_basicsize = sizeof(tpj_py_graph_t),
    .tp_dealloc = (destructor)graph_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Graph(checks=True, partitioned=False): a StableHLO @main built with the C "
              "lowering table (checks: runtime index / division checks, see .checks; "
              "partitioned: for XLA's SPMD partitioner, tpj_graph_set_partitioned).",
    .tp_methods = graph_methods,
    .tp_getset = graph_getset,
    .tp_init = (initproc)graph_init,
    .tp_new = PyType_GenericNew,
};
