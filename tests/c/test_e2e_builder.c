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

TPJ_TEST_MAIN("e2e_builder")
