/* test_eager.c: the eager device runtime (tpj/eager.h) on the real CPU plugin,
 * without PyTorch: storages, view reads, one-op runs through the lowering
 * table, writes through views, scalar runtime inputs and error paths, so the
 * ASan/UBSan/LSan build covers this code. Expected values are hand-computed. */
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/eager.h"
#include "tpj/pjrt.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

static tpj_client_t* g_client;

static tpj_status_t ensure_init(void) {
  if (!g_client) TPJ_RETURN_IF_ERROR(tpj_test_cpu_client(2, &g_client));
  return tpj_eager_init(g_client);
}

/* A view of `s` with the given sizes/strides (elements) and offset. */
static tpj_eager_tensor_t view(tpj_eager_storage_t* s, tpj_dtype_t dt, int32_t rank,
                               const int64_t* sizes, const int64_t* strides, int64_t offset) {
  tpj_eager_tensor_t v;
  memset(&v, 0, sizeof(v));
  v.storage = s;
  v.dtype = dt;
  v.rank = rank;
  for (int32_t i = 0; i < rank; ++i) {
    v.sizes[i] = sizes[i];
    v.strides[i] = strides[i];
  }
  v.offset = offset;
  return v;
}

/* A [3, 4] f32 storage holding 0..11. */
static tpj_status_t iota_3x4(tpj_eager_storage_t** out) {
  TPJ_RETURN_IF_ERROR(tpj_eager_storage_create(12 * sizeof(float), 0, out));
  float data[12];
  for (int i = 0; i < 12; ++i) data[i] = (float)i;
  int64_t sz[2] = {3, 4}, st[2] = {4, 1};
  tpj_eager_tensor_t v = view(*out, TPJ_DTYPE_F32, 2, sz, st, 0);
  return tpj_eager_write_host(data, sizeof(data), &v);
}

static tpj_arg_t arg_tensor(int32_t index) {
  tpj_arg_t a;
  memset(&a, 0, sizeof(a));
  a.kind = TPJ_ARG_KIND_TENSOR;
  a.tensor = (tpj_value_t)index;
  return a;
}

static tpj_arg_t arg_float(double f) {
  tpj_arg_t a;
  memset(&a, 0, sizeof(a));
  a.kind = TPJ_ARG_KIND_FLOAT;
  a.f = f;
  return a;
}

static tpj_type_t f32_type(int32_t rank, const int64_t* dims) {
  tpj_type_t t;
  memset(&t, 0, sizeof(t));
  t.dtype = TPJ_DTYPE_F32;
  t.rank = rank;
  for (int32_t i = 0; i < rank; ++i) t.dims[i] = dims[i];
  return t;
}

TPJ_TEST(storage_before_init_is_an_error) {
  tpj_eager_storage_t* s = NULL;
  if (tpj_eager_client()) return; /* only meaningful as the first test */
  TPJ_EXPECT_ERROR(tpj_eager_storage_create(16, 0, &s), FAILED_PRECONDITION, "not initialized");
  TPJ_EXPECT(s == NULL);
}

TPJ_TEST(storage_create_destroy_and_zeros) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_stats_t before, mid, after;
  tpj_eager_stats_get(&before);
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(6 * sizeof(int32_t), 0, &s));
  tpj_eager_stats_get(&mid);
  TPJ_EXPECT(mid.live_storages == before.live_storages + 1);
  TPJ_EXPECT(tpj_eager_storage_nbytes(s) == 24);
  TPJ_EXPECT(tpj_eager_storage_device(s) == 0);
  TPJ_EXPECT(tpj_eager_storage_dtype(s) == TPJ_DTYPE_INVALID);
  int32_t got[6] = {1, 1, 1, 1, 1, 1};
  int64_t sz[1] = {6}, st[1] = {1};
  tpj_eager_tensor_t v = view(s, TPJ_DTYPE_S32, 1, sz, st, 0);
  TPJ_EXPECT_OK(tpj_eager_read_host(&v, got, sizeof(got)));
  for (int i = 0; i < 6; ++i) TPJ_EXPECT(got[i] == 0); /* never written: zeros */
  tpj_eager_storage_destroy(s);
  tpj_eager_stats_get(&after);
  TPJ_EXPECT(after.live_storages == before.live_storages);
  TPJ_EXPECT_ERROR(tpj_eager_storage_create(8, 99, &s), INVALID_ARGUMENT, "device index");
}

