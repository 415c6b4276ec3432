/* tpj/base.h: status, arena, string builder, hashing (FNV, SHA-256) and logging.
 *
 * Ownership (stated once for the whole library):
 *   - Functions named `*_create` and `*_load` return objects the caller owns and
 *     must free with the matching `*_destroy` (or `*_release` for shared ones).
 *   - Accessors (`*_get`, `*_name`, `*_type`, ...) return borrowed pointers that
 *     live as long as the object they came from.
 *   - Shared objects are reference counted with `*_retain` / `*_release`.
 *   - Every destroy/release function accepts NULL.
 *   - A `tpj_status_t` that is not NULL is owned by whoever receives it; it must be
 *     returned upward or freed with tpj_status_free().
 */
#ifndef TPJ_BASE_H_
#define TPJ_BASE_H_

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- status -- */

/* Codes follow abseil / PJRT numbering exactly. */
typedef enum tpj_status_code_e {
  TPJ_STATUS_OK = 0,
  TPJ_STATUS_CANCELLED = 1,
  TPJ_STATUS_UNKNOWN = 2,
  TPJ_STATUS_INVALID_ARGUMENT = 3,
  TPJ_STATUS_DEADLINE_EXCEEDED = 4,
  TPJ_STATUS_NOT_FOUND = 5,
  TPJ_STATUS_ALREADY_EXISTS = 6,
  TPJ_STATUS_PERMISSION_DENIED = 7,
  TPJ_STATUS_RESOURCE_EXHAUSTED = 8,
  TPJ_STATUS_FAILED_PRECONDITION = 9,
  TPJ_STATUS_ABORTED = 10,
  TPJ_STATUS_OUT_OF_RANGE = 11,
  TPJ_STATUS_UNIMPLEMENTED = 12,
  TPJ_STATUS_INTERNAL = 13,
  TPJ_STATUS_UNAVAILABLE = 14,
  TPJ_STATUS_DATA_LOSS = 15,
  TPJ_STATUS_UNAUTHENTICATED = 16,
} tpj_status_code_t;

/* NULL means OK. Otherwise points to a heap record with code, message, file, line. */
typedef struct tpj_status_s* tpj_status_t;

#if defined(__GNUC__)
#define TPJ_MUST_USE __attribute__((warn_unused_result))
#define TPJ_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define TPJ_MUST_USE
#define TPJ_PRINTF(a, b)
#endif

/* Creates a status. Never returns NULL (falls back to a static out-of-memory
 * status when allocation fails; freeing that one is a no-op). */
tpj_status_t tpj_status_make(tpj_status_code_t code, const char* file, int line,
                             const char* fmt, ...) TPJ_PRINTF(4, 5) TPJ_MUST_USE;
tpj_status_t tpj_status_makev(tpj_status_code_t code, const char* file, int line,
                              const char* fmt, va_list ap) TPJ_MUST_USE;

/* Prefixes the message with "<context>: ". Takes ownership of `status` and returns
 * it (or NULL when `status` is NULL). */
tpj_status_t tpj_status_annotate(tpj_status_t status, const char* fmt, ...)
    TPJ_PRINTF(2, 3) TPJ_MUST_USE;

void tpj_status_free(tpj_status_t status);
tpj_status_code_t tpj_status_code(tpj_status_t status); /* OK for NULL */
const char* tpj_status_message(tpj_status_t status);    /* "" for NULL */
const char* tpj_status_file(tpj_status_t status);
int tpj_status_line(tpj_status_t status);
const char* tpj_status_code_name(tpj_status_code_t code); /* "INVALID_ARGUMENT" */

