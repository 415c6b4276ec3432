/* execute.c: Executable.execute / execute_sharded. Checks the argument
 * buffers, launches without the GIL, waits for completion (so errors surface
 * here and zero-copy host memory is never read after the call), and wraps the
 * outputs as Buffers. */
#include "tpj_py.h"

#include <stdlib.h>

#include "tpj/eager.h"

typedef struct {
  size_t num_devices;
  size_t num_args;
  tpj_buffer_t** args;  /* (num_devices, num_args) borrowed from the Buffers */
  bool* donate;         /* (num_args) or NULL */
} exec_request_t;

/* Borrowed C buffer of args[i] (a live Buffer of this executable's client). */
static tpj_buffer_t* arg_buffer(tpj_py_executable_t* self, PyObject* obj, size_t device,
                                size_t index) {
  if (!PyObject_TypeCheck(obj, &tpj_py_buffer_type)) {
    tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                            "execute: argument %zu on device %zu is not a Buffer (got %s)",
                            index, device, Py_TYPE(obj)->tp_name));
    return NULL;
  }
  tpj_py_buffer_t* b = (tpj_py_buffer_t*)obj;
  if (!b->buffer || tpj_buffer_is_deleted(b->buffer)) {
    tpj_py_raise(TPJ_STATUS(FAILED_PRECONDITION,
                            "execute: argument %zu on device %zu was deleted or donated",
                            index, device));
    return NULL;
  }
  if (b->client != self->client) {
    tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                            "execute: argument %zu belongs to another client", index));
    return NULL;
  }
  return b->buffer;
}

/* Fills row `device` of req->args from a list of Buffers. */
static int fill_row(tpj_py_executable_t* self, exec_request_t* req, size_t device,
                    PyObject* list) {
  PyObject* fast = PySequence_Fast(list, "execute: args must be a list of Buffers");
  if (!fast) return -1;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  if (n != req->num_args) {
    Py_DECREF(fast);
    tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                            "execute: wrong argument count on device %zu (got %zu, "
                            "expected %zu)", device, n, req->num_args));
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    tpj_buffer_t* b = arg_buffer(self, PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i),
                                 device, i);
    if (!b) {
      Py_DECREF(fast);
      return -1;
    }
    req->args[device * req->num_args + i] = b;
  }
  Py_DECREF(fast);
  return 0;
}

/* Launches and awaits; on success *out_buffers holds (num_devices, num_outputs). */
static tpj_status_t launch(tpj_executable_t* exe, uint64_t key, const exec_request_t* req,
                           tpj_buffer_t** out_buffers) {
  size_t nd = req->num_devices, nout = tpj_executable_num_outputs(exe);
  tpj_event_t** events = calloc(nd ? nd : 1, sizeof(*events));
  if (!events) return TPJ_STATUS(RESOURCE_EXHAUSTED, "execute: out of memory");
  tpj_execute_args_t ea = {.args = req->args, .num_args = req->num_args,
                           .num_devices = nd, .donate = req->donate,
                           .out_buffers = out_buffers, .out_events = events};
  uint64_t t0 = tpj_runtime_metrics_now_ns();
  tpj_status_t s = NULL;  /* temporaries: device d runs replica d (default assignment) */
  for (size_t d = 0; d < nd && !s; ++d) s = tpj_eager_memory_launch(d, exe);
  if (!s) s = tpj_executable_execute(exe, &ea);
  if (!s && tpj_runtime_trace_enabled()) {
    tpj_trace_launch_t tl = {key, NULL, 0, nd, t0, tpj_runtime_metrics_now_ns(), events};
    tpj_runtime_trace_launch(&tl);
  }
  for (size_t d = 0; d < nd && !s; ++d) {
    if (events[d]) s = tpj_event_await(events[d]);
  }
  if (tpj_status_code(s) == TPJ_STATUS_RESOURCE_EXHAUSTED) {  /* name where it ran */
    s = tpj_status_annotate(s, "compiled program on pjrt device%s %s%zu", nd > 1 ? "s" : "",
                            nd > 1 ? "0-" : "", nd > 1 ? nd - 1 : 0);
  }
  tpj_runtime_metrics_add_execute_ns(tpj_runtime_metrics_now_ns() - t0);
  for (size_t d = 0; d < nd; ++d) tpj_event_destroy(events[d]);
  free(events);
  if (s && out_buffers) {
    for (size_t i = 0; i < nd * nout; ++i) {
      tpj_buffer_destroy(out_buffers[i]);
      out_buffers[i] = NULL;
    }
  }
  return s;
}

