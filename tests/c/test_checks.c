/* Runtime checks at the IR level: tpj_graph_add_check validates its values,
 * set_results packs the (bad, value) pairs into one extra result that the
 * emitter appends, disabled graphs carry none, tpj_check_status formats the
 * error, and the index / loss / integer-division lowerings register theirs.
 * Execution (the flags really computed and raised) is tested end to end in
 * tests/python/test_index_bounds.py. */
#include <stdlib.h>
#include <string.h>

#include "tpj/emit.h"
#include "tpj/lower.h"
#include "tpj_test.h"

static tpj_type_t vec(tpj_dtype_t dtype, int64_t n) {
  tpj_type_t t = tpj_type_scalar(dtype);
  t.rank = 1;
  t.dims[0] = n;
  return t;
}

static tpj_type_t mat(tpj_dtype_t dtype, int64_t a, int64_t b) {
  tpj_type_t t = vec(dtype, a);
  t.rank = 2;
  t.dims[1] = b;
  return t;
}

/* A graph with one s64 [4] param p, a scalar check on it and result p + p. */
static tpj_graph_t* one_check(bool enabled, tpj_value_t* out_p) {
  tpj_graph_t* g = NULL;
  if (tpj_graph_create(&g)) return NULL;
  tpj_graph_set_checks_enabled(g, enabled);
  tpj_type_t t = vec(TPJ_DTYPE_S64, 4);
  tpj_value_t p, bad, value, r;
  int64_t dim = 0;
  tpj_status_t s = tpj_graph_add_param(g, &t, &p);
  if (!s) s = tpj_build_splat_int(g, TPJ_DTYPE_PRED, NULL, 0, 0, &bad);
  if (!s) s = tpj_build_reduce_simple(g, p, TPJ_REDUCE_KIND_MAX, &dim, 1, &value);
  if (!s) s = tpj_graph_add_check(g, TPJ_CHECK_KIND_INDEX, bad, value, "op: index {} bad");
  if (!s) s = tpj_build_binary(g, TPJ_BINARY_OP_ADD, p, p, &r);
  if (!s) s = tpj_graph_set_results(g, &r, 1);
  if (s) {
    tpj_status_free(s);
    tpj_graph_destroy(g);
    return NULL;
  }
  *out_p = p;
  return g;
}

TPJ_TEST(check_adds_one_packed_result) {
  tpj_value_t p;
  tpj_graph_t* g = one_check(true, &p);
  TPJ_EXPECT(g != NULL);
  if (!g) return;
  TPJ_EXPECT(tpj_graph_result_count(g) == 1); /* the check result is not counted */
  TPJ_EXPECT(tpj_graph_check_count(g) == 1);
  TPJ_EXPECT(tpj_graph_check(g, 0) && tpj_graph_check(g, 0)->kind == TPJ_CHECK_KIND_INDEX);
  TPJ_EXPECT(tpj_graph_check(g, 0) && strcmp(tpj_graph_check(g, 0)->message, "op: index {} bad") == 0);
  TPJ_EXPECT(tpj_graph_check(g, 1) == NULL);
  tpj_value_t cr = tpj_graph_check_result(g);
  const tpj_type_t* ct = tpj_graph_value_type(g, cr);
  TPJ_EXPECT(ct && ct->dtype == TPJ_DTYPE_S64 && ct->rank == 1 && ct->dims[0] == 2);
  char* text = NULL;
  size_t len = 0;
  TPJ_EXPECT_OK(tpj_emit_stablehlo(g, &text, &len));
  TPJ_EXPECT(text && strstr(text, "-> (tensor<4xi64>, tensor<2xi64>) {"));
  TPJ_EXPECT(text && strstr(text, ") : (tensor<4xi64>, tensor<2xi64>) -> ()"));
  free(text);
  tpj_graph_destroy(g);
}

TPJ_TEST(disabled_graph_has_no_checks) {
  tpj_value_t p;
  tpj_graph_t* g = one_check(false, &p);
  TPJ_EXPECT(g != NULL);
  if (!g) return;
  TPJ_EXPECT(!tpj_graph_checks_enabled(g));
  TPJ_EXPECT(tpj_graph_check_count(g) == 0);
  TPJ_EXPECT(tpj_graph_check_result(g) == TPJ_VALUE_NONE);
  char* text = NULL;
  size_t len = 0;
  TPJ_EXPECT_OK(tpj_emit_stablehlo(g, &text, &len));
  TPJ_EXPECT(text && strstr(text, "-> (tensor<4xi64>) {"));
  free(text);
  tpj_graph_destroy(g);
}

