/* safetensors.h: the safetensors weight format (8-byte little-endian header
 * length, a JSON header, the byte buffer), parsed strictly because weights
 * are outside input: header bounds, dtype size x shape = byte length,
 * offsets inside the buffer, sorted without overlaps or holes. */
#ifndef TPJ_MODEL_SAFETENSORS_H_
#define TPJ_MODEL_SAFETENSORS_H_

#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"
#include "tpj/ir.h"

typedef struct tpj_safetensor_s {
  const char* name;           /* arena */
  tpj_dtype_t dtype;
  int32_t rank;
  int64_t dims[TPJ_MAX_RANK]; /* (rank) */
  const uint8_t* data;        /* into the parsed bytes (borrowed) */
  size_t nbytes;
} tpj_safetensor_t;

typedef struct tpj_safetensors_s {
  tpj_safetensor_t* tensors;  /* (count) in header order; arena */
  size_t count;
  const void* metadata;       /* the "__metadata__" object (tpj_json_t*) or NULL */
} tpj_safetensors_t;

/* Parses the safetensors image `bytes` (len bytes). Tensors point into
 * `bytes`. INVALID_ARGUMENT "safetensors: <what> (got X, expected Y)" naming
 * the tensor for any violation; dtypes outside the dtype table (F8_*) are
 * refused. Dtype spellings come from the one dtype table
 * (tpj_dtype_from_safetensors, tpj/ir.h). */
tpj_status_t tpj_safetensors_parse(const uint8_t* bytes, size_t len, tpj_arena_t* arena,
                                   tpj_safetensors_t* out) TPJ_MUST_USE;
/* The tensor called `name`, or NULL. */
const tpj_safetensor_t* tpj_safetensors_find(const tpj_safetensors_t* st, const char* name);

#endif /* TPJ_MODEL_SAFETENSORS_H_ */
