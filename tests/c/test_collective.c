/* test_collective.c: the collective builders (tpj/ir.h) and
 * tpj_collective_run (tpj/collective.h) on the real CPU plugin with four
 * devices: every collective against a host reference, one group and two
 * groups of two, the signature cache, the exact builder and run errors, and
 * the emitted StableHLO of known cases. */
#include <stdlib.h>
#include <string.h>

#include "tpj/collective.h"
#include "tpj/eager.h"
#include "tpj/emit.h"
#include "tpj/program.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

#define N 4
static tpj_client_t* g_client;

static tpj_status_t ensure_client(void) {
  if (!g_client) return tpj_test_cpu_client(N, &g_client);
  return NULL;
}

/* Device d's input element i: small integers, exact in f32 and under every
 * reduction of four of them. */
static double input_value(size_t d, size_t i) { return (double)((d * 7 + i * 3) % 11) - 5.0; }

/* ------------------------------------------------------------- reference -- */

/* A 2-D case: each device's operand is (rows, cols). */
typedef struct case_s {
  tpj_collective_op_t op;
  tpj_dtype_t dtype;
  int64_t rows, cols;
} case_t;

static double reduce2(tpj_reduce_kind_t k, double a, double b) {
  switch (k) {
    case TPJ_REDUCE_KIND_ADD: return a + b;
    case TPJ_REDUCE_KIND_MUL: return a * b;
    case TPJ_REDUCE_KIND_MAX: return a > b ? a : b;
    default: return a < b ? a : b;
  }
}

/* The members of device d's group and d's position in it. */
static void group_of(const tpj_collective_op_t* op, size_t d, int64_t* members, size_t* size,
                     size_t* pos) {
  if (!op->replica_groups) {
    for (size_t m = 0; m < N; ++m) members[m] = (int64_t)m;
    *size = N;
    *pos = d;
    return;
  }
  *size = op->group_size;
  for (size_t g = 0; g < op->num_groups; ++g) {
    for (size_t m = 0; m < op->group_size; ++m) {
      if (op->replica_groups[g * op->group_size + m] != (int64_t)d) continue;
      memcpy(members, op->replica_groups + g * op->group_size, op->group_size * sizeof(int64_t));
      *pos = m;
      return;
    }
  }
}

/* Device d's expected result at (r, c) of its (out_rows, out_cols) result. */
static double expected_at(const case_t* k, size_t d, int64_t r, int64_t c, int64_t out_rows,
                          int64_t out_cols) {
  int64_t mem[N] = {0};
  size_t s = 1, pos = 0;
  group_of(&k->op, d, mem, &s, &pos);
  const tpj_collective_op_t* op = &k->op;
  int64_t C = k->cols;
  switch (op->kind) {
    case TPJ_COLLECTIVE_KIND_ALL_REDUCE:
    case TPJ_COLLECTIVE_KIND_REDUCE_SCATTER: {
      int64_t rr = r, cc = c; /* the reduced element this result element is */
      bool scatters = op->kind == TPJ_COLLECTIVE_KIND_REDUCE_SCATTER;
      if (scatters && op->dim == 0) rr += (int64_t)pos * out_rows;
      if (scatters && op->dim == 1) cc += (int64_t)pos * out_cols;
      double acc = input_value((size_t)mem[0], (size_t)(rr * C + cc));
      for (size_t m = 1; m < s; ++m)
        acc = reduce2(op->reduce, acc, input_value((size_t)mem[m], (size_t)(rr * C + cc)));
      return acc;
    }
    case TPJ_COLLECTIVE_KIND_ALL_GATHER:
      if (op->dim == 0)
        return input_value((size_t)mem[r / k->rows], (size_t)((r % k->rows) * C + c));
      return input_value((size_t)mem[c / C], (size_t)(r * C + c % C));
    default: { /* all_to_all: block m of the concat dim comes from member m */
      int64_t m = op->concat_dim == 0 ? r / (out_rows / (int64_t)s) : c / (out_cols / (int64_t)s);
      int64_t ir = op->concat_dim == 0 ? r % (out_rows / (int64_t)s) : r;
      int64_t ic = op->concat_dim == 1 ? c % (out_cols / (int64_t)s) : c;
      if (op->dim == 0) ir += (int64_t)pos * (k->rows / (int64_t)s);
      else ic += (int64_t)pos * (C / (int64_t)s);
      return input_value((size_t)mem[m], (size_t)(ir * C + ic));
    }
  }
}

