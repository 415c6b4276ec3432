/* manifest.c: the artifact manifest (docs/artifact.md), read from JSON into
 * checked structs: dtypes from the dtype table, ranks, sizes, the symbol and
 * its buckets, each program's parameters and checks. Outside input: every
 * field's type and range is checked, and errors name the field. */
#include <stdio.h>
#include <string.h>

#include "model/json.h"
#include "model/model_internal.h"

/* Field names in messages ("inputs[3].shape[0]") are cut at WHAT_SIZE bytes;
 * that cut is fine, so GCC's truncation warning is off for this file. */
#pragma GCC diagnostic ignored "-Wformat-truncation"
#define WHAT_SIZE 96
/* Sizes are kept well inside int64 so that c * symbol and byte counts stay exact. */
#define MAX_SIZE ((int64_t)1 << 40)

static void *alloc_array(tpj_arena_t* arena, size_t count, size_t size) {
  return tpj_arena_alloc(arena, count ? count * size : 1);
}

/* "manifest: inputs[0].dtype" (or "manifest: inputs" at the top level). */
static void field_name(char* what, const char* where, const char* key) {
  snprintf(what, WHAT_SIZE, "manifest: %s%s%s", where, *where ? "." : "", key);
}

static tpj_status_t oom(void) {
  return TPJ_STATUS(RESOURCE_EXHAUSTED, "manifest: out of memory");
}

/* `obj[key]` as a string copied into the arena. */
static tpj_status_t get_str(const tpj_json_t* obj, const char* key, const char* where,
                            tpj_arena_t* arena, const char** out) {
  char what[WHAT_SIZE];
  field_name(what, where, key);
  const char* s = NULL;
  TPJ_RETURN_IF_ERROR(tpj_json_str(tpj_json_get(obj, key), what, &s));
  *out = tpj_arena_strdup(arena, s, strlen(s));
  return *out ? NULL : oom();
}

static tpj_status_t get_int(const tpj_json_t* obj, const char* key, const char* where,
                            int64_t min, int64_t max, int64_t* out) {
  char what[WHAT_SIZE];
  field_name(what, where, key);
  return tpj_json_int(tpj_json_get(obj, key), min, max, what, out);
}

static tpj_status_t get_array(const tpj_json_t* obj, const char* key, const char* where,
                              const tpj_json_t** out) {
  char what[WHAT_SIZE];
  field_name(what, where, key);
  *out = tpj_json_get(obj, key);
  return tpj_json_expect(*out, TPJ_JSON_ARRAY, what);
}

/* One shape entry: a size, or {"scale": c} at dim 0 when there is a symbol. */
static tpj_status_t parse_dim(const tpj_json_t* dim, size_t d, const char* where,
                              const tpj_manifest_t* m, tpj_model_tensor_info_t* info) {
  char what[WHAT_SIZE];
  snprintf(what, sizeof(what), "manifest: %s.shape[%zu]", where, d);
  if (dim && dim->kind == TPJ_JSON_OBJECT) {
    if (!m->has_symbol || d != 0) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: a dynamic size is allowed only at dim 0 of "
                        "a model with a symbol (format 1)", what);
    }
    if (dim->count != 1) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: expected {\"scale\": c} only", what);
    }
    int64_t scale = 0;
    TPJ_RETURN_IF_ERROR(get_int(dim, "scale", where, 1, MAX_SIZE / (m->symbol_max + 1),
                                &scale));
    info->dims[d] = -1;
    info->dynamic_dim = 0;
    info->dynamic_scale = scale;
    info->dynamic_min = m->symbol_min;
    info->dynamic_max = m->symbol_max;
    return NULL;
  }
  return tpj_json_int(dim, 0, MAX_SIZE, what, &info->dims[d]);
}

