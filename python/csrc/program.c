/* program.c: torch_pjrt._C.Program, the binding of tpj_program_t
 * (tpj/program.h): how Python launches a compiled graph, on host tensors'
 * buffers or on eager pjrt storages. The plan is parsed once; a call parses
 * its values, then runs tpj_program_run without the GIL. */
#include "tpj_py.h"

#include <stdlib.h>
#include <string.h>

#include "tpj/program.h"

typedef struct {
  PyObject_HEAD
  tpj_program_t* program;         /* one reference */
  PyObject* client;               /* strong */
  tpj_program_input_t* inputs;    /* (num_inputs) kinds and dtypes (constants not kept) */
  size_t num_inputs, num_results;
} tpj_py_program_t;

static void program_dealloc(tpj_py_program_t* self) {
  tpj_program_release(self->program);
  free(self->inputs);
  Py_XDECREF(self->client);
  Py_TYPE(self)->tp_free((PyObject*)self);
}

/* Takes the device buffer out of a Buffer (a constant the program keeps). */
static tpj_buffer_t* take_buffer(PyObject* obj, size_t i) {
  if (!PyObject_TypeCheck(obj, &tpj_py_buffer_type) || !((tpj_py_buffer_t*)obj)->buffer ||
      ((tpj_py_buffer_t*)obj)->keepalive) {
    tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "Program: constant input %zu must be a live "
                            "Buffer that owns its memory (got %s)", i, Py_TYPE(obj)->tp_name));
    return NULL;
  }
  tpj_buffer_t* b = ((tpj_py_buffer_t*)obj)->buffer;
  ((tpj_py_buffer_t*)obj)->buffer = NULL;
  return b;
}

/* One plan entry: "buffer", "donate", "seed", ("storage", dtype),
 * ("host", dtype, shape) or ("constant", Buffer). */
static int parse_input(PyObject* e, size_t i, tpj_program_input_t* out) {
  memset(out, 0, sizeof(*out));
  const char* kind = PyUnicode_Check(e) ? PyUnicode_AsUTF8(e) : NULL;
  if (PyTuple_Check(e) && PyTuple_GET_SIZE(e) >= 2 && PyUnicode_Check(PyTuple_GET_ITEM(e, 0))) {
    kind = PyUnicode_AsUTF8(PyTuple_GET_ITEM(e, 0));
  }
  if (!kind) {
    return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "Program: plan entry %zu is not a "
                                       "kind (got %s)", i, Py_TYPE(e)->tp_name));
  }
  bool tuple = PyTuple_Check(e);
  if (!tuple && !strcmp(kind, "buffer")) return 0;
  if (!tuple && !strcmp(kind, "donate")) return (out->donate = true), 0;
  if (!tuple && !strcmp(kind, "seed")) return (out->kind = TPJ_PROGRAM_INPUT_SEED), 0;
  if (tuple && !strcmp(kind, "constant") && PyTuple_GET_SIZE(e) == 2) {
    out->kind = TPJ_PROGRAM_INPUT_CONSTANT;
    out->constant = take_buffer(PyTuple_GET_ITEM(e, 1), i);
    return out->constant ? 0 : -1;
  }
  if (tuple && !strcmp(kind, "storage") && PyTuple_GET_SIZE(e) == 2) {
    out->kind = TPJ_PROGRAM_INPUT_STORAGE;
    out->dtype = (tpj_dtype_t)PyLong_AsLong(PyTuple_GET_ITEM(e, 1));
    return PyErr_Occurred() ? -1 : 0;
  }
  if (tuple && !strcmp(kind, "host") && PyTuple_GET_SIZE(e) == 3) {
    size_t rank = 0;
    out->kind = TPJ_PROGRAM_INPUT_HOST;
    out->dtype = (tpj_dtype_t)PyLong_AsLong(PyTuple_GET_ITEM(e, 1));
    if (PyErr_Occurred() ||
        tpj_py_parse_dims(PyTuple_GET_ITEM(e, 2), out->dims, &rank, "Program") < 0) {
      return -1;
    }
    out->rank = (int32_t)rank;
    return 0;
  }
  return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "Program: plan entry %zu has an "
                                     "unknown kind (got %s, expected buffer, donate, seed, "
                                     "storage, host or constant)", i, kind));
}

/* Parses checks [(kind, message)] into out (n entries; messages borrowed). */
static int parse_checks(PyObject* fast, tpj_check_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    int kind = 0;
    if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i), "is:Program check",
                          &kind, &out[i].message)) {
      return -1;
    }
    out[i].kind = (tpj_check_kind_t)kind;
  }
  return 0;
}

