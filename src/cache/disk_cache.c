/* disk_cache.c: the persistent tier of the compile cache. Executables are
 * serialized through PJRT into one file per program so that a fresh process
 * skips compiles its predecessors already paid for. Every problem with a file
 * (absent, truncated, corrupt, written by another plugin build) is a miss.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpj/runtime.h"

#define DISK_MAGIC "TPJEXEC"           /* 8 bytes with the NUL */
#define DISK_FORMAT_VERSION 1u
/* A second FNV seed: the header confirms text and identity with hashes that
 * are independent of the file name's key. */
#define DISK_CONFIRM_SEED 0x9e3779b97f4a7c15ull

typedef struct disk_header_s {
  char magic[8];
  uint32_t format_version;
  uint32_t header_size;
  uint64_t key;
  uint64_t identity_hash; /* DISK_CONFIRM_SEED over the identity string */
  uint64_t text_hash;     /* DISK_CONFIRM_SEED over the program text */
  uint64_t text_len;
  int32_t num_replicas;
  int32_t num_partitions;
  uint32_t spmd;          /* bit 0 use_spmd_partitioning, bit 1 portable */
  uint32_t reserved;
  uint64_t payload_len;   /* serialized executable bytes after the header */
  uint64_t payload_hash;  /* DISK_CONFIRM_SEED over the payload */
} disk_header_t;
_Static_assert(sizeof(disk_header_t) == 80, "disk header has no padding");

static atomic_uint g_tmp_counter;

char* tpj_runtime_disk_cache_dir(void) {
  const char* env = getenv("TORCH_PJRT_CACHE_DIR");
  if (env) {
    if (env[0] == '\0' || strcmp(env, "off") == 0) return NULL;
    return strdup(env);
  }
  const char* home = getenv("HOME");
  if (!home || home[0] == '\0') {
    TPJ_LOG(DEBUG, "disk cache: disabled ($HOME and $TORCH_PJRT_CACHE_DIR unset)");
    return NULL;
  }
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_printf(&sb, "%s/.cache/torch_pjrt", home);
  if (sb.oom) {
    tpj_strbuf_deinit(&sb);
    return NULL;
  }
  return tpj_strbuf_take(&sb, NULL);
}

static tpj_compile_options_t normalize_options(const tpj_compile_options_t* options) {
  tpj_compile_options_t o = {.num_replicas = 1, .num_partitions = 1,
                             .use_spmd_partitioning = false};
  if (options) o = *options;
  return o;
}

/* Everything about the plugin build and client that an executable depends on,
 * as one string (caller frees). NULL on out of memory. */
static char* identity_string(const tpj_client_t* client, size_t* out_len) {
  tpj_plugin_info_t info = {0};
  tpj_plugin_get_info(tpj_client_plugin(client), &info);
  struct stat st;
  long long size = -1, mtime = -1;
  if (info.path && stat(info.path, &st) == 0) {
    size = (long long)st.st_size;
    mtime = (long long)st.st_mtim.tv_sec * 1000000000ll + st.st_mtim.tv_nsec;
  }
  const char* name = tpj_client_platform_name(client);
  const char* version = tpj_client_platform_version(client);
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_printf(&sb, "plugin=%s|size=%lld|mtime=%lld|api=%d.%d|xla=%lld|"
                    "stablehlo=%lld.%lld.%lld|platform=%s|version=%s|devices=%zu/%zu",
                    info.path ? info.path : "", size, mtime, info.api_major,
                    info.api_minor, (long long)info.xla_version,
                    (long long)info.stablehlo_current[0],
                    (long long)info.stablehlo_current[1],
                    (long long)info.stablehlo_current[2], name ? name : "",
                    version ? version : "", tpj_client_device_count(client),
                    tpj_client_addressable_device_count(client));
  if (sb.oom) {
    tpj_strbuf_deinit(&sb);
    return NULL;
  }
  return tpj_strbuf_take(&sb, out_len);
}

/* Fills the header fields that identify an entry (everything but payload). */
static tpj_status_t make_header(const tpj_client_t* client, const char* program,
                                size_t program_len, const tpj_compile_options_t* options,
                                disk_header_t* out_header) {
  size_t id_len = 0;
  char* id = identity_string(client, &id_len);
  if (!id) return TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory (identity)");
  tpj_compile_options_t o = normalize_options(options);
  int64_t fields[3] = {o.num_replicas, o.num_partitions,
                       (o.use_spmd_partitioning ? 1 : 0) | (o.portable ? 2 : 0)};
  disk_header_t h;
  memset(&h, 0, sizeof(h));
  memcpy(h.magic, DISK_MAGIC, sizeof(h.magic));
  h.format_version = DISK_FORMAT_VERSION;
  h.header_size = (uint32_t)sizeof(h);
  uint64_t k = tpj_hash_bytes(program, program_len, TPJ_HASH_SEED);
  k = tpj_hash_bytes(fields, sizeof(fields), k);
  h.key = tpj_hash_bytes(id, id_len, k);
  h.identity_hash = tpj_hash_bytes(id, id_len, DISK_CONFIRM_SEED);
  h.text_hash = tpj_hash_bytes(program, program_len, DISK_CONFIRM_SEED);
  h.text_len = program_len;
  h.num_replicas = o.num_replicas;
  h.num_partitions = o.num_partitions;
  h.spmd = (o.use_spmd_partitioning ? 1u : 0u) | (o.portable ? 2u : 0u); /* flag bits */
  free(id);
  *out_header = h;
  return NULL;
}

