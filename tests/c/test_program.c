/* test_program.c: tpj_program_t and tpj_program_run (tpj/program.h), the one
 * launch path, on the real CPU plugin with two devices: every input kind
 * (buffer, storage whole and strided, host, constant, seed; storages on two
 * devices at once), every result destination (buffer, storage, host),
 * donation, checks read at once or left pending, the metrics it counts, and
 * plans and calls that must be refused without leaking or changing anything.
 * Expected values are hand-computed. */
#include <stdlib.h>
#include <string.h>

#include "tpj/eager.h"
#include "tpj/program.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

static tpj_client_t* g_client;

static tpj_status_t ensure_init(void) {
  if (!g_client) TPJ_RETURN_IF_ERROR(tpj_test_cpu_client(2, &g_client));
  return tpj_eager_init(g_client);
}

static const char* ADD3 =
    "module {\n  func.func @main(%a: tensor<3xf32>, %b: tensor<3xf32>) -> tensor<3xf32> {\n"
    "    %0 = stablehlo.add %a, %b : tensor<3xf32>\n    return %0 : tensor<3xf32>\n  }\n}\n";

/* Result 0 is x + 1; result 1 is the check pairs it was given (bad, value). */
static const char* CHECKED =
    "module {\n  func.func @main(%x: tensor<3xf32>, %c: tensor<2xi64>) -> "
    "(tensor<3xf32>, tensor<2xi64>) {\n"
    "    %one = stablehlo.constant dense<1.0> : tensor<3xf32>\n"
    "    %0 = stablehlo.add %x, %one : tensor<3xf32>\n"
    "    return %0, %c : tensor<3xf32>, tensor<2xi64>\n  }\n}\n";

/* ADD3 with its first argument aliased to the result (donatable). */
static const char* ADD3_ALIASED =
    "module {\n  func.func @main(%a: tensor<3xf32> {tf.aliasing_output = 0 : i32}, "
    "%b: tensor<3xf32>) -> tensor<3xf32> {\n"
    "    %0 = stablehlo.add %a, %b : tensor<3xf32>\n    return %0 : tensor<3xf32>\n  }\n}\n";

static const char* SEED_ID =
    "module {\n  func.func @main(%s: tensor<2xui64>) -> tensor<2xui64> {\n"
    "    return %s : tensor<2xui64>\n  }\n}\n";

static tpj_status_t compile(const char* text, bool portable, tpj_cached_executable_t** out) {
  tpj_compile_options_t o = {.num_replicas = 1, .num_partitions = 1, .portable = portable};
  return tpj_runtime_compile_cached(g_client, text, strlen(text), &o, out, NULL);
}

static tpj_status_t host_buffer(const float* v, int64_t n, size_t device, tpj_buffer_t** out) {
  return tpj_buffer_from_host(g_client, v, TPJ_DTYPE_F32, &n, 1, device,
                              TPJ_HOST_SEMANTICS_COPY, out);
}

static tpj_program_input_t host_f32(int64_t n) {
  tpj_program_input_t in = {.kind = TPJ_PROGRAM_INPUT_HOST, .dtype = TPJ_DTYPE_F32, .rank = 1};
  in.dims[0] = n;
  return in;
}

