/* model_run.c: tpj_model_run. Checks the host inputs against the manifest,
 * reads the dynamic symbol's value, picks the smallest bucket that holds it,
 * pads the dynamic inputs to the bucket by repeating their last row, runs the
 * bucket's program (tpj_program_run, waiting, so failed index checks are the
 * call's error) and keeps each output's first rows. */
#include <stdlib.h>
#include <string.h>

#include "model/model_run.h"

/* Reads the symbol's value off the inputs and checks them all. */
static tpj_status_t check_inputs(const tpj_model_t* m, const tpj_host_tensor_t* inputs,
                                 size_t n, int64_t* out_value) {
  const tpj_manifest_t* man = &m->parts.manifest;
  TPJ_CHECK_ARG(n == man->num_inputs, "model: run: wrong number of inputs (got %zu, expected "
                "%zu)", n, man->num_inputs);
  TPJ_CHECK_ARG(n == 0 || inputs, "model: run: inputs is NULL");
  int64_t value = -1;
  for (size_t i = 0; i < n; ++i) {
    const tpj_model_tensor_info_t* info = &man->inputs[i];
    const tpj_host_tensor_t* t = &inputs[i];
    TPJ_CHECK_ARG(t->dtype == info->dtype, "model: input \"%s\": wrong dtype (got %s, "
                  "expected %s)", info->name, tpj_dtype_name(t->dtype),
                  tpj_dtype_name(info->dtype));
    TPJ_CHECK_ARG(t->rank == info->rank, "model: input \"%s\": wrong rank (got %d, expected "
                  "%d)", info->name, (int)t->rank, (int)info->rank);
    for (int32_t d = 0; d < info->rank; ++d) {
      if (d == info->dynamic_dim) continue;
      TPJ_CHECK_ARG(t->dims[d] == info->dims[d], "model: input \"%s\": wrong size at dim %d "
                    "(got %lld, expected %lld)", info->name, (int)d, (long long)t->dims[d],
                    (long long)info->dims[d]);
    }
    size_t nbytes = 0;
    TPJ_RETURN_IF_ERROR(tpj_host_tensor_size(t->dtype, t->rank, t->dims, NULL, &nbytes));
    TPJ_CHECK_ARG(t->nbytes == nbytes && (nbytes == 0 || t->data), "model: input \"%s\": "
                  "%zu bytes of data (expected %zu)", info->name, t->data ? t->nbytes : 0,
                  nbytes);
    if (info->dynamic_dim < 0) continue;
    int64_t size = t->dims[info->dynamic_dim];
    TPJ_CHECK_ARG(size % info->dynamic_scale == 0, "model: input \"%s\": dim 0 is %lld, not "
                  "a multiple of %lld", info->name, (long long)size,
                  (long long)info->dynamic_scale);
    int64_t v = size / info->dynamic_scale;
    TPJ_CHECK_ARG(value < 0 || v == value, "model: input \"%s\": %s is %lld here but %lld in "
                  "an earlier input", info->name, man->symbol_name, (long long)v,
                  (long long)value);
    value = v;
  }
  if (man->has_symbol) {
    TPJ_CHECK_ARG(value >= man->symbol_min && value <= man->symbol_max, "model: %s out of "
                  "range (got %lld, expected %lld..%lld)", man->symbol_name, (long long)value,
                  (long long)man->symbol_min, (long long)man->symbol_max);
  }
  *out_value = value < 0 ? 0 : value;
  return NULL;
}

static size_t pick_program(const tpj_manifest_t* man, int64_t value) {
  for (size_t i = 0; i < man->num_programs; ++i) {
    if (man->programs[i].bucket >= value) return i;
  }
  return man->num_programs - 1;  /* unreachable: the last bucket is the max */
}

/* Uploads input `t` with its dynamic dim grown from `value` to `bucket`,
 * repeating its last row (zeros when it has none). */
static tpj_status_t upload_input(tpj_client_t* client, const tpj_model_tensor_info_t* info,
                                 const tpj_host_tensor_t* t, int64_t value, int64_t bucket,
                                 tpj_buffer_t** out) {
  int64_t dims[TPJ_MAX_RANK];
  tpj_manifest_dims_at(info, bucket, dims);
  const void* data = t->data;
  void* padded = NULL;
  if (info->dynamic_dim >= 0 && bucket != value) {
    size_t total = 0;
    TPJ_RETURN_IF_ERROR(tpj_host_tensor_size(t->dtype, t->rank, dims, NULL, &total));
    size_t rows = (size_t)(info->dynamic_scale * bucket);
    size_t row_bytes = rows ? total / rows : 0;
    padded = calloc(total ? total : 1, 1);
    if (!padded) return TPJ_STATUS(RESOURCE_EXHAUSTED, "model: out of memory padding input "
                                   "\"%s\" to %zu bytes", info->name, total);
    if (t->nbytes) memcpy(padded, t->data, t->nbytes);
    for (size_t off = t->nbytes; t->nbytes && row_bytes && off < total; off += row_bytes) {
      memcpy((char*)padded + off, (const char*)t->data + t->nbytes - row_bytes, row_bytes);
    }
    data = padded;
  }
  tpj_status_t s = tpj_buffer_from_host(client, data, t->dtype, dims, (size_t)t->rank, 0,
                                        TPJ_HOST_SEMANTICS_COPY, out);
  free(padded);
  return s ? tpj_status_annotate(s, "model: uploading input \"%s\"", info->name) : NULL;
}

