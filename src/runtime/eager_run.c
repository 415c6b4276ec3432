/* eager_run.c: runs one eager op as a one-op StableHLO program. The call's
 * signature is looked up first (no text is built on a hit); a miss builds the
 * program (view reads, the lowering, an optional write-back into a view),
 * emits it and compiles it through the runtime compile cache. A never-written
 * storage an op reads gets its zeros here, from a program on the device. */
#include <stdlib.h>
#include <string.h>

#include "runtime/eager_cache.h"
#include "runtime/eager_prog.h"
#include "runtime/eager_checks.h"
#include "runtime/eager_internal.h"
#include "tpj/emit.h"
#include "tpj/program.h"
#include "tpj/runtime.h"

typedef tpj_eager_prog_t prog_t;
#define PROG_INLINE TPJ_EAGER_PROG_INLINE

static size_t slot_of(prog_t* p, tpj_eager_storage_t* s) {
  for (size_t i = 0; i < p->num_storages; ++i) {
    if (p->storages[i] == s) return i;
  }
  p->storages[p->num_storages] = s;
  return p->num_storages++;
}

/* Gives a never-written storage its zeros, made by a program on the device
 * (no host transfer). */
static tpj_status_t storage_zeros(tpj_eager_storage_t* s, tpj_dtype_t dtype) {
  int64_t n = tpj_eager_storage_numel(s, dtype);
  tpj_arg_t args[5] = {{.kind = TPJ_ARG_KIND_INT_LIST, .ints = &n, .count = 1}};
  for (int i = 1; i < 5; ++i) args[i].kind = TPJ_ARG_KIND_NONE;
  tpj_type_t t = {.dtype = dtype, .rank = 1, .dims = {n}};
  tpj_eager_op_t op = {.target = "aten::zeros.default", .args = args, .num_args = 5,
                       .out_types = &t, .num_outs = 1, .device = s->device};
  tpj_buffer_t* b = NULL;
  TPJ_RETURN_IF_ERROR(tpj_eager_op_run(&op, &b));
  tpj_eager_storage_replace(s, b, dtype);
  return NULL;
}

/* Makes sure the storage has a buffer whose element size is dtype's: a
 * storage never written gets zeros of `dtype` on the device (through the host
 * only if the program fails); one kept with another element size is re-read
 * through the host as `dtype`. */
static tpj_status_t storage_ensure(tpj_eager_storage_t* s, tpj_dtype_t dtype) {
  if (!s->buffer) {
    tpj_status_t z = storage_zeros(s, dtype);
    if (!z || tpj_status_code(z) == TPJ_STATUS_RESOURCE_EXHAUSTED) return z;
    tpj_status_free(z);
  } else if (tpj_dtype_size(s->dtype) == tpj_dtype_size(dtype)) {
    return NULL;
  }
  return tpj_eager_storage_retype(s, dtype);
}

tpj_status_t tpj_eager_storage_buffer(tpj_eager_storage_t* s, tpj_dtype_t dtype,
                                      tpj_buffer_t** out_buffer) {
  TPJ_CHECK_ARG(s && out_buffer, "eager storage buffer: NULL argument");
  *out_buffer = NULL;
  TPJ_CHECK_ARG(tpj_dtype_size(dtype) > 0, "eager storage buffer: bad dtype (got %d)",
                (int)dtype);
  if (!s->buffer) TPJ_RETURN_IF_ERROR(storage_ensure(s, dtype));
  if (s->dtype == dtype) *out_buffer = s->buffer;
  return NULL;
}

