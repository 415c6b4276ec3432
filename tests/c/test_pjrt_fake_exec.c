/* test_pjrt_fake_exec.c: execution through src/pjrt/ against the fake plugin:
 * outputs, donation, completion events, several devices, and the execution
 * faults (launch failure, partial outputs, failing events) with no leaks.
 * Fake program semantics: output j = argument (j % num_args) + (j + 1).
 */
#include <stdlib.h>
#include <string.h>

#include "tpj/pjrt.h"
#include "tpj_test.h"

static tpj_status_t fake_client(size_t devices, tpj_client_t** out) {
  tpj_plugin_t* p = NULL;
  TPJ_RETURN_IF_ERROR(tpj_plugin_load(getenv("TPJ_FAKE_PLUGIN"), &p));
  tpj_option_t o = {.name = "device_count", .kind = TPJ_OPTION_KIND_INT64,
                    .int_value = (int64_t)devices};
  return tpj_client_create(p, &o, 1, out);
}

static const char kProgram[] = "module { fake.outputs=3 }";

/* Buffers holding {base, base+1, base+2, base+3} on `device`. */
static tpj_status_t vec4(tpj_client_t* c, float base, size_t device, tpj_buffer_t** out) {
  float x[4] = {base, base + 1, base + 2, base + 3};
  int64_t dims[1] = {4};
  return tpj_buffer_from_host(c, x, TPJ_DTYPE_F32, dims, 1, device, TPJ_HOST_SEMANTICS_COPY,
                              out);
}

typedef struct { int calls; tpj_status_code_t code; } ready_log_t;
static void on_ready(tpj_status_t st, void* user) {
  ready_log_t* log = (ready_log_t*)user;
  log->calls++;
  log->code = tpj_status_code(st);
  tpj_status_free(st);
}

TPJ_TEST(execute_outputs_donation_events) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(fake_client(1, &c));
  tpj_executable_t* e = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(c, kProgram, strlen(kProgram), NULL, &e));
  TPJ_EXPECT(tpj_executable_num_outputs(e) == 3 && tpj_executable_num_devices(e) == 1);
  tpj_dtype_t types[3];
  TPJ_EXPECT_OK(tpj_executable_output_dtypes(e, types, 3));
  TPJ_EXPECT(types[0] == TPJ_DTYPE_F32 && types[2] == TPJ_DTYPE_F32);
  tpj_buffer_t* args[2] = {NULL, NULL};
  TPJ_EXPECT_OK(vec4(c, 10, 0, &args[0]));
  TPJ_EXPECT_OK(vec4(c, 20, 0, &args[1]));
  bool donate[2] = {true, false};
  tpj_buffer_t* outs[3];
  tpj_event_t* events[1];
  tpj_execute_args_t x = {args, 2, 1, donate, outs, events, 0};
  TPJ_EXPECT_OK(tpj_executable_execute(e, &x));
  TPJ_EXPECT(tpj_buffer_is_deleted(args[0]) && !tpj_buffer_is_deleted(args[1]));
  ready_log_t log = {0, TPJ_STATUS_UNKNOWN};
  TPJ_EXPECT_OK(tpj_event_on_ready(events[0], on_ready, &log));
  TPJ_EXPECT(log.calls == 1 && log.code == TPJ_STATUS_OK);
  TPJ_EXPECT(tpj_event_is_ready(events[0]));
  TPJ_EXPECT_OK(tpj_event_await(events[0]));
  float y[4];
  const float want[3][4] = {{11, 12, 13, 14}, {22, 23, 24, 25}, {13, 14, 15, 16}};
  for (int j = 0; j < 3; ++j) {
    TPJ_EXPECT_OK(tpj_buffer_to_host(outs[j], y, sizeof(y)));
    TPJ_EXPECT(!memcmp(y, want[j], sizeof(y)));
    tpj_buffer_destroy(outs[j]);
  }
  tpj_event_destroy(events[0]);
  /* A donated argument cannot be used again: the plugin's error surfaces. */
  TPJ_EXPECT_ERROR(tpj_executable_execute(e, &x), FAILED_PRECONDITION,
                   "fake: argument 0 was deleted");
  TPJ_EXPECT(outs[0] == NULL && events[0] == NULL);
  tpj_buffer_destroy(args[0]);
  tpj_buffer_destroy(args[1]);
  tpj_executable_destroy(e);
  tpj_client_destroy(c);
}

