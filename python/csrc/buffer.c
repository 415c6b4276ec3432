/* buffer.c: torch_pjrt._C.Buffer (owns one device buffer) and
 * torch_pjrt._C.Executable (owns one compile-cache reference). Transfers and
 * executions run without the GIL; executions are awaited before returning so
 * every error surfaces at the call that caused it. */
#include "tpj_py.h"

#include <stdlib.h>

PyObject* tpj_py_buffer_wrap(PyObject* client, tpj_buffer_t* buffer, PyObject* keepalive) {
  tpj_py_buffer_t* self = PyObject_New(tpj_py_buffer_t, &tpj_py_buffer_type);
  if (!self) {
    tpj_buffer_destroy(buffer);
    return NULL;
  }
  self->buffer = buffer;
  Py_INCREF(client);
  self->client = client;
  Py_XINCREF(keepalive);
  self->keepalive = keepalive;
  return (PyObject*)self;
}

static void buffer_dealloc(tpj_py_buffer_t* self) {
  tpj_buffer_destroy(self->buffer);
  self->buffer = NULL;
  Py_XDECREF(self->keepalive);
  Py_XDECREF(self->client);
  PyObject_Free(self);
}

/* The live C buffer, or NULL with _C.Error set when deleted / donated. */
static tpj_buffer_t* live(tpj_py_buffer_t* self, const char* what) {
  if (self->buffer && !tpj_buffer_is_deleted(self->buffer)) return self->buffer;
  tpj_py_raise(TPJ_STATUS(FAILED_PRECONDITION, "Buffer.%s: buffer was deleted or donated",
                          what));
  return NULL;
}

static size_t buffer_nbytes_of(tpj_buffer_t* b) {
  size_t n = tpj_dtype_size(tpj_buffer_dtype(b));
  const int64_t* dims = tpj_buffer_dims(b);
  for (size_t i = 0; i < tpj_buffer_rank(b); ++i) n *= (size_t)dims[i];
  return n;
}

static PyObject* buffer_dtype(tpj_py_buffer_t* self, void* unused) {
  tpj_buffer_t* b = live(self, "dtype");
  return b ? PyLong_FromLong((long)tpj_buffer_dtype(b)) : NULL;
}

static PyObject* buffer_shape(tpj_py_buffer_t* self, void* unused) {
  tpj_buffer_t* b = live(self, "shape");
  return b ? tpj_py_dims_tuple(tpj_buffer_dims(b), tpj_buffer_rank(b)) : NULL;
}

static PyObject* buffer_device(tpj_py_buffer_t* self, void* unused) {
  tpj_buffer_t* b = live(self, "device");
  return b ? PyLong_FromSize_t(tpj_buffer_device_index(b)) : NULL;
}

static PyObject* buffer_nbytes(tpj_py_buffer_t* self, void* unused) {
  tpj_buffer_t* b = live(self, "nbytes");
  return b ? PyLong_FromSize_t(buffer_nbytes_of(b)) : NULL;
}

static PyObject* buffer_is_deleted(tpj_py_buffer_t* self, void* unused) {
  return PyBool_FromLong(!self->buffer || tpj_buffer_is_deleted(self->buffer));
}

