/* execute.c: Executable.execute / execute_sharded, the low-level calls on
 * Buffers, and eager_compile. A call runs through a one-off program whose
 * inputs are all buffers (tpj_program_run, the one launch path) and waits for
 * completion, so errors surface here and zero-copy host memory is never read
 * after the call. */
#include "tpj_py.h"

#include <stdlib.h>

#include "tpj/eager.h"
#include "tpj/program.h"

typedef struct {
  size_t num_devices, num_args;
  tpj_program_input_t* inputs; /* (num_args): BUFFER, donate per argument */
  tpj_program_arg_t* args;     /* (num_devices, num_args) */
} exec_request_t;

static void request_free(exec_request_t* req) {
  free(req->inputs);
  free(req->args);
}

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
  int rc = 0;
  if (n != req->num_args) {
    rc = tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "execute: wrong argument count on "
                                     "device %zu (got %zu, expected %zu)", device, n,
                                     req->num_args));
  }
  for (size_t i = 0; i < n && rc == 0; ++i) {
    tpj_program_arg_t* a = &req->args[device * req->num_args + i];
    a->buffer = arg_buffer(self, PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i), device, i);
    if (!a->buffer) rc = -1;
  }
  Py_DECREF(fast);
  return rc;
}

/* Parses `donate` (None or a list of bools, one per argument). */
static int parse_donate(PyObject* obj, exec_request_t* req) {
  if (!obj || obj == Py_None) return 0;
  PyObject* fast = PySequence_Fast(obj, "execute: donate must be a list of bools");
  if (!fast) return -1;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  int rc = 0;
  if (n != req->num_args) {
    rc = tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "execute: donate has %zu entries, "
                                     "expected %zu", n, req->num_args));
  }
  for (size_t i = 0; i < n && rc == 0; ++i) {
    int v = PyObject_IsTrue(PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i));
    if (v < 0) rc = -1;
    req->inputs[i].donate = v > 0;
  }
  Py_DECREF(fast);
  return rc;
}

static int request_init(exec_request_t* req, size_t nd, size_t na) {
  req->num_devices = nd;
  req->num_args = na;
  req->inputs = calloc(na + 1, sizeof(*req->inputs));
  req->args = calloc(nd * na + 1, sizeof(*req->args));
  if (req->inputs && req->args) return 0;
  PyErr_NoMemory();
  return -1;
}

/* Runs req and returns a list (per device) of lists of Buffers. */
static PyObject* run_request(tpj_py_executable_t* self, const exec_request_t* req) {
  tpj_program_plan_t plan = {"execute", req->inputs, req->num_args, NULL, 0};
  tpj_program_t* prog = NULL;
  tpj_status_t st = tpj_program_create(self->handle, &plan, &prog);
  if (st) return tpj_py_raise(st);
  size_t nd = req->num_devices, nout = tpj_program_num_results(prog);
  tpj_program_result_t* res = calloc(nd * nout + 1, sizeof(*res));
  if (!res) {
    tpj_program_release(prog);
    return PyErr_NoMemory();
  }
  tpj_program_call_t call = {req->args, nd, 0, res, true};
  Py_BEGIN_ALLOW_THREADS
  st = tpj_program_run(prog, &call);
  Py_END_ALLOW_THREADS
  tpj_program_release(prog);
  PyObject* result = st ? tpj_py_raise(st) : PyList_New((Py_ssize_t)nd);
  for (size_t d = 0; d < nd && !st; ++d) {
    PyObject* row = result ? PyList_New((Py_ssize_t)nout) : NULL;
    if (row) PyList_SET_ITEM(result, (Py_ssize_t)d, row);
    else Py_CLEAR(result);
    for (size_t o = 0; o < nout; ++o) {
      tpj_buffer_t* b = res[d * nout + o].buffer;
      PyObject* w = result ? tpj_py_buffer_wrap(self->client, b, NULL) : NULL;
      if (!result) tpj_buffer_destroy(b);
      else if (!w) Py_CLEAR(result); /* wrap destroyed b */
      else PyList_SET_ITEM(row, (Py_ssize_t)o, w);
    }
  }
  free(res);
  return result;
}

static int check_devices(tpj_py_executable_t* self, size_t got) {
  size_t want = tpj_executable_num_devices(tpj_cached_executable_get(self->handle));
  if (got == want) return 0;
  return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                     "execute: wrong device count (got %zu argument lists, "
                                     "expected %zu)", got, want));
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
  exec_request_t req = {0};
  PyObject* rows = NULL;
  if (request_init(&req, 1, (size_t)n) == 0 && parse_donate(donate, &req) == 0 &&
      fill_row(self, &req, 0, list) == 0) {
    rows = run_request(self, &req);
  }
  request_free(&req);
  if (!rows) return NULL;
  PyObject* first = Py_NewRef(PyList_GET_ITEM(rows, 0));
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
  exec_request_t req = {0};
  PyObject* rows = NULL;
  if (na >= 0 && request_init(&req, nd, (size_t)na) == 0) {
    size_t d = 0;
    while (d < nd && fill_row(self, &req, d, PySequence_Fast_GET_ITEM(fast, d)) == 0) ++d;
    if (d == nd) rows = run_request(self, &req);
  }
  request_free(&req);
  Py_DECREF(fast);
  return rows;
}

/* eager_compile(client, mlir: str) -> Executable: compiled portable (no
 * device assignment), so a Program over it runs on the device of its inputs. */
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
