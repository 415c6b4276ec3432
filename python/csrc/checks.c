/* checks.c: runtime checks (tpj/ir.h) on the Python side. _C.IndexError is
 * both a _C.Error and a builtin IndexError (tpj_py_raise uses it for
 * OUT_OF_RANGE), check_failed() raises a failed check of a compiled program
 * (read back by compiled.py), eager_defer_checks() leaves one of a program
 * over pjrt tensors pending on the eager device, and set_eager_checks()
 * switches the eager device's checks (torch_pjrt.config.check_indices). */
#include "tpj_py.h"

#include "runtime/eager_checks.h"
#include "tpj/eager.h"

PyObject* tpj_py_index_error_type = NULL;

int tpj_py_checks_init(PyObject* m) {
  if (!tpj_py_index_error_type) {
    PyObject* bases = PyTuple_Pack(2, tpj_py_error_type, PyExc_IndexError);
    if (!bases) return -1;
    tpj_py_index_error_type = PyErr_NewExceptionWithDoc(
        "torch_pjrt._C.IndexError",
        "An index out of range (an IndexError and a torch_pjrt._C.Error).", bases, NULL);
    Py_DECREF(bases);
    if (!tpj_py_index_error_type) return -1;
  }
  Py_INCREF(tpj_py_index_error_type);
  if (PyModule_AddObject(m, "IndexError", tpj_py_index_error_type) < 0) {
    Py_DECREF(tpj_py_index_error_type);
    return -1;
  }
  return 0;
}

/* check_failed(kind: int, message: str, value: int): raises the error of a
 * failed check (tpj_check_status), e.g. IndexError for an index. */
PyObject* tpj_py_check_failed(PyObject* self, PyObject* args) {
  int kind = 0;
  const char* message = NULL;
  long long value = 0;
  if (!PyArg_ParseTuple(args, "isL:check_failed", &kind, &message, &value)) return NULL;
  if (kind != TPJ_CHECK_KIND_INDEX && kind != TPJ_CHECK_KIND_DIV_ZERO) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "check_failed: unknown check kind "
                                   "(got %d, expected %d or %d)", kind, TPJ_CHECK_KIND_INDEX,
                                   TPJ_CHECK_KIND_DIV_ZERO));
  }
  tpj_check_t check = {(tpj_check_kind_t)kind, message};
  tpj_status_t st = tpj_check_status(&check, (int64_t)value);
  return tpj_py_raise(st);
}

/* set_eager_checks(enabled: bool): runtime checks in eager device programs. */
PyObject* tpj_py_set_eager_checks(PyObject* self, PyObject* arg) {
  int on = PyObject_IsTrue(arg);
  if (on < 0) return NULL;
  tpj_eager_set_checks_enabled(on != 0);
  Py_RETURN_NONE;
}

/* eager_defer_checks(checks: [(kind, message)], buffer: Buffer): a compiled
 * program over pjrt tensors hands its check result to the eager device's
 * pending list (takes the Buffer's device buffer), so it raises at the next
 * synchronization like an eager op, and no bytes move per call. */
PyObject* tpj_py_eager_defer_checks(PyObject* self, PyObject* args) {
  PyObject *list = NULL, *buf = NULL;
  if (!PyArg_ParseTuple(args, "OO!:eager_defer_checks", &list, &tpj_py_buffer_type, &buf)) {
    return NULL;
  }
  tpj_py_buffer_t* pb = (tpj_py_buffer_t*)buf;
  PyObject* fast = PySequence_Fast(list, "eager_defer_checks: checks must be a list");
  if (!fast) return NULL;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  tpj_check_t* checks = PyMem_Calloc(n + 1, sizeof(*checks));
  int rc = checks ? 0 : (PyErr_NoMemory(), -1);
  for (size_t i = 0; rc == 0 && i < n; ++i) {
    int kind = 0;
    if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i), "is", &kind,
                          &checks[i].message)) {
      rc = -1;
    }
    checks[i].kind = (tpj_check_kind_t)kind;
  }
  if (rc == 0 && (!pb->buffer || pb->keepalive || n == 0)) {
    rc = tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "eager_defer_checks: needs a live "
                                     "device Buffer and at least one check (got %zu)", n));
  }
  tpj_eager_checks_t* c = NULL;
  tpj_status_t st = rc == 0 ? tpj_eager_checks_create(checks, n, &c) : NULL;
  if (rc == 0 && !st) {
    tpj_buffer_t* b = pb->buffer;
    pb->buffer = NULL; /* the pending list owns it now */
    st = tpj_eager_checks_defer(c, b);
  }
  tpj_eager_checks_release(c);
  PyMem_Free(checks);
  Py_DECREF(fast);
  if (st) return tpj_py_raise(st);
  if (rc) return NULL;
  Py_RETURN_NONE;
}