TPJ_TEST(views_materialize) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(iota_3x4(&s));
  TPJ_EXPECT(tpj_eager_storage_dtype(s) == TPJ_DTYPE_F32);
  /* transpose: [4, 3] with strides [1, 4]; t[i][j] = 4 j + i */
  int64_t tsz[2] = {4, 3}, tst[2] = {1, 4};
  tpj_eager_tensor_t t = view(s, TPJ_DTYPE_F32, 2, tsz, tst, 0);
  float tr[12];
  TPJ_EXPECT_OK(tpj_eager_read_host(&t, tr, sizeof(tr)));
  for (int i = 0; i < 4; ++i)
    for (int j = 0; j < 3; ++j) TPJ_EXPECT(tr[i * 3 + j] == (float)(4 * j + i));
  /* slice [1:3, 1:3] of the [3, 4] base: offset 5 -> 5 6 9 10 */
  int64_t ssz[2] = {2, 2}, sst[2] = {4, 1};
  tpj_eager_tensor_t sl = view(s, TPJ_DTYPE_F32, 2, ssz, sst, 5);
  tpj_buffer_t* flat = NULL;
  TPJ_EXPECT_OK(tpj_eager_materialize(&sl, &flat));
  float sv[4];
  TPJ_EXPECT_OK(tpj_buffer_to_host(flat, sv, sizeof(sv)));
  TPJ_EXPECT(sv[0] == 5 && sv[1] == 6 && sv[2] == 9 && sv[3] == 10);
  tpj_buffer_destroy(flat);
  /* expanded row: stride 0 */
  int64_t esz[2] = {2, 4}, est[2] = {0, 1};
  tpj_eager_tensor_t ex = view(s, TPJ_DTYPE_F32, 2, esz, est, 8);
  float ev[8];
  TPJ_EXPECT_OK(tpj_eager_read_host(&ex, ev, sizeof(ev)));
  for (int i = 0; i < 8; ++i) TPJ_EXPECT(ev[i] == (float)(8 + i % 4));
  tpj_eager_storage_destroy(s);
}

/* add.Tensor(a, a^T, alpha) over the [3, 3] top-left square of the base,
 * alpha a lifted FLOAT. */
static tpj_status_t run_add_alpha(tpj_eager_storage_t* s, double alpha, float* out9) {
  int64_t sz[2] = {3, 3}, st[2] = {4, 1}, tst[2] = {1, 4};
  tpj_eager_tensor_t in[2] = {view(s, TPJ_DTYPE_F32, 2, sz, st, 0),
                              view(s, TPJ_DTYPE_F32, 2, sz, tst, 0)};
  tpj_arg_t args[3] = {arg_tensor(0), arg_tensor(1), arg_float(alpha)};
  bool lift[3] = {false, false, true};
  tpj_type_t ot = f32_type(2, sz);
  tpj_eager_op_t op = {"aten::add.Tensor", args, 3, in, 2, NULL, 0, &ot, 1, 0, lift};
  tpj_buffer_t* res = NULL;
  TPJ_RETURN_IF_ERROR(tpj_eager_op_run(&op, &res));
  tpj_status_t st2 = tpj_buffer_to_host(res, out9, 9 * sizeof(float));
  tpj_buffer_destroy(res);
  return st2;
}

