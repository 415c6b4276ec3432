/* test_trace.c: the Chrome trace recorder (tpj/runtime.h, "trace"). Spans
 * from several threads at once, JSON escaping, start/stop errors and the
 * observer, then one eager op on the real CPU plugin (a host write, a compile,
 * a launch with its device completion, a host read). Every file is read back
 * with a small strict JSON parser and every thread's spans must nest. */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tpj/eager.h"
#include "tpj/pjrt.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

/* ----------------------------------------------- a small strict JSON reader -- */

#define MAX_EVENTS 32768

typedef struct event_s {
  char name[128];
  char cat[32];
  char ph[4];
  double ts, dur;
  double tid;
  double bytes;       /* args.bytes, -1 if absent */
  char cache[16];     /* args.cache */
  char direction[8];  /* args.direction */
  char op[64];        /* args.op */
} event_t;

typedef struct reader_s {
  const char* p;
  const char* end;
  bool bad;
  event_t* events;
  size_t num_events;
} reader_t;

static void skip_ws(reader_t* r) {
  while (r->p < r->end && (*r->p == ' ' || *r->p == '\n' || *r->p == '\t' || *r->p == '\r')) {
    ++r->p;
  }
}

static bool eat(reader_t* r, char c) {
  skip_ws(r);
  if (r->p < r->end && *r->p == c) {
    ++r->p;
    return true;
  }
  return false;
}

/* Reads a string into out (truncated to n - 1 bytes; escapes decoded for ASCII). */
static bool read_string(reader_t* r, char* out, size_t n) {
  skip_ws(r);
  if (r->p >= r->end || *r->p != '"') return false;
  ++r->p;
  size_t k = 0;
  while (r->p < r->end && *r->p != '"') {
    char c = *r->p++;
    if ((unsigned char)c < 0x20) return false;
    if (c == '\\') {
      if (r->p >= r->end) return false;
      char e = *r->p++;
      if (e == 'u') {
        if (r->end - r->p < 4) return false;
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
          char h = *r->p++;
          v = v * 16 + (unsigned)(h >= 'a' ? h - 'a' + 10 : h >= 'A' ? h - 'A' + 10 : h - '0');
        }
        c = (char)v;
      } else if (e == 'n') {
        c = '\n';
      } else if (e == '"' || e == '\\' || e == '/') {
        c = e;
      } else {
        return false;
      }
    }
    if (out && k + 1 < n) out[k++] = c;
  }
  if (out) out[k] = '\0';
  return r->p < r->end && *r->p++ == '"';
}

static bool read_number(reader_t* r, double* out) {
  skip_ws(r);
  char* stop = NULL;
  double v = strtod(r->p, &stop);
  if (stop == r->p) return false;
  r->p = stop;
  if (out) *out = v;
  return true;
}

static bool skip_value(reader_t* r);

static bool skip_container(reader_t* r, char open, char close) {
  if (!eat(r, open)) return false;
  if (eat(r, close)) return true;
  do {
    if (open == '{' && (!read_string(r, NULL, 0) || !eat(r, ':'))) return false;
    if (!skip_value(r)) return false;
  } while (eat(r, ','));
  return eat(r, close);
}

static bool skip_value(reader_t* r) {
  skip_ws(r);
  if (r->p >= r->end) return false;
  char c = *r->p;
  if (c == '{') return skip_container(r, '{', '}');
  if (c == '[') return skip_container(r, '[', ']');
  if (c == '"') return read_string(r, NULL, 0);
  if (!strncmp(r->p, "null", 4) || !strncmp(r->p, "true", 4)) {
    r->p += 4;
    return true;
  }
  if (!strncmp(r->p, "false", 5)) {
    r->p += 5;
    return true;
  }
  return read_number(r, NULL);
}

static bool read_args(reader_t* r, event_t* e) {
  if (!eat(r, '{')) return false;
  if (eat(r, '}')) return true;
  do {
    char key[32];
    if (!read_string(r, key, sizeof(key)) || !eat(r, ':')) return false;
    skip_ws(r);
    bool ok;
    if (!strcmp(key, "bytes")) ok = read_number(r, &e->bytes);
    else if (!strcmp(key, "cache")) ok = read_string(r, e->cache, sizeof(e->cache));
    else if (!strcmp(key, "direction")) ok = read_string(r, e->direction, sizeof(e->direction));
    else if (!strcmp(key, "op") && *r->p == '"') ok = read_string(r, e->op, sizeof(e->op));
    else ok = skip_value(r);
    if (!ok) return false;
  } while (eat(r, ','));
  return eat(r, '}');
}