static tpj_status_t prog_init(prog_t* p, const tpj_eager_op_t* op, const tpj_eager_tensor_t* dst) {
  memset(p, 0, sizeof(*p));
  p->op = op;
  p->dst = dst;
  p->dst_slot = -1;
  size_t n = op->num_inputs + 1;
  bool small = n <= PROG_INLINE && op->num_args + 1 <= PROG_INLINE;
  p->storages = small ? p->storages_inline : calloc(n, sizeof(*p->storages));
  p->slot = small ? p->slot_inline : calloc(n, sizeof(*p->slot));
  p->lifted = small ? p->lifted_inline : calloc(op->num_args + 1, sizeof(*p->lifted));
  if (!p->storages || !p->slot || !p->lifted) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager op: out of memory");
  for (size_t i = 0; i < op->num_inputs; ++i) {
    const tpj_eager_tensor_t* v = &op->inputs[i];
    if (v->host_scalar) {
      TPJ_CHECK_ARG(v->rank == 0 && tpj_dtype_size(v->dtype) > 0,
                    "eager op %s: host scalar input %zu must have rank 0 (got %d)",
                    op->target ? op->target : "copy", i, (int)v->rank);
      p->slot[i] = (size_t)-1;
      ++p->num_scalars;
      continue;
    }
    TPJ_CHECK_ARG(v->storage, "eager op %s: input %zu has no storage",
                  op->target ? op->target : "copy", i);
    TPJ_RETURN_IF_ERROR(storage_ensure(v->storage, v->dtype));
    p->slot[i] = slot_of(p, v->storage);
  }
  if (dst) {
    if (tpj_eager_view_covers_storage(dst)) {
      p->dst_flat_dtype = dst->dtype;
    } else {
      TPJ_RETURN_IF_ERROR(storage_ensure(dst->storage, dst->dtype));
      p->dst_slot = (long)slot_of(p, dst->storage);
      p->dst_flat_dtype = dst->storage->dtype;
    }
  }
  return NULL;
}

/* Marks the liftable INT/FLOAT arguments as runtime inputs (or, with
 * `lift` false, none of them). */
static void prog_lift(prog_t* p, bool lift) {
  const tpj_eager_op_t* op = p->op;
  lift = lift && op->liftable && tpj_eager_lift_allowed(op->target);
  for (size_t i = 0; i < op->num_args; ++i) {
    tpj_arg_kind_t k = op->args[i].kind;
    bool l = lift && op->liftable[i] && (k == TPJ_ARG_KIND_INT || k == TPJ_ARG_KIND_FLOAT);
    if (l != p->lifted[i]) p->num_scalars += l ? 1 : (size_t)-1;
    p->lifted[i] = l;
  }
}

static size_t prog_num_lifted(const prog_t* p) {
  size_t n = 0;
  for (size_t i = 0; i < p->op->num_args; ++i) n += p->lifted[i];
  return n;
}

static void prog_deinit(prog_t* p) {
  if (p->storages != p->storages_inline) free(p->storages);
  if (p->slot != p->slot_inline) free(p->slot);
  if (p->lifted != p->lifted_inline) free(p->lifted);
}

/* ----------------------------------------------------------------- build -- */

/* Copies the call's arguments with input indices replaced by graph values.
 * Tensor lists get arrays from `arena`. */
static tpj_status_t remap_args(const prog_t* p, const tpj_value_t* vals, size_t nvals,
                               const tpj_value_t* lvals, tpj_arena_t* arena,
                               tpj_arg_t** out_args) {
  const tpj_eager_op_t* op = p->op;
  tpj_arg_t* args = tpj_arena_alloc(arena, (op->num_args + 1) * sizeof(tpj_arg_t));
  if (!args) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager op %s: out of memory", op->target);
  for (size_t i = 0; i < op->num_args; ++i) {
    args[i] = op->args[i];
    if (p->lifted[i]) {
      memset(&args[i], 0, sizeof(args[i]));
      args[i].kind = TPJ_ARG_KIND_TENSOR;
      args[i].tensor = lvals[i];
    } else if (args[i].kind == TPJ_ARG_KIND_TENSOR && args[i].tensor != TPJ_VALUE_NONE) {
      TPJ_CHECK_ARG((size_t)args[i].tensor < nvals, "eager op %s: argument %zu refers to input "
                    "%d (got %zu inputs)", op->target, i, (int)args[i].tensor, nvals);
      args[i].tensor = vals[args[i].tensor];
    } else if (args[i].kind == TPJ_ARG_KIND_TENSOR_LIST) {
      tpj_value_t* list = tpj_arena_alloc(arena, (args[i].count + 1) * sizeof(tpj_value_t));
      if (!list) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager op %s: out of memory", op->target);
      for (size_t k = 0; k < args[i].count; ++k) {
        tpj_value_t idx = op->args[i].tensors[k];
        TPJ_CHECK_ARG(idx == TPJ_VALUE_NONE || (size_t)idx < nvals,
                      "eager op %s: argument %zu refers to input %d", op->target, i, (int)idx);
        list[k] = idx == TPJ_VALUE_NONE ? TPJ_VALUE_NONE : vals[idx];
      }
      args[i].tensors = list;
    }
  }
  *out_args = args;
  return NULL;
}