uint64_t tpj_runtime_disk_cache_key(const tpj_client_t* client, const char* program,
                                    size_t program_len,
                                    const tpj_compile_options_t* options) {
  disk_header_t h;
  if (!client || !program) return 0;
  tpj_status_t st = make_header(client, program, program_len, options, &h);
  if (st) {
    tpj_status_free(st);
    return 0;
  }
  return h.key;
}

static char* entry_path(const char* dir, uint64_t key) {
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_printf(&sb, "%s/%016llx.tpjx", dir, (unsigned long long)key);
  if (sb.oom) {
    tpj_strbuf_deinit(&sb);
    return NULL;
  }
  return tpj_strbuf_take(&sb, NULL);
}

tpj_status_t tpj_runtime_disk_cache_entry_path(const tpj_client_t* client,
                                               const char* program, size_t program_len,
                                               const tpj_compile_options_t* options,
                                               char** out_path) {
  TPJ_CHECK_ARG(client && program && out_path, "disk cache entry path: NULL argument");
  *out_path = NULL;
  char* dir = tpj_runtime_disk_cache_dir();
  if (!dir) return NULL;
  disk_header_t h;
  tpj_status_t st = make_header(client, program, program_len, options, &h);
  if (!st) {
    *out_path = entry_path(dir, h.key);
    if (!*out_path) st = TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory (path)");
  }
  free(dir);
  return st;
}

/* ------------------------------------------------------------------ load -- */

/* Reads and checks an entry file; on success *out_payload (malloc'd) holds
 * want->payload_len bytes. Any mismatch is a status saying why (a miss). */
static tpj_status_t read_entry(const char* path, const disk_header_t* want,
                               uint8_t** out_payload, size_t* out_len) {
  FILE* f = fopen(path, "rb");
  if (!f) return TPJ_STATUS(NOT_FOUND, "disk cache: no entry %s", path);
  disk_header_t h;
  tpj_status_t st = NULL;
  uint8_t* payload = NULL;
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0 || fread(&h, sizeof(h), 1, f) != 1) {
    st = TPJ_STATUS(DATA_LOSS, "disk cache: %s: truncated header", path);
  } else if (memcmp(h.magic, DISK_MAGIC, sizeof(h.magic)) != 0 ||
             h.format_version != DISK_FORMAT_VERSION || h.header_size != sizeof(h)) {
    st = TPJ_STATUS(DATA_LOSS, "disk cache: %s: bad magic or format version (got %u, "
                    "expected %u)", path, h.format_version, DISK_FORMAT_VERSION);
  } else if (h.key != want->key || h.identity_hash != want->identity_hash ||
             h.text_hash != want->text_hash || h.text_len != want->text_len ||
             h.num_replicas != want->num_replicas ||
             h.num_partitions != want->num_partitions || h.spmd != want->spmd) {
    st = TPJ_STATUS(FAILED_PRECONDITION, "disk cache: %s: written for another program, "
                    "options or plugin build", path);
  } else if (h.payload_len == 0 ||
             (uint64_t)sb.st_size != sizeof(h) + h.payload_len) {
    st = TPJ_STATUS(DATA_LOSS, "disk cache: %s: size mismatch (got %lld bytes, expected "
                    "%llu)", path, (long long)sb.st_size,
                    (unsigned long long)(sizeof(h) + h.payload_len));
  } else if (!(payload = (uint8_t*)malloc((size_t)h.payload_len))) {
    st = TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory reading %llu bytes",
                    (unsigned long long)h.payload_len);
  } else if (fread(payload, 1, (size_t)h.payload_len, f) != h.payload_len ||
             tpj_hash_bytes(payload, (size_t)h.payload_len, DISK_CONFIRM_SEED) !=
                 h.payload_hash) {
    st = TPJ_STATUS(DATA_LOSS, "disk cache: %s: payload corrupt (hash mismatch)", path);
  }
  fclose(f);
  if (st) {
    free(payload);
    return st;
  }
  *out_payload = payload;
  *out_len = (size_t)h.payload_len;
  return NULL;
}

