/* End-to-end builder tests: build graphs with the IR builders, emit StableHLO,
 * compile and run them on the XLA CPU plugin ("cpu" resolved through
 * $TORCH_PJRT_PLUGIN_PATH), and compare against numbers computed here in C. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/emit.h"
#include "tpj/ir.h"
#include "tpj/pjrt.h"
#include "tpj_test.h"

static tpj_client_t* g_client;

static tpj_status_t e2e_client(tpj_client_t** out) {
  if (!g_client) {
    char* path = NULL;
    TPJ_RETURN_IF_ERROR(tpj_plugin_resolve("cpu", NULL, 0, &path));
    tpj_plugin_t* plugin = NULL;
    tpj_status_t s = tpj_plugin_load(path, &plugin);
    free(path);
    TPJ_RETURN_IF_ERROR(s);
    TPJ_RETURN_IF_ERROR(tpj_client_create(plugin, NULL, 0, &g_client));
  }
  *out = g_client;
  return NULL;
}

__attribute__((destructor)) static void e2e_cleanup(void) { tpj_client_destroy(g_client); }

typedef struct {
  tpj_value_t param;
  const void* data;
} e2e_in_t;

static tpj_status_t e2e_exec(tpj_client_t* c, tpj_executable_t* exe, tpj_buffer_t** bufs,
                             size_t nin, void* const* outs, const size_t* out_sizes, size_t nout) {
  TPJ_CHECK_ARG(tpj_executable_num_outputs(exe) == nout && nout <= 64, "e2e: output count %zu, expected %zu",
                tpj_executable_num_outputs(exe), nout);
  tpj_buffer_t* res[64] = {0};
  tpj_execute_args_t args = {.args = bufs, .num_args = nin, .num_devices = 1, .out_buffers = res};
  TPJ_RETURN_IF_ERROR(tpj_executable_execute(exe, &args));
  tpj_status_t s = NULL;
  for (size_t i = 0; i < nout; ++i) {
    if (!s) s = tpj_buffer_to_host(res[i], outs[i], out_sizes[i]);
    tpj_buffer_destroy(res[i]);
  }
  return s;
}

/* Emits, compiles and runs g; copies result i into outs[i] (out_sizes[i] bytes). */
static tpj_status_t e2e_run(tpj_graph_t* g, const e2e_in_t* ins, size_t nin, void* const* outs,
                            const size_t* out_sizes, size_t nout) {
  tpj_client_t* c;
  TPJ_RETURN_IF_ERROR(e2e_client(&c));
  char* text = NULL;
  size_t len = 0;
  TPJ_RETURN_IF_ERROR(tpj_emit_stablehlo(g, &text, &len));
  if (getenv("TPJ_E2E_DUMP")) fprintf(stderr, "%s\n", text);
  tpj_executable_t* exe = NULL;
  tpj_status_t s = tpj_executable_compile(c, text, len, NULL, &exe);
  free(text);
  TPJ_RETURN_IF_ERROR(s);
  tpj_buffer_t* bufs[16] = {0};
  for (size_t i = 0; i < nin && !s; ++i) {
    const tpj_type_t* t = tpj_graph_value_type(g, ins[i].param);
    s = tpj_buffer_from_host(c, ins[i].data, t->dtype, t->dims, (size_t)t->rank, 0,
                             TPJ_HOST_SEMANTICS_COPY, &bufs[i]);
  }
  if (!s) s = e2e_exec(c, exe, bufs, nin, outs, out_sizes, nout);
  for (size_t i = 0; i < nin; ++i) tpj_buffer_destroy(bufs[i]);
  tpj_executable_destroy(exe);
  return s;
}

static tpj_type_t T(tpj_dtype_t dt, size_t rank, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
  int64_t dims[4] = {d0, d1, d2, d3};
  tpj_type_t t;
  tpj_status_free(tpj_type_init(dt, dims, rank, &t));
  return t;
}

static inline bool near(double a, double b) { return fabs(a - b) <= 1e-5 + 1e-5 * fabs(b); }

TPJ_TEST(mul_add) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_type_t t = T(TPJ_DTYPE_F32, 2, 2, 3, 0, 0);
  tpj_value_t a, b, m, one, r;
  int64_t dims[2] = {2, 3};
  tpj_status_t s = tpj_graph_add_param(g, &t, &a);
  if (!s) s = tpj_graph_add_param(g, &t, &b);
  if (!s) s = tpj_build_binary(g, TPJ_BINARY_OP_MUL, a, b, &m);
  if (!s) s = tpj_build_splat(g, TPJ_DTYPE_F32, dims, 2, 1.0, &one);
  if (!s) s = tpj_build_binary(g, TPJ_BINARY_OP_ADD, m, one, &r);
  if (!s) s = tpj_graph_set_results(g, &r, 1);
  /* attribute slots must parse on the plugin too */
  if (!s) s = tpj_graph_set_param_attr(g, 0, "mhlo.sharding = \"{replicated}\"");
  if (!s) s = tpj_graph_set_result_attr(g, 0, "mhlo.sharding = \"{replicated}\"");
  if (!s) s = tpj_graph_add_module_attr(g, "mhlo.num_partitions = 1 : i32");
  if (!s) s = tpj_graph_add_module_attr(g, "mhlo.num_replicas = 1 : i32");
  float x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {0.5f, -1, 2, 0, 3, -2}, o[6];
  e2e_in_t ins[2] = {{a, x}, {b, y}};
  void* outs[1] = {o};
  size_t sizes[1] = {sizeof(o)};
  if (!s) s = e2e_run(g, ins, 2, outs, sizes, 1);
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  for (int i = 0; i < 6; ++i) TPJ_EXPECT(o[i] == x[i] * y[i] + 1);
}

/* Runs statements while s is OK. */
#define B(expr) do { if (!s) s = (expr); } while (0)

