/* Graph IR tests: type inference of every builder, every rejection path with
 * its message, scoping of region values, and the whole-graph verifier. Runs
 * under ASan/LSan in `make test-c-asan`, so error paths are checked for leaks. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/emit.h"
#include "tpj/ir.h"
#include "tpj_test.h"

static tpj_type_t T(tpj_dtype_t dt, size_t rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  int64_t dims[4] = {d0, d1, d2, d3};
  tpj_type_t t;
  tpj_status_free(tpj_type_init(dt, dims, rank, &t));
  return t;
}

static bool has_type(const tpj_graph_t* g, tpj_value_t v, const char* want) {
  char buf[128];
  const tpj_type_t* t = tpj_graph_value_type(g, v);
  if (!t) return false;
  tpj_type_format(t, buf, sizeof(buf));
  if (strcmp(buf, want) != 0) fprintf(stderr, "  type %s, expected %s\n", buf, want);
  return strcmp(buf, want) == 0;
}

TPJ_TEST(dtypes_and_types) {
  TPJ_EXPECT(tpj_dtype_size(TPJ_DTYPE_BF16) == 2 && tpj_dtype_size(TPJ_DTYPE_C128) == 16);
  TPJ_EXPECT(tpj_dtype_size(TPJ_DTYPE_INVALID) == 0 && tpj_dtype_size((tpj_dtype_t)99) == 0);
  TPJ_EXPECT(strcmp(tpj_dtype_mlir(TPJ_DTYPE_PRED), "i1") == 0);
  TPJ_EXPECT(strcmp(tpj_dtype_mlir(TPJ_DTYPE_U8), "ui8") == 0);
  TPJ_EXPECT(strcmp(tpj_dtype_name(TPJ_DTYPE_BF16), "bfloat16") == 0);
  TPJ_EXPECT(tpj_dtype_is_float(TPJ_DTYPE_BF16) && !tpj_dtype_is_float(TPJ_DTYPE_S32));
  TPJ_EXPECT(tpj_dtype_is_unsigned_int(TPJ_DTYPE_U64) && !tpj_dtype_is_unsigned_int(TPJ_DTYPE_PRED));
  TPJ_EXPECT(tpj_dtype_is_signed_int(TPJ_DTYPE_S8) && tpj_dtype_is_complex(TPJ_DTYPE_C64));
  tpj_type_t t;
  int64_t dims[2] = {2, 3}, bad[2] = {2, -1};
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, dims, 2, &t));
  TPJ_EXPECT(tpj_type_numel(&t) == 6);
  char buf[64];
  tpj_type_format(&t, buf, sizeof(buf));
  TPJ_EXPECT(strcmp(buf, "tensor<2x3xf32>") == 0);
  tpj_type_t sc = tpj_type_scalar(TPJ_DTYPE_S64);
  tpj_type_format(&sc, buf, sizeof(buf));
  TPJ_EXPECT(strcmp(buf, "tensor<i64>") == 0 && tpj_type_numel(&sc) == 1);
  tpj_type_format(&t, buf, 5); /* truncated, still terminated */
  TPJ_EXPECT(strlen(buf) == 4);
  TPJ_EXPECT_ERROR(tpj_type_init(TPJ_DTYPE_F32, bad, 2, &t), INVALID_ARGUMENT, "negative dim 1");
  TPJ_EXPECT_ERROR(tpj_type_init(TPJ_DTYPE_F32, dims, 9, &t), INVALID_ARGUMENT, "rank too large");
  TPJ_EXPECT_ERROR(tpj_type_init(TPJ_DTYPE_INVALID, dims, 2, &t), INVALID_ARGUMENT, "invalid dtype");
}