/* Runs req and returns a list (per device) of lists of Buffers. */
static PyObject* run_request(tpj_py_executable_t* self, const exec_request_t* req) {
  tpj_executable_t* exe = tpj_cached_executable_get(self->handle);
  size_t nd = req->num_devices, nout = tpj_executable_num_outputs(exe);
  tpj_buffer_t** outs = calloc(nd * nout + 1, sizeof(*outs));
  if (!outs) return PyErr_NoMemory();
  tpj_status_t s;
  Py_BEGIN_ALLOW_THREADS
  s = launch(exe, tpj_cached_executable_key(self->handle), req, outs);
  Py_END_ALLOW_THREADS
  if (s) {
    free(outs);
    return tpj_py_raise(s);
  }
  tpj_runtime_metrics_add_execution();
  PyObject* result = PyList_New((Py_ssize_t)nd);
  bool ok = result != NULL;
  for (size_t d = 0; d < nd; ++d) {
    PyObject* row = ok ? PyList_New((Py_ssize_t)nout) : NULL;
    if (!row) ok = false;
    else PyList_SET_ITEM(result, (Py_ssize_t)d, row);
    for (size_t o = 0; o < nout; ++o) {
      tpj_buffer_t* b = outs[d * nout + o];
      if (!ok) {
        tpj_buffer_destroy(b);
        continue;
      }
      PyObject* w = tpj_py_buffer_wrap(self->client, b, NULL); /* destroys b on failure */
      if (!w) ok = false;
      else PyList_SET_ITEM(row, (Py_ssize_t)o, w);
    }
  }
  if (!ok) Py_CLEAR(result);
  free(outs);
  return result;
}

static int check_devices(tpj_py_executable_t* self, size_t got) {
  size_t want = tpj_executable_num_devices(tpj_cached_executable_get(self->handle));
  if (got == want) return 0;
  return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                     "execute: wrong device count (got %zu argument lists, "
                                     "expected %zu)", got, want));
}

/* Parses `donate` (None or a list of bools, one per argument). */
static int parse_donate(PyObject* obj, exec_request_t* req) {
  if (!obj || obj == Py_None) return 0;
  PyObject* fast = PySequence_Fast(obj, "execute: donate must be a list of bools");
  if (!fast) return -1;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  if (n != req->num_args) {
    Py_DECREF(fast);
    return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                       "execute: donate has %zu entries, expected %zu", n,
                                       req->num_args));
  }
  req->donate = calloc(n + 1, sizeof(bool));
  if (!req->donate) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    int v = PyObject_IsTrue(PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i));
    if (v < 0) {
      Py_DECREF(fast);
      return -1;
    }
    req->donate[i] = v != 0;
  }
  Py_DECREF(fast);
  return 0;
}

PyObject* tpj_py_executable_execute(tpj_py_executable_t* self, PyObject* args,
                                    PyObject* kwargs) {
  static char* kwlist[] = {"args", "donate", NULL};
  PyObject *list = NULL, *donate = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|O:execute", kwlist, &list, &donate)) {
    return NULL;
  }
  if (check_devices(self, 1) < 0) return NULL;
  Py_ssize_t n = PySequence_Size(list);
  if (n < 0) return NULL;
  exec_request_t req = {.num_devices = 1, .num_args = (size_t)n};
  req.args = calloc((size_t)n + 1, sizeof(*req.args));
  if (!req.args) return PyErr_NoMemory();
  PyObject* rows = NULL;
  if (parse_donate(donate, &req) == 0 && fill_row(self, &req, 0, list) == 0) {
    rows = run_request(self, &req);
  }
  free(req.args);
  free(req.donate);
  if (!rows) return NULL;
  PyObject* first = PyList_GET_ITEM(rows, 0);
  Py_INCREF(first);
  Py_DECREF(rows);
  return first;
}

