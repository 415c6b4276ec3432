/* test_disk_cache.c: the persistent compile-cache tier on the real CPU plugin
 * (store, load after the memory tier is cleared, SHA-256 keys per options and
 * text, disabled directory; truncated, corrupt, foreign and colliding files
 * are warned about, deleted and recompiled, never loaded) and on the fake
 * plugin, which lacks the serialize slots. */
#include <errno.h>
#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpj/pjrt.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

static const char kAdd[] =
    "module {\n"
    "  func.func @main(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {\n"
    "    %0 = stablehlo.add %a, %b : tensor<4xf32>\n"
    "    return %0 : tensor<4xf32>\n"
    "  }\n"
    "}\n";
static const char kMul[] =
    "module {\n"
    "  func.func @main(%a: tensor<4xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {\n"
    "    %0 = stablehlo.multiply %a, %b : tensor<4xf32>\n"
    "    return %0 : tensor<4xf32>\n"
    "  }\n"
    "}\n";

static tpj_client_t* g_cpu; /* one client for the whole binary */

static tpj_status_t cpu_client(tpj_client_t** out_client) {
  if (g_cpu) {
    *out_client = g_cpu;
    return NULL;
  }
  TPJ_RETURN_IF_ERROR(tpj_test_cpu_client(0, &g_cpu));
  *out_client = g_cpu;
  return NULL;
}

/* A fresh directory under /tmp, made the cache directory. */
static char* use_fresh_dir(void) {
  char tmpl[] = "/tmp/tpj_disk_cache_XXXXXX";
  char* dir = mkdtemp(tmpl);
  if (!dir) return NULL;
  setenv("TORCH_PJRT_CACHE_DIR", dir, 1);
  return strdup(dir);
}

/* Counts files in dir; *out_tmp counts leftover temporary files. */
static int count_files(const char* dir, int* out_tmp) {
  DIR* d = opendir(dir);
  int n = 0, tmp = 0;
  if (!d) return -1;
  for (struct dirent* e; (e = readdir(d)) != NULL;) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    ++n;
    if (strstr(e->d_name, ".tmp.")) ++tmp;
  }
  closedir(d);
  if (out_tmp) *out_tmp = tmp;
  return n;
}

static void remove_dir(char* dir) {
  DIR* d = dir ? opendir(dir) : NULL;
  if (d) {
    char path[512];
    for (struct dirent* e; (e = readdir(d)) != NULL;) {
      if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
      snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
      unlink(path);
    }
    closedir(d);
    rmdir(dir);
  }
  free(dir);
  unsetenv("TORCH_PJRT_CACHE_DIR");
}

/* Runs the program on {1,2,3,4} and {10,20,30,40}. */
static tpj_status_t run_binary(tpj_client_t* client, tpj_executable_t* exe, float out[4]) {
  const float a[4] = {1, 2, 3, 4}, b[4] = {10, 20, 30, 40};
  const int64_t dims[1] = {4};
  tpj_buffer_t* args[2] = {NULL, NULL};
  tpj_buffer_t* result = NULL;
  tpj_status_t s = tpj_buffer_from_host(client, a, TPJ_DTYPE_F32, dims, 1, 0,
                                        TPJ_HOST_SEMANTICS_COPY, &args[0]);
  if (!s) s = tpj_buffer_from_host(client, b, TPJ_DTYPE_F32, dims, 1, 0,
                                   TPJ_HOST_SEMANTICS_COPY, &args[1]);
  if (!s) {
    tpj_execute_args_t ea = {.args = args, .num_args = 2, .num_devices = 1,
                             .out_buffers = &result};
    s = tpj_executable_execute(exe, &ea);
  }
  if (!s) s = tpj_buffer_to_host(result, out, 4 * sizeof(float));
  tpj_buffer_destroy(result);
  tpj_buffer_destroy(args[0]);
  tpj_buffer_destroy(args[1]);
  return s;
}

/* Memory tier cleared, metrics zeroed, then one cached compile of `text`;
 * runs it and returns the metrics in out_m. */
