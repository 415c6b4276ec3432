/* program_io.c: the two ends of tpj_program_run. Inputs: each parameter's
 * value per its kind (a caller's buffer, an eager storage or a view of one,
 * host memory, the program's constant, an RNG seed), on the device the
 * program executes on. Results: installed into storages, copied to host
 * memory, or handed back as buffers, with nothing changed when one fails. */
#include <stdlib.h>
#include <string.h>

#include "runtime/eager_internal.h"
#include "runtime/program_internal.h"

tpj_status_t tpj_program_run_begin(const tpj_program_t* p, tpj_program_call_t* call,
                                   run_t* r) {
  memset(r, 0, sizeof(*r));
  tpj_executable_t* exe = tpj_cached_executable_get(p->exe);
  size_t nd = call->num_devices ? call->num_devices : 1, want = tpj_executable_num_devices(exe);
  TPJ_CHECK_ARG(nd == want, "program %s: wrong device count (got %zu argument rows, "
                "expected %zu)", p->name, nd, want);
  for (size_t k = 0; k < nd * p->num_results; ++k) call->results[k].buffer = NULL;
  for (size_t i = 0; i < p->num_inputs && nd > 1; ++i) {
    tpj_program_input_kind_t kind = p->inputs[i].kind;
    TPJ_CHECK_ARG(kind == TPJ_PROGRAM_INPUT_BUFFER || kind == TPJ_PROGRAM_INPUT_STORAGE,
                  "program %s: input %zu of a %zu-device program must be a buffer or a "
                  "storage (got kind %d)", p->name, i, nd, (int)kind);
  }
  r->p = p;
  r->call = call;
  r->nd = nd;
  r->ni = p->num_inputs;
  r->nout = tpj_executable_num_outputs(exe);
  r->run_on = nd == 1 && tpj_executable_is_portable(exe) ? call->device : 0;
  size_t na = nd * r->ni, no = nd * r->nout;
  if (na <= TPJ_PROGRAM_INLINE && no <= TPJ_PROGRAM_INLINE && nd == 1) {
    r->args = r->args_inline;
    r->owned = r->owned_inline;
    r->donate = p->any_donate ? r->donate_inline : NULL;
    r->outs = r->outs_inline;
    r->events = r->events_inline;
    return NULL;
  }
  r->heap = true;
  r->args = calloc(na + 1, sizeof(*r->args));
  r->owned = calloc(na + 1, sizeof(*r->owned));
  r->donate = p->any_donate ? calloc(r->ni + 1, sizeof(*r->donate)) : NULL;
  r->outs = calloc(no + 1, sizeof(*r->outs));
  r->events = calloc(nd, sizeof(*r->events));
  if (!r->args || !r->owned || !r->outs || !r->events || (p->any_donate && !r->donate)) {
    tpj_program_run_end(r, true);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "program %s: out of memory", p->name);
  }
  return NULL;
}

void tpj_program_run_end(run_t* r, bool failed) {
  size_t nres = r->p->num_results;
  for (size_t k = 0; k < r->nd * r->ni; ++k) tpj_buffer_destroy(r->owned[k]);
  for (size_t k = 0; k < r->nd * r->nout; ++k) tpj_buffer_destroy(r->outs[k]);
  for (size_t d = 0; d < r->nd && r->events; ++d) tpj_event_destroy(r->events[d]);
  for (size_t k = 0; failed && k < r->nd * nres; ++k) {
    tpj_buffer_destroy(r->call->results[k].buffer);
    r->call->results[k].buffer = NULL;
  }
  if (!r->heap) return;
  free(r->args);
  free(r->owned);
  free(r->donate);
  free(r->outs);
  free(r->events);
}

/* ---------------------------------------------------------------- inputs -- */

/* A view covering its storage (kept in the view's dtype) passes the storage's
 * buffer; any other view is read into a new flat buffer (*own). */
static tpj_status_t storage_arg(const tpj_eager_tensor_t* v, tpj_buffer_t** own,
                                tpj_buffer_t** out) {
  TPJ_CHECK_ARG(v->storage, "storage input has no storage");
  if (tpj_eager_view_covers_storage(v)) {
    TPJ_RETURN_IF_ERROR(tpj_eager_storage_buffer(v->storage, v->dtype, out));
    if (*out) return NULL;
  }
  TPJ_RETURN_IF_ERROR(tpj_eager_materialize(v, own));
  *out = *own;
  return NULL;
}