PyObject* tpj_py_executable_execute_sharded(tpj_py_executable_t* self, PyObject* args) {
  PyObject* lists = NULL;
  if (!PyArg_ParseTuple(args, "O:execute_sharded", &lists)) return NULL;
  PyObject* fast = PySequence_Fast(lists, "execute_sharded: args must be a list of lists");
  if (!fast) return NULL;
  size_t nd = (size_t)PySequence_Fast_GET_SIZE(fast);
  if (check_devices(self, nd) < 0 || nd == 0) {
    Py_DECREF(fast);
    return nd == 0 && !PyErr_Occurred() ? PyList_New(0) : NULL;
  }
  Py_ssize_t na = PySequence_Size(PySequence_Fast_GET_ITEM(fast, 0));
  if (na < 0) {
    Py_DECREF(fast);
    return NULL;
  }
  exec_request_t req = {.num_devices = nd, .num_args = (size_t)na};
  req.args = calloc(nd * (size_t)na + 1, sizeof(*req.args));
  PyObject* rows = NULL;
  if (!req.args) {
    PyErr_NoMemory();
  } else {
    size_t d = 0;
    while (d < nd && fill_row(self, &req, d, PySequence_Fast_GET_ITEM(fast, d)) == 0) ++d;
    if (d == nd) rows = run_request(self, &req);
  }
  free(req.args);
  Py_DECREF(fast);
  return rows;
}

/* ------------------------------------------------ execute + download -- */

typedef struct {
  void* ptr;     /* host destination or NULL: output stays on the device only */
  size_t nbytes; /* must equal the output's dense size */
} host_dest_t;

/* Parses `dests` (one None or (ptr, nbytes) per output) into out (nout). */
static int parse_dests(PyObject* obj, size_t nout, host_dest_t* out) {
  PyObject* fast = PySequence_Fast(obj, "execute_to_host: dests must be a list");
  if (!fast) return -1;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  int rc = 0;
  if (n != nout) {
    rc = tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                     "execute_to_host: dests has %zu entries, expected %zu",
                                     n, nout));
  }
  for (size_t i = 0; i < n && rc == 0; ++i) {
    PyObject* d = PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i);
    if (d == Py_None) continue;
    unsigned long long ptr = 0;
    Py_ssize_t nbytes = 0;
    if (!PyArg_ParseTuple(d, "Kn:execute_to_host dest", &ptr, &nbytes)) {
      rc = -1;
    } else if (nbytes < 0 || (ptr == 0 && nbytes > 0)) {
      rc = tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                       "execute_to_host: bad destination for output %zu", i));
    } else {
      out[i].ptr = (void*)(uintptr_t)ptr;
      out[i].nbytes = (size_t)nbytes;
    }
  }
  Py_DECREF(fast);
  return rc;
}

static size_t dense_nbytes(tpj_buffer_t* b) {
  size_t n = tpj_dtype_size(tpj_buffer_dtype(b));
  const int64_t* dims = tpj_buffer_dims(b);
  for (size_t i = 0; i < tpj_buffer_rank(b); ++i) n *= (size_t)dims[i];
  return n;
}

/* Starts every requested copy, then awaits them all; *out_bytes = bytes copied. */
static tpj_status_t copy_outputs(tpj_buffer_t** outs, const host_dest_t* dests, size_t nout,
                                 uint64_t* out_bytes) {
  tpj_event_t** events = calloc(nout + 1, sizeof(*events));
  if (!events) return TPJ_STATUS(RESOURCE_EXHAUSTED, "execute_to_host: out of memory");
  tpj_status_t s = NULL;
  *out_bytes = 0;
  uint64_t t0 = tpj_runtime_metrics_now_ns();
  for (size_t i = 0; i < nout && !s; ++i) {
    if (!dests[i].ptr) continue;
    size_t want = dense_nbytes(outs[i]);
    if (dests[i].nbytes != want) {
      s = TPJ_STATUS(INVALID_ARGUMENT,
                     "execute_to_host: size mismatch for output %zu (got %zu bytes, "
                     "expected %zu)", i, dests[i].nbytes, want);
    } else if (want) {
      s = tpj_buffer_to_host_async(outs[i], dests[i].ptr, want, &events[i]);
      *out_bytes += want;
    }
  }
  for (size_t i = 0; i < nout; ++i) { /* always await what was started */
    if (!events[i]) continue;
    tpj_status_t e = tpj_event_await(events[i]);
    if (e && !s) s = e;
    else tpj_status_free(e);
    tpj_event_destroy(events[i]);
  }
  uint64_t t1 = tpj_runtime_metrics_now_ns();
  tpj_runtime_metrics_add_d2h_ns(t1 - t0);
  if (!s && *out_bytes) tpj_runtime_trace_copy(TPJ_TRACE_COPY_D2H, *out_bytes, 0, t0, t1);
  free(events);
  return s;
}

