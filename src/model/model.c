/* model.c: tpj_model_load and the model's lifetime. A load maps the file,
 * checks every part (model_parts.c), uploads the weights once, and makes one
 * tpj_program_t per bucket from a serialized executable when the plugin is
 * the one that wrote it, else by compiling (through the compile cache). The
 * file is unmapped before the load returns: nothing borrows from it. */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/model_run.h"

static tpj_status_t map_file(const char* path, void** out_map, size_t* out_len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    return tpj_status_make(err == ENOENT ? TPJ_STATUS_NOT_FOUND : TPJ_STATUS_INVALID_ARGUMENT,
                           __FILE__, __LINE__, "model: cannot open %s: %s", path,
                           strerror(err));
  }
  struct stat st;
  tpj_status_t s = NULL;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    s = TPJ_STATUS(INVALID_ARGUMENT, "model: %s is not a regular file", path);
  } else if (st.st_size == 0) {
    s = TPJ_STATUS(INVALID_ARGUMENT, "model: %s is empty (0 bytes, expected a .tpj artifact)", path);
  } else {
    void* map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
      s = TPJ_STATUS(INVALID_ARGUMENT, "model: cannot map %s: %s", path, strerror(errno));
    } else {
      *out_map = map;
      *out_len = (size_t)st.st_size;
    }
  }
  close(fd);
  return s;
}

/* Uploads every weight some program takes, once. */
static tpj_status_t upload_weights(tpj_model_t* m) {
  const tpj_safetensors_t* w = &m->parts.weights;
  m->weight_buffers = calloc(w->count ? w->count : 1, sizeof(*m->weight_buffers));
  if (!m->weight_buffers) return TPJ_STATUS(RESOURCE_EXHAUSTED, "model: out of memory");
  for (size_t p = 0; p < m->parts.manifest.num_programs; ++p) {
    const tpj_manifest_program_t* prog = &m->parts.manifest.programs[p];
    for (size_t i = 0; i < prog->num_params; ++i) {
      if (prog->params[i].is_input) continue;
      const tpj_safetensor_t* t = tpj_safetensors_find(w, prog->params[i].weight);
      size_t k = (size_t)(t - w->tensors);
      if (m->weight_buffers[k]) continue;
      tpj_status_t s = tpj_buffer_from_host(m->client, t->data, t->dtype, t->dims,
                                            (size_t)t->rank, 0, TPJ_HOST_SEMANTICS_COPY,
                                            &m->weight_buffers[k]);
      if (s) return tpj_status_annotate(s, "model: uploading weight \"%s\"", t->name);
      tpj_runtime_metrics_add_bytes_h2d(t->nbytes);
    }
  }
  return NULL;
}

/* The serialized executable for program `index` that this client's plugin
 * wrote, or NULL. */
static const tpj_manifest_executable_t* matching_executable(const tpj_model_t* m, size_t index) {
  tpj_plugin_info_t info;
  tpj_plugin_get_info(tpj_client_plugin(m->client), &info);
  const char* platform = tpj_client_platform_name(m->client);
  const char* version = tpj_client_platform_version(m->client);
  for (size_t i = 0; i < m->parts.manifest.num_executables; ++i) {
    const tpj_manifest_executable_t* e = &m->parts.manifest.executables[i];
    if (e->program == index && !strcmp(e->platform, platform ? platform : "") &&
        !strcmp(e->platform_version, version ? version : "") &&
        e->api_major == info.api_major && e->api_minor == info.api_minor &&
        e->xla_version == info.xla_version) {
      return e;
    }
  }
  return NULL;
}

/* Program `index`'s executable: deserialized when it matches the plugin (a
 * failure is logged and falls back to compiling), else compiled. */