TPJ_TEST(host_inputs_and_every_result_destination) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_cached_executable_t* exe = NULL;
  TPJ_EXPECT_OK(compile(ADD3, false, &exe));
  tpj_program_input_t inputs[2] = {host_f32(3), {.kind = TPJ_PROGRAM_INPUT_BUFFER}};
  tpj_program_plan_t plan = {"add3", inputs, 2, NULL, 0};
  tpj_program_t* p = NULL;
  TPJ_EXPECT_OK(tpj_program_create(exe, &plan, &p));
  tpj_cached_executable_release(exe); /* the program keeps its own reference */
  TPJ_EXPECT(tpj_program_num_results(p) == 1 && tpj_program_num_inputs(p) == 2);
  TPJ_EXPECT(strcmp(tpj_program_name(p), "add3") == 0);
  const float a[3] = {1, 2, 3}, b[3] = {10, 20, 30};
  tpj_buffer_t* bb = NULL;
  TPJ_EXPECT_OK(host_buffer(b, 3, 0, &bb));
  tpj_program_arg_t args[2] = {{.host = a}, {.buffer = bb}};
  float got[3] = {0};
  tpj_metrics_t m0, m1;
  tpj_runtime_metrics_get(&m0);
  tpj_program_result_t res = {.host = got, .host_nbytes = sizeof(got)};
  tpj_program_call_t call = {args, 1, 0, &res, true};
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  tpj_runtime_metrics_get(&m1);
  TPJ_EXPECT(got[0] == 11 && got[1] == 22 && got[2] == 33 && res.buffer == NULL);
  TPJ_EXPECT(m1.executions == m0.executions + 1);
  TPJ_EXPECT(m1.bytes_h2d == m0.bytes_h2d + 12 && m1.bytes_d2h == m0.bytes_d2h + 12);
  /* kept: the buffer comes back too; no destination: only the buffer */
  res = (tpj_program_result_t){.host = got, .host_nbytes = sizeof(got), .keep = true};
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  TPJ_EXPECT(res.buffer != NULL);
  tpj_buffer_destroy(res.buffer);
  res = (tpj_program_result_t){0};
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  float again[3] = {0};
  TPJ_EXPECT_OK(tpj_buffer_to_host(res.buffer, again, sizeof(again)));
  TPJ_EXPECT(again[2] == 33);
  tpj_buffer_destroy(res.buffer);
  /* a wrong host size is refused before anything is written */
  float small[2] = {-1, -1};
  res = (tpj_program_result_t){.host = small, .host_nbytes = sizeof(small)};
  TPJ_EXPECT_ERROR(tpj_program_run(p, &call), INVALID_ARGUMENT, "wrong host size");
  TPJ_EXPECT(small[0] == -1 && res.buffer == NULL);
  tpj_buffer_destroy(bb);
  tpj_program_release(p);
}

TPJ_TEST(storage_inputs_and_installs_on_device_1) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_cached_executable_t* exe = NULL;
  TPJ_EXPECT_OK(compile(ADD3, true, &exe));
  tpj_program_input_t inputs[2] = {{.kind = TPJ_PROGRAM_INPUT_STORAGE, .dtype = TPJ_DTYPE_F32},
                                   {.kind = TPJ_PROGRAM_INPUT_STORAGE, .dtype = TPJ_DTYPE_F32}};
  tpj_program_plan_t plan = {"add3_storage", inputs, 2, NULL, 0};
  tpj_program_t* p = NULL;
  TPJ_EXPECT_OK(tpj_program_create(exe, &plan, &p));
  tpj_cached_executable_release(exe);
  /* x: a written storage of 3 on device 1; y: every other element of 6 */
  tpj_eager_storage_t *x = NULL, *y = NULL, *out = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(12, 1, &x));
  TPJ_EXPECT_OK(tpj_eager_storage_create(24, 1, &y));
  TPJ_EXPECT_OK(tpj_eager_storage_create(12, 1, &out));
  const float xv[3] = {1, 2, 3}, yv[6] = {100, -1, 200, -1, 300, -1};
  tpj_eager_tensor_t xw = {.storage = x, .dtype = TPJ_DTYPE_F32, .rank = 1, .sizes = {3},
                           .strides = {1}};
  tpj_eager_tensor_t yw = {.storage = y, .dtype = TPJ_DTYPE_F32, .rank = 1, .sizes = {6},
                           .strides = {1}};
  TPJ_EXPECT_OK(tpj_eager_write_host(xv, sizeof(xv), &xw));
  TPJ_EXPECT_OK(tpj_eager_write_host(yv, sizeof(yv), &yw));
  tpj_eager_tensor_t ys = {.storage = y, .dtype = TPJ_DTYPE_F32, .rank = 1, .sizes = {3},
                           .strides = {2}};
  tpj_program_arg_t args[2] = {{.view = xw}, {.view = ys}};
  tpj_program_result_t res = {.storage = out};
  tpj_program_call_t call = {args, 1, 1, &res, false}; /* async, as eager ops */
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  TPJ_EXPECT(res.buffer == NULL);
  tpj_eager_tensor_t ow = xw;
  ow.storage = out;
  float got[3] = {0};
  TPJ_EXPECT_OK(tpj_eager_read_host(&ow, got, sizeof(got)));
  TPJ_EXPECT(got[0] == 101 && got[1] == 202 && got[2] == 303);
  /* the result written into an input's own storage */
  res = (tpj_program_result_t){.storage = x};
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  TPJ_EXPECT_OK(tpj_eager_read_host(&xw, got, sizeof(got)));
  TPJ_EXPECT(got[0] == 101 && got[2] == 303);
  /* a storage of the wrong size is refused and keeps its contents */
  tpj_eager_storage_t* wrong = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(8, 1, &wrong));
  res = (tpj_program_result_t){.storage = wrong};
  TPJ_EXPECT_ERROR(tpj_program_run(p, &call), INVALID_ARGUMENT, "does not fit its storage");
  TPJ_EXPECT(tpj_eager_storage_dtype(wrong) == TPJ_DTYPE_INVALID); /* never written */
  tpj_eager_storage_destroy(wrong);
  tpj_eager_storage_destroy(x);
  tpj_eager_storage_destroy(y);
  tpj_eager_storage_destroy(out);
  tpj_program_release(p);
  TPJ_EXPECT_OK(tpj_eager_synchronize());
}