TPJ_TEST(reduce_sum_and_max) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t t = T(TPJ_DTYPE_S32, 2, 2, 3, 0, 0);
  tpj_value_t a, sum, mx, fsum, af;
  int64_t d1 = 1, d0 = 0, both[2] = {0, 1};
  B(tpj_graph_add_param(g, &t, &a));
  B(tpj_build_reduce_simple(g, a, TPJ_REDUCE_KIND_ADD, &d1, 1, &sum));
  B(tpj_build_reduce_simple(g, a, TPJ_REDUCE_KIND_MAX, &d0, 1, &mx));
  B(tpj_build_convert(g, a, TPJ_DTYPE_F32, &af));
  B(tpj_build_reduce_simple(g, af, TPJ_REDUCE_KIND_MIN, both, 2, &fsum));
  tpj_value_t res[3] = {sum, mx, fsum};
  B(tpj_graph_set_results(g, res, 3));
  int32_t x[6] = {1, -7, 3, -4, 5, -6}, o_sum[2], o_max[3];
  float o_min;
  e2e_in_t ins[1] = {{a, x}};
  void* outs[3] = {o_sum, o_max, &o_min};
  size_t sizes[3] = {sizeof(o_sum), sizeof(o_max), sizeof(o_min)};
  B(e2e_run(g, ins, 1, outs, sizes, 3));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(o_sum[0] == -3 && o_sum[1] == -5);
  TPJ_EXPECT(o_max[0] == 1 && o_max[1] == 5 && o_max[2] == 3);
  TPJ_EXPECT(o_min == -7.0f);
}

TPJ_TEST(unary_float_family) {
  static const tpj_unary_op_t ops[] = {
      TPJ_UNARY_OP_ABS, TPJ_UNARY_OP_NEGATE, TPJ_UNARY_OP_EXP, TPJ_UNARY_OP_EXPM1,
      TPJ_UNARY_OP_LOG, TPJ_UNARY_OP_LOG1P, TPJ_UNARY_OP_SQRT, TPJ_UNARY_OP_RSQRT,
      TPJ_UNARY_OP_CBRT, TPJ_UNARY_OP_TANH, TPJ_UNARY_OP_LOGISTIC, TPJ_UNARY_OP_SINE,
      TPJ_UNARY_OP_COSINE, TPJ_UNARY_OP_TAN, TPJ_UNARY_OP_FLOOR, TPJ_UNARY_OP_CEIL,
      TPJ_UNARY_OP_ROUND_EVEN, TPJ_UNARY_OP_ROUND_AFZ, TPJ_UNARY_OP_SIGN};
  enum { N = sizeof(ops) / sizeof(ops[0]) };
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t t = T(TPJ_DTYPE_F64, 1, 4, 0, 0, 0);
  tpj_value_t a, res[N];
  B(tpj_graph_add_param(g, &t, &a));
  for (int i = 0; i < N; ++i) B(tpj_build_unary(g, ops[i], a, &res[i]));
  B(tpj_graph_set_results(g, res, N));
  double x[4] = {0.5, 2.5, 1.25, 3.5}, o[N][4];
  void* outs[N];
  size_t sizes[N];
  for (int i = 0; i < N; ++i) outs[i] = o[i], sizes[i] = sizeof(o[i]);
  e2e_in_t ins[1] = {{a, x}};
  B(e2e_run(g, ins, 1, outs, sizes, N));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  for (int k = 0; k < 4; ++k) {
    double v = x[k];
    double want[N] = {fabs(v), -v, exp(v), expm1(v), log(v), log1p(v), sqrt(v), 1 / sqrt(v),
                      cbrt(v), tanh(v), 1 / (1 + exp(-v)), sin(v), cos(v), tan(v), floor(v),
                      ceil(v), nearbyint(v), round(v), v > 0 ? 1.0 : (v < 0 ? -1.0 : 0.0)};
    for (int i = 0; i < N; ++i) {
      if (!near(o[i][k], want[i])) fprintf(stderr, "  op %d x=%g got %.17g want %.17g\n", i, v, o[i][k], want[i]);
      TPJ_EXPECT(near(o[i][k], want[i]));
    }
  }
}

