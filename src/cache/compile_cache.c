/* compile_cache.c: the process-wide StableHLO -> executable cache.
 * Bucketed by a 64-bit hash of (text, options, plugin path); a hit is confirmed
 * by comparing client, options and the full text, so collisions are harmless.
 * Entries are reference counted so Python objects can outlive a cache clear.
 * A memory miss asks the disk tier (disk_cache.c) before compiling. Counts
 * (hits, compiles, the entry count) are pushed into metrics.c. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>

#include "tpj/runtime.h"

#define TPJ_CACHE_BUCKETS 256

struct tpj_cached_executable_s {
  atomic_int refs;
  uint64_t key;
  const tpj_client_t* client;   /* identity only; never dereferenced here */
  char* text;                   /* (text_len) a copy of the program */
  size_t text_len;
  tpj_compile_options_t options;
  tpj_executable_t* executable; /* owned */
  struct tpj_cached_executable_s* next; /* bucket chain while cached */
};

static pthread_mutex_t g_cache_mu = PTHREAD_MUTEX_INITIALIZER;
static tpj_cached_executable_t* g_buckets[TPJ_CACHE_BUCKETS];
static size_t g_cache_count;

static tpj_compile_options_t normalize_options(const tpj_compile_options_t* options) {
  tpj_compile_options_t o = {.num_replicas = 1, .num_partitions = 1,
                             .use_spmd_partitioning = false};
  if (options) o = *options;
  return o;
}

static bool options_equal(const tpj_compile_options_t* a, const tpj_compile_options_t* b) {
  return a->num_replicas == b->num_replicas && a->num_partitions == b->num_partitions &&
         a->use_spmd_partitioning == b->use_spmd_partitioning && a->portable == b->portable &&
         a->use_shardy_partitioner == b->use_shardy_partitioner;
}

uint64_t tpj_runtime_cache_key(const tpj_client_t* client, const char* program,
                               size_t program_len, const tpj_compile_options_t* options) {
  tpj_compile_options_t o = normalize_options(options);
  int64_t fields[3] = {o.num_replicas, o.num_partitions,
                       (o.use_spmd_partitioning ? 1 : 0) | (o.portable ? 2 : 0) |
                           (o.use_shardy_partitioner ? 4 : 0)};
  uint64_t h = tpj_hash_bytes(program ? program : "", program ? program_len : 0,
                              TPJ_HASH_SEED);
  h = tpj_hash_bytes(fields, sizeof(fields), h);
  const char* path = "";
  if (client) {
    tpj_plugin_t* plugin = tpj_client_plugin(client);
    if (plugin) {
      tpj_plugin_info_t info;
      tpj_plugin_get_info(plugin, &info);
      if (info.path) path = info.path;
    }
  }
  return tpj_hash_bytes(path, strlen(path) + 1, h);
}

tpj_executable_t* tpj_cached_executable_get(const tpj_cached_executable_t* handle) {
  return handle ? handle->executable : NULL;
}

uint64_t tpj_cached_executable_key(const tpj_cached_executable_t* handle) {
  return handle ? handle->key : 0;
}

void tpj_cached_executable_retain(tpj_cached_executable_t* handle) {
  if (handle) atomic_fetch_add(&handle->refs, 1);
}

void tpj_cached_executable_release(tpj_cached_executable_t* handle) {
  if (!handle) return;
  if (atomic_fetch_sub(&handle->refs, 1) != 1) return;
  tpj_executable_destroy(handle->executable);
  free(handle->text);
  free(handle);
}

