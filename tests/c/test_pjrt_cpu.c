/* test_pjrt_cpu.c: src/pjrt/ against the real XLA CPU plugin ("cpu", found via
 * $TORCH_PJRT_PLUGIN_PATH): plugin info, 4 devices, round trips of every
 * dtype, StableHLO compile + execute, donation, events and 4 replicas.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/pjrt.h"
#include "tpj_test.h"

static tpj_client_t* g_client;

static tpj_status_t cpu_client(tpj_client_t** out) {
  if (!g_client) {
    char* path = NULL;
    TPJ_RETURN_IF_ERROR(tpj_plugin_resolve("cpu", NULL, 0, &path));
    tpj_plugin_t* p = NULL;
    tpj_status_t st = tpj_plugin_load(path, &p);
    free(path);
    TPJ_RETURN_IF_ERROR(st);
    tpj_option_t o = {.name = "cpu_device_count", .kind = TPJ_OPTION_KIND_INT64, .int_value = 4};
    TPJ_RETURN_IF_ERROR(tpj_client_create(p, &o, 1, &g_client));
  }
  *out = g_client;
  return NULL;
}

TPJ_TEST(plugin_info) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  tpj_plugin_info_t info;
  tpj_plugin_get_info(tpj_client_plugin(c), &info);
  printf("  cpu plugin: %s api %d.%d xla_version %lld stablehlo current %lld.%lld.%lld "
         "minimum %lld.%lld.%lld platform %s %s\n", info.path, info.api_major, info.api_minor,
         (long long)info.xla_version, (long long)info.stablehlo_current[0],
         (long long)info.stablehlo_current[1], (long long)info.stablehlo_current[2],
         (long long)info.stablehlo_minimum[0], (long long)info.stablehlo_minimum[1],
         (long long)info.stablehlo_minimum[2], tpj_client_platform_name(c),
         tpj_client_platform_version(c));
  TPJ_EXPECT(info.api_major == 0 && info.api_minor >= 81);
  TPJ_EXPECT(strstr(info.path, "xla_cpu_pjrt.so") != NULL);
  TPJ_EXPECT(!strcmp(tpj_client_platform_name(c), "cpu"));
}

TPJ_TEST(four_devices) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  TPJ_EXPECT(tpj_client_addressable_device_count(c) == 4);
  TPJ_EXPECT(tpj_client_device_count(c) == 4);
  for (size_t i = 0; i < 4; ++i) {
    tpj_device_info_t d;
    TPJ_EXPECT_OK(tpj_client_device_info(c, i, &d));
    TPJ_EXPECT(d.id == (int)i && d.kind && d.debug_string && *d.debug_string);
    if (i == 0) printf("  device 0: kind=%s local_hw=%d debug=%s\n", d.kind,
                       d.local_hardware_id, d.debug_string);
  }
}

TPJ_TEST(round_trip_every_dtype) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  const tpj_dtype_t dtypes[] = {TPJ_DTYPE_F32, TPJ_DTYPE_F64, TPJ_DTYPE_F16, TPJ_DTYPE_BF16,
                                TPJ_DTYPE_S8,  TPJ_DTYPE_S16, TPJ_DTYPE_S32, TPJ_DTYPE_S64,
                                TPJ_DTYPE_U8,  TPJ_DTYPE_PRED};
  const size_t sizes[] = {4, 8, 2, 2, 1, 2, 4, 8, 1, 1};
  int64_t dims[2] = {3, 5};
  for (size_t k = 0; k < sizeof(dtypes) / sizeof(dtypes[0]); ++k) {
    uint8_t in[15 * 8], out[15 * 8];
    size_t n = 15 * sizes[k];
    for (size_t i = 0; i < n; ++i) in[i] = (uint8_t)(dtypes[k] == TPJ_DTYPE_PRED ? i % 2 : i * 7 + 1);
    if (dtypes[k] == TPJ_DTYPE_F16 || dtypes[k] == TPJ_DTYPE_BF16) /* keep NaN payloads out */
      for (size_t i = 1; i < n; i += 2) in[i] &= 0x3f;
    memset(out, 0xee, sizeof(out));
    tpj_buffer_t* b = NULL;
    TPJ_EXPECT_OK(tpj_buffer_from_host(c, in, dtypes[k], dims, 2, k % 4,
                                       TPJ_HOST_SEMANTICS_COPY, &b));
    TPJ_EXPECT(tpj_buffer_dtype(b) == dtypes[k] && tpj_buffer_device_index(b) == k % 4);
    TPJ_EXPECT(tpj_buffer_rank(b) == 2 && tpj_buffer_dims(b)[1] == 5);
    size_t dev_size = 0;
    TPJ_EXPECT_OK(tpj_buffer_on_device_size(b, &dev_size));
    TPJ_EXPECT(dev_size >= n);
    tpj_status_t st = tpj_buffer_to_host(b, out, n);
    if (st) { fprintf(stderr, "  dtype %d: %s\n", dtypes[k], tpj_status_message(st)); *failed = 1; }
    tpj_status_free(st);
    if (memcmp(in, out, n)) { fprintf(stderr, "  dtype %d differs\n", dtypes[k]); *failed = 1; }
    tpj_buffer_destroy(b);
  }
}

