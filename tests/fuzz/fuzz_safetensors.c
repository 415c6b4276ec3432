/* fuzz_safetensors.c: libFuzzer harness for the safetensors reader
 * (tpj_safetensors_parse), whose input is the weights file of any artifact a
 * user loads. Every input must parse or fail with a status, never read out of
 * bounds or leak; parsed tensors must tile the buffer and agree with shapes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/json.h"
#include "model/safetensors.h"

/* dtype size x dims; aborts on overflow, which the parser must have refused. */
static uint64_t tensor_bytes(const tpj_safetensor_t* t) {
  uint64_t n = tpj_dtype_size(t->dtype);
  if (n == 0 || !tpj_dtype_safetensors_name(t->dtype)) abort();
  if (t->rank < 0 || t->rank > TPJ_MAX_RANK) abort();
  for (int32_t i = 0; i < t->rank; ++i) {
    if (t->dims[i] < 0) abort();
    if (__builtin_mul_overflow(n, (uint64_t)t->dims[i], &n)) abort();
  }
  return n;
}

/* What a successful parse promises; anything else is a bug worth a crash. */
static void check_parsed(const uint8_t* data, size_t size, const tpj_safetensors_t* st) {
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | data[i];
  const uint8_t* buf = data + 8 + header_len;
  size_t buf_len = size - 8 - (size_t)header_len;
  uint64_t total = 0;
  volatile uint8_t sum = 0;
  for (size_t i = 0; i < st->count; ++i) {
    const tpj_safetensor_t* t = &st->tensors[i];
    if (!t->name || !t->name[0] || tpj_safetensors_find(st, t->name) != t) abort();
    if (tensor_bytes(t) != t->nbytes) abort();
    if (t->data < buf || t->data > buf + buf_len || (size_t)(buf + buf_len - t->data) < t->nbytes)
      abort();
    for (size_t j = 0; j < t->nbytes; ++j) sum ^= t->data[j]; /* ASan checks each byte */
    total += t->nbytes;
  }
  (void)sum;
  if (total != buf_len) abort(); /* no hole, no overlap: the sizes add up to the buffer */
  const tpj_json_t* meta = (const tpj_json_t*)st->metadata;
  if (meta) {
    if (meta->kind != TPJ_JSON_OBJECT) abort();
    for (size_t i = 0; i < meta->count; ++i) {
      if (meta->items[i]->kind != TPJ_JSON_STRING) abort();
    }
  }
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  /* A private copy of exactly `size` bytes, so reads past it are caught. */
  uint8_t* copy = (uint8_t*)malloc(size ? size : 1);
  if (!copy) return 0;
  if (size) memcpy(copy, data, size);
  tpj_arena_t arena;
  tpj_arena_init(&arena, 4096);
  tpj_safetensors_t st;
  tpj_status_t s = tpj_safetensors_parse(copy, size, &arena, &st);
  if (s) {
    if (tpj_status_code(s) != TPJ_STATUS_INVALID_ARGUMENT || st.count || st.tensors ||
        strncmp(tpj_status_message(s), "safetensors: ", 13))
      abort();
    tpj_status_free(s);
  } else {
    check_parsed(copy, size, &st);
  }
  tpj_arena_deinit(&arena);
  free(copy);
  return 0;
}
