/* eager_scalar.c: small host values as program inputs. Baking a Python
 * scalar (Adam's per-step bias correction, a learning rate) into the program
 * as a constant would compile a new program per value, so scalars are rank-0
 * parameters; their device buffers are cached by value, and targets whose
 * lowering needs the value at build time are remembered here. Random ops'
 * u64[2] seeds are made here too. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "runtime/eager_internal.h"

struct tpj_eager_scalar_s {
  tpj_buffer_t* buffer; /* rank-0 [] of dtype on device */
  tpj_dtype_t dtype;
  size_t device;
  unsigned char bytes[16];
  int refs;             /* the cache's own reference included while cached */
};

#define NUM_SCALAR_SLOTS 256
#define NUM_NOLIFT_SLOTS 512
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static tpj_eager_scalar_t* g_slots[NUM_SCALAR_SLOTS];
static char* g_nolift[NUM_NOLIFT_SLOTS]; /* open addressing, never removed */

static void scalar_unref_locked(tpj_eager_scalar_t* s) {
  if (s && --s->refs == 0) {
    tpj_buffer_destroy(s->buffer);
    free(s);
  }
}

static size_t scalar_slot(tpj_dtype_t dtype, const void* bytes, size_t n, size_t device) {
  uint64_t h = tpj_hash_bytes(bytes, n, TPJ_HASH_SEED ^ ((uint64_t)dtype << 8) ^ device);
  return (size_t)(h % NUM_SCALAR_SLOTS);
}

tpj_status_t tpj_eager_scalar_get(tpj_dtype_t dtype, const void* bytes, size_t device,
                                  tpj_eager_scalar_t** out_scalar) {
  *out_scalar = NULL;
  size_t n = tpj_dtype_size(dtype);
  TPJ_CHECK_ARG(n > 0 && n <= 16 && bytes, "eager scalar: unsupported dtype %s",
                tpj_dtype_name(dtype));
  size_t slot = scalar_slot(dtype, bytes, n, device);
  pthread_mutex_lock(&g_lock);
  tpj_eager_scalar_t* s = g_slots[slot];
  if (s && s->dtype == dtype && s->device == device && memcmp(s->bytes, bytes, n) == 0) {
    ++s->refs;
    pthread_mutex_unlock(&g_lock);
    *out_scalar = s;
    return NULL;
  }
  pthread_mutex_unlock(&g_lock);
  s = calloc(1, sizeof(*s));
  if (!s) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager scalar: out of memory");
  TPJ_CHECK_ARG(tpj_eager_client(), "eager scalar: the device is not initialized");
  tpj_status_t st = tpj_buffer_from_host(tpj_eager_client(), bytes, dtype, NULL, 0, device,
                                         TPJ_HOST_SEMANTICS_COPY, &s->buffer);
  if (st) {
    free(s);
    return st;
  }
  s->dtype = dtype;
  s->device = device;
  memcpy(s->bytes, bytes, n);
  s->refs = 2; /* the caller's and the cache's */
  pthread_mutex_lock(&g_lock);
  scalar_unref_locked(g_slots[slot]);
  g_slots[slot] = s;
  pthread_mutex_unlock(&g_lock);
  *out_scalar = s;
  return NULL;
}

tpj_buffer_t* tpj_eager_scalar_buffer(const tpj_eager_scalar_t* s) { return s->buffer; }

void tpj_eager_scalar_release(tpj_eager_scalar_t* s) {
  if (!s) return;
  pthread_mutex_lock(&g_lock);
  scalar_unref_locked(s);
  pthread_mutex_unlock(&g_lock);
}

void tpj_eager_scalar_cache_clear(void) {
  pthread_mutex_lock(&g_lock);
  for (size_t i = 0; i < NUM_SCALAR_SLOTS; ++i) {
    scalar_unref_locked(g_slots[i]);
    g_slots[i] = NULL;
  }
  for (size_t i = 0; i < NUM_NOLIFT_SLOTS; ++i) {
    free(g_nolift[i]);
    g_nolift[i] = NULL;
  }
  pthread_mutex_unlock(&g_lock);
}

/* ---------------------------------------------------------- lift policy -- */

/* Targets whose scalar selects the algorithm or the output shape, and whose
 * lowering would take a tensor there without an error (so the retry below
 * would not catch it). */
static const char* const kNeverLift[] = {
    "aten::pow.Tensor_Scalar", /* x ** 2 is x * x */
    "aten::arange.", "aten::range.", "aten::linspace.", "aten::logspace.",
    "aten::scatter.value", "aten::scatter.value_reduce",
};

static size_t nolift_probe(const char* target) {
  return (size_t)(tpj_hash_bytes(target, strlen(target), TPJ_HASH_SEED) % NUM_NOLIFT_SLOTS);
}

bool tpj_eager_lift_allowed(const char* target) {
  if (!target) return false;
  for (size_t i = 0; i < sizeof(kNeverLift) / sizeof(kNeverLift[0]); ++i) {
    size_t n = strlen(kNeverLift[i]);
    bool prefix = kNeverLift[i][n - 1] == '.';
    if (prefix ? strncmp(target, kNeverLift[i], n) == 0 : strcmp(target, kNeverLift[i]) == 0)
      return false;
  }
  bool found = false;
  pthread_mutex_lock(&g_lock);
  for (size_t k = 0, i = nolift_probe(target); k < NUM_NOLIFT_SLOTS && g_nolift[i]; ++k) {
    if (strcmp(g_nolift[i], target) == 0) {
      found = true;
      break;
    }
    i = (i + 1) % NUM_NOLIFT_SLOTS;
  }
  pthread_mutex_unlock(&g_lock);
  return !found;
}

void tpj_eager_lift_forbid(const char* target) {
  char* copy = strdup(target);
  if (!copy) return; /* only an optimization is lost */
  pthread_mutex_lock(&g_lock);
  size_t i = nolift_probe(target), k = 0;
  for (; k < NUM_NOLIFT_SLOTS && g_nolift[i]; ++k) {
    if (strcmp(g_nolift[i], target) == 0) break;
    i = (i + 1) % NUM_NOLIFT_SLOTS;
  }
  if (k < NUM_NOLIFT_SLOTS && !g_nolift[i]) {
    g_nolift[i] = copy;
    copy = NULL;
  }
  pthread_mutex_unlock(&g_lock);
  free(copy);
}

tpj_dtype_t tpj_eager_lift_dtype(const tpj_arg_t* arg, const tpj_eager_op_t* op) {
  if (arg->kind == TPJ_ARG_KIND_INT) return TPJ_DTYPE_S64;
  tpj_dtype_t out = op->num_outs > 0 ? op->out_types[0].dtype : TPJ_DTYPE_INVALID;
  /* A Python float takes part as the default float unless the result is double. */
  return out == TPJ_DTYPE_F64 || out == TPJ_DTYPE_C128 ? TPJ_DTYPE_F64 : TPJ_DTYPE_F32;
}

tpj_status_t tpj_eager_seed_create(const uint64_t words[2], size_t device,
                                   tpj_buffer_t** out_buffer) {
  TPJ_CHECK_ARG(words && out_buffer, "eager seed: NULL argument");
  tpj_client_t* c = tpj_eager_client();
  if (!c) return TPJ_STATUS(FAILED_PRECONDITION, "eager seed: the device is not initialized");
  int64_t two = 2;
  return tpj_buffer_from_host(c, words, TPJ_DTYPE_U64, &two, 1, device,
                              TPJ_HOST_SEMANTICS_COPY, out_buffer);
}
