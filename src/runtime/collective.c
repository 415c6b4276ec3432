/* collective.c: tpj_collective_run (tpj/collective.h). One collective across
 * a client's local devices is a one-op StableHLO program compiled for that
 * many replicas and launched through tpj_program_run; programs are kept per
 * signature, so a repeated collective builds, emits and hashes no text. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/collective.h"
#include "tpj/emit.h"
#include "tpj/program.h"
#include "tpj/runtime.h"

#define TPJ_COLLECTIVE_OOM TPJ_STATUS(RESOURCE_EXHAUSTED, "collective: out of memory")

static const char* const kNames[] = {"all_reduce", "all_gather", "reduce_scatter", "all_to_all"};

/* ---------------------------------------------------------------- program -- */

/* The op's groups, or one group of every device (then *out_owned holds the
 * ids, freed by the caller). */
static tpj_status_t collective_groups(const tpj_collective_op_t* op, size_t num_devices,
                                      tpj_collective_groups_t* out, int64_t** out_owned) {
  memset(out, 0, sizeof(*out));
  *out_owned = NULL;
  if (!op->replica_groups && op->num_groups == 0 && op->group_size == 0) {
    int64_t* ids = (int64_t*)malloc(num_devices * sizeof(int64_t));
    if (!ids) return TPJ_COLLECTIVE_OOM;
    for (size_t d = 0; d < num_devices; ++d) ids[d] = (int64_t)d;
    *out = (tpj_collective_groups_t){.replica_groups = ids, .num_groups = 1,
                                     .group_size = num_devices};
    *out_owned = ids;
    return NULL;
  }
  *out = (tpj_collective_groups_t){.replica_groups = op->replica_groups,
                                   .num_groups = op->num_groups, .group_size = op->group_size};
  /* An empty layout is left to the builder, which names it. */
  bool empty = op->num_groups == 0 || op->group_size == 0;
  TPJ_CHECK_ARG(empty || (op->group_size <= num_devices && op->num_groups <= num_devices &&
                          op->num_groups * op->group_size == num_devices),
                "collective: replica_groups does not cover the devices (got %zu groups of %zu, "
                "expected %zu ids in all, one per device)", op->num_groups, op->group_size,
                num_devices);
  return NULL;
}

/* @main(x: type) -> op(x), on num_devices replicas. */
static tpj_status_t collective_build(tpj_graph_t* g, const tpj_collective_op_t* op,
                                     const tpj_collective_groups_t* cg, const tpj_type_t* type,
                                     size_t num_devices) {
  tpj_value_t x, y = TPJ_VALUE_NONE;
  TPJ_RETURN_IF_ERROR(tpj_graph_add_param(g, type, &x));
  tpj_status_t s = NULL;
  switch (op->kind) {
    case TPJ_COLLECTIVE_KIND_ALL_REDUCE:
      s = tpj_build_all_reduce_simple(g, x, op->reduce, cg, &y);
      break;
    case TPJ_COLLECTIVE_KIND_ALL_GATHER:
      s = tpj_build_all_gather(g, x, op->dim, cg, &y);
      break;
    case TPJ_COLLECTIVE_KIND_REDUCE_SCATTER:
      s = tpj_build_reduce_scatter_simple(g, x, op->reduce, op->dim, cg, &y);
      break;
    case TPJ_COLLECTIVE_KIND_ALL_TO_ALL:
      s = tpj_build_all_to_all(g, x, op->dim, op->concat_dim, (int64_t)cg->group_size, cg, &y);
      break;
    default:
      return TPJ_STATUS(INVALID_ARGUMENT, "collective: unknown kind (got %d, expected 0..3)",
                        (int)op->kind);
  }
  TPJ_RETURN_IF_ERROR(s);
  TPJ_RETURN_IF_ERROR(tpj_graph_set_results(g, &y, 1));
  char attr[64];
  snprintf(attr, sizeof(attr), "mhlo.num_replicas = %zu : i32", num_devices);
  TPJ_RETURN_IF_ERROR(tpj_graph_add_module_attr(g, attr));
  return tpj_graph_add_module_attr(g, "mhlo.num_partitions = 1 : i32");
}

