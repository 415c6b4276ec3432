/* trace.c: the Chrome trace-event recorder (tpj/runtime.h, "trace").
 *
 * One process-wide session at a time. Events are formatted as JSON objects
 * straight into one in-memory buffer under a mutex (a trace that runs is
 * allowed to cost a microsecond per event); when no trace runs every hook
 * returns after one relaxed load of g_on. Threads get small track ids on
 * their first event; launch completions go on per-device tracks, each span
 * from when the device could start the program (its enqueue, or the end of
 * the program before it on that device) to its on-ready callback, so the
 * spans of one device never overlap. The file is written at stop. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tpj/runtime.h"

#define TRACE_MAX_BYTES ((size_t)1 << 30) /* later events are dropped (counted) */
#define TRACE_DEVICES 64                  /* devices with their own track */
#define TRACE_DEVICE_TID 1000000u         /* device d's track: tid 1000000 + d */
#define TRACE_DRAIN_NS 1000000000ull      /* stop waits this long for callbacks */

static atomic_bool g_on;
static atomic_uint_fast64_t g_next_tid = 1;
static atomic_int g_pending; /* completion callbacks registered, not yet run */

/* Start/stop and the observer: serialized, never held by a hook. */
static pthread_mutex_t g_ctl_mu = PTHREAD_MUTEX_INITIALIZER;
static tpj_trace_observer_fn g_observer;
static void* g_observer_user;

/* The session: under g_mu. */
static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
  uint64_t gen; /* session number; 0 = none */
  char* path;
  tpj_strbuf_t buf;
  uint64_t t0_ns;
  int pid;
  uint64_t events;
  uint64_t dropped;
  uint64_t dev_last[TRACE_DEVICES]; /* end of the last completion span */
  bool dev_named[TRACE_DEVICES];
} g;
static uint64_t g_last_gen;

static _Thread_local uint64_t t_tid;
static _Thread_local uint64_t t_named_gen; /* session whose metadata names this thread */
static _Thread_local uint64_t t_fallbacks;

/* CLOCK_MONOTONIC, the clock that tpj_runtime_metrics_now_ns reads for the
 * callers' span times, read here so that the recorder does not call into
 * metrics.c, which pushes each fallback into it. */