static bool read_event(reader_t* r) {
  if (r->num_events >= MAX_EVENTS) return false;
  event_t* e = &r->events[r->num_events++];
  memset(e, 0, sizeof(*e));
  e->bytes = -1;
  if (!eat(r, '{')) return false;
  if (eat(r, '}')) return true;
  do {
    char key[16];
    if (!read_string(r, key, sizeof(key)) || !eat(r, ':')) return false;
    bool ok;
    if (!strcmp(key, "name")) ok = read_string(r, e->name, sizeof(e->name));
    else if (!strcmp(key, "cat")) ok = read_string(r, e->cat, sizeof(e->cat));
    else if (!strcmp(key, "ph")) ok = read_string(r, e->ph, sizeof(e->ph));
    else if (!strcmp(key, "ts")) ok = read_number(r, &e->ts);
    else if (!strcmp(key, "dur")) ok = read_number(r, &e->dur);
    else if (!strcmp(key, "tid")) ok = read_number(r, &e->tid);
    else if (!strcmp(key, "args")) ok = read_args(r, e);
    else ok = skip_value(r);
    if (!ok) return false;
  } while (eat(r, ','));
  return eat(r, '}');
}

/* Parses a whole trace file; false when it is not valid JSON of that shape. */
static bool read_trace(const char* path, reader_t* r) {
  memset(r, 0, sizeof(*r));
  FILE* f = fopen(path, "rb");
  if (!f) return false;
  static char text[8 << 20];
  size_t n = fread(text, 1, sizeof(text) - 1, f);
  fclose(f);
  text[n] = '\0';
  r->p = text;
  r->end = text + n;
  r->events = calloc(MAX_EVENTS, sizeof(event_t));
  if (!r->events) return false;
  char key[16];
  if (!eat(r, '{') || !read_string(r, key, sizeof(key)) || strcmp(key, "traceEvents") ||
      !eat(r, ':') || !eat(r, '[')) {
    return false;
  }
  if (!eat(r, ']')) {
    do {
      if (!read_event(r)) return false;
    } while (eat(r, ','));
    if (!eat(r, ']')) return false;
  }
  while (eat(r, ',')) {
    if (!read_string(r, key, sizeof(key)) || !eat(r, ':') || !skip_value(r)) return false;
  }
  if (!eat(r, '}')) return false;
  skip_ws(r);
  return r->p == r->end;
}

static int by_tid_ts(const void* a, const void* b) {
  const event_t* x = *(const event_t* const*)a;
  const event_t* y = *(const event_t* const*)b;
  if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
  if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
  return x->dur > y->dur ? -1 : x->dur < y->dur; /* the parent first */
}

/* true when the "X" spans of every track nest (or follow one another). */
static bool spans_nest(const reader_t* r) {
  const event_t** xs = calloc(r->num_events + 1, sizeof(*xs));
  size_t n = 0;
  for (size_t i = 0; i < r->num_events; ++i) {
    if (!strcmp(r->events[i].ph, "X")) xs[n++] = &r->events[i];
  }
  qsort(xs, n, sizeof(*xs), by_tid_ts);
  const event_t* stack[64];
  size_t depth = 0;
  bool ok = true;
  for (size_t i = 0; i < n && ok; ++i) {
    const event_t* e = xs[i];
    if (i && xs[i - 1]->tid != e->tid) depth = 0;
    while (depth && stack[depth - 1]->ts + stack[depth - 1]->dur <= e->ts + 1e-3) --depth;
    if (depth && e->ts + e->dur > stack[depth - 1]->ts + stack[depth - 1]->dur + 1e-3) {
      fprintf(stderr, "  span %s [%.3f, +%.3f] crosses %s [%.3f, +%.3f] on track %.0f\n",
              e->name, e->ts, e->dur, stack[depth - 1]->name, stack[depth - 1]->ts,
              stack[depth - 1]->dur, e->tid);
      ok = false;
    }
    if (depth < 64) stack[depth++] = e;
  }
  free(xs);
  return ok;
}