TPJ_TEST(execute_on_two_devices) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(fake_client(2, &c));
  tpj_compile_options_t opts = {2, 1, false, false, false};
  tpj_executable_t* e = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(c, "fake.outputs=1", 14, &opts, &e));
  TPJ_EXPECT(tpj_executable_num_devices(e) == 2);
  tpj_buffer_t* args[2] = {NULL, NULL}; /* (device, arg) */
  TPJ_EXPECT_OK(vec4(c, 0, 0, &args[0]));
  TPJ_EXPECT_OK(vec4(c, 100, 1, &args[1]));
  tpj_buffer_t* outs[2];
  tpj_execute_args_t x = {args, 1, 2, NULL, outs, NULL, 0};
  TPJ_EXPECT_OK(tpj_executable_execute(e, &x));
  float y[4];
  TPJ_EXPECT_OK(tpj_buffer_to_host(outs[1], y, sizeof(y)));
  TPJ_EXPECT(y[0] == 101 && y[3] == 104 && tpj_buffer_device_index(outs[1]) == 1);
  TPJ_EXPECT(!tpj_buffer_is_deleted(args[0])); /* donate NULL: nothing donated */
  tpj_execute_args_t wrong = {args, 1, 1, NULL, outs, NULL, 0};
  TPJ_EXPECT_ERROR(tpj_executable_execute(e, &wrong), INVALID_ARGUMENT,
                   "wrong number of devices (got 1, expected 2)");
  for (int i = 0; i < 2; ++i) {
    tpj_buffer_destroy(outs[i]);
    tpj_buffer_destroy(args[i]);
  }
  tpj_executable_destroy(e);
  tpj_client_destroy(c);
}

/* Runs the 2-device program once in `mode`; expects failure with `needle`. */
static void run_failing(int* failed, const char* mode, tpj_status_code_t code,
                        const char* needle) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(fake_client(2, &c));
  tpj_compile_options_t opts = {2, 1, false, false, false};
  tpj_executable_t* e = NULL;
  tpj_buffer_t* args[2] = {NULL, NULL};
  TPJ_EXPECT_OK(tpj_executable_compile(c, kProgram, strlen(kProgram), &opts, &e));
  TPJ_EXPECT_OK(vec4(c, 0, 0, &args[0]));
  TPJ_EXPECT_OK(vec4(c, 0, 1, &args[1]));
  tpj_buffer_t* outs[6];
  tpj_event_t* events[2];
  memset(outs, 0xab, sizeof(outs));
  tpj_execute_args_t x = {args, 1, 2, NULL, outs, events, 0};
  setenv("TPJ_FAKE_MODE", mode, 1);
  tpj_status_t st = tpj_executable_execute(e, &x);
  unsetenv("TPJ_FAKE_MODE");
  TPJ_EXPECT(tpj_status_code(st) == code && strstr(tpj_status_message(st), needle));
  TPJ_EXPECT(strstr(tpj_status_message(st), "PJRT_LoadedExecutable_Execute failed"));
  tpj_status_free(st);
  for (int i = 0; i < 6; ++i) TPJ_EXPECT(outs[i] == NULL);
  TPJ_EXPECT(events[0] == NULL && events[1] == NULL);
  tpj_buffer_destroy(args[0]);
  tpj_buffer_destroy(args[1]);
  tpj_executable_destroy(e);
  tpj_client_destroy(c);
}

TPJ_TEST(execute_failure) {
  run_failing(failed, "execute_fail", TPJ_STATUS_INTERNAL, "fake: execution failed");
}

TPJ_TEST(execute_failure_after_partial_outputs) {
  run_failing(failed, "execute_partial", TPJ_STATUS_INTERNAL, "after producing outputs");
}