TPJ_TEST(binary_and_int_family) {
  static const tpj_binary_op_t fops[] = {TPJ_BINARY_OP_ADD, TPJ_BINARY_OP_SUB, TPJ_BINARY_OP_MUL,
                                         TPJ_BINARY_OP_DIV, TPJ_BINARY_OP_REM, TPJ_BINARY_OP_POW,
                                         TPJ_BINARY_OP_MAX, TPJ_BINARY_OP_MIN, TPJ_BINARY_OP_ATAN2};
  static const tpj_binary_op_t iops[] = {TPJ_BINARY_OP_AND, TPJ_BINARY_OP_OR, TPJ_BINARY_OP_XOR,
                                         TPJ_BINARY_OP_SHL, TPJ_BINARY_OP_SHR_ARITH,
                                         TPJ_BINARY_OP_SHR_LOGICAL, TPJ_BINARY_OP_REM,
                                         TPJ_BINARY_OP_DIV};
  enum { NF = 9, NI = 8, NU = 3 };
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t tf = T(TPJ_DTYPE_F32, 1, 3, 0, 0, 0), ti = T(TPJ_DTYPE_S32, 1, 3, 0, 0, 0);
  tpj_value_t a, b, c, d, res[NF + NI + NU];
  B(tpj_graph_add_param(g, &tf, &a));
  B(tpj_graph_add_param(g, &tf, &b));
  B(tpj_graph_add_param(g, &ti, &c));
  B(tpj_graph_add_param(g, &ti, &d));
  for (int i = 0; i < NF; ++i) B(tpj_build_binary(g, fops[i], a, b, &res[i]));
  for (int i = 0; i < NI; ++i) B(tpj_build_binary(g, iops[i], c, d, &res[NF + i]));
  B(tpj_build_unary(g, TPJ_UNARY_OP_NOT, c, &res[NF + NI]));
  B(tpj_build_unary(g, TPJ_UNARY_OP_POPCNT, c, &res[NF + NI + 1]));
  B(tpj_build_unary(g, TPJ_UNARY_OP_CLZ, c, &res[NF + NI + 2]));
  B(tpj_graph_set_results(g, res, NF + NI + NU));
  float x[3] = {1.5f, -2.0f, 7.0f}, y[3] = {2.0f, 3.0f, -0.5f}, of[NF][3];
  int32_t p[3] = {-17, 12, 255}, q[3] = {3, 2, 4}, oi[NI + NU][3];
  void* outs[NF + NI + NU];
  size_t sizes[NF + NI + NU];
  for (int i = 0; i < NF; ++i) outs[i] = of[i], sizes[i] = sizeof(of[i]);
  for (int i = 0; i < NI + NU; ++i) outs[NF + i] = oi[i], sizes[NF + i] = sizeof(oi[i]);
  e2e_in_t ins[4] = {{a, x}, {b, y}, {c, p}, {d, q}};
  B(e2e_run(g, ins, 4, outs, sizes, NF + NI + NU));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  for (int k = 0; k < 3; ++k) {
    float u = x[k], v = y[k];
    double wf[NF] = {u + v, u - v, u * v, u / v, fmodf(u, v), powf(u, v), fmaxf(u, v), fminf(u, v), atan2f(u, v)};
    for (int i = 0; i < NF; ++i) TPJ_EXPECT(near(of[i][k], wf[i]));
    int32_t m = p[k], n = q[k];
    int32_t wi[NI + NU] = {m & n, m | n, m ^ n, (int32_t)((uint32_t)m << n), m >> n,
                           (int32_t)((uint32_t)m >> n), m % n, m / n, ~m,
                           __builtin_popcount((uint32_t)m), __builtin_clz((uint32_t)m)};
    for (int i = 0; i < NI + NU; ++i) {
      if (oi[i][k] != wi[i]) fprintf(stderr, "  int op %d k=%d got %d want %d\n", i, k, oi[i][k], wi[i]);
      TPJ_EXPECT(oi[i][k] == wi[i]);
    }
  }
}

TPJ_TEST(compare_select_clamp_convert) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t tf = T(TPJ_DTYPE_F32, 1, 4, 0, 0, 0), tu = T(TPJ_DTYPE_U8, 1, 4, 0, 0, 0);
  tpj_value_t a, b, u, lt, sel, lo, hi, cl, cv, bc, ult, fin, ci, u2;
  B(tpj_graph_add_param(g, &tf, &a));
  B(tpj_graph_add_param(g, &tf, &b));
  B(tpj_graph_add_param(g, &tu, &u));
  B(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, a, b, &lt));
  B(tpj_build_select(g, lt, a, b, &sel));
  B(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, -1.0, &lo));
  B(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, 2.0, &hi));
  B(tpj_build_clamp(g, lo, a, hi, &cl));
  B(tpj_build_convert(g, a, TPJ_DTYPE_S32, &cv));
  B(tpj_build_bitcast_convert(g, a, TPJ_DTYPE_U32, &bc));
  B(tpj_build_splat(g, TPJ_DTYPE_U8, (int64_t[]){4}, 1, 200, &u2));
  B(tpj_build_compare(g, TPJ_COMPARE_DIR_GE, u, u2, &ult));
  B(tpj_build_unary(g, TPJ_UNARY_OP_IS_FINITE, b, &fin));
  B(tpj_build_convert(g, ult, TPJ_DTYPE_S32, &ci));
  tpj_value_t res[7] = {lt, sel, cl, cv, bc, ci, fin};
  B(tpj_graph_set_results(g, res, 7));
  float x[4] = {-3.5f, 1.0f, 2.75f, 0.25f}, y[4] = {0.0f, 1.0f, INFINITY, -1.0f};
  uint8_t uu[4] = {0, 199, 200, 255}, o_lt[4], o_fin[4];
  float o_sel[4], o_cl[4];
  int32_t o_cv[4], o_ci[4];
  uint32_t o_bc[4];
  void* outs[7] = {o_lt, o_sel, o_cl, o_cv, o_bc, o_ci, o_fin};
  size_t sizes[7] = {4, 16, 16, 16, 16, 16, 4};
  e2e_in_t ins[3] = {{a, x}, {b, y}, {u, uu}};
  B(e2e_run(g, ins, 3, outs, sizes, 7));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  for (int k = 0; k < 4; ++k) {
    TPJ_EXPECT(o_lt[k] == (x[k] < y[k]));
    TPJ_EXPECT(o_sel[k] == (x[k] < y[k] ? x[k] : y[k]));
    TPJ_EXPECT(o_cl[k] == fminf(fmaxf(x[k], -1.0f), 2.0f));
    TPJ_EXPECT(o_cv[k] == (int32_t)x[k]);
    uint32_t bits;
    memcpy(&bits, &x[k], 4);
    TPJ_EXPECT(o_bc[k] == bits);
    TPJ_EXPECT(o_ci[k] == (uu[k] >= 200));
    TPJ_EXPECT(o_fin[k] == (uint8_t)isfinite(y[k]));
  }
}