TPJ_TEST(op_run_lifts_scalars_into_one_program) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(iota_3x4(&s));
  float out[9];
  TPJ_EXPECT_OK(run_add_alpha(s, 2.0, out));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) TPJ_EXPECT(out[i * 3 + j] == (float)(4 * i + j + 2 * (4 * j + i)));
  tpj_eager_stats_t a, b;
  tpj_eager_stats_get(&a);
  TPJ_EXPECT_OK(run_add_alpha(s, -0.5, out));
  tpj_eager_stats_get(&b);
  TPJ_EXPECT(b.programs == a.programs && b.signature_hits == a.signature_hits + 1);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      TPJ_EXPECT(out[i * 3 + j] == (float)(4 * i + j) - 0.5f * (float)(4 * j + i));
  tpj_eager_storage_destroy(s);
}

/* mul.Tensor(view, host scalar): the host value is a runtime input too. */
TPJ_TEST(host_scalar_is_a_runtime_input) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(iota_3x4(&s));
  int64_t sz[1] = {12}, st[1] = {1};
  tpj_eager_tensor_t in[2];
  in[0] = view(s, TPJ_DTYPE_F32, 1, sz, st, 0);
  memset(&in[1], 0, sizeof(in[1]));
  in[1].dtype = TPJ_DTYPE_F64;
  tpj_arg_t args[2] = {arg_tensor(0), arg_tensor(1)};
  tpj_type_t ot = f32_type(1, sz);
  tpj_eager_stats_t a, b;
  for (int k = 0; k < 3; ++k) {
    double factor = 0.5 + k;
    in[1].host_scalar = &factor;
    tpj_eager_op_t op = {"aten::mul.Tensor", args, 2, in, 2, NULL, 0, &ot, 1, 0, NULL};
    tpj_buffer_t* res = NULL;
    if (k == 1) tpj_eager_stats_get(&a);
    TPJ_EXPECT_OK(tpj_eager_op_run(&op, &res));
    float got[12];
    tpj_status_t rs = tpj_buffer_to_host(res, got, sizeof(got));
    tpj_buffer_destroy(res);
    TPJ_EXPECT_OK(rs);
    for (int i = 0; i < 12; ++i) TPJ_EXPECT(got[i] == (float)(i * factor));
  }
  tpj_eager_stats_get(&b);
  TPJ_EXPECT(b.programs == a.programs);
  tpj_eager_storage_destroy(s);
}

/* softplus reads beta/threshold at build time: lifting fails once, the op
 * still runs with constants, and a new value builds a new program. */
TPJ_TEST(unliftable_scalars_stay_constants) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(iota_3x4(&s));
  int64_t sz[1] = {4}, st[1] = {1};
  tpj_eager_tensor_t in = view(s, TPJ_DTYPE_F32, 1, sz, st, 0);
  tpj_arg_t args[3] = {arg_tensor(0), arg_float(2.0), arg_float(5.0)};
  bool lift[3] = {false, true, true};
  tpj_type_t ot = f32_type(1, sz);
  tpj_eager_op_t op = {"aten::softplus.default", args, 3, &in, 1, NULL, 0, &ot, 1, 0, lift};
  tpj_buffer_t* res = NULL;
  TPJ_EXPECT_OK(tpj_eager_op_run(&op, &res));
  float got[4];
  tpj_status_t rs = tpj_buffer_to_host(res, got, sizeof(got));
  tpj_buffer_destroy(res);
  TPJ_EXPECT_OK(rs);
  for (int i = 0; i < 4; ++i) {
    double x = i, want = 2.0 * x > 5.0 ? x : log1p(exp(2.0 * x)) / 2.0;
    TPJ_EXPECT(fabs(got[i] - want) < 1e-5);
  }
  tpj_eager_storage_destroy(s);
}