TPJ_TEST(elementwise_inference_and_rejections) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t f23 = T(TPJ_DTYPE_F32, 2, 2, 3, 0, 0), f3 = T(TPJ_DTYPE_F32, 1, 3, 0, 0, 0);
  tpj_type_t i23 = T(TPJ_DTYPE_S32, 2, 2, 3, 0, 0), p23 = T(TPJ_DTYPE_PRED, 2, 2, 3, 0, 0);
  tpj_value_t a, b, c, ip, pp, r;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &f23, &a));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &f3, &b));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &f23, &c));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &i23, &ip));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &p23, &pp));
  TPJ_EXPECT(tpj_graph_param_count(g) == 5);
  TPJ_EXPECT_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, a, b, &r), INVALID_ARGUMENT,
                   "stablehlo.add: operand types differ (got tensor<2x3xf32> and tensor<3xf32>, "
                   "expected identical types)");
  TPJ_EXPECT_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, a, 999, &r), INVALID_ARGUMENT,
                   "stablehlo.add: rhs is not a value of this graph (got 999");
  TPJ_EXPECT_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_AND, a, c, &r), INVALID_ARGUMENT,
                   "stablehlo.and: unsupported operand type (got tensor<2x3xf32>");
  TPJ_EXPECT_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_SHL, a, c, &r), INVALID_ARGUMENT,
                   "expected an integer element type");
  TPJ_EXPECT_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_COUNT_, a, c, &r), INVALID_ARGUMENT, "unknown op");
  TPJ_EXPECT_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_EXP, ip, &r), INVALID_ARGUMENT,
                   "stablehlo.exponential: unsupported operand type (got tensor<2x3xi32>");
  TPJ_EXPECT_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_POPCNT, a, &r), INVALID_ARGUMENT, "stablehlo.popcnt");
  TPJ_EXPECT_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NOT, a, &r), INVALID_ARGUMENT, "stablehlo.not");
  TPJ_EXPECT_OK(tpj_build_unary(g, TPJ_UNARY_OP_IS_FINITE, a, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3xi1>"));
  TPJ_EXPECT_OK(tpj_build_unary(g, TPJ_UNARY_OP_NOT, pp, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3xi1>"));
  TPJ_EXPECT_OK(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, ip, ip, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3xi1>"));
  TPJ_EXPECT_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, a, ip, &r), INVALID_ARGUMENT,
                   "stablehlo.compare: operand types differ");
  TPJ_EXPECT_ERROR(tpj_build_compare(g, (tpj_compare_dir_t)9, a, a, &r), INVALID_ARGUMENT,
                   "unknown comparison_direction");
  TPJ_EXPECT_ERROR(tpj_build_select(g, a, a, c, &r), INVALID_ARGUMENT,
                   "stablehlo.select: bad pred type (got tensor<2x3xf32>, expected tensor<2x3xi1>");
  TPJ_EXPECT_OK(tpj_build_select(g, pp, a, c, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3xf32>"));
  tpj_value_t lo, hi_bad;
  TPJ_EXPECT_OK(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, 0.0, &lo));
  TPJ_EXPECT_OK(tpj_build_clamp(g, lo, a, c, &r));
  TPJ_EXPECT_OK(tpj_build_splat(g, TPJ_DTYPE_S32, NULL, 0, 0.0, &hi_bad));
  TPJ_EXPECT_ERROR(tpj_build_clamp(g, lo, a, hi_bad, &r), INVALID_ARGUMENT,
                   "stablehlo.clamp: bad max type (got tensor<i32>");
  TPJ_EXPECT_ERROR(tpj_build_clamp(g, b, a, c, &r), INVALID_ARGUMENT, "bad min type");
  TPJ_EXPECT_OK(tpj_build_convert(g, a, TPJ_DTYPE_BF16, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3xbf16>"));
  TPJ_EXPECT_ERROR(tpj_build_convert(g, a, TPJ_DTYPE_INVALID, &r), INVALID_ARGUMENT, "invalid result dtype");
  TPJ_EXPECT_OK(tpj_build_bitcast_convert(g, a, TPJ_DTYPE_U8, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3x4xui8>"));
  tpj_value_t wide;
  TPJ_EXPECT_OK(tpj_build_bitcast_convert(g, r, TPJ_DTYPE_S32, &wide));
  TPJ_EXPECT(has_type(g, wide, "tensor<2x3xi32>"));
  TPJ_EXPECT_ERROR(tpj_build_bitcast_convert(g, a, TPJ_DTYPE_F64, &r), INVALID_ARGUMENT,
                   "narrow-to-wide bitcast needs a last dim of 2");
  TPJ_EXPECT_ERROR(tpj_build_bitcast_convert(g, pp, TPJ_DTYPE_U8, &r), INVALID_ARGUMENT, "pred is not bitcastable");
  tpj_graph_destroy(g);
}

TPJ_TEST(constants_and_iota) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_value_t r;
  tpj_type_t t = T(TPJ_DTYPE_F32, 1, 3, 0, 0, 0), tp = T(TPJ_DTYPE_PRED, 1, 2, 0, 0, 0);
  float data[3] = {1, 2, 3};
  uint8_t pd[2] = {1, 2};
  TPJ_EXPECT_OK(tpj_build_constant(g, &t, data, sizeof(data), &r));
  TPJ_EXPECT(has_type(g, r, "tensor<3xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_constant(g, &t, data, 8, &r), INVALID_ARGUMENT,
                   "stablehlo.constant: data size mismatch (got 8 bytes, expected 12)");
  TPJ_EXPECT_ERROR(tpj_build_constant(g, &tp, pd, 2, &r), INVALID_ARGUMENT, "pred element 1 is not 0 or 1");
  TPJ_EXPECT_ERROR(tpj_build_splat(g, TPJ_DTYPE_S8, NULL, 0, 200, &r), INVALID_ARGUMENT,
                   "splat value out of range for int8 (got 200)");
  TPJ_EXPECT_ERROR(tpj_build_splat(g, TPJ_DTYPE_U8, NULL, 0, -1, &r), INVALID_ARGUMENT, "out of range for uint8");
  TPJ_EXPECT_ERROR(tpj_build_splat(g, TPJ_DTYPE_S32, NULL, 0, NAN, &r), INVALID_ARGUMENT, "out of range");
  TPJ_EXPECT_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S16, NULL, 0, 40000, &r), INVALID_ARGUMENT, "out of range for int16");
  TPJ_EXPECT_OK(tpj_build_splat_int(g, TPJ_DTYPE_U64, (int64_t[]){2, 2}, 2, -1, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x2xui64>"));
  TPJ_EXPECT_ERROR(tpj_build_splat(g, TPJ_DTYPE_F32, (int64_t[]){-2}, 1, 0, &r), INVALID_ARGUMENT,
                   "stablehlo.constant: type: negative dim");
  tpj_type_t ti = T(TPJ_DTYPE_S32, 2, 2, 3, 0, 0), ts = tpj_type_scalar(TPJ_DTYPE_S32);
  TPJ_EXPECT_OK(tpj_build_iota(g, &ti, 1, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3xi32>"));
  TPJ_EXPECT_ERROR(tpj_build_iota(g, &ti, 2, &r), INVALID_ARGUMENT,
                   "stablehlo.iota: iota_dimension out of range (got 2, expected 0..1)");
  TPJ_EXPECT_ERROR(tpj_build_iota(g, &ts, 0, &r), INVALID_ARGUMENT, "rank >= 1");
  tpj_graph_destroy(g);
}

TPJ_TEST(shape_inference_and_rejections) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t = T(TPJ_DTYPE_F32, 3, 2, 3, 4, 0), t1 = T(TPJ_DTYPE_F32, 1, 3, 0, 0, 0);
  tpj_value_t x, v, r, i0, f0, pv;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &x));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t1, &v));
  TPJ_EXPECT_OK(tpj_build_broadcast_in_dim(g, v, (int64_t[]){2, 3}, 2, (int64_t[]){1}, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_broadcast_in_dim(g, v, (int64_t[]){3, 2}, 2, (int64_t[]){1}, &r),
                   INVALID_ARGUMENT, "stablehlo.broadcast_in_dim: operand dim 0 (size 3) cannot broadcast");
  TPJ_EXPECT_ERROR(tpj_build_broadcast_in_dim(g, v, (int64_t[]){3}, 1, (int64_t[]){1}, &r),
                   INVALID_ARGUMENT, "broadcast_dimensions[0] out of range (got 1, expected 0..0)");
  TPJ_EXPECT_ERROR(tpj_build_broadcast_in_dim(g, x, (int64_t[]){3}, 1, (int64_t[]){0, 1, 2}, &r),
                   INVALID_ARGUMENT, "result rank is smaller");
  TPJ_EXPECT_OK(tpj_build_reshape(g, x, (int64_t[]){6, 4}, 2, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<6x4xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_reshape(g, x, (int64_t[]){5, 4}, 2, &r), INVALID_ARGUMENT,
                   "stablehlo.reshape: element count differs (got tensor<2x3x4xf32> to tensor<5x4xf32>");
  TPJ_EXPECT_OK(tpj_build_transpose(g, x, (int64_t[]){2, 0, 1}, 3, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<4x2x3xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_transpose(g, x, (int64_t[]){0, 0, 1}, 3, &r), INVALID_ARGUMENT,
                   "stablehlo.transpose: permutation repeats dim 0");
  TPJ_EXPECT_ERROR(tpj_build_transpose(g, x, (int64_t[]){0, 1}, 2, &r), INVALID_ARGUMENT,
                   "permutation length differs from the operand rank (got 2, expected 3)");
  TPJ_EXPECT_OK(tpj_build_slice(g, x, (int64_t[]){0, 1, 0}, (int64_t[]){2, 3, 4}, (int64_t[]){1, 1, 3}, 3, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x2x2xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_slice(g, x, (int64_t[]){0, 2, 0}, (int64_t[]){2, 1, 4}, (int64_t[]){1, 1, 1}, 3, &r),
                   INVALID_ARGUMENT, "stablehlo.slice: bad bounds in dim 1 (got start 2, limit 1");
  TPJ_EXPECT_ERROR(tpj_build_slice(g, x, (int64_t[]){0, 0, 0}, (int64_t[]){2, 3, 5}, (int64_t[]){1, 1, 1}, 3, &r),
                   INVALID_ARGUMENT, "bad bounds in dim 2");
  TPJ_EXPECT_ERROR(tpj_build_slice(g, x, (int64_t[]){0, 0, 0}, (int64_t[]){2, 3, 4}, (int64_t[]){1, 0, 1}, 3, &r),
                   INVALID_ARGUMENT, "stride in dim 1 must be >= 1");
  TPJ_EXPECT_OK(tpj_build_splat(g, TPJ_DTYPE_S32, NULL, 0, 0, &i0));
  TPJ_EXPECT_OK(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, 0, &f0));
  tpj_value_t idx3[3] = {i0, i0, i0};
  TPJ_EXPECT_OK(tpj_build_dynamic_slice(g, x, idx3, (int64_t[]){1, 2, 3}, 3, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<1x2x3xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_dynamic_slice(g, x, idx3, (int64_t[]){1, 4, 3}, 3, &r), INVALID_ARGUMENT,
                   "stablehlo.dynamic_slice: slice_sizes[1] out of range (got 4, expected 0..3)");
  TPJ_EXPECT_ERROR(tpj_build_dynamic_slice(g, x, (tpj_value_t[]){i0, f0, i0}, (int64_t[]){1, 1, 1}, 3, &r),
                   INVALID_ARGUMENT, "start index 1 must be an integer scalar (got tensor<f32>)");
  tpj_value_t upd = r;
  TPJ_EXPECT_OK(tpj_build_dynamic_update_slice(g, x, upd, idx3, 3, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3x4xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_dynamic_update_slice(g, upd, x, idx3, 3, &r), INVALID_ARGUMENT,
                   "update dim 0 is larger than the operand's");
  TPJ_EXPECT_OK(tpj_build_concatenate(g, (tpj_value_t[]){x, x}, 2, 2, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x3x8xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_concatenate(g, (tpj_value_t[]){x, v}, 2, 0, &r), INVALID_ARGUMENT,
                   "stablehlo.concatenate: operand 1 type mismatch (got tensor<3xf32>");
  TPJ_EXPECT_ERROR(tpj_build_concatenate(g, (tpj_value_t[]){x}, 1, 3, &r), INVALID_ARGUMENT, "dimension out of range");
  TPJ_EXPECT_ERROR(tpj_build_concatenate(g, NULL, 0, 0, &r), INVALID_ARGUMENT, "needs at least one operand");
  pv = f0;
  TPJ_EXPECT_OK(tpj_build_pad(g, v, pv, (int64_t[]){1}, (int64_t[]){-1}, (int64_t[]){2}, 1, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<7xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_pad(g, v, pv, (int64_t[]){-5}, (int64_t[]){0}, NULL, 1, &r), INVALID_ARGUMENT,
                   "stablehlo.pad: result dim 0 would be negative");
  TPJ_EXPECT_ERROR(tpj_build_pad(g, v, i0, (int64_t[]){0}, (int64_t[]){0}, NULL, 1, &r), INVALID_ARGUMENT,
                   "padding_value must be a scalar float32");
  TPJ_EXPECT_ERROR(tpj_build_pad(g, v, pv, (int64_t[]){0}, (int64_t[]){0}, (int64_t[]){-1}, 1, &r),
                   INVALID_ARGUMENT, "interior padding in dim 0 is negative");
  TPJ_EXPECT_OK(tpj_build_reverse(g, x, (int64_t[]){0, 2}, 2, &r));
  TPJ_EXPECT_ERROR(tpj_build_reverse(g, x, (int64_t[]){3}, 1, &r), INVALID_ARGUMENT,
                   "stablehlo.reverse: dimensions[0] out of range (got 3, expected 0..2)");
  tpj_graph_destroy(g);
}

TPJ_TEST(dot_and_conv) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t tl = T(TPJ_DTYPE_F32, 3, 5, 2, 3, 0), tr = T(TPJ_DTYPE_F32, 3, 5, 3, 7, 0);
  tpj_type_t ti = T(TPJ_DTYPE_S32, 2, 3, 7, 0, 0);
  tpj_value_t l, rr, ii, r;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tl, &l));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tr, &rr));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &ti, &ii));
  int64_t b0 = 0, c2 = 2, c1 = 1, c0 = 0;
  tpj_dot_dims_t dd = {&b0, 1, &b0, 1, &c2, 1, &c1, 1};
  TPJ_EXPECT_OK(tpj_build_dot_general(g, l, rr, &dd, TPJ_DTYPE_INVALID, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<5x2x7xf32>"));
  TPJ_EXPECT_OK(tpj_build_dot_general(g, l, rr, &dd, TPJ_DTYPE_F64, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<5x2x7xf64>"));
  tpj_dot_dims_t bad = {&b0, 1, &b0, 1, &c1, 1, &c1, 1};
  TPJ_EXPECT_ERROR(tpj_build_dot_general(g, l, rr, &bad, TPJ_DTYPE_INVALID, &r), INVALID_ARGUMENT,
                   "stablehlo.dot_general: contracting dimension 0 sizes differ (lhs tensor<5x2x3xf32> dim 1, "
                   "rhs tensor<5x3x7xf32> dim 1)");
  tpj_dot_dims_t both = {&b0, 1, &b0, 1, &c0, 1, &c1, 1};
  TPJ_EXPECT_ERROR(tpj_build_dot_general(g, l, rr, &both, TPJ_DTYPE_INVALID, &r), INVALID_ARGUMENT,
                   "lhs dim 0 is both a batching and a contracting dimension");
  tpj_dot_dims_t counts = {&b0, 1, NULL, 0, &c2, 1, &c1, 1};
  TPJ_EXPECT_ERROR(tpj_build_dot_general(g, l, rr, &counts, TPJ_DTYPE_INVALID, &r), INVALID_ARGUMENT,
                   "batching dimension counts differ (got 1 for lhs and 0 for rhs)");
  tpj_dot_dims_t mixed = {NULL, 0, NULL, 0, &c0, 1, &c1, 1};
  TPJ_EXPECT_ERROR(tpj_build_dot_general(g, ii, ii, &mixed, TPJ_DTYPE_INVALID, &r), INVALID_ARGUMENT,
                   "contracting dimension 0 sizes differ");
  TPJ_EXPECT_ERROR(tpj_build_dot_general(g, l, ii, &mixed, TPJ_DTYPE_INVALID, &r), INVALID_ARGUMENT,
                   "operand dtypes differ (got float32 and int32");
  tpj_type_t tin = T(TPJ_DTYPE_F32, 4, 2, 4, 9, 9), tk = T(TPJ_DTYPE_F32, 4, 6, 2, 3, 3);
  tpj_value_t in, k;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tin, &in));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tk, &k));
  int64_t st[2] = {2, 2}, pad[4] = {1, 1, 0, 0}, dil[2] = {1, 2};
  tpj_conv_params_t cp = {2, st, pad, NULL, dil, 2, 1};
  TPJ_EXPECT_OK(tpj_build_convolution(g, in, k, &cp, &r));
  /* h: (9 + 2 - 3) / 2 + 1 = 5; w: dilated kernel 5, (9 - 5) / 2 + 1 = 3 */
  TPJ_EXPECT(has_type(g, r, "tensor<2x6x5x3xf32>"));
  cp.feature_group_count = 1;
  TPJ_EXPECT_ERROR(tpj_build_convolution(g, in, k, &cp, &r), INVALID_ARGUMENT,
                   "stablehlo.convolution: input features must equal kernel input features * feature_group_count");
  cp.feature_group_count = 2;
  cp.num_spatial = 1;
  TPJ_EXPECT_ERROR(tpj_build_convolution(g, in, k, &cp, &r), INVALID_ARGUMENT, "input and kernel must have rank 3");
  cp.num_spatial = 2;
  st[0] = 0;
  TPJ_EXPECT_ERROR(tpj_build_convolution(g, in, k, &cp, &r), INVALID_ARGUMENT, "window_strides[0] must be >= 1");
  tpj_graph_destroy(g);
}

static tpj_status_t add_body(tpj_graph_t* g, tpj_dtype_t dt, int32_t* out) {
  tpj_type_t st[2] = {tpj_type_scalar(dt), tpj_type_scalar(dt)};
  tpj_value_t a[2], r;
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, st, 2, a));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, a[0], a[1], &r));
  return tpj_graph_region_end(g, &r, 1, out);
}