/* Constants must round-trip bit-exactly through the text. */
TPJ_TEST(constants_bit_exact) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  float f[5] = {0.1f, -0.0f, INFINITY, NAN, 1e-45f};
  int64_t i64[3] = {INT64_MIN, -1, INT64_MAX};
  uint8_t pr[4] = {1, 0, 0, 1};
  uint16_t bf[3] = {0x3F80, 0x7FC0, 0x0001};
  tpj_type_t tf = T(TPJ_DTYPE_F32, 1, 5, 0, 0, 0), ti = T(TPJ_DTYPE_S64, 1, 3, 0, 0, 0);
  tpj_type_t tp = T(TPJ_DTYPE_PRED, 2, 2, 2, 0, 0), tb = T(TPJ_DTYPE_BF16, 1, 3, 0, 0, 0);
  tpj_type_t te = T(TPJ_DTYPE_F32, 2, 2, 0, 0, 0);
  tpj_value_t c[10];
  B(tpj_build_constant(g, &tf, f, sizeof(f), &c[0]));
  B(tpj_build_constant(g, &ti, i64, sizeof(i64), &c[1]));
  B(tpj_build_constant(g, &tp, pr, sizeof(pr), &c[2]));
  B(tpj_build_constant(g, &tb, bf, sizeof(bf), &c[3]));
  B(tpj_build_splat(g, TPJ_DTYPE_F32, (int64_t[]){2}, 1, 0.1, &c[4]));
  B(tpj_build_splat(g, TPJ_DTYPE_F64, NULL, 0, -NAN, &c[5]));
  B(tpj_build_splat_int(g, TPJ_DTYPE_U64, NULL, 0, -3, &c[6]));
  B(tpj_build_splat(g, TPJ_DTYPE_F16, NULL, 0, 65504.0, &c[7]));
  B(tpj_build_splat(g, TPJ_DTYPE_S8, NULL, 0, -128, &c[8]));
  B(tpj_build_constant(g, &te, NULL, 0, &c[9]));
  B(tpj_graph_set_results(g, c, 10));
  float of[5], o4[2];
  int64_t oi[3];
  uint8_t op[4];
  uint16_t ob[3], oh;
  double od;
  uint64_t ou;
  int8_t o8;
  float oe[1];
  void* outs[10] = {of, oi, op, ob, o4, &od, &ou, &oh, &o8, oe};
  size_t sizes[10] = {20, 24, 4, 6, 8, 8, 8, 2, 1, 0};
  B(e2e_run(g, NULL, 0, outs, sizes, 10));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(memcmp(of, f, sizeof(f)) == 0 || (memcmp(of, f, 12) == 0 && isnan(of[3]) && of[4] == f[4]));
  TPJ_EXPECT(memcmp(oi, i64, sizeof(i64)) == 0);
  TPJ_EXPECT(memcmp(op, pr, sizeof(pr)) == 0);
  TPJ_EXPECT(memcmp(ob, bf, sizeof(bf)) == 0);
  TPJ_EXPECT(o4[0] == 0.1f && o4[1] == 0.1f);
  TPJ_EXPECT(isnan(od));
  TPJ_EXPECT(ou == UINT64_MAX - 2);
  TPJ_EXPECT(oh == 0x7BFF);
  TPJ_EXPECT(o8 == -128);
}

TPJ_TEST(shape_ops) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t t = T(TPJ_DTYPE_S32, 2, 2, 3, 0, 0), ti = T(TPJ_DTYPE_S32, 1, 3, 0, 0, 0);
  tpj_value_t a, io, bc, rs, tr, sl, i1, ds, dus, cat, pv, pd, rv, i0;
  B(tpj_graph_add_param(g, &t, &a));
  B(tpj_build_iota(g, &ti, 0, &io));                                         /* [0 1 2] */
  B(tpj_build_broadcast_in_dim(g, io, (int64_t[]){2, 3}, 2, (int64_t[]){1}, &bc));
  B(tpj_build_reshape(g, a, (int64_t[]){3, 2}, 2, &rs));
  B(tpj_build_transpose(g, a, (int64_t[]){1, 0}, 2, &tr));
  B(tpj_build_slice(g, a, (int64_t[]){0, 0}, (int64_t[]){2, 3}, (int64_t[]){1, 2}, 2, &sl));
  B(tpj_build_splat(g, TPJ_DTYPE_S32, NULL, 0, 1, &i1));
  B(tpj_build_splat(g, TPJ_DTYPE_S32, NULL, 0, 0, &i0));
  B(tpj_build_dynamic_slice(g, a, (tpj_value_t[]){i1, i1}, (int64_t[]){1, 2}, 2, &ds));
  B(tpj_build_dynamic_update_slice(g, a, ds, (tpj_value_t[]){i0, i0}, 2, &dus));
  B(tpj_build_concatenate(g, (tpj_value_t[]){a, bc}, 2, 0, &cat));
  B(tpj_build_splat(g, TPJ_DTYPE_S32, NULL, 0, -9, &pv));
  B(tpj_build_pad(g, a, pv, (int64_t[]){1, -1}, (int64_t[]){0, 1}, (int64_t[]){0, 1}, 2, &pd));
  B(tpj_build_reverse(g, a, (int64_t[]){1}, 1, &rv));
  tpj_value_t res[9] = {bc, rs, tr, sl, ds, dus, cat, pd, rv};
  B(tpj_graph_set_results(g, res, 9));
  int32_t x[6] = {1, 2, 3, 4, 5, 6};
  int32_t o_bc[6], o_rs[6], o_tr[6], o_sl[4], o_ds[2], o_dus[6], o_cat[12], o_pd[15], o_rv[6];
  void* outs[9] = {o_bc, o_rs, o_tr, o_sl, o_ds, o_dus, o_cat, o_pd, o_rv};
  size_t sizes[9] = {24, 24, 24, 16, 8, 24, 48, 15 * 4, 24};
  e2e_in_t ins[1] = {{a, x}};
  B(e2e_run(g, ins, 1, outs, sizes, 9));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  int32_t w_bc[6] = {0, 1, 2, 0, 1, 2}, w_tr[6] = {1, 4, 2, 5, 3, 6}, w_sl[4] = {1, 3, 4, 6};
  int32_t w_ds[2] = {5, 6}, w_dus[6] = {5, 6, 3, 4, 5, 6}, w_rv[6] = {3, 2, 1, 6, 5, 4};
  /* pad: low (1, -1), high (0, 1), interior (0, 1): rows [-9 row, row0, row1], cols
   * interior-padded [a -9 b -9 c] cropped left by 1, plus one -9 on the right. */
  int32_t w_pd[15] = {-9, -9, -9, -9, -9, -9, 2, -9, 3, -9, -9, 5, -9, 6, -9};
  TPJ_EXPECT(memcmp(o_bc, w_bc, 24) == 0);
  TPJ_EXPECT(memcmp(o_rs, x, 24) == 0);
  TPJ_EXPECT(memcmp(o_tr, w_tr, 24) == 0);
  TPJ_EXPECT(memcmp(o_sl, w_sl, 16) == 0);
  TPJ_EXPECT(memcmp(o_ds, w_ds, 8) == 0);
  TPJ_EXPECT(memcmp(o_dus, w_dus, 24) == 0);
  TPJ_EXPECT(memcmp(o_cat, x, 24) == 0 && memcmp(o_cat + 6, w_bc, 24) == 0);
  TPJ_EXPECT(memcmp(o_pd, w_pd, sizeof(w_pd)) == 0);
  TPJ_EXPECT(memcmp(o_rv, w_rv, 24) == 0);
}

