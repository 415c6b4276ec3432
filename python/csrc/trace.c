/* trace.c: torch_pjrt._C bindings of the runtime trace (tpj_runtime_trace_*):
 * start/stop (the file is written by the C core), whether one runs, the
 * clock, and spans and instants from Python code. */
#include "tpj_py.h"

/* trace_start(path: str) */
static PyObject* py_trace_start(PyObject* self, PyObject* arg) {
  PyObject* bytes = NULL;
  if (!PyUnicode_FSConverter(arg, &bytes)) return NULL;
  tpj_status_t st = tpj_runtime_trace_start(PyBytes_AS_STRING(bytes));
  Py_DECREF(bytes);
  if (st) return tpj_py_raise(st);
  Py_RETURN_NONE;
}

/* trace_stop() -> int: events written */
static PyObject* py_trace_stop(PyObject* self, PyObject* unused) {
  uint64_t events = 0;
  tpj_status_t st;
  Py_BEGIN_ALLOW_THREADS /* waits for launches' completion callbacks */
  st = tpj_runtime_trace_stop(&events);
  Py_END_ALLOW_THREADS
  if (st) return tpj_py_raise(st);
  return PyLong_FromUnsignedLongLong((unsigned long long)events);
}

static PyObject* py_trace_enabled(PyObject* self, PyObject* unused) {
  return PyBool_FromLong(tpj_runtime_trace_enabled());
}

static PyObject* py_trace_now_ns(PyObject* self, PyObject* unused) {
  return PyLong_FromUnsignedLongLong((unsigned long long)tpj_runtime_metrics_now_ns());
}

#define MAX_PY_ARGS 16

/* Fills args from a dict of str -> str | number (at most MAX_PY_ARGS); the
 * strings borrow from the dict's values. -1 with an exception set. */
static int parse_args(PyObject* dict, tpj_trace_arg_t* args, size_t* n) {
  *n = 0;
  if (!dict || dict == Py_None) return 0;
  if (!PyDict_Check(dict)) {
    PyErr_SetString(PyExc_TypeError, "trace: args must be a dict");
    return -1;
  }
  PyObject *k, *v;
  Py_ssize_t pos = 0;
  while (PyDict_Next(dict, &pos, &k, &v) && *n < MAX_PY_ARGS) {
    tpj_trace_arg_t* a = &args[*n];
    a->key = PyUnicode_Check(k) ? PyUnicode_AsUTF8(k) : NULL;
    if (!a->key) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "trace: arg keys must be str");
      return -1;
    }
    a->str = NULL;
    a->num = 0;
    if (PyUnicode_Check(v)) {
      a->str = PyUnicode_AsUTF8(v);
      if (!a->str) return -1;
    } else if (PyBool_Check(v)) {
      a->str = v == Py_True ? "true" : "false";
    } else {
      a->num = PyFloat_AsDouble(v);
      if (a->num == -1.0 && PyErr_Occurred()) return -1;
    }
    ++*n;
  }
  return 0;
}

/* trace_span(cat, name, start_ns, end_ns, args=None) */
static PyObject* py_trace_span(PyObject* self, PyObject* args) {
  const char *cat = NULL, *name = NULL;
  unsigned long long start = 0, end = 0;
  PyObject* dict = NULL;
  if (!PyArg_ParseTuple(args, "ssKK|O:trace_span", &cat, &name, &start, &end, &dict)) {
    return NULL;
  }
  if (!tpj_runtime_trace_enabled()) Py_RETURN_NONE;
  tpj_trace_arg_t targs[MAX_PY_ARGS];
  size_t n = 0;
  if (parse_args(dict, targs, &n) < 0) return NULL;
  tpj_trace_span_t s = {cat, name, (uint64_t)start, (uint64_t)end, 0, targs, n};
  tpj_runtime_trace_span(&s);
  Py_RETURN_NONE;
}

/* trace_instant(cat, name, args=None) */
static PyObject* py_trace_instant(PyObject* self, PyObject* args) {
  const char *cat = NULL, *name = NULL;
  PyObject* dict = NULL;
  if (!PyArg_ParseTuple(args, "ss|O:trace_instant", &cat, &name, &dict)) return NULL;
  if (!tpj_runtime_trace_enabled()) Py_RETURN_NONE;
  tpj_trace_arg_t targs[MAX_PY_ARGS];
  size_t n = 0;
  if (parse_args(dict, targs, &n) < 0) return NULL;
  tpj_runtime_trace_instant(cat, name, targs, n);
  Py_RETURN_NONE;
}

static PyMethodDef trace_methods[] = {
    {"trace_start", py_trace_start, METH_O,
     "trace_start(path): starts a Chrome trace-event trace written to path at trace_stop"},
    {"trace_stop", py_trace_stop, METH_NOARGS,
     "trace_stop() -> int: ends the trace, writes its file, returns the events written"},
    {"trace_enabled", py_trace_enabled, METH_NOARGS, "trace_enabled() -> bool"},
    {"trace_now_ns", py_trace_now_ns, METH_NOARGS,
     "trace_now_ns() -> int: the trace clock (CLOCK_MONOTONIC nanoseconds)"},
    {"trace_span", py_trace_span, METH_VARARGS,
     "trace_span(cat, name, start_ns, end_ns, args=None): a span on this thread"},
    {"trace_instant", py_trace_instant, METH_VARARGS,
     "trace_instant(cat, name, args=None): an instant event on this thread, now"},
    {NULL, NULL, 0, NULL},
};

int tpj_py_trace_init(PyObject* m) { return PyModule_AddFunctions(m, trace_methods); }
