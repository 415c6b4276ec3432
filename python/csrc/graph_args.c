/* graph_args.c: decodes the Python argument encoding of Graph.lower (see
 * torch_pjrt/_aten.py) into tpj_arg_t records. All memory (arrays, strings)
 * comes from the caller's arena and lives exactly as long as the call. */
#include "tpj_py.h"

#include <string.h>

#include "tpj/lower.h"

static int bad_arg(const char* target, size_t index, const char* why, PyObject* obj) {
  return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                     "Graph.lower %s: argument %zu: %s (got %s)", target,
                                     index, why, obj ? Py_TYPE(obj)->tp_name : "nothing"));
}

/* Elements of a list as int64 (ints or bools); -1 on error. */
static int decode_ints(PyObject* seq, tpj_arena_t* arena, const char* target, size_t index,
                       tpj_arg_t* out) {
  PyObject* fast = PySequence_Fast(seq, "expected a list");
  if (!fast) return -1;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  int64_t* ints = tpj_arena_alloc(arena, sizeof(int64_t) * (n + 1));
  if (!ints) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i);
    if (!PyLong_Check(item)) {
      Py_DECREF(fast);
      return bad_arg(target, index, "list element is not an int", item);
    }
    long long v = PyLong_AsLongLong(item);
    if (v == -1 && PyErr_Occurred()) {
      Py_DECREF(fast);
      return -1;
    }
    ints[i] = (int64_t)v;
  }
  Py_DECREF(fast);
  out->ints = ints;
  out->count = n;
  return 0;
}

static int decode_floats(PyObject* seq, tpj_arena_t* arena, const char* target,
                         size_t index, tpj_arg_t* out) {
  PyObject* fast = PySequence_Fast(seq, "expected a list");
  if (!fast) return -1;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  double* floats = tpj_arena_alloc(arena, sizeof(double) * (n + 1));
  if (!floats) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i);
    if (!PyFloat_Check(item) && !PyLong_Check(item)) {
      Py_DECREF(fast);
      return bad_arg(target, index, "list element is not a number", item);
    }
    floats[i] = PyFloat_AsDouble(item);
    if (floats[i] == -1.0 && PyErr_Occurred()) {
      Py_DECREF(fast);
      return -1;
    }
  }
  Py_DECREF(fast);
  out->floats = floats;
  out->count = n;
  return 0;
}

static int decode_tensors(PyObject* seq, tpj_arena_t* arena, const char* target,
                          size_t index, tpj_arg_t* out) {
  PyObject* fast = PySequence_Fast(seq, "expected a list");
  if (!fast) return -1;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  tpj_value_t* values = tpj_arena_alloc(arena, sizeof(tpj_value_t) * (n + 1));
  if (!values) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    PyObject* item = PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i);
    if (item == Py_None) {
      values[i] = TPJ_VALUE_NONE;
      continue;
    }
    if (!PyLong_Check(item)) {
      Py_DECREF(fast);
      return bad_arg(target, index, "tensor list element is not an id or None", item);
    }
    long v = PyLong_AsLong(item);
    if (v == -1 && PyErr_Occurred()) {
      Py_DECREF(fast);
      return -1;
    }
    values[i] = (tpj_value_t)v;
  }
  Py_DECREF(fast);
  out->tensors = values;
  out->count = n;
  return 0;
}

/* A tagged tuple: ("tensor", id), ("tensors", [...]), ("dtype", code),
 * ("ints", [...]), ("floats", [...]), ("bools", [...]), ("other",). */