/* Allocates the bucket-sized host results. */
static tpj_status_t alloc_results(const tpj_manifest_t* man, int64_t bucket,
                                  tpj_program_result_t* results) {
  for (size_t i = 0; i < man->num_outputs; ++i) {
    int64_t dims[TPJ_MAX_RANK];
    tpj_manifest_dims_at(&man->outputs[i], bucket, dims);
    size_t nbytes = 0;
    TPJ_RETURN_IF_ERROR(tpj_host_tensor_size(man->outputs[i].dtype, man->outputs[i].rank, dims,
                                             NULL, &nbytes));
    results[i].host = malloc(nbytes ? nbytes : 1);
    results[i].host_nbytes = nbytes;
    if (!results[i].host) {
      return TPJ_STATUS(RESOURCE_EXHAUSTED, "model: out of memory for output \"%s\" (%zu "
                        "bytes)", man->outputs[i].name, nbytes);
    }
  }
  return NULL;
}

/* Hands the results to the caller, each cut to the symbol's value. */
static void take_results(const tpj_manifest_t* man, int64_t value,
                         tpj_program_result_t* results, tpj_host_tensor_t* outputs) {
  for (size_t i = 0; i < man->num_outputs; ++i) {
    const tpj_model_tensor_info_t* info = &man->outputs[i];
    tpj_host_tensor_t* o = &outputs[i];
    o->dtype = info->dtype;
    o->rank = info->rank;
    tpj_manifest_dims_at(info, value, o->dims);
    size_t nbytes = 0;
    tpj_status_t s = tpj_host_tensor_size(o->dtype, o->rank, o->dims, NULL, &nbytes);
    tpj_status_free(s);  /* cannot fail: the bucket's size, which is larger, did not */
    o->nbytes = nbytes;
    o->data = results[i].host;
    results[i].host = NULL;
  }
}

static tpj_status_t run_program(tpj_model_t* m, size_t index, const tpj_host_tensor_t* inputs,
                                int64_t value, tpj_buffer_t** uploads,
                                tpj_program_arg_t* args, tpj_program_result_t* results) {
  const tpj_manifest_t* man = &m->parts.manifest;
  const tpj_manifest_program_t* p = &man->programs[index];
  int64_t bucket = man->has_symbol ? p->bucket : 0;
  for (size_t i = 0; i < man->num_inputs; ++i) {
    TPJ_RETURN_IF_ERROR(upload_input(m->client, &man->inputs[i], &inputs[i], value, bucket,
                                     &uploads[i]));
  }
  for (size_t i = 0; i < p->num_params; ++i) {
    args[i].buffer = p->params[i].is_input ? uploads[p->params[i].input]
                                           : m->programs[index].weights[i];
  }
  TPJ_RETURN_IF_ERROR(alloc_results(man, bucket, results));
  tpj_program_call_t call = {.args = args, .num_devices = 1, .device = 0,
                             .results = results, .wait = true};
  return tpj_program_run(m->programs[index].program, &call);
}

tpj_status_t tpj_model_run(tpj_model_t* m, const tpj_host_tensor_t* inputs, size_t num_inputs,
                           tpj_host_tensor_t* outputs, size_t num_outputs) {
  TPJ_CHECK_ARG(m, "model: run: model is NULL");
  const tpj_manifest_t* man = &m->parts.manifest;
  TPJ_CHECK_ARG(num_outputs == man->num_outputs && (num_outputs == 0 || outputs), "model: "
                "run: wrong number of outputs (got %zu, expected %zu)", num_outputs,
                man->num_outputs);
  memset(outputs, 0, num_outputs * sizeof(*outputs));
  int64_t value = 0;
  TPJ_RETURN_IF_ERROR(check_inputs(m, inputs, num_inputs, &value));
  size_t index = pick_program(man, value);
  size_t np = man->programs[index].num_params;
  tpj_buffer_t** uploads = calloc(num_inputs ? num_inputs : 1, sizeof(*uploads));
  tpj_program_arg_t* args = calloc(np ? np : 1, sizeof(*args));
  tpj_program_result_t* results = calloc(num_outputs ? num_outputs : 1, sizeof(*results));
  tpj_status_t s = NULL;
  if (!uploads || !args || !results) {
    s = TPJ_STATUS(RESOURCE_EXHAUSTED, "model: run: out of memory");
  } else {
    s = run_program(m, index, inputs, value, uploads, args, results);
    if (!s) take_results(man, value, results, outputs);
  }
  for (size_t i = 0; uploads && i < num_inputs; ++i) tpj_buffer_destroy(uploads[i]);
  for (size_t i = 0; results && i < num_outputs; ++i) free(results[i].host);
  free(uploads);
  free(args);
  free(results);
  return s;
}
