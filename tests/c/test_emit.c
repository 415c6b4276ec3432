/* Emitter tests: exact StableHLO text for small graphs (generic op form,
 * attribute syntax, regions, multi-result ops, constants) and determinism. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/emit.h"
#include "tpj/ir.h"
#include "tpj_test.h"

static char* emit(tpj_graph_t* g) {
  char* text = NULL;
  size_t len = 0;
  tpj_status_t s = tpj_emit_stablehlo(g, &text, &len);
  if (s) {
    fprintf(stderr, "  emit failed: %s\n", tpj_status_message(s));
    tpj_status_free(s);
    return NULL;
  }
  if (strlen(text) != len) {
    free(text);
    return NULL;
  }
  return text;
}

static bool same(const char* got, const char* want) {
  if (got && strcmp(got, want) == 0) return true;
  fprintf(stderr, "  got:\n%s\n  want:\n%s\n", got ? got : "(null)", want);
  return false;
}

TPJ_TEST(add_exact_text) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t;
  int64_t dims[1] = {2};
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, dims, 1, &t));
  tpj_value_t a, b, r, c, lt;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &a));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &b));
  TPJ_EXPECT_OK(tpj_build_binary(g, TPJ_BINARY_OP_ADD, a, b, &r));
  TPJ_EXPECT_OK(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, r, a, &lt));
  TPJ_EXPECT_OK(tpj_build_broadcast_in_dim(g, lt, (int64_t[]){3, 2}, 2, (int64_t[]){1}, &c));
  tpj_value_t res[2] = {r, c};
  TPJ_EXPECT_OK(tpj_graph_set_results(g, res, 2));
  char* text = emit(g);
  TPJ_EXPECT(same(text,
      "module {\n"
      "  func.func @main(%arg0: tensor<2xf32>, %arg1: tensor<2xf32>) -> (tensor<2xf32>, tensor<3x2xi1>) {\n"
      "    %2 = \"stablehlo.add\"(%arg0, %arg1) : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xf32>\n"
      "    %3 = \"stablehlo.compare\"(%2, %arg0) {comparison_direction = #stablehlo<comparison_direction LT>, "
      "compare_type = #stablehlo<comparison_type FLOAT>} : (tensor<2xf32>, tensor<2xf32>) -> tensor<2xi1>\n"
      "    %4 = \"stablehlo.broadcast_in_dim\"(%3) {broadcast_dimensions = array<i64: 1>} : (tensor<2xi1>) -> tensor<3x2xi1>\n"
      "    \"func.return\"(%2, %4) : (tensor<2xf32>, tensor<3x2xi1>) -> ()\n"
      "  }\n"
      "}\n"));
  /* Deterministic: emitting again gives the same bytes. */
  char* again = emit(g);
  TPJ_EXPECT(text && again && strcmp(text, again) == 0);
  free(text);
  free(again);
  tpj_graph_destroy(g);
}

TPJ_TEST(reduce_region_text) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t;
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_S32, (int64_t[]){2, 3}, 2, &t));
  tpj_value_t x, r;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &x));
  TPJ_EXPECT_OK(tpj_build_reduce_simple(g, x, TPJ_REDUCE_KIND_ADD, (int64_t[]){1}, 1, &r));
  TPJ_EXPECT_OK(tpj_graph_set_results(g, &r, 1));
  TPJ_EXPECT_OK(tpj_graph_set_param_attr(g, 0, "mhlo.sharding = \"{replicated}\""));
  TPJ_EXPECT_OK(tpj_graph_add_module_attr(g, "mhlo.num_partitions = 1 : i32"));
  char* text = emit(g);
  TPJ_EXPECT(same(text,
      "module attributes {mhlo.num_partitions = 1 : i32} {\n"
      "  func.func @main(%arg0: tensor<2x3xi32> {mhlo.sharding = \"{replicated}\"}) -> (tensor<2xi32>) {\n"
      "    %1 = \"stablehlo.constant\"() {value = dense<0> : tensor<i32>} : () -> tensor<i32>\n"
      "    %5 = \"stablehlo.reduce\"(%arg0, %1) ({\n"
      "      ^bb0(%2: tensor<i32>, %3: tensor<i32>):\n"
      "        %4 = \"stablehlo.add\"(%2, %3) : (tensor<i32>, tensor<i32>) -> tensor<i32>\n"
      "        \"stablehlo.return\"(%4) : (tensor<i32>) -> ()\n"
      "    }) {dimensions = array<i64: 1>} : (tensor<2x3xi32>, tensor<i32>) -> tensor<2xi32>\n"
      "    \"func.return\"(%5) : (tensor<2xi32>) -> ()\n"
      "  }\n"
      "}\n"));
  free(text);
  tpj_graph_destroy(g);
}

