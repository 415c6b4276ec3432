/* test_eager_memory.c: the eager device's memory accounting and out-of-memory
 * rules on the real CPU plugin: storages count from creation (also deferred)
 * to destruction per device, peaks reset, a too-large request is
 * RESOURCE_EXHAUSTED before anything is allocated, and only lowering failures
 * become "no lowering" (UNIMPLEMENTED). Expected values are hand-computed. */
#include <stdlib.h>
#include <string.h>

#include "runtime/eager_internal.h"
#include "tpj/eager.h"
#include "tpj/pjrt.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

static tpj_client_t* g_client;

static tpj_status_t ensure_init(void) {
  if (!g_client) TPJ_RETURN_IF_ERROR(tpj_test_cpu_client(2, &g_client));
  return tpj_eager_init(g_client);
}

static uint64_t allocated(size_t device) {
  tpj_eager_memory_stats_t m;
  tpj_status_t st = tpj_eager_memory_stats(device, &m);
  if (st) {
    tpj_status_free(st);
    return UINT64_MAX;
  }
  return m.allocated_bytes;
}

TPJ_TEST(storages_count_per_device_from_creation_to_destruction) {
  TPJ_EXPECT_OK(ensure_init());
  uint64_t base0 = allocated(0), base1 = allocated(1);
  tpj_eager_memory_reset_peak(1);
  tpj_eager_storage_t *a = NULL, *b = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(1000, 1, &a)); /* deferred: counted */
  TPJ_EXPECT_OK(tpj_eager_storage_create(24, 1, &b));
  TPJ_EXPECT(allocated(1) == base1 + 1024);
  TPJ_EXPECT(allocated(0) == base0);
  tpj_eager_storage_destroy(a);
  TPJ_EXPECT(allocated(1) == base1 + 24);
  tpj_eager_memory_stats_t m;
  TPJ_EXPECT_OK(tpj_eager_memory_stats(1, &m));
  TPJ_EXPECT(m.peak_allocated_bytes == base1 + 1024);
  TPJ_EXPECT(m.total_frees >= 1 && m.total_allocations >= 2);
  tpj_eager_memory_reset_peak(1);
  TPJ_EXPECT_OK(tpj_eager_memory_stats(1, &m));
  TPJ_EXPECT(m.peak_allocated_bytes == base1 + 24);
  tpj_eager_storage_destroy(b);
  TPJ_EXPECT(allocated(1) == base1);
  TPJ_EXPECT_ERROR(tpj_eager_memory_stats(7, &m), INVALID_ARGUMENT, "device index out of range");
}

TPJ_TEST(too_large_storage_is_resource_exhausted_up_front) {
  TPJ_EXPECT_OK(ensure_init());
  uint64_t free_bytes = 0, total = 0;
  TPJ_EXPECT_OK(tpj_eager_memory_info(0, &free_bytes, &total));
  TPJ_EXPECT(free_bytes > 0 && free_bytes <= total);
  uint64_t base = allocated(0);
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_ERROR(tpj_eager_storage_create((size_t)total * 2, 0, &s), RESOURCE_EXHAUSTED,
                   "bytes on pjrt device 0");
  TPJ_EXPECT(s == NULL && allocated(0) == base);
  TPJ_EXPECT_OK(tpj_eager_memory_check(0, TPJ_EAGER_MEMORY_CHECK_MIN - 1));
}

TPJ_TEST(only_lowering_failures_become_no_lowering) {
  tpj_status_t st = tpj_eager_status_no_lowering(TPJ_STATUS(INTERNAL, "bad output"), false);
  TPJ_EXPECT(tpj_status_code(st) == TPJ_STATUS_UNIMPLEMENTED);
  TPJ_EXPECT(strstr(tpj_status_message(st), "bad output") != NULL);
  tpj_status_free(st);
  st = tpj_eager_status_no_lowering(TPJ_STATUS(INVALID_ARGUMENT, "bad arg"), false);
  TPJ_EXPECT(tpj_status_code(st) == TPJ_STATUS_INVALID_ARGUMENT);
  tpj_status_free(st);
  st = tpj_eager_status_no_lowering(TPJ_STATUS(INVALID_ARGUMENT, "bad mlir"), true);
  TPJ_EXPECT(tpj_status_code(st) == TPJ_STATUS_UNIMPLEMENTED);
  tpj_status_free(st);
  st = tpj_eager_status_no_lowering(TPJ_STATUS(RESOURCE_EXHAUSTED, "oom"), true);
  TPJ_EXPECT(tpj_status_code(st) == TPJ_STATUS_RESOURCE_EXHAUSTED);
  tpj_status_free(st);
  TPJ_EXPECT(tpj_eager_status_no_lowering(NULL, true) == NULL);
}

/* sum(a @ a) for a 1024x1024 f32: the 4 MiB product is the program's temporary. */
static const char kDotSum[] =
    "module {\n"
    "  func.func @main(%a: tensor<1024x1024xf32>) -> tensor<f32> {\n"
    "    %p = stablehlo.dot_general %a, %a, contracting_dims = [1] x [0] : "
    "(tensor<1024x1024xf32>, tensor<1024x1024xf32>) -> tensor<1024x1024xf32>\n"
    "    %z = stablehlo.constant dense<0.0> : tensor<f32>\n"
    "    %s = stablehlo.reduce(%p init: %z) applies stablehlo.add across dimensions = [0, 1] : "
    "(tensor<1024x1024xf32>, tensor<f32>) -> tensor<f32>\n"
    "    return %s : tensor<f32>\n"
    "  }\n"
    "}\n";

TPJ_TEST(program_temporaries_count_in_the_peak_at_launch) {
  TPJ_EXPECT_OK(ensure_init());
  TPJ_EXPECT(tpj_executable_temp_bytes(NULL) == -1);
  tpj_executable_t* e = NULL;
  TPJ_EXPECT_OK(tpj_executable_compile(g_client, kDotSum, strlen(kDotSum), NULL, &e));
  int64_t temp = tpj_executable_temp_bytes(e);
  TPJ_EXPECT(temp >= 4 * 1024 * 1024);  /* the CPU plugin reports it */
  tpj_eager_memory_reset_peak(0);
  tpj_eager_memory_stats_t before, after;
  TPJ_EXPECT_OK(tpj_eager_memory_stats(0, &before));
  TPJ_EXPECT(before.peak_temporary_bytes == 0);
  TPJ_EXPECT_OK(tpj_eager_memory_launch(0, e));
  TPJ_EXPECT_OK(tpj_eager_memory_stats(0, &after));
  TPJ_EXPECT(after.allocated_bytes == before.allocated_bytes);
  TPJ_EXPECT(after.peak_allocated_bytes == before.allocated_bytes + (uint64_t)temp);
  TPJ_EXPECT(after.peak_temporary_bytes == (uint64_t)temp);
  tpj_eager_memory_reset_peak(0);
  TPJ_EXPECT_OK(tpj_eager_memory_stats(0, &after));
  TPJ_EXPECT(after.peak_temporary_bytes == 0 && after.peak_allocated_bytes == after.allocated_bytes);
  tpj_executable_destroy(e);
}

int main(void) {
  int rc = tpj_test_run_all("eager_memory");
  tpj_eager_cache_clear();
  if (g_client) {
    tpj_runtime_cache_evict_client(g_client);
    tpj_client_destroy(g_client);
  }
  return rc;
}
