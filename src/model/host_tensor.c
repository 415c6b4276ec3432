/* host_tensor.c: the size arithmetic and the free of tpj_host_tensor_t, the
 * host-memory tensor that tpj_model_run, the .npy reader and tpj-run pass
 * around. Shapes come from outside input (manifests, .npy headers), so every
 * product is checked for overflow before anything is allocated from it. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/model.h"

/* Checks rank and dims; stores the product of the nonzero dims in
 * *out_nonzero and whether any dim is zero in *out_any_zero. A zero dim does
 * not excuse the others: their product must fit too, so that a shape like
 * (2^62, 2^62, 0) is refused instead of reaching code that computes strides
 * from it. */
static tpj_status_t host_dims_product(int32_t rank, const int64_t* dims, size_t* out_nonzero,
                                      bool* out_any_zero) {
  TPJ_CHECK_ARG(rank >= 0 && rank <= TPJ_MAX_RANK,
                "host tensor: bad rank (got %d, expected 0..%d)", (int)rank, TPJ_MAX_RANK);
  TPJ_CHECK_ARG(rank == 0 || dims, "host tensor: dims is NULL (got rank %d)", (int)rank);
  size_t nonzero = 1;
  bool any_zero = false;
  for (int32_t i = 0; i < rank; ++i) {
    int64_t d = dims[i];
    TPJ_CHECK_ARG(d >= 0, "host tensor: negative dim (got %lld at dim %d, expected >= 0)",
                  (long long)d, (int)i);
    if (d == 0) {
      any_zero = true;
      continue;
    }
    if ((uint64_t)d > SIZE_MAX || nonzero > SIZE_MAX / (size_t)d) {
      return TPJ_STATUS(INVALID_ARGUMENT,
                        "host tensor: element count overflows size_t (got dim %lld at "
                        "dim %d after a product of %zu)", (long long)d, (int)i, nonzero);
    }
    nonzero *= (size_t)d;
  }
  *out_nonzero = nonzero;
  *out_any_zero = any_zero;
  return NULL;
}

tpj_status_t tpj_host_tensor_size(tpj_dtype_t dtype, int32_t rank, const int64_t* dims,
                                  size_t* out_numel, size_t* out_nbytes) {
  if (out_numel) *out_numel = 0;
  if (out_nbytes) *out_nbytes = 0;
  size_t itemsize = tpj_dtype_size(dtype);
  TPJ_CHECK_ARG(itemsize > 0, "host tensor: bad dtype (got %d, expected a dtype of the table)",
                (int)dtype);
  size_t nonzero = 1;
  bool any_zero = false;
  TPJ_RETURN_IF_ERROR(host_dims_product(rank, dims, &nonzero, &any_zero));
  if (nonzero > SIZE_MAX / itemsize) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "host tensor: byte size overflows size_t (got %zu elements of %zu "
                      "bytes)", nonzero, itemsize);
  }
  size_t numel = any_zero ? 0 : nonzero;
  if (out_numel) *out_numel = numel;
  if (out_nbytes) *out_nbytes = numel * itemsize;
  return NULL;
}

void tpj_host_tensor_free(tpj_host_tensor_t* t) {
  if (!t) return;
  free(t->data);
  memset(t, 0, sizeof(*t));
}
