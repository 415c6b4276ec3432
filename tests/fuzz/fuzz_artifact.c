/* fuzz_artifact.c: libFuzzer over the whole artifact check (container,
 * manifest, safetensors, references: tpj_model_check_bytes). Random bytes
 * rarely survive the SHA-256 checks, so each input is also checked a second
 * time with every checksum recomputed, which lets the mutations reach the
 * manifest and weight parsers behind them. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_internal.h"
#include "tpj/model.h"

static uint32_t get_u32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get_u64(const uint8_t* p) {
  return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static void put_digest(const uint8_t* data, size_t len, uint8_t* out) {
  tpj_digest_t d;
  tpj_sha256_bytes(data, len, &d);
  memcpy(out, d.bytes, sizeof(d.bytes));
}

/* Rewrites the part and table checksums of `b` where the fields allow it. */
static void fix_checksums(uint8_t* b, size_t len) {
  if (len < TPJ_ARTIFACT_HEADER_SIZE) return;
  uint32_t n = get_u32(b + 12);
  if (n == 0 || n > TPJ_ARTIFACT_MAX_PARTS ||
      TPJ_ARTIFACT_HEADER_SIZE + (size_t)n * TPJ_ARTIFACT_ENTRY_SIZE > len) {
    return;
  }
  for (uint32_t i = 0; i < n; ++i) {
    uint8_t* e = b + TPJ_ARTIFACT_HEADER_SIZE + (size_t)i * TPJ_ARTIFACT_ENTRY_SIZE;
    uint64_t off = get_u64(e + 64), size = get_u64(e + 72);
    if (off <= len && size <= len - off) put_digest(b + off, (size_t)size, e + 80);
  }
  put_digest(b + TPJ_ARTIFACT_HEADER_SIZE, (size_t)n * TPJ_ARTIFACT_ENTRY_SIZE, b + 16);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  tpj_status_free(tpj_model_check_bytes(data, size));
  uint8_t* copy = malloc(size ? size : 1);
  if (!copy) return 0;
  memcpy(copy, data, size);
  fix_checksums(copy, size);
  tpj_status_free(tpj_model_check_bytes(copy, size));
  free(copy);
  return 0;
}