static tpj_status_t program_executable(tpj_model_t* m, size_t index,
                                       tpj_cached_executable_t** out) {
  const tpj_manifest_program_t* p = &m->parts.manifest.programs[index];
  const tpj_artifact_part_t* text = tpj_artifact_find(&m->parts.artifact, p->part);
  const tpj_manifest_executable_t* e = matching_executable(m, index);
  if (e) {
    const tpj_artifact_part_t* bin = tpj_artifact_find(&m->parts.artifact, e->part);
    tpj_executable_t* exe = NULL;
    tpj_status_t s = tpj_executable_deserialize(m->client, bin->data, bin->size, &exe);
    if (!s) {
      ++m->num_deserialized;
      return tpj_runtime_cache_adopt(m->client, (const char*)text->data, text->size, NULL,
                                     exe, out);
    }
    TPJ_LOG(WARNING, "model: executable \"%s\" did not load, compiling instead: %s", e->part,
            tpj_status_message(s));
    tpj_status_free(s);
  }
  tpj_status_t s = tpj_runtime_compile_cached(m->client, (const char*)text->data, text->size,
                                              NULL, out, NULL);
  return s ? tpj_status_annotate(s, "model: program \"%s\"", p->part) : NULL;
}

/* The executable returns what the manifest says: its outputs (and dtypes,
 * where the plugin tells), then the check result when there are checks. */
static tpj_status_t check_results(const tpj_model_t* m, size_t index, tpj_executable_t* exe) {
  const tpj_manifest_program_t* p = &m->parts.manifest.programs[index];
  size_t want = m->parts.manifest.num_outputs + (p->num_checks ? 1 : 0);
  size_t got = tpj_executable_num_outputs(exe);
  if (got != want) {
    return TPJ_STATUS(INVALID_ARGUMENT, "model: program \"%s\" has %zu results (expected %zu: "
                      "the manifest's outputs%s)", p->part, got, want,
                      p->num_checks ? " and the check result" : "");
  }
  tpj_dtype_t dtypes[64];
  if (got > 64) return NULL;
  tpj_status_t s = tpj_executable_output_dtypes(exe, dtypes, got);
  if (s) {  /* the plugin does not say: the run's size checks still hold */
    tpj_status_free(s);
    return NULL;
  }
  for (size_t i = 0; i < m->parts.manifest.num_outputs; ++i) {
    if (dtypes[i] != m->parts.manifest.outputs[i].dtype) {
      return TPJ_STATUS(INVALID_ARGUMENT, "model: program \"%s\" result %zu is %s (expected "
                        "%s, output \"%s\")", p->part, i, tpj_dtype_name(dtypes[i]),
                        tpj_dtype_name(m->parts.manifest.outputs[i].dtype),
                        m->parts.manifest.outputs[i].name);
    }
  }
  return NULL;
}

static tpj_status_t make_program(tpj_model_t* m, size_t index) {
  const tpj_manifest_program_t* p = &m->parts.manifest.programs[index];
  tpj_model_program_t* mp = &m->programs[index];
  mp->weights = calloc(p->num_params ? p->num_params : 1, sizeof(*mp->weights));
  tpj_program_input_t* plan = calloc(p->num_params ? p->num_params : 1, sizeof(*plan));
  if (!mp->weights || !plan) {
    free(plan);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "model: out of memory");
  }
  for (size_t i = 0; i < p->num_params; ++i) {
    plan[i].kind = TPJ_PROGRAM_INPUT_BUFFER;
    plan[i].donate = p->params[i].is_input;  /* a run's own upload; weights are kept */
    if (p->params[i].is_input) continue;
    const tpj_safetensor_t* t = tpj_safetensors_find(&m->parts.weights, p->params[i].weight);
    mp->weights[i] = m->weight_buffers[t - m->parts.weights.tensors];
  }
  tpj_cached_executable_t* exe = NULL;
  tpj_status_t s = program_executable(m, index, &exe);
  if (!s) s = check_results(m, index, tpj_cached_executable_get(exe));
  if (!s) {
    tpj_program_plan_t pp = {.name = p->part, .inputs = plan, .num_inputs = p->num_params,
                             .checks = p->checks, .num_checks = p->num_checks};
    s = tpj_program_create(exe, &pp, &mp->program);
  }
  tpj_cached_executable_release(exe);
  free(plan);
  return s;
}