static tpj_status_t collective_emit(const tpj_collective_op_t* op,
                                    const tpj_collective_groups_t* cg, const tpj_type_t* type,
                                    size_t num_devices, char** out_text, size_t* out_len) {
  tpj_graph_t* g = NULL;
  TPJ_RETURN_IF_ERROR(tpj_graph_create(&g));
  tpj_status_t s = collective_build(g, op, cg, type, num_devices);
  if (!s) s = tpj_emit_stablehlo(g, out_text, out_len);
  tpj_graph_destroy(g);
  return s;
}

tpj_status_t tpj_collective_program_text(const tpj_collective_op_t* op, const tpj_type_t* type,
                                         size_t num_devices, char** out_text, size_t* out_len) {
  TPJ_CHECK_ARG(op && type && out_text, "collective: NULL argument");
  TPJ_CHECK_ARG(num_devices >= 1, "collective: no devices (got 0, expected at least 1)");
  *out_text = NULL;
  tpj_collective_groups_t cg;
  int64_t* owned = NULL;
  tpj_status_t s = collective_groups(op, num_devices, &cg, &owned);
  size_t len = 0;
  if (!s) s = collective_emit(op, &cg, type, num_devices, out_text, &len);
  if (out_len) *out_len = len;
  free(owned);
  return s;
}

/* ------------------------------------------------------------------ cache -- */

typedef struct key_head_s {
  const tpj_client_t* client;
  int32_t kind, reduce;
  int64_t dim, concat_dim;
  tpj_type_t type; /* dims past the rank zeroed */
  uint64_t num_devices, num_groups, group_size;
} key_head_t;

typedef struct entry_s {
  uint64_t hash;
  char* key;
  size_t len;
  const tpj_client_t* client;
  tpj_program_t* program; /* one reference */
  struct entry_s* next;
} entry_t;

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t* g_entries;
static size_t g_num_entries;

/* The signature bytes of a call (malloc'd): only the fields the kind reads. */
static char* collective_key(const tpj_client_t* client, const tpj_collective_op_t* op,
                            const tpj_collective_groups_t* cg, const tpj_type_t* type,
                            size_t num_devices, size_t* out_len) {
  key_head_t h;
  memset(&h, 0, sizeof(h));
  h.client = client;
  h.kind = (int32_t)op->kind;
  bool reduces = op->kind == TPJ_COLLECTIVE_KIND_ALL_REDUCE ||
                 op->kind == TPJ_COLLECTIVE_KIND_REDUCE_SCATTER;
  h.reduce = reduces ? (int32_t)op->reduce : 0;
  h.dim = op->kind == TPJ_COLLECTIVE_KIND_ALL_REDUCE ? 0 : op->dim;
  h.concat_dim = op->kind == TPJ_COLLECTIVE_KIND_ALL_TO_ALL ? op->concat_dim : 0;
  h.type.dtype = type->dtype;
  h.type.rank = type->rank;
  memcpy(h.type.dims, type->dims, (size_t)type->rank * sizeof(int64_t));
  h.num_devices = num_devices;
  h.num_groups = cg->num_groups;
  h.group_size = cg->group_size;
  size_t ids = cg->num_groups * cg->group_size * sizeof(int64_t);
  char* key = (char*)malloc(sizeof(h) + ids);
  if (!key) return NULL;
  memcpy(key, &h, sizeof(h));
  memcpy(key + sizeof(h), cg->replica_groups, ids);
  *out_len = sizeof(h) + ids;
  return key;
}

/* A new reference to the program cached for key, or NULL. Under g_lock. */
static tpj_program_t* cache_find_locked(const char* key, size_t len, uint64_t hash) {
  for (entry_t* e = g_entries; e; e = e->next) {
    if (e->hash == hash && e->len == len && memcmp(e->key, key, len) == 0) {
      tpj_program_retain(e->program);
      return e->program;
    }
  }
  return NULL;
}