TPJ_TEST(dot_general_and_convolution) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  /* batched matmul: (2, 2, 3) x (2, 3, 2) -> (2, 2, 2) */
  tpj_type_t tl = T(TPJ_DTYPE_F32, 3, 2, 2, 3, 0), tr = T(TPJ_DTYPE_F32, 3, 2, 3, 2, 0);
  /* conv: input (1, 2, 4, 4), kernel (2, 1, 3, 3) groups 2, pad 1, stride 2 */
  tpj_type_t tin = T(TPJ_DTYPE_F32, 4, 1, 2, 4, 4), tk = T(TPJ_DTYPE_F32, 4, 2, 1, 3, 3);
  tpj_value_t l, r, in, k, dot, conv;
  B(tpj_graph_add_param(g, &tl, &l));
  B(tpj_graph_add_param(g, &tr, &r));
  B(tpj_graph_add_param(g, &tin, &in));
  B(tpj_graph_add_param(g, &tk, &k));
  int64_t b0 = 0, c2 = 2, c1 = 1;
  tpj_dot_dims_t dd = {&b0, 1, &b0, 1, &c2, 1, &c1, 1};
  B(tpj_build_dot_general(g, l, r, &dd, TPJ_DTYPE_INVALID, &dot));
  int64_t strides[2] = {2, 2}, pad[4] = {1, 1, 1, 1};
  tpj_conv_params_t cp = {2, strides, pad, NULL, NULL, 2, 1};
  B(tpj_build_convolution(g, in, k, &cp, &conv));
  tpj_value_t res[2] = {dot, conv};
  B(tpj_graph_set_results(g, res, 2));
  float L[12], R[12], IN[32], K[18], o_dot[8], o_conv[8];
  for (int i = 0; i < 12; ++i) L[i] = (float)(i % 5) - 1.5f, R[i] = (float)(i % 4) * 0.5f;
  for (int i = 0; i < 32; ++i) IN[i] = (float)((i * 7) % 11) - 5;
  for (int i = 0; i < 18; ++i) K[i] = (float)((i * 3) % 5) - 2;
  void* outs[2] = {o_dot, o_conv};
  size_t sizes[2] = {sizeof(o_dot), sizeof(o_conv)};
  e2e_in_t ins[4] = {{l, L}, {r, R}, {in, IN}, {k, K}};
  B(e2e_run(g, ins, 4, outs, sizes, 2));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  for (int b = 0; b < 2; ++b)
    for (int i = 0; i < 2; ++i)
      for (int j = 0; j < 2; ++j) {
        float acc = 0;
        for (int q = 0; q < 3; ++q) acc += L[b * 6 + i * 3 + q] * R[b * 6 + q * 2 + j];
        TPJ_EXPECT(near(o_dot[b * 4 + i * 2 + j], acc));
      }
  for (int o = 0; o < 2; ++o) /* group o uses input channel o */
    for (int y = 0; y < 2; ++y)
      for (int x = 0; x < 2; ++x) {
        float acc = 0;
        for (int ky = 0; ky < 3; ++ky)
          for (int kx = 0; kx < 3; ++kx) {
            int iy = y * 2 - 1 + ky, ix = x * 2 - 1 + kx;
            if (iy < 0 || iy >= 4 || ix < 0 || ix >= 4) continue;
            acc += IN[o * 16 + iy * 4 + ix] * K[o * 9 + ky * 3 + kx];
          }
        TPJ_EXPECT(near(o_conv[o * 4 + y * 2 + x], acc));
      }
}

/* Region (a, b) -> op(a, b) on scalars of dt, built in the current block. */
static tpj_status_t e2e_body(tpj_graph_t* g, tpj_dtype_t dt, tpj_binary_op_t op, int32_t* out) {
  tpj_type_t st[2] = {tpj_type_scalar(dt), tpj_type_scalar(dt)};
  tpj_value_t args[2], r;
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, st, 2, args));
  TPJ_RETURN_IF_ERROR(tpj_build_binary(g, op, args[0], args[1], &r));
  return tpj_graph_region_end(g, &r, 1, out);
}

static tpj_status_t e2e_cmp_body(tpj_graph_t* g, tpj_dtype_t dt, size_t n, tpj_compare_dir_t dir,
                                 int32_t* out) {
  tpj_type_t st[8];
  tpj_value_t args[8], r;
  for (size_t i = 0; i < 2 * n; ++i) st[i] = tpj_type_scalar(i < 2 ? dt : TPJ_DTYPE_S32);
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, st, 2 * n, args));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, dir, args[0], args[1], &r));
  return tpj_graph_region_end(g, &r, 1, out);
}

