/* model.c (binding): torch_pjrt._C.Model, a loaded .tpj artifact
 * (include/tpj/model.h), so torch_pjrt.export.load runs the very loader and
 * runner tpj-run does; and _C.HostArray, the library-allocated result bytes,
 * handed to torch without a copy through the buffer protocol. */
#include "tpj_py.h"

#include "tpj/model.h"

typedef struct {
  PyObject_HEAD
  tpj_model_t* model; /* owned */
  PyObject* client;   /* strong: the client outlives the model */
} tpj_py_model_t;

typedef struct {
  PyObject_HEAD
  tpj_host_tensor_t tensor; /* owned data */
  Py_ssize_t exports;
} tpj_py_host_array_t;

/* ------------------------------------------------------------- HostArray -- */

static void host_array_dealloc(tpj_py_host_array_t* self) {
  tpj_host_tensor_free(&self->tensor);
  Py_TYPE(self)->tp_free((PyObject*)self);
}

static int host_array_getbuffer(tpj_py_host_array_t* self, Py_buffer* view, int flags) {
  static char empty;
  void* data = self->tensor.data ? self->tensor.data : &empty;
  if (PyBuffer_FillInfo(view, (PyObject*)self, data, (Py_ssize_t)self->tensor.nbytes, 1,
                        flags) < 0) {
    return -1;
  }
  ++self->exports;
  return 0;
}

static void host_array_releasebuffer(tpj_py_host_array_t* self, Py_buffer* view) {
  --self->exports;
}

static PyBufferProcs host_array_as_buffer = {
    .bf_getbuffer = (getbufferproc)host_array_getbuffer,
    .bf_releasebuffer = (releasebufferproc)host_array_releasebuffer,
};

PyTypeObject tpj_py_host_array_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "torch_pjrt._C.HostArray",
    .tp_basicsize = sizeof(tpj_py_host_array_t),
    .tp_dealloc = (destructor)host_array_dealloc,
    .tp_as_buffer = &host_array_as_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Read-only result bytes of Model.run (buffer protocol).",
};

/* (HostArray, dtype code, shape), taking t's data. */
static PyObject* host_array_wrap(tpj_host_tensor_t* t) {
  tpj_py_host_array_t* a = PyObject_New(tpj_py_host_array_t, &tpj_py_host_array_type);
  if (!a) {
    tpj_host_tensor_free(t);
    return NULL;
  }
  a->tensor = *t;
  a->exports = 0;
  memset(t, 0, sizeof(*t));
  PyObject* shape = tpj_py_dims_tuple(a->tensor.dims, (size_t)a->tensor.rank);
  if (!shape) {
    Py_DECREF(a);
    return NULL;
  }
  return Py_BuildValue("(NiN)", (PyObject*)a, (int)a->tensor.dtype, shape);
}

/* ----------------------------------------------------------------- Model -- */

static PyObject* model_new(PyTypeObject* type, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {"client", "path", NULL};
  PyObject* client = NULL;
  const char* path = NULL;
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!s:Model", kwlist, &tpj_py_client_type,
                                   &client, &path)) {
    return NULL;
  }
  tpj_model_t* model = NULL;
  tpj_status_t s;
  Py_BEGIN_ALLOW_THREADS
  s = tpj_model_load(((tpj_py_client_t*)client)->client, path, &model);
  Py_END_ALLOW_THREADS
  if (s) return tpj_py_raise(s);
  tpj_py_model_t* self = (tpj_py_model_t*)type->tp_alloc(type, 0);
  if (!self) {
    tpj_model_release(model);
    return NULL;
  }
  self->model = model;
  Py_INCREF(client);
  self->client = client;
  return (PyObject*)self;
}

static void model_dealloc(tpj_py_model_t* self) {
  tpj_model_release(self->model);
  Py_XDECREF(self->client);
  Py_TYPE(self)->tp_free((PyObject*)self);
}