/* Params and view reads: vals[i] for inputs, then extras; lvals[i] for the
 * lifted arguments. Parameter order: storages, extras, host scalars, lifted
 * arguments (prog_execute passes them in that order). */
static tpj_status_t build_inputs(const prog_t* p, tpj_graph_t* g, tpj_value_t* pvals,
                                 tpj_value_t* vals, tpj_value_t* lvals) {
  const tpj_eager_op_t* op = p->op;
  for (size_t i = 0; i < p->num_storages; ++i) {
    tpj_dtype_t dt = p->storages[i]->dtype;
    int64_t n = tpj_eager_storage_numel(p->storages[i], dt);
    tpj_type_t t;
    TPJ_RETURN_IF_ERROR(tpj_type_init(dt, &n, 1, &t));
    TPJ_RETURN_IF_ERROR(tpj_graph_add_param(g, &t, &pvals[i]));
  }
  for (size_t i = 0; i < op->num_extra; ++i) {
    tpj_buffer_t* b = op->extra_inputs[i];
    tpj_type_t t;
    TPJ_RETURN_IF_ERROR(tpj_type_init(tpj_buffer_dtype(b), tpj_buffer_dims(b),
                                      tpj_buffer_rank(b), &t));
    TPJ_RETURN_IF_ERROR(tpj_graph_add_param(g, &t, &vals[op->num_inputs + i]));
  }
  for (size_t i = 0; i < op->num_inputs; ++i) {
    if (!op->inputs[i].host_scalar) continue;
    tpj_type_t t = tpj_type_scalar(op->inputs[i].dtype);
    TPJ_RETURN_IF_ERROR(tpj_graph_add_param(g, &t, &vals[i]));
  }
  for (size_t i = 0; i < op->num_args; ++i) {
    if (!p->lifted[i]) continue;
    tpj_type_t t = tpj_type_scalar(tpj_eager_lift_dtype(&op->args[i], op));
    TPJ_RETURN_IF_ERROR(tpj_graph_add_param(g, &t, &lvals[i]));
  }
  for (size_t i = 0; i < op->num_inputs; ++i) {
    const tpj_eager_tensor_t* v = &op->inputs[i];
    if (v->host_scalar) continue;
    TPJ_RETURN_IF_ERROR(tpj_eager_view_read(g, pvals[p->slot[i]], v, &vals[i]));
  }
  return NULL;
}

static tpj_status_t build_body(const prog_t* p, tpj_graph_t* g, const tpj_value_t* vals,
                               const tpj_value_t* lvals, tpj_arena_t* arena, tpj_value_t* outs) {
  const tpj_eager_op_t* op = p->op;
  size_t nvals = op->num_inputs + op->num_extra;
  if (!op->target) {
    TPJ_CHECK_ARG(nvals >= 1 && op->num_outs == 1, "eager copy: expected one input and output");
    const tpj_type_t* t = tpj_graph_value_type(g, vals[0]);
    TPJ_CHECK_ARG(tpj_type_numel(t) == tpj_type_numel(&op->out_types[0]),
                  "eager copy: element counts differ (got %lld, expected %lld)",
                  (long long)tpj_type_numel(t), (long long)tpj_type_numel(&op->out_types[0]));
    tpj_value_t x = vals[0];
    if (t->dtype != op->out_types[0].dtype) {
      TPJ_RETURN_IF_ERROR(tpj_build_convert(g, x, op->out_types[0].dtype, &x));
    }
    return tpj_build_reshape(g, x, op->out_types[0].dims, (size_t)op->out_types[0].rank, &outs[0]);
  }
  tpj_arg_t* args = NULL;
  TPJ_RETURN_IF_ERROR(remap_args(p, vals, nvals, lvals, arena, &args));
  tpj_lower_call_t call = {op->target, args, op->num_args, op->out_types, op->num_outs};
  return tpj_lower_call(g, &call, outs);
}