TPJ_TEST(windows_pool_and_backward) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t t = T(TPJ_DTYPE_F32, 2, 4, 4, 0, 0), ts = T(TPJ_DTYPE_F32, 2, 2, 2, 0, 0);
  tpj_value_t x, src, ninf, zero, pool, sas;
  int32_t body, sel, sct;
  B(tpj_graph_add_param(g, &t, &x));
  B(tpj_graph_add_param(g, &ts, &src));
  B(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, -INFINITY, &ninf));
  B(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, 0.0, &zero));
  int64_t wd[2] = {2, 2}, pad[4] = {0, 0, 0, 0};
  tpj_window_t w = {2, wd, wd, NULL, NULL, pad};
  B(e2e_body(g, TPJ_DTYPE_F32, TPJ_BINARY_OP_MAX, &body));
  B(tpj_build_reduce_window(g, x, ninf, &w, body, &pool));
  if (!s) {
    tpj_type_t st[2] = {tpj_type_scalar(TPJ_DTYPE_F32), tpj_type_scalar(TPJ_DTYPE_F32)};
    tpj_value_t args[2], r;
    B(tpj_graph_region_begin(g, st, 2, args));
    B(tpj_build_compare(g, TPJ_COMPARE_DIR_GE, args[0], args[1], &r));
    B(tpj_graph_region_end(g, &r, 1, &sel));
  }
  B(e2e_body(g, TPJ_DTYPE_F32, TPJ_BINARY_OP_ADD, &sct));
  B(tpj_build_select_and_scatter(g, x, src, zero, &w, sel, sct, &sas));
  tpj_value_t res[2] = {pool, sas};
  B(tpj_graph_set_results(g, res, 2));
  float X[16], S[4] = {10, 20, 30, 40}, o_pool[4], o_sas[16];
  for (int i = 0; i < 16; ++i) X[i] = (float)((i * 5) % 16);
  void* outs[2] = {o_pool, o_sas};
  size_t sizes[2] = {16, 64};
  e2e_in_t ins[2] = {{x, X}, {src, S}};
  B(e2e_run(g, ins, 2, outs, sizes, 2));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  float want_sas[16] = {0};
  for (int by = 0; by < 2; ++by)
    for (int bx = 0; bx < 2; ++bx) {
      int best = -1;
      for (int dy = 0; dy < 2; ++dy)
        for (int dx = 0; dx < 2; ++dx) {
          int i = (by * 2 + dy) * 4 + bx * 2 + dx;
          if (best < 0 || X[i] > X[best]) best = i;
        }
      TPJ_EXPECT(o_pool[by * 2 + bx] == X[best]);
      want_sas[best] += S[by * 2 + bx];
    }
  TPJ_EXPECT(memcmp(o_sas, want_sas, sizeof(want_sas)) == 0);
}

TPJ_TEST(gather_scatter) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t to = T(TPJ_DTYPE_F32, 2, 4, 3, 0, 0), ti = T(TPJ_DTYPE_S32, 2, 3, 1, 0, 0);
  tpj_type_t tu = T(TPJ_DTYPE_F32, 2, 3, 3, 0, 0);
  tpj_value_t op, idx, upd, ga, sc;
  int32_t body;
  B(tpj_graph_add_param(g, &to, &op));
  B(tpj_graph_add_param(g, &ti, &idx));
  B(tpj_graph_add_param(g, &tu, &upd));
  int64_t off = 1, col = 0, map = 0, ss[2] = {1, 3};
  tpj_gather_dims_t gd = {.offset_dims = &off, .num_offset_dims = 1,
                          .collapsed_slice_dims = &col, .num_collapsed_slice_dims = 1,
                          .start_index_map = &map, .num_start_index_map = 1,
                          .index_vector_dim = 1, .slice_sizes = ss, .num_slice_sizes = 2};
  B(tpj_build_gather(g, op, idx, &gd, &ga));
  tpj_scatter_dims_t sd = {.update_window_dims = &off, .num_update_window_dims = 1,
                           .inserted_window_dims = &col, .num_inserted_window_dims = 1,
                           .scatter_dims_to_operand_dims = &map,
                           .num_scatter_dims_to_operand_dims = 1, .index_vector_dim = 1};
  B(e2e_body(g, TPJ_DTYPE_F32, TPJ_BINARY_OP_ADD, &body));
  B(tpj_build_scatter(g, op, idx, upd, &sd, body, &sc));
  tpj_value_t res[2] = {ga, sc};
  B(tpj_graph_set_results(g, res, 2));
  float O[12], U[9], o_ga[9], o_sc[12];
  int32_t I[3] = {2, 0, 2};
  for (int i = 0; i < 12; ++i) O[i] = (float)i;
  for (int i = 0; i < 9; ++i) U[i] = (float)(100 * (i + 1));
  void* outs[2] = {o_ga, o_sc};
  size_t sizes[2] = {36, 48};
  e2e_in_t ins[3] = {{op, O}, {idx, I}, {upd, U}};
  B(e2e_run(g, ins, 3, outs, sizes, 2));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  float want[12];
  memcpy(want, O, sizeof(O));
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 3; ++c) {
      TPJ_EXPECT(o_ga[r * 3 + c] == O[I[r] * 3 + c]);
      want[I[r] * 3 + c] += U[r * 3 + c];
    }
  TPJ_EXPECT(memcmp(o_sc, want, sizeof(want)) == 0);
}