TPJ_TEST(regions_scoping_and_verify) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t = T(TPJ_DTYPE_F32, 2, 2, 3, 0, 0), sc = tpj_type_scalar(TPJ_DTYPE_F32);
  tpj_value_t x, r, args[2], z;
  int32_t body, body2;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &x));
  TPJ_EXPECT_ERROR(tpj_graph_verify(g), INVALID_ARGUMENT, "results of @main are not set");
  tpj_type_t st[2] = {sc, sc};
  TPJ_EXPECT_OK(tpj_graph_region_begin(g, st, 2, args));
  /* outer values are not visible inside a region */
  TPJ_EXPECT_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, args[0], x, &r), INVALID_ARGUMENT,
                   "stablehlo.add: rhs (%0) is defined outside the current region");
  TPJ_EXPECT_ERROR(tpj_graph_add_param(g, &t, &r), INVALID_ARGUMENT, "a region is open");
  TPJ_EXPECT_ERROR(tpj_graph_set_results(g, &x, 1), INVALID_ARGUMENT, "region 0 is still open");
  TPJ_EXPECT_ERROR(tpj_graph_verify(g), INVALID_ARGUMENT, "region 0 is still open");
  TPJ_EXPECT_OK(tpj_build_binary(g, TPJ_BINARY_OP_MUL, args[0], args[1], &r));
  TPJ_EXPECT_ERROR(tpj_graph_region_end(g, &x, 1, &body), INVALID_ARGUMENT,
                   "stablehlo.return: result 0 (%0) is defined outside the current region");
  TPJ_EXPECT_OK(tpj_graph_region_end(g, &r, 1, &body));
  TPJ_EXPECT_ERROR(tpj_graph_region_end(g, &r, 1, &body2), INVALID_ARGUMENT, "no region is open");
  /* region values are not visible outside */
  TPJ_EXPECT_ERROR(tpj_build_unary(g, TPJ_UNARY_OP_NEGATE, r, &z), INVALID_ARGUMENT, "defined outside the current region");
  int64_t d1 = 1;
  TPJ_EXPECT_OK(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, 1.0, &z));
  tpj_value_t red;
  TPJ_EXPECT_OK(tpj_build_reduce(g, &x, &z, 1, &d1, 1, body, &red));
  TPJ_EXPECT(has_type(g, red, "tensor<2xf32>"));
  TPJ_EXPECT_ERROR(tpj_build_reduce(g, &x, &z, 1, &d1, 1, body, &red), INVALID_ARGUMENT,
                   "stablehlo.reduce: body (region 0) is already used by op");
  TPJ_EXPECT_ERROR(tpj_build_reduce(g, &x, &z, 1, &d1, 1, 77, &red), INVALID_ARGUMENT,
                   "body is not a region of this graph (got 77)");
  TPJ_EXPECT_OK(add_body(g, TPJ_DTYPE_S32, &body2));
  TPJ_EXPECT_ERROR(tpj_build_reduce(g, &x, &z, 1, &d1, 1, body2, &red), INVALID_ARGUMENT,
                   "stablehlo.reduce: body argument 0 has the wrong type (got tensor<i32>, expected tensor<f32>)");
  TPJ_EXPECT_ERROR(tpj_build_reduce(g, &x, &x, 1, &d1, 1, body2, &red), INVALID_ARGUMENT,
                   "init value 0 must be tensor<f32> (got tensor<2x3xf32>)");
  TPJ_EXPECT_ERROR(tpj_build_reduce(g, &x, &z, 1, (int64_t[]){2}, 1, body2, &red), INVALID_ARGUMENT,
                   "dimensions[0] out of range");
  TPJ_EXPECT_OK(tpj_graph_set_results(g, &red, 1));
  /* body2 was never used: the verifier refuses the graph */
  TPJ_EXPECT_ERROR(tpj_graph_verify(g), INVALID_ARGUMENT, "region 1 is never used by an op");
  TPJ_EXPECT(tpj_graph_result_count(g) == 1 && has_type(g, red, "tensor<2xf32>"));
  TPJ_EXPECT(tpj_graph_result_type(g, 0) && tpj_graph_result_type(g, 1) == NULL);
  TPJ_EXPECT(tpj_graph_value_type(g, -1) == NULL && tpj_graph_value_type(g, 1000) == NULL);
  TPJ_EXPECT_ERROR(tpj_graph_set_results(g, &red, 1), INVALID_ARGUMENT, "already set");
  tpj_graph_destroy(g);
}