/* An in-place op into column 1 of a [3, 4] base is visible in the base. */
TPJ_TEST(write_through_view_is_visible_in_base) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(iota_3x4(&s));
  int64_t csz[1] = {3}, cst[1] = {4};
  tpj_eager_tensor_t col = view(s, TPJ_DTYPE_F32, 1, csz, cst, 1);
  tpj_arg_t args[3] = {arg_tensor(0), arg_float(10.0), arg_float(1.0)};
  bool lift[3] = {false, true, true};
  tpj_type_t ot = f32_type(1, csz);
  tpj_eager_op_t op = {"aten::add.Scalar", args, 3, &col, 1, NULL, 0, &ot, 1, 0, lift};
  TPJ_EXPECT_OK(tpj_eager_op_run_into(&op, &col));
  /* copy_ of row 0 into row 2 */
  int64_t rsz[1] = {4}, rst[1] = {1};
  tpj_eager_tensor_t r0 = view(s, TPJ_DTYPE_F32, 1, rsz, rst, 0);
  tpj_eager_tensor_t r2 = view(s, TPJ_DTYPE_F32, 1, rsz, rst, 8);
  TPJ_EXPECT_OK(tpj_eager_copy(&r0, &r2));
  int64_t bsz[2] = {3, 4}, bst[2] = {4, 1};
  tpj_eager_tensor_t base = view(s, TPJ_DTYPE_F32, 2, bsz, bst, 0);
  float got[12];
  TPJ_EXPECT_OK(tpj_eager_read_host(&base, got, sizeof(got)));
  const float want[12] = {0, 11, 2, 3, 4, 15, 6, 7, 0, 11, 2, 3};
  for (int i = 0; i < 12; ++i) TPJ_EXPECT(got[i] == want[i]);
  tpj_eager_storage_destroy(s);
}

/* Reading a f32 storage as int32 (same size: bitcast) and as bytes (retyped
 * through the host), then a converting copy into a new storage. */
TPJ_TEST(reinterpret_and_convert) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(iota_3x4(&s));
  int64_t sz[1] = {3}, st[1] = {1};
  tpj_eager_tensor_t as_int = view(s, TPJ_DTYPE_S32, 1, sz, st, 1);
  int32_t bits[3];
  TPJ_EXPECT_OK(tpj_eager_read_host(&as_int, bits, sizeof(bits)));
  for (int i = 0; i < 3; ++i) {
    float f = (float)(i + 1);
    int32_t want;
    memcpy(&want, &f, sizeof(want));
    TPJ_EXPECT(bits[i] == want);
  }
  int64_t nb[1] = {8};
  tpj_eager_tensor_t as_bytes = view(s, TPJ_DTYPE_U8, 1, nb, st, 4);
  uint8_t bytes[8];
  TPJ_EXPECT_OK(tpj_eager_read_host(&as_bytes, bytes, sizeof(bytes)));
  float two[2] = {1.0f, 2.0f};
  TPJ_EXPECT(memcmp(bytes, two, sizeof(two)) == 0);
  tpj_eager_storage_t* d = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(3 * sizeof(int64_t), 0, &d));
  int64_t sz3[1] = {3}, st3[1] = {4};
  tpj_eager_tensor_t src = view(s, TPJ_DTYPE_F32, 1, sz3, st3, 2); /* 2 6 10 */
  tpj_eager_tensor_t dst = view(d, TPJ_DTYPE_S64, 1, sz3, st, 0);
  TPJ_EXPECT_OK(tpj_eager_copy(&src, &dst));
  TPJ_EXPECT_OK(tpj_eager_synchronize());
  int64_t got[3];
  TPJ_EXPECT_OK(tpj_eager_read_host(&dst, got, sizeof(got)));
  TPJ_EXPECT(got[0] == 2 && got[1] == 6 && got[2] == 10);
  tpj_eager_storage_destroy(d);
  tpj_eager_storage_destroy(s);
}

/* normal_ into a strided view: moments near (mean, std), the rest untouched,
 * the same seed gives the same numbers. */
