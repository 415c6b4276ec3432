/* Unit tests of the shape/indexing lowerings at the graph level: each call
 * produces the expected result type, the graph verifies and emits, and the
 * static-argument errors carry the op name, the code and the offending value.
 * Numerics are compared against PyTorch in tests/python/test_ops_shape.py. */
#include <stdlib.h>
#include <string.h>

#include "tpj/emit.h"
#include "tpj/lower.h"
#include "tpj_test.h"

static tpj_arg_t a_tensor(tpj_value_t v) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_TENSOR;
  a.tensor = v;
  return a;
}
static tpj_arg_t a_int(int64_t i) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_INT;
  a.i = i;
  return a;
}
static tpj_arg_t a_bool(int b) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_BOOL;
  a.i = b;
  return a;
}
static tpj_arg_t a_none(void) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_NONE;
  return a;
}
static tpj_arg_t a_ints(const int64_t* v, size_t n) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_INT_LIST;
  a.ints = v;
  a.count = n;
  return a;
}
static tpj_arg_t a_tensors(const tpj_value_t* v, size_t n) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_TENSOR_LIST;
  a.tensors = v;
  a.count = n;
  return a;
}
static tpj_arg_t a_str(const char* s) {
  tpj_arg_t a = {0};
  a.kind = TPJ_ARG_KIND_STRING;
  a.str = s;
  return a;
}

static tpj_type_t ty(tpj_dtype_t dtype, int rank, int64_t d0, int64_t d1, int64_t d2) {
  tpj_type_t t = tpj_type_scalar(dtype);
  t.rank = rank;
  t.dims[0] = d0;
  t.dims[1] = d1;
  t.dims[2] = d2;
  return t;
}

static tpj_value_t param(tpj_graph_t* g, tpj_type_t t) {
  tpj_value_t v = TPJ_VALUE_NONE;
  tpj_status_t s = tpj_graph_add_param(g, &t, &v);
  tpj_status_free(s);
  return v;
}

/* Lowers one call; returns the status code and, when OK, checks out type. */
static tpj_status_code_t lower1(tpj_graph_t* g, const char* target, tpj_arg_t* args,
                                size_t n, tpj_type_t out_type, tpj_value_t* out,
                                const char* must_contain) {
  tpj_lower_call_t call = {target, args, n, &out_type, 1};
  *out = TPJ_VALUE_NONE;
  tpj_status_t s = tpj_lower_call(g, &call, out);
  tpj_status_code_t code = tpj_status_code(s);
  if (s && must_contain && !strstr(tpj_status_message(s), must_contain)) {
    fprintf(stderr, "  %s: message lacks '%s': %s\n", target, must_contain,
            tpj_status_message(s));
    code = TPJ_STATUS_UNKNOWN;
  }
  if (s && !must_contain) fprintf(stderr, "  %s: %s\n", target, tpj_status_message(s));
  tpj_status_free(s);
  return code;
}

TPJ_TEST(shape_ops_build_verify_emit) {
  tpj_graph_t* g = NULL;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_value_t x = param(g, ty(TPJ_DTYPE_F32, 3, 5, 6, 7));
  tpj_value_t i2 = param(g, ty(TPJ_DTYPE_S64, 2, 2, 3, 0));
  tpj_value_t j1 = param(g, ty(TPJ_DTYPE_S32, 1, 3, 0, 0));
  tpj_value_t m = param(g, ty(TPJ_DTYPE_PRED, 1, 5, 0, 0));
  tpj_value_t v = param(g, ty(TPJ_DTYPE_F32, 1, 7, 0, 0));
  tpj_value_t e = param(g, ty(TPJ_DTYPE_F32, 1, 0, 0, 0));
  tpj_value_t r[8];
  /* x[i2, :, j1] -> separated advanced indices go first: [2, 3, 6] */
  tpj_value_t idx[3] = {i2, TPJ_VALUE_NONE, j1};
  tpj_arg_t a1[2] = {a_tensor(x), a_tensors(idx, 3)};
  TPJ_EXPECT(lower1(g, "aten::index.Tensor", a1, 2, ty(TPJ_DTYPE_F32, 3, 2, 3, 6), &r[0],
                    NULL) == TPJ_STATUS_OK);
  /* x[:, j1] -> adjacent: [5, 3, 7] */
  tpj_value_t idx2[2] = {TPJ_VALUE_NONE, j1};
  tpj_arg_t a2[2] = {a_tensor(x), a_tensors(idx2, 2)};
  TPJ_EXPECT(lower1(g, "aten::index.Tensor", a2, 2, ty(TPJ_DTYPE_F32, 3, 5, 3, 7), &r[1],
                    NULL) == TPJ_STATUS_OK);
  /* x[m] += v (boolean mask, values constant along the mask) */
  tpj_value_t idx3[1] = {m};
  tpj_arg_t a3[4] = {a_tensor(x), a_tensors(idx3, 1), a_tensor(v), a_bool(1)};
  TPJ_EXPECT(lower1(g, "aten::index_put.default", a3, 4, ty(TPJ_DTYPE_F32, 3, 5, 6, 7), &r[2],
                    NULL) == TPJ_STATUS_OK);
  /* cat skips the legacy empty 1-D tensor */
  tpj_value_t parts[3] = {x, e, x};
  tpj_arg_t a4[2] = {a_tensors(parts, 3), a_int(-1)};
  TPJ_EXPECT(lower1(g, "aten::cat.default", a4, 2, ty(TPJ_DTYPE_F32, 3, 5, 6, 14), &r[3],
                    NULL) == TPJ_STATUS_OK);
  /* scatter_reduce mean without self */
  tpj_value_t si = param(g, ty(TPJ_DTYPE_S64, 3, 2, 6, 7));
  tpj_arg_t a5[6] = {a_tensor(x), a_int(0), a_tensor(si), a_tensor(x), a_str("mean"),
                     a_bool(0)};
  TPJ_EXPECT(lower1(g, "aten::scatter_reduce.two", a5, 6, ty(TPJ_DTYPE_F32, 3, 5, 6, 7),
                    &r[4], NULL) == TPJ_STATUS_OK);
  /* slice with step, negative start */
  tpj_arg_t a6[5] = {a_tensor(x), a_int(1), a_int(-5), a_none(), a_int(2)};
  TPJ_EXPECT(lower1(g, "aten::slice.Tensor", a6, 5, ty(TPJ_DTYPE_F32, 3, 5, 3, 7), &r[5],
                    NULL) == TPJ_STATUS_OK);
  int64_t tri[3] = {3, 4, 1};
  tpj_arg_t a7[3] = {a_int(tri[0]), a_int(tri[1]), a_int(tri[2])};
  TPJ_EXPECT(lower1(g, "aten::tril_indices.default", a7, 3, ty(TPJ_DTYPE_S64, 2, 2, 9, 0),
                    &r[6], NULL) == TPJ_STATUS_OK);
  int64_t size[2] = {3, 3}, stride[2] = {1, 2};
  tpj_arg_t a8[4] = {a_tensor(x), a_ints(size, 2), a_ints(stride, 2), a_int(4)};
  TPJ_EXPECT(lower1(g, "aten::as_strided.default", a8, 4, ty(TPJ_DTYPE_F32, 2, 3, 3, 0),
                    &r[7], NULL) == TPJ_STATUS_OK);
  TPJ_EXPECT_OK(tpj_graph_set_results(g, r, 8));
  TPJ_EXPECT_OK(tpj_graph_verify(g));
  char* text = NULL;
  size_t len = 0;
  TPJ_EXPECT_OK(tpj_emit_stablehlo(g, &text, &len));
  TPJ_EXPECT(text && strstr(text, "stablehlo.gather") && strstr(text, "stablehlo.scatter"));
  free(text);
  tpj_graph_destroy(g);
}

