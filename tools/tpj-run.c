/* tpj-run: the Python-free runner of a `.tpj` model artifact. It loads a PJRT
 * plugin, the model and one .npy file per input, runs the model, writes its
 * outputs as .npy files and prints one summary line (with --bench, latency
 * percentiles); --check only validates the artifact. Links libtpj statically. */
#include <errno.h>
#include <glob.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tpj/model.h"
#include "tpj/npy.h"
#include "tpj/pjrt.h"
#include "tpj/runtime.h"

#define RUN_MAX_BENCH 1000000L

static const char kUsage[] =
    "usage: tpj-run MODEL.tpj [INPUT.npy ...] [-o OUTDIR] [--plugin cpu|cuda|tpu|PATH]\n"
    "               [--bench N] [--check] [-h]\n"
    "Runs a .tpj model artifact (torch_pjrt.export.save) on .npy inputs, one per model\n"
    "input in order, and writes OUTDIR/output_<i>.npy. No Python, no libtorch.\n"
    "  -o OUTDIR      where the outputs go (default \"out\", created if missing)\n"
    "  --plugin SPEC  cpu, cuda, tpu or the path of a plugin .so (default\n"
    "                 $TORCH_PJRT_PLUGIN, else cpu), searched in $TORCH_PJRT_PLUGIN_PATH,\n"
    "                 else in <bin>/../lib/python3*/site-packages\n"
    "  --bench N      after one warm-up run, time N runs: ms per run p50 and p99\n"
    "  --check        only check the artifact (no plugin, no run) and print \"ok\"\n"
    "  -h, --help     this help\n"
    "bfloat16 inputs are read from float32 .npy files (rounded to nearest even);\n"
    "bfloat16 outputs are written as float32 (exactly).\n"
    "Exit status: 0 success, 1 error, 2 usage error.\n";

typedef struct run_args_s {
  const char* model;
  const char** inputs; /* (num_inputs) borrowed from argv; the array is malloc'ed */
  size_t num_inputs;
  const char* outdir;
  const char* plugin;  /* NULL: $TORCH_PJRT_PLUGIN, else "cpu" */
  long bench;          /* 0: no benchmark */
  bool check;
  bool help;
} run_args_t;

/* Everything a run owns, freed by run_ctx_free on every path. */
typedef struct run_ctx_s {
  run_args_t args;
  tpj_client_t* client;
  tpj_model_t* model;
  tpj_host_tensor_t* inputs;  /* (args.num_inputs) */
  tpj_host_tensor_t* outputs; /* (num_outputs) */
  size_t num_outputs;
  double* times_ms;           /* (args.bench) */
} run_ctx_t;

/* -------------------------------------------------------------- arguments -- */

static tpj_status_t run_parse_count(const char* text, long* out) {
  char* end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || !end || *end || end == text || v < 1 || v > RUN_MAX_BENCH) {
    return TPJ_STATUS(INVALID_ARGUMENT, "bad --bench count (got \"%s\", expected an integer "
                      "in 1..%ld)", text, RUN_MAX_BENCH);
  }
  *out = v;
  return NULL;
}

/* The value of an option: "--opt=V" or the next argument. */
static tpj_status_t run_option_value(int argc, char** argv, int* i, const char* name,
                                     const char** out) {
  size_t n = strlen(name);
  if (argv[*i][n] == '=') {
    *out = argv[*i] + n + 1;
    return NULL;
  }
  if (*i + 1 >= argc) return TPJ_STATUS(INVALID_ARGUMENT, "%s needs a value", name);
  *out = argv[++*i];
  return NULL;
}

static bool run_is_option(const char* arg, const char* name) {
  size_t n = strlen(name);
  return !strncmp(arg, name, n) && (arg[n] == '\0' || (name[1] == '-' && arg[n] == '='));
}