TPJ_TEST(normal_into_view) {
  TPJ_EXPECT_OK(ensure_init());
  enum { N = 4000 };
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(2 * N * sizeof(float), 0, &s));
  int64_t sz[1] = {N}, st[1] = {2};
  tpj_eager_tensor_t even = view(s, TPJ_DTYPE_F32, 1, sz, st, 0);
  const uint64_t seed[2] = {7, 11};
  TPJ_EXPECT_OK(tpj_eager_normal_into(&even, 3.0, 0.5, seed));
  float* a = calloc(2 * N, sizeof(float));
  float* b = calloc(N, sizeof(float));
  int64_t all[1] = {2 * N}, one[1] = {1};
  tpj_eager_tensor_t whole = view(s, TPJ_DTYPE_F32, 1, all, one, 0);
  tpj_status_t rs = a && b ? tpj_eager_read_host(&whole, a, 2 * N * sizeof(float)) : NULL;
  double sum = 0, sq = 0;
  for (int i = 0; a && i < N; ++i) {
    sum += a[2 * i];
    sq += (double)a[2 * i] * a[2 * i];
    TPJ_EXPECT(a[2 * i + 1] == 0.0f);
  }
  double mean = sum / N, sd = sqrt(sq / N - mean * mean);
  TPJ_EXPECT(fabs(mean - 3.0) < 0.05 && fabs(sd - 0.5) < 0.05);
  TPJ_EXPECT_OK(tpj_eager_normal_into(&even, 3.0, 0.5, seed));
  if (!rs && b) rs = tpj_eager_read_host(&even, b, N * sizeof(float));
  for (int i = 0; a && b && i < N; ++i) TPJ_EXPECT(b[i] == a[2 * i]);
  free(a);
  free(b);
  tpj_eager_storage_destroy(s);
  TPJ_EXPECT_OK(rs);
}

/* max.dim (values, indices) written into two views of other storages. */
TPJ_TEST(run_writes_two_outputs) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t *s = NULL, *vals = NULL, *idx = NULL;
  TPJ_EXPECT_OK(iota_3x4(&s));
  TPJ_EXPECT_OK(tpj_eager_storage_create(4 * sizeof(float), 0, &vals));
  TPJ_EXPECT_OK(tpj_eager_storage_create(4 * sizeof(int64_t), 0, &idx));
  int64_t sz[2] = {3, 4}, st[2] = {4, 1}, four[1] = {4}, one[1] = {1};
  tpj_eager_tensor_t in = view(s, TPJ_DTYPE_F32, 2, sz, st, 0);
  tpj_arg_t args[3] = {arg_tensor(0), arg_tensor(0), arg_tensor(0)};
  args[1].kind = TPJ_ARG_KIND_INT;
  args[1].i = 0;
  args[2].kind = TPJ_ARG_KIND_BOOL;
  args[2].i = 0;
  tpj_type_t ot[2] = {f32_type(1, four), f32_type(1, four)};
  ot[1].dtype = TPJ_DTYPE_S64;
  tpj_eager_tensor_t dsts[2] = {view(vals, TPJ_DTYPE_F32, 1, four, one, 0),
                                view(idx, TPJ_DTYPE_S64, 1, four, one, 0)};
  tpj_eager_op_t op = {"aten::max.dim", args, 3, &in, 1, NULL, 0, ot, 2, 0, NULL};
  TPJ_EXPECT_OK(tpj_eager_op_run_writes(&op, dsts, 2));
  float v[4];
  int64_t ix[4];
  TPJ_EXPECT_OK(tpj_eager_read_host(&dsts[0], v, sizeof(v)));
  TPJ_EXPECT_OK(tpj_eager_read_host(&dsts[1], ix, sizeof(ix)));
  for (int j = 0; j < 4; ++j) TPJ_EXPECT(v[j] == (float)(8 + j) && ix[j] == 2);
  tpj_eager_storage_destroy(s);
  tpj_eager_storage_destroy(vals);
  tpj_eager_storage_destroy(idx);
}