static tpj_status_t fresh_compile_and_run(const char* text, float out[4], bool* out_hit,
                                          tpj_metrics_t* out_m) {
  tpj_client_t* client = NULL;
  TPJ_RETURN_IF_ERROR(cpu_client(&client));
  tpj_runtime_cache_clear();
  tpj_runtime_metrics_reset();
  tpj_cached_executable_t* h = NULL;
  TPJ_RETURN_IF_ERROR(tpj_runtime_compile_cached(client, text, strlen(text), NULL, &h,
                                                 out_hit));
  tpj_status_t s = run_binary(client, tpj_cached_executable_get(h), out);
  tpj_cached_executable_release(h);
  tpj_runtime_metrics_get(out_m);
  return s;
}

TPJ_TEST(dir_from_environment) {
  setenv("TORCH_PJRT_CACHE_DIR", "", 1);
  TPJ_EXPECT(tpj_runtime_disk_cache_dir() == NULL);
  setenv("TORCH_PJRT_CACHE_DIR", "off", 1);
  TPJ_EXPECT(tpj_runtime_disk_cache_dir() == NULL);
  setenv("TORCH_PJRT_CACHE_DIR", "/tmp/some/where", 1);
  char* d = tpj_runtime_disk_cache_dir();
  TPJ_EXPECT(d && strcmp(d, "/tmp/some/where") == 0);
  free(d);
  unsetenv("TORCH_PJRT_CACHE_DIR");
  char* home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
  setenv("HOME", "/home/tester", 1);
  d = tpj_runtime_disk_cache_dir();
  TPJ_EXPECT(d && strcmp(d, "/home/tester/.cache/torch_pjrt") == 0);
  free(d);
  if (home) setenv("HOME", home, 1); else unsetenv("HOME");
  free(home);
}

TPJ_TEST(store_then_load_in_fresh_state) {
  char* dir = use_fresh_dir();
  TPJ_EXPECT(dir != NULL);
  float out[4] = {0};
  bool hit = true;
  tpj_metrics_t m;
  TPJ_EXPECT_OK(fresh_compile_and_run(kAdd, out, &hit, &m));
  TPJ_EXPECT(!hit && m.compiles == 1 && m.disk_hits == 0 && m.disk_writes == 1);
  TPJ_EXPECT(out[0] == 11 && out[1] == 22 && out[2] == 33 && out[3] == 44);
  int tmp = -1;
  TPJ_EXPECT(count_files(dir, &tmp) == 1 && tmp == 0);

  memset(out, 0, sizeof(out));
  TPJ_EXPECT_OK(fresh_compile_and_run(kAdd, out, &hit, &m));
  TPJ_EXPECT(hit && m.compiles == 0 && m.disk_hits == 1 && m.disk_writes == 0);
  TPJ_EXPECT(m.cache_hits == 0 && m.cache_entries == 1);
  TPJ_EXPECT(out[0] == 11 && out[1] == 22 && out[2] == 33 && out[3] == 44);

  /* A second program gets its own file and its own results. */
  TPJ_EXPECT_OK(fresh_compile_and_run(kMul, out, &hit, &m));
  TPJ_EXPECT(!hit && m.compiles == 1 && m.disk_writes == 1);
  TPJ_EXPECT(out[0] == 10 && out[1] == 40 && out[2] == 90 && out[3] == 160);
  TPJ_EXPECT(count_files(dir, NULL) == 2);
  tpj_runtime_cache_clear();
  remove_dir(dir);
}

/* ------------------------------------------------------- rejected files -- */

/* Header layout of format 2 (disk_cache.c): magic 0..8, version 8, size 12,
 * key digest 16..48, payload length 48..56, payload digest 56..88, header
 * digest 88..120; the payload follows. */
enum { kHeaderSize = 120, kKeyAt = 16, kLenAt = 48, kPayloadDigestAt = 56, kHeaderDigestAt = 88 };

static int g_warnings;
static char g_last_warning[1024];

static void capture_warnings(tpj_log_level_t level, const char* message, void* user) {
  if (level != TPJ_LOG_LEVEL_WARNING) return;
  ++g_warnings;
  snprintf(g_last_warning, sizeof(g_last_warning), "%s", message);
}

static unsigned char g_good[1 << 22], g_bad[1 << 22], g_back[1 << 22];

