/* test_pjrt_fake.c: the fault matrix of src/pjrt/ against the fake plugin
 * ($TPJ_FAKE_PLUGIN). Each fault ($TPJ_FAKE_MODE) must come back as a status
 * with the plugin's code and message, with nothing leaked (run under LSan).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tpj/pjrt.h"
#include "tpj_test.h"

/* A private copy of the fake plugin, so that each load-time fault gets its own
 * registry entry and static API table. Caller frees the path. */
static char* fake_copy(const char* tag) {
  const char* src = getenv("TPJ_FAKE_PLUGIN");
  if (!src) return NULL;
  char* dst = malloc(256);
  snprintf(dst, 256, "/tmp/tpj_fake_%s_%d.so", tag, (int)getpid());
  FILE* in = fopen(src, "rb");
  FILE* out = fopen(dst, "wb");
  char buf[65536];
  size_t n;
  while (in && out && (n = fread(buf, 1, sizeof(buf), in)) > 0) fwrite(buf, 1, n, out);
  if (in) fclose(in);
  if (out) fclose(out);
  return dst;
}

static tpj_status_t load_fake(tpj_plugin_t** out) {
  return tpj_plugin_load(getenv("TPJ_FAKE_PLUGIN"), out);
}

static tpj_status_t fake_client(size_t devices, tpj_client_t** out) {
  tpj_plugin_t* p = NULL;
  TPJ_RETURN_IF_ERROR(load_fake(&p));
  tpj_option_t o = {.name = "device_count", .kind = TPJ_OPTION_KIND_INT64,
                    .int_value = (int64_t)devices};
  return tpj_client_create(p, &o, 1, out);
}

TPJ_TEST(missing_get_pjrt_api) {
  tpj_plugin_t* p = NULL;
  TPJ_EXPECT_ERROR(tpj_plugin_load("libm.so.6", &p), INVALID_ARGUMENT,
                   "does not export GetPjrtApi");
  TPJ_EXPECT(p == NULL);
  TPJ_EXPECT_ERROR(tpj_plugin_load("/nonexistent/libnope.so", &p), NOT_FOUND,
                   "/nonexistent/libnope.so");
}

TPJ_TEST(load_faults_are_reported_and_not_cached) {
  char* path = fake_copy("load");
  tpj_plugin_t* p = NULL;
  setenv("TPJ_FAKE_MODE", "bad_major", 1);
  TPJ_EXPECT_ERROR(tpj_plugin_load(path, &p), FAILED_PRECONDITION,
                   "unsupported PJRT API major version (got 1.115");
  setenv("TPJ_FAKE_MODE", "tiny_api", 1);
  TPJ_EXPECT_ERROR(tpj_plugin_load(path, &p), FAILED_PRECONDITION,
                   "required function PJRT_Plugin_Initialize missing");
  setenv("TPJ_FAKE_MODE", "init_fail", 1);
  TPJ_EXPECT_ERROR(tpj_plugin_load(path, &p), FAILED_PRECONDITION,
                   "fake: initialization refused");
  unsetenv("TPJ_FAKE_MODE");
  tpj_status_t st = tpj_plugin_load(path, &p); /* the failures were not cached */
  TPJ_EXPECT(st == NULL && p != NULL);
  tpj_status_free(st);
  remove(path);
  free(path);
}

TPJ_TEST(old_api_lacks_a_slot) {
  char* path = fake_copy("old");
  setenv("TPJ_FAKE_MODE", "old_api", 1);
  tpj_plugin_t* p = NULL;
  tpj_status_t st = tpj_plugin_load(path, &p);
  unsetenv("TPJ_FAKE_MODE");
  remove(path);
  free(path);
  TPJ_EXPECT_OK(st);
  tpj_plugin_info_t info;
  tpj_plugin_get_info(p, &info);
  TPJ_EXPECT(info.api_major == 0 && info.api_minor == 20);
  /* The table ends before the device slots: creating a client needs them. */
  tpj_client_t* c = NULL;
  TPJ_EXPECT_ERROR(tpj_client_create(p, NULL, 0, &c), UNIMPLEMENTED,
                   "PJRT_Device_GetDescription is not provided by plugin");
  TPJ_EXPECT(c == NULL);
  TPJ_EXPECT_ERROR(tpj_client_create(p, NULL, 0, &c), UNIMPLEMENTED, "PJRT API 0.20");
}