TPJ_TEST(sort_and_multi_reduce) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t tk = T(TPJ_DTYPE_F32, 1, 5, 0, 0, 0), tv = T(TPJ_DTYPE_S32, 1, 5, 0, 0, 0);
  tpj_value_t k, v, sorted[2], red[2], z0, z1;
  int32_t cmp, body;
  B(tpj_graph_add_param(g, &tk, &k));
  B(tpj_graph_add_param(g, &tv, &v));
  B(e2e_cmp_body(g, TPJ_DTYPE_F32, 2, TPJ_COMPARE_DIR_LT, &cmp));
  B(tpj_build_sort(g, (tpj_value_t[]){k, v}, 2, 0, true, cmp, sorted));
  /* 2-input reduce: (sum of keys, product of values) */
  B(tpj_build_splat(g, TPJ_DTYPE_F32, NULL, 0, 0, &z0));
  B(tpj_build_splat(g, TPJ_DTYPE_S32, NULL, 0, 1, &z1));
  if (!s) {
    tpj_type_t st[4] = {tpj_type_scalar(TPJ_DTYPE_F32), tpj_type_scalar(TPJ_DTYPE_S32),
                        tpj_type_scalar(TPJ_DTYPE_F32), tpj_type_scalar(TPJ_DTYPE_S32)};
    tpj_value_t a[4], r[2];
    B(tpj_graph_region_begin(g, st, 4, a));
    B(tpj_build_binary(g, TPJ_BINARY_OP_ADD, a[0], a[2], &r[0]));
    B(tpj_build_binary(g, TPJ_BINARY_OP_MUL, a[1], a[3], &r[1]));
    B(tpj_graph_region_end(g, r, 2, &body));
  }
  int64_t d0 = 0;
  B(tpj_build_reduce(g, (tpj_value_t[]){k, v}, (tpj_value_t[]){z0, z1}, 2, &d0, 1, body, red));
  tpj_value_t res[4] = {sorted[0], sorted[1], red[0], red[1]};
  B(tpj_graph_set_results(g, res, 4));
  float K[5] = {3, -1, 3, 0.5f, -1}, o_k[5], o_sum;
  int32_t V[5] = {1, 2, 3, 4, 5}, o_v[5], o_prod;
  void* outs[4] = {o_k, o_v, &o_sum, &o_prod};
  size_t sizes[4] = {20, 20, 4, 4};
  e2e_in_t ins[2] = {{k, K}, {v, V}};
  B(e2e_run(g, ins, 2, outs, sizes, 4));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  float wk[5] = {-1, -1, 0.5f, 3, 3};
  int32_t wv[5] = {2, 5, 4, 1, 3}; /* stable */
  TPJ_EXPECT(memcmp(o_k, wk, 20) == 0);
  TPJ_EXPECT(memcmp(o_v, wv, 20) == 0);
  TPJ_EXPECT(o_sum == 4.5f && o_prod == 120);
}

TPJ_TEST(rng_bit_generator) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t tst = T(TPJ_DTYPE_U64, 1, 2, 0, 0, 0), tb = T(TPJ_DTYPE_U32, 2, 4, 8, 0, 0);
  tpj_value_t st, ns, bits;
  B(tpj_graph_add_param(g, &tst, &st));
  B(tpj_build_rng_bit_generator(g, st, &tb, &ns, &bits));
  tpj_value_t res[2] = {ns, bits};
  B(tpj_graph_set_results(g, res, 2));
  uint64_t S[2] = {42, 7}, o_s[2], o_s2[2];
  uint32_t o_b[32], o_b2[32];
  void* outs[2] = {o_s, o_b};
  void* outs2[2] = {o_s2, o_b2};
  size_t sizes[2] = {16, 128};
  e2e_in_t ins[1] = {{st, S}};
  B(e2e_run(g, ins, 1, outs, sizes, 2));
  B(e2e_run(g, ins, 1, outs2, sizes, 2));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(memcmp(o_b, o_b2, sizeof(o_b)) == 0); /* deterministic for a seed */
  TPJ_EXPECT(memcmp(o_s, S, sizeof(S)) != 0);      /* the state advances */
  int distinct = 0;
  for (int i = 1; i < 32; ++i) distinct += o_b[i] != o_b[0];
  TPJ_EXPECT(distinct >= 30);
}

