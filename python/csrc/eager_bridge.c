/* eager_bridge.c: runs compiled programs directly on the storages of eager
 * "pjrt" tensors (torch.compile on device tensors). Arguments are borrowed
 * storage buffers and results are installed into storages, so no data moves
 * between host and device. A storage is named by its handle: the data
 * pointer of a pjrt tensor's storage is its tpj_eager_storage_t*. */
#include "tpj_py.h"

#include <stdlib.h>

#include "tpj/eager.h"

/* One execution: args[i] borrowed or owned (owned[i] then holds it too). */
typedef struct {
  size_t num_args;
  tpj_buffer_t** args;  /* (num_args) */
  tpj_buffer_t** owned; /* (num_args) temporaries to destroy, or NULL entries */
  size_t num_outs;
  tpj_eager_storage_t** dests; /* (num_outs) storage to install into, or NULL */
  size_t device;               /* where the results live */
  size_t exec_device;          /* where it runs: `device` if portable, else 0 */
} eager_call_t;

static void call_free(eager_call_t* c) {
  for (size_t i = 0; c->owned && i < c->num_args; ++i) tpj_buffer_destroy(c->owned[i]);
  free(c->args);
  free(c->owned);
  free(c->dests);
}

static tpj_eager_storage_t* storage_from(PyObject* obj) {
  void* p = PyLong_AsVoidPtr(obj);
  if (!p && !PyErr_Occurred()) {
    tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "execute_eager: null storage handle"));
  }
  return (tpj_eager_storage_t*)p;
}

/* The storage's buffer as `dtype` (borrowed, or a materialized flat view). */
static tpj_status_t storage_arg(tpj_eager_storage_t* s, tpj_dtype_t dtype, tpj_buffer_t** out,
                                tpj_buffer_t** out_owned) {
  TPJ_RETURN_IF_ERROR(tpj_eager_storage_buffer(s, dtype, out));
  if (*out) return NULL;
  size_t item = tpj_dtype_size(dtype);
  tpj_eager_tensor_t v = {.storage = s, .dtype = dtype, .rank = 1, .strides = {1}};
  v.sizes[0] = item ? (int64_t)(tpj_eager_storage_nbytes(s) / item) : 0;
  TPJ_RETURN_IF_ERROR(tpj_eager_materialize(&v, out_owned));
  *out = *out_owned;
  return NULL;
}

/* Fills argument i from a Buffer or a storage handle; moves it to the
 * executing device. */
static int fill_arg(tpj_py_executable_t* self, eager_call_t* c, size_t i, PyObject* obj,
                    PyObject* dtypes) {
  tpj_buffer_t* b = NULL;
  tpj_status_t st = NULL;
  if (PyObject_TypeCheck(obj, &tpj_py_buffer_type)) {
    tpj_py_buffer_t* pb = (tpj_py_buffer_t*)obj;
    if (!pb->buffer || tpj_buffer_is_deleted(pb->buffer) || pb->client != self->client) {
      return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "execute_eager: argument %zu is a "
                                         "deleted Buffer or one of another client", i));
    }
    b = pb->buffer;
  } else {
    tpj_eager_storage_t* s = storage_from(obj);
    if (!s) return -1;
    PyObject* code = PyTuple_Check(dtypes) && (Py_ssize_t)i < PyTuple_GET_SIZE(dtypes)
                         ? PyTuple_GET_ITEM(dtypes, (Py_ssize_t)i) : NULL;
    long dt = code ? PyLong_AsLong(code) : -1;
    if (dt < 0) {
      PyErr_Clear();
      return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "execute_eager: argument %zu is a "
                                         "storage but arg_dtypes has no dtype for it", i));
    }
    st = storage_arg(s, (tpj_dtype_t)dt, &b, &c->owned[i]);
  }
  if (!st && tpj_buffer_device_index(b) != c->exec_device) {
    tpj_buffer_t* moved = NULL;
    st = tpj_buffer_copy_to_device(b, c->exec_device, &moved);
    tpj_buffer_destroy(c->owned[i]);
    c->owned[i] = moved;
    b = moved;
  }
  if (st) return tpj_py_raise_int(tpj_status_annotate(st, "execute_eager: argument %zu", i));
  c->args[i] = b;
  return 0;
}