static PyObject* buffer_to_host(tpj_py_buffer_t* self, PyObject* args) {
  unsigned long long ptr = 0;
  Py_ssize_t nbytes = 0;
  if (!PyArg_ParseTuple(args, "Kn:to_host", &ptr, &nbytes)) return NULL;
  tpj_buffer_t* b = live(self, "to_host");
  if (!b) return NULL;
  size_t want = buffer_nbytes_of(b);
  if (nbytes < 0 || (size_t)nbytes != want) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                                   "Buffer.to_host: size mismatch (got %zd bytes, expected "
                                   "%zu)", nbytes, want));
  }
  if (ptr == 0 && nbytes > 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "Buffer.to_host: null pointer"));
  }
  tpj_status_t s;
  uint64_t t0 = tpj_runtime_metrics_now_ns();
  Py_BEGIN_ALLOW_THREADS
  s = tpj_buffer_to_host(b, (void*)(uintptr_t)ptr, (size_t)nbytes);
  Py_END_ALLOW_THREADS
  uint64_t t1 = tpj_runtime_metrics_now_ns();
  tpj_runtime_metrics_add_d2h_ns(t1 - t0);
  if (s) return tpj_py_raise(s);
  tpj_runtime_metrics_add_bytes_d2h((uint64_t)nbytes);
  tpj_runtime_trace_copy(TPJ_TRACE_COPY_D2H, (uint64_t)nbytes, tpj_buffer_device_index(b), t0,
                         t1);
  Py_RETURN_NONE;
}

static PyObject* buffer_copy_to_device(tpj_py_buffer_t* self, PyObject* args) {
  Py_ssize_t index = 0;
  if (!PyArg_ParseTuple(args, "n:copy_to_device", &index)) return NULL;
  tpj_buffer_t* b = live(self, "copy_to_device");
  if (!b) return NULL;
  if (index < 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT,
                                   "Buffer.copy_to_device: bad device (got %zd)", index));
  }
  tpj_buffer_t* out = NULL;
  tpj_status_t s;
  Py_BEGIN_ALLOW_THREADS
  s = tpj_buffer_copy_to_device(b, (size_t)index, &out);
  Py_END_ALLOW_THREADS
  if (s) return tpj_py_raise(s);
  return tpj_py_buffer_wrap(self->client, out, NULL);
}

static PyObject* buffer_delete(tpj_py_buffer_t* self, PyObject* unused) {
  tpj_buffer_t* b = self->buffer;
  self->buffer = NULL;
  if (b) {
    Py_BEGIN_ALLOW_THREADS
    tpj_buffer_destroy(b);
    Py_END_ALLOW_THREADS
  }
  Py_CLEAR(self->keepalive);
  Py_RETURN_NONE;
}

static PyObject* buffer_repr(tpj_py_buffer_t* self) {
  if (!self->buffer || tpj_buffer_is_deleted(self->buffer)) {
    return PyUnicode_FromString("<torch_pjrt._C.Buffer deleted>");
  }
  tpj_type_t type;
  tpj_status_t s = tpj_type_init(tpj_buffer_dtype(self->buffer), tpj_buffer_dims(self->buffer),
                                 tpj_buffer_rank(self->buffer), &type);
  if (s) return tpj_py_raise(s);
  char text[256];
  tpj_type_format(&type, text, sizeof(text));
  return PyUnicode_FromFormat("<torch_pjrt._C.Buffer %s on device %zu>", text,
                              tpj_buffer_device_index(self->buffer));
}