static int program_create(tpj_py_program_t* self, tpj_py_executable_t* exe, PyObject* plan,
                          PyObject* checks, const char* name) {
  size_t ni = (size_t)PySequence_Fast_GET_SIZE(plan), nc = (size_t)PySequence_Fast_GET_SIZE(checks);
  tpj_check_t* cs = calloc(nc + 1, sizeof(*cs));
  self->inputs = calloc(ni + 1, sizeof(*self->inputs));
  int rc = cs && self->inputs ? 0 : (PyErr_NoMemory(), -1);
  size_t parsed = 0;
  for (; rc == 0 && parsed < ni; ++parsed) {
    rc = parse_input(PySequence_Fast_GET_ITEM(plan, (Py_ssize_t)parsed), parsed,
                     &self->inputs[parsed]);
  }
  if (rc == 0) rc = parse_checks(checks, cs, nc);
  if (rc == 0) {
    tpj_program_plan_t p = {name, self->inputs, ni, cs, nc};
    tpj_status_t st = tpj_program_create(exe->handle, &p, &self->program); /* takes constants */
    if (st) rc = tpj_py_raise_int(st);
  } else {
    for (size_t i = 0; i < parsed; ++i) tpj_buffer_destroy(self->inputs[i].constant);
  }
  for (size_t i = 0; self->inputs && i < ni; ++i) self->inputs[i].constant = NULL;
  free(cs);
  if (rc == 0) {
    self->num_inputs = ni;
    self->num_results = tpj_program_num_results(self->program);
    Py_INCREF(exe->client);
    self->client = exe->client;
  }
  return rc;
}

static int program_init(tpj_py_program_t* self, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {"executable", "plan", "checks", "name", NULL};
  PyObject *exe = NULL, *plan = NULL, *checks = NULL;
  const char* name = "program";
  if (self->program) {
    return tpj_py_raise_int(TPJ_STATUS(FAILED_PRECONDITION, "Program: already initialized"));
  }
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O|Os:Program", kwlist,
                                   &tpj_py_executable_type, &exe, &plan, &checks, &name)) {
    return -1;
  }
  PyObject* fp = PySequence_Fast(plan, "Program: plan must be a list");
  PyObject* fc = NULL;
  if (fp) {
    fc = checks && checks != Py_None ? PySequence_Fast(checks, "Program: checks must be a list")
                                     : PyList_New(0);
  }
  int rc = fp && fc ? program_create(self, (tpj_py_executable_t*)exe, fp, fc, name) : -1;
  Py_XDECREF(fp);
  Py_XDECREF(fc);
  return rc;
}

/* ------------------------------------------------------------------ run -- */

static tpj_buffer_t* arg_buffer(tpj_py_program_t* self, PyObject* obj, size_t i) {
  if (!PyObject_TypeCheck(obj, &tpj_py_buffer_type)) {
    tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "Program.run: argument %zu is not a Buffer "
                            "(got %s)", i, Py_TYPE(obj)->tp_name));
    return NULL;
  }
  tpj_py_buffer_t* b = (tpj_py_buffer_t*)obj;
  if (!b->buffer || tpj_buffer_is_deleted(b->buffer) || b->client != self->client) {
    tpj_py_raise(TPJ_STATUS(FAILED_PRECONDITION, "Program.run: argument %zu was deleted, "
                            "donated or belongs to another client", i));
    return NULL;
  }
  return b->buffer;
}

/* A storage argument: a handle (the whole storage, read as the plan's dtype)
 * or (handle, sizes, strides, offset) for a view. */
static int arg_storage(tpj_py_program_t* self, PyObject* obj, size_t i, tpj_eager_tensor_t* v) {
  PyObject *h = obj, *sizes = NULL, *strides = NULL;
  long long offset = 0;
  if (PyTuple_Check(obj) && !PyArg_ParseTuple(obj, "OOOL:Program.run storage view", &h, &sizes,
                                              &strides, &offset)) {
    return -1;
  }
  v->storage = (tpj_eager_storage_t*)PyLong_AsVoidPtr(h);
  v->dtype = self->inputs[i].dtype;
  if (!v->storage) {
    return PyErr_Occurred() ? -1 : tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "Program.run: "
                                                    "argument %zu is a null storage", i));
  }
  size_t item = tpj_dtype_size(v->dtype), rank = 0, srank = 0;
  if (!sizes) {
    v->rank = 1;
    v->sizes[0] = item ? (int64_t)(tpj_eager_storage_nbytes(v->storage) / item) : 0;
    v->strides[0] = 1;
    return 0;
  }
  if (tpj_py_parse_dims(sizes, v->sizes, &rank, "Program.run") < 0 ||
      tpj_py_parse_dims(strides, v->strides, &srank, "Program.run") < 0) {
    return -1;
  }
  if (rank != srank || offset < 0) {
    return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "Program.run: argument %zu is a bad "
                                       "view (rank %zu, %zu strides, offset %lld)", i, rank,
                                       srank, offset));
  }
  v->rank = (int32_t)rank;
  v->offset = offset;
  return 0;
}