static tpj_status_t build_results(const prog_t* p, tpj_graph_t* g, const tpj_value_t* pvals,
                                  tpj_value_t* outs, size_t* out_count) {
  const tpj_eager_op_t* op = p->op;
  if (p->dst) {
    tpj_value_t x = outs[0], flat = p->dst_slot >= 0 ? pvals[p->dst_slot] : TPJ_VALUE_NONE;
    if (tpj_graph_value_type(g, x)->dtype != p->dst->dtype) {
      TPJ_RETURN_IF_ERROR(tpj_build_convert(g, x, p->dst->dtype, &x));
    }
    int64_t n = tpj_eager_storage_numel(p->dst->storage, p->dst_flat_dtype);
    TPJ_RETURN_IF_ERROR(tpj_eager_view_write(g, flat, n, p->dst_flat_dtype, p->dst, x, &outs[0]));
    *out_count = 1;
    return tpj_graph_set_results(g, outs, 1);
  }
  size_t k = 0;
  for (size_t i = 0; i < op->num_outs; ++i) {
    if (op->out_types[i].dtype == TPJ_DTYPE_INVALID) continue;
    int64_t n = tpj_type_numel(&op->out_types[i]);
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, outs[i], &n, 1, &outs[k]));
    ++k;
  }
  *out_count = k;
  return tpj_graph_set_results(g, outs, k);
}

/* The op's graph: parameters, view reads, the lowering, the results. */
static tpj_status_t build_graph(const prog_t* p, tpj_graph_t** out_graph) {
  const tpj_eager_op_t* op = p->op;
  TPJ_RETURN_IF_ERROR(tpj_graph_create(out_graph));
  tpj_graph_t* g = *out_graph;
  tpj_graph_set_checks_enabled(g, tpj_eager_checks_enabled());
  tpj_arena_t arena;
  tpj_arena_init(&arena, 4096);
  size_t nv = op->num_inputs + op->num_extra + 1, nres = 0;
  tpj_value_t* pvals = tpj_arena_alloc(&arena, (p->num_storages + 1) * sizeof(tpj_value_t));
  tpj_value_t* vals = tpj_arena_alloc(&arena, nv * sizeof(tpj_value_t));
  tpj_value_t* outs = tpj_arena_alloc(&arena, (op->num_outs + 1) * sizeof(tpj_value_t));
  tpj_value_t* lvals = tpj_arena_alloc(&arena, (op->num_args + 1) * sizeof(tpj_value_t));
  tpj_status_t st = (pvals && vals && outs && lvals) ? NULL
                    : TPJ_STATUS(RESOURCE_EXHAUSTED, "eager op: out of memory");
  if (!st) st = build_inputs(p, g, pvals, vals, lvals);
  if (!st) st = build_body(p, g, vals, lvals, &arena, outs);
  if (!st) st = build_results(p, g, pvals, outs, &nres);
  tpj_arena_deinit(&arena);
  return st;
}

/* The program of a compiled op: every parameter is a buffer the call passes
 * (storages, extras, scalars: prog_execute's order), and g's checks. */
static tpj_status_t make_program(const prog_t* p, tpj_cached_executable_t* exe,
                                 const tpj_graph_t* g, tpj_program_t** out_program) {
  size_t n = p->num_storages + p->op->num_extra + p->num_scalars;
  size_t nc = tpj_graph_check_count(g);
  tpj_program_input_t* inputs = calloc(n + 1, sizeof(*inputs)); /* all BUFFER */
  if (!inputs) return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager op: out of memory");
  tpj_program_plan_t plan = {p->op->target ? p->op->target : "copy", inputs, n,
                             nc ? tpj_graph_check(g, 0) : NULL, nc};
  tpj_status_t st = tpj_program_create(exe, &plan, out_program);
  free(inputs);
  return st;
}