static size_t count(const reader_t* r, const char* ph, const char* cat, const char* name) {
  size_t n = 0;
  for (size_t i = 0; i < r->num_events; ++i) {
    const event_t* e = &r->events[i];
    n += (!ph || !strcmp(e->ph, ph)) && (!cat || !strcmp(e->cat, cat)) &&
         (!name || !strcmp(e->name, name));
  }
  return n;
}

static void trace_path(char* out, size_t n, const char* what) {
  snprintf(out, n, "/tmp/tpj_test_trace_%d_%s.json", (int)getpid(), what);
}

/* ---------------------------------------------------------------- tests -- */

TPJ_TEST(hooks_do_nothing_when_off) {
  TPJ_EXPECT(!tpj_runtime_trace_enabled());
  tpj_trace_span_t s = {"user", "nobody sees this", 1, 2, 0, NULL, 0};
  tpj_runtime_trace_span(&s);
  tpj_runtime_trace_span(NULL);
  tpj_runtime_trace_instant("x", "y", NULL, 0);
  tpj_runtime_trace_copy(TPJ_TRACE_COPY_H2D, 4, 0, 1, 2);
  tpj_runtime_trace_compile(1, "x", 1, "none", 1, 2);
  tpj_runtime_trace_launch(NULL);
  tpj_runtime_trace_fallback("aten::x", 1, 2);
  uint64_t before = tpj_runtime_trace_thread_fallbacks();
  tpj_runtime_metrics_add_fallback();
  TPJ_EXPECT(tpj_runtime_trace_thread_fallbacks() == before);
  TPJ_EXPECT(tpj_runtime_trace_thread_id() != 0);
}

TPJ_TEST(start_and_stop_errors) {
  TPJ_EXPECT_ERROR(tpj_runtime_trace_stop(NULL), FAILED_PRECONDITION, "no trace is running");
  TPJ_EXPECT_ERROR(tpj_runtime_trace_start(NULL), INVALID_ARGUMENT, "path");
  TPJ_EXPECT_ERROR(tpj_runtime_trace_start("/nonexistent-dir/x/trace.json"), INVALID_ARGUMENT,
                   "cannot create /nonexistent-dir/x/trace.json");
  TPJ_EXPECT(!tpj_runtime_trace_enabled());
  char path[128];
  trace_path(path, sizeof(path), "errors");
  TPJ_EXPECT_OK(tpj_runtime_trace_start(path));
  TPJ_EXPECT(tpj_runtime_trace_enabled());
  TPJ_EXPECT_ERROR(tpj_runtime_trace_start(path), FAILED_PRECONDITION, "already running");
  uint64_t events = 99;
  TPJ_EXPECT_OK(tpj_runtime_trace_stop(&events));
  TPJ_EXPECT(events == 1); /* the process name */
  reader_t r;
  TPJ_EXPECT(read_trace(path, &r));
  TPJ_EXPECT(r.num_events == 1);
  free(r.events);
  unlink(path);
}

static int g_observed[2];
static void observer(bool tracing, void* user) {
  ++g_observed[tracing ? 1 : 0];
  (void)user;
}

TPJ_TEST(observer_sees_start_and_stop) {
  char path[128];
  trace_path(path, sizeof(path), "observer");
  memset(g_observed, 0, sizeof(g_observed));
  tpj_runtime_trace_set_observer(observer, NULL);
  TPJ_EXPECT_OK(tpj_runtime_trace_start(path));
  TPJ_EXPECT(g_observed[1] == 1 && g_observed[0] == 0);
  tpj_runtime_trace_set_observer(observer, NULL); /* set while tracing: told at once */
  TPJ_EXPECT(g_observed[1] == 2);
  TPJ_EXPECT_OK(tpj_runtime_trace_stop(NULL));
  TPJ_EXPECT(g_observed[0] == 1);
  tpj_runtime_trace_set_observer(NULL, NULL);
  TPJ_EXPECT_OK(tpj_runtime_trace_start(path));
  TPJ_EXPECT_OK(tpj_runtime_trace_stop(NULL));
  TPJ_EXPECT(g_observed[1] == 2 && g_observed[0] == 1);
  unlink(path);
}

