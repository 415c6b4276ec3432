/* tpj_py.h: shared declarations of the torch_pjrt._C extension (internal).
 * The extension is thin glue: Python objects own C handles, every C status
 * becomes a torch_pjrt._C.Error, and slow calls run without the GIL. */
#ifndef TPJ_PY_H_
#define TPJ_PY_H_

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include "tpj/base.h"
#include "tpj/ir.h"
#include "tpj/pjrt.h"
#include "tpj/runtime.h"

/* torch_pjrt._C.Error (a RuntimeError subclass with a `.code` attribute). */
extern PyObject* tpj_py_error_type;
/* torch_pjrt._C.IndexError (an Error and an IndexError), for OUT_OF_RANGE. */
extern PyObject* tpj_py_index_error_type;

/* Raises status as _C.Error (consumes it) and returns NULL. */
PyObject* tpj_py_raise(tpj_status_t status);
/* Same, returning -1 (for int-returning CPython slots). */
int tpj_py_raise_int(tpj_status_t status);

typedef struct {
  PyObject_HEAD
  tpj_client_t* client; /* owned */
} tpj_py_client_t;

typedef struct {
  PyObject_HEAD
  tpj_buffer_t* buffer; /* owned; NULL after delete() */
  PyObject* client;     /* strong: the client outlives its buffers */
  PyObject* keepalive;  /* strong or NULL: host memory of a zero-copy buffer */
} tpj_py_buffer_t;

typedef struct {
  PyObject_HEAD
  tpj_cached_executable_t* handle; /* one reference owned */
  PyObject* client;                /* strong */
} tpj_py_executable_t;

extern PyTypeObject tpj_py_client_type;
extern PyTypeObject tpj_py_buffer_type;
extern PyTypeObject tpj_py_executable_type;
extern PyTypeObject tpj_py_graph_type;
extern PyTypeObject tpj_py_program_type;
extern PyTypeObject tpj_py_model_type;      /* model.c */
extern PyTypeObject tpj_py_host_array_type;

/* Wraps a C buffer (takes ownership; destroys it on failure). */
PyObject* tpj_py_buffer_wrap(PyObject* client, tpj_buffer_t* buffer, PyObject* keepalive);
/* Wraps a compile-cache handle (takes the reference; releases it on failure). */
PyObject* tpj_py_executable_wrap(PyObject* client, tpj_cached_executable_t* handle);

/* Parses a tuple/list of non-negative ints into dims; -1 with an exception set. */
int tpj_py_parse_dims(PyObject* seq, int64_t* out_dims, size_t* out_rank,
                      const char* what);
/* kv_store.c: a Python object with get(key: bytes, timeout_ms) -> bytes,
 * set(key, value) and optionally try_get(key) as a store (holds a reference,
 * dropped by out->release); -1 with an exception set. */
int tpj_py_kv_store_from(PyObject* obj, tpj_kv_store_t* out);
/* (d0, d1, ...) as a new tuple. */
PyObject* tpj_py_dims_tuple(const int64_t* dims, size_t rank);

#endif /* TPJ_PY_H_ */
