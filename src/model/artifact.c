/* artifact.c: the .tpj container (docs/artifact.md): a 64-byte header, a table
 * of named, checksummed parts, and the parts. Everything is outside input, so
 * every field is checked before a byte of a part is trusted. */
#include <stdio.h>
#include <string.h>

#include "model/model_internal.h"

static const char kMagic[8] = {'T', 'P', 'J', 'M', 'O', 'D', 'E', 'L'};

static uint32_t read_u32(const uint8_t* p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t read_u64(const uint8_t* p) {
  return (uint64_t)read_u32(p) | (uint64_t)read_u32(p + 4) << 32;
}

static bool all_zero(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i]) return false;
  }
  return true;
}

static bool digest_matches(const uint8_t* data, size_t len, const uint8_t* expected) {
  tpj_digest_t d;
  tpj_sha256_bytes(data, len, &d);
  return memcmp(d.bytes, expected, sizeof(d.bytes)) == 0;
}

static tpj_status_t check_header(const uint8_t* bytes, size_t len, uint32_t* out_count) {
  if (len < TPJ_ARTIFACT_HEADER_SIZE) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: file too short for the header (got %zu "
                      "bytes, expected at least %d)", len, TPJ_ARTIFACT_HEADER_SIZE);
  }
  if (memcmp(bytes, kMagic, sizeof(kMagic)) != 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: bad magic (expected \"TPJMODEL\"): not a "
                      ".tpj model");
  }
  uint32_t version = read_u32(bytes + 8);
  if (version != TPJ_ARTIFACT_VERSION) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: unsupported format version (got %u, "
                      "expected %d)", version, TPJ_ARTIFACT_VERSION);
  }
  uint32_t count = read_u32(bytes + 12);
  if (count < 1 || count > TPJ_ARTIFACT_MAX_PARTS) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: bad part count (got %u, expected 1..%d)",
                      count, TPJ_ARTIFACT_MAX_PARTS);
  }
  if (!all_zero(bytes + 48, 16)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: reserved header bytes 48..63 are not zero");
  }
  size_t table_end = TPJ_ARTIFACT_HEADER_SIZE + (size_t)count * TPJ_ARTIFACT_ENTRY_SIZE;
  if (table_end > len) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: part table runs past the end of the file "
                      "(%u parts end at byte %zu, file has %zu)", count, table_end, len);
  }
  if (!digest_matches(bytes + TPJ_ARTIFACT_HEADER_SIZE, table_end - TPJ_ARTIFACT_HEADER_SIZE,
                      bytes + 16)) {
    return TPJ_STATUS(DATA_LOSS, "artifact: part table checksum mismatch (the file is "
                      "damaged)");
  }
  *out_count = count;
  return NULL;
}

/* A part name: 1..63 bytes of [a-z0-9_./-], NUL-padded. */
static tpj_status_t check_name(const uint8_t* field, size_t index, size_t* out_len) {
  size_t n = 0;
  while (n < TPJ_ARTIFACT_NAME_SIZE && field[n]) ++n;
  if (n == 0 || n == TPJ_ARTIFACT_NAME_SIZE) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: part %zu: bad name length (got %zu, "
                      "expected 1..%d)", index, n, TPJ_ARTIFACT_NAME_SIZE - 1);
  }
  for (size_t i = 0; i < n; ++i) {
    uint8_t c = field[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
              c == '/' || c == '-';
    if (!ok) {
      return TPJ_STATUS(INVALID_ARGUMENT, "artifact: part %zu: bad name byte 0x%02x at %zu "
                        "(expected [a-z0-9_./-])", index, c, i);
    }
  }
  if (!all_zero(field + n, TPJ_ARTIFACT_NAME_SIZE - n)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: part %zu: name is not NUL-padded", index);
  }
  *out_len = n;
  return NULL;
}

static tpj_status_t parse_entry(const uint8_t* bytes, size_t len, size_t index,
                                uint64_t min_offset, tpj_arena_t* arena,
                                tpj_artifact_part_t* out) {
  const uint8_t* e = bytes + TPJ_ARTIFACT_HEADER_SIZE + index * TPJ_ARTIFACT_ENTRY_SIZE;
  size_t name_len = 0;
  TPJ_RETURN_IF_ERROR(check_name(e, index, &name_len));
  char* name = tpj_arena_strdup(arena, (const char*)e, name_len);
  if (!name) return TPJ_STATUS(RESOURCE_EXHAUSTED, "artifact: out of memory");
  uint64_t offset = read_u64(e + 64), size = read_u64(e + 72);
  if (!all_zero(e + 112, 16)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: part \"%s\": reserved bytes are not zero",
                      name);
  }
  if (offset % TPJ_ARTIFACT_ALIGN != 0 || offset < min_offset) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: part \"%s\": bad offset (got %llu, "
                      "expected a multiple of %d at or after %llu)", name,
                      (unsigned long long)offset, TPJ_ARTIFACT_ALIGN,
                      (unsigned long long)min_offset);
  }
  if (offset > len || size > len - offset) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: part \"%s\": bytes [%llu, +%llu) run past "
                      "the end of the file (%zu bytes): truncated?", name,
                      (unsigned long long)offset, (unsigned long long)size, len);
  }
  if (!digest_matches(bytes + offset, (size_t)size, e + 80)) {
    return TPJ_STATUS(DATA_LOSS, "artifact: part \"%s\": checksum mismatch (the file is "
                      "damaged)", name);
  }
  out->name = name;
  out->data = bytes + offset;
  out->size = (size_t)size;
  return NULL;
}

tpj_status_t tpj_artifact_parse(const uint8_t* bytes, size_t len, tpj_arena_t* arena,
                                tpj_artifact_t* out) {
  TPJ_CHECK_ARG(bytes || len == 0, "artifact: bytes is NULL");
  TPJ_CHECK_ARG(arena && out, "artifact: arena or out is NULL");
  memset(out, 0, sizeof(*out));
  uint32_t count = 0;
  TPJ_RETURN_IF_ERROR(check_header(bytes, len, &count));
  tpj_artifact_part_t* parts = tpj_arena_alloc(arena, count * sizeof(*parts));
  if (!parts) return TPJ_STATUS(RESOURCE_EXHAUSTED, "artifact: out of memory");
  uint64_t next = TPJ_ARTIFACT_HEADER_SIZE + (uint64_t)count * TPJ_ARTIFACT_ENTRY_SIZE;
  for (size_t i = 0; i < count; ++i) {
    TPJ_RETURN_IF_ERROR(parse_entry(bytes, len, i, next, arena, &parts[i]));
    for (size_t j = 0; j < i; ++j) {
      if (!strcmp(parts[j].name, parts[i].name)) {
        return TPJ_STATUS(INVALID_ARGUMENT, "artifact: part \"%s\" appears twice",
                          parts[i].name);
      }
    }
    next = (uint64_t)(parts[i].data - bytes) + parts[i].size;
  }
  out->parts = parts;
  out->count = count;
  return NULL;
}

const tpj_artifact_part_t* tpj_artifact_find(const tpj_artifact_t* artifact, const char* name) {
  if (!artifact || !name) return NULL;
  for (size_t i = 0; i < artifact->count; ++i) {
    if (!strcmp(artifact->parts[i].name, name)) return &artifact->parts[i];
  }
  return NULL;
}