/* Emits a graph returning the constant v; true if the text contains `want`. */
static bool const_has(tpj_graph_t* g, tpj_value_t v, const char* want) {
  tpj_status_t s = tpj_graph_set_results(g, &v, 1);
  if (s) {
    tpj_status_free(s);
    return false;
  }
  char* text = emit(g);
  bool ok = text && strstr(text, want);
  if (!ok) fprintf(stderr, "  missing %s in:\n%s\n", want, text ? text : "(null)");
  free(text);
  return ok;
}

#define CONST_CASE(build, want)                               \
  do {                                                        \
    tpj_graph_t* g;                                           \
    tpj_value_t v;                                            \
    TPJ_EXPECT_OK(tpj_graph_create(&g));                      \
    tpj_status_t s_ = (build);                                \
    TPJ_EXPECT(!s_);                                          \
    tpj_status_free(s_);                                      \
    if (!s_) TPJ_EXPECT(const_has(g, v, want));               \
    tpj_graph_destroy(g);                                     \
  } while (0)

TPJ_TEST(constant_formats) {
  int64_t d2[1] = {2}, d23[2] = {2, 2};
  tpj_type_t tf, tp, te, ti;
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, d2, 1, &tf));
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_PRED, d23, 2, &tp));
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, (int64_t[]){2, 0}, 2, &te));
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_S16, d2, 1, &ti));
  float f[2] = {1.0f, -2.5f};
  uint8_t p[4] = {1, 0, 0, 1};
  int16_t i16[2] = {-2, 258};
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, 0.1, &v), "value = dense<0.100000001> : tensor<f32>");
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_F64, NULL, 0, 1e300, &v), "dense<1.0000000000000001e+300> : tensor<f64>");
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, 3.0, &v), "dense<3.0> : tensor<f32>");
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, -INFINITY, &v), "dense<0xFF800000> : tensor<f32>");
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_F64, NULL, 0, NAN, &v), "dense<0x7FF8000000000000> : tensor<f64>");
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_BF16, NULL, 0, 1.0, &v), "dense<0x3F80> : tensor<bf16>");
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_F16, NULL, 0, -2.0, &v), "dense<0xC000> : tensor<f16>");
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_F16, NULL, 0, 1e6, &v), "dense<0x7C00> : tensor<f16>");
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_PRED, d2, 1, 2.0, &v), "dense<true> : tensor<2xi1>");
  CONST_CASE(tpj_build_splat(g, TPJ_DTYPE_U8, NULL, 0, 255, &v), "dense<255> : tensor<ui8>");
  CONST_CASE(tpj_build_splat_int(g, TPJ_DTYPE_S64, NULL, 0, INT64_MIN, &v), "dense<-9223372036854775808> : tensor<i64>");
  CONST_CASE(tpj_build_splat_int(g, TPJ_DTYPE_U64, NULL, 0, -1, &v), "dense<18446744073709551615> : tensor<ui64>");
  CONST_CASE(tpj_build_constant(g, &tf, f, sizeof(f), &v), "value = dense<\"0x0000803F000020C0\"> : tensor<2xf32>");
  CONST_CASE(tpj_build_constant(g, &ti, i16, sizeof(i16), &v), "dense<\"0xFEFF0201\"> : tensor<2xi16>");
  CONST_CASE(tpj_build_constant(g, &tp, p, sizeof(p), &v), "dense<[[true, false], [false, true]]> : tensor<2x2xi1>");
  CONST_CASE(tpj_build_constant(g, &te, NULL, 0, &v), "value = dense<> : tensor<2x0xf32>");
  float same2[2] = {7.0f, 7.0f};
  CONST_CASE(tpj_build_constant(g, &tf, same2, sizeof(same2), &v), "dense<7.0> : tensor<2xf32>");
}