/* ------------------------------------------------------------------ runs -- */

static tpj_status_t upload(const case_t* k, size_t d, tpj_buffer_t** out) {
  int64_t n = k->rows * k->cols, dims[2] = {k->rows, k->cols};
  float f[64];
  int32_t s[64];
  for (int64_t i = 0; i < n; ++i) {
    f[i] = (float)input_value(d, (size_t)i);
    s[i] = (int32_t)input_value(d, (size_t)i);
  }
  const void* data = k->dtype == TPJ_DTYPE_F32 ? (const void*)f : (const void*)s;
  return tpj_buffer_from_host(g_client, data, k->dtype, dims, 2, d, TPJ_HOST_SEMANTICS_COPY, out);
}

/* Compares device d's result with the reference; counts mismatches. */
static tpj_status_t check_result(const case_t* k, size_t d, tpj_buffer_t* b, int* bad) {
  TPJ_CHECK_ARG(tpj_buffer_rank(b) == 2, "test: result rank %zu", tpj_buffer_rank(b));
  int64_t rows = tpj_buffer_dims(b)[0], cols = tpj_buffer_dims(b)[1];
  size_t n = (size_t)(rows * cols);
  float f[256];
  int32_t s[256];
  TPJ_CHECK_ARG(n <= 256, "test: result too large");
  void* host = k->dtype == TPJ_DTYPE_F32 ? (void*)f : (void*)s;
  TPJ_RETURN_IF_ERROR(tpj_buffer_to_host(b, host, n * 4));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) {
      double got = k->dtype == TPJ_DTYPE_F32 ? f[r * cols + c] : s[r * cols + c];
      double want = expected_at(k, d, r, c, rows, cols);
      if (got != want && (*bad)++ < 5)
        fprintf(stderr, "  device %zu [%lld, %lld]: got %g, expected %g\n", d, (long long)r,
                (long long)c, got, want);
    }
  }
  return NULL;
}

/* Runs the case on N devices; checks the result shape and every element. */
static tpj_status_t run_case(const case_t* k, int64_t want_rows, int64_t want_cols, bool wait,
                             int* bad) {
  tpj_buffer_t* in[N] = {0};
  tpj_buffer_t* out[N] = {0};
  tpj_status_t s = NULL;
  for (size_t d = 0; d < N && !s; ++d) s = upload(k, d, &in[d]);
  if (!s) s = tpj_collective_run(g_client, &k->op, in, N, wait, out);
  if (!s && !wait) s = tpj_eager_synchronize();
  for (size_t d = 0; d < N && !s; ++d) {
    const int64_t* dims = tpj_buffer_dims(out[d]);
    if (dims[0] != want_rows || dims[1] != want_cols) {
      fprintf(stderr, "  device %zu: result %lldx%lld, expected %lldx%lld\n", d,
              (long long)dims[0], (long long)dims[1], (long long)want_rows, (long long)want_cols);
      ++*bad;
    }
    s = check_result(k, d, out[d], bad);
  }
  for (size_t d = 0; d < N; ++d) {
    tpj_buffer_destroy(in[d]);
    tpj_buffer_destroy(out[d]);
  }
  return s;
}

#define ONE_GROUP(kind_, reduce_, dim_, concat_)                         \
  ((tpj_collective_op_t){.kind = (kind_), .reduce = (reduce_), .dim = (dim_), \
                         .concat_dim = (concat_)})