TPJ_TEST(zero_copy_and_async_to_host) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  float* x = aligned_alloc(64, 64);
  for (int i = 0; i < 16; ++i) x[i] = (float)i;
  int64_t dims[1] = {16};
  tpj_buffer_t* b = NULL;
  TPJ_EXPECT_OK(tpj_buffer_from_host(c, x, TPJ_DTYPE_F32, dims, 1, 0,
                                     TPJ_HOST_SEMANTICS_ZERO_COPY, &b));
  x[3] = 99.0f; /* visible only if the plugin aliased the host memory */
  float y[16];
  tpj_event_t* ev = NULL;
  TPJ_EXPECT_OK(tpj_buffer_to_host_async(b, y, sizeof(y), &ev));
  TPJ_EXPECT_OK(tpj_event_await(ev));
  TPJ_EXPECT(tpj_event_is_ready(ev));
  printf("  zero-copy on cpu: %s\n", y[3] == 99.0f ? "aliased" : "copied");
  TPJ_EXPECT(y[0] == 0 && y[15] == 15);
  tpj_event_destroy(ev);
  tpj_buffer_destroy(b);
  free(x);
}

static const char kMulAdd[] =
    "module @muladd {\n"
    "  func.func public @main(%arg0: tensor<4xf32>, %arg1: tensor<4xf32>) -> (tensor<4xf32>, tensor<4xf32>) {\n"
    "    %0 = \"stablehlo.multiply\"(%arg0, %arg1) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>\n"
    "    %1 = \"stablehlo.add\"(%arg0, %arg1) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>\n"
    "    \"func.return\"(%0, %1) : (tensor<4xf32>, tensor<4xf32>) -> ()\n"
    "  }\n"
    "}\n";

static tpj_status_t vec4(tpj_client_t* c, const float* v, size_t dev, tpj_buffer_t** out) {
  int64_t dims[1] = {4};
  return tpj_buffer_from_host(c, v, TPJ_DTYPE_F32, dims, 1, dev, TPJ_HOST_SEMANTICS_COPY, out);
}

TPJ_TEST(compile_execute_two_outputs) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  tpj_executable_t* e = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(c, kMulAdd, strlen(kMulAdd), NULL, &e));
  TPJ_EXPECT(tpj_executable_num_outputs(e) == 2 && tpj_executable_num_devices(e) == 1);
  tpj_dtype_t types[2] = {0, 0};
  TPJ_EXPECT_OK(tpj_executable_output_dtypes(e, types, 2));
  TPJ_EXPECT(types[0] == TPJ_DTYPE_F32 && types[1] == TPJ_DTYPE_F32);
  const float a[4] = {1, 2, 3, 4}, b[4] = {10, 20, 30, -1.5f};
  tpj_buffer_t* args[2] = {NULL, NULL};
  TPJ_EXPECT_OK(vec4(c, a, 0, &args[0]));
  TPJ_EXPECT_OK(vec4(c, b, 0, &args[1]));
  tpj_buffer_t* outs[2];
  tpj_event_t* events[1];
  tpj_execute_args_t x = {args, 2, 1, NULL, outs, events, 0};
  TPJ_EXPECT_OK(tpj_executable_execute(e, &x));
  TPJ_EXPECT_OK(tpj_event_await(events[0]));
  float y[4];
  TPJ_EXPECT_OK(tpj_buffer_to_host(outs[0], y, sizeof(y)));
  for (int i = 0; i < 4; ++i) TPJ_EXPECT(y[i] == a[i] * b[i]);
  TPJ_EXPECT_OK(tpj_buffer_to_host(outs[1], y, sizeof(y)));
  for (int i = 0; i < 4; ++i) TPJ_EXPECT(y[i] == a[i] + b[i]);
  TPJ_EXPECT(!tpj_buffer_is_deleted(args[0]) && !tpj_buffer_is_deleted(args[1]));
  tpj_event_destroy(events[0]);
  for (int i = 0; i < 2; ++i) { tpj_buffer_destroy(outs[i]); tpj_buffer_destroy(args[i]); }
  tpj_executable_destroy(e);
  TPJ_EXPECT_ERROR(tpj_executable_compile(c, "module { bogus", 14, NULL, &e), UNKNOWN,
                   "PJRT_Client_Compile failed: -:1:10: error: custom op 'bogus' is unknown");
}