/* Launches, awaits, copies the requested outputs to host memory; on error no
 * output buffers are left. */
static tpj_status_t launch_to_host(tpj_executable_t* exe, uint64_t key,
                                   const exec_request_t* req,
                                   const host_dest_t* dests, tpj_buffer_t** outs,
                                   uint64_t* out_bytes) {
  size_t nout = tpj_executable_num_outputs(exe);
  TPJ_RETURN_IF_ERROR(launch(exe, key, req, outs));
  tpj_status_t s = copy_outputs(outs, dests, nout, out_bytes);
  if (s) {
    for (size_t i = 0; i < nout; ++i) {
      tpj_buffer_destroy(outs[i]);
      outs[i] = NULL;
    }
  }
  return s;
}

/* Wraps the nout buffers of outs as a list of Buffers (destroys them on error). */
static PyObject* wrap_outputs(tpj_py_executable_t* self, tpj_buffer_t** outs, size_t nout) {
  PyObject* row = PyList_New((Py_ssize_t)nout);
  for (size_t o = 0; o < nout; ++o) {
    if (!row) {
      tpj_buffer_destroy(outs[o]);
      continue;
    }
    PyObject* w = tpj_py_buffer_wrap(self->client, outs[o], NULL); /* destroys on failure */
    if (!w) Py_CLEAR(row);
    else PyList_SET_ITEM(row, (Py_ssize_t)o, w);
  }
  return row;
}

PyObject* tpj_py_executable_execute_to_host(tpj_py_executable_t* self, PyObject* args,
                                            PyObject* kwargs) {
  static char* kwlist[] = {"args", "donate", "dests", NULL};
  PyObject *list = NULL, *donate = NULL, *dest_list = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO:execute_to_host", kwlist, &list,
                                   &donate, &dest_list)) {
    return NULL;
  }
  if (check_devices(self, 1) < 0) return NULL;
  tpj_executable_t* exe = tpj_cached_executable_get(self->handle);
  size_t nout = tpj_executable_num_outputs(exe);
  Py_ssize_t n = PySequence_Size(list);
  if (n < 0) return NULL;
  exec_request_t req = {.num_devices = 1, .num_args = (size_t)n};
  req.args = calloc((size_t)n + 1, sizeof(*req.args));
  host_dest_t* dests = calloc(nout + 1, sizeof(*dests));
  tpj_buffer_t** outs = calloc(nout + 1, sizeof(*outs));
  PyObject* row = NULL;
  if (!req.args || !dests || !outs) {
    PyErr_NoMemory();
  } else if (parse_donate(donate, &req) == 0 && fill_row(self, &req, 0, list) == 0 &&
             parse_dests(dest_list, nout, dests) == 0) {
    uint64_t bytes = 0;
    tpj_status_t s;
    Py_BEGIN_ALLOW_THREADS
    s = launch_to_host(exe, tpj_cached_executable_key(self->handle), &req, dests, outs,
                       &bytes);
    Py_END_ALLOW_THREADS
    if (s) {
      tpj_py_raise(s);
    } else {
      tpj_runtime_metrics_add_execution();
      tpj_runtime_metrics_add_bytes_d2h(bytes);
      row = wrap_outputs(self, outs, nout);
    }
  }
  free(req.args);
  free(req.donate);
  free(dests);
  free(outs);
  return row;
}