static long read_whole(const char* path, unsigned char* buf, size_t cap) {
  FILE* f = fopen(path, "rb");
  if (!f) return -1;
  size_t n = fread(buf, 1, cap, f);
  fclose(f);
  return (long)n;
}

static bool write_whole(const char* path, const unsigned char* buf, size_t n) {
  FILE* f = fopen(path, "wb");
  if (!f) return false;
  bool ok = fwrite(buf, 1, n, f) == n;
  return fclose(f) == 0 && ok;
}

/* The bad bytes are rejected twice over: a direct load misses, warns once
 * (naming the file and `why`) and deletes the file; with the bytes put back, a
 * cached compile recompiles the right program and replaces the file, which the
 * next fresh process-state compile loads. */
static void expect_rejected(const char* path, size_t bad_len, const char* why, int* failed) {
  tpj_client_t* client = NULL;
  TPJ_EXPECT_OK(cpu_client(&client));
  TPJ_EXPECT(write_whole(path, g_bad, bad_len));
  tpj_log_set_sink(capture_warnings, NULL);
  g_warnings = 0;
  tpj_executable_t* exe = (tpj_executable_t*)1;
  tpj_status_t s = tpj_runtime_disk_cache_load(client, kAdd, strlen(kAdd), NULL, &exe);
  tpj_log_set_sink(NULL, NULL);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(exe == NULL);
  TPJ_EXPECT(g_warnings == 1 && strstr(g_last_warning, path) && strstr(g_last_warning, why));
  if (g_warnings != 1 || !strstr(g_last_warning, why)) {
    fprintf(stderr, "  (%d warnings, last \"%s\", expected \"%s\")\n", g_warnings,
            g_last_warning, why);
  }
  struct stat st;
  TPJ_EXPECT(stat(path, &st) != 0 && errno == ENOENT);

  TPJ_EXPECT(write_whole(path, g_bad, bad_len));
  float out[4] = {0};
  bool hit = true;
  tpj_metrics_t m;
  tpj_log_set_sink(capture_warnings, NULL);
  g_warnings = 0;
  s = fresh_compile_and_run(kAdd, out, &hit, &m);
  tpj_log_set_sink(NULL, NULL);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(g_warnings == 1);
  TPJ_EXPECT(!hit && m.compiles == 1 && m.disk_hits == 0 && m.disk_writes == 1);
  TPJ_EXPECT(out[0] == 11 && out[1] == 22 && out[2] == 33 && out[3] == 44);
  long n = read_whole(path, g_back, sizeof(g_back)); /* replaced by a valid entry */
  TPJ_EXPECT(n > kHeaderSize && memcmp(g_back, g_good, kLenAt) == 0);
  memset(out, 0, sizeof(out));
  TPJ_EXPECT_OK(fresh_compile_and_run(kAdd, out, &hit, &m));
  TPJ_EXPECT(hit && m.compiles == 0 && m.disk_hits == 1);
  TPJ_EXPECT(out[0] == 11 && out[1] == 22 && out[2] == 33 && out[3] == 44);
}

/* g_bad = g_good with byte `at` flipped; returns the length. */
static size_t flipped(long good_len, long at) {
  memcpy(g_bad, g_good, (size_t)good_len);
  g_bad[at] ^= 0x5a;
  return (size_t)good_len;
}

/* A fresh directory holding kAdd's entry; its bytes in g_good, its path in
 * *out_path. Returns the file's length (<= 0 on failure). */
static long good_entry(char** out_dir, char** out_path, int* failed) {
  *out_dir = use_fresh_dir();
  *out_path = NULL;
  tpj_client_t* client = NULL;
  float out[4];
  bool hit;
  tpj_metrics_t m;
  tpj_status_t s = cpu_client(&client);
  if (!s) s = tpj_runtime_disk_cache_entry_path(client, kAdd, strlen(kAdd), NULL, out_path);
  if (!s) s = fresh_compile_and_run(kAdd, out, &hit, &m);
  if (s) {
    fprintf(stderr, "  good_entry: %s\n", tpj_status_message(s));
    tpj_status_free(s);
    *failed = 1;
    return -1;
  }
  long n = *out_path ? read_whole(*out_path, g_good, sizeof(g_good)) : -1;
  TPJ_EXPECT(n > kHeaderSize && (size_t)n < sizeof(g_good));
  return n;
}