TPJ_TEST(nested_regions_and_attrs) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t = T(TPJ_DTYPE_F32, 1, 4, 0, 0, 0);
  tpj_value_t x, r;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &x));
  TPJ_EXPECT_OK(tpj_build_reduce_simple(g, x, TPJ_REDUCE_KIND_MAX, (int64_t[]){0}, 1, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<f32>"));
  TPJ_EXPECT_ERROR(tpj_build_reduce_simple(g, x, TPJ_REDUCE_KIND_AND, (int64_t[]){0}, 1, &r),
                   INVALID_ARGUMENT, "and/or reductions need an integer or pred input (got float32)");
  TPJ_EXPECT_OK(tpj_graph_set_results(g, &r, 1));
  TPJ_EXPECT_OK(tpj_graph_verify(g));
  TPJ_EXPECT_OK(tpj_graph_set_param_attr(g, 0, "mhlo.sharding = \"{replicated}\""));
  TPJ_EXPECT_ERROR(tpj_graph_set_param_attr(g, 1, "x"), INVALID_ARGUMENT, "index out of range (got 1, expected < 1)");
  TPJ_EXPECT_OK(tpj_graph_set_result_attr(g, 0, "mhlo.sharding = \"{replicated}\""));
  TPJ_EXPECT_ERROR(tpj_graph_set_result_attr(g, 3, "x"), INVALID_ARGUMENT, "index out of range");
  TPJ_EXPECT_OK(tpj_graph_add_module_attr(g, "mhlo.num_partitions = 1 : i32"));
  TPJ_EXPECT(tpj_graph_op_count(g) == 3); /* constant, maximum (in body), reduce */
  tpj_graph_destroy(g);
  tpj_graph_destroy(NULL);
}

TPJ_TEST(window_gather_scatter_sort_rng) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t = T(TPJ_DTYPE_F32, 2, 4, 6, 0, 0), ti = T(TPJ_DTYPE_S32, 2, 5, 1, 0, 0);
  tpj_value_t x, idx, z, r, upd;
  int32_t body;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &x));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &ti, &idx));
  TPJ_EXPECT_OK(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, 0, &z));
  int64_t wd[2] = {2, 3}, ws[2] = {2, 1}, pad[4] = {0, 0, 1, 1};
  tpj_window_t w = {2, wd, ws, NULL, NULL, pad};
  TPJ_EXPECT_OK(add_body(g, TPJ_DTYPE_F32, &body));
  TPJ_EXPECT_OK(tpj_build_reduce_window(g, x, z, &w, body, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<2x6xf32>"));
  w.rank = 1;
  TPJ_EXPECT_OK(add_body(g, TPJ_DTYPE_F32, &body));
  TPJ_EXPECT_ERROR(tpj_build_reduce_window(g, x, z, &w, body, &r), INVALID_ARGUMENT,
                   "stablehlo.reduce_window: window rank differs from the operand rank (got 1, expected 2)");
  w.rank = 2;
  TPJ_EXPECT_ERROR(tpj_build_select_and_scatter(g, x, x, z, &w, body, body, &r), INVALID_ARGUMENT,
                   "stablehlo.select_and_scatter: source type mismatch (got tensor<4x6xf32>, expected tensor<2x6xf32>)");
  TPJ_EXPECT_OK(tpj_build_reduce_window(g, x, z, &w, body, &r)); /* uses body */
  int64_t off = 1, col = 0, map = 0, ss[2] = {1, 6};
  tpj_gather_dims_t gd = {.offset_dims = &off, .num_offset_dims = 1,
                          .collapsed_slice_dims = &col, .num_collapsed_slice_dims = 1,
                          .start_index_map = &map, .num_start_index_map = 1,
                          .index_vector_dim = 1, .slice_sizes = ss, .num_slice_sizes = 2};
  TPJ_EXPECT_OK(tpj_build_gather(g, x, idx, &gd, &upd));
  TPJ_EXPECT(has_type(g, upd, "tensor<5x6xf32>"));
  ss[0] = 2;
  TPJ_EXPECT_ERROR(tpj_build_gather(g, x, idx, &gd, &r), INVALID_ARGUMENT,
                   "stablehlo.gather: collapsed dim 0 must have slice size <= 1 (got 2)");
  ss[0] = 1;
  gd.index_vector_dim = 3;
  TPJ_EXPECT_ERROR(tpj_build_gather(g, x, idx, &gd, &r), INVALID_ARGUMENT, "index_vector_dim out of range");
  gd.index_vector_dim = 1;
  gd.num_offset_dims = 0;
  TPJ_EXPECT_ERROR(tpj_build_gather(g, x, idx, &gd, &r), INVALID_ARGUMENT, "offset_dims length mismatch");
  gd.num_offset_dims = 1;
  TPJ_EXPECT_ERROR(tpj_build_gather(g, x, x, &gd, &r), INVALID_ARGUMENT, "indices must be integers");
  tpj_scatter_dims_t sd = {.update_window_dims = &off, .num_update_window_dims = 1,
                           .inserted_window_dims = &col, .num_inserted_window_dims = 1,
                           .scatter_dims_to_operand_dims = &map,
                           .num_scatter_dims_to_operand_dims = 1, .index_vector_dim = 1};
  TPJ_EXPECT_OK(add_body(g, TPJ_DTYPE_F32, &body));
  TPJ_EXPECT_ERROR(tpj_build_scatter(g, x, idx, x, &sd, body, &r), INVALID_ARGUMENT,
                   "stablehlo.scatter: updates dim 0 must equal the indices batch size 5 (got tensor<4x6xf32>)");
  TPJ_EXPECT_OK(tpj_build_scatter(g, x, idx, upd, &sd, body, &r));
  TPJ_EXPECT(has_type(g, r, "tensor<4x6xf32>"));
  /* sort comparator must return pred */
  TPJ_EXPECT_OK(add_body(g, TPJ_DTYPE_F32, &body));
  tpj_value_t srt;
  TPJ_EXPECT_ERROR(tpj_build_sort(g, &x, 1, 1, true, body, &srt), INVALID_ARGUMENT,
                   "stablehlo.sort: comparator result 0 has the wrong type (got tensor<f32>, expected tensor<i1>)");
  TPJ_EXPECT_ERROR(tpj_build_sort(g, &x, 1, 2, true, body, &srt), INVALID_ARGUMENT, "dimension out of range");
  TPJ_EXPECT_ERROR(tpj_build_sort(g, (tpj_value_t[]){x, idx}, 2, 0, true, body, &srt), INVALID_ARGUMENT,
                   "input 1 shape differs from input 0");
  tpj_type_t tst = T(TPJ_DTYPE_U64, 1, 2, 0, 0, 0), tb = T(TPJ_DTYPE_U32, 1, 8, 0, 0, 0);
  tpj_value_t st, ns, bits;
  TPJ_EXPECT_ERROR(tpj_build_rng_bit_generator(g, x, &tb, &ns, &bits), INVALID_ARGUMENT,
                   "initial_state must be tensor<2xui64> for THREE_FRY (got tensor<4x6xf32>)");
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tst, &st));
  TPJ_EXPECT_OK(tpj_build_rng_bit_generator(g, st, &tb, &ns, &bits));
  TPJ_EXPECT(has_type(g, ns, "tensor<2xui64>") && has_type(g, bits, "tensor<8xui32>"));
  TPJ_EXPECT_ERROR(tpj_build_rng_bit_generator(g, st, &t, &ns, &bits), INVALID_ARGUMENT,
                   "output must be ui32 or ui64 (got float32)");
  tpj_graph_destroy(g);
}

