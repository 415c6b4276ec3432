/* disk_cache.c: the persistent tier of the compile cache. Executables are
 * serialized through PJRT into one file per program so that a fresh process
 * skips compiles its predecessors already paid for. Files are named and checked
 * by SHA-256, so a file can only ever load as the program it was written for:
 * anything else (truncated, corrupt, foreign) is logged, deleted and recompiled.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpj/runtime.h"

#define DISK_MAGIC "TPJEXEC"           /* 8 bytes with the NUL */
#define DISK_FORMAT_VERSION 2u
#define DISK_KEY_DOMAIN "torch_pjrt disk cache key v2"

typedef struct disk_header_s {
  char magic[8];
  uint32_t format_version;
  uint32_t header_size;
  tpj_digest_t key;            /* SHA-256 of the key material; the file name */
  uint64_t payload_len;        /* serialized executable bytes after the header */
  tpj_digest_t payload_digest; /* SHA-256 of those bytes */
  tpj_digest_t header_digest;  /* SHA-256 of every header byte before this one */
} disk_header_t;
_Static_assert(sizeof(disk_header_t) == 120, "disk header has no padding");

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

static void hash_u64(tpj_sha256_t* ctx, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; ++i) b[i] = (uint8_t)(v >> (8 * i));
  tpj_sha256_update(ctx, b, sizeof(b));
}

/* SHA-256 over everything an executable depends on: program text, options and
 * plugin identity, each length-prefixed so distinct inputs never share bytes. */
static tpj_status_t make_key(const tpj_client_t* client, const char* program,
                             size_t program_len, const tpj_compile_options_t* options,
                             tpj_digest_t* out_key) {
  size_t id_len = 0;
  char* id = identity_string(client, &id_len);
  if (!id) return TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory (identity)");
  tpj_compile_options_t o = normalize_options(options);
  tpj_sha256_t ctx;
  tpj_sha256_init(&ctx);
  tpj_sha256_update(&ctx, DISK_KEY_DOMAIN, sizeof(DISK_KEY_DOMAIN));
  hash_u64(&ctx, program_len);
  tpj_sha256_update(&ctx, program, program_len);
  hash_u64(&ctx, (uint64_t)(int64_t)o.num_replicas);
  hash_u64(&ctx, (uint64_t)(int64_t)o.num_partitions);
  hash_u64(&ctx, (o.use_spmd_partitioning ? 1u : 0u) | (o.portable ? 2u : 0u) |
                     (o.use_shardy_partitioner ? 4u : 0u));
  hash_u64(&ctx, id_len);
  tpj_sha256_update(&ctx, id, id_len);
  free(id);
  tpj_sha256_final(&ctx, out_key);
  return NULL;
}

tpj_status_t tpj_runtime_disk_cache_key(const tpj_client_t* client, const char* program,
                                        size_t program_len,
                                        const tpj_compile_options_t* options,
                                        tpj_digest_t* out_key) {
  TPJ_CHECK_ARG(client && program && out_key, "disk cache key: NULL argument");
  return make_key(client, program, program_len, options, out_key);
}

static char* entry_path(const char* dir, const tpj_digest_t* key) {
  tpj_digest_hex_t hex;
  tpj_digest_format_hex(key, &hex);
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_printf(&sb, "%s/%s.tpjx", dir, hex.text);
  if (sb.oom) {
    tpj_strbuf_deinit(&sb);
    return NULL;
  }
  return tpj_strbuf_take(&sb, NULL);
}

/* The key of a program and its file in `dir` (*out_path: caller frees). */
static tpj_status_t key_and_path(const tpj_client_t* client, const char* program,
                                 size_t program_len, const tpj_compile_options_t* options,
                                 const char* dir, tpj_digest_t* out_key, char** out_path) {
  TPJ_RETURN_IF_ERROR(make_key(client, program, program_len, options, out_key));
  *out_path = entry_path(dir, out_key);
  if (!*out_path) return TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory (path)");
  return NULL;
}

