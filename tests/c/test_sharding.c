/* test_sharding.c: the manual-sharding builders (tpj/ir.h, build_sharding.c):
 * their exact emitted text and errors, and the full pattern (shard a
 * parameter, per-partition ops, back to full) compiled SPMD for four
 * partitions on the real CPU plugin and run through tpj_program_run. */
#include <stdlib.h>
#include <string.h>

#include "tpj/emit.h"
#include "tpj/program.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

#define N 4
static tpj_client_t* g_client;


static tpj_type_t f32(const int64_t* dims, size_t rank) {
  tpj_type_t t = {0};
  tpj_status_free(tpj_type_init(TPJ_DTYPE_F32, dims, rank, &t));
  return t;
}

/* f32[4N] sharded over N partitions; each partition doubles its shard as
 * (6, 2); the result is f32[6, 2N] split along dim 1. */
static tpj_status_t build_pattern(tpj_graph_t** out) {
  static const int64_t full[1] = {12 * N}, shard[1] = {12}, mat[2] = {6, 2},
                       wide[2] = {6, 2 * N};
  tpj_type_t tf = f32(full, 1), ts = f32(shard, 1), tw = f32(wide, 2);
  tpj_graph_t* g = NULL;
  TPJ_RETURN_IF_ERROR(tpj_graph_create(&g));
  tpj_value_t p, a, b, c, d, e, f;
  tpj_status_t s = tpj_graph_add_param(g, &tf, &p);
  if (!s) s = tpj_graph_set_param_attr(g, 0, "mhlo.sharding = \"{devices=[4]0,1,2,3}\"");
  if (!s) s = tpj_build_sharding(g, p, "{devices=[4]0,1,2,3}", &a);
  if (!s) s = tpj_build_full_to_shard(g, a, &ts, &b);
  if (!s) s = tpj_build_reshape(g, b, mat, 2, &c);
  if (!s) s = tpj_build_binary(g, TPJ_BINARY_OP_ADD, c, c, &d);
  if (!s) s = tpj_build_sharding(g, d, "{manual}", &e);
  if (!s) s = tpj_build_shard_to_full(g, e, "{devices=[1,4]0,1,2,3}", &tw, &f);
  if (!s) s = tpj_graph_set_results(g, &f, 1);
  if (!s) s = tpj_graph_set_result_attr(g, 0, "mhlo.sharding = \"{devices=[1,4]0,1,2,3}\"");
  if (!s) s = tpj_graph_add_module_attr(g, "mhlo.num_partitions = 4 : i32");
  if (!s) s = tpj_graph_add_module_attr(g, "mhlo.num_replicas = 1 : i32");
  if (s) tpj_graph_destroy(g);
  else *out = g;
  return s;
}

static char* emit(const tpj_graph_t* g) {
  char* text = NULL;
  size_t len = 0;
  tpj_status_t s = tpj_emit_stablehlo(g, &text, &len);
  tpj_status_free(s);
  return text;
}

/* ------------------------------------------------------------- emission -- */

TPJ_TEST(emitted_pattern) {
  tpj_graph_t* g = NULL;
  TPJ_EXPECT_OK(build_pattern(&g));
  char* text = g ? emit(g) : NULL;
  static const char want[] =
      "module attributes {mhlo.num_partitions = 4 : i32, mhlo.num_replicas = 1 : i32} {\n"
      "  func.func @main(%arg0: tensor<48xf32> {mhlo.sharding = \"{devices=[4]0,1,2,3}\"}) -> "
      "(tensor<6x8xf32> {mhlo.sharding = \"{devices=[1,4]0,1,2,3}\"}) {\n"
      "    %1 = \"stablehlo.custom_call\"(%arg0) {call_target_name = \"Sharding\", "
      "mhlo.sharding = \"{devices=[4]0,1,2,3}\"} : (tensor<48xf32>) -> tensor<48xf32>\n"
      "    %2 = \"stablehlo.custom_call\"(%1) {call_target_name = \"SPMDFullToShardShape\", "
      "mhlo.sharding = \"{manual}\"} : (tensor<48xf32>) -> tensor<12xf32>\n"
      "    %3 = \"stablehlo.reshape\"(%2) : (tensor<12xf32>) -> tensor<6x2xf32>\n"
      "    %4 = \"stablehlo.add\"(%3, %3) : (tensor<6x2xf32>, tensor<6x2xf32>) -> "
      "tensor<6x2xf32>\n"
      "    %5 = \"stablehlo.custom_call\"(%4) {call_target_name = \"Sharding\", "
      "mhlo.sharding = \"{manual}\"} : (tensor<6x2xf32>) -> tensor<6x2xf32>\n"
      "    %6 = \"stablehlo.custom_call\"(%5) {call_target_name = \"SPMDShardToFullShape\", "
      "mhlo.sharding = \"{devices=[1,4]0,1,2,3}\"} : (tensor<6x2xf32>) -> tensor<6x8xf32>\n"
      "    \"func.return\"(%6) : (tensor<6x8xf32>) -> ()\n"
      "  }\n"
      "}\n";
  TPJ_EXPECT(text && strcmp(text, want) == 0);
  if (text && strcmp(text, want)) fprintf(stderr, "  got:\n%s", text);
  free(text);
  tpj_graph_destroy(g);
}

