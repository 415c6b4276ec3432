/* client.c: torch_pjrt._C.Client, one PJRT client of one plugin: device and
 * plugin queries, compiling through the C compile cache, and host -> device
 * transfers. Plugin loading, compiles and copies run without the GIL. */
#include "tpj_py.h"

#include <string.h>

#include "tpj/collective.h"

/* Converts one options-dict value; strings and int lists live in `arena` or are
 * borrowed from the dict (held by the caller for the whole call). */
static int parse_option(PyObject* key, PyObject* value, tpj_arena_t* arena,
                        tpj_option_t* out) {
  out->name = PyUnicode_AsUTF8(key);
  if (!out->name) return -1;
  if (PyBool_Check(value)) {
    out->kind = TPJ_OPTION_KIND_BOOL;
    out->int_value = value == Py_True;
  } else if (PyLong_Check(value)) {
    out->kind = TPJ_OPTION_KIND_INT64;
    out->int_value = PyLong_AsLongLong(value);
    if (out->int_value == -1 && PyErr_Occurred()) return -1;
  } else if (PyFloat_Check(value)) {
    out->kind = TPJ_OPTION_KIND_FLOAT;
    out->float_value = (float)PyFloat_AS_DOUBLE(value);
  } else if (PyUnicode_Check(value)) {
    out->kind = TPJ_OPTION_KIND_STRING;
    out->string_value = PyUnicode_AsUTF8(value);
    if (!out->string_value) return -1;
  } else if (PyList_Check(value) || PyTuple_Check(value)) {
    Py_ssize_t n = PySequence_Size(value);
    int64_t* ints = tpj_arena_alloc(arena, sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    if (!ints) return (PyErr_NoMemory(), -1);
    for (Py_ssize_t i = 0; i < n; ++i) {
      PyObject* item = PySequence_GetItem(value, i);
      if (!item) return -1;
      ints[i] = PyLong_AsLongLong(item);
      Py_DECREF(item);
      if (ints[i] == -1 && PyErr_Occurred()) return -1;
    }
    out->kind = TPJ_OPTION_KIND_INT64_LIST;
    out->int_list = ints;
    out->int_list_count = (size_t)n;
  } else {
    tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                            "client option '%s': unsupported value type (got %s, expected "
                            "int, float, bool, str or list of int)",
                            out->name, Py_TYPE(value)->tp_name));
    return -1;
  }
  return 0;
}

static int client_init(tpj_py_client_t* self, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {"path", "options", "kv_store", NULL};
  const char* path = NULL;
  PyObject* opts = NULL;
  PyObject* kv_obj = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|O!O:Client", kwlist, &path,
                                   &PyDict_Type, &opts, &kv_obj)) {
    return -1;
  }
  if (self->client) {
    return tpj_py_raise_int(TPJ_STATUS(FAILED_PRECONDITION, "Client: already initialized"));
  }
  Py_ssize_t n = opts ? PyDict_Size(opts) : 0;
  tpj_arena_t arena;
  tpj_arena_init(&arena, 4096);
  tpj_option_t* options = tpj_arena_alloc(&arena, sizeof(tpj_option_t) * (size_t)(n + 1));
  if (!options) {
    tpj_arena_deinit(&arena);
    PyErr_NoMemory();
    return -1;
  }
  PyObject *key, *value;
  Py_ssize_t pos = 0, i = 0;
  while (opts && PyDict_Next(opts, &pos, &key, &value)) {
    if (parse_option(key, value, &arena, &options[i++]) < 0) {
      tpj_arena_deinit(&arena);
      return -1;
    }
  }
  tpj_kv_store_t kv;
  bool with_kv = kv_obj && kv_obj != Py_None;
  if (with_kv && tpj_py_kv_store_from(kv_obj, &kv) < 0) {
    tpj_arena_deinit(&arena);
    return -1;
  }
  tpj_status_t s = NULL;
  tpj_client_t* client = NULL;
  Py_BEGIN_ALLOW_THREADS
  tpj_plugin_t* plugin = NULL;
  s = tpj_plugin_load(path, &plugin);
  if (!s) {
    s = tpj_client_create_with_store(plugin, options, (size_t)n, with_kv ? &kv : NULL,
                                     &client);
  } else if (with_kv) {
    PyGILState_STATE g = PyGILState_Ensure(); /* the store was never handed over */
    kv.release(kv.user);
    PyGILState_Release(g);
  }
  Py_END_ALLOW_THREADS
  tpj_arena_deinit(&arena);
  if (s) return tpj_py_raise_int(s);
  self->client = client;
  return 0;
}

