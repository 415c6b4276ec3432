/* test_runtime.c: the compile cache and the metrics counters, on the real CPU
 * plugin: hits and misses, key stability, failed compiles not cached, handles
 * that outlive an eviction, and concurrent compiles of one program. */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

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

TPJ_TEST(metrics_add_get_reset) {
  tpj_runtime_metrics_reset();
  tpj_metrics_t m;
  tpj_runtime_metrics_get(&m);
  TPJ_EXPECT(m.compiles == 0 && m.cache_hits == 0 && m.executions == 0);
  TPJ_EXPECT(m.bytes_h2d == 0 && m.bytes_d2h == 0 && m.fallbacks == 0);
  TPJ_EXPECT(m.compile_seconds == 0.0);
  tpj_runtime_metrics_add_execution();
  tpj_runtime_metrics_add_execution();
  tpj_runtime_metrics_add_bytes_h2d(100);
  tpj_runtime_metrics_add_bytes_h2d(28);
  tpj_runtime_metrics_add_bytes_d2h(64);
  tpj_runtime_metrics_add_fallback();
  tpj_runtime_metrics_add_compile(0.5);
  tpj_runtime_metrics_add_cache_hit();
  tpj_runtime_metrics_get(&m);
  TPJ_EXPECT(m.executions == 2);
  TPJ_EXPECT(m.bytes_h2d == 128);
  TPJ_EXPECT(m.bytes_d2h == 64);
  TPJ_EXPECT(m.fallbacks == 1);
  TPJ_EXPECT(m.compiles == 1 && m.cache_hits == 1);
  TPJ_EXPECT(m.compile_seconds > 0.49 && m.compile_seconds < 0.51);
  tpj_runtime_metrics_reset();
  tpj_runtime_metrics_get(&m);
  TPJ_EXPECT(m.executions == 0 && m.compiles == 0 && m.compile_seconds == 0.0);
}

TPJ_TEST(cache_key_is_stable_and_distinguishes_inputs) {
  tpj_compile_options_t two = {.num_replicas = 2, .num_partitions = 1};
  tpj_compile_options_t one = {.num_replicas = 1, .num_partitions = 1};
  uint64_t k1 = tpj_runtime_cache_key(NULL, kAdd, strlen(kAdd), NULL);
  TPJ_EXPECT(k1 == tpj_runtime_cache_key(NULL, kAdd, strlen(kAdd), NULL));
  TPJ_EXPECT(k1 == tpj_runtime_cache_key(NULL, kAdd, strlen(kAdd), &one));
  TPJ_EXPECT(k1 != tpj_runtime_cache_key(NULL, kAdd, strlen(kAdd), &two));
  tpj_compile_options_t gspmd = {.num_replicas = 1, .num_partitions = 4,
                                 .use_spmd_partitioning = true};
  tpj_compile_options_t shardy = gspmd;
  shardy.use_shardy_partitioner = true;
  TPJ_EXPECT(tpj_runtime_cache_key(NULL, kAdd, strlen(kAdd), &gspmd) !=
             tpj_runtime_cache_key(NULL, kAdd, strlen(kAdd), &shardy));
  TPJ_EXPECT(k1 != tpj_runtime_cache_key(NULL, kMul, strlen(kMul), NULL));
  TPJ_EXPECT(k1 != tpj_runtime_cache_key(NULL, kAdd, strlen(kAdd) - 1, NULL));
}

TPJ_TEST(cache_rejects_bad_arguments) {
  tpj_cached_executable_t* h = NULL;
  TPJ_EXPECT_ERROR(tpj_runtime_compile_cached(NULL, kAdd, strlen(kAdd), NULL, &h, NULL),
                   INVALID_ARGUMENT, "client is NULL");
  TPJ_EXPECT(h == NULL);
}

/* Runs the cached add/mul executable on {1,2,3,4} and {10,20,30,40}. */
static tpj_status_t run_binary(tpj_client_t* client, tpj_cached_executable_t* h,
                               float out[4]) {
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
    s = tpj_executable_execute(tpj_cached_executable_get(h), &ea);
  }
  if (!s) s = tpj_buffer_to_host(result, out, 4 * sizeof(float));
  tpj_buffer_destroy(result);
  tpj_buffer_destroy(args[0]);
  tpj_buffer_destroy(args[1]);
  return s;
}

