/* test_eager_event.c: events of the eager device (eager_event.c). On the real
 * CPU plugin a chain of 1024x1024 matmuls is in flight right after launch, so
 * an event recorded then is not done until the chain is, and its completion
 * time is later than an event recorded on the idle device, also once the
 * chain's results are released. On the fake plugin
 * a failing pending buffer's error becomes the event's error. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/eager.h"
#include "tpj/pjrt.h"
#include "tpj_test.h"

#define N 1024
#define CHAIN 24

static tpj_client_t* g_cpu;

static tpj_status_t cpu_init(void) {
  if (!g_cpu) TPJ_RETURN_IF_ERROR(tpj_test_cpu_client(1, &g_cpu));
  return tpj_eager_init(g_cpu);
}

static tpj_eager_tensor_t square(tpj_eager_storage_t* s) {
  tpj_eager_tensor_t v;
  memset(&v, 0, sizeof(v));
  v.storage = s;
  v.dtype = TPJ_DTYPE_F32;
  v.rank = 2;
  v.sizes[0] = v.sizes[1] = N;
  v.strides[0] = N;
  v.strides[1] = 1;
  return v;
}

/* An N x N f32 storage filled with `value`, computed. */
static tpj_status_t filled(float value, tpj_eager_storage_t** out) {
  float* host = (float*)malloc(sizeof(float) * N * N);
  if (!host) return TPJ_STATUS(RESOURCE_EXHAUSTED, "test: out of memory");
  for (size_t i = 0; i < (size_t)N * N; ++i) host[i] = value;
  tpj_status_t st = tpj_eager_storage_create(sizeof(float) * N * N, 0, out);
  tpj_eager_tensor_t v = square(*out);
  if (!st) st = tpj_eager_write_host(host, sizeof(float) * N * N, &v);
  free(host);
  if (!st) st = tpj_eager_synchronize();
  return st;
}

/* *y = *y @ w, CHAIN times, launched without waiting (the old *y is released). */
static tpj_status_t launch_chain(tpj_eager_storage_t** y, tpj_eager_storage_t* w) {
  tpj_arg_t args[2];
  memset(args, 0, sizeof(args));
  for (int i = 0; i < 2; ++i) {
    args[i].kind = TPJ_ARG_KIND_TENSOR;
    args[i].tensor = (tpj_value_t)i;
  }
  tpj_type_t ot;
  memset(&ot, 0, sizeof(ot));
  ot.dtype = TPJ_DTYPE_F32;
  ot.rank = 2;
  ot.dims[0] = ot.dims[1] = N;
  for (int k = 0; k < CHAIN; ++k) {
    tpj_eager_tensor_t in[2] = {square(*y), square(w)};
    tpj_eager_op_t op = {"aten::mm.default", args, 2, in, 2, NULL, 0, &ot, 1, 0, NULL};
    tpj_buffer_t* out = NULL;
    TPJ_RETURN_IF_ERROR(tpj_eager_op_run(&op, &out));
    tpj_eager_storage_t* next = NULL;
    TPJ_RETURN_IF_ERROR(tpj_eager_storage_wrap(out, &next));
    tpj_eager_storage_destroy(*y);
    *y = next;
  }
  return NULL;
}