/* A transpose feeding a dot is read through the dot's dimension numbers
 * when the free dims keep their order, and kept when they would not. */
TPJ_TEST(dot_folds_transposes_that_keep_free_order) {
  tpj_graph_t* g = NULL;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t ta, tb;
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, (int64_t[]){2, 3, 4}, 3, &ta));
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, (int64_t[]){4, 5}, 2, &tb));
  tpj_value_t a, b, at, bt, d1, d2;
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &ta, &a));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tb, &b));
  /* bt = b^T [5, 4]; dot(a, bt) contracting a.2 with bt.1: one free dim on
   * the rhs, so it is dot(a, b) contracting a.2 with b.0. */
  TPJ_EXPECT_OK(tpj_build_transpose(g, b, (int64_t[]){1, 0}, 2, &bt));
  int64_t c2 = 2, c1 = 1;
  tpj_dot_dims_t dd = {NULL, 0, NULL, 0, &c2, 1, &c1, 1};
  TPJ_EXPECT_OK(tpj_build_dot_general(g, a, bt, &dd, TPJ_DTYPE_INVALID, &d1));
  const tpj_type_t* t1 = tpj_graph_value_type(g, d1);
  TPJ_EXPECT(t1 && t1->rank == 3 && t1->dims[0] == 2 && t1->dims[1] == 3 && t1->dims[2] == 5);
  /* at = a permuted [4, 3, 2]: its free dims 3 and 2 would come out in the
   * other order from a, so the transpose must stay. */
  TPJ_EXPECT_OK(tpj_build_transpose(g, a, (int64_t[]){2, 1, 0}, 3, &at));
  int64_t c0 = 0;
  tpj_dot_dims_t dd2 = {NULL, 0, NULL, 0, &c0, 1, &c0, 1};
  TPJ_EXPECT_OK(tpj_build_dot_general(g, at, b, &dd2, TPJ_DTYPE_INVALID, &d2));
  const tpj_type_t* t2 = tpj_graph_value_type(g, d2);
  TPJ_EXPECT(t2 && t2->rank == 3 && t2->dims[0] == 3 && t2->dims[1] == 2 && t2->dims[2] == 5);
  tpj_value_t res[2] = {d1, d2};
  TPJ_EXPECT_OK(tpj_graph_set_results(g, res, 2));
  char* text = NULL;
  size_t len = 0;
  TPJ_EXPECT_OK(tpj_emit_stablehlo(g, &text, &len));
  TPJ_EXPECT(text && strstr(text, "rhs_contracting_dimensions = [0]>} : (tensor<2x3x4xf32>, "
                            "tensor<4x5xf32>) -> tensor<2x3x5xf32>"));
  TPJ_EXPECT(text && strstr(text, "(tensor<4x3x2xf32>, tensor<4x5xf32>) -> tensor<3x2x5xf32>"));
  free(text);
  tpj_graph_destroy(g);
}

TPJ_TEST_MAIN("ir")
