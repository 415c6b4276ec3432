/* test_program_fake.c: tpj_program_run's error paths against the fault-
 * injecting fake plugin: a launch that fails, one that fails after producing
 * outputs, and a computation whose completion event reports an error, with
 * the call waiting (the error is the call's) and not waiting (the next
 * synchronization returns it). Nothing may be left behind (run under ASan).
 * Fake program semantics: output j = argument (j % num_args) + (j + 1). */
#include <stdlib.h>
#include <string.h>

#include "tpj/eager.h"
#include "tpj/program.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

static tpj_client_t* g_client;

static tpj_status_t ensure_init(void) {
  if (g_client) return NULL;
  tpj_plugin_t* p = NULL;
  TPJ_RETURN_IF_ERROR(tpj_plugin_load(getenv("TPJ_FAKE_PLUGIN"), &p));
  tpj_option_t o = {.name = "device_count", .kind = TPJ_OPTION_KIND_INT64, .int_value = 1};
  TPJ_RETURN_IF_ERROR(tpj_client_create(p, &o, 1, &g_client));
  return tpj_eager_init(g_client);
}

static tpj_status_t make_program(tpj_program_t** out) {
  static const char kText[] = "module { fake.outputs=2 }";
  tpj_compile_options_t o = {.num_replicas = 1, .num_partitions = 1, .portable = true};
  tpj_cached_executable_t* exe = NULL;
  TPJ_RETURN_IF_ERROR(tpj_runtime_compile_cached(g_client, kText, strlen(kText), &o, &exe, NULL));
  tpj_program_input_t in = {.kind = TPJ_PROGRAM_INPUT_BUFFER};
  tpj_program_plan_t plan = {"fake2", &in, 1, NULL, 0};
  tpj_status_t st = tpj_program_create(exe, &plan, out);
  tpj_cached_executable_release(exe);
  return st;
}

static tpj_status_t vec4(float base, tpj_buffer_t** out) {
  float x[4] = {base, base + 1, base + 2, base + 3};
  int64_t dims[1] = {4};
  return tpj_buffer_from_host(g_client, x, TPJ_DTYPE_F32, dims, 1, 0, TPJ_HOST_SEMANTICS_COPY,
                              out);
}

/* Runs with the fake plugin in `mode`; returns the call's status. */
static tpj_status_t run_in_mode(const char* mode, bool wait, tpj_program_result_t res[2]) {
  tpj_program_t* p = NULL;
  tpj_buffer_t* arg = NULL;
  TPJ_RETURN_IF_ERROR(make_program(&p));
  tpj_status_t st = vec4(10, &arg);
  float host[4] = {0};
  memset(res, 0, 2 * sizeof(*res));
  res[1].host = host;
  res[1].host_nbytes = sizeof(host);
  tpj_program_arg_t a = {.buffer = arg};
  tpj_program_call_t call = {&a, 1, 0, res, wait};
  if (!st) {
    setenv("TPJ_FAKE_MODE", mode, 1);
    st = tpj_program_run(p, &call);
    unsetenv("TPJ_FAKE_MODE");
  }
  tpj_buffer_destroy(arg);
  tpj_program_release(p);
  return st;
}

static uint64_t executions(void) {
  tpj_metrics_t m;
  tpj_runtime_metrics_get(&m);
  return m.executions;
}

TPJ_TEST(program_runs_on_the_fake_plugin) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_program_result_t res[2];
  uint64_t before = executions();
  TPJ_EXPECT_OK(run_in_mode("none", true, res));
  TPJ_EXPECT(executions() == before + 1 && res[0].buffer && !res[1].buffer);
  float y[4] = {0};
  TPJ_EXPECT_OK(tpj_buffer_to_host(res[0].buffer, y, sizeof(y)));
  TPJ_EXPECT(y[0] == 11 && y[3] == 14);
  tpj_buffer_destroy(res[0].buffer);
}

TPJ_TEST(failed_launches_leave_nothing) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_program_result_t res[2];
  uint64_t before = executions();
  TPJ_EXPECT_ERROR(run_in_mode("execute_fail", true, res), INTERNAL, "fake: execution failed");
  TPJ_EXPECT(res[0].buffer == NULL && res[1].buffer == NULL);
  TPJ_EXPECT_ERROR(run_in_mode("execute_partial", false, res), INTERNAL,
                   "after producing outputs");
  TPJ_EXPECT(res[0].buffer == NULL && res[1].buffer == NULL);
  TPJ_EXPECT(executions() == before); /* only launches that happened count */
  TPJ_EXPECT_OK(tpj_eager_synchronize());
}

TPJ_TEST(a_failing_computation_fails_the_call_or_the_next_sync) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_program_result_t res[2];
  TPJ_EXPECT_ERROR(run_in_mode("event_error", true, res), DATA_LOSS, "device lost");
  TPJ_EXPECT(res[0].buffer == NULL && res[1].buffer == NULL);
  /* not waiting: launched, results handed back; the error comes at the sync
   * (a host result still waits for its copy, so it is left out here) */
  tpj_program_t* p = NULL;
  tpj_buffer_t* arg = NULL;
  TPJ_EXPECT_OK(make_program(&p));
  TPJ_EXPECT_OK(vec4(1, &arg));
  tpj_program_result_t two[2] = {{0}, {0}};
  tpj_program_arg_t a = {.buffer = arg};
  tpj_program_call_t call = {&a, 1, 0, two, false};
  setenv("TPJ_FAKE_MODE", "event_error", 1);
  tpj_status_t st = tpj_program_run(p, &call);
  unsetenv("TPJ_FAKE_MODE");
  TPJ_EXPECT_OK(st);
  TPJ_EXPECT(two[0].buffer && two[1].buffer);
  TPJ_EXPECT_ERROR(tpj_eager_synchronize(), DATA_LOSS, "an eager program failed");
  TPJ_EXPECT_OK(tpj_eager_synchronize());
  tpj_buffer_destroy(two[0].buffer);
  tpj_buffer_destroy(two[1].buffer);
  tpj_buffer_destroy(arg);
  tpj_program_release(p);
}

TPJ_TEST_MAIN("program_fake")
