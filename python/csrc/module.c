/* module.c: torch_pjrt._C module init, the _C.Error exception, and the
 * module-level functions (plugin resolution, lowering table queries,
 * metrics). Object types live in client.c, buffer.c and graph.c. */
#include "tpj_py.h"

#include <stdlib.h>

#include "tpj/lower.h"

PyObject* tpj_py_error_type = NULL;
/* _C.OutOfMemoryError: both an Error and a torch.OutOfMemoryError, raised for
 * RESOURCE_EXHAUSTED (NULL when torch has no OutOfMemoryError). */
static PyObject* g_oom_type = NULL;

static int make_oom_type(void) {
  PyObject* torch = PyImport_ImportModule("torch");
  PyObject* torch_oom = torch ? PyObject_GetAttrString(torch, "OutOfMemoryError") : NULL;
  Py_XDECREF(torch);
  if (!torch_oom) return -1;
  PyObject* bases = PyTuple_Pack(2, tpj_py_error_type, torch_oom);
  Py_DECREF(torch_oom);
  if (!bases) return -1;
  g_oom_type = PyErr_NewExceptionWithDoc(
      "torch_pjrt._C.OutOfMemoryError",
      "The device ran out of memory (a torch.OutOfMemoryError and a torch_pjrt._C.Error).",
      bases, NULL);
  Py_DECREF(bases);
  return g_oom_type ? 0 : -1;
}

PyObject* tpj_py_raise(tpj_status_t status) {
  if (!status) {
    status = TPJ_STATUS(INTERNAL, "torch_pjrt: an error was raised without a status");
  }
  PyObject* type = tpj_status_code(status) == TPJ_STATUS_RESOURCE_EXHAUSTED && g_oom_type
                       ? g_oom_type : tpj_py_error_type;
  if (tpj_status_code(status) == TPJ_STATUS_OUT_OF_RANGE && tpj_py_index_error_type) {
    type = tpj_py_index_error_type; /* an index out of range: IndexError, as on CPU */
  }
  PyObject* exc = PyObject_CallFunction(type, "s", tpj_status_message(status));
  if (exc) {
    PyObject* code = PyUnicode_FromString(tpj_status_code_name(tpj_status_code(status)));
    if (code && PyObject_SetAttrString(exc, "code", code) == 0) {
      PyErr_SetObject(type, exc);
    }
    Py_XDECREF(code);
    Py_DECREF(exc);
  }
  tpj_status_free(status);
  return NULL;
}

int tpj_py_raise_int(tpj_status_t status) {
  tpj_py_raise(status);
  return -1;
}

int tpj_py_parse_dims(PyObject* seq, int64_t* out_dims, size_t* out_rank,
                      const char* what) {
  PyObject* fast = PySequence_Fast(seq, "shape must be a tuple or list of ints");
  if (!fast) return -1;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  if (n > TPJ_MAX_RANK) {
    Py_DECREF(fast);
    tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "%s: rank too large (got %zd, expected <= %d)",
                            what, n, TPJ_MAX_RANK));
    return -1;
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    long long d = PyLong_AsLongLong(PySequence_Fast_GET_ITEM(fast, i));
    if (d == -1 && PyErr_Occurred()) {
      Py_DECREF(fast);
      return -1;
    }
    if (d < 0) {
      Py_DECREF(fast);
      tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "%s: negative dimension (got %lld at %zd)",
                              what, d, i));
      return -1;
    }
    out_dims[i] = (int64_t)d;
  }
  *out_rank = (size_t)n;
  Py_DECREF(fast);
  return 0;
}

PyObject* tpj_py_dims_tuple(const int64_t* dims, size_t rank) {
  PyObject* t = PyTuple_New((Py_ssize_t)rank);
  if (!t) return NULL;
  for (size_t i = 0; i < rank; ++i) {
    PyObject* d = PyLong_FromLongLong(dims[i]);
    if (!d) {
      Py_DECREF(t);
      return NULL;
    }
    PyTuple_SET_ITEM(t, (Py_ssize_t)i, d);
  }
  return t;
}