static PyMethodDef buffer_methods[] = {
    {"to_host", (PyCFunction)buffer_to_host, METH_VARARGS,
     "to_host(ptr: int, nbytes: int): synchronous copy into host memory"},
    {"copy_to_device", (PyCFunction)buffer_copy_to_device, METH_VARARGS,
     "copy_to_device(index: int) -> Buffer"},
    {"delete", (PyCFunction)buffer_delete, METH_NOARGS, "frees the device memory now"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef buffer_getset[] = {
    {"dtype", (getter)buffer_dtype, NULL, "dtype code (tpj_dtype_t)", NULL},
    {"shape", (getter)buffer_shape, NULL, "dims as a tuple", NULL},
    {"device", (getter)buffer_device, NULL, "addressable device index", NULL},
    {"nbytes", (getter)buffer_nbytes, NULL, "dense host size in bytes", NULL},
    {"is_deleted", (getter)buffer_is_deleted, NULL, "deleted or donated", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject tpj_py_buffer_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "torch_pjrt._C.Buffer",
    .tp_basicsize = sizeof(tpj_py_buffer_t),
    .tp_dealloc = (destructor)buffer_dealloc,
    .tp_repr = (reprfunc)buffer_repr,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A device buffer; made by Client.buffer_from_host or Executable.execute.",
    .tp_methods = buffer_methods,
    .tp_getset = buffer_getset,
};

/* ------------------------------------------------------------ executable -- */

PyObject* tpj_py_executable_wrap(PyObject* client, tpj_cached_executable_t* handle) {
  tpj_py_executable_t* self = PyObject_New(tpj_py_executable_t, &tpj_py_executable_type);
  if (!self) {
    tpj_cached_executable_release(handle);
    return NULL;
  }
  self->handle = handle;
  Py_INCREF(client);
  self->client = client;
  return (PyObject*)self;
}

static void executable_dealloc(tpj_py_executable_t* self) {
  tpj_cached_executable_t* h = self->handle;
  self->handle = NULL;
  Py_BEGIN_ALLOW_THREADS
  tpj_cached_executable_release(h);
  Py_END_ALLOW_THREADS
  Py_XDECREF(self->client);
  PyObject_Free(self);
}

static PyObject* executable_num_outputs(tpj_py_executable_t* self, void* unused) {
  return PyLong_FromSize_t(tpj_executable_num_outputs(tpj_cached_executable_get(self->handle)));
}

static PyObject* executable_num_devices(tpj_py_executable_t* self, void* unused) {
  return PyLong_FromSize_t(tpj_executable_num_devices(tpj_cached_executable_get(self->handle)));
}

static PyObject* executable_cache_key(tpj_py_executable_t* self, void* unused) {
  return PyLong_FromUnsignedLongLong(tpj_cached_executable_key(self->handle));
}

/* Implemented in execute.c. */
PyObject* tpj_py_executable_execute(tpj_py_executable_t* self, PyObject* args,
                                    PyObject* kwargs);
PyObject* tpj_py_executable_execute_sharded(tpj_py_executable_t* self, PyObject* args);

/* The executable's bytes as the plugin serializes them (bytes). */
static PyObject* executable_serialize(tpj_py_executable_t* self, PyObject* unused) {
  uint8_t* bytes = NULL;
  size_t len = 0;
  tpj_status_t s;
  Py_BEGIN_ALLOW_THREADS
  s = tpj_executable_serialize(tpj_cached_executable_get(self->handle), &bytes, &len);
  Py_END_ALLOW_THREADS
  if (s) return tpj_py_raise(s);
  PyObject* out = PyBytes_FromStringAndSize((const char*)bytes, (Py_ssize_t)len);
  free(bytes);
  return out;
}

static PyMethodDef executable_methods[] = {
    {"serialize", (PyCFunction)executable_serialize, METH_NOARGS,
     "serialize() -> bytes: PJRT_Executable_Serialize (for this plugin build only)"},
    {"execute", (PyCFunction)(void (*)(void))tpj_py_executable_execute,
     METH_VARARGS | METH_KEYWORDS,
     "execute(args: list[Buffer], donate: list[bool] | None = None) -> list[Buffer]"},
    {"execute_sharded", (PyCFunction)tpj_py_executable_execute_sharded, METH_VARARGS,
     "execute_sharded(args: list[list[Buffer]]) -> list[list[Buffer]] (one per device)"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef executable_getset[] = {
    {"num_outputs", (getter)executable_num_outputs, NULL, "outputs per device", NULL},
    {"num_devices", (getter)executable_num_devices, NULL, "devices it runs on", NULL},
    {"cache_key", (getter)executable_cache_key, NULL, "64-bit compile-cache key", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject tpj_py_executable_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "torch_pjrt._C.Executable",
    .tp_basicsize = sizeof(tpj_py_executable_t),
    .tp_dealloc = (destructor)executable_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled program (from Client.compile, shared through the compile cache).",
    .tp_methods = executable_methods,
    .tp_getset = executable_getset,
};