TPJ_TEST(all_reduce_sum_max_min_prod_f32_s32) {
  TPJ_EXPECT_OK(ensure_client());
  const tpj_reduce_kind_t kinds[4] = {TPJ_REDUCE_KIND_ADD, TPJ_REDUCE_KIND_MAX,
                                      TPJ_REDUCE_KIND_MIN, TPJ_REDUCE_KIND_MUL};
  const tpj_dtype_t dtypes[2] = {TPJ_DTYPE_F32, TPJ_DTYPE_S32};
  for (int t = 0; t < 2; ++t) {
    for (int r = 0; r < 4; ++r) {
      case_t k = {ONE_GROUP(TPJ_COLLECTIVE_KIND_ALL_REDUCE, kinds[r], 0, 0), dtypes[t], 3, 5};
      int bad = 0;
      TPJ_EXPECT_OK(run_case(&k, 3, 5, true, &bad));
      if (bad)
        fprintf(stderr, "  all_reduce kind %d, %s\n", (int)kinds[r], tpj_dtype_name(dtypes[t]));
      TPJ_EXPECT(bad == 0);
    }
  }
}

TPJ_TEST(all_gather_along_dims_0_and_1) {
  TPJ_EXPECT_OK(ensure_client());
  int bad = 0;
  case_t k0 = {ONE_GROUP(TPJ_COLLECTIVE_KIND_ALL_GATHER, 0, 0, 0), TPJ_DTYPE_F32, 2, 3};
  TPJ_EXPECT_OK(run_case(&k0, 8, 3, true, &bad));
  case_t k1 = {ONE_GROUP(TPJ_COLLECTIVE_KIND_ALL_GATHER, 0, 1, 0), TPJ_DTYPE_S32, 2, 3};
  TPJ_EXPECT_OK(run_case(&k1, 2, 12, true, &bad));
  TPJ_EXPECT(bad == 0);
}

TPJ_TEST(reduce_scatter_sum_dim0_and_max_dim1) {
  TPJ_EXPECT_OK(ensure_client());
  int bad = 0;
  case_t k0 = {ONE_GROUP(TPJ_COLLECTIVE_KIND_REDUCE_SCATTER, TPJ_REDUCE_KIND_ADD, 0, 0),
               TPJ_DTYPE_F32, 8, 3};
  TPJ_EXPECT_OK(run_case(&k0, 2, 3, true, &bad));
  case_t k1 = {ONE_GROUP(TPJ_COLLECTIVE_KIND_REDUCE_SCATTER, TPJ_REDUCE_KIND_MAX, 1, 0),
               TPJ_DTYPE_S32, 2, 8};
  TPJ_EXPECT_OK(run_case(&k1, 2, 2, true, &bad));
  TPJ_EXPECT(bad == 0);
}

TPJ_TEST(all_to_all_both_directions) {
  TPJ_EXPECT_OK(ensure_client());
  int bad = 0;
  case_t k0 = {ONE_GROUP(TPJ_COLLECTIVE_KIND_ALL_TO_ALL, 0, 0, 1), TPJ_DTYPE_F32, 4, 3};
  TPJ_EXPECT_OK(run_case(&k0, 1, 12, true, &bad));
  case_t k1 = {ONE_GROUP(TPJ_COLLECTIVE_KIND_ALL_TO_ALL, 0, 1, 0), TPJ_DTYPE_S32, 2, 8};
  TPJ_EXPECT_OK(run_case(&k1, 8, 2, true, &bad));
  case_t k2 = {ONE_GROUP(TPJ_COLLECTIVE_KIND_ALL_TO_ALL, 0, 0, 0), TPJ_DTYPE_F32, 4, 2};
  TPJ_EXPECT_OK(run_case(&k2, 4, 2, true, &bad));
  TPJ_EXPECT(bad == 0);
}

TPJ_TEST(two_groups_of_two) {
  TPJ_EXPECT_OK(ensure_client());
  static const int64_t pairs[4] = {0, 1, 2, 3}, strided[4] = {0, 2, 1, 3};
  int bad = 0;
  case_t k = {{.kind = TPJ_COLLECTIVE_KIND_ALL_REDUCE, .reduce = TPJ_REDUCE_KIND_ADD,
               .replica_groups = pairs, .num_groups = 2, .group_size = 2}, TPJ_DTYPE_F32, 2, 3};
  TPJ_EXPECT_OK(run_case(&k, 2, 3, true, &bad));
  k.op.replica_groups = strided;
  TPJ_EXPECT_OK(run_case(&k, 2, 3, true, &bad));
  k.op.kind = TPJ_COLLECTIVE_KIND_ALL_GATHER;
  k.op.dim = 1;
  TPJ_EXPECT_OK(run_case(&k, 2, 6, true, &bad));
  k.op.kind = TPJ_COLLECTIVE_KIND_REDUCE_SCATTER;
  k.op.reduce = TPJ_REDUCE_KIND_MIN;
  k.dtype = TPJ_DTYPE_S32;
  k.rows = 4;
  k.op.dim = 0;
  TPJ_EXPECT_OK(run_case(&k, 2, 3, true, &bad));
  k.op.kind = TPJ_COLLECTIVE_KIND_ALL_TO_ALL;
  k.op.concat_dim = 1;
  TPJ_EXPECT_OK(run_case(&k, 2, 6, false, &bad)); /* left in flight, then synchronized */
  TPJ_EXPECT(bad == 0);
}