/* Caches `program` (the caller keeps its reference) unless another thread
 * cached one for key first; returns a new reference to the cached one. Takes
 * the key. Out of memory, nothing is cached and `program` comes back. */
static tpj_program_t* cache_put(char* key, size_t len, uint64_t hash, const tpj_client_t* client,
                                tpj_program_t* program) {
  pthread_mutex_lock(&g_lock);
  tpj_program_t* found = cache_find_locked(key, len, hash);
  entry_t* e = found ? NULL : (entry_t*)calloc(1, sizeof(*e));
  if (e) {
    *e = (entry_t){hash, key, len, client, program, g_entries};
    tpj_program_retain(program);
    g_entries = e;
    ++g_num_entries;
  }
  pthread_mutex_unlock(&g_lock);
  if (!e) free(key);
  if (!found) tpj_program_retain(program);
  return found ? found : program;
}

/* Drops the entries `client` names (every entry for NULL). */
static void cache_drop(const tpj_client_t* client) {
  entry_t* dropped = NULL;
  pthread_mutex_lock(&g_lock);
  for (entry_t** p = &g_entries; *p;) {
    entry_t* e = *p;
    if (client && e->client != client) {
      p = &e->next;
      continue;
    }
    *p = e->next;
    e->next = dropped;
    dropped = e;
    --g_num_entries;
  }
  pthread_mutex_unlock(&g_lock);
  while (dropped) { /* released outside the lock: a release may free an executable */
    entry_t* next = dropped->next;
    tpj_program_release(dropped->program);
    free(dropped->key);
    free(dropped);
    dropped = next;
  }
}

void tpj_collective_cache_evict_client(const tpj_client_t* client) {
  if (client) cache_drop(client);
}

void tpj_collective_cache_clear(void) { cache_drop(NULL); }

size_t tpj_collective_cache_size(void) {
  pthread_mutex_lock(&g_lock);
  size_t n = g_num_entries;
  pthread_mutex_unlock(&g_lock);
  return n;
}

/* ---------------------------------------------------------------- running -- */

/* Builds, compiles (compile cache) and wraps the program of a signature. */
static tpj_status_t collective_compile(tpj_client_t* client, const tpj_collective_op_t* op,
                                       const tpj_collective_groups_t* cg, const tpj_type_t* type,
                                       size_t num_devices, tpj_program_t** out_program) {
  char* text = NULL;
  size_t len = 0;
  TPJ_RETURN_IF_ERROR(collective_emit(op, cg, type, num_devices, &text, &len));
  tpj_compile_options_t options = {.num_replicas = (int)num_devices, .num_partitions = 1};
  tpj_cached_executable_t* exe = NULL;
  tpj_status_t s = tpj_runtime_compile_cached(client, text, len, &options, &exe, NULL);
  free(text);
  if (s) {
    return tpj_status_annotate(s, "collective %s on %zu devices", kNames[op->kind],
                               num_devices);
  }
  tpj_program_input_t input = {.kind = TPJ_PROGRAM_INPUT_BUFFER};
  tpj_program_plan_t plan = {.name = kNames[op->kind], .inputs = &input, .num_inputs = 1};
  s = tpj_program_create(exe, &plan, out_program);
  tpj_cached_executable_release(exe);
  return s;
}

/* The cached program of the call's signature, made on a miss. */
static tpj_status_t collective_program(tpj_client_t* client, const tpj_collective_op_t* op,
                                       const tpj_type_t* type, size_t num_devices,
                                       tpj_program_t** out_program) {
  tpj_collective_groups_t cg;
  int64_t* owned = NULL;
  TPJ_RETURN_IF_ERROR(collective_groups(op, num_devices, &cg, &owned));
  size_t len = 0;
  char* key = collective_key(client, op, &cg, type, num_devices, &len);
  tpj_status_t s = key ? NULL : TPJ_COLLECTIVE_OOM;
  uint64_t hash = key ? tpj_hash_bytes(key, len, TPJ_HASH_SEED) : 0;
  if (!s) {
    pthread_mutex_lock(&g_lock);
    *out_program = cache_find_locked(key, len, hash);
    pthread_mutex_unlock(&g_lock);
  }
  if (!s && !*out_program) {
    tpj_program_t* made = NULL;
    s = collective_compile(client, op, &cg, type, num_devices, &made);
    if (!s) {
      *out_program = cache_put(key, len, hash, client, made);
      key = NULL; /* taken */
      tpj_program_release(made);
    }
  }
  free(key);
  free(owned);
  return s;
}