static int parse_call(tpj_py_executable_t* self, eager_call_t* c, PyObject* args,
                      PyObject* dtypes, PyObject* dests) {
  PyObject* fa = PySequence_Fast(args, "execute_eager: args must be a list");
  PyObject* fd = fa ? PySequence_Fast(dests, "execute_eager: dests must be a list") : NULL;
  int rc = fd ? 0 : -1;
  if (!rc) {
    c->num_args = (size_t)PySequence_Fast_GET_SIZE(fa);
    c->args = calloc(c->num_args + 1, sizeof(*c->args));
    c->owned = calloc(c->num_args + 1, sizeof(*c->owned));
    c->dests = calloc(c->num_outs + 1, sizeof(*c->dests));
    if (!c->args || !c->owned || !c->dests) rc = (PyErr_NoMemory(), -1);
  }
  if (!rc && (size_t)PySequence_Fast_GET_SIZE(fd) != c->num_outs) {
    rc = tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "execute_eager: dests has %zd "
                                     "entries, expected %zu", PySequence_Fast_GET_SIZE(fd),
                                     c->num_outs));
  }
  for (size_t i = 0; !rc && i < c->num_args; ++i) {
    rc = fill_arg(self, c, i, PySequence_Fast_GET_ITEM(fa, (Py_ssize_t)i), dtypes);
  }
  for (size_t o = 0; !rc && o < c->num_outs; ++o) {
    PyObject* d = PySequence_Fast_GET_ITEM(fd, (Py_ssize_t)o);
    if (d == Py_None) continue;
    c->dests[o] = storage_from(d);
    if (!c->dests[o]) rc = -1;
  }
  Py_XDECREF(fa);
  Py_XDECREF(fd);
  return rc;
}

/* Launches on c->exec_device, awaits, and moves the outputs to c->device. */
static tpj_status_t run_call(tpj_executable_t* exe, uint64_t key, const eager_call_t* c,
                             tpj_buffer_t** outs) {
  tpj_event_t* ev = NULL;
  tpj_execute_args_t ea = {.args = c->args, .num_args = c->num_args, .num_devices = 1,
                           .out_buffers = outs, .out_events = &ev,
                           .device = c->exec_device};
  uint64_t t0 = tpj_runtime_metrics_now_ns();
  TPJ_RETURN_IF_ERROR(tpj_eager_memory_launch(c->exec_device, exe));
  tpj_status_t launched = tpj_executable_execute(exe, &ea);
  if (tpj_status_code(launched) == TPJ_STATUS_RESOURCE_EXHAUSTED) {
    return tpj_status_annotate(launched, "compiled program on pjrt device %zu", c->exec_device);
  }
  TPJ_RETURN_IF_ERROR(launched);
  if (tpj_runtime_trace_enabled()) {
    tpj_trace_launch_t tl = {key, NULL, c->exec_device, 1, t0, tpj_runtime_metrics_now_ns(),
                             &ev};
    tpj_runtime_trace_launch(&tl);
  }
  tpj_status_t st = ev ? tpj_event_await(ev) : NULL;
  if (tpj_status_code(st) == TPJ_STATUS_RESOURCE_EXHAUSTED) {
    st = tpj_status_annotate(st, "compiled program on pjrt device %zu", c->exec_device);
  }
  tpj_runtime_metrics_add_execute_ns(tpj_runtime_metrics_now_ns() - t0);
  tpj_event_destroy(ev);
  for (size_t o = 0; o < c->num_outs && !st; ++o) {
    if (tpj_buffer_device_index(outs[o]) == c->device) continue;
    tpj_buffer_t* moved = NULL;
    st = tpj_buffer_copy_to_device(outs[o], c->device, &moved);
    if (!st) {
      tpj_buffer_destroy(outs[o]);
      outs[o] = moved;
    }
  }
  if (st) {
    for (size_t o = 0; o < c->num_outs; ++o) {
      tpj_buffer_destroy(outs[o]);
      outs[o] = NULL;
    }
  }
  return st;
}

/* Installs outputs with a destination storage; wraps the others as Buffers. */
static PyObject* finish_call(tpj_py_executable_t* self, const eager_call_t* c,
                             tpj_buffer_t** outs) {
  PyObject* row = PyList_New((Py_ssize_t)c->num_outs);
  tpj_status_t st = NULL;
  for (size_t o = 0; o < c->num_outs; ++o) {
    tpj_buffer_t* b = outs[o];
    outs[o] = NULL;
    if (!row || st) {
      tpj_buffer_destroy(b);
    } else if (c->dests[o]) {
      st = tpj_eager_storage_set_buffer(c->dests[o], b); /* takes b */
      if (!st) PyList_SET_ITEM(row, (Py_ssize_t)o, Py_NewRef(Py_None));
    } else {
      PyObject* w = tpj_py_buffer_wrap(self->client, b, NULL); /* destroys b on failure */
      if (!w) Py_CLEAR(row);
      else PyList_SET_ITEM(row, (Py_ssize_t)o, w);
    }
  }
  if (st) {
    Py_XDECREF(row);
    return tpj_py_raise(tpj_status_annotate(st, "execute_eager: installing a result"));
  }
  return row;
}

