/* fuzz_npy.c: libFuzzer harness for the .npy reader (tpj_npy_parse), whose
 * input is any file a user hands tpj-run. Every input must parse or fail
 * with a status, never read out of bounds or leak; a parsed view must
 * describe bytes that lie inside the input and agree with its shape. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/model.h"
#include "tpj/npy.h"

/* What a successful parse promises; anything else is a bug worth a crash. */
static void check_view(const uint8_t* data, size_t size, const tpj_host_tensor_t* v) {
  size_t numel = 0, nbytes = 0;
  tpj_status_t s = tpj_host_tensor_size(v->dtype, v->rank, v->dims, &numel, &nbytes);
  if (s || nbytes != v->nbytes) abort();
  if (!tpj_dtype_npy_descr(v->dtype)) abort();
  const uint8_t* p = (const uint8_t*)v->data;
  if (p < data || p > data + size || (size_t)(data + size - p) != v->nbytes) abort();
  /* Touch every byte so ASan sees any view past the input. */
  volatile uint8_t sum = 0;
  for (size_t i = 0; i < v->nbytes; ++i) sum ^= p[i];
  (void)sum;
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  /* A private copy of exactly `size` bytes, so reads past it are caught. */
  uint8_t* copy = (uint8_t*)malloc(size ? size : 1);
  if (!copy) return 0;
  if (size) memcpy(copy, data, size);
  tpj_host_tensor_t view;
  tpj_status_t s = tpj_npy_parse(copy, size, &view);
  if (s) {
    if (tpj_status_code(s) == TPJ_STATUS_OK || !tpj_status_message(s)[0]) abort();
    tpj_status_free(s);
  } else {
    check_view(copy, size, &view);
  }
  free(copy);
  return 0;
}