#define THREADS 6
#define ROUNDS 300

/* Each round: an outer span holding a copy, a compile and an inner span with
 * awkward argument text, then a fallback. */
static void* spans_thread(void* arg) {
  (void)arg;
  for (int i = 0; i < ROUNDS; ++i) {
    uint64_t t0 = tpj_runtime_metrics_now_ns();
    uint64_t t1 = tpj_runtime_metrics_now_ns();
    tpj_runtime_trace_copy(TPJ_TRACE_COPY_H2D, 64, 0, t0, t1);
    const char* text = "\"stablehlo.add\" \"stablehlo.return\"";
    tpj_runtime_trace_compile(0x1234, text, strlen(text), "none", t1,
                              tpj_runtime_metrics_now_ns());
    uint64_t t2 = tpj_runtime_metrics_now_ns();
    tpj_trace_arg_t args[2] = {{"text", "quote\" back\\slash\nnewline\x01", 0},
                               {"value", NULL, 1.5}};
    tpj_trace_span_t inner = {"user", "inner \"span\"", t2, tpj_runtime_metrics_now_ns(), 0,
                              args, 2};
    tpj_runtime_trace_span(&inner);
    tpj_runtime_metrics_add_fallback();
    tpj_trace_span_t outer = {"user", "outer", t0, tpj_runtime_metrics_now_ns(), 0, NULL, 0};
    tpj_runtime_trace_span(&outer);
  }
  return NULL;
}

TPJ_TEST(spans_from_many_threads_nest_and_parse) {
  char path[128];
  trace_path(path, sizeof(path), "threads");
  TPJ_EXPECT_OK(tpj_runtime_trace_start(path));
  uint64_t fb0 = tpj_runtime_trace_thread_fallbacks();
  tpj_runtime_metrics_add_fallback();
  TPJ_EXPECT(tpj_runtime_trace_thread_fallbacks() == fb0 + 1);
  pthread_t th[THREADS];
  for (int i = 0; i < THREADS; ++i) pthread_create(&th[i], NULL, spans_thread, NULL);
  for (int i = 0; i < THREADS; ++i) pthread_join(th[i], NULL);
  uint64_t events = 0;
  TPJ_EXPECT_OK(tpj_runtime_trace_stop(&events));
  reader_t r;
  TPJ_EXPECT(read_trace(path, &r));
  TPJ_EXPECT(events == r.num_events);
  size_t per = (size_t)THREADS * ROUNDS;
  TPJ_EXPECT(count(&r, "X", "user", "outer") == per);
  TPJ_EXPECT(count(&r, "X", "user", "inner \"span\"") == per);
  TPJ_EXPECT(count(&r, "X", "copy", "copy h2d") == per);
  TPJ_EXPECT(count(&r, "X", "compile", "compile") == per);
  TPJ_EXPECT(count(&r, "i", "fallback", NULL) == per + 1);
  TPJ_EXPECT(count(&r, "M", NULL, "thread_name") == THREADS + 1);
  for (size_t i = 0; i < r.num_events; ++i) {
    if (!strcmp(r.events[i].cat, "copy")) TPJ_EXPECT(r.events[i].bytes == 64);
  }
  TPJ_EXPECT(spans_nest(&r));
  /* one track per thread: six threads with ROUNDS outer spans each */
  double tids[THREADS + 1];
  size_t ntid = 0;
  for (size_t i = 0; i < r.num_events; ++i) {
    if (strcmp(r.events[i].name, "outer")) continue;
    bool seen = false;
    for (size_t k = 0; k < ntid; ++k) seen |= tids[k] == r.events[i].tid;
    if (!seen && ntid < THREADS + 1) tids[ntid++] = r.events[i].tid;
  }
  TPJ_EXPECT(ntid == THREADS);
  free(r.events);
  unlink(path);
}

/* ---------------------------------------------------- the eager runtime -- */

static tpj_client_t* g_client;