static tpj_status_t host_arg(const run_t* r, const tpj_program_input_t* in, const void* host,
                             size_t device, tpj_buffer_t** own) {
  int64_t n = 1;
  for (int32_t k = 0; k < in->rank; ++k) n *= in->dims[k];
  size_t nbytes = (size_t)n * tpj_dtype_size(in->dtype);
  TPJ_CHECK_ARG(host || nbytes == 0, "host input has no data (expected %zu bytes)", nbytes);
  tpj_client_t* client = tpj_executable_client(tpj_cached_executable_get(r->p->exe));
  uint64_t t0 = tpj_runtime_metrics_now_ns();
  TPJ_RETURN_IF_ERROR(tpj_buffer_from_host(client, host, in->dtype, in->dims, (size_t)in->rank,
                                           device, TPJ_HOST_SEMANTICS_COPY, own));
  uint64_t t1 = tpj_runtime_metrics_now_ns();
  tpj_runtime_metrics_add_bytes_h2d(nbytes);
  tpj_runtime_metrics_add_h2d_ns(t1 - t0);
  if (nbytes) tpj_runtime_trace_copy(TPJ_TRACE_COPY_H2D, nbytes, device, t0, t1);
  return NULL;
}

/* u64[2] random-op state on the program's client. */
static tpj_status_t seed_arg(const run_t* r, const uint64_t words[2], size_t device,
                             tpj_buffer_t** own) {
  tpj_client_t* client = tpj_executable_client(tpj_cached_executable_get(r->p->exe));
  int64_t two = 2;
  return tpj_buffer_from_host(client, words, TPJ_DTYPE_U64, &two, 1, device,
                              TPJ_HOST_SEMANTICS_COPY, own);
}

static tpj_status_t resolve_one(run_t* r, size_t d, size_t i) {
  const tpj_program_input_t* in = &r->p->inputs[i];
  const tpj_program_arg_t* a = &r->call->args[d * r->ni + i];
  tpj_buffer_t** own = &r->owned[d * r->ni + i];
  size_t device = r->run_on + d;
  tpj_buffer_t* b = NULL;
  tpj_status_t st = NULL;
  switch (in->kind) {
    case TPJ_PROGRAM_INPUT_BUFFER:
      b = a->buffer;
      if (!b || tpj_buffer_is_deleted(b)) {
        return TPJ_STATUS(FAILED_PRECONDITION, "program %s: input %zu on device %zu is "
                          "missing, deleted or donated", r->p->name, i, d);
      }
      break;
    case TPJ_PROGRAM_INPUT_CONSTANT: b = in->constant; break;
    case TPJ_PROGRAM_INPUT_STORAGE: st = storage_arg(&a->view, own, &b); break;
    case TPJ_PROGRAM_INPUT_HOST: st = host_arg(r, in, a->host, device, own); b = *own; break;
    case TPJ_PROGRAM_INPUT_SEED: st = seed_arg(r, a->seed, device, own); b = *own; break;
  }
  if (!st && tpj_buffer_device_index(b) != device) {
    tpj_buffer_t* moved = NULL;
    tpj_eager_stats_count(3);
    st = tpj_buffer_copy_to_device(b, device, &moved);
    tpj_buffer_destroy(*own);
    *own = moved;
    b = moved;
  }
  if (st) return tpj_status_annotate(st, "program %s: input %zu", r->p->name, i);
  r->args[d * r->ni + i] = b;
  return NULL;
}

/* A donated buffer must feed one parameter only (in every row). */
static bool donatable(const run_t* r, size_t i) {
  if (!r->p->inputs[i].donate || r->p->inputs[i].kind != TPJ_PROGRAM_INPUT_BUFFER) return false;
  for (size_t d = 0; d < r->nd; ++d) {
    tpj_buffer_t* const* row = &r->args[d * r->ni];
    for (size_t j = 0; j < r->ni; ++j) {
      if (j != i && row[j] == row[i]) return false;
    }
  }
  return true;
}

tpj_status_t tpj_program_resolve_inputs(run_t* r) {
  for (size_t d = 0; d < r->nd; ++d) {
    for (size_t i = 0; i < r->ni; ++i) TPJ_RETURN_IF_ERROR(resolve_one(r, d, i));
  }
  for (size_t i = 0; r->donate && i < r->ni; ++i) r->donate[i] = donatable(r, i);
  return NULL;
}

/* --------------------------------------------------------------- results -- */