/* A single-device program runs on the device named in the args: its outputs
 * are on that device; arguments elsewhere and multi-device programs fail. */
TPJ_TEST(execute_on_chosen_device) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  tpj_compile_options_t portable = {.num_replicas = 1, .num_partitions = 1, .portable = true};
  tpj_executable_t* e = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(c, kMulAdd, strlen(kMulAdd), &portable, &e));
  TPJ_EXPECT(tpj_executable_is_portable(e) && tpj_executable_num_devices(e) == 1);
  TPJ_EXPECT(tpj_executable_num_outputs(e) == 2);
  const float a[4] = {1, 2, 3, 4}, b[4] = {-2, 0.5f, 8, 3};
  for (size_t dev = 0; dev < 4; ++dev) {
    tpj_buffer_t* args[2] = {NULL, NULL};
    TPJ_EXPECT_OK(vec4(c, a, dev, &args[0]));
    TPJ_EXPECT_OK(vec4(c, b, dev, &args[1]));
    tpj_buffer_t* outs[2] = {NULL, NULL};
    tpj_execute_args_t x = {args, 2, 1, NULL, outs, NULL, dev};
    TPJ_EXPECT_OK(tpj_executable_execute(e, &x));
    float y[4];
    TPJ_EXPECT_OK(tpj_buffer_to_host(outs[0], y, sizeof(y)));
    for (int i = 0; i < 4; ++i) TPJ_EXPECT(y[i] == a[i] * b[i]);
    TPJ_EXPECT_OK(tpj_buffer_to_host(outs[1], y, sizeof(y)));
    for (int i = 0; i < 4; ++i) TPJ_EXPECT(y[i] == a[i] + b[i]);
    TPJ_EXPECT(tpj_buffer_device_index(outs[0]) == dev && tpj_buffer_device_index(outs[1]) == dev);
    for (int i = 0; i < 2; ++i) { tpj_buffer_destroy(outs[i]); tpj_buffer_destroy(args[i]); }
  }
  tpj_buffer_t* args[2] = {NULL, NULL};
  TPJ_EXPECT_OK(vec4(c, a, 1, &args[0]));
  TPJ_EXPECT_OK(vec4(c, b, 2, &args[1]));
  tpj_buffer_t* outs[2] = {NULL, NULL};
  tpj_execute_args_t x = {args, 2, 1, NULL, outs, NULL, 1};
  TPJ_EXPECT_ERROR(tpj_executable_execute(e, &x), INVALID_ARGUMENT,
                   "execute: argument 1 is on device 2 (expected the execute device 1)");
  x.device = 4;
  TPJ_EXPECT_ERROR(tpj_executable_execute(e, &x), INVALID_ARGUMENT,
                   "execute: device index out of range (got 4, expected < 4)");
  TPJ_EXPECT(outs[0] == NULL && outs[1] == NULL);
  tpj_executable_destroy(e);
  /* Compiled with the default assignment (device 0): only device 0 runs it. */
  TPJ_EXPECT_OK(tpj_executable_compile(c, kMulAdd, strlen(kMulAdd), NULL, &e));
  TPJ_EXPECT(!tpj_executable_is_portable(e));
  x.device = 1;
  TPJ_EXPECT_ERROR(tpj_executable_execute(e, &x), INVALID_ARGUMENT,
                   "execute: the executable is assigned to device 0 (got device 1");
  portable.num_replicas = 2;
  tpj_executable_t* bad = NULL;
  TPJ_EXPECT_ERROR(tpj_executable_compile(c, kMulAdd, strlen(kMulAdd), &portable, &bad),
                   INVALID_ARGUMENT, "a portable executable needs one replica and one "
                   "partition (got 2 and 1)");
  for (int i = 0; i < 2; ++i) tpj_buffer_destroy(args[i]);
  tpj_executable_destroy(e);
}