TPJ_TEST(event_is_pending_while_a_matmul_chain_runs_then_done_and_timed) {
  TPJ_EXPECT_OK(cpu_init());
  tpj_eager_storage_t *y = NULL, *w = NULL;
  TPJ_EXPECT_OK(filled(0.001f, &y));
  TPJ_EXPECT_OK(filled(0.001f, &w));
  tpj_eager_event_t *start = NULL, *end = NULL, *untimed = NULL;
  TPJ_EXPECT_OK(tpj_eager_event_create(true, &start));
  TPJ_EXPECT_OK(tpj_eager_event_create(true, &end));
  TPJ_EXPECT_OK(tpj_eager_event_create(false, &untimed));
  bool done = false, idle = false;
  TPJ_EXPECT_OK(tpj_eager_event_query(end, &done));
  TPJ_EXPECT(done); /* never recorded */
  TPJ_EXPECT_OK(tpj_eager_event_record(start, 0));
  TPJ_EXPECT_OK(tpj_eager_event_query(start, &done));
  TPJ_EXPECT(done); /* nothing was in flight: complete at record time */
  TPJ_EXPECT_OK(launch_chain(&y, w));
  TPJ_EXPECT_OK(tpj_eager_event_record(end, 0));
  TPJ_EXPECT_OK(tpj_eager_event_record(untimed, 0));
  TPJ_EXPECT_OK(tpj_eager_event_query(end, &done));
  TPJ_EXPECT(!done);
  TPJ_EXPECT_OK(tpj_eager_device_query(0, &idle));
  TPJ_EXPECT(!idle);
  double ms = -1;
  TPJ_EXPECT_ERROR(tpj_eager_event_elapsed_ms(start, end, &ms), FAILED_PRECONDITION,
                   "not complete yet");
  TPJ_EXPECT_OK(tpj_eager_event_synchronize(end));
  TPJ_EXPECT_OK(tpj_eager_event_query(end, &done));
  TPJ_EXPECT(done);
  TPJ_EXPECT_OK(tpj_eager_event_elapsed_ms(start, end, &ms));
  TPJ_EXPECT(ms > 0);
  TPJ_EXPECT_ERROR(tpj_eager_event_elapsed_ms(start, untimed, &ms), INVALID_ARGUMENT,
                   "the end event was created without timing");
  TPJ_EXPECT_OK(tpj_eager_synchronize());
  TPJ_EXPECT_OK(tpj_eager_device_query(0, &idle));
  TPJ_EXPECT(idle);
  tpj_eager_event_destroy(start);
  tpj_eager_event_destroy(end);
  tpj_eager_event_destroy(untimed);
  tpj_eager_storage_destroy(y);
  tpj_eager_storage_destroy(w);
}

TPJ_TEST(event_destroyed_or_rerecorded_while_work_is_in_flight) {
  TPJ_EXPECT_OK(cpu_init());
  tpj_eager_storage_t *y = NULL, *w = NULL;
  TPJ_EXPECT_OK(filled(0.001f, &y));
  TPJ_EXPECT_OK(filled(0.001f, &w));
  tpj_eager_event_t *a = NULL, *b = NULL;
  TPJ_EXPECT_OK(tpj_eager_event_create(false, &a));
  TPJ_EXPECT_OK(tpj_eager_event_create(true, &b));
  TPJ_EXPECT_OK(launch_chain(&y, w));
  TPJ_EXPECT_OK(tpj_eager_event_record(a, 0));
  TPJ_EXPECT_OK(tpj_eager_event_record(b, 0));
  tpj_eager_event_destroy(a); /* its callbacks still hold the record */
  TPJ_EXPECT_OK(tpj_eager_event_record(b, 0)); /* replaces a pending record */
  TPJ_EXPECT_OK(tpj_eager_event_synchronize(b));
  TPJ_EXPECT(tpj_eager_event_is_recorded(b));
  TPJ_EXPECT_OK(tpj_eager_synchronize());
  tpj_eager_event_destroy(b);
  tpj_eager_event_destroy(NULL);
  tpj_eager_storage_destroy(y);
  tpj_eager_storage_destroy(w);
}

TPJ_TEST(programs_whose_results_were_released_are_still_captured) {
  TPJ_EXPECT_OK(cpu_init());
  tpj_eager_storage_t *y = NULL, *w = NULL;
  TPJ_EXPECT_OK(filled(0.001f, &y));
  TPJ_EXPECT_OK(filled(0.001f, &w));
  TPJ_EXPECT_OK(launch_chain(&y, w));
  tpj_eager_storage_destroy(y); /* nothing live holds the chain's work */
  tpj_eager_event_t* e = NULL;
  TPJ_EXPECT_OK(tpj_eager_event_create(false, &e));
  TPJ_EXPECT_OK(tpj_eager_event_record(e, 0));
  bool done = true, idle = true;
  TPJ_EXPECT_OK(tpj_eager_event_query(e, &done));
  TPJ_EXPECT(!done);
  TPJ_EXPECT_OK(tpj_eager_device_query(0, &idle));
  TPJ_EXPECT(!idle);
  TPJ_EXPECT_OK(tpj_eager_synchronize()); /* waits for the released programs too */
  TPJ_EXPECT_OK(tpj_eager_event_query(e, &done));
  TPJ_EXPECT(done);
  TPJ_EXPECT_OK(tpj_eager_device_query(0, &idle));
  TPJ_EXPECT(idle);
  tpj_eager_event_destroy(e);
  tpj_eager_storage_destroy(w);
}