static tpj_status_t run_parse_option(int argc, char** argv, int* i, run_args_t* a) {
  const char* arg = argv[*i];
  const char* value = NULL;
  if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
    a->help = true;
  } else if (!strcmp(arg, "--check")) {
    a->check = true;
  } else if (!strcmp(arg, "-o") || run_is_option(arg, "--output")) {
    TPJ_RETURN_IF_ERROR(run_option_value(argc, argv, i, arg[1] == 'o' ? "-o" : "--output",
                                         &value));
    if (!*value) return TPJ_STATUS(INVALID_ARGUMENT, "-o needs a directory (got \"\")");
    a->outdir = value;
  } else if (run_is_option(arg, "--plugin")) {
    TPJ_RETURN_IF_ERROR(run_option_value(argc, argv, i, "--plugin", &value));
    if (!*value) return TPJ_STATUS(INVALID_ARGUMENT, "--plugin needs a spec (got \"\")");
    a->plugin = value;
  } else if (run_is_option(arg, "--bench")) {
    TPJ_RETURN_IF_ERROR(run_option_value(argc, argv, i, "--bench", &value));
    TPJ_RETURN_IF_ERROR(run_parse_count(value, &a->bench));
  } else {
    return TPJ_STATUS(INVALID_ARGUMENT, "unknown option \"%s\"", arg);
  }
  return NULL;
}

static tpj_status_t run_parse_args(int argc, char** argv, run_args_t* a) {
  memset(a, 0, sizeof(*a));
  a->outdir = "out";
  a->inputs = (const char**)calloc((size_t)(argc > 0 ? argc : 1), sizeof(char*));
  if (!a->inputs) return TPJ_STATUS(RESOURCE_EXHAUSTED, "out of memory");
  bool positional_only = false;
  for (int i = 1; i < argc; ++i) {
    const char* arg = argv[i];
    if (!positional_only && !strcmp(arg, "--")) {
      positional_only = true;
    } else if (!positional_only && arg[0] == '-' && arg[1] != '\0') {
      TPJ_RETURN_IF_ERROR(run_parse_option(argc, argv, &i, a));
    } else if (!a->model) {
      a->model = arg;
    } else {
      a->inputs[a->num_inputs++] = arg;
    }
  }
  if (a->help) return NULL;
  if (!a->model) return TPJ_STATUS(INVALID_ARGUMENT, "no model given (expected MODEL.tpj)");
  if (a->check && a->num_inputs) {
    return TPJ_STATUS(INVALID_ARGUMENT, "--check takes only the model (got %zu inputs)",
                      a->num_inputs);
  }
  return NULL;
}

/* ----------------------------------------------------------------- plugin -- */

/* Resolves the plugin: $TORCH_PJRT_PLUGIN_PATH when set, else the
 * site-packages next to this binary, so that an installed wheel's
 * bin/tpj-run finds the plugin installed in the same environment. */
static tpj_status_t run_resolve_plugin(const char* spec, char** out_path) {
  const char* env = getenv("TORCH_PJRT_PLUGIN_PATH");
  if (env && *env) return tpj_plugin_resolve(spec, NULL, 0, out_path);
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n <= 0) {
    return TPJ_STATUS(NOT_FOUND, "cannot find the plugin's directory: /proc/self/exe: %s "
                      "(set TORCH_PJRT_PLUGIN_PATH)", strerror(errno));
  }
  exe[n] = '\0';
  char* slash = strrchr(exe, '/');
  if (slash) *slash = '\0';
  char pattern[PATH_MAX + 64];
  snprintf(pattern, sizeof(pattern), "%s/../lib/python3*/site-packages", exe);
  glob_t g;
  memset(&g, 0, sizeof(g));
  const char* fallback[1] = {pattern}; /* named in the NOT_FOUND message */
  tpj_status_t s;
  if (glob(pattern, GLOB_ONLYDIR, NULL, &g) == 0 && g.gl_pathc > 0) {
    s = tpj_plugin_resolve(spec, (const char* const*)g.gl_pathv, g.gl_pathc, out_path);
  } else {
    s = tpj_plugin_resolve(spec, fallback, 1, out_path);
  }
  globfree(&g);
  return s;
}

static tpj_status_t run_open_client(const char* spec, tpj_client_t** out_client) {
  char* path = NULL;
  TPJ_RETURN_IF_ERROR(run_resolve_plugin(spec, &path));
  tpj_plugin_t* plugin = NULL; /* lives for the process; never freed */
  tpj_status_t s = tpj_plugin_load(path, &plugin);
  free(path);
  TPJ_RETURN_IF_ERROR(s);
  return tpj_client_create(plugin, NULL, 0, out_client);
}

/* ------------------------------------------------------------ formatting -- */