/* ---------------------------------------------------------------- errors -- */

TPJ_TEST(sharding_text_errors) {
  tpj_graph_t* g = NULL;
  tpj_value_t x, y;
  const int64_t dims[1] = {8};
  tpj_type_t t = f32(dims, 1);
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &x));
  TPJ_EXPECT_MESSAGE(tpj_build_sharding(g, x, NULL, &y), "stablehlo.custom_call @Sharding: sharding "
                 "is NULL");
  TPJ_EXPECT_MESSAGE(tpj_build_sharding(g, x, "{", &y), "stablehlo.custom_call @Sharding: sharding "
                 "has the wrong length (got 1 chars, expected 2..4096)");
  char* big = malloc(4098);
  memset(big, 'x', 4097);
  big[0] = '{';
  big[4096] = '}';
  big[4097] = 0;
  TPJ_EXPECT_MESSAGE(tpj_build_sharding(g, x, big, &y), "stablehlo.custom_call @Sharding: sharding "
                 "has the wrong length (got more than 4096 chars, expected 2..4096)");
  big[4095] = '}';
  big[4096] = 0;
  TPJ_EXPECT_OK(tpj_build_sharding(g, x, big, &y)); /* exactly 4096 */
  free(big);
  TPJ_EXPECT_MESSAGE(tpj_build_sharding(g, x, "replicated", &y), "stablehlo.custom_call @Sharding: "
                 "sharding is not in braces (got \"replicated\", expected \"{...}\")");
  TPJ_EXPECT_MESSAGE(tpj_build_shard_to_full(g, x, "{a\"b}", &t, &y), "stablehlo.custom_call "
                 "@SPMDShardToFullShape: sharding has a character that cannot be quoted (got "
                 "byte 0x22 at offset 2, expected no '\"', '\\' or control character)");
  TPJ_EXPECT_MESSAGE(tpj_build_sharding(g, x, "{a\\}", &y), "stablehlo.custom_call @Sharding: "
                 "sharding has a character that cannot be quoted (got byte 0x5c at offset 2, "
                 "expected no '\"', '\\' or control character)");
  TPJ_EXPECT_MESSAGE(tpj_build_sharding(g, x, "{\n}", &y), "stablehlo.custom_call @Sharding: "
                 "sharding has a character that cannot be quoted (got byte 0x0a at offset 1, "
                 "expected no '\"', '\\' or control character)");
  TPJ_EXPECT_MESSAGE(tpj_build_sharding(g, 99, "{manual}", &y), "stablehlo.custom_call @Sharding: "
                 "operand is not a value of this graph (got 99, expected 0..1)");
  TPJ_EXPECT_MESSAGE(tpj_build_sharding(g, x, "{manual}", NULL), "stablehlo.custom_call @Sharding: "
                 "graph or out is NULL");
  TPJ_EXPECT(tpj_graph_op_count(g) == 1); /* only the 4096-char one */
  tpj_graph_destroy(g);
}

