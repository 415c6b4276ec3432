/* model_internal.h: the pieces of a .tpj artifact (docs/artifact.md) as the
 * loader sees them: the container's parts, the checked manifest, and the
 * check of everything together. tpj_model_load and tpj_model_check_bytes
 * share these, so what the fuzzer checks is what a load checks. */
#ifndef TPJ_MODEL_INTERNAL_H_
#define TPJ_MODEL_INTERNAL_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/safetensors.h"
#include "tpj/base.h"
#include "tpj/ir.h"
#include "tpj/model.h"

#define TPJ_ARTIFACT_VERSION 1
#define TPJ_ARTIFACT_HEADER_SIZE 64
#define TPJ_ARTIFACT_ENTRY_SIZE 128
#define TPJ_ARTIFACT_MAX_PARTS 4096
#define TPJ_ARTIFACT_NAME_SIZE 64
#define TPJ_ARTIFACT_ALIGN 64

/* --------------------------------------------------------------- container -- */

typedef struct tpj_artifact_part_s {
  const char* name;     /* arena */
  const uint8_t* data;  /* (size) into the artifact bytes */
  size_t size;
} tpj_artifact_part_t;

typedef struct tpj_artifact_s {
  tpj_artifact_part_t* parts; /* (count) in table order; arena */
  size_t count;
} tpj_artifact_t;

/* Checks the container (magic, version, table checksum, each part's name,
 * alignment, bounds, order and SHA-256) and lists its parts. */
tpj_status_t tpj_artifact_parse(const uint8_t* bytes, size_t len, tpj_arena_t* arena,
                                tpj_artifact_t* out) TPJ_MUST_USE;
/* The part called `name`, or NULL. */
const tpj_artifact_part_t* tpj_artifact_find(const tpj_artifact_t* artifact, const char* name);

/* ---------------------------------------------------------------- manifest -- */

typedef struct tpj_manifest_param_s {
  bool is_input;        /* true: user input `input`; false: weight `weight` */
  size_t input;
  const char* weight;   /* arena */
} tpj_manifest_param_t;

typedef struct tpj_manifest_program_s {
  const char* part;             /* arena */
  int64_t bucket;               /* the symbol's value it was compiled for; 0 if static */
  tpj_manifest_param_t* params; /* (num_params) */
  size_t num_params;
  tpj_check_t* checks;          /* (num_checks) messages in the arena */
  size_t num_checks;
} tpj_manifest_program_t;

typedef struct tpj_manifest_executable_s {
  const char* part;
  size_t program;
  const char* platform;
  const char* platform_version;
  int64_t api_major, api_minor, xla_version;
} tpj_manifest_executable_t;

typedef struct tpj_manifest_s {
  bool has_symbol;
  const char* symbol_name;
  int64_t symbol_min, symbol_max;
  tpj_model_tensor_info_t* inputs;  /* (num_inputs) */
  size_t num_inputs;
  tpj_model_tensor_info_t* outputs; /* (num_outputs) */
  size_t num_outputs;
  tpj_manifest_program_t* programs; /* (num_programs), buckets ascending */
  size_t num_programs;
  tpj_manifest_executable_t* executables; /* (num_executables) */
  size_t num_executables;
} tpj_manifest_t;

/* Parses and checks the manifest JSON on its own (types, ranks, names,
 * buckets, parameter references within the manifest). */
tpj_status_t tpj_manifest_parse(const char* text, size_t len, tpj_arena_t* arena,
                                tpj_manifest_t* out) TPJ_MUST_USE;
/* The dims of `info` with the symbol set to `value`. */
void tpj_manifest_dims_at(const tpj_model_tensor_info_t* info, int64_t value,
                          int64_t* out_dims);

/* -------------------------------------------------------------- everything -- */

typedef struct tpj_model_parts_s {
  tpj_artifact_t artifact;
  tpj_manifest_t manifest;
  tpj_safetensors_t weights;
  const char* manifest_text;        /* arena, NUL-terminated */
} tpj_model_parts_t;

/* Container, manifest and weights, and how they fit together: every part a
 * program or executable names exists, every weight a program takes exists. */
tpj_status_t tpj_model_parts_parse(const uint8_t* bytes, size_t len, tpj_arena_t* arena,
                                   tpj_model_parts_t* out) TPJ_MUST_USE;

#endif /* TPJ_MODEL_INTERNAL_H_ */