static void run_format_tensor(tpj_strbuf_t* sb, const tpj_host_tensor_t* t) {
  tpj_strbuf_printf(sb, "%s[", tpj_dtype_name(t->dtype));
  for (int32_t i = 0; i < t->rank; ++i) {
    tpj_strbuf_printf(sb, "%s%lld", i ? "," : "", (long long)t->dims[i]);
  }
  tpj_strbuf_puts(sb, "]");
}

/* "x: float32[N,3] (N in 1..64)" from the manifest's declaration. */
static void run_format_info(tpj_strbuf_t* sb, const tpj_model_tensor_info_t* info) {
  tpj_strbuf_printf(sb, "%s: %s[", info->name, tpj_dtype_name(info->dtype));
  for (int32_t i = 0; i < info->rank; ++i) {
    if (i) tpj_strbuf_puts(sb, ",");
    if (i == info->dynamic_dim && info->dynamic_scale != 1) {
      tpj_strbuf_printf(sb, "%lldN", (long long)info->dynamic_scale);
    } else if (i == info->dynamic_dim) {
      tpj_strbuf_puts(sb, "N");
    } else {
      tpj_strbuf_printf(sb, "%lld", (long long)info->dims[i]);
    }
  }
  tpj_strbuf_puts(sb, "]");
  if (info->dynamic_dim >= 0) {
    tpj_strbuf_printf(sb, " (N in %lld..%lld)", (long long)info->dynamic_min,
                      (long long)info->dynamic_max);
  }
}

static tpj_status_t run_count_error(const tpj_model_t* model, size_t got) {
  size_t want = tpj_model_num_inputs(model);
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  for (size_t i = 0; i < want; ++i) {
    if (i) tpj_strbuf_puts(&sb, "; ");
    run_format_info(&sb, tpj_model_input(model, i));
  }
  tpj_status_t s = TPJ_STATUS(INVALID_ARGUMENT,
                              "wrong number of inputs (got %zu .npy files, expected %zu: %s)",
                              got, want, want ? (sb.data ? sb.data : "?") : "none");
  tpj_strbuf_deinit(&sb);
  return s;
}

/* --------------------------------------------------------------- bfloat16 -- */

