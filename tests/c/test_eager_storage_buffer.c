/* test_eager_storage_buffer.c: the storage-buffer bridge that compiled programs
 * use to run on eager storages (tpj_eager_storage_buffer / _set_buffer), on the
 * real CPU plugin: lazy storages get zeros on the device (no host transfer),
 * borrowed buffers are the storage's own, installs check rank, size and device
 * and take ownership on every path. Expected values are hand-computed. */
#include <stdlib.h>
#include <string.h>

#include "tpj/eager.h"
#include "tpj/pjrt.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

static tpj_client_t* g_client;

/* A client of "cpu" (found on $TORCH_PJRT_PLUGIN_PATH) with two devices. */
static tpj_status_t ensure_init(void) {
  if (!g_client) TPJ_RETURN_IF_ERROR(tpj_test_cpu_client(2, &g_client));
  return tpj_eager_init(g_client);
}

static tpj_eager_tensor_t flat_view(tpj_eager_storage_t* s, tpj_dtype_t dt, int64_t n) {
  tpj_eager_tensor_t v;
  memset(&v, 0, sizeof(v));
  v.storage = s;
  v.dtype = dt;
  v.rank = 1;
  v.sizes[0] = n;
  v.strides[0] = 1;
  return v;
}

static uint64_t bytes_h2d(void) {
  tpj_metrics_t m;
  tpj_runtime_metrics_get(&m);
  return m.bytes_h2d;
}

TPJ_TEST(lazy_storage_gets_zeros_on_the_device) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(5 * sizeof(float), 0, &s));
  uint64_t h2d = bytes_h2d();
  tpj_buffer_t* b = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_buffer(s, TPJ_DTYPE_F32, &b));
  TPJ_EXPECT(bytes_h2d() == h2d); /* made by a program, not uploaded */
  TPJ_EXPECT(b != NULL && tpj_buffer_rank(b) == 1 && tpj_buffer_dims(b)[0] == 5);
  TPJ_EXPECT(tpj_eager_storage_dtype(s) == TPJ_DTYPE_F32);
  float got[5] = {1, 1, 1, 1, 1};
  TPJ_EXPECT_OK(tpj_buffer_to_host(b, got, sizeof(got)));
  for (int i = 0; i < 5; ++i) TPJ_EXPECT(got[i] == 0.0f);
  /* borrowed: the same buffer again, and none for another dtype */
  tpj_buffer_t* again = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_buffer(s, TPJ_DTYPE_F32, &again));
  TPJ_EXPECT(again == b);
  TPJ_EXPECT_OK(tpj_eager_storage_buffer(s, TPJ_DTYPE_S32, &again));
  TPJ_EXPECT(again == NULL);
  TPJ_EXPECT_ERROR(tpj_eager_storage_buffer(s, TPJ_DTYPE_INVALID, &again), INVALID_ARGUMENT,
                   "bad dtype");
  tpj_eager_storage_destroy(s);
  /* empty and boolean storages, read through a view (eager ops do the same) */
  tpj_eager_storage_t* e = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(0, 0, &e));
  TPJ_EXPECT_OK(tpj_eager_storage_buffer(e, TPJ_DTYPE_F32, &b));
  TPJ_EXPECT(b != NULL && tpj_buffer_dims(b)[0] == 0);
  tpj_eager_storage_destroy(e);
  TPJ_EXPECT_OK(tpj_eager_storage_create(3, 0, &e));
  tpj_eager_tensor_t pv = flat_view(e, TPJ_DTYPE_PRED, 3);
  tpj_buffer_t* flat = NULL;
  TPJ_EXPECT_OK(tpj_eager_materialize(&pv, &flat));
  TPJ_EXPECT(bytes_h2d() == h2d);
  uint8_t bits[3] = {1, 1, 1};
  TPJ_EXPECT_OK(tpj_buffer_to_host(flat, bits, sizeof(bits)));
  TPJ_EXPECT(bits[0] == 0 && bits[1] == 0 && bits[2] == 0);
  tpj_buffer_destroy(flat);
  tpj_eager_storage_destroy(e);
}

TPJ_TEST(set_buffer_installs_and_every_view_sees_it) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(4 * sizeof(int32_t), 0, &s));
  const int32_t data[4] = {7, -2, 5, 11};
  int64_t n = 4;
  tpj_buffer_t* b = NULL;
  TPJ_EXPECT_OK(tpj_buffer_from_host(g_client, data, TPJ_DTYPE_S32, &n, 1, 0,
                                     TPJ_HOST_SEMANTICS_COPY, &b));
  TPJ_EXPECT_OK(tpj_eager_storage_set_buffer(s, b));
  TPJ_EXPECT(tpj_eager_storage_dtype(s) == TPJ_DTYPE_S32);
  tpj_eager_tensor_t tail = flat_view(s, TPJ_DTYPE_S32, 2);
  tail.offset = 2; /* elements 2..3 */
  int32_t got[2] = {0, 0};
  TPJ_EXPECT_OK(tpj_eager_read_host(&tail, got, sizeof(got)));
  TPJ_EXPECT(got[0] == 5 && got[1] == 11);
  tpj_buffer_t* own = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_buffer(s, TPJ_DTYPE_S32, &own));
  TPJ_EXPECT(own == b);
  tpj_eager_storage_destroy(s);
}

TPJ_TEST(set_buffer_rejects_wrong_rank_size_and_device) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(4 * sizeof(float), 0, &s));
  const float data[4] = {1, 2, 3, 4};
  int64_t dims2[2] = {2, 2}, four = 4, three = 3;
  tpj_buffer_t* b = NULL;
  /* each rejected buffer is destroyed by the call (LSan checks it) */
  TPJ_EXPECT_OK(tpj_buffer_from_host(g_client, data, TPJ_DTYPE_F32, dims2, 2, 0,
                                     TPJ_HOST_SEMANTICS_COPY, &b));
  TPJ_EXPECT_ERROR(tpj_eager_storage_set_buffer(s, b), INVALID_ARGUMENT, "1-D");
  TPJ_EXPECT_OK(tpj_buffer_from_host(g_client, data, TPJ_DTYPE_F32, &three, 1, 0,
                                     TPJ_HOST_SEMANTICS_COPY, &b));
  TPJ_EXPECT_ERROR(tpj_eager_storage_set_buffer(s, b), INVALID_ARGUMENT, "size mismatch");
  if (tpj_client_addressable_device_count(g_client) > 1) {
    TPJ_EXPECT_OK(tpj_buffer_from_host(g_client, data, TPJ_DTYPE_F32, &four, 1, 1,
                                       TPJ_HOST_SEMANTICS_COPY, &b));
    TPJ_EXPECT_ERROR(tpj_eager_storage_set_buffer(s, b), INVALID_ARGUMENT, "device 1");
  }
  TPJ_EXPECT_ERROR(tpj_eager_storage_set_buffer(s, NULL), INVALID_ARGUMENT, "NULL");
  TPJ_EXPECT(tpj_eager_storage_dtype(s) == TPJ_DTYPE_INVALID); /* still never written */
  tpj_eager_storage_destroy(s);
}

int main(void) {
  int rc = tpj_test_run_all("eager_storage_buffer");
  tpj_eager_cache_clear();
  if (g_client) {
    tpj_runtime_cache_evict_client(g_client);
    tpj_client_destroy(g_client);
  }
  return rc;
}