/* Builds, emits and compiles the op's program (a signature miss). */
static tpj_status_t build_program(const prog_t* p, tpj_program_t** out_program) {
  tpj_graph_t* g = NULL;
  char* text = NULL;
  size_t len = 0;
  tpj_status_t st = build_graph(p, &g);
  if (!st) st = tpj_emit_stablehlo(g, &text, &len);
  /* Portable: one executable serves every device (tpj_execute_args_t.device). */
  tpj_compile_options_t portable = {.num_replicas = 1, .num_partitions = 1, .portable = true};
  tpj_cached_executable_t* exe = NULL;
  bool compiling = !st;
  if (compiling) st = tpj_runtime_compile_cached(tpj_eager_client(), text, len, &portable, &exe, NULL);
  st = tpj_eager_status_no_lowering(st, compiling);
  if (!st) st = make_program(p, exe, g, out_program);
  tpj_cached_executable_release(exe);
  free(text);
  tpj_graph_destroy(g);
  return st;
}

/* --------------------------------------------------------------- execute -- */

static tpj_status_t prog_lookup_or_build(const prog_t* p, tpj_program_t** out_program) {
  tpj_eager_sig_t sb;
  tpj_eager_sig_init(&sb);
  tpj_eager_sig_build(p, &sb);
  if (sb.oom) {
    tpj_eager_sig_deinit(&sb);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "eager op: out of memory (signature)");
  }
  uint64_t h = tpj_eager_sig_hash(&sb);
  *out_program = tpj_eager_cache_find(sb.data, sb.len, h);
  bool hit = *out_program != NULL;
  tpj_eager_stats_count(hit ? 1 : 2);
  tpj_status_t st = hit ? NULL : build_program(p, out_program);
  if (!st && !hit) tpj_eager_cache_put(sb.data, sb.len, h, *out_program);
  tpj_eager_sig_deinit(&sb);
  return st;
}

/* With lifted scalars first; a lowering that needs a value at build time
 * fails there, and then the target keeps its scalars as constants. */
static tpj_status_t prog_program(prog_t* p, tpj_program_t** out_program) {
  prog_lift(p, true);
  tpj_status_t st = prog_lookup_or_build(p, out_program);
  tpj_status_code_t code = tpj_status_code(st);
  if (!st || prog_num_lifted(p) == 0 ||
      (code != TPJ_STATUS_UNIMPLEMENTED && code != TPJ_STATUS_INVALID_ARGUMENT)) {
    return st; /* out of memory, a plugin failure: not the lifted scalars' fault */
  }
  tpj_status_free(st);
  prog_lift(p, false);
  st = prog_lookup_or_build(p, out_program);
  if (!st) tpj_eager_lift_forbid(p->op->target);
  return st;
}

/* Moves a buffer to `device` when it lives elsewhere; *moved gets the copy
 * (counted in tpj_eager_stats_t.cross_device_copies). */
static tpj_status_t on_device(tpj_buffer_t* b, size_t device, tpj_buffer_t** moved) {
  *moved = NULL;
  if (tpj_buffer_device_index(b) == device) return NULL;
  tpj_eager_stats_count(3);
  return tpj_buffer_copy_to_device(b, device, moved);
}

/* The scalar runtime inputs on `device`, in parameter order (host scalars,
 * then lifted arguments). */