/* One (data_ptr, nbytes, dtype code, shape) input. */
static int parse_input(PyObject* item, size_t index, tpj_host_tensor_t* out) {
  unsigned long long ptr = 0;
  Py_ssize_t nbytes = 0;
  int dtype = 0;
  PyObject* shape = NULL;
  if (!PyArg_ParseTuple(item, "KniO", &ptr, &nbytes, &dtype, &shape)) return -1;
  size_t rank = 0;
  if (tpj_py_parse_dims(shape, out->dims, &rank, "Model.run") < 0) return -1;
  if (nbytes < 0 || (nbytes > 0 && ptr == 0)) {
    PyErr_Format(PyExc_ValueError, "Model.run: input %zu: bad data (got pointer 0x%llx, %zd "
                 "bytes)", index, ptr, nbytes);
    return -1;
  }
  out->dtype = (tpj_dtype_t)dtype;
  out->rank = (int32_t)rank;
  out->data = (void*)(uintptr_t)ptr;
  out->nbytes = (size_t)nbytes;
  return 0;
}

static PyObject* model_outputs_list(tpj_host_tensor_t* outs, size_t n) {
  PyObject* list = PyList_New((Py_ssize_t)n);
  for (size_t i = 0; i < n; ++i) {
    PyObject* item = list ? host_array_wrap(&outs[i]) : NULL;
    if (!item) {
      for (size_t j = i; j < n; ++j) tpj_host_tensor_free(&outs[j]);
      Py_XDECREF(list);
      return NULL;
    }
    PyList_SET_ITEM(list, (Py_ssize_t)i, item);
  }
  return list;
}

static PyObject* model_run(tpj_py_model_t* self, PyObject* arg) {
  PyObject* seq = PySequence_Fast(arg, "Model.run: expected a list of inputs");
  if (!seq) return NULL;
  size_t n_in = (size_t)PySequence_Fast_GET_SIZE(seq);
  size_t n_out = tpj_model_num_outputs(self->model);
  tpj_host_tensor_t* ins = calloc(n_in ? n_in : 1, sizeof(*ins));
  tpj_host_tensor_t* outs = calloc(n_out ? n_out : 1, sizeof(*outs));
  PyObject* result = NULL;
  if (!ins || !outs) {
    PyErr_NoMemory();
    goto done;
  }
  for (size_t i = 0; i < n_in; ++i) {
    if (parse_input(PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)i), i, &ins[i]) < 0) goto done;
  }
  tpj_status_t s;
  Py_BEGIN_ALLOW_THREADS
  s = tpj_model_run(self->model, ins, n_in, outs, n_out);
  Py_END_ALLOW_THREADS
  if (s) {
    tpj_py_raise(s);
    goto done;
  }
  result = model_outputs_list(outs, n_out);
done:
  Py_DECREF(seq);
  free(ins);
  free(outs);
  return result;
}

static PyObject* model_get_manifest(tpj_py_model_t* self, void* closure) {
  return PyUnicode_FromString(tpj_model_manifest(self->model));
}

static PyObject* model_get_buckets(tpj_py_model_t* self, void* closure) {
  size_t n = tpj_model_num_buckets(self->model);
  PyObject* t = PyTuple_New((Py_ssize_t)n);
  for (size_t i = 0; t && i < n; ++i) {
    PyTuple_SET_ITEM(t, (Py_ssize_t)i, PyLong_FromLongLong(tpj_model_bucket(self->model, i)));
  }
  return t;
}

static PyObject* model_get_deserialized(tpj_py_model_t* self, void* closure) {
  return PyLong_FromSize_t(tpj_model_num_deserialized(self->model));
}

static PyMethodDef model_methods[] = {
    {"run", (PyCFunction)model_run, METH_O,
     "run([(data_ptr, nbytes, dtype, shape), ...]) -> [(HostArray, dtype, shape), ...]"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef model_getset[] = {
    {"manifest", (getter)model_get_manifest, NULL, "the manifest's JSON text", NULL},
    {"buckets", (getter)model_get_buckets, NULL, "the symbol values with a program", NULL},
    {"num_deserialized", (getter)model_get_deserialized, NULL,
     "programs loaded from serialized executables (not compiled)", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject tpj_py_model_type = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "torch_pjrt._C.Model",
    .tp_basicsize = sizeof(tpj_py_model_t),
    .tp_dealloc = (destructor)model_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Model(client, path): a .tpj artifact loaded for a client (docs/artifact.md).",
    .tp_methods = model_methods,
    .tp_getset = model_getset,
    .tp_new = model_new,
};