/* A storage of n floats on `device` holding v. */
static tpj_status_t storage_f32(const float* v, int64_t n, size_t device,
                                tpj_eager_storage_t** out, tpj_eager_tensor_t* out_view) {
  TPJ_RETURN_IF_ERROR(tpj_eager_storage_create((size_t)n * 4, device, out));
  *out_view = (tpj_eager_tensor_t){.storage = *out, .dtype = TPJ_DTYPE_F32, .rank = 1,
                                   .sizes = {n}, .strides = {1}};
  return tpj_eager_write_host(v, (size_t)n * 4, out_view);
}

/* Two replicas over storage inputs: whole and strided views, one on the
 * other device (moved to its row's device); a host input is refused. */
TPJ_TEST(two_device_program_with_storage_inputs) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_compile_options_t o = {.num_replicas = 2, .num_partitions = 1};
  tpj_cached_executable_t* exe = NULL;
  TPJ_EXPECT_OK(tpj_runtime_compile_cached(g_client, ADD3, strlen(ADD3), &o, &exe, NULL));
  tpj_program_input_t inputs[2] = {{.kind = TPJ_PROGRAM_INPUT_STORAGE, .dtype = TPJ_DTYPE_F32},
                                   {.kind = TPJ_PROGRAM_INPUT_STORAGE, .dtype = TPJ_DTYPE_F32}};
  tpj_program_plan_t plan = {"add3_two", inputs, 2, NULL, 0};
  tpj_program_t* p = NULL;
  TPJ_EXPECT_OK(tpj_program_create(exe, &plan, &p));
  TPJ_EXPECT(tpj_program_input(p, 1)->kind == TPJ_PROGRAM_INPUT_STORAGE &&
             tpj_program_input(p, 1)->dtype == TPJ_DTYPE_F32 && tpj_program_input(p, 2) == NULL);
  const float a0[3] = {1, 2, 3}, b0[6] = {10, -1, 20, -1, 30, -1}, a1[3] = {4, 5, 6},
              b1[3] = {40, 50, 60};
  tpj_eager_storage_t* st[4] = {0};
  tpj_eager_tensor_t v[4];
  TPJ_EXPECT_OK(storage_f32(a0, 3, 0, &st[0], &v[0]));
  TPJ_EXPECT_OK(storage_f32(b0, 6, 0, &st[1], &v[1]));
  TPJ_EXPECT_OK(storage_f32(a1, 3, 1, &st[2], &v[2]));
  TPJ_EXPECT_OK(storage_f32(b1, 3, 0, &st[3], &v[3])); /* row 1's, on device 0 */
  v[1].sizes[0] = 3;
  v[1].strides[0] = 2; /* every other element: read into a new buffer */
  tpj_program_arg_t args[4] = {{.view = v[0]}, {.view = v[1]}, {.view = v[2]}, {.view = v[3]}};
  tpj_program_result_t res[2] = {{0}};
  tpj_program_call_t call = {.args = args, .num_devices = 2, .results = res, .wait = false};
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  float got[2][3] = {{0}};
  for (size_t d = 0; d < 2; ++d) {
    TPJ_EXPECT(res[d].buffer && tpj_buffer_device_index(res[d].buffer) == d);
    TPJ_EXPECT_OK(tpj_buffer_to_host(res[d].buffer, got[d], sizeof(got[d])));
    tpj_buffer_destroy(res[d].buffer);
  }
  TPJ_EXPECT(got[0][0] == 11 && got[0][1] == 22 && got[0][2] == 33);
  TPJ_EXPECT(got[1][0] == 44 && got[1][1] == 55 && got[1][2] == 66);
  tpj_program_release(p);
  tpj_program_input_t mixed[2] = {inputs[0], host_f32(3)};
  plan.inputs = mixed;
  TPJ_EXPECT_OK(tpj_program_create(exe, &plan, &p));
  TPJ_EXPECT_ERROR(tpj_program_run(p, &call), INVALID_ARGUMENT,
                   "program add3_two: input 1 of a 2-device program must be a buffer or a "
                   "storage (got kind 2)");
  TPJ_EXPECT(res[0].buffer == NULL && res[1].buffer == NULL);
  tpj_program_release(p);
  tpj_cached_executable_release(exe);
  for (size_t i = 0; i < 4; ++i) tpj_eager_storage_destroy(st[i]);
  TPJ_EXPECT_OK(tpj_eager_synchronize());
}