/* A new client drops the programs and scalar buffers of the old one; a
 * client change with live storages is refused. */
/* An op whose tensors live on device 1 runs there: results on device 1, no
 * buffer moved; only a genuine cross-device copy moves one. */
TPJ_TEST(ops_run_on_the_device_of_their_tensors) {
  TPJ_EXPECT_OK(ensure_init());
  TPJ_EXPECT(tpj_eager_device_count() == 2);
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(4 * sizeof(float), 1, &s));
  int64_t sz[1] = {4}, st[1] = {1};
  tpj_eager_tensor_t v = view(s, TPJ_DTYPE_F32, 1, sz, st, 0);
  const float data[4] = {1, -2, 3, 0.5f};
  TPJ_EXPECT_OK(tpj_eager_write_host(data, sizeof(data), &v));
  tpj_eager_tensor_t in[2] = {v, v};
  double factor = 3.0;
  memset(&in[1], 0, sizeof(in[1]));
  in[1].dtype = TPJ_DTYPE_F64;
  in[1].host_scalar = &factor;
  tpj_arg_t args[2] = {arg_tensor(0), arg_tensor(1)};
  tpj_type_t ot = f32_type(1, sz);
  tpj_eager_op_t op = {"aten::mul.Tensor", args, 2, in, 2, NULL, 0, &ot, 1, 1, NULL};
  tpj_eager_stats_t a, b;
  tpj_eager_stats_get(&a);
  tpj_buffer_t* res = NULL;
  TPJ_EXPECT_OK(tpj_eager_op_run(&op, &res));
  TPJ_EXPECT_OK(tpj_eager_op_run_into(&op, &v)); /* v *= 3 in place */
  tpj_eager_stats_get(&b);
  TPJ_EXPECT(b.cross_device_copies == a.cross_device_copies);
  TPJ_EXPECT(res && tpj_buffer_device_index(res) == 1);
  tpj_buffer_t* flat = NULL;
  TPJ_EXPECT_OK(tpj_eager_materialize(&v, &flat));
  TPJ_EXPECT(flat && tpj_buffer_device_index(flat) == 1);
  tpj_buffer_destroy(flat);
  float got[4];
  if (res) TPJ_EXPECT_OK(tpj_buffer_to_host(res, got, sizeof(got)));
  for (int i = 0; i < 4; ++i) TPJ_EXPECT(got[i] == data[i] * 3.0f);
  TPJ_EXPECT_OK(tpj_eager_read_host(&v, got, sizeof(got)));
  for (int i = 0; i < 4; ++i) TPJ_EXPECT(got[i] == data[i] * 3.0f);
  tpj_eager_storage_t* d0 = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(4 * sizeof(float), 0, &d0));
  tpj_eager_tensor_t w = view(d0, TPJ_DTYPE_F32, 1, sz, st, 0);
  TPJ_EXPECT_OK(tpj_eager_copy(&v, &w)); /* pjrt:1 -> pjrt:0 moves one buffer */
  tpj_eager_stats_get(&a);
  TPJ_EXPECT(a.cross_device_copies == b.cross_device_copies + 1);
  TPJ_EXPECT_OK(tpj_eager_read_host(&w, got, sizeof(got)));
  for (int i = 0; i < 4; ++i) TPJ_EXPECT(got[i] == data[i] * 3.0f);
  tpj_buffer_destroy(res);
  tpj_eager_storage_destroy(d0);
  tpj_eager_storage_destroy(s);
}