static void client_dealloc(tpj_py_client_t* self) {
  if (self->client) {
    tpj_client_t* client = self->client;
    self->client = NULL;
    Py_BEGIN_ALLOW_THREADS
    tpj_collective_cache_evict_client(client);
    tpj_runtime_cache_evict_client(client);
    tpj_client_destroy(client);
    Py_END_ALLOW_THREADS
  }
  Py_TYPE(self)->tp_free((PyObject*)self);
}

static int check_client(tpj_py_client_t* self) {
  if (self->client) return 0;
  return tpj_py_raise_int(TPJ_STATUS(FAILED_PRECONDITION, "Client: not initialized"));
}

static PyObject* client_platform_name(tpj_py_client_t* self, void* unused) {
  if (check_client(self) < 0) return NULL;
  return PyUnicode_FromString(tpj_client_platform_name(self->client));
}

static PyObject* client_platform_version(tpj_py_client_t* self, void* unused) {
  if (check_client(self) < 0) return NULL;
  return PyUnicode_FromString(tpj_client_platform_version(self->client));
}

static PyObject* version_tuple(const int64_t v[3]) {
  return Py_BuildValue("(LLL)", (long long)v[0], (long long)v[1], (long long)v[2]);
}

static PyObject* client_plugin_info(tpj_py_client_t* self, PyObject* unused) {
  if (check_client(self) < 0) return NULL;
  tpj_plugin_info_t info;
  tpj_plugin_get_info(tpj_client_plugin(self->client), &info);
  PyObject* cur = version_tuple(info.stablehlo_current);
  PyObject* min = version_tuple(info.stablehlo_minimum);
  PyObject* d = NULL;
  if (cur && min) {
    d = Py_BuildValue("{s:s,s:(ii),s:L,s:O,s:O,s:s,s:s}", "path",
                      info.path ? info.path : "", "api_version", info.api_major,
                      info.api_minor, "xla_version", (long long)info.xla_version,
                      "stablehlo_current_version", cur, "stablehlo_minimum_version", min,
                      "platform_name", tpj_client_platform_name(self->client),
                      "platform_version", tpj_client_platform_version(self->client));
  }
  Py_XDECREF(cur);
  Py_XDECREF(min);
  return d;
}

static PyObject* client_devices(tpj_py_client_t* self, PyObject* unused) {
  if (check_client(self) < 0) return NULL;
  size_t n = tpj_client_addressable_device_count(self->client);
  PyObject* list = PyList_New(0);
  if (!list) return NULL;
  for (size_t i = 0; i < n; ++i) {
    tpj_device_info_t info;
    tpj_status_t s = tpj_client_device_info(self->client, i, &info);
    if (s) {
      Py_DECREF(list);
      return tpj_py_raise(s);
    }
    PyObject* d = Py_BuildValue("{s:n,s:i,s:s,s:i}", "index", (Py_ssize_t)i, "id", info.id,
                                "kind", info.kind ? info.kind : "", "local_hardware_id",
                                info.local_hardware_id);
    if (!d || PyList_Append(list, d) < 0) {
      Py_XDECREF(d);
      Py_DECREF(list);
      return NULL;
    }
    Py_DECREF(d);
  }
  return list;
}

static PyObject* client_compile(tpj_py_client_t* self, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {"mlir", "num_replicas", "num_partitions", "spmd", "shardy", NULL};
  const char* text = NULL;
  Py_ssize_t len = 0;
  int replicas = 1, partitions = 1, spmd = 0, shardy = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s#|iipp:compile", kwlist, &text, &len,
                                   &replicas, &partitions, &spmd, &shardy)) {
    return NULL;
  }
  if (check_client(self) < 0) return NULL;
  tpj_compile_options_t options = {.num_replicas = replicas, .num_partitions = partitions,
                                   .use_spmd_partitioning = spmd != 0,
                                   .use_shardy_partitioner = shardy != 0};
  tpj_cached_executable_t* handle = NULL;
  tpj_status_t s;
  Py_BEGIN_ALLOW_THREADS
  s = tpj_runtime_compile_cached(self->client, text, (size_t)len, &options, &handle, NULL);
  Py_END_ALLOW_THREADS
  if (s) return tpj_py_raise(s);
  return tpj_py_executable_wrap((PyObject*)self, handle);
}

