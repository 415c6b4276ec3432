/* test_disk_cache.c: the persistent compile-cache tier on the real CPU plugin
 * (store, load after the memory tier is cleared, corrupt / truncated /
 * mismatched files as misses that get rewritten, keys per options, disabled
 * directory) and on the fake plugin, which lacks the serialize slots. */
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

/* Rewrites the entry file of kAdd: keeps `keep` bytes, then flips byte `flip`
 * (if >= 0) or appends `extra` (if not NULL). */
static bool damage_entry(const char* path, long keep, long flip, const char* extra) {
  FILE* f = fopen(path, "rb");
  if (!f) return false;
  static unsigned char buf[1 << 22];
  size_t n = fread(buf, 1, sizeof(buf), f);
  fclose(f);
  if (keep >= 0 && (size_t)keep < n) n = (size_t)keep;
  if (flip >= 0 && (size_t)flip < n) buf[flip] ^= 0x5a;
  f = fopen(path, "wb");
  if (!f) return false;
  fwrite(buf, 1, n, f);
  if (extra) fputs(extra, f);
  fclose(f);
  return true;
}

static void expect_miss_then_rewrite(const char* path, int* failed) {
  float out[4] = {0};
  bool hit = true;
  tpj_metrics_t m;
  TPJ_EXPECT_OK(fresh_compile_and_run(kAdd, out, &hit, &m));
  TPJ_EXPECT(!hit && m.compiles == 1 && m.disk_hits == 0 && m.disk_writes == 1);
  TPJ_EXPECT(out[0] == 11 && out[3] == 44);
  TPJ_EXPECT_OK(fresh_compile_and_run(kAdd, out, &hit, &m));
  TPJ_EXPECT(hit && m.compiles == 0 && m.disk_hits == 1);
  TPJ_EXPECT(out[0] == 11 && out[3] == 44);
  struct stat st;
  TPJ_EXPECT(stat(path, &st) == 0 && st.st_size > 80);
}

TPJ_TEST(corrupt_truncated_and_foreign_files_are_misses) {
  char* dir = use_fresh_dir();
  tpj_client_t* client = NULL;
  TPJ_EXPECT_OK(cpu_client(&client));
  char* path = NULL;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_entry_path(client, kAdd, strlen(kAdd), NULL, &path));
  TPJ_EXPECT(path && strncmp(path, dir, strlen(dir)) == 0);
  expect_miss_then_rewrite(path, failed); /* absent */
  struct stat st;
  TPJ_EXPECT(stat(path, &st) == 0);
  long size = (long)st.st_size;
  TPJ_EXPECT(damage_entry(path, -1, size / 2, NULL));   /* payload bit flip */
  expect_miss_then_rewrite(path, failed);
  TPJ_EXPECT(damage_entry(path, size - 7, -1, NULL));   /* truncated payload */
  expect_miss_then_rewrite(path, failed);
  TPJ_EXPECT(damage_entry(path, 40, -1, NULL));         /* truncated header */
  expect_miss_then_rewrite(path, failed);
  TPJ_EXPECT(damage_entry(path, -1, 0, NULL));          /* bad magic */
  expect_miss_then_rewrite(path, failed);
  TPJ_EXPECT(damage_entry(path, -1, -1, "trailing"));   /* extra bytes */
  expect_miss_then_rewrite(path, failed);
  TPJ_EXPECT(damage_entry(path, 0, -1, NULL));          /* empty file */
  expect_miss_then_rewrite(path, failed);

  /* kMul's (valid) file under kAdd's name: a mismatch, never kMul's program. */
  char* mul_path = NULL;
  TPJ_EXPECT_OK(tpj_runtime_disk_cache_entry_path(client, kMul, strlen(kMul), NULL,
                                                  &mul_path));
  float out[4];
  bool hit;
  tpj_metrics_t m;
  TPJ_EXPECT_OK(fresh_compile_and_run(kMul, out, &hit, &m));
  TPJ_EXPECT(rename(mul_path, path) == 0);
  expect_miss_then_rewrite(path, failed);
  free(mul_path);
  free(path);
  tpj_runtime_cache_clear();
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
  uint64_t k = tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), NULL);
  TPJ_EXPECT(k != 0);
  TPJ_EXPECT(k == tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), &one));
  TPJ_EXPECT(k != tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), &two));
  TPJ_EXPECT(k != tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd), &spmd));
  TPJ_EXPECT(k != tpj_runtime_disk_cache_key(client, kMul, strlen(kMul), NULL));
  TPJ_EXPECT(k != tpj_runtime_disk_cache_key(client, kAdd, strlen(kAdd) - 1, NULL));
  /* The disk key also covers the plugin build, so it differs from the
   * memory key of the same program. */
  TPJ_EXPECT(k != tpj_runtime_cache_key(client, kAdd, strlen(kAdd), NULL));
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