TPJ_TEST(programs_are_cached_per_signature) {
  TPJ_EXPECT_OK(ensure_client());
  tpj_collective_cache_evict_client(g_client);
  TPJ_EXPECT(tpj_collective_cache_size() == 0);
  int bad = 0;
  case_t k = {ONE_GROUP(TPJ_COLLECTIVE_KIND_ALL_REDUCE, TPJ_REDUCE_KIND_ADD, 0, 0),
              TPJ_DTYPE_F32, 2, 2};
  TPJ_EXPECT_OK(run_case(&k, 2, 2, true, &bad));
  TPJ_EXPECT(tpj_collective_cache_size() == 1);
  tpj_metrics_t before, after;
  tpj_runtime_metrics_get(&before);
  k.op.dim = 5; /* all_reduce reads no dim: the same signature */
  TPJ_EXPECT_OK(run_case(&k, 2, 2, true, &bad));
  tpj_runtime_metrics_get(&after);
  TPJ_EXPECT(tpj_collective_cache_size() == 1);
  TPJ_EXPECT(after.compiles == before.compiles && after.cache_hits == before.cache_hits);
  TPJ_EXPECT(after.executions == before.executions + 1);
  k.op.reduce = TPJ_REDUCE_KIND_MAX; /* another signature */
  TPJ_EXPECT_OK(run_case(&k, 2, 2, true, &bad));
  k.rows = 3; /* and another */
  TPJ_EXPECT_OK(run_case(&k, 3, 2, true, &bad));
  TPJ_EXPECT(tpj_collective_cache_size() == 3);
  TPJ_EXPECT(bad == 0);
  tpj_collective_cache_evict_client(g_client);
  TPJ_EXPECT(tpj_collective_cache_size() == 0);
}

/* An all_gather over flattened global device ids on a channel, as a
 * multi-process program has it, compiles and runs on the local devices too
 * (one partition: global ids are the replica ids). */
TPJ_TEST(channel_with_global_device_ids_runs) {
  TPJ_EXPECT_OK(ensure_client());
  static const int64_t ids[4] = {0, 1, 2, 3};
  tpj_collective_groups_t cg = {ids, 1, 4, 1, true};
  case_t k = {ONE_GROUP(TPJ_COLLECTIVE_KIND_ALL_GATHER, 0, 1, 0), TPJ_DTYPE_F32, 2, 3};
  tpj_graph_t* g = NULL;
  tpj_value_t x, y;
  const int64_t dims[2] = {2, 3};
  tpj_type_t t;
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, dims, 2, &t));
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  tpj_status_t s = tpj_graph_add_param(g, &t, &x);
  if (!s) s = tpj_build_all_gather(g, x, 1, &cg, &y);
  if (!s) s = tpj_graph_set_results(g, &y, 1);
  char* text = NULL;
  size_t len = 0;
  if (!s) s = tpj_emit_stablehlo(g, &text, &len);
  tpj_graph_destroy(g);
  tpj_compile_options_t o = {.num_replicas = N, .num_partitions = 1};
  tpj_cached_executable_t* exe = NULL;
  if (!s) s = tpj_runtime_compile_cached(g_client, text, len, &o, &exe, NULL);
  free(text);
  tpj_program_input_t input = {.kind = TPJ_PROGRAM_INPUT_BUFFER};
  tpj_program_plan_t plan = {.name = "global_ids", .inputs = &input, .num_inputs = 1};
  tpj_program_t* p = NULL;
  if (!s) s = tpj_program_create(exe, &plan, &p);
  tpj_cached_executable_release(exe);
  TPJ_EXPECT_OK(s);
  tpj_program_arg_t args[N] = {{0}};
  tpj_program_result_t res[N] = {{0}};
  for (size_t d = 0; d < N && !s; ++d) s = upload(&k, d, &args[d].buffer);
  tpj_program_call_t call = {.args = args, .num_devices = N, .results = res, .wait = true};
  if (!s) s = tpj_program_run(p, &call);
  int bad = 0;
  for (size_t d = 0; d < N && !s; ++d) s = check_result(&k, d, res[d].buffer, &bad);
  for (size_t d = 0; d < N; ++d) {
    tpj_buffer_destroy(args[d].buffer);
    tpj_buffer_destroy(res[d].buffer);
  }
  tpj_program_release(p);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(bad == 0);
}