static tpj_status_t parse_tensor(const tpj_json_t* t, const char* where, const tpj_manifest_t* m,
                                 tpj_arena_t* arena, tpj_model_tensor_info_t* info) {
  char what[WHAT_SIZE];
  snprintf(what, sizeof(what), "manifest: %s", where);
  TPJ_RETURN_IF_ERROR(tpj_json_expect(t, TPJ_JSON_OBJECT, what));
  memset(info, 0, sizeof(*info));
  info->dynamic_dim = -1;
  TPJ_RETURN_IF_ERROR(get_str(t, "name", where, arena, &info->name));
  const char* dtype = NULL;
  TPJ_RETURN_IF_ERROR(get_str(t, "dtype", where, arena, &dtype));
  info->dtype = tpj_dtype_from_name(dtype);
  if (info->dtype == TPJ_DTYPE_INVALID) {
    return TPJ_STATUS(INVALID_ARGUMENT, "manifest: %s.dtype: unknown dtype \"%s\" (expected "
                      "one of the dtype table's names, e.g. \"float32\")", where, dtype);
  }
  const tpj_json_t* shape = NULL;
  TPJ_RETURN_IF_ERROR(get_array(t, "shape", where, &shape));
  if (shape->count > TPJ_MAX_RANK) {
    return TPJ_STATUS(INVALID_ARGUMENT, "manifest: %s.shape: rank too large (got %zu, "
                      "expected <= %d)", where, shape->count, TPJ_MAX_RANK);
  }
  info->rank = (int32_t)shape->count;
  for (size_t d = 0; d < shape->count; ++d) {
    TPJ_RETURN_IF_ERROR(parse_dim(shape->items[d], d, where, m, info));
  }
  int64_t dims[TPJ_MAX_RANK];
  tpj_manifest_dims_at(info, m->has_symbol ? m->symbol_max : 0, dims);
  tpj_status_t s = tpj_host_tensor_size(info->dtype, info->rank, dims, NULL, NULL);
  return s ? tpj_status_annotate(s, "manifest: %s", where) : NULL;
}

static tpj_status_t parse_tensors(const tpj_json_t* root, const char* key,
                                  const tpj_manifest_t* m, tpj_arena_t* arena,
                                  tpj_model_tensor_info_t** out, size_t* out_count) {
  const tpj_json_t* list = NULL;
  TPJ_RETURN_IF_ERROR(get_array(root, key, "", &list));
  tpj_model_tensor_info_t* infos = alloc_array(arena, list->count, sizeof(*infos));
  if (!infos) return oom();
  for (size_t i = 0; i < list->count; ++i) {
    char where[WHAT_SIZE];
    snprintf(where, sizeof(where), "%s[%zu]", key, i);
    TPJ_RETURN_IF_ERROR(parse_tensor(list->items[i], where, m, arena, &infos[i]));
    for (size_t j = 0; j < i; ++j) {
      if (!strcmp(infos[j].name, infos[i].name)) {
        return TPJ_STATUS(INVALID_ARGUMENT, "manifest: %s: name \"%s\" appears twice", where,
                          infos[i].name);
      }
    }
  }
  *out = infos;
  *out_count = list->count;
  return NULL;
}

static tpj_status_t parse_symbol(const tpj_json_t* root, tpj_arena_t* arena, tpj_manifest_t* m) {
  const tpj_json_t* sym = tpj_json_get(root, "symbol");
  TPJ_CHECK_ARG(sym, "manifest: symbol is missing (expected an object or null)");
  if (sym->kind == TPJ_JSON_NULL) return NULL;
  TPJ_RETURN_IF_ERROR(tpj_json_expect(sym, TPJ_JSON_OBJECT, "manifest: symbol"));
  m->has_symbol = true;
  TPJ_RETURN_IF_ERROR(get_str(sym, "name", "symbol", arena, &m->symbol_name));
  TPJ_RETURN_IF_ERROR(get_int(sym, "min", "symbol", 0, MAX_SIZE, &m->symbol_min));
  TPJ_RETURN_IF_ERROR(get_int(sym, "max", "symbol", 1, MAX_SIZE, &m->symbol_max));
  if (m->symbol_min > m->symbol_max) {
    return TPJ_STATUS(INVALID_ARGUMENT, "manifest: symbol %s: min %lld > max %lld",
                      m->symbol_name, (long long)m->symbol_min, (long long)m->symbol_max);
  }
  return NULL;
}

void tpj_manifest_dims_at(const tpj_model_tensor_info_t* info, int64_t value,
                          int64_t* out_dims) {
  for (int32_t d = 0; d < info->rank; ++d) {
    out_dims[d] = d == info->dynamic_dim ? info->dynamic_scale * value : info->dims[d];
  }
}

static tpj_status_t parse_param(const tpj_json_t* p, const char* where, const tpj_manifest_t* m,
                                tpj_arena_t* arena, tpj_manifest_param_t* out) {
  char what[WHAT_SIZE];
  snprintf(what, sizeof(what), "manifest: %s", where);
  TPJ_RETURN_IF_ERROR(tpj_json_expect(p, TPJ_JSON_OBJECT, what));
  if (p->count != 1) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expected {\"input\": i} or {\"weight\": name}",
                      what);
  }
  if (tpj_json_get(p, "input")) {
    if (m->num_inputs == 0) {
      return TPJ_STATUS(INVALID_ARGUMENT, "%s: names an input of a model without inputs",
                        what);
    }
    int64_t i = 0;
    TPJ_RETURN_IF_ERROR(get_int(p, "input", where, 0, (int64_t)m->num_inputs - 1, &i));
    out->is_input = true;
    out->input = (size_t)i;
    return NULL;
  }
  out->is_input = false;
  return get_str(p, "weight", where, arena, &out->weight);
}