static const char kDouble[] =
    "module @dbl {\n"
    "  func.func public @main(%arg0: tensor<4xf32> {tf.aliasing_output = 0 : i32}) -> tensor<4xf32> {\n"
    "    %0 = \"stablehlo.add\"(%arg0, %arg0) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>\n"
    "    \"func.return\"(%0) : (tensor<4xf32>) -> ()\n"
    "  }\n"
    "}\n";

TPJ_TEST(donation) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  tpj_executable_t* e = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(c, kDouble, strlen(kDouble), NULL, &e));
  const float a[4] = {1, 2, 3, 4};
  for (int donate_it = 0; donate_it < 2; ++donate_it) {
    tpj_buffer_t* arg = NULL;
    TPJ_EXPECT_OK(vec4(c, a, 0, &arg));
    bool donate[1] = {donate_it != 0};
    tpj_buffer_t* out = NULL;
    tpj_execute_args_t x = {&arg, 1, 1, donate, &out, NULL, 0};
    TPJ_EXPECT_OK(tpj_executable_execute(e, &x));
    float y[4];
    TPJ_EXPECT_OK(tpj_buffer_to_host(out, y, sizeof(y)));
    TPJ_EXPECT(y[0] == 2 && y[3] == 8);
    TPJ_EXPECT(tpj_buffer_is_deleted(arg) == (donate_it != 0));
    tpj_buffer_destroy(out);
    tpj_buffer_destroy(arg);
  }
  tpj_executable_destroy(e);
}

static const char kDoubleNoAlias[] =
    "module @dbl4 attributes {mhlo.num_replicas = 4 : i32, mhlo.num_partitions = 1 : i32} {\n"
    "  func.func public @main(%arg0: tensor<4xf32>) -> tensor<4xf32> {\n"
    "    %0 = \"stablehlo.add\"(%arg0, %arg0) : (tensor<4xf32>, tensor<4xf32>) -> tensor<4xf32>\n"
    "    \"func.return\"(%0) : (tensor<4xf32>) -> ()\n"
    "  }\n"
    "}\n";

TPJ_TEST(four_replicas) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  tpj_compile_options_t opts = {4, 1, false, false, false};
  tpj_executable_t* e = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(c, kDoubleNoAlias, strlen(kDoubleNoAlias), &opts, &e));
  TPJ_EXPECT(tpj_executable_num_devices(e) == 4);
  tpj_buffer_t* args[4] = {0};
  for (size_t d = 0; d < 4; ++d) {
    const float v[4] = {(float)d, (float)d + 0.5f, -(float)d, 100.0f * (float)d};
    TPJ_EXPECT_OK(vec4(c, v, d, &args[d]));
  }
  tpj_buffer_t* outs[4];
  tpj_event_t* events[4];
  tpj_execute_args_t x = {args, 1, 4, NULL, outs, events, 0};
  x.device = 2;
  TPJ_EXPECT_ERROR(tpj_executable_execute(e, &x), INVALID_ARGUMENT,
                   "execute: a device index needs a single-device executable (got device 2 "
                   "for 4 devices)");
  x.device = 0;
  TPJ_EXPECT_OK(tpj_executable_execute(e, &x));
  for (size_t d = 0; d < 4; ++d) {
    TPJ_EXPECT_OK(tpj_event_await(events[d]));
    float y[4];
    TPJ_EXPECT_OK(tpj_buffer_to_host(outs[d], y, sizeof(y)));
    TPJ_EXPECT(y[0] == 2.0f * d && y[1] == 2.0f * d + 1 && y[2] == -2.0f * d && y[3] == 200.0f * d);
    TPJ_EXPECT(tpj_buffer_device_index(outs[d]) == d);
    tpj_event_destroy(events[d]);
    tpj_buffer_destroy(outs[d]);
    tpj_buffer_destroy(args[d]);
  }
  tpj_executable_destroy(e);
}