TPJ_TEST(events_that_report_errors) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(fake_client(1, &c));
  tpj_executable_t* e = NULL;
  tpj_buffer_t* arg = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(c, kProgram, strlen(kProgram), NULL, &e));
  TPJ_EXPECT_OK(vec4(c, 1, 0, &arg));
  setenv("TPJ_FAKE_MODE", "event_error", 1);
  tpj_buffer_t* b = NULL;
  TPJ_EXPECT_ERROR(vec4(c, 1, 0, &b), DATA_LOSS, "device lost"); /* done_with_host_buffer */
  TPJ_EXPECT(b == NULL);
  tpj_buffer_t* outs[3];
  tpj_event_t* events[1];
  tpj_execute_args_t x = {&arg, 1, 1, NULL, outs, events, 0};
  TPJ_EXPECT_OK(tpj_executable_execute(e, &x));
  TPJ_EXPECT_ERROR(tpj_event_await(events[0]), DATA_LOSS, "fake: device lost");
  ready_log_t log = {0, TPJ_STATUS_OK};
  TPJ_EXPECT_OK(tpj_event_on_ready(events[0], on_ready, &log));
  TPJ_EXPECT(log.calls == 1 && log.code == TPJ_STATUS_DATA_LOSS);
  float y[4];
  TPJ_EXPECT_ERROR(tpj_buffer_to_host(outs[0], y, sizeof(y)), DATA_LOSS, "device lost");
  TPJ_EXPECT_ERROR(tpj_buffer_await(outs[0]), DATA_LOSS, "device lost");
  unsetenv("TPJ_FAKE_MODE");
  for (int j = 0; j < 3; ++j) tpj_buffer_destroy(outs[j]);
  tpj_event_destroy(events[0]);
  tpj_buffer_destroy(arg);
  tpj_executable_destroy(e);
  tpj_client_destroy(c);
}

/* A portable program runs on the device named in the args (PJRT's
 * execute_device); a failing launch there leaves nothing behind. */
TPJ_TEST(portable_runs_on_chosen_device) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(fake_client(2, &c));
  tpj_compile_options_t opts = {.num_replicas = 1, .num_partitions = 1, .portable = true};
  tpj_executable_t* e = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(c, "fake.outputs=1", 14, &opts, &e));
  TPJ_EXPECT(tpj_executable_is_portable(e) && tpj_executable_num_devices(e) == 1);
  tpj_buffer_t* arg = NULL;
  TPJ_EXPECT_OK(vec4(c, 10, 1, &arg));
  tpj_buffer_t* out = NULL;
  tpj_event_t* ev = NULL;
  tpj_execute_args_t x = {&arg, 1, 1, NULL, &out, &ev, 1};
  TPJ_EXPECT_OK(tpj_executable_execute(e, &x));
  float y[4];
  TPJ_EXPECT_OK(tpj_buffer_to_host(out, y, sizeof(y)));
  TPJ_EXPECT(y[0] == 11 && y[3] == 14 && tpj_buffer_device_index(out) == 1);
  tpj_event_destroy(ev);
  tpj_buffer_destroy(out);
  setenv("TPJ_FAKE_MODE", "execute_fail", 1);
  TPJ_EXPECT_ERROR(tpj_executable_execute(e, &x), INTERNAL, "fake: execution failed");
  unsetenv("TPJ_FAKE_MODE");
  TPJ_EXPECT(out == NULL && ev == NULL);
  x.device = 0; /* the argument is on device 1 */
  TPJ_EXPECT_ERROR(tpj_executable_execute(e, &x), INVALID_ARGUMENT,
                   "argument 0 is on device 1 (expected the execute device 0)");
  tpj_buffer_destroy(arg);
  tpj_executable_destroy(e);
  tpj_client_destroy(c);
}