tpj_status_t tpj_runtime_disk_cache_entry_path(const tpj_client_t* client,
                                               const char* program, size_t program_len,
                                               const tpj_compile_options_t* options,
                                               char** out_path) {
  TPJ_CHECK_ARG(client && program && out_path, "disk cache entry path: NULL argument");
  *out_path = NULL;
  char* dir = tpj_runtime_disk_cache_dir();
  if (!dir) return NULL;
  tpj_digest_t key;
  tpj_status_t st = key_and_path(client, program, program_len, options, dir, &key, out_path);
  free(dir);
  return st;
}

/* ------------------------------------------------------------------ load -- */

static void header_digest(const disk_header_t* h, tpj_digest_t* out_digest) {
  tpj_sha256_bytes(h, offsetof(disk_header_t, header_digest), out_digest);
}

/* Checks a header read from a file of `file_size` bytes against the key.
 * DATA_LOSS / FAILED_PRECONDITION mean the file is bad (it gets deleted). */
static tpj_status_t check_header(const char* path, const disk_header_t* h,
                                 long long file_size, const tpj_digest_t* key) {
  tpj_digest_t hd;
  header_digest(h, &hd);
  if (memcmp(h->magic, DISK_MAGIC, sizeof(h->magic)) != 0 ||
      h->format_version != DISK_FORMAT_VERSION || h->header_size != sizeof(*h)) {
    return TPJ_STATUS(DATA_LOSS, "disk cache: %s: not a cache entry of this format "
                      "(got version %u, expected %u)", path, h->format_version,
                      DISK_FORMAT_VERSION);
  }
  if (!tpj_digest_equal(&hd, &h->header_digest)) {
    return TPJ_STATUS(DATA_LOSS, "disk cache: %s: header corrupt (digest mismatch)", path);
  }
  if (!tpj_digest_equal(&h->key, key)) {
    return TPJ_STATUS(FAILED_PRECONDITION, "disk cache: %s: holds another program's "
                      "executable (key digest mismatch)", path);
  }
  if (h->payload_len == 0 || h->payload_len > (uint64_t)file_size ||
      (uint64_t)file_size - sizeof(*h) != h->payload_len) {
    return TPJ_STATUS(DATA_LOSS, "disk cache: %s: size mismatch (got %lld bytes, "
                      "expected %llu)", path, file_size,
                      (unsigned long long)(sizeof(*h) + h->payload_len));
  }
  return NULL;
}

/* Reads and checks an open entry file; on success *out_payload (malloc'd)
 * holds *out_len bytes whose digest matches the header. */
static tpj_status_t read_entry(FILE* f, const char* path, const tpj_digest_t* key,
                               uint8_t** out_payload, size_t* out_len) {
  struct stat sb;
  if (fstat(fileno(f), &sb) != 0) {
    return TPJ_STATUS(UNAVAILABLE, "disk cache: %s: stat failed: %s", path, strerror(errno));
  }
  disk_header_t h;
  if ((size_t)sb.st_size < sizeof(h) || fread(&h, sizeof(h), 1, f) != 1) {
    return TPJ_STATUS(DATA_LOSS, "disk cache: %s: truncated header (got %lld bytes, "
                      "expected at least %zu)", path, (long long)sb.st_size, sizeof(h));
  }
  TPJ_RETURN_IF_ERROR(check_header(path, &h, (long long)sb.st_size, key));
  uint8_t* payload = (uint8_t*)malloc((size_t)h.payload_len);
  if (!payload) {
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "disk cache: out of memory reading %llu bytes",
                      (unsigned long long)h.payload_len);
  }
  tpj_digest_t pd;
  size_t got = fread(payload, 1, (size_t)h.payload_len, f);
  if (got == h.payload_len) tpj_sha256_bytes(payload, got, &pd);
  if (got != h.payload_len || !tpj_digest_equal(&pd, &h.payload_digest)) {
    free(payload);
    return TPJ_STATUS(DATA_LOSS, "disk cache: %s: payload corrupt (digest mismatch)", path);
  }
  *out_payload = payload;
  *out_len = (size_t)h.payload_len;
  return NULL;
}

/* Deletes a rejected file, unless another process already renamed a new one
 * over it (the path no longer names the inode that was read). */