/* Copies a list of str into a malloc'ed array of borrowed UTF-8 pointers. */
static PyObject* py_plugin_resolve(PyObject* self, PyObject* args) {
  PyObject* spec_obj = NULL;
  PyObject* dirs_obj = NULL;
  if (!PyArg_ParseTuple(args, "OO:plugin_resolve", &spec_obj, &dirs_obj)) return NULL;
  const char* spec = NULL;
  if (spec_obj != Py_None) {
    spec = PyUnicode_AsUTF8(spec_obj);
    if (!spec) return NULL;
  }
  PyObject* fast = PySequence_Fast(dirs_obj, "search_dirs must be a list of str");
  if (!fast) return NULL;
  Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
  const char** dirs = calloc((size_t)n + 1, sizeof(*dirs));
  if (!dirs) {
    Py_DECREF(fast);
    return PyErr_NoMemory();
  }
  for (Py_ssize_t i = 0; i < n; ++i) {
    dirs[i] = PyUnicode_AsUTF8(PySequence_Fast_GET_ITEM(fast, i));
    if (!dirs[i]) {
      free(dirs);
      Py_DECREF(fast);
      return NULL;
    }
  }
  char* path = NULL;
  tpj_status_t s = tpj_plugin_resolve(spec, dirs, (size_t)n, &path);
  free(dirs);
  Py_DECREF(fast);
  if (s) return tpj_py_raise(s);
  PyObject* result = PyUnicode_FromString(path);
  free(path);
  return result;
}

static PyObject* py_lower_supported(PyObject* self, PyObject* arg) {
  const char* target = PyUnicode_AsUTF8(arg);
  if (!target) return NULL;
  return PyBool_FromLong(tpj_lower_is_supported(target));
}

static PyObject* py_lower_set_disabled(PyObject* self, PyObject* args) {
  const char* target;
  int disabled;
  if (!PyArg_ParseTuple(args, "sp", &target, &disabled)) return NULL;
  tpj_status_t s = tpj_lower_op_set_disabled(target, disabled != 0);
  if (s) return tpj_py_raise(s);
  Py_RETURN_NONE;
}

static PyObject* py_lower_ops(PyObject* self, PyObject* unused) {
  size_t n = tpj_lower_op_count();
  PyObject* list = PyList_New((Py_ssize_t)n);
  if (!list) return NULL;
  for (size_t i = 0; i < n; ++i) {
    PyObject* name = PyUnicode_FromString(tpj_lower_op_name(i));
    if (!name) {
      Py_DECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, name);
  }
  return list;
}

static int set_u64(PyObject* d, const char* key, uint64_t v) {
  PyObject* o = PyLong_FromUnsignedLongLong(v);
  int rc = o ? PyDict_SetItemString(d, key, o) : -1;
  Py_XDECREF(o);
  return rc;
}

static int set_f64(PyObject* d, const char* key, double v) {
  PyObject* o = PyFloat_FromDouble(v);
  int rc = o ? PyDict_SetItemString(d, key, o) : -1;
  Py_XDECREF(o);
  return rc;
}

static PyObject* py_metrics(PyObject* self, PyObject* unused) {
  tpj_metrics_t m;
  tpj_runtime_metrics_get(&m);
  PyObject* d = PyDict_New();
  if (!d) return NULL;
  PyObject* secs = PyFloat_FromDouble(m.compile_seconds);
  if (!secs || PyDict_SetItemString(d, "compile_seconds", secs) < 0 ||
      set_f64(d, "execute_seconds", m.execute_seconds) < 0 ||
      set_f64(d, "h2d_seconds", m.h2d_seconds) < 0 ||
      set_f64(d, "d2h_seconds", m.d2h_seconds) < 0 ||
      set_u64(d, "compiles", m.compiles) < 0 || set_u64(d, "cache_hits", m.cache_hits) < 0 ||
      set_u64(d, "executions", m.executions) < 0 ||
      set_u64(d, "bytes_h2d", m.bytes_h2d) < 0 || set_u64(d, "bytes_d2h", m.bytes_d2h) < 0 ||
      set_u64(d, "fallbacks", m.fallbacks) < 0 ||
      set_u64(d, "dist_staged_bytes", m.dist_staged_bytes) < 0 ||
      set_u64(d, "cache_entries", m.cache_entries) < 0 ||
      set_u64(d, "disk_hits", m.disk_hits) < 0 ||
      set_u64(d, "disk_writes", m.disk_writes) < 0) {
    Py_XDECREF(secs);
    Py_DECREF(d);
    return NULL;
  }
  Py_DECREF(secs);
  return d;
}

static PyObject* py_metrics_reset(PyObject* self, PyObject* unused) {
  tpj_runtime_metrics_reset();
  Py_RETURN_NONE;
}

static PyObject* py_metrics_add_fallback(PyObject* self, PyObject* unused) {
  tpj_runtime_metrics_add_fallback();
  Py_RETURN_NONE;
}

