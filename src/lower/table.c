/* The lowering table: ops.inc expanded into an enum, a name table and a
 * dispatch table, plus the one entry point (tpj_lower_call) that finds a
 * lowering by overload name, runs it and checks its results against the
 * expected output types, so a lowering bug is an error and never a wrong answer. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "lower/lower_families.h"
#include "tpj/lower.h"

typedef enum tpj_lower_op_e {
#define TPJ_OP(suffix, name, fn) TPJ_LOWER_OP_##suffix,
#include "lower/ops.inc"
#undef TPJ_OP
  TPJ_LOWER_OP_COUNT_
} tpj_lower_op_t;

/* One extra slot keeps the arrays non-empty while the table has no rows. */
static const char* const tpj_lower_names[TPJ_LOWER_OP_COUNT_ + 1] = {
#define TPJ_OP(suffix, name, fn) name,
#include "lower/ops.inc"
#undef TPJ_OP
    NULL,
};

static const tpj_lower_fn tpj_lower_fns[TPJ_LOWER_OP_COUNT_ + 1] = {
#define TPJ_OP(suffix, name, fn) fn,
#include "lower/ops.inc"
#undef TPJ_OP
    NULL,
};

_Static_assert(sizeof(tpj_lower_names) / sizeof(tpj_lower_names[0]) ==
                   (size_t)TPJ_LOWER_OP_COUNT_ + 1,
               "name table must have one entry per op");
_Static_assert(sizeof(tpj_lower_fns) / sizeof(tpj_lower_fns[0]) ==
                   (size_t)TPJ_LOWER_OP_COUNT_ + 1,
               "function table must have one entry per op");

/* ---------------------------------------------------------------- lookup -- */

/* Op indices sorted by name, built once. */
static int32_t tpj_lower_sorted[TPJ_LOWER_OP_COUNT_ + 1];
static pthread_once_t tpj_lower_sorted_once = PTHREAD_ONCE_INIT;

static int tpj_lower_cmp_index(const void* a, const void* b) {
  return strcmp(tpj_lower_names[*(const int32_t*)a], tpj_lower_names[*(const int32_t*)b]);
}

static void tpj_lower_build_index(void) {
  for (int32_t i = 0; i < (int32_t)TPJ_LOWER_OP_COUNT_; ++i) tpj_lower_sorted[i] = i;
  qsort(tpj_lower_sorted, (size_t)TPJ_LOWER_OP_COUNT_, sizeof(int32_t),
        tpj_lower_cmp_index);
}

static int tpj_lower_cmp_key(const void* key, const void* elem) {
  return strcmp((const char*)key, tpj_lower_names[*(const int32_t*)elem]);
}

/* Index of the op named `target`, or -1. */
static int32_t tpj_lower_find(const char* target) {
  if (!target || TPJ_LOWER_OP_COUNT_ == 0) return -1;
  pthread_once(&tpj_lower_sorted_once, tpj_lower_build_index);
  const int32_t* hit = (const int32_t*)bsearch(target, tpj_lower_sorted,
                                               (size_t)TPJ_LOWER_OP_COUNT_,
                                               sizeof(int32_t), tpj_lower_cmp_key);
  return hit ? *hit : -1;
}

/* ------------------------------------------------------------- disabling -- */

static atomic_bool tpj_lower_disabled[TPJ_LOWER_OP_COUNT_ + 1];
static atomic_int tpj_lower_num_disabled; /* fast path: 0 on every normal run */

static bool tpj_lower_op_disabled(int32_t op) {
  return atomic_load_explicit(&tpj_lower_num_disabled, memory_order_relaxed) > 0 &&
         atomic_load(&tpj_lower_disabled[op]);
}

static _Atomic uint64_t tpj_lower_disabled_changes;

tpj_status_t tpj_lower_op_set_disabled(const char* target, bool disabled) {
  int32_t op = tpj_lower_find(target);
  if (op < 0)
    return TPJ_STATUS(NOT_FOUND, "disable lowering: no lowering for %s",
                      target ? target : "(null)");
  if (atomic_exchange(&tpj_lower_disabled[op], disabled) != disabled) {
    atomic_fetch_add(&tpj_lower_num_disabled, disabled ? 1 : -1);
    atomic_fetch_add(&tpj_lower_disabled_changes, 1);
  }
  return NULL;
}