/* Caller holds g_cache_mu. Returns a retained entry or NULL. */
static tpj_cached_executable_t* find_locked(uint64_t key, const tpj_client_t* client,
                                            const char* text, size_t len,
                                            const tpj_compile_options_t* o) {
  for (tpj_cached_executable_t* e = g_buckets[key % TPJ_CACHE_BUCKETS]; e; e = e->next) {
    if (e->key == key && e->client == client && e->text_len == len &&
        options_equal(&e->options, o) && memcmp(e->text, text, len) == 0) {
      atomic_fetch_add(&e->refs, 1);
      return e;
    }
  }
  return NULL;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Wraps `exe` (ownership taken, destroyed on failure) in a fresh entry holding
 * 2 references (the cache's and the caller's). */
static tpj_status_t make_entry(const tpj_client_t* client, const char* program, size_t len,
                               const tpj_compile_options_t* o, uint64_t key,
                               tpj_executable_t* exe, tpj_cached_executable_t** out_entry) {
  tpj_cached_executable_t* e = calloc(1, sizeof(*e));
  char* text = malloc(len + 1);
  if (!e || !text) {
    free(e);
    free(text);
    tpj_executable_destroy(exe);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "compile cache: out of memory copying "
                      "a program of %zu bytes", len);
  }
  memcpy(text, program, len);
  text[len] = '\0';
  atomic_init(&e->refs, 2);
  e->key = key;
  e->client = client;
  e->text = text;
  e->text_len = len;
  e->options = *o;
  e->executable = exe;
  *out_entry = e;
  return NULL;
}

/* The slow path of a memory miss: the disk tier, else a compile whose result
 * is written to the disk tier (a failed write is logged, never an error). */
static tpj_status_t load_or_compile(tpj_client_t* client, const char* program, size_t len,
                                    const tpj_compile_options_t* o, tpj_executable_t** out_exe,
                                    bool* out_from_disk) {
  tpj_executable_t* exe = NULL;
  TPJ_RETURN_IF_ERROR(tpj_runtime_disk_cache_load(client, program, len, o, &exe));
  *out_from_disk = exe != NULL;
  if (exe) {
    *out_exe = exe;
    return NULL;
  }
  double start = now_seconds();
  tpj_status_t s = tpj_executable_compile(client, program, len, o, &exe);
  if (s) return tpj_status_annotate(s, "compile");
  tpj_runtime_metrics_add_compile(now_seconds() - start);
  s = tpj_runtime_disk_cache_store(client, program, len, o, exe, NULL);
  if (s) {
    TPJ_LOG(DEBUG, "disk cache store skipped: %s", tpj_status_message(s));
    tpj_status_free(s);
  }
  *out_exe = exe;
  return NULL;
}

static tpj_status_t insert_entry(tpj_client_t* client, const char* program, size_t program_len,
                                 const tpj_compile_options_t* o, uint64_t key,
                                 tpj_executable_t* exe, tpj_cached_executable_t** out_entry);

tpj_status_t tpj_runtime_compile_cached(tpj_client_t* client, const char* program,
                                        size_t program_len,
                                        const tpj_compile_options_t* options,
                                        tpj_cached_executable_t** out_executable,
                                        bool* out_hit) {
  TPJ_CHECK_ARG(client != NULL, "compile cache: client is NULL");
  TPJ_CHECK_ARG(program != NULL, "compile cache: program is NULL");
  TPJ_CHECK_ARG(out_executable != NULL, "compile cache: out_executable is NULL");
  tpj_compile_options_t o = normalize_options(options);
  TPJ_CHECK_ARG(o.num_replicas >= 1 && o.num_partitions >= 1,
                "compile cache: bad options (got num_replicas %d, num_partitions %d, "
                "expected >= 1)", o.num_replicas, o.num_partitions);
  uint64_t key = tpj_runtime_cache_key(client, program, program_len, &o);
  uint64_t t0 = tpj_runtime_trace_enabled() ? tpj_runtime_metrics_now_ns() : 0;
  pthread_mutex_lock(&g_cache_mu);
  tpj_cached_executable_t* hit = find_locked(key, client, program, program_len, &o);
  pthread_mutex_unlock(&g_cache_mu);
  if (hit) {
    tpj_runtime_metrics_add_cache_hit();
    if (t0) tpj_runtime_trace_compile(key, program, program_len, "memory", t0,
                                      tpj_runtime_metrics_now_ns());
    *out_executable = hit;
    if (out_hit) *out_hit = true;
    return NULL;
  }
  tpj_executable_t* exe = NULL;
  bool from_disk = false;
  TPJ_RETURN_IF_ERROR(load_or_compile(client, program, program_len, &o, &exe, &from_disk));
  tpj_cached_executable_t* fresh = NULL;
  TPJ_RETURN_IF_ERROR(insert_entry(client, program, program_len, &o, key, exe, &fresh));
  *out_executable = fresh;
  if (out_hit) *out_hit = from_disk;
  if (t0) tpj_runtime_trace_compile(key, program, program_len, from_disk ? "disk" : "none", t0,
                                    tpj_runtime_metrics_now_ns());
  return NULL;
}