TPJ_TEST(attribute_syntax) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t tin, tk, tl;
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, (int64_t[]){1, 2, 5, 5}, 4, &tin));
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, (int64_t[]){3, 2, 3, 3}, 4, &tk));
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, (int64_t[]){4, 5}, 2, &tl));
  tpj_value_t in, k, l, conv, dot, sl, st, ns, bits;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tin, &in));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tk, &k));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tl, &l));
  int64_t strides[2] = {1, 2}, pad[4] = {1, 1, 0, 2};
  tpj_conv_params_t cp = {2, strides, pad, NULL, NULL, 1, 1};
  TPJ_EXPECT_OK(tpj_build_convolution(g, in, k, &cp, &conv));
  int64_t c1 = 1, c0 = 0;
  tpj_dot_dims_t dd = {NULL, 0, NULL, 0, &c1, 1, &c0, 1};
  TPJ_EXPECT_OK(tpj_build_transpose(g, l, (int64_t[]){1, 0}, 2, &sl));
  TPJ_EXPECT_OK(tpj_build_dot_general(g, l, sl, &dd, TPJ_DTYPE_INVALID, &dot));
  tpj_type_t tst, tb;
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_U64, (int64_t[]){2}, 1, &tst));
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_U32, (int64_t[]){3}, 1, &tb));
  TPJ_EXPECT_OK(tpj_build_splat_int(g, TPJ_DTYPE_U64, (int64_t[]){2}, 1, 5, &st));
  TPJ_EXPECT_OK(tpj_build_rng_bit_generator(g, st, &tb, &ns, &bits));
  tpj_value_t res[3] = {conv, dot, bits};
  TPJ_EXPECT_OK(tpj_graph_set_results(g, res, 3));
  char* text = emit(g);
  TPJ_EXPECT(text && strstr(text,
      "{dimension_numbers = #stablehlo.conv<[b, f, 0, 1]x[o, i, 0, 1]->[b, f, 0, 1]>, "
      "window_strides = array<i64: 1, 2>, padding = dense<[[1, 1], [0, 2]]> : tensor<2x2xi64>, "
      "lhs_dilation = array<i64: 1, 1>, rhs_dilation = array<i64: 1, 1>, "
      "feature_group_count = 1 : i64, batch_group_count = 1 : i64} : "
      "(tensor<1x2x5x5xf32>, tensor<3x2x3x3xf32>) -> tensor<1x3x5x3xf32>"));
  /* dot(l, transpose(l)) reads the transpose through its dimension numbers. */
  TPJ_EXPECT(text && strstr(text,
      "{dot_dimension_numbers = #stablehlo.dot<lhs_contracting_dimensions = [1], "
      "rhs_contracting_dimensions = [1]>} : (tensor<4x5xf32>, tensor<4x5xf32>) -> tensor<4x4xf32>"));
  TPJ_EXPECT(text && strstr(text,
      "%7, %8 = \"stablehlo.rng_bit_generator\"(%6) {rng_algorithm = #stablehlo<rng_algorithm THREE_FRY>} : "
      "(tensor<2xui64>) -> (tensor<2xui64>, tensor<3xui32>)"));
  if (!text || !strstr(text, "rng_bit_generator")) fprintf(stderr, "%s\n", text ? text : "");
  free(text);
  tpj_graph_destroy(g);
}

TPJ_TEST(emit_refuses_invalid_graphs) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  char* text = NULL;
  TPJ_EXPECT_ERROR(tpj_emit_stablehlo(g, &text, NULL), INVALID_ARGUMENT,
                   "emit: graph verify: results of @main are not set");
  TPJ_EXPECT(text == NULL);
  TPJ_EXPECT_ERROR(tpj_emit_stablehlo(NULL, &text, NULL), INVALID_ARGUMENT, "graph or out_text is NULL");
  tpj_graph_destroy(g);
}

TPJ_TEST_MAIN("emit")