static uint64_t now_ns(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0;
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

bool tpj_runtime_trace_enabled(void) {
  return atomic_load_explicit(&g_on, memory_order_relaxed);
}

uint64_t tpj_runtime_trace_thread_id(void) {
  if (!t_tid) t_tid = atomic_fetch_add(&g_next_tid, 1);
  return t_tid;
}

/* ------------------------------------------------------------ formatting -- */

static void put_str(tpj_strbuf_t* sb, const char* s) {
  tpj_strbuf_append(sb, "\"", 1);
  const char* run = s ? s : "";
  for (const char* p = run;; ++p) {
    unsigned char c = (unsigned char)*p;
    if (c && c != '"' && c != '\\' && c >= 0x20) continue;
    tpj_strbuf_append(sb, run, (size_t)(p - run));
    if (!c) break;
    if (c == '"' || c == '\\') {
      char esc[2] = {'\\', (char)c};
      tpj_strbuf_append(sb, esc, 2);
    } else {
      tpj_strbuf_printf(sb, "\\u%04x", c);
    }
    run = p + 1;
  }
  tpj_strbuf_append(sb, "\"", 1);
}

static void put_num(tpj_strbuf_t* sb, double v) {
  if (v != v || v > 1e300 || v < -1e300) {
    tpj_strbuf_puts(sb, "null");
  } else if (v == (double)(int64_t)v && v < 9e15 && v > -9e15) {
    tpj_strbuf_printf(sb, "%lld", (long long)v);
  } else {
    tpj_strbuf_printf(sb, "%.9g", v);
  }
}

static void put_args(tpj_strbuf_t* sb, const tpj_trace_arg_t* args, size_t n) {
  if (!args || !n) return;
  tpj_strbuf_puts(sb, ",\"args\":{");
  for (size_t i = 0; i < n; ++i) {
    if (i) tpj_strbuf_append(sb, ",", 1);
    put_str(sb, args[i].key);
    tpj_strbuf_append(sb, ":", 1);
    if (args[i].str) put_str(sb, args[i].str);
    else put_num(sb, args[i].num);
  }
  tpj_strbuf_append(sb, "}", 1);
}

/* Microseconds since the start, never before it. */
static double rel_us(uint64_t ns) { return ns > g.t0_ns ? (double)(ns - g.t0_ns) * 1e-3 : 0.0; }

/* true when there is room for another event; counts a drop otherwise. */
static bool room_locked(void) {
  if (g.buf.len < TRACE_MAX_BYTES && !g.buf.oom) return true;
  ++g.dropped;
  return false;
}

static void thread_name_locked(uint64_t tid, const char* name, uint64_t sort) {
  tpj_strbuf_printf(&g.buf, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%llu,"
                    "\"args\":{\"name\":", g.pid, (unsigned long long)tid);
  put_str(&g.buf, name);
  tpj_strbuf_printf(&g.buf, "}},\n{\"name\":\"thread_sort_index\",\"ph\":\"M\",\"pid\":%d,"
                    "\"tid\":%llu,\"args\":{\"sort_index\":%llu}}", g.pid,
                    (unsigned long long)tid, (unsigned long long)sort);
  g.events += 2;
}

/* Names the calling thread's track once per session. */
static void name_self_locked(void) {
  uint64_t tid = tpj_runtime_trace_thread_id();
  if (t_named_gen == g.gen) return;
  t_named_gen = g.gen;
  char os_name[32] = "";
  pthread_getname_np(pthread_self(), os_name, sizeof(os_name));
  char name[64];
  snprintf(name, sizeof(name), "%s (thread %llu)", os_name[0] ? os_name : "thread",
           (unsigned long long)tid);
  thread_name_locked(tid, name, tid);
}

static void event_locked(const char* ph, const char* cat, const char* name, uint64_t start_ns,
                         uint64_t end_ns, uint64_t tid, const tpj_trace_arg_t* args,
                         size_t num_args) {
  if (!room_locked()) return;
  if (!tid) {
    name_self_locked();
    tid = t_tid;
  }
  double ts = rel_us(start_ns);
  tpj_strbuf_puts(&g.buf, ",\n{\"name\":");
  put_str(&g.buf, name);
  tpj_strbuf_puts(&g.buf, ",\"cat\":");
  put_str(&g.buf, cat);
  tpj_strbuf_printf(&g.buf, ",\"ph\":\"%s\",\"ts\":%.3f", ph, ts);
  if (ph[0] == 'X') {
    double end = rel_us(end_ns);
    tpj_strbuf_printf(&g.buf, ",\"dur\":%.3f", end > ts ? end - ts : 0.0);
  } else {
    tpj_strbuf_puts(&g.buf, ",\"s\":\"t\"");
  }
  tpj_strbuf_printf(&g.buf, ",\"pid\":%d,\"tid\":%llu", g.pid, (unsigned long long)tid);
  put_args(&g.buf, args, num_args);
  tpj_strbuf_append(&g.buf, "}", 1);
  ++g.events;
}

/* Locks g_mu when a session runs (true); the caller unlocks. */
static bool lock_session(void) {
  if (!tpj_runtime_trace_enabled()) return false;
  pthread_mutex_lock(&g_mu);
  if (g.gen) return true;
  pthread_mutex_unlock(&g_mu);
  return false;
}

/* --------------------------------------------------------- start and stop -- */

static void notify(bool tracing) {
  if (g_observer) g_observer(tracing, g_observer_user);
}

void tpj_runtime_trace_set_observer(tpj_trace_observer_fn fn, void* user) {
  pthread_mutex_lock(&g_ctl_mu);
  g_observer = fn;
  g_observer_user = user;
  if (fn && tpj_runtime_trace_enabled()) fn(true, user);
  pthread_mutex_unlock(&g_ctl_mu);
}

tpj_status_t tpj_runtime_trace_start(const char* path) {
  TPJ_CHECK_ARG(path && path[0], "trace start: path is NULL or empty");
  pthread_mutex_lock(&g_ctl_mu);
  tpj_status_t st = NULL;
  if (tpj_runtime_trace_enabled()) {
    pthread_mutex_lock(&g_mu);
    st = TPJ_STATUS(FAILED_PRECONDITION, "trace start: a trace is already running "
                    "(writing %s, got another for %s)", g.path, path);
    pthread_mutex_unlock(&g_mu);
  }
  FILE* f = st ? NULL : fopen(path, "w");
  if (!st && !f) {
    st = TPJ_STATUS(INVALID_ARGUMENT, "trace start: cannot create %s: %s", path,
                    strerror(errno));
  }
  if (f) fclose(f);
  char* copy = st ? NULL : strdup(path);
  if (!st && !copy) st = TPJ_STATUS(RESOURCE_EXHAUSTED, "trace start: out of memory");
  if (st) {
    pthread_mutex_unlock(&g_ctl_mu);
    return st;
  }
  pthread_mutex_lock(&g_mu);
  memset(&g, 0, sizeof(g));
  g.gen = ++g_last_gen;
  g.path = copy;
  tpj_strbuf_init(&g.buf);
  g.t0_ns = now_ns();
  g.pid = (int)getpid();
  tpj_strbuf_printf(&g.buf, "{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
                    "\"args\":{\"name\":\"torch-pjrt\"}}", g.pid);
  g.events = 1;
  atomic_store_explicit(&g_on, true, memory_order_release);
  pthread_mutex_unlock(&g_mu);
  notify(true);
  pthread_mutex_unlock(&g_ctl_mu);
  return NULL;
}

static tpj_status_t write_file(const char* path, const tpj_strbuf_t* buf, uint64_t events,
                               uint64_t dropped) {
  FILE* f = fopen(path, "w");
  if (!f) {
    return TPJ_STATUS(INTERNAL, "trace stop: cannot write %s: %s", path, strerror(errno));
  }
  fputs("{\"traceEvents\":[\n", f);
  if (buf->data) fwrite(buf->data, 1, buf->len, f);
  fprintf(f, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"producer\":\"torch-pjrt\","
          "\"events\":%llu,\"dropped\":%llu}}\n", (unsigned long long)events,
          (unsigned long long)dropped);
  bool bad = ferror(f) != 0;
  if (fclose(f) != 0) bad = true;
  return bad ? TPJ_STATUS(INTERNAL, "trace stop: writing %s failed: %s", path, strerror(errno))
             : NULL;
}

tpj_status_t tpj_runtime_trace_stop(uint64_t* out_events) {
  pthread_mutex_lock(&g_ctl_mu);
  if (!tpj_runtime_trace_enabled()) {
    pthread_mutex_unlock(&g_ctl_mu);
    return TPJ_STATUS(FAILED_PRECONDITION, "trace stop: no trace is running");
  }
  notify(false);
  /* Launches still in flight: give their completions a moment to arrive. */
  uint64_t until = now_ns() + TRACE_DRAIN_NS;
  while (atomic_load(&g_pending) > 0 && now_ns() < until) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
  pthread_mutex_lock(&g_mu);
  atomic_store_explicit(&g_on, false, memory_order_relaxed);
  char* path = g.path;
  tpj_strbuf_t buf = g.buf;
  uint64_t events = g.events, dropped = g.dropped;
  tpj_status_t st = tpj_strbuf_status(&g.buf);
  memset(&g, 0, sizeof(g));
  pthread_mutex_unlock(&g_mu);
  if (st) {
    tpj_status_free(st);
    TPJ_LOG(WARNING, "trace: out of memory; events after that point were dropped");
  }
  st = write_file(path, &buf, events, dropped);
  if (dropped) TPJ_LOG(WARNING, "trace: %llu events dropped (over %zu bytes)",
                       (unsigned long long)dropped, TRACE_MAX_BYTES);
  tpj_strbuf_deinit(&buf);
  free(path);
  pthread_mutex_unlock(&g_ctl_mu);
  if (out_events) *out_events = st ? 0 : events;
  return st;
}

/* ------------------------------------------------------------------ spans -- */

void tpj_runtime_trace_span(const tpj_trace_span_t* s) {
  if (!s || !lock_session()) return;
  event_locked("X", s->cat ? s->cat : "span", s->name, s->start_ns,
               s->end_ns > s->start_ns ? s->end_ns : s->start_ns, s->tid, s->args, s->num_args);
  pthread_mutex_unlock(&g_mu);
}

void tpj_runtime_trace_instant(const char* cat, const char* name, const tpj_trace_arg_t* args,
                               size_t num_args) {
  if (!lock_session()) return;
  uint64_t now = now_ns();
  event_locked("i", cat ? cat : "instant", name, now, now, 0, args, num_args);
  pthread_mutex_unlock(&g_mu);
}

static void key_hex(uint64_t key, char out[17]) {
  snprintf(out, 17, "%016llx", (unsigned long long)key);
}

/* What a launch span is called: the eager op, else the program's key. */
static void launch_name(const char* op, uint64_t key, char* out, size_t n) {
  if (op) snprintf(out, n, "%s", op);
  else snprintf(out, n, "program %08llx", (unsigned long long)(key >> 32));
}

typedef struct done_ctx_s {
  uint64_t gen;
  uint64_t key;
  uint64_t enqueued_ns;
  size_t device;
  char name[120];
} done_ctx_t;

static void on_done(tpj_status_t status, void* user) {
  done_ctx_t* c = (done_ctx_t*)user;
  uint64_t now = now_ns();
  pthread_mutex_lock(&g_mu);
  if (g.gen == c->gen && c->gen) {
    size_t d = c->device;
    uint64_t start = c->enqueued_ns;
    uint64_t tid = TRACE_DEVICE_TID + (d < TRACE_DEVICES ? d : TRACE_DEVICES);
    if (d < TRACE_DEVICES) {
      if (!g.dev_named[d] && room_locked()) {
        g.dev_named[d] = true;
        char name[48];
        snprintf(name, sizeof(name), "pjrt device %zu", d);
        thread_name_locked(tid, name, tid);
      }
      if (g.dev_last[d] > start) start = g.dev_last[d];
      if (now < start) now = start;
      g.dev_last[d] = now;
    }
    char hex[17];
    key_hex(c->key, hex);
    tpj_trace_arg_t args[4] = {
        {"program", hex, 0},
        {"device", NULL, (double)d},
        {"queued_us", NULL, (double)(start - c->enqueued_ns) * 1e-3},
        {"status", status ? tpj_status_message(status) : "ok", 0},
    };
    event_locked("X", "device", c->name, start, now, tid, args, 4);
  }
  pthread_mutex_unlock(&g_mu);
  tpj_status_free(status);
  free(c);
  atomic_fetch_sub(&g_pending, 1);
}

void tpj_runtime_trace_launch(const tpj_trace_launch_t* l) {
  if (!l || !tpj_runtime_trace_enabled()) return;
  char name[120];
  launch_name(l->op, l->key, name, sizeof(name));
  char hex[17];
  key_hex(l->key, hex);
  uint64_t gen = 0;
  if (!lock_session()) return;
  gen = g.gen;
  tpj_trace_arg_t args[4] = {
      {"program", hex, 0},
      {"device", NULL, (double)l->device},
      {"devices", NULL, (double)(l->num_devices ? l->num_devices : 1)},
      {"op", l->op, 0},
  };
  event_locked("X", "launch", name, l->start_ns, l->end_ns, 0, args, l->op ? 4 : 3);
  pthread_mutex_unlock(&g_mu);
  for (size_t d = 0; l->events && d < l->num_devices; ++d) {
    if (!l->events[d]) continue;
    done_ctx_t* c = (done_ctx_t*)calloc(1, sizeof(*c));
    if (!c) return;
    c->gen = gen;
    c->key = l->key;
    c->enqueued_ns = l->end_ns;
    c->device = l->device + d;
    memcpy(c->name, name, sizeof(c->name));
    atomic_fetch_add(&g_pending, 1);
    tpj_status_t st = tpj_event_on_ready(l->events[d], on_done, c);
    if (st) { /* not registered: no completion span */
      tpj_status_free(st);
      free(c);
      atomic_fetch_sub(&g_pending, 1);
    }
  }
}

/* Ops in a StableHLO text: its quoted generic-form op names. */
static size_t count_ops(const char* text, size_t len) {
  static const char* const kPrefixes[] = {"\"stablehlo.", "\"chlo.", "\"func.", "\"mhlo."};
  size_t n = 0;
  for (size_t k = 0; k < sizeof(kPrefixes) / sizeof(kPrefixes[0]); ++k) {
    size_t plen = strlen(kPrefixes[k]);
    const char* p = text;
    const char* end = text + len;
    while (p < end && (p = memmem(p, (size_t)(end - p), kPrefixes[k], plen)) != NULL) {
      ++n;
      p += plen;
    }
  }
  return n;
}

void tpj_runtime_trace_compile(uint64_t key, const char* program, size_t program_len,
                               const char* cache, uint64_t start_ns, uint64_t end_ns) {
  if (!tpj_runtime_trace_enabled()) return;
  size_t ops = program ? count_ops(program, program_len) : 0;
  char hex[17];
  key_hex(key, hex);
  const char* c = cache ? cache : "none";
  const char* name = !strcmp(c, "memory") ? "compile (memory hit)"
                     : !strcmp(c, "disk") ? "compile (disk hit)" : "compile";
  tpj_trace_arg_t args[5] = {
      {"program", hex, 0},
      {"cache", c, 0},
      {"ops", NULL, (double)ops},
      {"bytes", NULL, (double)program_len},
      {"seconds", NULL, end_ns > start_ns ? (double)(end_ns - start_ns) * 1e-9 : 0.0},
  };
  tpj_trace_span_t s = {"compile", name, start_ns, end_ns, 0, args, 5};
  tpj_runtime_trace_span(&s);
}

void tpj_runtime_trace_copy(tpj_trace_copy_t direction, uint64_t bytes, size_t device,
                            uint64_t start_ns, uint64_t end_ns) {
  if (!tpj_runtime_trace_enabled()) return;
  bool h2d = direction == TPJ_TRACE_COPY_H2D;
  tpj_trace_arg_t args[3] = {
      {"direction", h2d ? "h2d" : "d2h", 0},
      {"bytes", NULL, (double)bytes},
      {"device", NULL, device == (size_t)-1 ? -1.0 : (double)device},
  };
  tpj_trace_span_t s = {"copy", h2d ? "copy h2d" : "copy d2h", start_ns, end_ns, 0, args, 3};
  tpj_runtime_trace_span(&s);
}

void tpj_runtime_trace_note_fallback(const char* op) {
  if (!tpj_runtime_trace_enabled()) return;
  ++t_fallbacks;
  tpj_trace_arg_t arg = {"op", op, 0};
  tpj_runtime_trace_instant("fallback", op ? op : "fallback", op ? &arg : NULL, op ? 1 : 0);
}

uint64_t tpj_runtime_trace_thread_fallbacks(void) { return t_fallbacks; }

void tpj_runtime_trace_fallback(const char* op, uint64_t start_ns, uint64_t end_ns) {
  if (!tpj_runtime_trace_enabled()) return;
  tpj_trace_arg_t arg = {"op", op ? op : "?", 0};
  char name[160];
  snprintf(name, sizeof(name), "fallback %s", op ? op : "");
  tpj_trace_span_t s = {"fallback", name, start_ns, end_ns, 0, &arg, 1};
  tpj_runtime_trace_span(&s);
}