TPJ_TEST(shape_errors) {
  tpj_graph_t* g = NULL;
  tpj_value_t x, z, y;
  const int64_t dims[2] = {8, 3}, zero[2] = {0, 3};
  tpj_type_t t = f32(dims, 2), tz = f32(zero, 2);
  TPJ_EXPECT_OK(tpj_graph_create(&g));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &t, &x));
  TPJ_EXPECT_OK(tpj_graph_add_param(g, &tz, &z));
  const char* f2s = "stablehlo.custom_call @SPMDFullToShardShape: ";
  char want[256];
  tpj_type_t bad = t;
  bad.dims[0] = 9;
  snprintf(want, sizeof(want), "%sshard dim 0 does not fit the full dim (got 9, expected 1..8)",
           f2s);
  TPJ_EXPECT_MESSAGE(tpj_build_full_to_shard(g, x, &bad, &y), want);
  bad.dims[0] = 0;
  snprintf(want, sizeof(want), "%sshard dim 0 does not fit the full dim (got 0, expected 1..8)",
           f2s);
  TPJ_EXPECT_MESSAGE(tpj_build_full_to_shard(g, x, &bad, &y), want);
  bad = tz;
  bad.dims[0] = 1;
  snprintf(want, sizeof(want), "%sshard dim 0 does not fit the full dim (got 1, expected 0)",
           f2s);
  TPJ_EXPECT_MESSAGE(tpj_build_full_to_shard(g, z, &bad, &y), want);
  TPJ_EXPECT_OK(tpj_build_full_to_shard(g, z, &tz, &y)); /* an empty dim stays empty */
  bad = t;
  bad.dtype = TPJ_DTYPE_S32;
  snprintf(want, sizeof(want), "%sshard_type has the wrong dtype (got tensor<8x3xi32>, expected "
           "f32 like the operand tensor<8x3xf32>)", f2s);
  TPJ_EXPECT_MESSAGE(tpj_build_full_to_shard(g, x, &bad, &y), want);
  bad = f32(dims, 1);
  snprintf(want, sizeof(want), "%sshard_type has the wrong rank (got tensor<8xf32>, expected "
           "rank 2 like the operand tensor<8x3xf32>)", f2s);
  TPJ_EXPECT_MESSAGE(tpj_build_full_to_shard(g, x, &bad, &y), want);
  bad.rank = 99;
  snprintf(want, sizeof(want), "%sshard_type has a bad rank (got 99, expected 2 like the "
           "operand tensor<8x3xf32>)", f2s);
  TPJ_EXPECT_MESSAGE(tpj_build_full_to_shard(g, x, &bad, &y), want);
  snprintf(want, sizeof(want), "%sshard_type is NULL", f2s);
  TPJ_EXPECT_MESSAGE(tpj_build_full_to_shard(g, x, NULL, &y), want);
  bad = t;
  bad.dims[1] = 2;
  TPJ_EXPECT_MESSAGE(tpj_build_shard_to_full(g, x, "{replicated}", &bad, &y),
                 "stablehlo.custom_call @SPMDShardToFullShape: full dim 1 is smaller than the "
                 "shard dim (got 2, expected >= 3)");
  TPJ_EXPECT_MESSAGE(tpj_build_shard_to_full(g, x, "{replicated}", NULL, &y),
                 "stablehlo.custom_call @SPMDShardToFullShape: full_type is NULL");
  TPJ_EXPECT(tpj_graph_op_count(g) == 1);
  tpj_graph_destroy(g);
}

/* ------------------------------------------------------------ end to end -- */

TPJ_TEST(pattern_runs_on_four_partitions) {
  if (!g_client) TPJ_EXPECT_OK(tpj_test_cpu_client(N, &g_client));
  if (!g_client) return;
  tpj_graph_t* g = NULL;
  char* text = NULL;
  size_t len = 0;
  tpj_status_t s = build_pattern(&g);
  if (!s) s = tpj_emit_stablehlo(g, &text, &len);
  tpj_graph_destroy(g);
  tpj_compile_options_t o = {.num_replicas = 1, .num_partitions = N,
                             .use_spmd_partitioning = true};
  tpj_cached_executable_t* exe = NULL;
  if (!s) s = tpj_runtime_compile_cached(g_client, text, len, &o, &exe, NULL);
  free(text);
  tpj_program_input_t input = {.kind = TPJ_PROGRAM_INPUT_BUFFER};
  tpj_program_plan_t plan = {.name = "spmd_pattern", .inputs = &input, .num_inputs = 1};
  tpj_program_t* p = NULL;
  if (!s) s = tpj_program_create(exe, &plan, &p);
  tpj_cached_executable_release(exe);
  TPJ_EXPECT_OK(s);
  if (!p) return;
  tpj_program_arg_t args[N] = {{0}};
  tpj_program_result_t res[N] = {{0}};
  for (size_t d = 0; d < N && !s; ++d) {
    float v[12];
    int64_t n = 12;
    for (int i = 0; i < 12; ++i) v[i] = (float)(d * 12 + (size_t)i);
    s = tpj_buffer_from_host(g_client, v, TPJ_DTYPE_F32, &n, 1, d, TPJ_HOST_SEMANTICS_COPY,
                             &args[d].buffer);
  }
  tpj_program_call_t call = {.args = args, .num_devices = N, .results = res, .wait = true};
  if (!s) s = tpj_program_run(p, &call);
  TPJ_EXPECT_OK(s);
  for (size_t d = 0; d < N && !s; ++d) {
    float y[12] = {0};
    TPJ_EXPECT(tpj_buffer_device_index(res[d].buffer) == d);
    TPJ_EXPECT(tpj_buffer_rank(res[d].buffer) == 2 && tpj_buffer_dims(res[d].buffer)[0] == 6 &&
               tpj_buffer_dims(res[d].buffer)[1] == 2);
    TPJ_EXPECT_OK(tpj_buffer_to_host(res[d].buffer, y, sizeof(y)));
    for (int i = 0; i < 12; ++i) TPJ_EXPECT(y[i] == 2.0f * (float)(d * 12 + (size_t)i));
  }
  for (size_t d = 0; d < N; ++d) {
    tpj_buffer_destroy(args[d].buffer);
    tpj_buffer_destroy(res[d].buffer);
  }
  tpj_program_release(p);
}

TPJ_TEST_MAIN("sharding")