uint64_t tpj_lower_disabled_generation(void) { return atomic_load(&tpj_lower_disabled_changes); }

bool tpj_lower_is_supported(const char* target) {
  int32_t op = tpj_lower_find(target);
  return op >= 0 && !tpj_lower_op_disabled(op);
}

size_t tpj_lower_op_count(void) { return (size_t)TPJ_LOWER_OP_COUNT_; }

const char* tpj_lower_op_name(size_t index) {
  return index < tpj_lower_op_count() ? tpj_lower_names[index] : NULL;
}

/* ------------------------------------------------------------------ call -- */

/* Marks an output slot the lowering has not written. */
#define TPJ_LOWER_UNWRITTEN ((tpj_value_t)-2)

/* Checks one produced value against the expected type. */
static tpj_status_t tpj_lower_check_out(const tpj_graph_t* g, const tpj_lower_call_t* call,
                                        size_t i, tpj_value_t v) {
  const tpj_type_t* want = &call->out_types[i];
  if (v == TPJ_LOWER_UNWRITTEN)
    return TPJ_STATUS(INTERNAL, "%s: lowering did not write output %zu", call->target, i);
  if (want->dtype == TPJ_DTYPE_INVALID) {
    if (v != TPJ_VALUE_NONE)
      return TPJ_STATUS(INTERNAL,
                        "%s: output %zu: expected None (dtype invalid), got value %d",
                        call->target, i, (int)v);
    return NULL;
  }
  char wbuf[128], gbuf[128];
  tpj_type_format(want, wbuf, sizeof(wbuf));
  if (v == TPJ_VALUE_NONE)
    return TPJ_STATUS(INTERNAL, "%s: output %zu: type mismatch (got None, expected %s)",
                      call->target, i, wbuf);
  const tpj_type_t* got = tpj_graph_value_type(g, v);
  if (!got)
    return TPJ_STATUS(INTERNAL, "%s: output %zu: not a value of the graph (got id %d)",
                      call->target, i, (int)v);
  if (!tpj_type_equal(got, want)) {
    tpj_type_format(got, gbuf, sizeof(gbuf));
    return TPJ_STATUS(INTERNAL, "%s: output %zu: type mismatch (got %s, expected %s)",
                      call->target, i, gbuf, wbuf);
  }
  return NULL;
}

/* Prefixes the target unless the message already names it. */
static tpj_status_t tpj_lower_annotate(tpj_status_t s, const char* target) {
  if (!s || strstr(tpj_status_message(s), target)) return s;
  return tpj_status_annotate(s, "%s", target);
}

tpj_status_t tpj_lower_call(tpj_graph_t* g, const tpj_lower_call_t* call,
                            tpj_value_t* out_values) {
  TPJ_CHECK_ARG(g && call && call->target, "lower call: graph, call and target are required");
  TPJ_CHECK_ARG(call->num_args == 0 || call->args,
                "%s: args is NULL (got num_args %zu)", call->target, call->num_args);
  TPJ_CHECK_ARG(call->num_outs == 0 || (call->out_types && out_values),
                "%s: out_types and out_values are required (got num_outs %zu)",
                call->target, call->num_outs);
  int32_t op = tpj_lower_find(call->target);
  if (op < 0) return TPJ_STATUS(NOT_FOUND, "no lowering for %s", call->target);
  if (tpj_lower_op_disabled(op))
    return TPJ_STATUS(UNIMPLEMENTED, "%s: lowering disabled (torch_pjrt.config.disabled_ops)",
                      call->target);
  for (size_t i = 0; i < call->num_outs; ++i) out_values[i] = TPJ_LOWER_UNWRITTEN;
  tpj_status_t s = tpj_lower_fns[op](g, call, out_values);
  if (!s) {
    for (size_t i = 0; i < call->num_outs && !s; ++i)
      s = tpj_lower_check_out(g, call, i, out_values[i]);
  }
  if (s) {
    for (size_t i = 0; i < call->num_outs; ++i) out_values[i] = TPJ_VALUE_NONE;
  }
  return tpj_lower_annotate(s, call->target);
}