/* Caches `exe` (taken) for `program` unless another thread cached the same
 * program first: then *out_entry is that one and `exe` is destroyed. */
static tpj_status_t insert_entry(tpj_client_t* client, const char* program, size_t program_len,
                                 const tpj_compile_options_t* o, uint64_t key,
                                 tpj_executable_t* exe, tpj_cached_executable_t** out_entry) {
  tpj_cached_executable_t* fresh = NULL;
  TPJ_RETURN_IF_ERROR(make_entry(client, program, program_len, o, key, exe, &fresh));
  pthread_mutex_lock(&g_cache_mu);
  tpj_cached_executable_t* raced = find_locked(key, client, program, program_len, o);
  if (!raced) {
    size_t b = key % TPJ_CACHE_BUCKETS;
    fresh->next = g_buckets[b];
    g_buckets[b] = fresh;
    tpj_runtime_metrics_set_cache_entries(++g_cache_count);
  }
  pthread_mutex_unlock(&g_cache_mu);
  if (raced) {
    /* Another thread cached the same program first: keep its executable. */
    atomic_store(&fresh->refs, 1);
    tpj_cached_executable_release(fresh);
    fresh = raced;
  }
  *out_entry = fresh;
  return NULL;
}

tpj_status_t tpj_runtime_cache_adopt(tpj_client_t* client, const char* program,
                                     size_t program_len, const tpj_compile_options_t* options,
                                     tpj_executable_t* executable,
                                     tpj_cached_executable_t** out_executable) {
  if (!client || !program || !executable || !out_executable) {
    tpj_executable_destroy(executable);
    return TPJ_STATUS(INVALID_ARGUMENT, "compile cache: adopt needs a client, a program, "
                      "an executable and out_executable");
  }
  tpj_compile_options_t o = normalize_options(options);
  uint64_t key = tpj_runtime_cache_key(client, program, program_len, &o);
  pthread_mutex_lock(&g_cache_mu);
  tpj_cached_executable_t* hit = find_locked(key, client, program, program_len, &o);
  pthread_mutex_unlock(&g_cache_mu);
  if (hit) {
    tpj_executable_destroy(executable);
    *out_executable = hit;
    return NULL;
  }
  return insert_entry(client, program, program_len, &o, key, executable, out_executable);
}

/* Unlinks matching entries under the lock, releases them after unlocking
 * (destroying an executable may call into the plugin). */
static void evict_where(const tpj_client_t* client, bool all) {
  tpj_cached_executable_t* dropped = NULL;
  pthread_mutex_lock(&g_cache_mu);
  for (size_t b = 0; b < TPJ_CACHE_BUCKETS; ++b) {
    tpj_cached_executable_t** link = &g_buckets[b];
    while (*link) {
      tpj_cached_executable_t* e = *link;
      if (all || e->client == client) {
        *link = e->next;
        e->next = dropped;
        dropped = e;
        --g_cache_count;
      } else {
        link = &e->next;
      }
    }
  }
  tpj_runtime_metrics_set_cache_entries(g_cache_count);
  pthread_mutex_unlock(&g_cache_mu);
  while (dropped) {
    tpj_cached_executable_t* next = dropped->next;
    dropped->next = NULL;
    tpj_cached_executable_release(dropped);
    dropped = next;
  }
}

void tpj_runtime_cache_evict_client(const tpj_client_t* client) {
  if (client) evict_where(client, false);
}

void tpj_runtime_cache_clear(void) { evict_where(NULL, true); }

size_t tpj_runtime_cache_size(void) {
  pthread_mutex_lock(&g_cache_mu);
  size_t n = g_cache_count;
  pthread_mutex_unlock(&g_cache_mu);
  return n;
}