static tpj_status_t prog_scalars(const prog_t* p, size_t device, tpj_eager_scalar_t** out) {
  const tpj_eager_op_t* op = p->op;
  size_t k = 0;
  for (size_t i = 0; i < op->num_inputs; ++i) {
    if (!op->inputs[i].host_scalar) continue;
    TPJ_RETURN_IF_ERROR(tpj_eager_scalar_get(op->inputs[i].dtype, op->inputs[i].host_scalar,
                                             device, &out[k++]));
  }
  for (size_t i = 0; i < op->num_args; ++i) {
    if (!p->lifted[i]) continue;
    const tpj_arg_t* a = &op->args[i];
    tpj_dtype_t dt = tpj_eager_lift_dtype(a, op);
    int64_t iv = a->i;
    double dv = a->kind == TPJ_ARG_KIND_FLOAT ? a->f : (double)a->i;
    float fv = (float)dv;
    const void* bytes = dt == TPJ_DTYPE_S64 ? (const void*)&iv
                        : dt == TPJ_DTYPE_F64 ? (const void*)&dv : (const void*)&fv;
    TPJ_RETURN_IF_ERROR(tpj_eager_scalar_get(dt, bytes, device, &out[k++]));
  }
  return NULL;
}

/* Launches the op's program through tpj_program_run on `device`, where its
 * tensors live, without waiting (the launch is tracked in flight; checks
 * stay pending until the next synchronization). */
static tpj_status_t prog_execute(const prog_t* p, const tpj_program_t* prog, size_t device,
                                 tpj_buffer_t** outs, size_t num_outs) {
  const tpj_eager_op_t* op = p->op;
  size_t nb = p->num_storages + op->num_extra, n = nb + p->num_scalars;
  TPJ_CHECK_ARG(num_outs == tpj_program_num_results(prog), "eager op: %zu results expected, "
                "the program has %zu", num_outs, tpj_program_num_results(prog));
  tpj_program_arg_t args_inline[2 * PROG_INLINE];
  tpj_program_result_t res_inline[PROG_INLINE];
  tpj_eager_scalar_t* scalars_inline[PROG_INLINE + 1];
  bool small = n <= 2 * PROG_INLINE && num_outs <= PROG_INLINE && p->num_scalars <= PROG_INLINE;
  tpj_program_arg_t* args = small ? args_inline : calloc(n + 1, sizeof(*args));
  tpj_program_result_t* res = small ? res_inline : calloc(num_outs + 1, sizeof(*res));
  tpj_eager_scalar_t** scalars = small ? scalars_inline
                                       : calloc(p->num_scalars + 1, sizeof(*scalars));
  tpj_status_t st = args && res && scalars ? NULL
                    : TPJ_STATUS(RESOURCE_EXHAUSTED, "eager op: out of memory");
  if (!st) {
    memset(args, 0, n * sizeof(*args));
    memset(res, 0, num_outs * sizeof(*res));
    memset(scalars, 0, p->num_scalars * sizeof(*scalars));
    st = prog_scalars(p, device, scalars);
  }
  for (size_t i = 0; i < nb && !st; ++i) {
    args[i].buffer = i < p->num_storages ? p->storages[i]->buffer
                                         : op->extra_inputs[i - p->num_storages];
  }
  for (size_t i = 0; i < p->num_scalars && !st; ++i) {
    args[nb + i].buffer = tpj_eager_scalar_buffer(scalars[i]);
  }
  tpj_program_call_t call = {args, 1, device, res, false};
  if (!st) st = tpj_program_run(prog, &call);
  for (size_t i = 0; i < num_outs; ++i) outs[i] = st ? NULL : res[i].buffer;
  for (size_t i = 0; scalars && i < p->num_scalars; ++i) tpj_eager_scalar_release(scalars[i]);
  if (!small) {
    free(args);
    free(res);
    free(scalars);
  }
  return st;
}

static tpj_status_t prog_run(const tpj_eager_op_t* op, const tpj_eager_tensor_t* dst,
                             tpj_buffer_t** outs, size_t num_outs) {
  prog_t p;
  tpj_eager_stats_count(0);
  uint64_t t_op = tpj_runtime_trace_enabled() ? tpj_runtime_metrics_now_ns() : 0;
  tpj_status_t st = prog_init(&p, op, dst);
  tpj_program_t* prog = NULL;
  size_t device = dst ? dst->storage->device : op->device;
  if (!st) st = tpj_eager_memory_check_outputs(op, dst);
  if (!st) st = prog_program(&p, &prog);
  if (!st) st = prog_execute(&p, prog, device, outs, num_outs);
  tpj_program_release(prog);
  prog_deinit(&p);
  if (t_op) {
    tpj_trace_arg_t ta = {"device", NULL, (double)device};
    tpj_trace_span_t ts = {"eager", op->target ? op->target : "copy", t_op,
                           tpj_runtime_metrics_now_ns(), 0, &ta, 1};
    tpj_runtime_trace_span(&ts);
  }
  return st ? tpj_status_annotate(st, "eager op %s", op->target ? op->target : "copy") : NULL;
}