static int parse_arg(tpj_py_program_t* self, PyObject* obj, size_t i, tpj_program_arg_t* a) {
  switch (self->inputs[i].kind) {
    case TPJ_PROGRAM_INPUT_BUFFER:
      a->buffer = arg_buffer(self, obj, i);
      return a->buffer ? 0 : -1;
    case TPJ_PROGRAM_INPUT_STORAGE: return arg_storage(self, obj, i, &a->view);
    case TPJ_PROGRAM_INPUT_CONSTANT: return 0;
    case TPJ_PROGRAM_INPUT_SEED: {
      unsigned long long w0 = 0, w1 = 0;
      if (!PyArg_ParseTuple(obj, "KK:Program.run seed", &w0, &w1)) return -1;
      a->seed[0] = w0;
      a->seed[1] = w1;
      return 0;
    }
    case TPJ_PROGRAM_INPUT_HOST: {
      unsigned long long ptr = 0;
      if (!PyArg_Parse(obj, "K:Program.run host", &ptr)) return -1;
      a->host = (const void*)(uintptr_t)ptr;
      return 0;
    }
  }
  return tpj_py_raise_int(TPJ_STATUS(INTERNAL, "Program.run: input %zu has kind %d", i,
                                     (int)self->inputs[i].kind));
}

/* One result destination: None (a Buffer comes back), a storage handle
 * (installed) or (ptr, nbytes) (copied there; the Buffer comes back too). */
static int parse_result(PyObject* obj, size_t k, tpj_program_result_t* r) {
  if (obj == Py_None) return 0;
  if (PyLong_Check(obj)) {
    r->storage = (tpj_eager_storage_t*)PyLong_AsVoidPtr(obj);
    return r->storage ? 0 : PyErr_Occurred() ? -1 : tpj_py_raise_int(TPJ_STATUS(
        INVALID_ARGUMENT, "Program.run: result %zu goes to a null storage", k));
  }
  unsigned long long ptr = 0;
  Py_ssize_t nbytes = 0;
  if (!PyArg_ParseTuple(obj, "Kn:Program.run result", &ptr, &nbytes)) return -1;
  if (nbytes < 0 || (ptr == 0 && nbytes > 0)) {
    return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "Program.run: bad host destination "
                                       "for result %zu (got %zd bytes)", k, nbytes));
  }
  r->host = (void*)(uintptr_t)ptr;
  r->host_nbytes = (size_t)nbytes;
  r->keep = true;
  return 0;
}

/* The results as a list: a Buffer per returned buffer, None per install. */
static PyObject* wrap_results(tpj_py_program_t* self, tpj_program_result_t* res, size_t n) {
  PyObject* out = PyList_New((Py_ssize_t)n);
  for (size_t k = 0; k < n; ++k) {
    tpj_buffer_t* b = res[k].buffer;
    res[k].buffer = NULL;
    if (!out) {
      tpj_buffer_destroy(b);
      continue;
    }
    PyObject* w = b ? tpj_py_buffer_wrap(self->client, b, NULL) : Py_NewRef(Py_None);
    if (!w) Py_CLEAR(out);
    else PyList_SET_ITEM(out, (Py_ssize_t)k, w);
  }
  return out;
}

static int parse_call(tpj_py_program_t* self, PyObject* fa, PyObject* fr,
                      tpj_program_arg_t* args, tpj_program_result_t* res) {
  size_t na = (size_t)PySequence_Fast_GET_SIZE(fa);
  size_t nr = fr ? (size_t)PySequence_Fast_GET_SIZE(fr) : self->num_results;
  if (na != self->num_inputs || nr != self->num_results) {
    return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT, "Program.run: wrong argument or "
                                       "result count (got %zu and %zu, expected %zu and %zu)",
                                       na, nr, self->num_inputs, self->num_results));
  }
  for (size_t i = 0; i < na; ++i) {
    if (parse_arg(self, PySequence_Fast_GET_ITEM(fa, (Py_ssize_t)i), i, &args[i]) < 0) return -1;
  }
  for (size_t k = 0; fr && k < nr; ++k) {
    if (parse_result(PySequence_Fast_GET_ITEM(fr, (Py_ssize_t)k), k, &res[k]) < 0) return -1;
  }
  return 0;
}