/* float32 -> bfloat16, round to nearest even; NaN stays a (quiet) NaN. */
static uint16_t run_f32_to_bf16(uint32_t bits) {
  if ((bits & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((bits >> 16) | 0x40u);
  uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
  return (uint16_t)((bits + rounding) >> 16);
}

/* Replaces t's data: bfloat16 <-> float32 (to_bf16 says which way). */
static tpj_status_t run_convert_bf16(tpj_host_tensor_t* t, bool to_bf16) {
  size_t numel = t->nbytes / (to_bf16 ? 4 : 2);
  size_t nbytes = numel * (to_bf16 ? 2 : 4);
  void* data = malloc(nbytes ? nbytes : 1);
  if (!data) return TPJ_STATUS(RESOURCE_EXHAUSTED, "out of memory (got %zu bytes)", nbytes);
  for (size_t i = 0; i < numel; ++i) {
    if (to_bf16) {
      uint32_t bits;
      memcpy(&bits, (const uint8_t*)t->data + 4 * i, 4);
      uint16_t half = run_f32_to_bf16(bits);
      memcpy((uint8_t*)data + 2 * i, &half, 2);
    } else {
      uint16_t half;
      memcpy(&half, (const uint8_t*)t->data + 2 * i, 2);
      uint32_t bits = (uint32_t)half << 16;
      memcpy((uint8_t*)data + 4 * i, &bits, 4);
    }
  }
  free(t->data);
  t->data = data;
  t->nbytes = nbytes;
  t->dtype = to_bf16 ? TPJ_DTYPE_BF16 : TPJ_DTYPE_F32;
  return NULL;
}

/* ----------------------------------------------------------------- inputs -- */

/* dtype, rank and static dims against the manifest, naming the file. */
static tpj_status_t run_check_input(const tpj_model_tensor_info_t* info,
                                    const tpj_host_tensor_t* t) {
  bool ok = t->dtype == info->dtype && t->rank == info->rank;
  for (int32_t i = 0; ok && i < t->rank; ++i) {
    ok = i == info->dynamic_dim || t->dims[i] == info->dims[i];
  }
  if (ok) return NULL;
  tpj_strbuf_t got, want;
  tpj_strbuf_init(&got);
  tpj_strbuf_init(&want);
  run_format_tensor(&got, t);
  run_format_info(&want, info);
  tpj_status_t s = TPJ_STATUS(INVALID_ARGUMENT, "input does not match the model (got %s, "
                              "expected %s)", got.data ? got.data : "?",
                              want.data ? want.data : "?");
  tpj_strbuf_deinit(&got);
  tpj_strbuf_deinit(&want);
  return s;
}

static tpj_status_t run_load_inputs(run_ctx_t* c) {
  size_t n = c->args.num_inputs;
  if (n != tpj_model_num_inputs(c->model)) return run_count_error(c->model, n);
  c->inputs = (tpj_host_tensor_t*)calloc(n ? n : 1, sizeof(tpj_host_tensor_t));
  if (!c->inputs) return TPJ_STATUS(RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < n; ++i) {
    const char* path = c->args.inputs[i];
    TPJ_RETURN_IF_ERROR(tpj_npy_load(path, &c->inputs[i]));
    const tpj_model_tensor_info_t* info = tpj_model_input(c->model, i);
    tpj_status_t s = NULL;
    if (info->dtype == TPJ_DTYPE_BF16 && c->inputs[i].dtype == TPJ_DTYPE_F32) {
      s = run_convert_bf16(&c->inputs[i], true);
    }
    if (!s) s = run_check_input(info, &c->inputs[i]);
    if (s) return tpj_status_annotate(s, "input %zu '%s' (%s)", i, info->name, path);
  }
  return NULL;
}

/* ---------------------------------------------------------------- outputs -- */

/* mkdir -p. */
static tpj_status_t run_make_dirs(const char* dir) {
  char path[PATH_MAX];
  size_t n = strlen(dir);
  if (n >= sizeof(path)) return TPJ_STATUS(INVALID_ARGUMENT, "output directory name too long");
  memcpy(path, dir, n + 1);
  for (size_t i = 1; i <= n; ++i) {
    if (path[i] != '/' && path[i] != '\0') continue;
    char saved = path[i];
    path[i] = '\0';
    if (mkdir(path, 0777) != 0 && errno != EEXIST) {
      int err = errno;
      return tpj_status_make(err == EACCES ? TPJ_STATUS_PERMISSION_DENIED
                                           : TPJ_STATUS_INVALID_ARGUMENT, __FILE__, __LINE__,
                             "cannot create output directory '%s': %s", path, strerror(err));
    }
    path[i] = saved;
  }
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "output path '%s' is not a directory", dir);
  }
  return NULL;
}

static tpj_status_t run_write_outputs(run_ctx_t* c) {
  TPJ_RETURN_IF_ERROR(run_make_dirs(c->args.outdir));
  for (size_t i = 0; i < c->num_outputs; ++i) {
    tpj_host_tensor_t* t = &c->outputs[i];
    if (t->dtype == TPJ_DTYPE_BF16) TPJ_RETURN_IF_ERROR(run_convert_bf16(t, false));
    char path[PATH_MAX];
    int len = snprintf(path, sizeof(path), "%s/output_%zu.npy", c->args.outdir, i);
    if (len < 0 || (size_t)len >= sizeof(path)) {
      return TPJ_STATUS(INVALID_ARGUMENT, "output path too long (got %d bytes)", len);
    }
    TPJ_RETURN_IF_ERROR(tpj_npy_save(path, t));
  }
  return NULL;
}

static void run_free_outputs(run_ctx_t* c) {
  for (size_t i = 0; c->outputs && i < c->num_outputs; ++i) tpj_host_tensor_free(&c->outputs[i]);
}

/* ------------------------------------------------------------------- runs -- */

static tpj_status_t run_model_once(run_ctx_t* c) {
  run_free_outputs(c);
  return tpj_model_run(c->model, c->inputs, c->args.num_inputs, c->outputs, c->num_outputs);
}

static double run_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int run_cmp_double(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y ? 1 : 0;
}