tpj_status_t tpj_eager_op_run(const tpj_eager_op_t* op, tpj_buffer_t** out_buffers) {
  TPJ_CHECK_ARG(op && op->target && out_buffers, "eager op: NULL argument");
  size_t k = 0;
  for (size_t i = 0; i < op->num_outs; ++i) {
    k += op->out_types[i].dtype != TPJ_DTYPE_INVALID;
    out_buffers[i] = NULL;
  }
  tpj_buffer_t* res[64] = {0};
  TPJ_CHECK_ARG(k <= 64, "eager op %s: too many outputs (got %zu)", op->target, k);
  TPJ_RETURN_IF_ERROR(prog_run(op, NULL, res, k));
  for (size_t i = 0, j = 0; i < op->num_outs; ++i) {
    if (op->out_types[i].dtype != TPJ_DTYPE_INVALID) out_buffers[i] = res[j++];
  }
  return NULL;
}

static tpj_status_t run_into(const tpj_eager_op_t* op, const tpj_eager_tensor_t* dst) {
  tpj_buffer_t* res = NULL;
  TPJ_RETURN_IF_ERROR(prog_run(op, dst, &res, 1));
  tpj_dtype_t dt = tpj_eager_view_covers_storage(dst) ? dst->dtype : dst->storage->dtype;
  tpj_eager_storage_replace(dst->storage, res, dt);
  return NULL;
}

tpj_status_t tpj_eager_op_run_into(const tpj_eager_op_t* op, const tpj_eager_tensor_t* dst) {
  TPJ_CHECK_ARG(op && op->target && dst && dst->storage, "eager op: NULL argument");
  TPJ_CHECK_ARG(op->num_outs == 1, "eager op %s: writing into a tensor needs one output "
                "(got %zu)", op->target, op->num_outs);
  return run_into(op, dst);
}

static tpj_type_t view_type(const tpj_eager_tensor_t* v) {
  tpj_type_t t;
  memset(&t, 0, sizeof(t));
  t.dtype = v->dtype;
  t.rank = v->rank;
  memcpy(t.dims, v->sizes, sizeof(int64_t) * (size_t)v->rank);
  return t;
}

tpj_status_t tpj_eager_write_buffer(tpj_buffer_t* buffer, const tpj_eager_tensor_t* dst) {
  TPJ_CHECK_ARG(buffer && dst && dst->storage, "eager write: NULL argument");
  tpj_buffer_t* moved = NULL;
  TPJ_RETURN_IF_ERROR(on_device(buffer, dst->storage->device, &moved));
  tpj_buffer_t* src = moved ? moved : buffer;
  tpj_type_t t = view_type(dst);
  tpj_eager_op_t op = {NULL, NULL, 0, NULL, 0, &src, 1, &t, 1, dst->storage->device, NULL};
  tpj_status_t st = run_into(&op, dst);
  tpj_buffer_destroy(moved);
  return st;
}

tpj_status_t tpj_eager_materialize(const tpj_eager_tensor_t* src, tpj_buffer_t** out_buffer) {
  TPJ_CHECK_ARG(src && src->storage && out_buffer, "eager materialize: NULL argument");
  tpj_type_t t = view_type(src);
  tpj_eager_op_t op = {NULL, NULL, 0, src, 1, NULL, 0, &t, 1, src->storage->device, NULL};
  *out_buffer = NULL;
  return prog_run(&op, NULL, out_buffer, 1);
}

