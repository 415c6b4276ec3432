/* kv_store.c: a Python key-value store (torch_pjrt.distributed's adaptor over
 * the c10d Store) as a tpj_kv_store_t, for Client(..., kv_store=obj). The
 * plugin calls it from its own threads, so each call takes the GIL. */
#include "tpj_py.h"

#include <stdlib.h>
#include <string.h>

/* The pending Python exception as a status (clears it): TimeoutError is
 * DEADLINE_EXCEEDED, KeyError NOT_FOUND, anything else UNKNOWN. */
static tpj_status_t exception_status(const char* what, const char* key, size_t key_size) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  tpj_status_code_t code = TPJ_STATUS_UNKNOWN;
  if (type && PyErr_GivenExceptionMatches(type, PyExc_TimeoutError)) {
    code = TPJ_STATUS_DEADLINE_EXCEEDED;
  } else if (type && PyErr_GivenExceptionMatches(type, PyExc_KeyError)) {
    code = TPJ_STATUS_NOT_FOUND;
  }
  PyObject* text = value ? PyObject_Str(value) : NULL;
  const char* msg = text ? PyUnicode_AsUTF8(text) : NULL;
  if (!msg) PyErr_Clear();
  tpj_status_t st = tpj_status_make(code, __FILE__, __LINE__,
                                    "key-value store %s of %.*s failed: %s", what,
                                    (int)key_size, key, msg ? msg : "(no message)");
  Py_XDECREF(text);
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  return st;
}

/* obj.get(key, timeout_ms) (timeout_ms >= 0) or obj.try_get(key) -> bytes,
 * copied into a malloc'ed value. */
static tpj_status_t call_get(void* user, const char* key, size_t key_size, int timeout_ms,
                             char** out_value, size_t* out_size) {
  PyGILState_STATE g = PyGILState_Ensure();
  const char* method = timeout_ms >= 0 ? "get" : "try_get";
  PyObject* r = timeout_ms >= 0
                    ? PyObject_CallMethod((PyObject*)user, method, "y#i", key,
                                          (Py_ssize_t)key_size, timeout_ms)
                    : PyObject_CallMethod((PyObject*)user, method, "y#", key,
                                          (Py_ssize_t)key_size);
  tpj_status_t st = NULL;
  char* data = NULL;
  Py_ssize_t n = 0;
  if (!r || PyBytes_AsStringAndSize(r, &data, &n) < 0) {
    st = exception_status(method, key, key_size);
  } else if (!(*out_value = (char*)malloc((size_t)n + 1))) {
    st = TPJ_STATUS(RESOURCE_EXHAUSTED, "key-value store: out of memory");
  } else {
    memcpy(*out_value, data, (size_t)n);
    (*out_value)[n] = 0;
    *out_size = (size_t)n;
  }
  Py_XDECREF(r);
  PyGILState_Release(g);
  return st;
}

static tpj_status_t py_get(void* user, const char* key, size_t key_size, int timeout_ms,
                           char** out_value, size_t* out_size) {
  return call_get(user, key, key_size, timeout_ms < 0 ? 0 : timeout_ms, out_value, out_size);
}

static tpj_status_t py_try_get(void* user, const char* key, size_t key_size, char** out_value,
                               size_t* out_size) {
  return call_get(user, key, key_size, -1, out_value, out_size);
}

static tpj_status_t py_put(void* user, const char* key, size_t key_size, const char* value,
                           size_t value_size) {
  PyGILState_STATE g = PyGILState_Ensure();
  PyObject* r = PyObject_CallMethod((PyObject*)user, "set", "y#y#", key, (Py_ssize_t)key_size,
                                    value, (Py_ssize_t)value_size);
  tpj_status_t st = r ? NULL : exception_status("set", key, key_size);
  Py_XDECREF(r);
  PyGILState_Release(g);
  return st;
}

static void py_release(void* user) {
  PyGILState_STATE g = PyGILState_Ensure();
  Py_DECREF((PyObject*)user);
  PyGILState_Release(g);
}

int tpj_py_kv_store_from(PyObject* obj, tpj_kv_store_t* out) {
  memset(out, 0, sizeof(*out));
  if (!PyObject_HasAttrString(obj, "get") || !PyObject_HasAttrString(obj, "set")) {
    return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                       "Client: kv_store needs get(key, timeout_ms) and "
                                       "set(key, value) (got %s)", Py_TYPE(obj)->tp_name));
  }
  Py_INCREF(obj);
  out->user = obj;
  out->get = py_get;
  out->put = py_put;
  out->try_get = PyObject_HasAttrString(obj, "try_get") ? py_try_get : NULL;
  out->release = py_release;
  return 0;
}