TPJ_TEST(eager_op_traces_compile_launch_completion_and_copies) {
  if (!g_client) TPJ_EXPECT_OK(tpj_test_cpu_client(1, &g_client));
  TPJ_EXPECT_OK(tpj_eager_init(g_client));
  char path[128];
  trace_path(path, sizeof(path), "eager");
  TPJ_EXPECT_OK(tpj_runtime_trace_start(path));
  tpj_eager_storage_t* s = NULL;
  TPJ_EXPECT_OK(tpj_eager_storage_create(4 * sizeof(float), 0, &s));
  tpj_eager_tensor_t v;
  memset(&v, 0, sizeof(v));
  v.storage = s;
  v.dtype = TPJ_DTYPE_F32;
  v.rank = 1;
  v.sizes[0] = 4;
  v.strides[0] = 1;
  float in[4] = {1, 2, 3, 4}, out[4] = {0};
  TPJ_EXPECT_OK(tpj_eager_write_host(in, sizeof(in), &v));
  tpj_arg_t args[2];
  memset(args, 0, sizeof(args));
  args[0].kind = TPJ_ARG_KIND_TENSOR;
  args[0].tensor = 0;
  args[1].kind = TPJ_ARG_KIND_TENSOR;
  args[1].tensor = 1;
  tpj_eager_tensor_t ins[2] = {v, v};
  tpj_type_t ot;
  memset(&ot, 0, sizeof(ot));
  ot.dtype = TPJ_DTYPE_F32;
  ot.rank = 1;
  ot.dims[0] = 4;
  tpj_eager_op_t op = {"aten::mul.Tensor", args, 2, ins, 2, NULL, 0, &ot, 1, 0, NULL};
  TPJ_EXPECT_OK(tpj_eager_op_run_into(&op, &v));
  TPJ_EXPECT_OK(tpj_eager_read_host(&v, out, sizeof(out)));
  TPJ_EXPECT(out[0] == 1 && out[3] == 16);
  TPJ_EXPECT_OK(tpj_eager_synchronize());
  TPJ_EXPECT_OK(tpj_runtime_trace_stop(NULL));
  tpj_eager_storage_destroy(s);
  reader_t r;
  TPJ_EXPECT(read_trace(path, &r));
  TPJ_EXPECT(spans_nest(&r));
  TPJ_EXPECT(count(&r, "X", "eager", "aten::mul.Tensor") == 1);
  TPJ_EXPECT(count(&r, "X", "launch", "aten::mul.Tensor") == 1);
  TPJ_EXPECT(count(&r, "X", "device", "aten::mul.Tensor") == 1);
  TPJ_EXPECT(count(&r, "X", "compile", NULL) >= 1);
  TPJ_EXPECT(count(&r, "X", "copy", "copy h2d") == 1);
  TPJ_EXPECT(count(&r, "X", "copy", "copy d2h") == 1);
  TPJ_EXPECT(count(&r, "M", NULL, "thread_name") >= 2); /* this thread and device 0 */
  const event_t *eager = NULL, *launch = NULL, *device = NULL;
  for (size_t i = 0; i < r.num_events; ++i) {
    const event_t* e = &r.events[i];
    if (!strcmp(e->cat, "eager")) eager = e;
    if (!strcmp(e->cat, "launch")) launch = e;
    if (!strcmp(e->cat, "device")) device = e;
    if (!strcmp(e->cat, "copy")) TPJ_EXPECT(e->bytes == sizeof(in));
    if (!strcmp(e->cat, "compile")) {
      TPJ_EXPECT(!strcmp(e->cache, "none") || !strcmp(e->cache, "disk") ||
                 !strcmp(e->cache, "memory"));
    }
  }
  TPJ_EXPECT(eager && launch && device);
  if (eager && launch && device) {
    TPJ_EXPECT(launch->ts >= eager->ts && launch->ts + launch->dur <= eager->ts + eager->dur);
    TPJ_EXPECT(device->tid != launch->tid);
    TPJ_EXPECT(device->ts >= launch->ts + launch->dur - 1e-3);
    TPJ_EXPECT(!strcmp(launch->op, "aten::mul.Tensor"));
  }
  free(r.events);
  unlink(path);
}

TPJ_TEST_MAIN("trace")