tpj_status_t tpj_eager_copy(const tpj_eager_tensor_t* src, const tpj_eager_tensor_t* dst) {
  TPJ_CHECK_ARG(src && dst && src->storage && dst->storage, "eager copy: NULL argument");
  TPJ_CHECK_ARG(tpj_eager_view_numel(src) == tpj_eager_view_numel(dst),
                "eager copy: element counts differ (got %lld, expected %lld)",
                (long long)tpj_eager_view_numel(src), (long long)tpj_eager_view_numel(dst));
  if (src->storage->device != dst->storage->device) {
    tpj_buffer_t* flat = NULL;
    TPJ_RETURN_IF_ERROR(tpj_eager_materialize(src, &flat));
    tpj_status_t st = tpj_eager_write_buffer(flat, dst);
    tpj_buffer_destroy(flat);
    return st;
  }
  tpj_type_t t = view_type(dst);
  tpj_eager_op_t op = {NULL, NULL, 0, src, 1, NULL, 0, &t, 1, dst->storage->device, NULL};
  return run_into(&op, dst);
}

tpj_status_t tpj_eager_write_host(const void* data, size_t nbytes, const tpj_eager_tensor_t* dst) {
  TPJ_CHECK_ARG(dst && dst->storage && (data || nbytes == 0), "eager write: NULL argument");
  int64_t n = tpj_eager_view_numel(dst);
  TPJ_CHECK_ARG(nbytes == (size_t)n * tpj_dtype_size(dst->dtype),
                "eager write: wrong host size (got %zu bytes, expected %lld)", nbytes,
                (long long)n * (long long)tpj_dtype_size(dst->dtype));
  tpj_buffer_t* b = NULL;
  uint64_t t0 = tpj_runtime_trace_enabled() ? tpj_runtime_metrics_now_ns() : 0;
  TPJ_RETURN_IF_ERROR(tpj_buffer_from_host(tpj_eager_client(), data, dst->dtype, &n, 1,
                                           dst->storage->device, TPJ_HOST_SEMANTICS_COPY, &b));
  tpj_runtime_metrics_add_bytes_h2d(nbytes);
  if (t0) tpj_runtime_trace_copy(TPJ_TRACE_COPY_H2D, nbytes, dst->storage->device, t0,
                                 tpj_runtime_metrics_now_ns());
  if (tpj_eager_view_covers_storage(dst)) {
    tpj_eager_storage_replace(dst->storage, b, dst->dtype);
    return NULL;
  }
  tpj_status_t st = tpj_eager_write_buffer(b, dst);
  tpj_buffer_destroy(b);
  return st;
}

tpj_status_t tpj_eager_read_host(const tpj_eager_tensor_t* src, void* data, size_t nbytes) {
  TPJ_CHECK_ARG(src && src->storage && (data || nbytes == 0), "eager read: NULL argument");
  TPJ_RETURN_IF_ERROR(tpj_eager_checks_flush()); /* a host read is a synchronization */
  int64_t n = tpj_eager_view_numel(src);
  TPJ_CHECK_ARG(nbytes == (size_t)n * tpj_dtype_size(src->dtype),
                "eager read: wrong host size (got %zu bytes, expected %lld)", nbytes,
                (long long)n * (long long)tpj_dtype_size(src->dtype));
  if (n == 0) return NULL;
  if (!src->storage->buffer) {
    memset(data, 0, nbytes);
    return NULL;
  }
  tpj_status_t st;
  uint64_t t0 = tpj_runtime_trace_enabled() ? tpj_runtime_metrics_now_ns() : 0;
  if (tpj_eager_view_covers_storage(src) && src->storage->dtype == src->dtype) {
    st = tpj_buffer_to_host(src->storage->buffer, data, nbytes);
  } else {
    tpj_buffer_t* flat = NULL;
    st = tpj_eager_materialize(src, &flat);
    if (!st) st = tpj_buffer_to_host(flat, data, nbytes);
    tpj_buffer_destroy(flat);
  }
  if (!st) tpj_runtime_metrics_add_bytes_d2h(nbytes);
  if (!st && t0) tpj_runtime_trace_copy(TPJ_TRACE_COPY_D2H, nbytes, src->storage->device, t0,
                                        tpj_runtime_metrics_now_ns());
  return st;
}
