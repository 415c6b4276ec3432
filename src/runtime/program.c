/* program.c: tpj_program_t and tpj_program_run (tpj/program.h), the one
 * launch path. Every program the runtime or the extension runs comes here,
 * so the launch, its inputs' transfers, the results' copies and installs,
 * the runtime checks, the metrics, the trace and the memory accounting of a
 * launch exist once. Inputs and results are handled in program_io.c. */
#include <stdlib.h>
#include <string.h>

#include "runtime/eager_checks.h"
#include "runtime/eager_internal.h"
#include "runtime/program_internal.h"

tpj_status_t tpj_program_create(tpj_cached_executable_t* exe, const tpj_program_plan_t* plan,
                                tpj_program_t** out_program) {
  TPJ_CHECK_ARG(exe && plan && out_program && (plan->inputs || plan->num_inputs == 0),
                "program create: NULL argument");
  *out_program = NULL;
  size_t nout = tpj_executable_num_outputs(tpj_cached_executable_get(exe));
  tpj_status_t st = NULL;
  if (plan->num_checks && nout == 0) {
    st = TPJ_STATUS(INVALID_ARGUMENT, "program create: %zu checks but the executable has no "
                    "result for them", plan->num_checks);
  }
  tpj_client_t* client = tpj_executable_client(tpj_cached_executable_get(exe));
  for (size_t i = 0; i < plan->num_inputs && !st; ++i) {
    const tpj_program_input_t* in = &plan->inputs[i];
    if (in->kind == TPJ_PROGRAM_INPUT_STORAGE && client != tpj_eager_client()) {
      st = TPJ_STATUS(FAILED_PRECONDITION, "program create: input %zu is an eager storage but "
                      "the executable's client is not the eager device's client", i);
    } else if (in->kind > TPJ_PROGRAM_INPUT_SEED) {
      st = TPJ_STATUS(INVALID_ARGUMENT, "program create: input %zu has an unknown kind "
                      "(got %d)", i, (int)in->kind);
    } else if (in->kind == TPJ_PROGRAM_INPUT_CONSTANT && !in->constant) {
      st = TPJ_STATUS(INVALID_ARGUMENT, "program create: constant input %zu has no buffer", i);
    } else if (in->kind == TPJ_PROGRAM_INPUT_HOST &&
               (tpj_dtype_size(in->dtype) == 0 || in->rank < 0 || in->rank > TPJ_MAX_RANK)) {
      st = TPJ_STATUS(INVALID_ARGUMENT, "program create: host input %zu needs a dtype and a "
                      "rank of at most %d (got dtype %d, rank %d)", i, TPJ_MAX_RANK,
                      (int)in->dtype, (int)in->rank);
    }
  }
  tpj_program_t* p = st ? NULL : calloc(1, sizeof(*p));
  if (!st && p) {
    p->inputs = calloc(plan->num_inputs + 1, sizeof(*p->inputs));
    p->name = strdup(plan->name ? plan->name : "program");
    if (!p->inputs || !p->name) st = TPJ_STATUS(RESOURCE_EXHAUSTED, "program create: out of memory");
  } else if (!st) {
    st = TPJ_STATUS(RESOURCE_EXHAUSTED, "program create: out of memory");
  }
  if (!st) st = tpj_eager_checks_create(plan->checks, plan->num_checks, &p->checks);
  if (st) {
    for (size_t i = 0; i < plan->num_inputs; ++i) tpj_buffer_destroy(plan->inputs[i].constant);
    if (p) free(p->inputs);
    if (p) free(p->name);
    free(p);
    return st;
  }
  memcpy(p->inputs, plan->inputs, plan->num_inputs * sizeof(*p->inputs));
  p->refs = 1;
  p->num_inputs = plan->num_inputs;
  p->num_results = nout - (plan->num_checks ? 1 : 0);
  tpj_cached_executable_retain(exe);
  p->exe = exe;
  for (size_t i = 0; i < p->num_inputs; ++i) p->any_donate |= p->inputs[i].donate;
  *out_program = p;
  return NULL;
}

void tpj_program_retain(tpj_program_t* p) {
  if (p) __atomic_add_fetch(&p->refs, 1, __ATOMIC_RELAXED);
}