TPJ_TEST(low_precision_batched_gather_dilated_conv) {
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_type_t tf = T(TPJ_DTYPE_F32, 1, 2, 0, 0, 0), to = T(TPJ_DTYPE_F32, 3, 2, 3, 4, 0);
  tpj_type_t ti = T(TPJ_DTYPE_S32, 2, 2, 1, 0, 0), tin = T(TPJ_DTYPE_F32, 3, 1, 1, 3, 0);
  tpj_type_t tk = T(TPJ_DTYPE_F32, 3, 1, 1, 2, 0);
  tpj_value_t x, op, idx, in, k, xb, ob, bsum, xh, hm, ga, conv, cplx;
  B(tpj_graph_add_param(g, &tf, &x));
  B(tpj_graph_add_param(g, &to, &op));
  B(tpj_graph_add_param(g, &ti, &idx));
  B(tpj_graph_add_param(g, &tin, &in));
  B(tpj_graph_add_param(g, &tk, &k));
  B(tpj_build_convert(g, x, TPJ_DTYPE_BF16, &xb));
  B(tpj_build_splat(g, TPJ_DTYPE_BF16, (int64_t[]){2}, 1, 1.0, &ob));
  B(tpj_build_binary(g, TPJ_BINARY_OP_ADD, xb, ob, &bsum));
  B(tpj_build_convert(g, x, TPJ_DTYPE_F16, &xh));
  B(tpj_build_binary(g, TPJ_BINARY_OP_MUL, xh, xh, &hm));
  /* per-batch row pick: out[b, :] = op[b, idx[b], :] */
  int64_t off = 1, col = 1, ob0 = 0, map = 1, ss[3] = {1, 1, 4};
  tpj_gather_dims_t gd = {.offset_dims = &off, .num_offset_dims = 1,
                          .collapsed_slice_dims = &col, .num_collapsed_slice_dims = 1,
                          .operand_batching_dims = &ob0, .num_operand_batching_dims = 1,
                          .start_indices_batching_dims = &ob0, .num_start_indices_batching_dims = 1,
                          .start_index_map = &map, .num_start_index_map = 1,
                          .index_vector_dim = 1, .slice_sizes = ss, .num_slice_sizes = 3};
  B(tpj_build_gather(g, op, idx, &gd, &ga));
  /* transposed-conv style: lhs_dilation 2, pad 1/1 -> input length (3-1)*2+1+2 = 7, out 6 */
  int64_t one = 1, pad[2] = {1, 1}, two = 2;
  tpj_conv_params_t cp = {1, &one, pad, &two, NULL, 1, 1};
  B(tpj_build_convolution(g, in, k, &cp, &conv));
  float c64[2] = {1.5f, -2.0f};
  tpj_type_t tc = T(TPJ_DTYPE_C64, 0, 0, 0, 0, 0);
  B(tpj_build_constant(g, &tc, c64, sizeof(c64), &cplx));
  tpj_value_t res[5] = {bsum, hm, ga, conv, cplx};
  B(tpj_graph_set_results(g, res, 5));
  float X[2] = {1.5f, 2.0f}, O[24], IN[3] = {1, 2, 3}, K[2] = {10, 1}, o_ga[8], o_conv[6], o_c[2];
  int32_t I[2] = {2, 1};
  uint16_t o_b[2], o_h[2];
  for (int i = 0; i < 24; ++i) O[i] = (float)i;
  void* outs[5] = {o_b, o_h, o_ga, o_conv, o_c};
  size_t sizes[5] = {4, 4, 32, 24, 8};
  e2e_in_t ins[5] = {{x, X}, {op, O}, {idx, I}, {in, IN}, {k, K}};
  B(e2e_run(g, ins, 5, outs, sizes, 5));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(o_b[0] == 0x4020 && o_b[1] == 0x4040); /* bf16 2.5, 3.0 */
  TPJ_EXPECT(o_h[0] == 0x4080 && o_h[1] == 0x4400); /* f16 2.25, 4.0 */
  for (int b = 0; b < 2; ++b)
    for (int j = 0; j < 4; ++j) TPJ_EXPECT(o_ga[b * 4 + j] == O[b * 12 + I[b] * 4 + j]);
  /* dilated + padded input: [0, 1, 0, 2, 0, 3, 0]; window [10, 1] */
  float dil[7] = {0, 1, 0, 2, 0, 3, 0};
  for (int i = 0; i < 6; ++i) TPJ_EXPECT(o_conv[i] == dil[i] * 10 + dil[i + 1]);
  TPJ_EXPECT(o_c[0] == 1.5f && o_c[1] == -2.0f);
}

/* Reducing an empty dim yields the init value: checks every reduce_simple
 * identity constant (and its dtype encoding) on the plugin. */
TPJ_TEST(reduce_simple_identities) {
  typedef struct { tpj_dtype_t dt; tpj_reduce_kind_t kind; uint64_t want_bits; } id_case_t;
  static const id_case_t cases[] = {
      {TPJ_DTYPE_F32, TPJ_REDUCE_KIND_MAX, 0xFF800000u}, {TPJ_DTYPE_F32, TPJ_REDUCE_KIND_MIN, 0x7F800000u},
      {TPJ_DTYPE_F32, TPJ_REDUCE_KIND_MUL, 0x3F800000u}, {TPJ_DTYPE_BF16, TPJ_REDUCE_KIND_MAX, 0xFF80u},
      {TPJ_DTYPE_F16, TPJ_REDUCE_KIND_MIN, 0x7C00u},     {TPJ_DTYPE_S64, TPJ_REDUCE_KIND_MAX, 0x8000000000000000ull},
      {TPJ_DTYPE_S8, TPJ_REDUCE_KIND_MIN, 0x7Fu},        {TPJ_DTYPE_U8, TPJ_REDUCE_KIND_MIN, 0xFFu},
      {TPJ_DTYPE_U32, TPJ_REDUCE_KIND_AND, 0xFFFFFFFFu}, {TPJ_DTYPE_U64, TPJ_REDUCE_KIND_MIN, UINT64_MAX},
      {TPJ_DTYPE_S32, TPJ_REDUCE_KIND_OR, 0},            {TPJ_DTYPE_PRED, TPJ_REDUCE_KIND_AND, 1},
      {TPJ_DTYPE_PRED, TPJ_REDUCE_KIND_ADD, 0},          {TPJ_DTYPE_S16, TPJ_REDUCE_KIND_ADD, 0},
  };
  enum { N = sizeof(cases) / sizeof(cases[0]) };
  tpj_graph_t* g;
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = NULL;
  tpj_value_t res[N];
  for (int i = 0; i < N; ++i) {
    tpj_type_t t = T(cases[i].dt, 2, 0, 2, 0, 0);
    tpj_value_t c;
    int64_t d0 = 0;
    B(tpj_build_constant(g, &t, NULL, 0, &c));
    B(tpj_build_reduce_simple(g, c, cases[i].kind, &d0, 1, &res[i]));
  }
  B(tpj_graph_set_results(g, res, N));
  uint64_t o[N][2];
  void* outs[N];
  size_t sizes[N];
  for (int i = 0; i < N; ++i) outs[i] = o[i], sizes[i] = 2 * tpj_dtype_size(cases[i].dt);
  memset(o, 0, sizeof(o));
  B(e2e_run(g, NULL, 0, outs, sizes, N));
  tpj_graph_destroy(g);
  TPJ_EXPECT_OK(s);
  for (int i = 0; i < N; ++i) {
    size_t sz = tpj_dtype_size(cases[i].dt);
    for (int k = 0; k < 2; ++k) {
      uint64_t bits = 0;
      memcpy(&bits, (const unsigned char*)o[i] + k * sz, sz);
      if (bits != cases[i].want_bits)
        fprintf(stderr, "  case %d: got 0x%llx want 0x%llx\n", i, (unsigned long long)bits,
                (unsigned long long)cases[i].want_bits);
      TPJ_EXPECT(bits == cases[i].want_bits);
    }
  }
}

TPJ_TEST_MAIN("e2e_builder")