TPJ_TEST(constant_and_seed_inputs) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_cached_executable_t* exe = NULL;
  TPJ_EXPECT_OK(compile(ADD3, true, &exe));
  const float c[3] = {0.5f, 0.25f, 0.125f}, a[3] = {1, 1, 1};
  tpj_program_input_t inputs[2] = {host_f32(3), {.kind = TPJ_PROGRAM_INPUT_CONSTANT}};
  TPJ_EXPECT_OK(host_buffer(c, 3, 0, &inputs[1].constant));
  tpj_program_plan_t plan = {"add_const", inputs, 2, NULL, 0};
  tpj_program_t* p = NULL;
  TPJ_EXPECT_OK(tpj_program_create(exe, &plan, &p)); /* takes the constant */
  tpj_cached_executable_release(exe);
  float got[3] = {0};
  tpj_program_arg_t args[2] = {{.host = a}, {0}};
  tpj_program_result_t res = {.host = got, .host_nbytes = sizeof(got)};
  for (size_t device = 0; device < 2; ++device) { /* the constant moves where it runs */
    tpj_program_call_t call = {args, 1, device, &res, true};
    TPJ_EXPECT_OK(tpj_program_run(p, &call));
    TPJ_EXPECT(got[0] == 1.5f && got[1] == 1.25f && got[2] == 1.125f);
  }
  tpj_program_release(p);
  TPJ_EXPECT_OK(compile(SEED_ID, true, &exe));
  tpj_program_input_t seed_in = {.kind = TPJ_PROGRAM_INPUT_SEED};
  tpj_program_plan_t seed_plan = {"seed", &seed_in, 1, NULL, 0};
  TPJ_EXPECT_OK(tpj_program_create(exe, &seed_plan, &p));
  tpj_cached_executable_release(exe);
  uint64_t words[2] = {0};
  tpj_program_arg_t sa = {.seed = {0x0123456789abcdefull, 42}};
  tpj_program_result_t sr = {.host = words, .host_nbytes = sizeof(words)};
  tpj_program_call_t call = {&sa, 1, 1, &sr, true};
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  TPJ_EXPECT(words[0] == 0x0123456789abcdefull && words[1] == 42);
  tpj_program_release(p);
}

TPJ_TEST(checks_fail_at_once_or_at_the_next_sync) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_cached_executable_t* exe = NULL;
  TPJ_EXPECT_OK(compile(CHECKED, true, &exe));
  tpj_program_input_t inputs[2] = {host_f32(3), {.kind = TPJ_PROGRAM_INPUT_HOST,
                                                 .dtype = TPJ_DTYPE_S64, .rank = 1,
                                                 .dims = {2}}};
  tpj_check_t check = {TPJ_CHECK_KIND_INDEX, "index {} is out of bounds for size 3"};
  tpj_program_plan_t plan = {"checked", inputs, 2, &check, 1};
  tpj_program_t* p = NULL;
  TPJ_EXPECT_OK(tpj_program_create(exe, &plan, &p));
  tpj_cached_executable_release(exe);
  TPJ_EXPECT(tpj_program_num_results(p) == 1 && tpj_program_num_checks(p) == 1);
  const float x[3] = {0, 1, 2};
  int64_t pairs[2] = {0, 0};
  tpj_program_arg_t args[2] = {{.host = x}, {.host = pairs}};
  float got[3] = {0};
  tpj_program_result_t res = {.host = got, .host_nbytes = sizeof(got)};
  tpj_program_call_t call = {args, 1, 0, &res, true};
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  TPJ_EXPECT(got[0] == 1 && got[2] == 3);
  pairs[0] = 1;
  pairs[1] = 7;
  TPJ_EXPECT_ERROR(tpj_program_run(p, &call), OUT_OF_RANGE, "index 7 is out of bounds");
  TPJ_EXPECT(res.buffer == NULL);
  /* not waiting: the failure is raised by the next synchronization */
  res = (tpj_program_result_t){0};
  call.wait = false;
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  tpj_buffer_destroy(res.buffer);
  TPJ_EXPECT_ERROR(tpj_eager_synchronize(), OUT_OF_RANGE, "index 7 is out of bounds");
  TPJ_EXPECT_OK(tpj_eager_synchronize());
  tpj_program_release(p);
}

