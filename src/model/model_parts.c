/* model_parts.c: an artifact checked as a whole, before anything touches a
 * device: the container, the manifest, the weights, and that the names they
 * use for each other resolve. tpj_model_load and tpj_model_check_bytes (the
 * fuzzer's entry) both start here. */
#include <stdio.h>
#include <string.h>

#include "model/model_internal.h"

#define MANIFEST_PART "manifest.json"
#define WEIGHTS_PART "weights.safetensors"

static tpj_status_t find_part(const tpj_artifact_t* a, const char* name, const char* who,
                              const tpj_artifact_part_t** out) {
  *out = tpj_artifact_find(a, name);
  if (!*out) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: %s names part \"%s\", which the file "
                      "does not have", who, name);
  }
  return NULL;
}

static tpj_status_t check_program(const tpj_model_parts_t* parts, size_t index) {
  const tpj_manifest_program_t* p = &parts->manifest.programs[index];
  char who[48];
  snprintf(who, sizeof(who), "programs[%zu]", index);
  const tpj_artifact_part_t* part = NULL;
  TPJ_RETURN_IF_ERROR(find_part(&parts->artifact, p->part, who, &part));
  if (part->size == 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "artifact: program part \"%s\" is empty", p->part);
  }
  for (size_t i = 0; i < p->num_params; ++i) {
    const tpj_manifest_param_t* param = &p->params[i];
    if (param->is_input) continue;
    if (!tpj_safetensors_find(&parts->weights, param->weight)) {
      return TPJ_STATUS(INVALID_ARGUMENT, "artifact: %s.params[%zu] names weight \"%s\", "
                        "which %s does not hold", who, i, param->weight, WEIGHTS_PART);
    }
  }
  return NULL;
}

static tpj_status_t check_references(const tpj_model_parts_t* parts) {
  for (size_t i = 0; i < parts->manifest.num_programs; ++i) {
    TPJ_RETURN_IF_ERROR(check_program(parts, i));
  }
  for (size_t i = 0; i < parts->manifest.num_executables; ++i) {
    char who[48];
    snprintf(who, sizeof(who), "executables[%zu]", i);
    const tpj_artifact_part_t* part = NULL;
    TPJ_RETURN_IF_ERROR(find_part(&parts->artifact, parts->manifest.executables[i].part, who,
                                  &part));
  }
  return NULL;
}

tpj_status_t tpj_model_parts_parse(const uint8_t* bytes, size_t len, tpj_arena_t* arena,
                                   tpj_model_parts_t* out) {
  TPJ_CHECK_ARG(arena && out, "artifact: arena or out is NULL");
  memset(out, 0, sizeof(*out));
  TPJ_RETURN_IF_ERROR(tpj_artifact_parse(bytes, len, arena, &out->artifact));
  const tpj_artifact_part_t* manifest = NULL;
  TPJ_RETURN_IF_ERROR(find_part(&out->artifact, MANIFEST_PART, "the format", &manifest));
  char* text = tpj_arena_strdup(arena, (const char*)manifest->data, manifest->size);
  if (!text) return TPJ_STATUS(RESOURCE_EXHAUSTED, "artifact: out of memory");
  out->manifest_text = text;
  TPJ_RETURN_IF_ERROR(tpj_manifest_parse(text, manifest->size, arena, &out->manifest));
  const tpj_artifact_part_t* weights = NULL;
  TPJ_RETURN_IF_ERROR(find_part(&out->artifact, WEIGHTS_PART, "the format", &weights));
  tpj_status_t s = tpj_safetensors_parse(weights->data, weights->size, arena, &out->weights);
  if (s) return tpj_status_annotate(s, "artifact: part \"%s\"", WEIGHTS_PART);
  return check_references(out);
}

tpj_status_t tpj_model_check_bytes(const uint8_t* bytes, size_t len) {
  tpj_arena_t arena;
  tpj_arena_init(&arena, 1 << 16);
  tpj_model_parts_t parts;
  tpj_status_t s = tpj_model_parts_parse(bytes, len, &arena, &parts);
  tpj_arena_deinit(&arena);
  return s;
}
