/* eager_cache.c: the eager op signature cache. Per-op dispatch must not build
 * StableHLO text when the same op signature ran before, so programs are found
 * by a byte signature of the call (hash + full compare) before anything else;
 * the signature is built (tpj_eager_sig_build) without heap allocation on
 * that path. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/eager_cache.h"
#include "runtime/eager_prog.h"
#include "runtime/eager_internal.h"
#include "tpj/runtime.h"

typedef struct entry_s {
  uint64_t hash;
  char* blob;
  size_t len;
  tpj_program_t* program; /* one reference */
  struct entry_s* next;
} entry_t;

#define NUM_BUCKETS 4096
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t* g_buckets[NUM_BUCKETS];

void tpj_eager_sig_init(tpj_eager_sig_t* sb) {
  sb->data = sb->inline_buf;
  sb->len = 0;
  sb->cap = sizeof(sb->inline_buf);
  sb->oom = false;
}

void tpj_eager_sig_deinit(tpj_eager_sig_t* sb) {
  if (sb->data != sb->inline_buf) free(sb->data);
  sb->data = sb->inline_buf;
  sb->len = 0;
  sb->cap = sizeof(sb->inline_buf);
}

void tpj_eager_sig_put(tpj_eager_sig_t* sb, const void* bytes, size_t n) {
  if (sb->oom || n == 0) return;
  if (sb->len + n > sb->cap) {
    size_t cap = 2 * (sb->len + n);
    char* grown = malloc(cap);
    if (!grown) {
      sb->oom = true;
      return;
    }
    memcpy(grown, sb->data, sb->len);
    if (sb->data != sb->inline_buf) free(sb->data);
    sb->data = grown;
    sb->cap = cap;
  }
  memcpy(sb->data + sb->len, bytes, n);
  sb->len += n;
}

uint64_t tpj_eager_sig_hash(const tpj_eager_sig_t* sb) {
  uint64_t h = 0x9e3779b97f4a7c15ull ^ sb->len, w;
  size_t i = 0;
  for (; i + 8 <= sb->len; i += 8) {
    memcpy(&w, sb->data + i, 8);
    h = (h ^ w) * 0xff51afd7ed558ccdull;
    h ^= h >> 32;
  }
  w = 0;
  memcpy(&w, sb->data + i, sb->len - i);
  h = (h ^ w) * 0xc4ceb9fe1a85ec53ull;
  return h ^ (h >> 29);
}

tpj_program_t* tpj_eager_cache_find(const char* blob, size_t len, uint64_t hash) {
  pthread_mutex_lock(&g_lock);
  tpj_program_t* found = NULL;
  for (entry_t* e = g_buckets[hash % NUM_BUCKETS]; e; e = e->next) {
    if (e->hash == hash && e->len == len && memcmp(e->blob, blob, len) == 0) {
      found = e->program;
      tpj_program_retain(found);
      break;
    }
  }
  pthread_mutex_unlock(&g_lock);
  return found;
}

void tpj_eager_cache_put(const char* blob, size_t len, uint64_t hash, tpj_program_t* program) {
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
  e->program = program;
  tpj_program_retain(program);
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
      tpj_program_release(e->program);
      free(e->blob);
      free(e);
      e = next;
    }
  }
  pthread_mutex_unlock(&g_lock);
  tpj_eager_scalar_cache_clear();
}

/* ------------------------------------------------- the signature of a call -- */

#define PUT(sb, x) tpj_eager_sig_put((sb), &(x), sizeof(x))

static void sig_view(tpj_eager_sig_t* sb, const tpj_eager_tensor_t* v) {
  PUT(sb, v->dtype);
  PUT(sb, v->rank);
  tpj_eager_sig_put(sb, v->sizes, sizeof(int64_t) * (size_t)v->rank);
  tpj_eager_sig_put(sb, v->strides, sizeof(int64_t) * (size_t)v->rank);
  PUT(sb, v->offset);
}

static void sig_arg(tpj_eager_sig_t* sb, const tpj_arg_t* a, bool lifted) {
  PUT(sb, a->kind);
  PUT(sb, lifted);
  if (lifted) return; /* a runtime input: its kind is the key, not its value */
  PUT(sb, a->count);
  switch (a->kind) {
    case TPJ_ARG_KIND_TENSOR: PUT(sb, a->tensor); break;
    case TPJ_ARG_KIND_INT: case TPJ_ARG_KIND_BOOL: case TPJ_ARG_KIND_DTYPE: PUT(sb, a->i); break;
    case TPJ_ARG_KIND_FLOAT: PUT(sb, a->f); break;
    case TPJ_ARG_KIND_INT_LIST: case TPJ_ARG_KIND_BOOL_LIST:
      tpj_eager_sig_put(sb, a->ints, a->count * sizeof(int64_t));
      break;
    case TPJ_ARG_KIND_FLOAT_LIST:
      tpj_eager_sig_put(sb, a->floats, a->count * sizeof(double));
      break;
    case TPJ_ARG_KIND_TENSOR_LIST:
      tpj_eager_sig_put(sb, a->tensors, a->count * sizeof(tpj_value_t));
      break;
    case TPJ_ARG_KIND_STRING:
      tpj_eager_sig_put(sb, a->str ? a->str : "", a->str ? strlen(a->str) : 0);
      PUT(sb, a->kind);
      break;
    default: break;
  }
}

void tpj_eager_sig_build(const tpj_eager_prog_t* p, tpj_eager_sig_t* sb) {
  const tpj_eager_op_t* op = p->op;
  const char* target = op->target ? op->target : "=";
  bool checks = tpj_eager_checks_enabled();
  tpj_eager_sig_put(sb, target, strlen(target) + 1);
  PUT(sb, checks);
  PUT(sb, op->num_args);
  for (size_t i = 0; i < op->num_args; ++i) sig_arg(sb, &op->args[i], p->lifted[i]);
  for (size_t i = 0; i < p->num_storages; ++i) {
    tpj_dtype_t dt = p->storages[i]->dtype;
    int64_t n = tpj_eager_storage_numel(p->storages[i], dt);
    PUT(sb, dt);
    PUT(sb, n);
  }
  PUT(sb, op->num_inputs);
  for (size_t i = 0; i < op->num_inputs; ++i) {
    PUT(sb, p->slot[i]);
    sig_view(sb, &op->inputs[i]);
  }
  PUT(sb, op->num_extra);
  for (size_t i = 0; i < op->num_extra; ++i) {
    tpj_dtype_t dt = tpj_buffer_dtype(op->extra_inputs[i]);
    size_t r = tpj_buffer_rank(op->extra_inputs[i]);
    PUT(sb, dt);
    PUT(sb, r);
    tpj_eager_sig_put(sb, tpj_buffer_dims(op->extra_inputs[i]), r * sizeof(int64_t));
  }
  PUT(sb, op->num_outs);
  for (size_t i = 0; i < op->num_outs; ++i) {
    const tpj_type_t* t = &op->out_types[i];
    PUT(sb, t->dtype);
    PUT(sb, t->rank);
    tpj_eager_sig_put(sb, t->dims, sizeof(int64_t) * (size_t)t->rank);
  }
  PUT(sb, p->dst_slot);
  if (p->dst) {
    PUT(sb, p->dst_flat_dtype);
    sig_view(sb, p->dst);
  }
}
