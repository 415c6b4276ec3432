/* tpj/model.h: a deployable model, the `.tpj` artifact (docs/artifact.md),
 * loaded and run from C with no Python and no libtorch. An artifact holds a
 * manifest, one StableHLO program per shape bucket, the weights in
 * safetensors and optionally serialized executables, each part checksummed.
 *
 * tpj_model_load checks everything before use (container, checksums,
 * manifest, safetensors bounds), uploads the weights once to the client's
 * device 0 and compiles (or deserializes) the programs. tpj_model_run takes
 * host tensors, pads a dynamic dimension to its bucket, runs the bucket's
 * program through tpj_program_run and slices the outputs back.
 *
 * Thread safety: a loaded model is immutable; runs may overlap.
 */
#ifndef TPJ_MODEL_H_
#define TPJ_MODEL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"
#include "tpj/ir.h"
#include "tpj/pjrt.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A dense row-major tensor in host memory. */
typedef struct tpj_host_tensor_s {
  tpj_dtype_t dtype;
  int32_t rank;
  int64_t dims[TPJ_MAX_RANK]; /* (rank) */
  void* data;                 /* nbytes of row-major elements (may be NULL when 0) */
  size_t nbytes;              /* tpj_dtype_size(dtype) * product(dims) */
} tpj_host_tensor_t;

/* Element count of dims[0..rank); INVALID_ARGUMENT on a negative dim or when
 * the count or its byte size overflows size_t. Either output may be NULL. */
tpj_status_t tpj_host_tensor_size(tpj_dtype_t dtype, int32_t rank, const int64_t* dims,
                                  size_t* out_numel, size_t* out_nbytes) TPJ_MUST_USE;
/* Frees t->data (malloc'ed by the library) and zeroes *t; accepts NULL. */
void tpj_host_tensor_free(tpj_host_tensor_t* t);

/* ------------------------------------------------------------------ model -- */

typedef struct tpj_model_s tpj_model_t;

/* One input or output as the manifest declares it. */
typedef struct tpj_model_tensor_info_s {
  const char* name;           /* borrowed: lives as long as the model */
  tpj_dtype_t dtype;
  int32_t rank;
  int64_t dims[TPJ_MAX_RANK]; /* (rank) static sizes; -1 at the dynamic dim */
  int32_t dynamic_dim;        /* -1: all static; else the dim whose size is
                                 dynamic_scale * symbol (only dim 0 in format 1) */
  int64_t dynamic_scale;      /* >= 1 */
  int64_t dynamic_min;        /* the symbol's bounds, inclusive */
  int64_t dynamic_max;
} tpj_model_tensor_info_t;

/* Loads the artifact at `path` for `client` (borrowed: must outlive the
 * model). INVALID_ARGUMENT / DATA_LOSS naming the part and the reason for a
 * bad artifact, NOT_FOUND for a missing file; never reads out of bounds. */
tpj_status_t tpj_model_load(tpj_client_t* client, const char* path,
                            tpj_model_t** out_model) TPJ_MUST_USE;
/* Checks an artifact held in memory without a client (no upload, no
 * compile): everything tpj_model_load checks before it touches a device.
 * What the fuzzer and `tpj-run --check` call. */
tpj_status_t tpj_model_check_bytes(const uint8_t* bytes, size_t len) TPJ_MUST_USE;
/* tpj_model_check_bytes on the file at `path`, opened and mapped as
 * tpj_model_load does (NOT_FOUND for a missing file; errors name the path). */
tpj_status_t tpj_model_check_file(const char* path) TPJ_MUST_USE;
void tpj_model_retain(tpj_model_t* model);
void tpj_model_release(tpj_model_t* model);

size_t tpj_model_num_inputs(const tpj_model_t* model);
size_t tpj_model_num_outputs(const tpj_model_t* model);
/* Borrowed; NULL past the end. */
const tpj_model_tensor_info_t* tpj_model_input(const tpj_model_t* model, size_t index);
const tpj_model_tensor_info_t* tpj_model_output(const tpj_model_t* model, size_t index);
/* The manifest's JSON text (borrowed, NUL-terminated). */
const char* tpj_model_manifest(const tpj_model_t* model);
/* The buckets (sizes of the dynamic symbol) with a program, ascending; one
 * entry (0) for a static model. */
size_t tpj_model_num_buckets(const tpj_model_t* model);
int64_t tpj_model_bucket(const tpj_model_t* model, size_t index);
/* How many programs came from serialized executables (not compiled). */
size_t tpj_model_num_deserialized(const tpj_model_t* model);

/* Runs the model on host inputs (borrowed; dtype and dims checked against
 * the manifest, the dynamic symbol within its bounds). Fills outputs[i]
 * (dtype, dims, data malloc'ed by the library: free with
 * tpj_host_tensor_free). On error no output holds data. */
tpj_status_t tpj_model_run(tpj_model_t* model, const tpj_host_tensor_t* inputs,
                           size_t num_inputs, tpj_host_tensor_t* outputs,
                           size_t num_outputs) TPJ_MUST_USE;

#ifdef __cplusplus
}
#endif

#endif /* TPJ_MODEL_H_ */