static PyObject* py_cache_clear(PyObject* self, PyObject* unused) {
  Py_BEGIN_ALLOW_THREADS
  tpj_runtime_cache_clear();
  Py_END_ALLOW_THREADS
  Py_RETURN_NONE;
}

/* Implemented in checks.c. */
PyObject* tpj_py_set_eager_checks(PyObject* self, PyObject* arg);
int tpj_py_checks_init(PyObject* m);
/* Implemented in trace.c. */
int tpj_py_trace_init(PyObject* m);

/* Implemented in execute.c. */
PyObject* tpj_py_eager_compile(PyObject* self, PyObject* args);

static PyMethodDef module_methods[] = {
    {"eager_compile", tpj_py_eager_compile, METH_VARARGS,
     "eager_compile(client, mlir: str) -> Executable: a portable executable (runs on the "
     "device a Program call names)"},
    {"set_eager_checks", tpj_py_set_eager_checks, METH_O,
     "set_eager_checks(enabled: bool): runtime checks in eager device programs"},
    {"plugin_resolve", py_plugin_resolve, METH_VARARGS,
     "plugin_resolve(spec: str | None, search_dirs: list[str]) -> str"},
    {"lower_supported", py_lower_supported, METH_O,
     "lower_supported(target: str) -> bool"},
    {"lower_set_disabled", py_lower_set_disabled, METH_VARARGS,
     "lower_set_disabled(target: str, disabled: bool): see tpj_lower_op_set_disabled"},
    {"lower_ops", py_lower_ops, METH_NOARGS, "lower_ops() -> list[str]"},
    {"metrics", py_metrics, METH_NOARGS, "metrics() -> dict of runtime counters"},
    {"metrics_reset", py_metrics_reset, METH_NOARGS, "metrics_reset() -> None"},
    {"metrics_add_fallback", py_metrics_add_fallback, METH_NOARGS,
     "metrics_add_fallback() -> None: counts one op/graph run on the fallback path"},
    {"cache_clear", py_cache_clear, METH_NOARGS,
     "cache_clear() -> None: drops the compile cache's references"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "torch_pjrt._C",
    "torch_pjrt._C: CPython bindings of the torch-pjrt C core.", -1, module_methods,
    NULL, NULL, NULL, NULL,
};

static int add_type(PyObject* m, PyTypeObject* type, const char* name) {
  if (PyType_Ready(type) < 0) return -1;
  Py_INCREF(type);
  if (PyModule_AddObject(m, name, (PyObject*)type) < 0) {
    Py_DECREF(type);
    return -1;
  }
  return 0;
}

PyMODINIT_FUNC PyInit__C(void) {
  PyObject* m = PyModule_Create(&module_def);
  if (!m) return NULL;
  if (!tpj_py_error_type) {
    tpj_py_error_type = PyErr_NewExceptionWithDoc(
        "torch_pjrt._C.Error", "A torch-pjrt C core error; `.code` is the status code name.",
        PyExc_RuntimeError, NULL);
    if (!tpj_py_error_type) goto fail;
  }
  Py_INCREF(tpj_py_error_type);
  if (PyModule_AddObject(m, "Error", tpj_py_error_type) < 0) {
    Py_DECREF(tpj_py_error_type);
    goto fail;
  }
  if (!g_oom_type && make_oom_type() < 0) PyErr_Clear(); /* no torch: plain Error */
  if (g_oom_type) {
    Py_INCREF(g_oom_type);
    if (PyModule_AddObject(m, "OutOfMemoryError", g_oom_type) < 0) {
      Py_DECREF(g_oom_type);
      goto fail;
    }
  }
  if (tpj_py_checks_init(m) < 0) goto fail;
  if (tpj_py_trace_init(m) < 0) goto fail;
  if (add_type(m, &tpj_py_client_type, "Client") < 0 ||
      add_type(m, &tpj_py_buffer_type, "Buffer") < 0 ||
      add_type(m, &tpj_py_executable_type, "Executable") < 0 ||
      add_type(m, &tpj_py_program_type, "Program") < 0 ||
      add_type(m, &tpj_py_graph_type, "Graph") < 0 ||
      add_type(m, &tpj_py_model_type, "Model") < 0 ||
      add_type(m, &tpj_py_host_array_type, "HostArray") < 0) {
    goto fail;
  }
  return m;
fail:
  Py_DECREF(m);
  return NULL;
}