TPJ_TEST(truncated_and_empty_files_are_deleted_and_recompiled) {
  char *dir, *path;
  long n = good_entry(&dir, &path, failed);
  if (n <= kHeaderSize) return;
  memcpy(g_bad, g_good, (size_t)n);
  expect_rejected(path, (size_t)n - 7, "size mismatch", failed);         /* payload cut */
  expect_rejected(path, kHeaderSize + 1, "size mismatch", failed);       /* one payload byte */
  expect_rejected(path, 40, "truncated header", failed);                 /* header cut */
  expect_rejected(path, 0, "truncated header", failed);                  /* empty file */
  memcpy(g_bad, g_good, (size_t)n);
  memcpy(g_bad + n, "trailing", 8);
  expect_rejected(path, (size_t)n + 8, "size mismatch", failed);         /* extra bytes */
  free(path);
  tpj_runtime_cache_clear();
  remove_dir(dir);
}

TPJ_TEST(flipped_payload_and_header_bytes_are_deleted_and_recompiled) {
  char *dir, *path;
  long n = good_entry(&dir, &path, failed);
  if (n <= kHeaderSize) return;
  expect_rejected(path, flipped(n, kHeaderSize), "payload corrupt", failed);
  expect_rejected(path, flipped(n, (kHeaderSize + n) / 2), "payload corrupt", failed);
  expect_rejected(path, flipped(n, n - 1), "payload corrupt", failed);
  expect_rejected(path, flipped(n, 0), "not a cache entry", failed);      /* magic */
  expect_rejected(path, flipped(n, 8), "not a cache entry", failed);      /* version */
  static const long header_bytes[] = {kKeyAt, kKeyAt + 31, kLenAt, kLenAt + 7,
                                      kPayloadDigestAt + 3, kHeaderDigestAt,
                                      kHeaderSize - 1};
  for (size_t i = 0; i < sizeof(header_bytes) / sizeof(header_bytes[0]); ++i) {
    expect_rejected(path, flipped(n, header_bytes[i]), "header corrupt", failed);
  }
  free(path);
  tpj_runtime_cache_clear();
  remove_dir(dir);
}

TPJ_TEST(foreign_and_colliding_files_are_deleted_and_recompiled) {
  char *dir, *path;
  long n = good_entry(&dir, &path, failed);
  if (n <= kHeaderSize) return;
  /* Some other file under the entry's name. */
  for (size_t i = 0; i < 4096; ++i) g_bad[i] = (unsigned char)("#!/bin/sh\necho hi\n"[i % 18]);
  expect_rejected(path, 4096, "not a cache entry", failed);
  /* A valid entry of format 1 (the FNV-keyed format) under the new name. */
  memcpy(g_bad, g_good, (size_t)n);
  g_bad[8] = 1;
  expect_rejected(path, (size_t)n, "not a cache entry", failed);
  /* kMul's valid file renamed to kAdd's name, as a key collision would leave it:
   * never kMul's program (which would give 10, 40, ...). */
  tpj_client_t* client = NULL;
  char* mul_path = NULL;
  float out[4];
  bool hit;
  tpj_metrics_t m;
  TPJ_EXPECT_OK(cpu_client(&client));
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_entry_path(client, kMul, strlen(kMul), NULL,
                                                  &mul_path));
  TPJ_EXPECT_OK(fresh_compile_and_run(kMul, out, &hit, &m));
  long mul_len = mul_path ? read_whole(mul_path, g_bad, sizeof(g_bad)) : -1;
  TPJ_EXPECT(mul_len > kHeaderSize);
  if (mul_len > kHeaderSize) {
    expect_rejected(path, (size_t)mul_len, "another program", failed);
  }
  /* kMul's own file is untouched and still loads as kMul. */
  TPJ_EXPECT_OK(fresh_compile_and_run(kMul, out, &hit, &m));
  TPJ_EXPECT(hit && m.disk_hits == 1 && out[0] == 10 && out[3] == 160);
  free(mul_path);
  free(path);
  tpj_runtime_cache_clear();
  remove_dir(dir);
}