static void discard_entry(const char* path, const struct stat* read_st, tpj_status_t why) {
  struct stat now;
  bool same = stat(path, &now) == 0 && now.st_dev == read_st->st_dev &&
              now.st_ino == read_st->st_ino;
  bool deleted = same && unlink(path) == 0;
  TPJ_LOG(WARNING, "%s; %s, the program is compiled again", tpj_status_message(why),
          deleted ? "deleted the file" : "the file was already replaced");
}

/* Opens, verifies and deserializes the entry at `path`. A file that fails any
 * check is discarded; every problem is returned as a status (a miss). */
static tpj_status_t load_entry(tpj_client_t* client, const char* path,
                               const tpj_digest_t* key, tpj_executable_t** out_executable) {
  FILE* f = fopen(path, "rb");
  if (!f) {
    return TPJ_STATUS(NOT_FOUND, "disk cache: no entry %s: %s", path, strerror(errno));
  }
  struct stat st;
  bool have_st = fstat(fileno(f), &st) == 0;
  uint8_t* payload = NULL;
  size_t len = 0;
  tpj_status_t s = read_entry(f, path, key, &payload, &len);
  fclose(f);
  bool bad = s && (tpj_status_code(s) == TPJ_STATUS_DATA_LOSS ||
                   tpj_status_code(s) == TPJ_STATUS_FAILED_PRECONDITION);
  if (!s) {
    /* The bytes are the ones written for this key; a plugin that still
     * refuses them cannot use the file either. */
    s = tpj_status_annotate(tpj_executable_deserialize(client, payload, len, out_executable),
                            "disk cache: %s: plugin rejected the executable", path);
    bad = s != NULL;
  }
  free(payload);
  if (bad && have_st) discard_entry(path, &st, s);
  return s;
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
  tpj_digest_t key;
  tpj_status_t st = NULL;
  if (!tpj_executable_serialization_supported(client)) {
    st = TPJ_STATUS(UNIMPLEMENTED, "disk cache: plugin cannot deserialize executables");
  }
  if (!st) st = key_and_path(client, program, program_len, options, dir, &key, &path);
  if (!st) st = load_entry(client, path, &key, out_executable);
  if (st) {
    TPJ_LOG(DEBUG, "disk cache miss: %s", tpj_status_message(st));
    tpj_status_free(st);
  } else {
    TPJ_LOG(DEBUG, "disk cache hit: %s", path);
    tpj_runtime_metrics_add_disk_hit();
  }
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

/* TORCH_PJRT_CACHE_FSYNC=1 flushes each entry to the disk before the rename
 * (survives a power cut; costs a sync per compile). Off by default. */
static bool want_fsync(void) {
  const char* env = getenv("TORCH_PJRT_CACHE_FSYNC");
  return env && strcmp(env, "1") == 0;
}

/* Writes header + payload to a unique temporary file in the same directory,
 * then renames it over `path` (atomic), so a reader never sees a partial entry. */
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
    if (!st && want_fsync() && fsync(fd) != 0) {
      st = TPJ_STATUS(UNAVAILABLE, "disk cache: fsync of %s failed: %s", tmp, strerror(errno));
    }
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

static void fill_header(const tpj_digest_t* key, const uint8_t* payload, size_t len,
                        disk_header_t* out_header) {
  memset(out_header, 0, sizeof(*out_header));
  memcpy(out_header->magic, DISK_MAGIC, sizeof(out_header->magic));
  out_header->format_version = DISK_FORMAT_VERSION;
  out_header->header_size = (uint32_t)sizeof(*out_header);
  out_header->key = *key;
  out_header->payload_len = len;
  tpj_sha256_bytes(payload, len, &out_header->payload_digest);
  header_digest(out_header, &out_header->header_digest);
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
  tpj_digest_t key;
  char* path = NULL;
  uint8_t* payload = NULL;
  size_t len = 0;
  tpj_status_t st = key_and_path(client, program, program_len, options, dir, &key, &path);
  if (!st) st = tpj_executable_serialize(executable, &payload, &len);
  if (!st && len == 0) {
    st = TPJ_STATUS(INTERNAL, "disk cache: plugin serialized an executable to 0 bytes");
  }
  if (!st) st = make_dirs(dir);
  if (!st) {
    disk_header_t h;
    fill_header(&key, payload, len, &h);
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