#define TPJ_STATUS(code, ...) \
  tpj_status_make(TPJ_STATUS_##code, __FILE__, __LINE__, __VA_ARGS__)

#define TPJ_RETURN_IF_ERROR(expr)         \
  do {                                    \
    tpj_status_t tpj_status_tmp_ = (expr); \
    if (tpj_status_tmp_) return tpj_status_tmp_; \
  } while (0)

/* Checks a condition; on failure returns an INVALID_ARGUMENT status. */
#define TPJ_CHECK_ARG(cond, ...) \
  do { if (!(cond)) return TPJ_STATUS(INVALID_ARGUMENT, __VA_ARGS__); } while (0)

/* ----------------------------------------------------------------- arena -- */

/* Bump allocator: many small allocations, freed all at once. */
typedef struct tpj_arena_block_s tpj_arena_block_t;
typedef struct tpj_arena_s {
  tpj_arena_block_t* head;
  size_t block_size;
  size_t bytes_allocated;
} tpj_arena_t;

void tpj_arena_init(tpj_arena_t* arena, size_t block_size);
void tpj_arena_deinit(tpj_arena_t* arena); /* frees every block */
/* Returns 16-byte aligned zeroed memory or NULL when out of memory. */
void* tpj_arena_alloc(tpj_arena_t* arena, size_t size);
char* tpj_arena_strdup(tpj_arena_t* arena, const char* s, size_t len);

/* ---------------------------------------------------------- string builder -- */

typedef struct tpj_strbuf_s {
  char* data;   /* NUL-terminated; NULL until first append */
  size_t len;
  size_t cap;
  int oom;      /* set once an allocation failed; later appends are ignored */
} tpj_strbuf_t;

void tpj_strbuf_init(tpj_strbuf_t* sb);
void tpj_strbuf_deinit(tpj_strbuf_t* sb);
void tpj_strbuf_append(tpj_strbuf_t* sb, const char* s, size_t len);
void tpj_strbuf_puts(tpj_strbuf_t* sb, const char* s);
void tpj_strbuf_printf(tpj_strbuf_t* sb, const char* fmt, ...) TPJ_PRINTF(2, 3);
/* Transfers the buffer to the caller (free with free()); sb is reset. */
char* tpj_strbuf_take(tpj_strbuf_t* sb, size_t* out_len);
/* RESOURCE_EXHAUSTED if any append failed. */
tpj_status_t tpj_strbuf_status(const tpj_strbuf_t* sb) TPJ_MUST_USE;

/* --------------------------------------------------------------- hashing -- */

/* 64-bit FNV-1a; stable across runs and platforms (used for cache keys). */
uint64_t tpj_hash_bytes(const void* data, size_t len, uint64_t seed);
#define TPJ_HASH_SEED 0xcbf29ce484222325ull

/* SHA-256 (FIPS 180-4, src/base/sha256.c), for keys that must not collide:
 * the persistent compile cache names and checks its files with it. */
typedef struct tpj_digest_s {
  uint8_t bytes[32];
} tpj_digest_t;
typedef struct tpj_digest_hex_s {
  char text[65]; /* 64 lower-case hex digits and a NUL */
} tpj_digest_hex_t;
typedef struct tpj_sha256_s {
  uint32_t state[8];
  uint64_t total_len; /* bytes hashed so far */
  uint8_t block[64];  /* the partial block */
  size_t block_len;
} tpj_sha256_t;

void tpj_sha256_init(tpj_sha256_t* ctx);
void tpj_sha256_update(tpj_sha256_t* ctx, const void* data, size_t len);
/* Writes the digest; ctx must be initialized again before reuse. */
void tpj_sha256_final(tpj_sha256_t* ctx, tpj_digest_t* out_digest);
/* The digest of one buffer. */
void tpj_sha256_bytes(const void* data, size_t len, tpj_digest_t* out_digest);
void tpj_digest_format_hex(const tpj_digest_t* digest, tpj_digest_hex_t* out_hex);
bool tpj_digest_equal(const tpj_digest_t* a, const tpj_digest_t* b);

/* --------------------------------------------------------------- logging -- */

typedef enum tpj_log_level_e {
  TPJ_LOG_LEVEL_ERROR = 0,
  TPJ_LOG_LEVEL_WARNING = 1,
  TPJ_LOG_LEVEL_INFO = 2,
  TPJ_LOG_LEVEL_DEBUG = 3,
} tpj_log_level_t;

/* Messages at or below the level (default WARNING, or $TPJ_LOG_LEVEL 0..3) go to
 * the sink (default stderr). */
typedef void (*tpj_log_sink_fn)(tpj_log_level_t level, const char* message, void* user);
void tpj_log_set_level(tpj_log_level_t level);
void tpj_log_set_sink(tpj_log_sink_fn sink, void* user);
void tpj_log_write(tpj_log_level_t level, const char* fmt, ...) TPJ_PRINTF(2, 3);
#define TPJ_LOG(level, ...) tpj_log_write(TPJ_LOG_LEVEL_##level, __VA_ARGS__)

#ifdef __cplusplus
}
#endif

#endif /* TPJ_BASE_H_ */