TPJ_TEST(client_change) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(iota_3x4(&s));
  float out[9];
  TPJ_EXPECT_OK(run_add_alpha(s, 2.0, out));
  tpj_client_t* other = NULL;
  TPJ_EXPECT_OK(tpj_test_cpu_client(2, &other));
  TPJ_EXPECT_ERROR(tpj_eager_init(other), FAILED_PRECONDITION, "different client");
  tpj_eager_storage_destroy(s);
  tpj_eager_stats_t a, b;
  tpj_status_t st = tpj_eager_init(other);
  if (!st) st = iota_3x4(&s);
  tpj_eager_stats_get(&a);
  if (!st) st = run_add_alpha(s, 2.0, out);
  tpj_eager_stats_get(&b);
  tpj_eager_storage_destroy(s);
  TPJ_EXPECT(b.programs == a.programs + 1); /* rebuilt for the new client */
  TPJ_EXPECT(out[4] == 15.0f);               /* 5 + 2 * 5 */
  TPJ_EXPECT_OK(tpj_eager_init(g_client));
  tpj_runtime_cache_evict_client(other);
  tpj_client_destroy(other);
  TPJ_EXPECT_OK(st);
}

TPJ_TEST(error_paths) {
  TPJ_EXPECT_OK(ensure_init());
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(iota_3x4(&s));
  int64_t sz[1] = {12}, st[1] = {1};
  tpj_eager_tensor_t v = view(s, TPJ_DTYPE_F32, 1, sz, st, 0);
  float small[3];
  TPJ_EXPECT_ERROR(tpj_eager_read_host(&v, small, sizeof(small)), INVALID_ARGUMENT,
                   "wrong host size");
  TPJ_EXPECT_ERROR(tpj_eager_write_host(small, sizeof(small), &v), INVALID_ARGUMENT,
                   "wrong host size");
  /* a host scalar of no dtype */
  tpj_eager_tensor_t in[2] = {v, v};
  double one = 1.0;
  memset(&in[1], 0, sizeof(in[1]));
  in[1].host_scalar = &one;
  in[1].dtype = TPJ_DTYPE_INVALID;
  tpj_arg_t args[2] = {arg_tensor(0), arg_tensor(1)};
  tpj_type_t ot = f32_type(1, sz);
  tpj_eager_op_t op = {"aten::mul.Tensor", args, 2, in, 2, NULL, 0, &ot, 1, 0, NULL};
  tpj_buffer_t* res = NULL;
  TPJ_EXPECT_ERROR(tpj_eager_op_run(&op, &res), INVALID_ARGUMENT, "host scalar input 1");
  TPJ_EXPECT(res == NULL);
  /* an op with no lowering; its lifted scalar does not hide the error */
  tpj_arg_t bad[2] = {arg_tensor(0), arg_float(3.0)};
  bool lift[2] = {false, true};
  tpj_eager_op_t nop = {"aten::no_such_op.default", bad, 2, &v, 1, NULL, 0, &ot, 1, 0, lift};
  TPJ_EXPECT_ERROR(tpj_eager_op_run(&nop, &res), NOT_FOUND, "aten::no_such_op.default");
  TPJ_EXPECT(res == NULL);
  /* an argument referring to a missing input */
  tpj_arg_t dangling[2] = {arg_tensor(0), arg_tensor(5)};
  tpj_eager_op_t dop = {"aten::mul.Tensor", dangling, 2, &v, 1, NULL, 0, &ot, 1, 0, NULL};
  TPJ_EXPECT_ERROR(tpj_eager_op_run(&dop, &res), INVALID_ARGUMENT, "refers to input");
  /* copies of different element counts */
  int64_t four[1] = {4};
  tpj_eager_tensor_t v4 = view(s, TPJ_DTYPE_F32, 1, four, st, 0);
  TPJ_EXPECT_ERROR(tpj_eager_copy(&v, &v4), INVALID_ARGUMENT, "element counts differ");
  TPJ_EXPECT_ERROR(tpj_eager_op_run(NULL, &res), INVALID_ARGUMENT, "NULL");
  tpj_eager_storage_destroy(s);
}

int main(void) {
  int rc = tpj_test_run_all("eager");
  tpj_eager_cache_clear();
  if (g_client) {
    tpj_runtime_cache_evict_client(g_client);
    tpj_client_destroy(g_client);
  }
  return rc;
}