/* ---------------------------------------------------------------- errors -- */


static tpj_status_t graph_with_param(tpj_dtype_t dt, const int64_t* dims, size_t rank,
                                     tpj_graph_t** g, tpj_value_t* x) {
  tpj_type_t t;
  TPJ_RETURN_IF_ERROR(tpj_type_init(dt, dims, rank, &t));
  TPJ_RETURN_IF_ERROR(tpj_graph_create(g));
  return tpj_graph_add_param(*g, &t, x);
}

TPJ_TEST(builder_errors_name_the_group_layout) {
  tpj_graph_t* g = NULL;
  tpj_value_t x, y;
  const int64_t dims[2] = {6, 4};
  TPJ_EXPECT_OK(graph_with_param(TPJ_DTYPE_F32, dims, 2, &g, &x));
  const int64_t repeats[4] = {0, 1, 1, 3}, outside[4] = {0, 1, 2, 4}, ok[4] = {0, 1, 2, 3};
  tpj_collective_groups_t cg = {repeats, 2, 2, 0, false};
  TPJ_EXPECT_MESSAGE(tpj_build_all_reduce_simple(g, x, TPJ_REDUCE_KIND_ADD, &cg, &y),
                 "stablehlo.all_reduce: replica_groups repeats id 1 (in group 1, expected each "
                 "of 0..3 once)");
  cg.replica_groups = outside;
  TPJ_EXPECT_MESSAGE(tpj_build_all_gather(g, x, 0, &cg, &y),
                 "stablehlo.all_gather: replica_groups id out of range (got 4 in group 1, "
                 "expected 0..3)");
  cg = (tpj_collective_groups_t){ok, 0, 4, 0, false};
  TPJ_EXPECT_MESSAGE(tpj_build_all_reduce_simple(g, x, TPJ_REDUCE_KIND_ADD, &cg, &y),
                 "stablehlo.all_reduce: replica_groups is empty (got 0 groups of 4, expected "
                 "at least one group of at least one id)");
  cg = (tpj_collective_groups_t){ok, 1, 4, 0, true};
  TPJ_EXPECT_MESSAGE(tpj_build_reduce_scatter_simple(g, x, TPJ_REDUCE_KIND_ADD, 1, &cg, &y),
                 "stablehlo.reduce_scatter: use_global_device_ids needs a channel_id > 0 (got 0)");
  cg.channel_id = 2;
  TPJ_EXPECT_MESSAGE(tpj_build_all_to_all(g, x, 1, 1, 4, &cg, &y),
                 "stablehlo.all_to_all: the op has no use_global_device_ids (got true, expected "
                 "false)");
  cg = (tpj_collective_groups_t){ok, 1, 4, -1, false};
  TPJ_EXPECT_MESSAGE(tpj_build_all_gather(g, x, 0, &cg, &y),
                 "stablehlo.all_gather: channel_id is negative (got -1, expected >= 0)");
  cg.replica_groups = NULL;
  cg.channel_id = 0;
  TPJ_EXPECT_MESSAGE(tpj_build_all_gather(g, x, 0, &cg, &y),
                 "stablehlo.all_gather: replica_groups is NULL");
  TPJ_EXPECT_MESSAGE(tpj_build_all_gather(g, x, 0, NULL, &y), "stablehlo.all_gather: groups is NULL");
  TPJ_EXPECT(tpj_graph_op_count(g) == 0); /* nothing was appended */
  tpj_graph_destroy(g);
}

