/* checks.c: runtime checks (tpj/ir.h) on the Python side. _C.IndexError is
 * both a _C.Error and a builtin IndexError (tpj_py_raise uses it for
 * OUT_OF_RANGE, which a failed index check of any program returns), and
 * set_eager_checks() switches the eager device's checks
 * (torch_pjrt.config.check_indices). A compiled program's checks are part of
 * its _C.Program (program.c). */
#include "tpj_py.h"

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

/* set_eager_checks(enabled: bool): runtime checks in eager device programs. */
PyObject* tpj_py_set_eager_checks(PyObject* self, PyObject* arg) {
  int on = PyObject_IsTrue(arg);
  if (on < 0) return NULL;
  tpj_eager_set_checks_enabled(on != 0);
  Py_RETURN_NONE;
}