TPJ_TEST(entry_names_are_the_sha256_key) {
  char* dir = use_fresh_dir();
  tpj_client_t* client = NULL;
  TPJ_EXPECT_OK(cpu_client(&client));
  tpj_digest_t key;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), NULL, &key));
  tpj_digest_hex_t hex;
  tpj_digest_format_hex(&key, &hex);
  char* path = NULL;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_entry_path(client, kAdd, strlen(kAdd), NULL, &path));
  char want[600];
  snprintf(want, sizeof(want), "%s/%s.tpjx", dir, hex.text);
  TPJ_EXPECT(path && strcmp(path, want) == 0);
  free(path);
  TPJ_EXPECT_ERROR(tpj_runtime_disk_cache_key(NULL, kAdd, 1, NULL, &key), INVALID_ARGUMENT,
                   "disk cache key");
  remove_dir(dir);
}

TPJ_TEST(keys_differ_by_options_and_text) {
  char* dir = use_fresh_dir();
  tpj_client_t* client = NULL;
  TPJ_EXPECT_OK(cpu_client(&client));
  tpj_compile_options_t one = {.num_replicas = 1, .num_partitions = 1};
  tpj_compile_options_t two = {.num_replicas = 2, .num_partitions = 1};
  tpj_compile_options_t spmd = {.num_replicas = 1, .num_partitions = 1,
                                .use_spmd_partitioning = true};
  tpj_compile_options_t shardy = spmd;
  shardy.use_shardy_partitioner = true;
  tpj_digest_t k, k_one, k_two, k_spmd, k_shardy, k_mul, k_short;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), NULL, &k));
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), &one, &k_one));
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), &two, &k_two));
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), &spmd, &k_spmd));
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), &shardy, &k_shardy));
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_key(client, kMul, strlen(kMul), NULL, &k_mul));
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd) - 1, NULL, &k_short));
  TPJ_EXPECT(tpj_digest_equal(&k, &k_one));
  TPJ_EXPECT(!tpj_digest_equal(&k, &k_two));
  TPJ_EXPECT(!tpj_digest_equal(&k, &k_spmd));
  TPJ_EXPECT(!tpj_digest_equal(&k_spmd, &k_shardy));
  TPJ_EXPECT(!tpj_digest_equal(&k, &k_mul));
  TPJ_EXPECT(!tpj_digest_equal(&k, &k_short));
  char *p1 = NULL, *p2 = NULL;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_entry_path(client, kAdd, strlen(kAdd), &one, &p1));
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_entry_path(client, kAdd, strlen(kAdd), &two, &p2));
  TPJ_EXPECT(p1 && p2 && strcmp(p1, p2) != 0);
  free(p1);
  free(p2);
  /* An entry stored for one option set is not loaded for another. */
  tpj_executable_t* exe = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(client, kAdd, strlen(kAdd), &one, &exe));
  bool written = false;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_store(client, kAdd, strlen(kAdd), &one, exe, &written));
  TPJ_EXPECT(written);
  tpj_executable_destroy(exe);
  exe = NULL;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_load(client, kAdd, strlen(kAdd), &spmd, &exe));
  TPJ_EXPECT(exe == NULL);
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_load(client, kAdd, strlen(kAdd), &one, &exe));
  TPJ_EXPECT(exe != NULL && tpj_executable_num_outputs(exe) == 1);
  tpj_executable_destroy(exe);
  remove_dir(dir);
}

TPJ_TEST(disabled_dir_writes_nothing) {
  char* dir = use_fresh_dir();
  setenv("TORCH_PJRT_CACHE_DIR", "off", 1);
  float out[4];
  bool hit = true;
  tpj_metrics_t m;
  TPJ_EXPECT_OK(fresh_compile_and_run(kAdd, out, &hit, &m));
  TPJ_EXPECT(!hit && m.compiles == 1 && m.disk_writes == 0 && m.disk_hits == 0);
  TPJ_EXPECT_OK(fresh_compile_and_run(kAdd, out, &hit, &m));
  TPJ_EXPECT(!hit && m.compiles == 1 && m.disk_hits == 0);
  TPJ_EXPECT(out[0] == 11 && out[3] == 44);
  tpj_client_t* client = NULL;
  TPJ_EXPECT_OK(cpu_client(&client));
  char* path = (char*)"unset";
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_entry_path(client, kAdd, strlen(kAdd), NULL, &path));
  TPJ_EXPECT(path == NULL);
  TPJ_EXPECT(count_files(dir, NULL) == 0);
  tpj_runtime_cache_clear();
  remove_dir(dir);
}