/* The operand type all buffers share; buffer d must be on device d. */
static tpj_status_t collective_operand_type(tpj_buffer_t* const* buffers, size_t num_devices,
                                            tpj_type_t* out_type) {
  for (size_t d = 0; d < num_devices; ++d) {
    TPJ_CHECK_ARG(buffers[d], "collective: buffer %zu is NULL", d);
    size_t on = tpj_buffer_device_index(buffers[d]);
    TPJ_CHECK_ARG(on == d, "collective: buffer %zu is on device %zu (expected device %zu)", d, on,
                  d);
    tpj_type_t t;
    TPJ_RETURN_IF_ERROR(tpj_status_annotate(tpj_type_init(tpj_buffer_dtype(buffers[d]),
                                                          tpj_buffer_dims(buffers[d]),
                                                          tpj_buffer_rank(buffers[d]), &t),
                                            "collective: buffer %zu", d));
    if (d == 0) *out_type = t;
    if (!tpj_type_equal(&t, out_type)) {
      char a[96], b[96];
      tpj_type_format(&t, a, sizeof(a));
      tpj_type_format(out_type, b, sizeof(b));
      return TPJ_STATUS(INVALID_ARGUMENT, "collective: buffer %zu has another type than buffer 0 "
                        "(got %s, expected %s)", d, a, b);
    }
  }
  return NULL;
}

static tpj_status_t collective_launch(const tpj_program_t* p, tpj_buffer_t* const* buffers,
                                      size_t num_devices, bool wait, tpj_buffer_t** out_buffers) {
  tpj_program_arg_t* args = (tpj_program_arg_t*)calloc(num_devices, sizeof(*args));
  tpj_program_result_t* res = (tpj_program_result_t*)calloc(num_devices, sizeof(*res));
  tpj_status_t s = args && res ? NULL : TPJ_COLLECTIVE_OOM;
  for (size_t d = 0; d < num_devices && !s; ++d) args[d].buffer = buffers[d];
  if (!s) {
    tpj_program_call_t call = {.args = args, .num_devices = num_devices, .device = 0,
                               .results = res, .wait = wait};
    s = tpj_program_run(p, &call);
  }
  for (size_t d = 0; d < num_devices && !s; ++d) out_buffers[d] = res[d].buffer;
  free(args);
  free(res);
  return s;
}

tpj_status_t tpj_collective_run(tpj_client_t* client, const tpj_collective_op_t* op,
                                tpj_buffer_t* const* buffers, size_t num_devices, bool wait,
                                tpj_buffer_t** out_buffers) {
  TPJ_CHECK_ARG(client && op && buffers && out_buffers, "collective: NULL argument");
  size_t have = tpj_client_addressable_device_count(client);
  TPJ_CHECK_ARG(num_devices >= 1 && num_devices <= have,
                "collective: device count out of range (got %zu, expected 1..%zu)", num_devices,
                have);
  for (size_t d = 0; d < num_devices; ++d) out_buffers[d] = NULL;
  TPJ_CHECK_ARG((int)op->kind >= 0 && op->kind <= TPJ_COLLECTIVE_KIND_ALL_TO_ALL,
                "collective: unknown kind (got %d, expected 0..3)", (int)op->kind);
  tpj_type_t type;
  TPJ_RETURN_IF_ERROR(collective_operand_type(buffers, num_devices, &type));
  tpj_program_t* p = NULL;
  TPJ_RETURN_IF_ERROR(collective_program(client, op, &type, num_devices, &p));
  tpj_status_t s = collective_launch(p, buffers, num_devices, wait, out_buffers);
  tpj_program_release(p);
  return s;
}