TPJ_TEST(plugin_info_and_registry) {
  tpj_plugin_t *p1 = NULL, *p2 = NULL;
  TPJ_EXPECT_OK(load_fake(&p1));
  TPJ_EXPECT_OK(load_fake(&p2));
  TPJ_EXPECT(p1 == p2);
  tpj_plugin_info_t info;
  tpj_plugin_get_info(p1, &info);
  TPJ_EXPECT(info.api_major == 0 && info.api_minor == 115);
  TPJ_EXPECT(info.xla_version == 7);
  TPJ_EXPECT(info.stablehlo_current[0] == 1 && info.stablehlo_current[1] == 2 &&
             info.stablehlo_current[2] == 3);
  TPJ_EXPECT(info.stablehlo_minimum[1] == 9);
  TPJ_EXPECT(!strcmp(info.path, getenv("TPJ_FAKE_PLUGIN")));
}

TPJ_TEST(client_options_of_every_kind) {
  tpj_plugin_t* p = NULL;
  TPJ_EXPECT_OK(load_fake(&p));
  int64_t list[3] = {1, 2, 3};
  tpj_option_t opts[5] = {
      {.name = "device_count", .kind = TPJ_OPTION_KIND_INT64, .int_value = 3},
      {.name = "fake_string", .kind = TPJ_OPTION_KIND_STRING, .string_value = "abc"},
      {.name = "fake_list", .kind = TPJ_OPTION_KIND_INT64_LIST, .int_list = list,
       .int_list_count = 3},
      {.name = "fake_float", .kind = TPJ_OPTION_KIND_FLOAT, .float_value = 0.5f},
      {.name = "fake_bool", .kind = TPJ_OPTION_KIND_BOOL, .int_value = 1},
  };
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(tpj_client_create(p, opts, 5, &c));
  TPJ_EXPECT(!strcmp(tpj_client_platform_name(c), "fake"));
  TPJ_EXPECT(!strcmp(tpj_client_platform_version(c),
                     "fake-1.0 device_count=3 string=abc list=1,2,3 float=0.50 bool=1"));
  TPJ_EXPECT(tpj_client_device_count(c) == 3 && tpj_client_addressable_device_count(c) == 3);
  tpj_device_info_t d;
  TPJ_EXPECT_OK(tpj_client_device_info(c, 1, &d));
  TPJ_EXPECT(d.id == 101 && d.local_hardware_id == 1 && !strcmp(d.kind, "fake_kind"));
  TPJ_EXPECT(!strcmp(d.debug_string, "FakeDevice(id=101)"));
  TPJ_EXPECT_ERROR(tpj_client_device_info(c, 3, &d), INVALID_ARGUMENT, "got 3, expected < 3");
  tpj_client_destroy(c);
  tpj_option_t bad = {.name = "bogus", .kind = TPJ_OPTION_KIND_INT64, .int_value = 1};
  c = NULL;
  TPJ_EXPECT_ERROR(tpj_client_create(p, &bad, 1, &c), INVALID_ARGUMENT,
                   "PJRT_Client_Create failed: fake: unknown client option 'bogus'");
  TPJ_EXPECT(c == NULL);
}

TPJ_TEST(buffers_round_trip_and_copy) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(fake_client(2, &c));
  float x[6] = {1, 2, 3, 4, 5, 6}, y[6] = {0};
  int64_t dims[2] = {2, 3};
  tpj_buffer_t *b = NULL, *b1 = NULL;
  TPJ_EXPECT_OK(tpj_buffer_from_host(c, x, TPJ_DTYPE_F32, dims, 2, 0,
                                     TPJ_HOST_SEMANTICS_ZERO_COPY, &b)); /* falls back */
  x[0] = 100; /* a copy was taken */
  TPJ_EXPECT(tpj_buffer_dtype(b) == TPJ_DTYPE_F32 && tpj_buffer_rank(b) == 2);
  TPJ_EXPECT(tpj_buffer_dims(b)[0] == 2 && tpj_buffer_dims(b)[1] == 3);
  size_t size = 0;
  TPJ_EXPECT_OK(tpj_buffer_on_device_size(b, &size));
  TPJ_EXPECT(size == 24);
  TPJ_EXPECT_OK(tpj_buffer_copy_to_device(b, 1, &b1));
  TPJ_EXPECT(tpj_buffer_device_index(b1) == 1);
  TPJ_EXPECT_OK(tpj_buffer_to_host(b1, y, sizeof(y)));
  TPJ_EXPECT(y[0] == 1 && y[5] == 6);
  TPJ_EXPECT_ERROR(tpj_buffer_to_host(b1, y, 8), INVALID_ARGUMENT, "got 8, expected 24");
  TPJ_EXPECT_OK(tpj_buffer_await(b1));
  TPJ_EXPECT(!tpj_buffer_is_deleted(b));
  TPJ_EXPECT_OK(tpj_buffer_delete(b));
  TPJ_EXPECT(tpj_buffer_is_deleted(b));
  TPJ_EXPECT_ERROR(tpj_buffer_to_host(b, y, sizeof(y)), FAILED_PRECONDITION,
                   "fake: buffer was deleted");
  tpj_buffer_destroy(b);
  tpj_buffer_destroy(b1);
  tpj_client_destroy(c);
}