TPJ_TEST(builder_errors_name_dims_and_dtypes) {
  tpj_graph_t* g = NULL;
  tpj_value_t x, y, s;
  const int64_t dims[2] = {6, 4};
  TPJ_EXPECT_OK(graph_with_param(TPJ_DTYPE_F32, dims, 2, &g, &x));
  tpj_type_t scalar = tpj_type_scalar(TPJ_DTYPE_F32);
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &scalar, &s));
  const int64_t ids[4] = {0, 1, 2, 3};
  tpj_collective_groups_t cg = {ids, 1, 4, 0, false};
  TPJ_EXPECT_MESSAGE(tpj_build_reduce_scatter_simple(g, x, TPJ_REDUCE_KIND_ADD, 0, &cg, &y),
                 "stablehlo.reduce_scatter: scatter_dimension 0 (size 6) does not split into 4 "
                 "equal parts (got remainder 2, expected 0)");
  TPJ_EXPECT_MESSAGE(tpj_build_all_to_all(g, x, 0, 1, 4, &cg, &y),
                 "stablehlo.all_to_all: split_dimension 0 (size 6) does not split into 4 equal "
                 "parts (got remainder 2, expected 0)");
  TPJ_EXPECT_MESSAGE(tpj_build_all_to_all(g, x, 1, 0, 2, &cg, &y),
                 "stablehlo.all_to_all: split_count differs from the group size (got 2, "
                 "expected 4)");
  TPJ_EXPECT_MESSAGE(tpj_build_all_gather(g, x, 2, &cg, &y),
                 "stablehlo.all_gather: all_gather_dim out of range (got 2, expected 0..1)");
  TPJ_EXPECT_MESSAGE(tpj_build_all_to_all(g, x, 1, -1, 4, &cg, &y),
                 "stablehlo.all_to_all: concat_dimension out of range (got -1, expected 0..1)");
  TPJ_EXPECT_MESSAGE(tpj_build_all_gather(g, s, 0, &cg, &y),
                 "stablehlo.all_gather: operand must have rank >= 1 (got tensor<f32>)");
  TPJ_EXPECT_MESSAGE(tpj_build_all_reduce_simple(g, x, TPJ_REDUCE_KIND_AND, &cg, &y),
                 "stablehlo.all_reduce: and/or reductions need an integer or pred input (got "
                 "float32)");
  TPJ_EXPECT_MESSAGE(tpj_build_all_reduce(g, x, &cg, 7, &y),
                 "stablehlo.all_reduce: body is not a region of this graph (got 7)");
  TPJ_EXPECT(tpj_graph_op_count(g) == 0);
  /* A body of another dtype than the operand. */
  tpj_type_t st[2] = {tpj_type_scalar(TPJ_DTYPE_S32), tpj_type_scalar(TPJ_DTYPE_S32)};
  tpj_value_t a[2], r;
  int32_t body;
  TPJ_EXPECT_OK(tpj_graph_region_begin(g, st, 2, a));
  TPJ_EXPECT_OK(tpj_build_binary(g, TPJ_BINARY_OP_ADD, a[0], a[1], &r));
  TPJ_EXPECT_OK(tpj_graph_region_end(g, &r, 1, &body));
  TPJ_EXPECT_MESSAGE(tpj_build_reduce_scatter(g, x, 1, &cg, body, &y),
                 "stablehlo.reduce_scatter: body argument 0 has the wrong type (got tensor<i32>, "
                 "expected tensor<f32>)");
  tpj_graph_destroy(g);
}