TPJ_TEST(shape_static_errors_name_op_and_value) {
  tpj_graph_t* g = NULL;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_value_t x = param(g, ty(TPJ_DTYPE_F32, 2, 3, 2, 0)), out;
  tpj_value_t m = param(g, ty(TPJ_DTYPE_PRED, 2, 3, 2, 0));
  tpj_value_t v = param(g, ty(TPJ_DTYPE_F32, 1, 4, 0, 0));
  tpj_arg_t a1[3] = {a_tensor(x), a_int(0), a_int(3)};
  TPJ_EXPECT(lower1(g, "aten::select.int", a1, 3, ty(TPJ_DTYPE_F32, 1, 2, 0, 0), &out,
                    "index 3 out of range") == TPJ_STATUS_INVALID_ARGUMENT);
  tpj_arg_t a2[3] = {a_tensor(x), a_int(2), a_int(0)};
  TPJ_EXPECT(lower1(g, "aten::transpose.int", a2, 3, ty(TPJ_DTYPE_F32, 2, 2, 3, 0), &out,
                    "aten::transpose.int") == TPJ_STATUS_INVALID_ARGUMENT);
  int64_t size[2] = {3, 2}, stride[2] = {3, 1};
  tpj_arg_t a3[4] = {a_tensor(x), a_ints(size, 2), a_ints(stride, 2), a_none()};
  TPJ_EXPECT(lower1(g, "aten::as_strided.default", a3, 4, ty(TPJ_DTYPE_F32, 2, 3, 2, 0), &out,
                    "element 7") == TPJ_STATUS_INVALID_ARGUMENT);
  tpj_value_t idx[1] = {m};
  tpj_arg_t a4[2] = {a_tensor(x), a_tensors(idx, 1)};
  TPJ_EXPECT(lower1(g, "aten::index.Tensor", a4, 2, ty(TPJ_DTYPE_F32, 1, 4, 0, 0), &out,
                    "mask") == TPJ_STATUS_UNIMPLEMENTED);
  tpj_arg_t a5[4] = {a_tensor(x), a_tensors(idx, 1), a_tensor(v), a_bool(0)};
  TPJ_EXPECT(lower1(g, "aten::index_put.default", a5, 4, ty(TPJ_DTYPE_F32, 2, 3, 2, 0), &out,
                    "data-dependent") == TPJ_STATUS_UNIMPLEMENTED);
  int64_t pad[3] = {1, 2, 3};
  tpj_arg_t a6[3] = {a_tensor(x), a_ints(pad, 3), a_int(0)};
  TPJ_EXPECT(lower1(g, "aten::constant_pad_nd.default", a6, 3, ty(TPJ_DTYPE_F32, 2, 3, 2, 0),
                    &out, "got 3") == TPJ_STATUS_INVALID_ARGUMENT);
  tpj_arg_t a7[5] = {a_tensor(x), a_int(0), a_none(), a_none(), a_int(0)};
  TPJ_EXPECT(lower1(g, "aten::slice.Tensor", a7, 5, ty(TPJ_DTYPE_F32, 2, 3, 2, 0), &out,
                    "step must be positive") == TPJ_STATUS_INVALID_ARGUMENT);
  tpj_arg_t a8[1] = {a_tensor(x)};
  TPJ_EXPECT(lower1(g, "aten::nonzero.default", a8, 1, ty(TPJ_DTYPE_S64, 2, 1, 2, 0), &out,
                    "aten::nonzero.default") == TPJ_STATUS_UNIMPLEMENTED);
  tpj_graph_destroy(g);
}

TPJ_TEST_MAIN("lower_shape")