static tpj_status_t parse_check(const tpj_json_t* c, const char* where, tpj_arena_t* arena,
                                tpj_check_t* out) {
  char what[WHAT_SIZE];
  snprintf(what, sizeof(what), "manifest: %s", where);
  TPJ_RETURN_IF_ERROR(tpj_json_expect(c, TPJ_JSON_OBJECT, what));
  const char* kind = NULL;
  TPJ_RETURN_IF_ERROR(get_str(c, "kind", where, arena, &kind));
  if (!strcmp(kind, "index")) {
    out->kind = TPJ_CHECK_KIND_INDEX;
  } else if (!strcmp(kind, "div_zero")) {
    out->kind = TPJ_CHECK_KIND_DIV_ZERO;
  } else {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s.kind: unknown check kind \"%s\" (expected "
                      "\"index\" or \"div_zero\")", what, kind);
  }
  return get_str(c, "message", where, arena, &out->message);
}

static tpj_status_t parse_program(const tpj_json_t* p, size_t index, const tpj_manifest_t* m,
                                  tpj_arena_t* arena, tpj_manifest_program_t* out) {
  char where[WHAT_SIZE];
  snprintf(where, sizeof(where), "programs[%zu]", index);
  TPJ_RETURN_IF_ERROR(tpj_json_expect(p, TPJ_JSON_OBJECT, "manifest: programs[]"));
  TPJ_RETURN_IF_ERROR(get_str(p, "part", where, arena, &out->part));
  int64_t lo = m->has_symbol ? 1 : 0, hi = m->has_symbol ? m->symbol_max : 0;
  TPJ_RETURN_IF_ERROR(get_int(p, "bucket", where, lo, hi, &out->bucket));
  const tpj_json_t* params = NULL;
  TPJ_RETURN_IF_ERROR(get_array(p, "params", where, &params));
  out->params = alloc_array(arena, params->count, sizeof(*out->params));
  if (!out->params) return oom();
  out->num_params = params->count;
  for (size_t i = 0; i < params->count; ++i) {
    char w[WHAT_SIZE];
    snprintf(w, sizeof(w), "%s.params[%zu]", where, i);
    TPJ_RETURN_IF_ERROR(parse_param(params->items[i], w, m, arena, &out->params[i]));
  }
  const tpj_json_t* checks = NULL;
  TPJ_RETURN_IF_ERROR(get_array(p, "checks", where, &checks));
  out->checks = alloc_array(arena, checks->count, sizeof(*out->checks));
  if (!out->checks) return oom();
  out->num_checks = checks->count;
  for (size_t i = 0; i < checks->count; ++i) {
    char w[WHAT_SIZE];
    snprintf(w, sizeof(w), "%s.checks[%zu]", where, i);
    TPJ_RETURN_IF_ERROR(parse_check(checks->items[i], w, arena, &out->checks[i]));
  }
  return NULL;
}

/* One program per bucket, ascending, the last at the symbol's max. */
static tpj_status_t parse_programs(const tpj_json_t* root, tpj_arena_t* arena, tpj_manifest_t* m) {
  const tpj_json_t* list = NULL;
  TPJ_RETURN_IF_ERROR(get_array(root, "programs", "", &list));
  if (list->count == 0 || (!m->has_symbol && list->count != 1)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "manifest: programs: bad count (got %zu, expected %s)",
                      list->count, m->has_symbol ? "at least 1" : "1 for a static model");
  }
  m->programs = alloc_array(arena, list->count, sizeof(*m->programs));
  if (!m->programs) return oom();
  m->num_programs = list->count;
  for (size_t i = 0; i < list->count; ++i) {
    TPJ_RETURN_IF_ERROR(parse_program(list->items[i], i, m, arena, &m->programs[i]));
    if (i > 0 && m->programs[i].bucket <= m->programs[i - 1].bucket) {
      return TPJ_STATUS(INVALID_ARGUMENT, "manifest: programs[%zu].bucket: buckets must "
                        "ascend (got %lld after %lld)", i, (long long)m->programs[i].bucket,
                        (long long)m->programs[i - 1].bucket);
    }
  }
  int64_t last = m->programs[list->count - 1].bucket;
  if (m->has_symbol && last != m->symbol_max) {
    return TPJ_STATUS(INVALID_ARGUMENT, "manifest: programs: the last bucket must be the "
                      "symbol's max (got %lld, expected %lld)", (long long)last,
                      (long long)m->symbol_max);
  }
  return NULL;
}