TPJ_TEST(run_refuses_buffers_that_do_not_fit) {
  TPJ_EXPECT_OK(ensure_client());
  case_t k = {ONE_GROUP(TPJ_COLLECTIVE_KIND_ALL_REDUCE, TPJ_REDUCE_KIND_ADD, 0, 0),
              TPJ_DTYPE_F32, 2, 2};
  case_t k3 = k;
  k3.rows = 3;
  tpj_buffer_t *in[N] = {0}, *odd = NULL, *out[N];
  for (size_t d = 0; d < N; ++d) TPJ_EXPECT_OK(upload(&k, d, &in[d]));
  TPJ_EXPECT_OK(upload(&k3, 2, &odd));
  tpj_buffer_t* swapped[N] = {in[1], in[0], in[2], in[3]};
  tpj_buffer_t* mixed[N] = {in[0], in[1], odd, in[3]};
  tpj_buffer_t* holes[N] = {in[0], NULL, in[2], in[3]};
  TPJ_EXPECT_MESSAGE(tpj_collective_run(g_client, &k.op, swapped, N, true, out),
                 "collective: buffer 0 is on device 1 (expected device 0)");
  TPJ_EXPECT(out[0] == NULL && out[3] == NULL);
  TPJ_EXPECT_MESSAGE(tpj_collective_run(g_client, &k.op, mixed, N, true, out),
                 "collective: buffer 2 has another type than buffer 0 (got tensor<3x2xf32>, "
                 "expected tensor<2x2xf32>)");
  TPJ_EXPECT_MESSAGE(tpj_collective_run(g_client, &k.op, holes, N, true, out),
                 "collective: buffer 1 is NULL");
  tpj_buffer_t* five[N + 1] = {in[0], in[1], in[2], in[3], in[0]};
  tpj_buffer_t* five_out[N + 1];
  TPJ_EXPECT_MESSAGE(tpj_collective_run(g_client, &k.op, five, N + 1, true, five_out),
                 "collective: device count out of range (got 5, expected 1..4)");
  static const int64_t half[2] = {0, 1};
  tpj_collective_op_t partial = {.kind = TPJ_COLLECTIVE_KIND_ALL_GATHER, .replica_groups = half,
                                 .num_groups = 1, .group_size = 2};
  TPJ_EXPECT_MESSAGE(tpj_collective_run(g_client, &partial, in, N, true, out),
                 "collective: replica_groups does not cover the devices (got 1 groups of 2, "
                 "expected 4 ids in all, one per device)");
  tpj_collective_op_t bad_kind = {.kind = (tpj_collective_kind_t)9};
  TPJ_EXPECT_MESSAGE(tpj_collective_run(g_client, &bad_kind, in, N, true, out),
                 "collective: unknown kind (got 9, expected 0..3)");
  k.op.dim = 1;
  k.op.kind = TPJ_COLLECTIVE_KIND_REDUCE_SCATTER; /* 2 columns into 4 parts */
  TPJ_EXPECT_MESSAGE(tpj_collective_run(g_client, &k.op, in, N, true, out),
                 "stablehlo.reduce_scatter: scatter_dimension 1 (size 2) does not split into 4 "
                 "equal parts (got remainder 2, expected 0)");
  TPJ_EXPECT(out[0] == NULL && out[1] == NULL && out[2] == NULL && out[3] == NULL);
  for (size_t d = 0; d < N; ++d) tpj_buffer_destroy(in[d]);
  tpj_buffer_destroy(odd);
}

/* ------------------------------------------------------------- emission -- */

TPJ_TEST(emitted_all_reduce_over_two_groups) {
  static const int64_t pairs[4] = {0, 1, 2, 3};
  tpj_collective_op_t op = {.kind = TPJ_COLLECTIVE_KIND_ALL_REDUCE, .reduce = TPJ_REDUCE_KIND_ADD,
                            .replica_groups = pairs, .num_groups = 2, .group_size = 2};
  const int64_t dims[1] = {4};
  tpj_type_t t;
  TPJ_EXPECT_OK(tpj_type_init(TPJ_DTYPE_F32, dims, 1, &t));
  char* text = NULL;
  size_t len = 0;
  TPJ_EXPECT_OK(tpj_collective_program_text(&op, &t, 4, &text, &len));
  static const char kWant[] =
      "module attributes {mhlo.num_replicas = 4 : i32, mhlo.num_partitions = 1 : i32} {\n"
      "  func.func @main(%arg0: tensor<4xf32>) -> (tensor<4xf32>) {\n"
      "    %4 = \"stablehlo.all_reduce\"(%arg0) ({\n"
      "      ^bb0(%1: tensor<f32>, %2: tensor<f32>):\n"
      "        %3 = \"stablehlo.add\"(%1, %2) : (tensor<f32>, tensor<f32>) -> tensor<f32>\n"
      "        \"stablehlo.return\"(%3) : (tensor<f32>) -> ()\n"
      "    }) {replica_groups = dense<[[0, 1], [2, 3]]> : tensor<2x2xi64>} : (tensor<4xf32>) -> "
      "tensor<4xf32>\n"
      "    \"func.return\"(%4) : (tensor<4xf32>) -> ()\n"
      "  }\n"
      "}\n";
  if (!text || strcmp(text, kWant) != 0) fprintf(stderr, "  got:\n%s", text ? text : "(null)");
  TPJ_EXPECT(text && strcmp(text, kWant) == 0 && len == strlen(kWant));
  free(text);
}