TPJ_TEST(resolve_specs) {
  char* path = NULL;
  const char* dirs[1] = {"/nonexistent"};
  TPJ_EXPECT_ERROR(tpj_plugin_resolve("cpu", dirs, 1, &path), NOT_FOUND,
                   "/nonexistent/xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so");
  TPJ_EXPECT_ERROR(tpj_plugin_resolve("cuda", dirs, 1, &path), NOT_FOUND,
                   "/nonexistent/jax_plugins/xla_cuda12/xla_cuda_plugin.so");
  TPJ_EXPECT_ERROR(tpj_plugin_resolve("gpu9", dirs, 1, &path), INVALID_ARGUMENT,
                   "unknown plugin spec \"gpu9\"");
  TPJ_EXPECT_ERROR(tpj_plugin_resolve("/no/such.so", NULL, 0, &path), NOT_FOUND, "/no/such.so");
  const char* fake = getenv("TPJ_FAKE_PLUGIN");
  TPJ_EXPECT_OK(tpj_plugin_resolve(fake, NULL, 0, &path));
  TPJ_EXPECT(path && !strcmp(path, fake));
  free(path);
  path = NULL;
  char* saved = getenv("TORCH_PJRT_PLUGIN_PATH") ? strdup(getenv("TORCH_PJRT_PLUGIN_PATH")) : NULL;
  setenv("TORCH_PJRT_PLUGIN_PATH", "/nope1:/nope2", 1);
  TPJ_EXPECT_ERROR(tpj_plugin_resolve("cpu", NULL, 0, &path), NOT_FOUND,
                   "/nope1/xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so, "
                   "/nope2/xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so");
  if (saved) setenv("TORCH_PJRT_PLUGIN_PATH", saved, 1);
  else unsetenv("TORCH_PJRT_PLUGIN_PATH");
  free(saved);
}

/* A missing named plugin says which package provides it (the pyproject.toml
 * extras for cuda and tpu); a missing path does not. */
TPJ_TEST(resolve_install_hints) {
  char* path = NULL;
  const char* dirs[1] = {"/nonexistent"};
  TPJ_EXPECT_ERROR(tpj_plugin_resolve("cpu", dirs, 1, &path), NOT_FOUND,
                   "plugin \"cpu\" not found (install it with: pip install xla-cpu-pjrt); "
                   "tried: /nonexistent/xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so");
  TPJ_EXPECT_ERROR(tpj_plugin_resolve("cuda", dirs, 1, &path), NOT_FOUND,
                   "plugin \"cuda\" not found (install it with: pip install "
                   "'torch-pjrt[cuda]'); tried: /nonexistent/jax_plugins/xla_cuda13/");
  char* saved_tpu = getenv("TPU_LIBRARY_PATH") ? strdup(getenv("TPU_LIBRARY_PATH")) : NULL;
  unsetenv("TPU_LIBRARY_PATH");
  TPJ_EXPECT_ERROR(tpj_plugin_resolve("tpu", dirs, 1, &path), NOT_FOUND,
                   "plugin \"tpu\" not found (install it with: pip install "
                   "'torch-pjrt[tpu]'); tried: /nonexistent/libtpu/libtpu.so");
  if (saved_tpu) setenv("TPU_LIBRARY_PATH", saved_tpu, 1);
  free(saved_tpu);
  tpj_status_t s = tpj_plugin_resolve("/no/such.so", NULL, 0, &path);
  TPJ_EXPECT(s && !strstr(tpj_status_message(s), "install it with"));
  tpj_status_free(s);
  /* The spec from $TORCH_PJRT_PLUGIN (what the Python side passes on as
   * None or as the variable's value) gets the same message. */
  char* saved = getenv("TORCH_PJRT_PLUGIN") ? strdup(getenv("TORCH_PJRT_PLUGIN")) : NULL;
  setenv("TORCH_PJRT_PLUGIN", "cuda", 1);
  TPJ_EXPECT_ERROR(tpj_plugin_resolve(NULL, dirs, 1, &path), NOT_FOUND,
                   "plugin \"cuda\" not found (install it with: pip install 'torch-pjrt[cuda]')");
  if (saved) setenv("TORCH_PJRT_PLUGIN", saved, 1);
  else unsetenv("TORCH_PJRT_PLUGIN");
  free(saved);
  TPJ_EXPECT(path == NULL);
}

TPJ_TEST_MAIN("pjrt_fake_exec")
