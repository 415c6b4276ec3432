/* json.h: a small strict JSON parser (RFC 8259) for the artifact manifest and
 * the safetensors header, both outside input. Strict: no comments, no
 * trailing commas, no duplicate keys, valid UTF-8 and escapes only, nesting
 * at most TPJ_JSON_MAX_DEPTH; anything else is an error naming the byte
 * offset. Nodes live in the caller's arena. */
#ifndef TPJ_MODEL_JSON_H_
#define TPJ_MODEL_JSON_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"

#define TPJ_JSON_MAX_DEPTH 64

typedef enum tpj_json_kind_e {
  TPJ_JSON_NULL = 0,
  TPJ_JSON_BOOL,
  TPJ_JSON_NUMBER,
  TPJ_JSON_STRING,
  TPJ_JSON_ARRAY,
  TPJ_JSON_OBJECT,
} tpj_json_kind_t;

typedef struct tpj_json_s tpj_json_t;
struct tpj_json_s {
  tpj_json_kind_t kind;
  bool boolean;           /* BOOL */
  double number;          /* NUMBER */
  bool is_int;            /* NUMBER: an integer literal (no fraction or exponent)
                             that fits int64; then `integer` holds it exactly */
  int64_t integer;
  const char* string;     /* STRING: decoded UTF-8, NUL-terminated (may hold NULs
                             from \u0000: use string_len) */
  size_t string_len;
  size_t count;           /* ARRAY / OBJECT: number of items / members */
  tpj_json_t** items;     /* ARRAY / OBJECT: (count) values, in document order */
  const char** keys;      /* OBJECT: (count) decoded keys */
  size_t* key_lens;       /* OBJECT: (count) */
  size_t offset;          /* byte offset of the value in the text */
};

/* Parses `text` (len bytes, need not be NUL-terminated). *out_root lives in
 * `arena`. INVALID_ARGUMENT "json: <reason> at byte N" on any error,
 * RESOURCE_EXHAUSTED when the arena runs out. A number beyond the double
 * range (1e400) is an error; a tiny one (1e-400) becomes 0. Only JSON
 * whitespace (space, tab, CR, LF) may surround the value; no BOM. */
tpj_status_t tpj_json_parse(const char* text, size_t len, tpj_arena_t* arena,
                            tpj_json_t** out_root) TPJ_MUST_USE;

/* Up to ~48 bytes of the decoded (valid UTF-8) string s[0..n) for a message,
 * into buf (cap bytes, NUL-terminated): control bytes, quotes and
 * backslashes escaped, cut only between UTF-8 sequences ("..."). */
void tpj_json_excerpt(const char* s, size_t n, char* buf, size_t cap);

/* The member `key` of an object; NULL when absent or `obj` is not an object. */
const tpj_json_t* tpj_json_get(const tpj_json_t* obj, const char* key);
const char* tpj_json_kind_name(tpj_json_kind_t kind); /* "object", "number", ... */

/* Typed reads for the manifest checkers. `what` names the field in the
 * error, e.g. "manifest: inputs[0].dtype". */
tpj_status_t tpj_json_expect(const tpj_json_t* value, tpj_json_kind_t kind,
                             const char* what) TPJ_MUST_USE; /* also fails for NULL */
tpj_status_t tpj_json_int(const tpj_json_t* value, int64_t min, int64_t max,
                          const char* what, int64_t* out_value) TPJ_MUST_USE;
tpj_status_t tpj_json_str(const tpj_json_t* value, const char* what,
                          const char** out_str) TPJ_MUST_USE; /* no embedded NULs */

#endif /* TPJ_MODEL_JSON_H_ */