/* ---- device-to-host fast path (dense row-major host memory, read in place) */

/* Fills n bytes of a dtype with a pattern that is a valid, non-NaN value. */
static void fill_pattern(tpj_dtype_t t, uint8_t* p, size_t n, unsigned seed) {
  for (size_t i = 0; i < n; ++i) p[i] = (uint8_t)(t == TPJ_DTYPE_PRED ? (i + seed) % 2 : i * 13 + seed);
  if (t == TPJ_DTYPE_F16 || t == TPJ_DTYPE_BF16)
    for (size_t i = 1; i < n; i += 2) p[i] &= 0x3f;
  if (t == TPJ_DTYPE_F32)
    for (size_t i = 3; i < n; i += 4) p[i] &= 0x3f;
  if (t == TPJ_DTYPE_F64)
    for (size_t i = 7; i < n; i += 8) p[i] &= 0x3f;
}

TPJ_TEST(fast_d2h_every_dtype_and_rank) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  const tpj_dtype_t dtypes[] = {TPJ_DTYPE_F32, TPJ_DTYPE_F64, TPJ_DTYPE_F16, TPJ_DTYPE_BF16,
                                TPJ_DTYPE_S8,  TPJ_DTYPE_S16, TPJ_DTYPE_S32, TPJ_DTYPE_S64,
                                TPJ_DTYPE_U8,  TPJ_DTYPE_PRED};
  const size_t sizes[] = {4, 8, 2, 2, 1, 2, 4, 8, 1, 1};
  const int64_t shapes[4][3] = {{1, 1, 1}, {7, 1, 1}, {3, 5, 1}, {2, 3, 4}};
  const size_t ranks[4] = {0, 1, 2, 3};
  for (size_t k = 0; k < 10; ++k) {
    for (size_t s = 0; s < 4; ++s) {
      size_t n = sizes[k];
      for (size_t d = 0; d < ranks[s]; ++d) n *= (size_t)shapes[s][d];
      uint8_t in[24 * 8], out[24 * 8 + 1], out2[24 * 8];
      fill_pattern(dtypes[k], in, n, (unsigned)(k + s));
      memset(out, 0xee, sizeof(out));
      memset(out2, 0xee, sizeof(out2));
      tpj_buffer_t* b = NULL;
      TPJ_EXPECT_OK(tpj_buffer_from_host(c, in, dtypes[k], shapes[s], ranks[s], s % 4,
                                         TPJ_HOST_SEMANTICS_COPY, &b));
      tpj_status_t st = tpj_buffer_to_host(b, out, n);
      if (st) { fprintf(stderr, "  dtype %d rank %zu: %s\n", dtypes[k], ranks[s],
                        tpj_status_message(st)); *failed = 1; }
      tpj_status_free(st);
      tpj_event_t* ev = NULL;
      st = tpj_buffer_to_host_async(b, out2, n, &ev);
      if (!st) st = tpj_event_await(ev);
      if (st) { fprintf(stderr, "  async dtype %d: %s\n", dtypes[k], tpj_status_message(st));
                *failed = 1; }
      tpj_status_free(st);
      tpj_event_destroy(ev);
      if (memcmp(in, out, n) || memcmp(in, out2, n) || out[n] != 0xee) {
        fprintf(stderr, "  dtype %d rank %zu differs\n", dtypes[k], ranks[s]);
        *failed = 1;
      }
      TPJ_EXPECT_ERROR(tpj_buffer_to_host(b, out, n + 1), INVALID_ARGUMENT, "dst_size");
      tpj_buffer_destroy(b);
    }
  }
}

/* Program outputs: a transpose (a new row-major array), and its negation in
 * a column-major layout chosen by the program. The fast path declines the
 * latter (minor_to_major {0,1}); PJRT_Buffer_ToHostBuffer then returns the
 * bytes in the device layout (observed on xla-cpu-pjrt 0.0.1, even when a
 * row-major host_layout is passed), so both paths agree on the image. */