tpj_status_t tpj_runtime_disk_cache_load(tpj_client_t* client, const char* program,
                                         size_t program_len,
                                         const tpj_compile_options_t* options,
                                         tpj_executable_t** out_executable) {
  TPJ_CHECK_ARG(client && program && out_executable, "disk cache load: NULL argument");
  *out_executable = NULL;
  char* dir = tpj_runtime_disk_cache_dir();
  if (!dir) return NULL;
  char* path = NULL;
  uint8_t* payload = NULL;
  size_t len = 0;
  disk_header_t want;
  tpj_status_t st = NULL;
  if (!tpj_executable_serialization_supported(client)) {
    st = TPJ_STATUS(UNIMPLEMENTED, "disk cache: plugin cannot deserialize executables");
  }
  if (!st) st = make_header(client, program, program_len, options, &want);
  if (!st && !(path = entry_path(dir, want.key))) {
    st = TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory (path)");
  }
  if (!st) st = read_entry(path, &want, &payload, &len);
  if (!st) {
    st = tpj_status_annotate(tpj_executable_deserialize(client, payload, len, out_executable),
                             "disk cache: %s", path);
  }
  if (st) {
    TPJ_LOG(DEBUG, "disk cache miss: %s", tpj_status_message(st));
    tpj_status_free(st);
  } else {
    TPJ_LOG(DEBUG, "disk cache hit: %s", path);
    tpj_runtime_metrics_add_disk_hit();
  }
  free(payload);
  free(path);
  free(dir);
  return NULL;
}

/* ----------------------------------------------------------------- store -- */

/* mkdir -p with mode 0755 (modified by umask). */
static tpj_status_t make_dirs(const char* dir) {
  char* p = strdup(dir);
  if (!p) return TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory (dir)");
  tpj_status_t st = NULL;
  for (char* c = p + 1; !st; ++c) {
    bool end = *c == '\0';
    if (*c != '/' && !end) continue;
    *c = '\0';
    if (mkdir(p, 0755) != 0 && errno != EEXIST) {
      st = TPJ_STATUS(PERMISSION_DENIED, "disk cache: cannot create directory %s: %s", p,
                      strerror(errno));
    }
    if (end) break;
    *c = '/';
  }
  free(p);
  return st;
}

static tpj_status_t write_all(int fd, const void* data, size_t len, const char* path) {
  const uint8_t* b = (const uint8_t*)data;
  while (len > 0) {
    ssize_t n = write(fd, b, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      return TPJ_STATUS(UNAVAILABLE, "disk cache: writing %s failed: %s", path,
                        n < 0 ? strerror(errno) : "no progress");
    }
    b += n;
    len -= (size_t)n;
  }
  return NULL;
}

/* Writes header + payload to a unique temporary file, then renames it over
 * `path`, so a reader never sees a partial entry. */
static tpj_status_t write_entry(const char* path, const disk_header_t* h,
                                const uint8_t* payload) {
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_printf(&sb, "%s.tmp.%ld.%u", path, (long)getpid(),
                    atomic_fetch_add(&g_tmp_counter, 1));
  if (sb.oom) {
    tpj_strbuf_deinit(&sb);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory (temporary path)");
  }
  const char* tmp = sb.data;
  tpj_status_t st = NULL;
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    st = TPJ_STATUS(UNAVAILABLE, "disk cache: cannot create %s: %s", tmp, strerror(errno));
  } else {
    st = write_all(fd, h, sizeof(*h), tmp);
    if (!st) st = write_all(fd, payload, (size_t)h->payload_len, tmp);
    if (close(fd) != 0 && !st) {
      st = TPJ_STATUS(UNAVAILABLE, "disk cache: closing %s failed: %s", tmp, strerror(errno));
    }
    if (!st && rename(tmp, path) != 0) {
      st = TPJ_STATUS(UNAVAILABLE, "disk cache: renaming %s to %s failed: %s", tmp, path,
                      strerror(errno));
    }
    if (st) unlink(tmp);
  }
  tpj_strbuf_deinit(&sb);
  return st;
}

tpj_status_t tpj_runtime_disk_cache_store(tpj_client_t* client, const char* program,
                                          size_t program_len,
                                          const tpj_compile_options_t* options,
                                          tpj_executable_t* executable, bool* out_written) {
  TPJ_CHECK_ARG(client && program && executable, "disk cache store: NULL argument");
  if (out_written) *out_written = false;
  char* dir = tpj_runtime_disk_cache_dir();
  if (!dir || !tpj_executable_serialization_supported(client)) {
    free(dir);
    return NULL;
  }
  disk_header_t h;
  char* path = NULL;
  uint8_t* payload = NULL;
  size_t len = 0;
  tpj_status_t st = make_header(client, program, program_len, options, &h);
  if (!st && !(path = entry_path(dir, h.key))) {
    st = TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory (path)");
  }
  if (!st) st = tpj_executable_serialize(executable, &payload, &len);
  if (!st && len == 0) {
    st = TPJ_STATUS(INTERNAL, "disk cache: plugin serialized an executable to 0 bytes");
  }
  if (!st) st = make_dirs(dir);
  if (!st) {
    h.payload_len = len;
    h.payload_hash = tpj_hash_bytes(payload, len, DISK_CONFIRM_SEED);
    st = write_entry(path, &h, payload);
  }
  if (!st) {
    tpj_runtime_metrics_add_disk_write();
    if (out_written) *out_written = true;
  }
  free(payload);
  free(path);
  free(dir);
  return st;
}
