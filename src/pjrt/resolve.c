/* resolve.c: turns a plugin spec ("cpu", "cuda", "tpu" or a path) into the
 * path of a plugin file, searching the given directories or
 * $TORCH_PJRT_PLUGIN_PATH, and says everywhere it looked when nothing fits
 * (and, for a named plugin, which package provides it).
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pjrt/pjrt_internal.h"

/* Relative locations inside a search directory (site-packages). */
static const char* const kCpuFiles[] = {"xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so", NULL};
static const char* const kCudaFiles[] = {"jax_plugins/xla_cuda13/xla_cuda_plugin.so",
                                         "jax_plugins/xla_cuda12/xla_cuda_plugin.so", NULL};
static const char* const kTpuFiles[] = {"libtpu/libtpu.so", NULL};

/* The named specs: where each plugin lives and what to install when it is
 * missing (the extras of pyproject.toml; the CPU plugin is a plain
 * dependency of torch-pjrt). */
typedef struct {
  const char* name;
  const char* const* files;
  const char* install;
} named_plugin_t;

static const named_plugin_t kNamed[] = {
    {"cpu", kCpuFiles, "pip install xla-cpu-pjrt"},
    {"cuda", kCudaFiles, "pip install 'torch-pjrt[cuda]'"},
    {"tpu", kTpuFiles, "pip install 'torch-pjrt[tpu]'"},
};

static const named_plugin_t* find_named(const char* spec) {
  for (size_t i = 0; i < sizeof(kNamed) / sizeof(kNamed[0]); ++i) {
    if (!strcmp(spec, kNamed[i].name)) return &kNamed[i];
  }
  return NULL;
}

static bool is_path_spec(const char* spec) {
  size_t n = strlen(spec);
  return strchr(spec, '/') || (n > 3 && !strcmp(spec + n - 3, ".so"));
}

/* Checks one candidate; on a hit stores a malloc'ed copy in *out_path. */
static bool try_candidate(const char* path, tpj_strbuf_t* tried, char** out_path) {
  if (access(path, R_OK) == 0) {
    *out_path = tpj_pjrt_strndup(path, strlen(path));
    return true;
  }
  tpj_strbuf_printf(tried, "%s%s", tried->len ? ", " : "", path);
  return false;
}

static bool try_dir(const char* dir, size_t dir_len, const char* const* files,
                    tpj_strbuf_t* tried, char** out_path) {
  for (size_t i = 0; files[i]; ++i) {
    tpj_strbuf_t path;
    tpj_strbuf_init(&path);
    tpj_strbuf_append(&path, dir, dir_len);
    if (dir_len && dir[dir_len - 1] != '/') tpj_strbuf_puts(&path, "/");
    tpj_strbuf_puts(&path, files[i]);
    bool hit = path.data && try_candidate(path.data, tried, out_path);
    tpj_strbuf_deinit(&path);
    if (hit) return true;
  }
  return false;
}

/* Walks the explicit dirs, or the colon-separated env list when count == 0. */
static bool search_dirs(const char* const* dirs, size_t count, const char* const* files,
                        tpj_strbuf_t* tried, char** out_path) {
  if (count > 0) {
    for (size_t i = 0; i < count; ++i) {
      if (dirs[i] && try_dir(dirs[i], strlen(dirs[i]), files, tried, out_path)) return true;
    }
    return false;
  }
  const char* env = getenv("TORCH_PJRT_PLUGIN_PATH");
  if (!env || !*env) {
    tpj_strbuf_printf(tried, "%s(no search directories: TORCH_PJRT_PLUGIN_PATH is unset)",
                      tried->len ? ", " : "");
    return false;
  }
  for (const char* p = env; ; ) {
    const char* colon = strchr(p, ':');
    size_t len = colon ? (size_t)(colon - p) : strlen(p);
    if (len && try_dir(p, len, files, tried, out_path)) return true;
    if (!colon) break;
    p = colon + 1;
  }
  return false;
}

tpj_status_t tpj_plugin_resolve(const char* spec, const char* const* search_dirs_in,
                                size_t count, char** out_path) {
  TPJ_CHECK_ARG(out_path, "tpj_plugin_resolve: out_path is NULL");
  *out_path = NULL;
  if (!spec || !*spec) spec = getenv("TORCH_PJRT_PLUGIN");
  if (!spec || !*spec) spec = "cpu";

  const named_plugin_t* named = find_named(spec);
  const char* const* files = named ? named->files : NULL;
  if (!named && !is_path_spec(spec)) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "unknown plugin spec \"%s\" (expected cpu, cuda, tpu or a path to "
                      "a .so file)", spec);
  }

  tpj_strbuf_t tried;
  tpj_strbuf_init(&tried);
  bool hit = false;
  if (!files) {
    hit = try_candidate(spec, &tried, out_path);
  } else {
    const char* tpu_env = files == kTpuFiles ? getenv("TPU_LIBRARY_PATH") : NULL;
    if (tpu_env && *tpu_env) hit = try_candidate(tpu_env, &tried, out_path);
    if (!hit) hit = search_dirs(search_dirs_in, count, files, &tried, out_path);
  }
  tpj_status_t st = NULL;
  if (hit && !*out_path) {
    st = TPJ_STATUS(RESOURCE_EXHAUSTED, "tpj_plugin_resolve: out of memory");
  } else if (!hit && named) {
    st = TPJ_STATUS(NOT_FOUND, "plugin \"%s\" not found (install it with: %s); tried: %s", spec,
                    named->install, tried.data ? tried.data : "(nothing)");
  } else if (!hit) {
    st = TPJ_STATUS(NOT_FOUND, "plugin \"%s\" not found; tried: %s", spec,
                    tried.data ? tried.data : "(nothing)");
  }
  tpj_strbuf_deinit(&tried);
  return st;
}