TPJ_TEST(allocation_failure) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(fake_client(1, &c));
  float x[2] = {1, 2};
  int64_t dims[1] = {2};
  tpj_buffer_t* b = NULL;
  setenv("TPJ_FAKE_MODE", "alloc_fail", 1);
  TPJ_EXPECT_ERROR(tpj_buffer_from_host(c, x, TPJ_DTYPE_F32, dims, 1, 0,
                                        TPJ_HOST_SEMANTICS_COPY, &b),
                   RESOURCE_EXHAUSTED,
                   "PJRT_Client_BufferFromHostBuffer failed: fake: out of device memory");
  unsetenv("TPJ_FAKE_MODE");
  TPJ_EXPECT(b == NULL);
  tpj_client_destroy(c);
}

TPJ_TEST(compile_failure) {
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(fake_client(1, &c));
  tpj_executable_t* e = NULL;
  setenv("TPJ_FAKE_MODE", "compile_fail", 1);
  TPJ_EXPECT_ERROR(tpj_executable_compile(c, "module {}", 9, NULL, &e), INVALID_ARGUMENT,
                   "PJRT_Client_Compile failed: fake: compile error: unknown op");
  unsetenv("TPJ_FAKE_MODE");
  TPJ_EXPECT(e == NULL);
  tpj_compile_options_t too_many = {3, 1, false, false, false};
  TPJ_EXPECT_ERROR(tpj_executable_compile(c, "module {}", 9, &too_many, &e), INVALID_ARGUMENT,
                   "bad num_replicas 3");
  tpj_client_destroy(c);
}

TPJ_TEST(compile_options_encoding) {
  uint8_t out[32];
  size_t n = 0;
  tpj_compile_options_t one = {1, 1, false, false, false};
  TPJ_EXPECT_OK(tpj_compile_options_encode(&one, out, sizeof(out), &n));
  const uint8_t want1[] = {0x1a, 0x04, 0x20, 0x01, 0x28, 0x01};
  TPJ_EXPECT(n == sizeof(want1) && !memcmp(out, want1, n));
  tpj_compile_options_t spmd = {1, 2, true, false, false};
  TPJ_EXPECT_OK(tpj_compile_options_encode(&spmd, out, sizeof(out), &n));
  const uint8_t want2[] = {0x1a, 0x06, 0x20, 0x01, 0x28, 0x02, 0x30, 0x01};
  TPJ_EXPECT(n == sizeof(want2) && !memcmp(out, want2, n));
  tpj_compile_options_t big = {300, 1, false, false, false}; /* 300 = varint ac 02 */
  TPJ_EXPECT_OK(tpj_compile_options_encode(&big, out, sizeof(out), &n));
  const uint8_t want3[] = {0x1a, 0x05, 0x20, 0xac, 0x02, 0x28, 0x01};
  TPJ_EXPECT(n == sizeof(want3) && !memcmp(out, want3, n));
  tpj_compile_options_t shardy = {1, 4, true, false, true}; /* field 19: 98 01 01 */
  TPJ_EXPECT_OK(tpj_compile_options_encode(&shardy, out, sizeof(out), &n));
  const uint8_t want4[] = {0x1a, 0x09, 0x20, 0x01, 0x28, 0x04, 0x30, 0x01, 0x98, 0x01, 0x01};
  TPJ_EXPECT(n == sizeof(want4) && !memcmp(out, want4, n));
  tpj_compile_options_t zero = {0, 1, false, false, false};
  TPJ_EXPECT_ERROR(tpj_compile_options_encode(&zero, out, sizeof(out), &n), INVALID_ARGUMENT,
                   "num_replicas must be >= 1 (got 0)");
  TPJ_EXPECT_ERROR(tpj_compile_options_encode(&one, out, 3, &n), OUT_OF_RANGE, "6 bytes");
}

TPJ_TEST_MAIN("pjrt_fake")