static PyObject* program_run(tpj_py_program_t* self, PyObject* args, PyObject* kwargs) {
  static char* kwlist[] = {"args", "results", "device", "wait", NULL};
  PyObject *list = NULL, *results = Py_None;
  Py_ssize_t device = 0;
  int wait = 1;
  if (!self->program) {
    return tpj_py_raise(TPJ_STATUS(FAILED_PRECONDITION, "Program.run: not initialized"));
  }
  if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O|Onp:run", kwlist, &list, &results, &device,
                                   &wait)) {
    return NULL;
  }
  if (device < 0) {
    return tpj_py_raise(TPJ_STATUS(INVALID_ARGUMENT, "Program.run: bad device (got %zd)", device));
  }
  PyObject* fa = PySequence_Fast(list, "Program.run: args must be a list");
  PyObject* fr = fa && results != Py_None
                     ? PySequence_Fast(results, "Program.run: results must be a list") : NULL;
  tpj_program_arg_t* a = calloc(self->num_inputs + 1, sizeof(*a));
  tpj_program_result_t* r = calloc(self->num_results + 1, sizeof(*r));
  PyObject* out = NULL;
  if (!a || !r) {
    PyErr_NoMemory();
  } else if (fa && (fr || results == Py_None) && parse_call(self, fa, fr, a, r) == 0) {
    tpj_program_call_t call = {a, 1, (size_t)device, r, wait != 0};
    tpj_status_t st;
    Py_BEGIN_ALLOW_THREADS
    st = tpj_program_run(self->program, &call);
    Py_END_ALLOW_THREADS
    out = st ? tpj_py_raise(st) : wrap_results(self, r, self->num_results);
  }
  free(a);
  free(r);
  Py_XDECREF(fa);
  Py_XDECREF(fr);
  return out;
}

static PyObject* program_num_results(tpj_py_program_t* self, void* unused) {
  return PyLong_FromSize_t(self->num_results);
}

static PyObject* program_num_inputs(tpj_py_program_t* self, void* unused) {
  return PyLong_FromSize_t(self->num_inputs);
}

static PyObject* program_name(tpj_py_program_t* self, void* unused) {
  return self->program ? PyUnicode_FromString(tpj_program_name(self->program)) : Py_NewRef(Py_None);
}

static PyMethodDef program_methods[] = {
    {"run", (PyCFunction)(void (*)(void))program_run, METH_VARARGS | METH_KEYWORDS,
     "run(args: list, results: list | None = None, device: int = 0, wait: bool = True) -> "
     "list[Buffer | None]. args[i] per plan kind: a Buffer (buffer, donate), a storage "
     "handle or (handle, sizes, strides, offset) (storage), a host pointer (host), None "
     "(constant), (word0, word1) (seed). results[k]: None -> a Buffer, a storage handle -> "
     "installed (None), (ptr, nbytes) -> copied to host (the Buffer too). wait=False "
     "returns once launched (tracked in flight; checks raise at the next sync)."},
    {NULL, NULL, 0, NULL},
};

static PyObject* program_handle(tpj_py_program_t* self, void* unused) {
  return PyLong_FromVoidPtr(self->program);
}

static PyObject* program_client(tpj_py_program_t* self, void* unused) {
  return Py_NewRef(self->client ? self->client : Py_None);
}

static PyGetSetDef program_getset[] = {
    {"client", (getter)program_client, NULL, "the executable's _C.Client", NULL},
    {"handle", (getter)program_handle, NULL,
     "the tpj_program_t* (borrowed: valid while this object lives), for the C++ layer", NULL},
    {"num_results", (getter)program_num_results, NULL, "results per call", NULL},
    {"num_inputs", (getter)program_num_inputs, NULL, "parameters", NULL},
    {"name", (getter)program_name, NULL, "trace and error name", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject tpj_py_program_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "torch_pjrt._C.Program",
    .tp_basicsize = sizeof(tpj_py_program_t),
    .tp_dealloc = (destructor)program_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Program(executable, plan: list, checks: list[(kind, message)] = [], name: str = "
              "'program'): a compiled program and where each parameter comes from (plan "
              "entries: 'buffer', 'donate', 'seed', ('storage', dtype), ('host', dtype, "
              "shape), ('constant', Buffer), which it takes).",
    .tp_methods = program_methods,
    .tp_getset = program_getset,
    .tp_init = (initproc)program_init,
    .tp_new = PyType_GenericNew,
};