static tpj_status_t parse_executable(const tpj_json_t* e, size_t index, const tpj_manifest_t* m,
                                     tpj_arena_t* arena, tpj_manifest_executable_t* out) {
  char where[WHAT_SIZE];
  snprintf(where, sizeof(where), "executables[%zu]", index);
  TPJ_RETURN_IF_ERROR(tpj_json_expect(e, TPJ_JSON_OBJECT, "manifest: executables[]"));
  TPJ_RETURN_IF_ERROR(get_str(e, "part", where, arena, &out->part));
  int64_t program = 0;
  TPJ_RETURN_IF_ERROR(get_int(e, "program", where, 0, (int64_t)m->num_programs - 1, &program));
  out->program = (size_t)program;
  TPJ_RETURN_IF_ERROR(get_str(e, "platform", where, arena, &out->platform));
  TPJ_RETURN_IF_ERROR(get_str(e, "platform_version", where, arena, &out->platform_version));
  TPJ_RETURN_IF_ERROR(get_int(e, "xla_version", where, INT64_MIN, INT64_MAX,
                              &out->xla_version));
  const tpj_json_t* api = NULL;
  TPJ_RETURN_IF_ERROR(get_array(e, "api", where, &api));
  if (api->count != 2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "manifest: %s.api: expected [major, minor]", where);
  }
  char what[WHAT_SIZE];
  snprintf(what, sizeof(what), "manifest: %s.api", where);
  TPJ_RETURN_IF_ERROR(tpj_json_int(api->items[0], 0, INT32_MAX, what, &out->api_major));
  return tpj_json_int(api->items[1], 0, INT32_MAX, what, &out->api_minor);
}

static tpj_status_t parse_executables(const tpj_json_t* root, tpj_arena_t* arena,
                                      tpj_manifest_t* m) {
  const tpj_json_t* list = tpj_json_get(root, "executables");
  if (!list) return NULL;
  TPJ_RETURN_IF_ERROR(tpj_json_expect(list, TPJ_JSON_ARRAY, "manifest: executables"));
  m->executables = alloc_array(arena, list->count, sizeof(*m->executables));
  if (!m->executables) return oom();
  m->num_executables = list->count;
  for (size_t i = 0; i < list->count; ++i) {
    TPJ_RETURN_IF_ERROR(parse_executable(list->items[i], i, m, arena, &m->executables[i]));
  }
  return NULL;
}

/* With a symbol, some input must carry it (the runner reads its value there). */
static tpj_status_t check_symbol_use(const tpj_manifest_t* m) {
  if (!m->has_symbol) return NULL;
  for (size_t i = 0; i < m->num_inputs; ++i) {
    if (m->inputs[i].dynamic_dim >= 0) return NULL;
  }
  return TPJ_STATUS(INVALID_ARGUMENT, "manifest: symbol %s: no input has a dynamic size "
                    "(expected at least one)", m->symbol_name);
}

static tpj_status_t check_format(const tpj_json_t* root) {
  const tpj_json_t* format = tpj_json_get(root, "format");
  const char* f = NULL;
  TPJ_RETURN_IF_ERROR(tpj_json_str(format, "manifest: format", &f));
  if (strcmp(f, "tpj-model") != 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "manifest: format: got \"%s\", expected "
                      "\"tpj-model\"", f);
  }
  int64_t version = 0;
  TPJ_RETURN_IF_ERROR(tpj_json_int(tpj_json_get(root, "version"), INT64_MIN, INT64_MAX,
                                   "manifest: version", &version));
  if (version != TPJ_ARTIFACT_VERSION) {
    return TPJ_STATUS(INVALID_ARGUMENT, "manifest: unsupported version (got %lld, expected "
                      "%d)", (long long)version, TPJ_ARTIFACT_VERSION);
  }
  return NULL;
}

tpj_status_t tpj_manifest_parse(const char* text, size_t len, tpj_arena_t* arena,
                                tpj_manifest_t* out) {
  TPJ_CHECK_ARG(arena && out, "manifest: arena or out is NULL");
  memset(out, 0, sizeof(*out));
  tpj_json_t* root = NULL;
  tpj_status_t s = tpj_json_parse(text, len, arena, &root);
  if (s) return tpj_status_annotate(s, "manifest");
  TPJ_RETURN_IF_ERROR(tpj_json_expect(root, TPJ_JSON_OBJECT, "manifest"));
  TPJ_RETURN_IF_ERROR(check_format(root));
  TPJ_RETURN_IF_ERROR(parse_symbol(root, arena, out));
  TPJ_RETURN_IF_ERROR(parse_tensors(root, "inputs", out, arena, &out->inputs,
                                    &out->num_inputs));
  TPJ_RETURN_IF_ERROR(parse_tensors(root, "outputs", out, arena, &out->outputs,
                                    &out->num_outputs));
  TPJ_RETURN_IF_ERROR(check_symbol_use(out));
  TPJ_RETURN_IF_ERROR(parse_programs(root, arena, out));
  return parse_executables(root, arena, out);
}