TPJ_TEST(donation_deletes_only_an_unshared_buffer) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_cached_executable_t* exe = NULL;
  TPJ_EXPECT_OK(compile(ADD3_ALIASED, false, &exe));
  tpj_program_input_t inputs[2] = {{.kind = TPJ_PROGRAM_INPUT_BUFFER, .donate = true},
                                   {.kind = TPJ_PROGRAM_INPUT_BUFFER}};
  tpj_program_plan_t plan = {"donate", inputs, 2, NULL, 0};
  tpj_program_t* p = NULL;
  TPJ_EXPECT_OK(tpj_program_create(exe, &plan, &p));
  tpj_cached_executable_release(exe);
  const float v[3] = {1, 2, 3};
  tpj_buffer_t *a = NULL, *b = NULL;
  TPJ_EXPECT_OK(host_buffer(v, 3, 0, &a));
  TPJ_EXPECT_OK(host_buffer(v, 3, 0, &b));
  float got[3] = {0};
  tpj_program_arg_t shared[2] = {{.buffer = a}, {.buffer = a}};
  tpj_program_result_t res = {.host = got, .host_nbytes = sizeof(got)};
  tpj_program_call_t call = {shared, 1, 0, &res, true};
  TPJ_EXPECT_OK(tpj_program_run(p, &call)); /* a feeds both: not donated */
  TPJ_EXPECT(!tpj_buffer_is_deleted(a) && got[1] == 4);
  tpj_program_arg_t own[2] = {{.buffer = a}, {.buffer = b}};
  call.args = own;
  TPJ_EXPECT_OK(tpj_program_run(p, &call));
  TPJ_EXPECT(got[2] == 6);
  TPJ_EXPECT_ERROR(tpj_program_run(p, &call), FAILED_PRECONDITION, "deleted or donated");
  tpj_buffer_destroy(a);
  tpj_buffer_destroy(b);
  tpj_program_release(p);
}

TPJ_TEST(bad_plans_and_calls_are_refused) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_cached_executable_t* exe = NULL;
  TPJ_EXPECT_OK(compile(ADD3, false, &exe));
  tpj_program_t* p = NULL;
  tpj_program_input_t no_const = {.kind = TPJ_PROGRAM_INPUT_CONSTANT};
  tpj_program_plan_t plan = {"bad", &no_const, 1, NULL, 0};
  TPJ_EXPECT_ERROR(tpj_program_create(exe, &plan, &p), INVALID_ARGUMENT, "has no buffer");
  tpj_program_input_t no_dtype = {.kind = TPJ_PROGRAM_INPUT_HOST};
  plan.inputs = &no_dtype;
  TPJ_EXPECT_ERROR(tpj_program_create(exe, &plan, &p), INVALID_ARGUMENT, "needs a dtype");
  tpj_program_input_t odd = {.kind = (tpj_program_input_kind_t)99};
  plan.inputs = &odd;
  TPJ_EXPECT_ERROR(tpj_program_create(exe, &plan, &p), INVALID_ARGUMENT, "unknown kind");
  TPJ_EXPECT(p == NULL);
  tpj_program_input_t two[2] = {{0}, {0}};
  plan = (tpj_program_plan_t){"add3", two, 2, NULL, 0};
  TPJ_EXPECT_OK(tpj_program_create(exe, &plan, &p));
  tpj_program_arg_t args[2] = {{.buffer = NULL}, {.buffer = NULL}};
  tpj_program_result_t res = {0};
  tpj_program_call_t call = {args, 1, 0, &res, true};
  TPJ_EXPECT_ERROR(tpj_program_run(p, &call), FAILED_PRECONDITION, "input 0 on device 0");
  call.num_devices = 2;
  TPJ_EXPECT_ERROR(tpj_program_run(p, &call), INVALID_ARGUMENT, "wrong device count");
  TPJ_EXPECT_ERROR(tpj_program_run(NULL, &call), INVALID_ARGUMENT, "NULL argument");
  tpj_program_release(p);
  tpj_program_release(NULL); /* accepted */
  tpj_cached_executable_release(exe);
}

TPJ_TEST_MAIN("program")