TPJ_TEST(cache_hits_misses_and_eviction) {
  tpj_client_t* client = NULL;
  TPJ_EXPECT_OK(tpj_test_cpu_client(0, &client));
  tpj_runtime_cache_clear();
  tpj_runtime_metrics_reset();
  tpj_cached_executable_t *h1 = NULL, *h2 = NULL, *h3 = NULL;
  bool hit = true;
  TPJ_EXPECT_OK(tpj_runtime_compile_cached(client, kAdd, strlen(kAdd), NULL, &h1, &hit));
  TPJ_EXPECT(!hit);
  TPJ_EXPECT_OK(tpj_runtime_compile_cached(client, kAdd, strlen(kAdd), NULL, &h2, &hit));
  TPJ_EXPECT(hit);
  TPJ_EXPECT(h1 == h2);
  TPJ_EXPECT_OK(tpj_runtime_compile_cached(client, kMul, strlen(kMul), NULL, &h3, &hit));
  TPJ_EXPECT(!hit && h3 != h1);
  TPJ_EXPECT(tpj_runtime_cache_size() == 2);
  tpj_metrics_t m;
  tpj_runtime_metrics_get(&m);
  TPJ_EXPECT(m.compiles == 2 && m.cache_hits == 1 && m.cache_entries == 2);
  TPJ_EXPECT(m.compile_seconds > 0.0);
  TPJ_EXPECT(tpj_executable_num_outputs(tpj_cached_executable_get(h1)) == 1);

  /* A failed compile is reported and not cached. */
  tpj_cached_executable_t* bad = NULL;
  const char junk[] = "module { this is not stablehlo }";
  tpj_status_t s = tpj_runtime_compile_cached(client, junk, strlen(junk), NULL, &bad, NULL);
  TPJ_EXPECT(s != NULL && bad == NULL);
  TPJ_EXPECT(s && strstr(tpj_status_message(s), "compile") != NULL);
  tpj_status_free(s);
  TPJ_EXPECT(tpj_runtime_cache_size() == 2);

  /* Handles stay usable after the cache lets go of them. */
  tpj_runtime_cache_evict_client(client);
  TPJ_EXPECT(tpj_runtime_cache_size() == 0);
  float out[4] = {0};
  TPJ_EXPECT_OK(run_binary(client, h1, out));
  TPJ_EXPECT(out[0] == 11 && out[1] == 22 && out[2] == 33 && out[3] == 44);
  TPJ_EXPECT_OK(run_binary(client, h3, out));
  TPJ_EXPECT(out[0] == 10 && out[1] == 40 && out[2] == 90 && out[3] == 160);
  tpj_cached_executable_release(h1);
  tpj_cached_executable_release(h2);
  tpj_cached_executable_release(h3);
  tpj_client_destroy(client);
}

typedef struct {
  tpj_client_t* client;
  tpj_cached_executable_t* handle;
  tpj_status_t status;
} compile_job_t;

static void* compile_thread(void* p) {
  compile_job_t* job = p;
  job->status = tpj_runtime_compile_cached(job->client, kMul, strlen(kMul), NULL,
                                           &job->handle, NULL);
  return NULL;
}

TPJ_TEST(cache_concurrent_compiles_share_one_entry) {
  tpj_client_t* client = NULL;
  TPJ_EXPECT_OK(tpj_test_cpu_client(0, &client));
  tpj_runtime_cache_clear();
  compile_job_t jobs[4] = {{0}};
  pthread_t threads[4];
  for (int i = 0; i < 4; ++i) {
    jobs[i].client = client;
    TPJ_EXPECT(pthread_create(&threads[i], NULL, compile_thread, &jobs[i]) == 0);
  }
  for (int i = 0; i < 4; ++i) pthread_join(threads[i], NULL);
  for (int i = 0; i < 4; ++i) {
    TPJ_EXPECT(jobs[i].status == NULL);
    tpj_status_free(jobs[i].status);
    TPJ_EXPECT(jobs[i].handle != NULL && jobs[i].handle == jobs[0].handle);
  }
  TPJ_EXPECT(tpj_runtime_cache_size() == 1);
  for (int i = 0; i < 4; ++i) tpj_cached_executable_release(jobs[i].handle);
  tpj_runtime_cache_clear();
  TPJ_EXPECT(tpj_runtime_cache_size() == 0);
  tpj_client_destroy(client);
}

int main(void) { return tpj_test_run_all("runtime"); }