PyObject* tpj_py_executable_execute_eager(tpj_py_executable_t* self, PyObject* args,
                                          PyObject* kwargs) {
  static char* kwlist[] = {"args", "arg_dtypes", "dests", "device", NULL};
  PyObject *list = NULL, *dtypes = NULL, *dests = NULL;
  Py_ssize_t device = 0;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOn:execute_eager", kwlist, &list, &dtypes,
                                   &dests, &device)) {
    return NULL;
  }
  tpj_executable_t* exe = tpj_cached_executable_get(self->handle);
  if (tpj_executable_num_devices(exe) != 1 || device < 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "execute_eager: needs a single-device "
                                   "executable and a device index (got %zu devices, index %zd)",
                                   tpj_executable_num_devices(exe), device));
  }
  if (tpj_eager_client() != ((tpj_py_client_t*)self->client)->client) {
    return tpj_py_raise(TPJ_STATUS(FAILED_PRECONDITION, "execute_eager: the executable's "
                                   "client is not the eager device's client"));
  }
  eager_call_t c = {.num_outs = tpj_executable_num_outputs(exe), .device = (size_t)device};
  c.exec_device = tpj_executable_is_portable(exe) ? c.device : 0;
  PyObject* row = NULL;
  tpj_buffer_t** outs = calloc(c.num_outs + 1, sizeof(*outs));
  if (!outs) {
    PyErr_NoMemory();
  } else if (parse_call(self, &c, list, dtypes, dests) == 0) {
    tpj_status_t st;
    Py_BEGIN_ALLOW_THREADS
    st = run_call(exe, tpj_cached_executable_key(self->handle), &c, outs);
    Py_END_ALLOW_THREADS
    if (st) {
      tpj_py_raise(st);
    } else {
      tpj_runtime_metrics_add_execution();
      row = finish_call(self, &c, outs);
    }
  }
  call_free(&c);
  free(outs);
  return row;
}

/* ------------------------------------------------------ module functions -- */

/* eager_materialize(client, handle, dtype, sizes, strides, offset) -> Buffer */
PyObject* tpj_py_eager_materialize(PyObject* unused, PyObject* args) {
  PyObject *client = NULL, *handle = NULL, *sizes = NULL, *strides = NULL;
  int dtype = 0;
  long long offset = 0;
  if (!PyArg_ParseTuple(args, "O!OiOOL:eager_materialize", &tpj_py_client_type, &client,
                        &handle, &dtype, &sizes, &strides, &offset)) {
    return NULL;
  }
  tpj_eager_tensor_t v = {.dtype = (tpj_dtype_t)dtype, .offset = offset};
  size_t rank = 0, srank = 0;
  v.storage = storage_from(handle);
  if (!v.storage || tpj_py_parse_dims(sizes, v.sizes, &rank, "eager_materialize") < 0 ||
      tpj_py_parse_dims(strides, v.strides, &srank, "eager_materialize") < 0) {
    return NULL;
  }
  if (rank != srank || offset < 0 || tpj_dtype_size(v.dtype) == 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "eager_materialize: bad view (rank %zu, "
                                   "%zu strides, offset %lld, dtype %d)", rank, srank, offset,
                                   dtype));
  }
  v.rank = (int32_t)rank;
  tpj_buffer_t* out = NULL;
  tpj_status_t st;
  Py_BEGIN_ALLOW_THREADS
  st = tpj_eager_materialize(&v, &out);
  Py_END_ALLOW_THREADS
  if (st) return tpj_py_raise(st);
  return tpj_py_buffer_wrap(client, out, NULL);
}

/* eager_seed(client, word0, word1, device) -> Buffer: an RNG state input. */
PyObject* tpj_py_eager_seed(PyObject* unused, PyObject* args) {
  PyObject* client = NULL;
  unsigned long long w0 = 0, w1 = 0;
  Py_ssize_t device = 0;
  if (!PyArg_ParseTuple(args, "O!KKn:eager_seed", &tpj_py_client_type, &client, &w0, &w1,
                        &device)) {
    return NULL;
  }
  if (device < 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "eager_seed: bad device (got %zd)",
                                   device));
  }
  const uint64_t words[2] = {w0, w1};
  tpj_buffer_t* out = NULL;
  tpj_status_t st = tpj_eager_seed_create(words, (size_t)device, &out);
  if (st) return tpj_py_raise(st);
  return tpj_py_buffer_wrap(client, out, NULL);
}

/* eager_compile(client, mlir: str) -> Executable: compiled portable (no
 * device assignment), so execute_eager runs it on the device of its tensors. */
PyObject* tpj_py_eager_compile(PyObject* unused, PyObject* args) {
  PyObject* client = NULL;
  const char* text = NULL;
  Py_ssize_t len = 0;
  if (!PyArg_ParseTuple(args, "O!s#:eager_compile", &tpj_py_client_type, &client, &text,
                        &len)) {
    return NULL;
  }
  tpj_client_t* cl = ((tpj_py_client_t*)client)->client;
  if (!cl) return tpj_py_raise(TPJ_STATUS(FAILED_PRECONDITION, "eager_compile: client is closed"));
  tpj_compile_options_t options = {.num_replicas = 1, .num_partitions = 1, .portable = true};
  tpj_cached_executable_t* handle = NULL;
  tpj_status_t st;
  Py_BEGIN_ALLOW_THREADS
  st = tpj_runtime_compile_cached(cl, text, (size_t)len, &options, &handle, NULL);
  Py_END_ALLOW_THREADS
  if (st) return tpj_py_raise(st);
  return tpj_py_executable_wrap(client, handle);
}
