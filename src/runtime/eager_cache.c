/* eager_cache.c: the eager op signature cache. Per-op dispatch must not build
 * StableHLO text when the same op signature ran before, so programs are found
 * by a byte signature of the call (hash + full compare) before anything else. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/eager_cache.h"
#include "runtime/eager_internal.h"
#include "tpj/runtime.h"

typedef struct entry_s {
  uint64_t hash;
  char* blob;
  size_t len;
  tpj_cached_executable_t* exe;
  struct entry_s* next;
} entry_t;

#define NUM_BUCKETS 4096
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t* g_buckets[NUM_BUCKETS];

tpj_cached_executable_t* tpj_eager_cache_find(const char* blob, size_t len, uint64_t hash) {
  pthread_mutex_lock(&g_lock);
  tpj_cached_executable_t* found = NULL;
  for (entry_t* e = g_buckets[hash % NUM_BUCKETS]; e; e = e->next) {
    if (e->hash == hash && e->len == len && memcmp(e->blob, blob, len) == 0) {
      found = e->exe;
      tpj_cached_executable_retain(found);
      break;
    }
  }
  pthread_mutex_unlock(&g_lock);
  return found;
}

void tpj_eager_cache_put(const char* blob, size_t len, uint64_t hash,
                         tpj_cached_executable_t* exe) {
  entry_t* e = calloc(1, sizeof(*e));
  char* copy = malloc(len ? len : 1);
  if (!e || !copy) { /* caching is an optimization: skip it when out of memory */
    free(e);
    free(copy);
    return;
  }
  memcpy(copy, blob, len);
  e->hash = hash;
  e->blob = copy;
  e->len = len;
  e->exe = exe;
  tpj_cached_executable_retain(exe);
  pthread_mutex_lock(&g_lock);
  e->next = g_buckets[hash % NUM_BUCKETS];
  g_buckets[hash % NUM_BUCKETS] = e;
  pthread_mutex_unlock(&g_lock);
}

void tpj_eager_cache_clear(void) {
  pthread_mutex_lock(&g_lock);
  for (size_t b = 0; b < NUM_BUCKETS; ++b) {
    entry_t* e = g_buckets[b];
    g_buckets[b] = NULL;
    while (e) {
      entry_t* next = e->next;
      tpj_cached_executable_release(e->exe);
      free(e->blob);
      free(e);
      e = next;
    }
  }
  pthread_mutex_unlock(&g_lock);
  tpj_eager_scalar_cache_clear();
}