/* N timed runs after the warm-up; appends the percentiles to sb. */
static tpj_status_t run_bench(run_ctx_t* c, tpj_strbuf_t* sb) {
  size_t n = (size_t)c->args.bench;
  c->times_ms = (double*)malloc(n * sizeof(double));
  if (!c->times_ms) return TPJ_STATUS(RESOURCE_EXHAUSTED, "out of memory");
  for (size_t i = 0; i < n; ++i) {
    double start = run_now_ms();
    TPJ_RETURN_IF_ERROR(run_model_once(c));
    c->times_ms[i] = run_now_ms() - start;
  }
  qsort(c->times_ms, n, sizeof(double), run_cmp_double);
  size_t p50 = (n * 50 + 99) / 100 - 1, p99 = (n * 99 + 99) / 100 - 1; /* nearest rank */
  tpj_strbuf_printf(sb, " | ms per run p50 %.3f p99 %.3f (%zu runs)", c->times_ms[p50],
                    c->times_ms[p99], n);
  return NULL;
}

static void run_summary_head(const run_ctx_t* c, tpj_strbuf_t* sb) {
  tpj_strbuf_printf(sb, "platform %s | inputs", tpj_client_platform_name(c->client));
  for (size_t i = 0; i < c->args.num_inputs; ++i) {
    tpj_strbuf_puts(sb, " ");
    run_format_tensor(sb, &c->inputs[i]);
  }
  if (!c->args.num_inputs) tpj_strbuf_puts(sb, " (none)");
  tpj_strbuf_puts(sb, " | outputs");
  for (size_t i = 0; i < c->num_outputs; ++i) {
    tpj_strbuf_puts(sb, " ");
    run_format_tensor(sb, &c->outputs[i]);
  }
  tpj_strbuf_printf(sb, " -> %s/output_*.npy", c->args.outdir);
}

static tpj_status_t run_main(run_ctx_t* c) {
  TPJ_RETURN_IF_ERROR(run_open_client(c->args.plugin, &c->client));
  TPJ_RETURN_IF_ERROR(tpj_model_load(c->client, c->args.model, &c->model));
  TPJ_RETURN_IF_ERROR(run_load_inputs(c));
  c->num_outputs = tpj_model_num_outputs(c->model);
  c->outputs = (tpj_host_tensor_t*)calloc(c->num_outputs ? c->num_outputs : 1,
                                          sizeof(tpj_host_tensor_t));
  if (!c->outputs) return TPJ_STATUS(RESOURCE_EXHAUSTED, "out of memory");
  TPJ_RETURN_IF_ERROR(run_model_once(c)); /* also the warm-up of --bench */
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  run_summary_head(c, &sb); /* before bfloat16 outputs become float32 */
  tpj_status_t s = run_write_outputs(c);
  if (!s && c->args.bench) s = run_bench(c, &sb);
  if (!s) s = tpj_strbuf_status(&sb);
  if (!s) printf("%s\n", sb.data);
  tpj_strbuf_deinit(&sb);
  return s;
}

/* ------------------------------------------------------------------ check -- */

static tpj_status_t run_check(const char* path) {
  TPJ_RETURN_IF_ERROR(tpj_model_check_file(path));
  printf("ok\n");
  return NULL;
}

/* ------------------------------------------------------------------- main -- */

static void run_ctx_free(run_ctx_t* c) {
  run_free_outputs(c);
  free(c->outputs);
  for (size_t i = 0; c->inputs && i < c->args.num_inputs; ++i) {
    tpj_host_tensor_free(&c->inputs[i]);
  }
  free(c->inputs);
  free(c->times_ms);
  tpj_model_release(c->model);
  /* The compile cache holds the model's executables: drop them first. */
  if (c->client) tpj_runtime_cache_evict_client(c->client);
  tpj_client_destroy(c->client);
  free(c->args.inputs);
}

int main(int argc, char** argv) {
  run_ctx_t c;
  memset(&c, 0, sizeof(c));
  tpj_status_t s = run_parse_args(argc, argv, &c.args);
  int rc = 0;
  if (s) {
    fprintf(stderr, "tpj-run: %s\n(tpj-run -h for help)\n", tpj_status_message(s));
    rc = 2;
  } else if (c.args.help) {
    fputs(kUsage, stdout);
  } else {
    s = c.args.check ? run_check(c.args.model) : run_main(&c);
    if (s) {
      fprintf(stderr, "tpj-run: %s\n", tpj_status_message(s));
      rc = 1;
    }
  }
  tpj_status_free(s);
  run_ctx_free(&c);
  return rc;
}