TPJ_TEST(add_check_rejects_bad_values) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t = vec(TPJ_DTYPE_S64, 4), st = tpj_type_scalar(TPJ_DTYPE_S64);
  tpj_value_t p, s64, bad;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &p));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &st, &s64));
  TPJ_EXPECT_OK(tpj_build_splat_int(g, TPJ_DTYPE_PRED, NULL, 0, 1, &bad));
  TPJ_EXPECT_ERROR(tpj_graph_add_check(g, TPJ_CHECK_KIND_INDEX, s64, s64, "m"),
                   INVALID_ARGUMENT, "bad has the wrong type (got tensor<i64>, expected tensor<i1>)");
  TPJ_EXPECT_ERROR(tpj_graph_add_check(g, TPJ_CHECK_KIND_INDEX, bad, p, "m"),
                   INVALID_ARGUMENT, "value has the wrong type (got tensor<4xi64>");
  TPJ_EXPECT_ERROR(tpj_graph_add_check(g, TPJ_CHECK_KIND_INDEX, bad, 999, "m"),
                   INVALID_ARGUMENT, "not a value of this graph");
  TPJ_EXPECT_ERROR(tpj_graph_add_check(g, (tpj_check_kind_t)7, bad, s64, "m"),
                   INVALID_ARGUMENT, "unknown kind (got 7)");
  TPJ_EXPECT_ERROR(tpj_graph_add_check(g, TPJ_CHECK_KIND_INDEX, bad, s64, NULL),
                   INVALID_ARGUMENT, "message is NULL");
  TPJ_EXPECT(tpj_graph_check_count(g) == 0);
  TPJ_EXPECT_OK(tpj_graph_set_results(g, &p, 1));
  TPJ_EXPECT_ERROR(tpj_graph_add_check(g, TPJ_CHECK_KIND_INDEX, bad, s64, "m"),
                   INVALID_ARGUMENT, "results are already set");
  tpj_graph_destroy(g);
}

TPJ_TEST(check_status_formats_value_and_code) {
  tpj_check_t idx = {TPJ_CHECK_KIND_INDEX, "aten::x: index {} is out of bounds for size 5"};
  tpj_check_t div = {TPJ_CHECK_KIND_DIV_ZERO, "aten::y: ZeroDivisionError"};
  TPJ_EXPECT_ERROR(tpj_check_status(&idx, -7), OUT_OF_RANGE,
                   "aten::x: index -7 is out of bounds for size 5");
  TPJ_EXPECT_ERROR(tpj_check_status(&div, 0), INVALID_ARGUMENT, "aten::y: ZeroDivisionError");
  tpj_check_t both[2] = {idx, div};
  int64_t ok[4] = {0, INT64_MIN, 0, INT64_MIN};
  int64_t second[4] = {0, INT64_MIN, 1, 0};
  int64_t first[4] = {1, 12, 1, 0};
  TPJ_EXPECT_OK(tpj_check_results(both, 2, ok));
  TPJ_EXPECT_ERROR(tpj_check_results(both, 2, second), INVALID_ARGUMENT, "ZeroDivisionError");
  TPJ_EXPECT_ERROR(tpj_check_results(both, 2, first), OUT_OF_RANGE, "index 12 is out");
  TPJ_EXPECT_ERROR(tpj_check_results(NULL, 1, ok), INVALID_ARGUMENT, "checks or values is NULL");
}

/* Lowers target with `nouts` outputs on params (f32 [5, 3], s64 [2], s32 [2, 3],
 * s64 [2], f32 [2, 3]) named by index in TENSOR args; returns the graph's check
 * count (98 when the lowering fails, 97 when the message lacks must_contain). */
static size_t checks_outs(const char* target, tpj_arg_t* args, size_t n,
                          const tpj_type_t* out_types, size_t nouts, bool enabled,
                          const char* must_contain) {
  tpj_graph_t* g;
  if (tpj_graph_create(&g)) return 99;
  tpj_graph_set_checks_enabled(g, enabled);
  tpj_type_t ts[5] = {mat(TPJ_DTYPE_F32, 5, 3), vec(TPJ_DTYPE_S64, 2), mat(TPJ_DTYPE_S32, 2, 3),
                      vec(TPJ_DTYPE_S64, 2), mat(TPJ_DTYPE_F32, 2, 3)};
  tpj_value_t v[5];
  for (int i = 0; i < 5; ++i) tpj_status_free(tpj_graph_add_param(g, &ts[i], &v[i]));
  tpj_arg_t mapped[8];
  for (size_t i = 0; i < n && i < 8; ++i) {
    mapped[i] = args[i];
    if (args[i].kind == TPJ_ARG_KIND_TENSOR) mapped[i].tensor = v[args[i].tensor];
  }
  tpj_lower_call_t call = {target, mapped, n, out_types, nouts};
  tpj_value_t out[4] = {TPJ_VALUE_NONE, TPJ_VALUE_NONE, TPJ_VALUE_NONE, TPJ_VALUE_NONE};
  tpj_status_t s = tpj_lower_call(g, &call, out);
  size_t count = s ? 98 : tpj_graph_check_count(g);
  if (!s && count && must_contain && !strstr(tpj_graph_check(g, 0)->message, must_contain)) {
    fprintf(stderr, "  message: %s\n", tpj_graph_check(g, 0)->message);
    count = 97;
  }
  if (s) fprintf(stderr, "  %s: %s\n", target, tpj_status_message(s));
  tpj_status_free(s);
  tpj_graph_destroy(g);
  return count;
}