static void model_destroy(tpj_model_t* m) {
  for (size_t i = 0; m->programs && i < m->parts.manifest.num_programs; ++i) {
    tpj_program_release(m->programs[i].program);
    free(m->programs[i].weights);
  }
  free(m->programs);
  for (size_t i = 0; m->weight_buffers && i < m->parts.weights.count; ++i) {
    tpj_buffer_destroy(m->weight_buffers[i]);
  }
  free(m->weight_buffers);
  tpj_arena_deinit(&m->arena);
  free(m);
}

static tpj_status_t model_build(tpj_model_t* m, const uint8_t* bytes, size_t len) {
  TPJ_RETURN_IF_ERROR(tpj_model_parts_parse(bytes, len, &m->arena, &m->parts));
  TPJ_RETURN_IF_ERROR(upload_weights(m));
  m->programs = calloc(m->parts.manifest.num_programs, sizeof(*m->programs));
  if (!m->programs) return TPJ_STATUS(RESOURCE_EXHAUSTED, "model: out of memory");
  for (size_t i = 0; i < m->parts.manifest.num_programs; ++i) {
    TPJ_RETURN_IF_ERROR(make_program(m, i));
  }
  /* Nothing may point into the file once it is unmapped. */
  for (size_t i = 0; i < m->parts.weights.count; ++i) m->parts.weights.tensors[i].data = NULL;
  for (size_t i = 0; i < m->parts.artifact.count; ++i) m->parts.artifact.parts[i].data = NULL;
  return NULL;
}

tpj_status_t tpj_model_load(tpj_client_t* client, const char* path, tpj_model_t** out_model) {
  TPJ_CHECK_ARG(client && path && out_model, "model: load needs a client, a path and "
                "out_model");
  *out_model = NULL;
  void* map = NULL;
  size_t len = 0;
  TPJ_RETURN_IF_ERROR(map_file(path, &map, &len));
  tpj_model_t* m = calloc(1, sizeof(*m));
  if (!m) {
    munmap(map, len);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "model: out of memory");
  }
  atomic_init(&m->refs, 1);
  m->client = client;
  tpj_arena_init(&m->arena, 1 << 16);
  tpj_status_t s = model_build(m, (const uint8_t*)map, len);
  munmap(map, len);
  if (s) {
    model_destroy(m);
    return tpj_status_annotate(s, "%s", path);
  }
  *out_model = m;
  return NULL;
}

tpj_status_t tpj_model_check_file(const char* path) {
  TPJ_CHECK_ARG(path, "model: check needs a path");
  void* map = NULL;
  size_t len = 0;
  TPJ_RETURN_IF_ERROR(map_file(path, &map, &len));
  tpj_status_t s = tpj_model_check_bytes((const uint8_t*)map, len);
  munmap(map, len);
  return s ? tpj_status_annotate(s, "%s", path) : NULL;
}

void tpj_model_retain(tpj_model_t* model) {
  if (model) atomic_fetch_add(&model->refs, 1);
}

void tpj_model_release(tpj_model_t* model) {
  if (model && atomic_fetch_sub(&model->refs, 1) == 1) model_destroy(model);
}

size_t tpj_model_num_inputs(const tpj_model_t* m) { return m ? m->parts.manifest.num_inputs : 0; }

size_t tpj_model_num_outputs(const tpj_model_t* m) {
  return m ? m->parts.manifest.num_outputs : 0;
}

const tpj_model_tensor_info_t* tpj_model_input(const tpj_model_t* m, size_t index) {
  return m && index < m->parts.manifest.num_inputs ? &m->parts.manifest.inputs[index] : NULL;
}

const tpj_model_tensor_info_t* tpj_model_output(const tpj_model_t* m, size_t index) {
  return m && index < m->parts.manifest.num_outputs ? &m->parts.manifest.outputs[index] : NULL;
}

const char* tpj_model_manifest(const tpj_model_t* m) { return m ? m->parts.manifest_text : ""; }

size_t tpj_model_num_buckets(const tpj_model_t* m) {
  return m ? m->parts.manifest.num_programs : 0;
}

int64_t tpj_model_bucket(const tpj_model_t* m, size_t index) {
  return m && index < m->parts.manifest.num_programs ? m->parts.manifest.programs[index].bucket
                                                     : -1;
}

size_t tpj_model_num_deserialized(const tpj_model_t* m) { return m ? m->num_deserialized : 0; }