static int decode_tagged(PyObject* tup, tpj_arena_t* arena, const char* target,
                         size_t index, tpj_arg_t* out) {
  Py_ssize_t n = PyTuple_GET_SIZE(tup);
  const char* tag = n >= 1 && PyUnicode_Check(PyTuple_GET_ITEM(tup, 0))
                        ? PyUnicode_AsUTF8(PyTuple_GET_ITEM(tup, 0)) : NULL;
  if (!tag) {
    if (PyErr_Occurred()) return -1;
    return bad_arg(target, index, "tuple without a str tag", tup);
  }
  if (strcmp(tag, "other") == 0 && n == 1) {
    out->kind = TPJ_ARG_KIND_OTHER;
    return 0;
  }
  if (n != 2) return bad_arg(target, index, "tagged tuple must have 2 entries", tup);
  PyObject* payload = PyTuple_GET_ITEM(tup, 1);
  if (strcmp(tag, "tensor") == 0 || strcmp(tag, "dtype") == 0) {
    if (!PyLong_Check(payload)) return bad_arg(target, index, "expected an int payload",
                                               payload);
    long v = PyLong_AsLong(payload);
    if (v == -1 && PyErr_Occurred()) return -1;
    out->kind = tag[0] == 't' ? TPJ_ARG_KIND_TENSOR : TPJ_ARG_KIND_DTYPE;
    out->tensor = (tpj_value_t)v;
    out->i = v;
    if (out->kind == TPJ_ARG_KIND_DTYPE &&
        (v <= 0 || v >= TPJ_DTYPE_COUNT_ || tpj_dtype_size((tpj_dtype_t)v) == 0)) {
      return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                         "Graph.lower %s: argument %zu: bad dtype (got %ld)",
                                         target, index, v));
    }
    return 0;
  }
  if (strcmp(tag, "tensors") == 0) {
    out->kind = TPJ_ARG_KIND_TENSOR_LIST;
    return decode_tensors(payload, arena, target, index, out);
  }
  if (strcmp(tag, "ints") == 0 || strcmp(tag, "bools") == 0) {
    out->kind = tag[0] == 'i' ? TPJ_ARG_KIND_INT_LIST : TPJ_ARG_KIND_BOOL_LIST;
    return decode_ints(payload, arena, target, index, out);
  }
  if (strcmp(tag, "floats") == 0) {
    out->kind = TPJ_ARG_KIND_FLOAT_LIST;
    return decode_floats(payload, arena, target, index, out);
  }
  return tpj_py_raise_int(TPJ_STATUS(INVALID_ARGUMENT,
                                     "Graph.lower %s: argument %zu: unknown tag '%s'",
                                     target, index, tag));
}

static int decode_one(PyObject* obj, tpj_arena_t* arena, const char* target, size_t index,
                      tpj_arg_t* out) {
  memset(out, 0, sizeof(*out));
  out->tensor = TPJ_VALUE_NONE;
  if (obj == Py_None) {
    out->kind = TPJ_ARG_KIND_NONE;
  } else if (PyBool_Check(obj)) {
    out->kind = TPJ_ARG_KIND_BOOL;
    out->i = obj == Py_True;
  } else if (PyLong_Check(obj)) {
    out->kind = TPJ_ARG_KIND_INT;
    long long v = PyLong_AsLongLong(obj);
    if (v == -1 && PyErr_Occurred()) return -1;
    out->i = (int64_t)v;
  } else if (PyFloat_Check(obj)) {
    out->kind = TPJ_ARG_KIND_FLOAT;
    out->f = PyFloat_AS_DOUBLE(obj);
  } else if (PyUnicode_Check(obj)) {
    Py_ssize_t len = 0;
    const char* s = PyUnicode_AsUTF8AndSize(obj, &len);
    if (!s) return -1;
    out->kind = TPJ_ARG_KIND_STRING;
    out->str = tpj_arena_strdup(arena, s, (size_t)len);
    if (!out->str) return (PyErr_NoMemory(), -1);
  } else if (PyList_Check(obj)) {
    out->kind = TPJ_ARG_KIND_INT_LIST;
    return decode_ints(obj, arena, target, index, out);
  } else if (PyTuple_Check(obj)) {
    return decode_tagged(obj, arena, target, index, out);
  } else {
    return bad_arg(target, index, "unsupported argument encoding", obj);
  }
  return 0;
}

int tpj_py_decode_args(PyObject* list, const char* target, tpj_arena_t* arena,
                       tpj_arg_t** out_args, size_t* out_count) {
  PyObject* fast = PySequence_Fast(list, "Graph.lower: args must be a list");
  if (!fast) return -1;
  size_t n = (size_t)PySequence_Fast_GET_SIZE(fast);
  tpj_arg_t* args = tpj_arena_alloc(arena, sizeof(tpj_arg_t) * (n + 1));
  if (!args) {
    Py_DECREF(fast);
    PyErr_NoMemory();
    return -1;
  }
  for (size_t i = 0; i < n; ++i) {
    if (decode_one(PySequence_Fast_GET_ITEM(fast, (Py_ssize_t)i), arena, target, i,
                   &args[i]) < 0) {
      Py_DECREF(fast);
      return -1;
    }
  }
  Py_DECREF(fast);
  *out_args = args;
  *out_count = n;
  return 0;
}