static PyObject* client_buffer_from_host(tpj_py_client_t* self, PyObject* args,
                                         PyObject* kwargs) {
  static char* kwlist[] = {"ptr", "nbytes", "dtype", "shape", "device", "zero_copy",
                           "keepalive", NULL};
  unsigned long long ptr = 0;
  Py_ssize_t nbytes = 0, device = 0;
  int dtype = 0, zero_copy = 0;
  PyObject *shape = NULL, *keepalive = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "KniO|npO:buffer_from_host", kwlist, &ptr,
                                   &nbytes, &dtype, &shape, &device, &zero_copy,
                                   &keepalive)) {
    return NULL;
  }
  if (check_client(self) < 0) return NULL;
  int64_t dims[TPJ_MAX_RANK];
  size_t rank = 0;
  if (tpj_py_parse_dims(shape, dims, &rank, "buffer_from_host") < 0) return NULL;
  size_t item = tpj_dtype_size((tpj_dtype_t)dtype);
  if (dtype <= 0 || dtype >= TPJ_DTYPE_COUNT_ || item == 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                                   "buffer_from_host: bad dtype (got %d)", dtype));
  }
  size_t numel = 1;
  for (size_t i = 0; i < rank; ++i) numel *= (size_t)dims[i];
  if (nbytes < 0 || (size_t)nbytes != numel * item) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                                   "buffer_from_host: size mismatch (got %zd bytes, "
                                   "expected %zu for %zu elements of %s)",
                                   nbytes, numel * item, numel,
                                   tpj_dtype_name((tpj_dtype_t)dtype)));
  }
  if (ptr == 0 && nbytes > 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "buffer_from_host: null pointer"));
  }
  if (device < 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                                   "buffer_from_host: bad device (got %zd)", device));
  }
  tpj_host_semantics_t sem = zero_copy ? TPJ_HOST_SEMANTICS_ZERO_COPY
                                       : TPJ_HOST_SEMANTICS_COPY;
  tpj_buffer_t* buffer = NULL;
  tpj_status_t s;
  uint64_t t0 = tpj_runtime_metrics_now_ns();
  Py_BEGIN_ALLOW_THREADS
  s = tpj_buffer_from_host(self->client, (const void*)(uintptr_t)ptr, (tpj_dtype_t)dtype,
                           dims, rank, (size_t)device, sem, &buffer);
  Py_END_ALLOW_THREADS
  uint64_t t1 = tpj_runtime_metrics_now_ns();
  tpj_runtime_metrics_add_h2d_ns(t1 - t0);
  if (s) return tpj_py_raise(s);
  tpj_runtime_metrics_add_bytes_h2d((uint64_t)nbytes);
  tpj_runtime_trace_copy(TPJ_TRACE_COPY_H2D, (uint64_t)nbytes, (size_t)device, t0, t1);
  return tpj_py_buffer_wrap((PyObject*)self, buffer,
                            zero_copy && keepalive != Py_None ? keepalive : NULL);
}

static PyMethodDef client_methods[] = {
    {"plugin_info", (PyCFunction)client_plugin_info, METH_NOARGS,
     "plugin_info() -> dict(path, api_version, xla_version, stablehlo_current_version, "
     "stablehlo_minimum_version, platform_name, platform_version)"},
    {"devices", (PyCFunction)client_devices, METH_NOARGS,
     "devices() -> list[dict(index, id, kind, local_hardware_id)]"},
    {"compile", (PyCFunction)(void (*)(void))client_compile, METH_VARARGS | METH_KEYWORDS,
     "compile(mlir, num_replicas=1, num_partitions=1, spmd=False, shardy=False) -> "
     "Executable (cached; shardy: use_shardy_partitioner, for sdy-dialect programs)"},
    {"buffer_from_host", (PyCFunction)(void (*)(void))client_buffer_from_host,
     METH_VARARGS | METH_KEYWORDS,
     "buffer_from_host(ptr, nbytes, dtype, shape, device=0, zero_copy=False, "
     "keepalive=None) -> Buffer. With zero_copy the Buffer keeps `keepalive` (the "
     "owner of the host memory) alive."},
    {NULL, NULL, 0, NULL},
};

static PyObject* client_handle(tpj_py_client_t* self, void* unused) {
  return PyLong_FromVoidPtr(self->client);
}

static PyGetSetDef client_getset[] = {
    {"handle", (getter)client_handle, NULL,
     "the tpj_client_t* (borrowed; 0 once closed), for the C++ layer", NULL},
    {"platform_name", (getter)client_platform_name, NULL, "platform name, e.g. 'cpu'", NULL},
    {"platform_version", (getter)client_platform_version, NULL, "platform version", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject tpj_py_client_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "torch_pjrt._C.Client",
    .tp_basicsize = sizeof(tpj_py_client_t),
    .tp_dealloc = (destructor)client_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Client(path: str, options: dict = {}, kv_store=None): a PJRT client of one "
              "plugin; kv_store (get(key, timeout_ms) -> bytes, set(key, value), optional "
              "try_get(key)) is offered to plugins that build multi-process clients.",
    .tp_methods = client_methods,
    .tp_getset = client_getset,
    .tp_init = (initproc)client_init,
    .tp_new = PyType_GenericNew,
};