static size_t dense_nbytes(const tpj_buffer_t* b) {
  size_t n = tpj_dtype_size(tpj_buffer_dtype(b));
  const int64_t* dims = tpj_buffer_dims(b);
  for (size_t i = 0; i < tpj_buffer_rank(b); ++i) n *= (size_t)dims[i];
  return n;
}

/* Checks every destination before anything is written. */
static tpj_status_t check_dests(const run_t* r) {
  size_t nres = r->p->num_results;
  for (size_t k = 0; k < r->nd * nres; ++k) {
    const tpj_program_result_t* res = &r->call->results[k];
    const tpj_buffer_t* b = r->outs[(k / nres) * r->nout + k % nres];
    size_t nbytes = dense_nbytes(b);
    if (res->storage) {
      TPJ_CHECK_ARG(tpj_executable_client(tpj_cached_executable_get(r->p->exe)) ==
                    tpj_eager_client(), "program %s: result %zu goes to an eager storage but "
                    "the executable's client is not the eager device's client", r->p->name,
                    k % nres);
      TPJ_CHECK_ARG(tpj_buffer_rank(b) == 1 && nbytes == tpj_eager_storage_nbytes(res->storage)
                    && tpj_buffer_device_index(b) == tpj_eager_storage_device(res->storage),
                    "program %s: result %zu does not fit its storage (got %zu bytes of rank %zu on device "
                    "%zu, expected %zu bytes of rank 1 on device %zu)", r->p->name, k % nres, nbytes,
                    tpj_buffer_rank(b), tpj_buffer_device_index(b),
                    tpj_eager_storage_nbytes(res->storage),
                    tpj_eager_storage_device(res->storage));
    } else if (res->host) {
      TPJ_CHECK_ARG(res->host_nbytes == nbytes, "program %s: result %zu: wrong host size (got "
                    "%zu bytes, expected %zu)", r->p->name, k % nres, res->host_nbytes, nbytes);
    }
  }
  return NULL;
}

/* Starts every host copy, then awaits them all. */
static tpj_status_t copy_to_host(run_t* r) {
  size_t nres = r->p->num_results, total = r->nd * nres;
  tpj_event_t* inline_events[TPJ_PROGRAM_INLINE] = {0};
  tpj_event_t** events = total <= TPJ_PROGRAM_INLINE ? inline_events
                                                      : calloc(total, sizeof(*events));
  if (!events) return TPJ_STATUS(RESOURCE_EXHAUSTED, "program: out of memory");
  uint64_t t0 = tpj_runtime_metrics_now_ns(), bytes = 0;
  tpj_status_t st = NULL;
  for (size_t k = 0; k < total && !st; ++k) {
    tpj_program_result_t* res = &r->call->results[k];
    if (!res->host || !res->host_nbytes || res->storage) continue;
    tpj_buffer_t* b = r->outs[(k / nres) * r->nout + k % nres];
    st = tpj_buffer_to_host_async(b, res->host, res->host_nbytes, &events[k]);
    if (!st) bytes += res->host_nbytes;
  }
  for (size_t k = 0; k < total; ++k) { /* always await what was started */
    if (!events[k]) continue;
    tpj_status_t e = tpj_event_await(events[k]);
    if (e && !st) st = e;
    else tpj_status_free(e);
    tpj_event_destroy(events[k]);
  }
  if (events != inline_events) free(events);
  uint64_t t1 = tpj_runtime_metrics_now_ns();
  if (bytes) {
    tpj_runtime_metrics_add_bytes_d2h(bytes);
    tpj_runtime_metrics_add_d2h_ns(t1 - t0);
    tpj_runtime_trace_copy(TPJ_TRACE_COPY_D2H, bytes, r->call->device, t0, t1);
  }
  return st;
}

tpj_status_t tpj_program_deliver(run_t* r) {
  TPJ_RETURN_IF_ERROR(check_dests(r));
  TPJ_RETURN_IF_ERROR(copy_to_host(r));
  size_t nres = r->p->num_results;
  for (size_t k = 0; k < r->nd * nres; ++k) {
    tpj_program_result_t* res = &r->call->results[k];
    tpj_buffer_t** slot = &r->outs[(k / nres) * r->nout + k % nres];
    tpj_buffer_t* b = *slot;
    *slot = NULL;
    if (res->storage) {
      TPJ_RETURN_IF_ERROR(tpj_eager_storage_set_buffer(res->storage, b)); /* takes b */
    } else if (res->host && !res->keep) {
      tpj_buffer_destroy(b);
    } else {
      res->buffer = b;
    }
  }
  return NULL;
}
