/* fuzz_manifest.c: libFuzzer over the manifest parser and checker
 * (tpj_manifest_parse) on raw JSON text, without the container around it. */
#include <stdint.h>

#include "model/model_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tpj_arena_t arena;
  tpj_arena_init(&arena, 1 << 14);
  tpj_manifest_t manifest;
  tpj_status_free(tpj_manifest_parse((const char*)data, size, &arena, &manifest));
  tpj_arena_deinit(&arena);
  return 0;
}