static const char kTranspose[] =
    "module @tr {\n"
    "  func.func public @main(%arg0: tensor<2x3xf32>) -> (tensor<3x2xf32>, "
    "tensor<3x2xf32> {mhlo.layout_mode = \"{0,1}\"}) {\n"
    "    %0 = \"stablehlo.transpose\"(%arg0) {permutation = array<i64: 1, 0>} : "
    "(tensor<2x3xf32>) -> tensor<3x2xf32>\n"
    "    %1 = \"stablehlo.negate\"(%0) : (tensor<3x2xf32>) -> tensor<3x2xf32>\n"
    "    \"func.return\"(%0, %1) : (tensor<3x2xf32>, tensor<3x2xf32>) -> ()\n"
    "  }\n"
    "}\n";

TPJ_TEST(fast_d2h_transposed_outputs) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  tpj_executable_t* e = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(c, kTranspose, strlen(kTranspose), NULL, &e));
  const float a[6] = {1, 2, 3, 4, 5, 6}; /* [[1,2,3],[4,5,6]] */
  const float want[2][6] = {{1, 4, 2, 5, 3, 6},        /* row-major [[1,4],[2,5],[3,6]] */
                            {-1, -2, -3, -4, -5, -6}}; /* column-major of its negation */
  int64_t dims[2] = {2, 3};
  tpj_buffer_t* arg = NULL;
  TPJ_EXPECT_OK(tpj_buffer_from_host(c, a, TPJ_DTYPE_F32, dims, 2, 0, TPJ_HOST_SEMANTICS_COPY,
                                     &arg));
  tpj_buffer_t* outs[2] = {NULL, NULL};
  tpj_execute_args_t x = {&arg, 1, 1, NULL, outs, NULL, 0};
  TPJ_EXPECT_OK(tpj_executable_execute(e, &x));
  for (int o = 0; o < 2; ++o) {
    float y[6];
    TPJ_EXPECT(tpj_buffer_dims(outs[o])[0] == 3 && tpj_buffer_dims(outs[o])[1] == 2);
    TPJ_EXPECT_OK(tpj_buffer_to_host(outs[o], y, sizeof(y)));
    for (int i = 0; i < 6; ++i) TPJ_EXPECT(y[i] == want[o][i]);
    float z[6] = {0}; /* the async variant must agree */
    tpj_event_t* ev = NULL;
    TPJ_EXPECT_OK(tpj_buffer_to_host_async(outs[o], z, sizeof(z), &ev));
    tpj_status_t st = tpj_event_await(ev);
    tpj_event_destroy(ev);
    TPJ_EXPECT_OK(st);
    TPJ_EXPECT(!memcmp(y, z, sizeof(y)));
  }
  for (int o = 0; o < 2; ++o) tpj_buffer_destroy(outs[o]);
  tpj_buffer_destroy(arg);
  tpj_executable_destroy(e);
}

/* A buffer deleted after a first (fast) copy: its ready event carries an error
 * that must come back as a status, with nothing written and nothing leaked. */
TPJ_TEST(fast_d2h_deleted_buffer_is_an_error) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(cpu_client(&c));
  const float v[4] = {1, 2, 3, 4};
  tpj_buffer_t* b = NULL;
  TPJ_EXPECT_OK(vec4(c, v, 1, &b));
  float y[4] = {0};
  TPJ_EXPECT_OK(tpj_buffer_to_host(b, y, sizeof(y)));
  TPJ_EXPECT(y[0] == 1 && y[3] == 4);
  TPJ_EXPECT_OK(tpj_buffer_delete(b));
  TPJ_EXPECT(tpj_buffer_is_deleted(b));
  memset(y, 0, sizeof(y));
  tpj_status_t st = tpj_buffer_to_host(b, y, sizeof(y));
  TPJ_EXPECT(st != NULL);
  if (st) printf("  deleted buffer: [%s] %s\n", tpj_status_code_name(tpj_status_code(st)),
                 tpj_status_message(st));
  tpj_status_free(st);
  tpj_event_t* ev = NULL;
  st = tpj_buffer_to_host_async(b, y, sizeof(y), &ev);
  if (!st) st = tpj_event_await(ev);
  TPJ_EXPECT(st != NULL);
  tpj_status_free(st);
  tpj_event_destroy(ev);
  TPJ_EXPECT(y[0] == 0 && y[3] == 0);
  tpj_buffer_destroy(b);
}

/* Runs last (tests run in definition order): frees the shared client. */
TPJ_TEST(zz_client_destroy) {
  tpj_client_destroy(g_client);
  g_client = NULL;
}

TPJ_TEST_MAIN("pjrt_cpu")