static size_t checks_of(const char* target, tpj_arg_t* args, size_t n, tpj_type_t out_type,
                        bool enabled, const char* must_contain) {
  return checks_outs(target, args, n, &out_type, 1, enabled, must_contain);
}

TPJ_TEST(lowerings_register_their_checks) {
  tpj_arg_t isel[3] = {{.kind = TPJ_ARG_KIND_TENSOR, .tensor = 0},
                       {.kind = TPJ_ARG_KIND_INT, .i = 0},
                       {.kind = TPJ_ARG_KIND_TENSOR, .tensor = 1}};
  tpj_type_t o23 = mat(TPJ_DTYPE_F32, 2, 3);
  TPJ_EXPECT(checks_of("aten::index_select.default", isel, 3, o23, true,
                       "aten::index_select.default: index {} is out of bounds for dimension 0 "
                       "with size 5") == 1);
  TPJ_EXPECT(checks_of("aten::index_select.default", isel, 3, o23, false, NULL) == 0);
  tpj_arg_t emb[2] = {{.kind = TPJ_ARG_KIND_TENSOR, .tensor = 0},
                      {.kind = TPJ_ARG_KIND_TENSOR, .tensor = 1}};
  TPJ_EXPECT(checks_of("aten::embedding.default", emb, 2, o23, true, "with size 5") == 1);
  tpj_arg_t take[2] = {{.kind = TPJ_ARG_KIND_TENSOR, .tensor = 0},
                       {.kind = TPJ_ARG_KIND_TENSOR, .tensor = 1}};
  TPJ_EXPECT(checks_of("aten::take.default", take, 2, vec(TPJ_DTYPE_F32, 2), true,
                       "for a tensor of 15 elements") == 1);
  tpj_arg_t gat[4] = {{.kind = TPJ_ARG_KIND_TENSOR, .tensor = 0},
                      {.kind = TPJ_ARG_KIND_INT, .i = 1},
                      {.kind = TPJ_ARG_KIND_TENSOR, .tensor = 2},
                      {.kind = TPJ_ARG_KIND_BOOL, .i = 0}};
  TPJ_EXPECT(checks_of("aten::gather.default", gat, 4, o23, true,
                       "dimension 1 with size 3") == 1);
  tpj_value_t list[1] = {1};
  tpj_arg_t ix[2] = {{.kind = TPJ_ARG_KIND_TENSOR, .tensor = 0},
                     {.kind = TPJ_ARG_KIND_TENSOR_LIST, .tensors = list, .count = 1}};
  TPJ_EXPECT(checks_of("aten::index.Tensor", ix, 2, o23, true, "with size 5") == 1);
  /* _unsafe_index: indices made by decompositions, in range by contract */
  TPJ_EXPECT(checks_of("aten::_unsafe_index.Tensor", ix, 2, o23, true, NULL) == 0);
}

TPJ_TEST(nll_loss_and_integer_division_register_checks) {
  tpj_arg_t nll[5] = {{.kind = TPJ_ARG_KIND_TENSOR, .tensor = 4},
                      {.kind = TPJ_ARG_KIND_TENSOR, .tensor = 3},
                      {.kind = TPJ_ARG_KIND_NONE},
                      {.kind = TPJ_ARG_KIND_INT, .i = 1},
                      {.kind = TPJ_ARG_KIND_INT, .i = -100}};
  tpj_type_t outs[2] = {tpj_type_scalar(TPJ_DTYPE_F32), tpj_type_scalar(TPJ_DTYPE_F32)};
  TPJ_EXPECT(checks_outs("aten::nll_loss_forward.default", nll, 5, outs, 2, true,
                         "target {} is out of bounds (expected 0..2 or ignore_index -100)") == 1);
  TPJ_EXPECT(checks_outs("aten::nll_loss_forward.default", nll, 5, outs, 2, false, NULL) == 0);
  tpj_arg_t rem[2] = {{.kind = TPJ_ARG_KIND_TENSOR, .tensor = 1},
                      {.kind = TPJ_ARG_KIND_TENSOR, .tensor = 3}};
  TPJ_EXPECT(checks_of("aten::remainder.Tensor", rem, 2, vec(TPJ_DTYPE_S64, 2), true,
                       "aten::remainder.Tensor: ZeroDivisionError") == 1);
  tpj_arg_t fdiv[2] = {{.kind = TPJ_ARG_KIND_TENSOR, .tensor = 1},
                       {.kind = TPJ_ARG_KIND_TENSOR, .tensor = 3}};
  TPJ_EXPECT(checks_of("aten::floor_divide.default", fdiv, 2, vec(TPJ_DTYPE_S64, 2), true,
                       "ZeroDivisionError") == 1);
  /* float division by zero is inf / nan, not an error */
  tpj_arg_t fl[2] = {{.kind = TPJ_ARG_KIND_TENSOR, .tensor = 0},
                     {.kind = TPJ_ARG_KIND_TENSOR, .tensor = 0}};
  TPJ_EXPECT(checks_of("aten::remainder.Tensor", fl, 2, mat(TPJ_DTYPE_F32, 5, 3), true,
                       NULL) == 0);
}

TPJ_TEST_MAIN("checks")