void tpj_program_release(tpj_program_t* p) {
  if (!p || __atomic_sub_fetch(&p->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  for (size_t i = 0; i < p->num_inputs; ++i) tpj_buffer_destroy(p->inputs[i].constant);
  tpj_eager_checks_release(p->checks);
  tpj_cached_executable_release(p->exe);
  free(p->inputs);
  free(p->name);
  free(p);
}

tpj_cached_executable_t* tpj_program_executable(const tpj_program_t* p) { return p->exe; }
const char* tpj_program_name(const tpj_program_t* p) { return p->name; }
size_t tpj_program_num_inputs(const tpj_program_t* p) { return p->num_inputs; }
const tpj_program_input_t* tpj_program_input(const tpj_program_t* p, size_t index) {
  return p && index < p->num_inputs ? &p->inputs[index] : NULL;
}
size_t tpj_program_num_results(const tpj_program_t* p) { return p->num_results; }
size_t tpj_program_num_checks(const tpj_program_t* p) { return tpj_eager_checks_count(p->checks); }

/* ---------------------------------------------------------------- launch -- */

/* Annotates a device out-of-memory error with the program and device. */
static tpj_status_t name_oom(const run_t* r, tpj_status_t st) {
  if (tpj_status_code(st) != TPJ_STATUS_RESOURCE_EXHAUSTED) return st;
  if (r->nd > 1) {
    return tpj_status_annotate(st, "program %s on pjrt devices 0-%zu", r->p->name, r->nd - 1);
  }
  return tpj_status_annotate(st, "program %s on pjrt device %zu", r->p->name, r->run_on);
}

/* Enqueues the program; with call->wait, also waits for it. */
static tpj_status_t launch(run_t* r) {
  tpj_executable_t* exe = tpj_cached_executable_get(r->p->exe);
  tpj_execute_args_t ea = {.args = r->args, .num_args = r->ni, .num_devices = r->nd,
                           .donate = r->donate, .out_buffers = r->outs,
                           .out_events = r->events, .device = r->nd == 1 ? r->run_on : 0};
  uint64_t t0 = tpj_runtime_metrics_now_ns();
  tpj_status_t st = NULL;
  for (size_t d = 0; d < r->nd && !st; ++d) st = tpj_eager_memory_launch(r->run_on + d, exe);
  if (!st) st = tpj_executable_execute(exe, &ea);
  if (st) return name_oom(r, st);
  tpj_runtime_metrics_add_execution();
  if (tpj_runtime_trace_enabled()) {
    tpj_trace_launch_t tl = {tpj_cached_executable_key(r->p->exe), r->p->name, r->run_on,
                             r->nd, t0, tpj_runtime_metrics_now_ns(), r->events};
    tpj_runtime_trace_launch(&tl);
  }
  for (size_t d = 0; d < r->nd; ++d) {
    tpj_event_t* ev = r->events[d];
    r->events[d] = NULL;
    if (!r->call->wait) {
      tpj_eager_inflight_add(r->run_on + d, ev); /* takes ev */
      continue;
    }
    tpj_status_t e = ev ? tpj_event_await(ev) : NULL;
    tpj_event_destroy(ev);
    if (e && !st) st = name_oom(r, e);
    else tpj_status_free(e);
  }
  tpj_runtime_metrics_add_execute_ns(tpj_runtime_metrics_now_ns() - t0);
  return st;
}

/* Moves results computed on device 0 (an executable that is not portable)
 * to the call's device. */
static tpj_status_t move_results(run_t* r) {
  if (r->nd != 1 || r->run_on == r->call->device) return NULL;
  for (size_t o = 0; o < r->nout; ++o) {
    tpj_buffer_t* moved = NULL;
    tpj_eager_stats_count(3);
    TPJ_RETURN_IF_ERROR(tpj_buffer_copy_to_device(r->outs[o], r->call->device, &moved));
    tpj_buffer_destroy(r->outs[o]);
    r->outs[o] = moved;
  }
  return NULL;
}

/* Row d's check result: read now (wait) or left pending until the next
 * synchronization. Takes the buffer either way. */
static tpj_status_t finish_checks(run_t* r, size_t d) {
  tpj_buffer_t** slot = &r->outs[d * r->nout + r->nout - 1];
  tpj_buffer_t* b = *slot;
  *slot = NULL;
  if (!r->call->wait) return tpj_eager_checks_defer(r->p->checks, b);
  size_t n = 2 * tpj_eager_checks_count(r->p->checks);
  int64_t* values = calloc(n, sizeof(int64_t));
  tpj_status_t st = values ? NULL : TPJ_STATUS(RESOURCE_EXHAUSTED, "program: out of memory");
  uint64_t t0 = tpj_runtime_metrics_now_ns();
  if (!st) st = tpj_buffer_to_host(b, values, n * sizeof(int64_t));
  if (!st) {
    tpj_runtime_metrics_add_bytes_d2h(n * sizeof(int64_t));
    tpj_runtime_metrics_add_d2h_ns(tpj_runtime_metrics_now_ns() - t0);
    st = tpj_eager_checks_evaluate(r->p->checks, values);
  }
  free(values);
  tpj_buffer_destroy(b);
  return st;
}

tpj_status_t tpj_program_run(const tpj_program_t* p, tpj_program_call_t* call) {
  TPJ_CHECK_ARG(p && call && (call->args || p->num_inputs == 0) &&
                (call->results || p->num_results == 0), "program run: NULL argument");
  run_t r;
  TPJ_RETURN_IF_ERROR(tpj_program_run_begin(p, call, &r));
  tpj_status_t st = tpj_program_resolve_inputs(&r);
  if (!st) st = launch(&r);
  if (!st) st = move_results(&r);
  for (size_t d = 0; d < r.nd && p->checks; ++d) {
    tpj_status_t c = r.outs[d * r.nout + r.nout - 1] ? finish_checks(&r, d) : NULL;
    if (c && !st) st = c;
    else tpj_status_free(c);
  }
  if (!st) st = tpj_program_deliver(&r);
  tpj_program_run_end(&r, st != NULL);
  return st;
}