TPJ_TEST(emitted_attributes_of_each_op) {
  tpj_graph_t* g = NULL;
  tpj_value_t x, y[4];
  const int64_t dims[2] = {4, 8}, ids[4] = {0, 2, 1, 3};
  TPJ_EXPECT_OK(graph_with_param(TPJ_DTYPE_S32, dims, 2, &g, &x));
  tpj_collective_groups_t global = {ids, 2, 2, 3, true}, plain = {ids, 2, 2, 0, false};
  TPJ_EXPECT_OK(tpj_build_all_gather(g, x, 1, &global, &y[0]));
  TPJ_EXPECT_OK(tpj_build_reduce_scatter_simple(g, x, TPJ_REDUCE_KIND_MAX, 0, &plain, &y[1]));
  TPJ_EXPECT_OK(tpj_build_all_to_all(g, x, 1, 0, 2, &plain, &y[2]));
  TPJ_EXPECT_OK(tpj_build_all_reduce_simple(g, x, TPJ_REDUCE_KIND_MUL, &global, &y[3]));
  TPJ_EXPECT(tpj_graph_value_type(g, y[0])->dims[1] == 16);
  TPJ_EXPECT(tpj_graph_value_type(g, y[1])->dims[0] == 2);
  const tpj_type_t* t2 = tpj_graph_value_type(g, y[2]);
  TPJ_EXPECT(t2->dims[0] == 8 && t2->dims[1] == 4);
  TPJ_EXPECT_OK(tpj_graph_set_results(g, y, 4));
  char* text = NULL;
  size_t len = 0;
  TPJ_EXPECT_OK(tpj_emit_stablehlo(g, &text, &len));
  static const char* const kWant[] = {
      "\"stablehlo.all_gather\"(%arg0) {all_gather_dim = 1 : i64, replica_groups = "
      "dense<[[0, 2], [1, 3]]> : tensor<2x2xi64>, channel_handle = "
      "#stablehlo.channel_handle<handle = 3, type = 1>, use_global_device_ids} : "
      "(tensor<4x8xi32>) -> tensor<4x16xi32>",
      "\"stablehlo.maximum\"(",
      "{scatter_dimension = 0 : i64, replica_groups = dense<[[0, 2], [1, 3]]> : "
      "tensor<2x2xi64>} : (tensor<4x8xi32>) -> tensor<2x8xi32>",
      "\"stablehlo.all_to_all\"(%arg0) {split_dimension = 1 : i64, concat_dimension = 0 : i64, "
      "split_count = 2 : i64, replica_groups = dense<[[0, 2], [1, 3]]> : tensor<2x2xi64>} : "
      "(tensor<4x8xi32>) -> tensor<8x4xi32>",
      "\"stablehlo.multiply\"(",
  };
  for (size_t i = 0; i < sizeof(kWant) / sizeof(kWant[0]); ++i) {
    if (!text || !strstr(text, kWant[i])) {
      fprintf(stderr, "  missing: %s\n  in:\n%s", kWant[i], text ? text : "(null)");
      *failed = 1;
    }
  }
  free(text);
  tpj_graph_destroy(g);
}

int main(void) {
  int rc = tpj_test_run_all("collective");
  tpj_collective_cache_clear();
  if (g_client) {
    tpj_runtime_cache_evict_client(g_client);
    tpj_client_destroy(g_client);
  }
  return rc;
}