TPJ_TEST(serialize_round_trip_and_garbage_bytes) {
  tpj_client_t* client = NULL;
  TPJ_EXPECT_OK(cpu_client(&client));
  TPJ_EXPECT(tpj_executable_serialization_supported(client));
  tpj_executable_t* exe = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(client, kMul, strlen(kMul), NULL, &exe));
  uint8_t* bytes = NULL;
  size_t len = 0;
  TPJ_EXPECT_OK(tpj_executable_serialize(exe, &bytes, &len));
  tpj_executable_destroy(exe);
  TPJ_EXPECT(bytes != NULL && len > 0);
  tpj_executable_t* back = NULL;
  TPJ_EXPECT_OK(tpj_executable_deserialize(client, bytes, len, &back));
  float out[4] = {0};
  TPJ_EXPECT_OK(run_binary(client, back, out));
  TPJ_EXPECT(out[0] == 10 && out[1] == 40 && out[2] == 90 && out[3] == 160);
  tpj_executable_destroy(back);
  back = NULL;
  /* Bytes that are not an executable are an error, not a crash. */
  static const uint8_t junk[] = "definitely not a serialized executable";
  tpj_status_t s = tpj_executable_deserialize(client, junk, sizeof(junk), &back);
  TPJ_EXPECT(s != NULL && back == NULL);
  tpj_status_free(s);
  TPJ_EXPECT_ERROR(tpj_executable_deserialize(client, bytes, 0, &back), INVALID_ARGUMENT,
                   "empty");
  free(bytes);
}

TPJ_TEST(plugin_without_serialize_slots_disables_the_tier) {
  const char* fake = getenv("TPJ_FAKE_PLUGIN");
  if (!fake) {
    printf("  (skipped: TPJ_FAKE_PLUGIN not set)\n");
    return;
  }
  char* dir = use_fresh_dir();
  tpj_plugin_t* plugin = NULL;
  TPJ_EXPECT_OK(tpj_plugin_load(fake, &plugin));
  tpj_client_t* client = NULL;
  TPJ_EXPECT_OK(tpj_client_create(plugin, NULL, 0, &client));
  TPJ_EXPECT(!tpj_executable_serialization_supported(client));
  tpj_runtime_metrics_reset();
  tpj_cached_executable_t* h = NULL;
  bool hit = true;
  TPJ_EXPECT_OK(tpj_runtime_compile_cached(client, kAdd, strlen(kAdd), NULL, &h, &hit));
  TPJ_EXPECT(!hit);
  bool written = true;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_store(client, kAdd, strlen(kAdd), NULL,
                                             tpj_cached_executable_get(h), &written));
  TPJ_EXPECT(!written);
  tpj_executable_t* exe = (tpj_executable_t*)1;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_load(client, kAdd, strlen(kAdd), NULL, &exe));
  TPJ_EXPECT(exe == NULL);
  uint8_t* bytes = NULL;
  size_t len = 0;
  TPJ_EXPECT_ERROR(tpj_executable_serialize(tpj_cached_executable_get(h), &bytes, &len),
                   UNIMPLEMENTED, "PJRT_Executable_Serialize");
  tpj_metrics_t m;
  tpj_runtime_metrics_get(&m);
  TPJ_EXPECT(m.compiles == 1 && m.disk_writes == 0 && m.disk_hits == 0);
  TPJ_EXPECT(count_files(dir, NULL) == 0);
  tpj_cached_executable_release(h);
  tpj_runtime_cache_evict_client(client);
  tpj_client_destroy(client);
  remove_dir(dir);
}

int main(void) {
  int rc = tpj_test_run_all("disk_cache");
  tpj_runtime_cache_clear();
  tpj_client_destroy(g_cpu);
  return rc;
}