TPJ_TEST(event_argument_errors) {
  TPJ_EXPECT_OK(cpu_init());
  tpj_eager_event_t *t = NULL, *u = NULL;
  TPJ_EXPECT_OK(tpj_eager_event_create(true, &t));
  TPJ_EXPECT_OK(tpj_eager_event_create(true, &u));
  TPJ_EXPECT(!tpj_eager_event_is_recorded(t) && !tpj_eager_event_is_recorded(NULL));
  double ms = -1;
  TPJ_EXPECT_ERROR(tpj_eager_event_elapsed_ms(t, u, &ms), FAILED_PRECONDITION,
                   "the start event was never recorded");
  TPJ_EXPECT_ERROR(tpj_eager_event_record(t, 5), INVALID_ARGUMENT,
                   "device index out of range (got 5, expected < 1)");
  bool idle = false;
  TPJ_EXPECT_ERROR(tpj_eager_device_query(3, &idle), INVALID_ARGUMENT, "got 3, expected < 1");
  TPJ_EXPECT_ERROR(tpj_eager_event_create(true, NULL), INVALID_ARGUMENT, "out_event is NULL");
  TPJ_EXPECT_OK(tpj_eager_event_record(t, 0));
  TPJ_EXPECT_OK(tpj_eager_event_record(u, 0));
  TPJ_EXPECT_OK(tpj_eager_event_synchronize(u));
  TPJ_EXPECT_OK(tpj_eager_event_elapsed_ms(t, u, &ms));
  TPJ_EXPECT(ms >= 0);
  tpj_eager_event_destroy(t);
  tpj_eager_event_destroy(u);
}

/* The fake plugin in mode event_pending_error: buffers' ready events are
 * pending and fail with DATA_LOSS. */
TPJ_TEST(error_of_captured_work_is_the_events_error) {
  tpj_plugin_t* p = NULL;
  TPJ_EXPECT_OK(tpj_plugin_load(getenv("TPJ_FAKE_PLUGIN"), &p));
  tpj_client_t* c = NULL;
  TPJ_EXPECT_OK(tpj_client_create(p, NULL, 0, &c));
  TPJ_EXPECT_OK(tpj_eager_init(c));
  float x[4] = {1, 2, 3, 4};
  int64_t dims[1] = {4};
  tpj_buffer_t* b = NULL;
  TPJ_EXPECT_OK(tpj_buffer_from_host(c, x, TPJ_DTYPE_F32, dims, 1, 0, TPJ_HOST_SEMANTICS_COPY,
                                     &b));
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_wrap(b, &s));
  tpj_eager_event_t* e = NULL;
  TPJ_EXPECT_OK(tpj_eager_event_create(false, &e));
  TPJ_EXPECT_OK(tpj_eager_event_record(e, 0));
  bool done = false;
  TPJ_EXPECT_OK(tpj_eager_event_query(e, &done)); /* normal mode: nothing pending */
  TPJ_EXPECT(done);
  setenv("TPJ_FAKE_MODE", "event_pending_error", 1);
  bool idle = true;
  TPJ_EXPECT_OK(tpj_eager_device_query(0, &idle));
  TPJ_EXPECT(!idle);
  TPJ_EXPECT_OK(tpj_eager_event_record(e, 0));
  unsetenv("TPJ_FAKE_MODE");
  TPJ_EXPECT_ERROR(tpj_eager_event_query(e, &done), DATA_LOSS,
                   "work captured by a pjrt event failed");
  TPJ_EXPECT(done);
  TPJ_EXPECT_ERROR(tpj_eager_event_synchronize(e), DATA_LOSS, "device lost");
  TPJ_EXPECT_OK(tpj_eager_event_record(e, 0)); /* a new record forgets the error */
  TPJ_EXPECT_OK(tpj_eager_event_synchronize(e));
  tpj_eager_event_destroy(e);
  tpj_eager_storage_destroy(s);
  tpj_client_destroy(c);
}

TPJ_TEST_MAIN("eager_event")
