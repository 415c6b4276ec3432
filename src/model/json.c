/* json.c: the strict RFC 8259 parser behind json.h, for the artifact manifest
 * and the safetensors header (both outside input). It walks an explicit stack
 * of at most TPJ_JSON_MAX_DEPTH open containers instead of recursing, so deep
 * input cannot overflow the C stack; every violation names its byte offset. */
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/json.h"

/* A value parsed whose container is still open (key NULL inside arrays). */
typedef struct json_pending_s {
  const char* key;
  size_t key_len, key_offset;
  tpj_json_t* value;
} json_pending_t;

/* An open array or object. */
typedef struct json_frame_s {
  tpj_json_t* node;
  size_t base;       /* index of its first value in the pending stack */
  const char* key;   /* OBJECT: the key of the member being parsed */
  size_t key_len, key_offset;
} json_frame_t;

typedef struct json_parser_s {
  const unsigned char* text;
  size_t len;
  size_t pos;
  tpj_arena_t* arena;
  json_pending_t* pending; /* malloc'ed, shared by all open containers */
  size_t pending_len, pending_cap;
  json_frame_t frames[TPJ_JSON_MAX_DEPTH];
  size_t depth;
} json_parser_t;

/* ---------------------------------------------------------------- errors -- */

TPJ_PRINTF(2, 3)
static tpj_status_t json_error(size_t at, const char* fmt, ...) {
  char reason[256];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(reason, sizeof(reason), fmt, ap);
  va_end(ap);
  return TPJ_STATUS(INVALID_ARGUMENT, "json: %s at byte %zu", reason, at);
}

static tpj_status_t json_oom(const json_parser_t* p) {
  return TPJ_STATUS(RESOURCE_EXHAUSTED, "json: out of memory (arena holds %zu bytes)",
                    p->arena->bytes_allocated);
}

/* The error for a byte that cannot start what the grammar expects here. */
static tpj_status_t json_unexpected(const json_parser_t* p, const char* expected) {
  if (p->pos >= p->len) {
    return json_error(p->pos, "unexpected end of input (expected %s)", expected);
  }
  unsigned char c = p->text[p->pos];
  if (c == '/') return json_error(p->pos, "comments are not allowed");
  if (c > 0x20 && c < 0x7f) {
    return json_error(p->pos, "unexpected character '%c' (expected %s)", c, expected);
  }
  return json_error(p->pos, "unexpected byte 0x%02x (expected %s)", c, expected);
}

void tpj_json_excerpt(const char* s, size_t n, char* buf, size_t cap) {
  size_t o = 0, limit = cap > 64 ? 48 : cap / 2;
  for (size_t i = 0; i < n && o + 8 < cap; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (o >= limit && (c & 0xc0) != 0x80) {
      o += (size_t)snprintf(buf + o, cap - o, "...");
      break;
    }
    if (c < 0x20 || c == 0x7f || c == '"' || c == '\\') {
      o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    } else {
      buf[o++] = (char)c;
    }
  }
  buf[o < cap ? o : cap - 1] = 0;
}

/* --------------------------------------------------------------- scalars -- */

static void skip_ws(json_parser_t* p) {
  while (p->pos < p->len) {
    unsigned char c = p->text[p->pos];
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
    ++p->pos;
  }
}

static bool next_is(const json_parser_t* p, unsigned char c) {
  return p->pos < p->len && p->text[p->pos] == c;
}

static bool is_digit_at(const json_parser_t* p, size_t i) {
  return i < p->len && p->text[i] >= '0' && p->text[i] <= '9';
}

static tpj_status_t new_node(json_parser_t* p, tpj_json_kind_t kind, tpj_json_t** out) {
  tpj_json_t* node = (tpj_json_t*)tpj_arena_alloc(p->arena, sizeof(tpj_json_t));
  if (!node) return json_oom(p);
  node->kind = kind;
  node->offset = p->pos;
  *out = node;
  return NULL;
}

static tpj_status_t parse_literal(json_parser_t* p, const char* word, tpj_json_t* node) {
  size_t n = strlen(word);
  if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0) {
    return json_error(p->pos, "invalid literal (expected %s)", word);
  }
  p->pos += n;
  node->boolean = word[0] == 't';
  return NULL;
}

/* strtod over text[start, end), which already matches the JSON number grammar.
 * A locale whose decimal point is not '.' gets the '.' swapped for its own. */
static tpj_status_t number_value(const json_parser_t* p, size_t start, size_t end,
                                 double* out) {
  size_t n = end - start;
  char local[64];
  char* buf = n < sizeof(local) ? local : (char*)malloc(n + 1);
  if (!buf) return TPJ_STATUS(RESOURCE_EXHAUSTED, "json: out of memory copying a number "
                              "of %zu bytes", n);
  memcpy(buf, p->text + start, n);
  buf[n] = 0;
  char* stop = NULL;
  double v = strtod(buf, &stop);
  if (stop != buf + n) {
    const char* point = localeconv()->decimal_point;
    char* dot = strchr(buf, '.');
    if (dot && point && point[0] && !point[1]) {
      *dot = point[0];
      v = strtod(buf, &stop);
    }
  }
  bool whole = stop == buf + n;
  if (buf != local) free(buf);
  if (!whole) return json_error(start, "number not understood by strtod (LC_NUMERIC?)");
  if (isinf(v)) return json_error(start, "number out of range (expected a finite double)");
  *out = v;
  return NULL;
}

/* The integer digits at p->pos: their magnitude, if it fits in uint64. */
static tpj_status_t number_digits(json_parser_t* p, uint64_t* out_mag, bool* out_fits) {
  if (!is_digit_at(p, p->pos)) return json_unexpected(p, "a digit");
  if (p->text[p->pos] == '0' && is_digit_at(p, p->pos + 1)) {
    return json_error(p->pos, "leading zeros are not allowed");
  }
  uint64_t mag = 0;
  bool fits = true;
  for (; is_digit_at(p, p->pos); ++p->pos) {
    unsigned d = (unsigned)(p->text[p->pos] - '0');
    if (mag > (UINT64_MAX - d) / 10) fits = false;
    if (fits) mag = mag * 10 + d;
  }
  *out_mag = mag;
  *out_fits = fits;
  return NULL;
}

/* Skips the digits of a fraction or exponent; at least one is required. */
static tpj_status_t number_tail_digits(json_parser_t* p, const char* expected) {
  if (!is_digit_at(p, p->pos)) return json_unexpected(p, expected);
  while (is_digit_at(p, p->pos)) ++p->pos;
  return NULL;
}

static tpj_status_t parse_number(json_parser_t* p, tpj_json_t* node) {
  size_t start = p->pos;
  bool neg = next_is(p, '-'), integral = true, fits = true;
  if (neg) ++p->pos;
  uint64_t mag = 0;
  TPJ_RETURN_IF_ERROR(number_digits(p, &mag, &fits));
  if (next_is(p, '.')) {
    integral = false;
    ++p->pos;
    TPJ_RETURN_IF_ERROR(number_tail_digits(p, "a digit in the fraction"));
  }
  if (next_is(p, 'e') || next_is(p, 'E')) {
    integral = false;
    ++p->pos;
    if (next_is(p, '+') || next_is(p, '-')) ++p->pos;
    TPJ_RETURN_IF_ERROR(number_tail_digits(p, "a digit in the exponent"));
  }
  const uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
  node->is_int = integral && fits && mag <= limit;
  if (node->is_int) {
    node->integer = !neg ? (int64_t)mag : mag == limit ? INT64_MIN : -(int64_t)mag;
  }
  return number_value(p, start, p->pos, &node->number);
}

/* --------------------------------------------------------------- strings -- */

/* The length of the valid UTF-8 sequence at s (n bytes left); 0 when it is
 * malformed, overlong, a surrogate or above U+10FFFF. */
static size_t utf8_sequence(const unsigned char* s, size_t n) {
  unsigned char c = s[0], lo = 0x80, hi = 0xbf;
  size_t k = c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
           : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
  if (c == 0xe0) lo = 0xa0;       /* overlong */
  if (c == 0xed) hi = 0x9f;       /* UTF-16 surrogates */
  if (c == 0xf0) lo = 0x90;       /* overlong */
  if (c == 0xf4) hi = 0x8f;       /* above U+10FFFF */
  if (k == 0) return 0;
  if (n < k || s[1] < lo || s[1] > hi) return 0;
  for (size_t j = 2; j < k; ++j) {
    if ((s[j] & 0xc0) != 0x80) return 0;
  }
  return k;
}

/* Writes cp (<= U+10FFFF, not a surrogate) as UTF-8; returns the length. */
static size_t utf8_encode(uint32_t cp, char* out) {
  size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  static const unsigned char kLead[5] = {0, 0x00, 0xc0, 0xe0, 0xf0};
  for (size_t i = n - 1; i > 0; --i, cp >>= 6) out[i] = (char)(0x80 | (cp & 0x3f));
  out[0] = (char)(kLead[n] | cp);
  return n;
}

/* The value of 4 hex digits, or -1. */
static long hex4(const unsigned char* s) {
  long v = 0;
  for (int i = 0; i < 4; ++i) {
    unsigned char c = s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
          : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) return -1;
    v = v * 16 + d;
  }
  return v;
}

/* Decodes the \uXXXX escape (or surrogate pair) at text[*io_i], which lies
 * before the closing quote at `end`. */
static tpj_status_t decode_unicode(json_parser_t* p, size_t* io_i, size_t end, char* dst,
                                   size_t* io_n) {
  const unsigned char* t = p->text;
  size_t at = *io_i, i = at;
  long cp = i + 6 <= end ? hex4(t + i + 2) : -1;
  if (cp < 0) return json_error(at, "invalid \\u escape (expected 4 hex digits)");
  i += 6;
  if (cp >= 0xdc00 && cp <= 0xdfff) {
    return json_error(at, "lone surrogate \\u%04lX (expected a high surrogate before it)",
                      cp);
  }
  if (cp >= 0xd800 && cp <= 0xdbff) {
    long lo = i + 6 <= end && t[i] == '\\' && t[i + 1] == 'u' ? hex4(t + i + 2) : -1;
    if (lo < 0xdc00 || lo > 0xdfff) {
      return json_error(at, "lone surrogate \\u%04lX (expected a low surrogate "
                        "\\uDC00..\\uDFFF after it)", cp);
    }
    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    i += 6;
  }
  *io_n += utf8_encode((uint32_t)cp, dst + *io_n);
  *io_i = i;
  return NULL;
}

static tpj_status_t decode_escape(json_parser_t* p, size_t* io_i, size_t end, char* dst,
                                  size_t* io_n) {
  static const char kFrom[] = "\"\\/bfnrt";
  static const char kTo[] = "\"\\/\b\f\n\r\t";
  size_t i = *io_i;
  unsigned char c = i + 1 < end ? p->text[i + 1] : 0;
  if (c == 'u') return decode_unicode(p, io_i, end, dst, io_n);
  const char* hit = c ? strchr(kFrom, c) : NULL;
  if (!hit) {
    if (c > 0x20 && c < 0x7f) return json_error(i, "invalid escape '\\%c'", c);
    return json_error(i, "invalid escape (backslash before byte 0x%02x)", c);
  }
  dst[(*io_n)++] = kTo[hit - kFrom];
  *io_i = i + 2;
  return NULL;
}

/* Decodes the string whose opening quote is at p->pos into the arena. */
static tpj_status_t parse_string(json_parser_t* p, const char** out_str, size_t* out_len) {
  const unsigned char* t = p->text;
  size_t start = p->pos, end = start + 1;
  while (end < p->len && t[end] != '"') end += t[end] == '\\' ? 2 : 1;
  if (end >= p->len) return json_error(start, "unterminated string");
  /* Decoding never grows: escapes shrink, raw UTF-8 is copied. */
  char* dst = (char*)tpj_arena_alloc(p->arena, end - start);
  if (!dst) return json_oom(p);
  size_t n = 0, i = start + 1;
  while (i < end) {
    unsigned char c = t[i];
    if (c == '\\') {
      TPJ_RETURN_IF_ERROR(decode_escape(p, &i, end, dst, &n));
    } else if (c < 0x20) {
      return json_error(i, "control character 0x%02x in a string (expected it escaped)", c);
    } else if (c < 0x80) {
      dst[n++] = (char)c;
      ++i;
    } else {
      size_t k = utf8_sequence(t + i, end - i);
      if (!k) return json_error(i, "invalid UTF-8 (byte 0x%02x)", c);
      memcpy(dst + n, t + i, k);
      n += k;
      i += k;
    }
  }
  dst[n] = 0;
  p->pos = end + 1;
  *out_str = dst;
  *out_len = n;
  return NULL;
}

/* ------------------------------------------------------------ containers -- */

static void* arena_array(json_parser_t* p, size_t count, size_t size) {
  if (count > SIZE_MAX / size) return NULL;
  return tpj_arena_alloc(p->arena, count * size);
}

static tpj_status_t push_pending(json_parser_t* p, tpj_json_t* value) {
  if (p->pending_len == p->pending_cap) {
    size_t cap = p->pending_cap ? p->pending_cap * 2 : 64;
    json_pending_t* grown = cap <= SIZE_MAX / sizeof(json_pending_t)
        ? (json_pending_t*)realloc(p->pending, cap * sizeof(json_pending_t)) : NULL;
    if (!grown) return TPJ_STATUS(RESOURCE_EXHAUSTED, "json: out of memory (holding %zu "
                                  "open values)", p->pending_len);
    p->pending = grown;
    p->pending_cap = cap;
  }
  const json_frame_t* f = &p->frames[p->depth - 1];
  bool object = f->node->kind == TPJ_JSON_OBJECT;
  p->pending[p->pending_len++] = (json_pending_t){object ? f->key : NULL, f->key_len,
                                                  f->key_offset, value};
  return NULL;
}

/* Orders by key bytes, then by position in the document. */
static int compare_members(const void* a, const void* b) {
  const json_pending_t* x = (const json_pending_t*)a;
  const json_pending_t* y = (const json_pending_t*)b;
  size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
  int c = memcmp(x->key, y->key, n);
  if (c) return c;
  if (x->key_len != y->key_len) return x->key_len < y->key_len ? -1 : 1;
  return x->key_offset < y->key_offset ? -1 : x->key_offset > y->key_offset;
}

static bool same_key(const json_pending_t* a, const json_pending_t* b) {
  return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

/* Reports the first key (in document order) that repeats an earlier one.
 * Sorts `m` in place: the values are already copied into the node. */
static tpj_status_t check_duplicates(json_pending_t* m, size_t count) {
  qsort(m, count, sizeof(json_pending_t), compare_members);
  const json_pending_t* dup = NULL;
  for (size_t i = 1; i < count; ++i) {
    if (same_key(&m[i - 1], &m[i]) && (!dup || m[i].key_offset < dup->key_offset)) dup = &m[i];
  }
  if (!dup) return NULL;
  char quoted[80];
  tpj_json_excerpt(dup->key, dup->key_len, quoted, sizeof(quoted));
  return json_error(dup->key_offset, "duplicate key \"%s\"", quoted);
}

/* Pops the innermost container, moving its pending values into the arena. */
static tpj_status_t close_container(json_parser_t* p, tpj_json_t** out_node) {
  json_frame_t* f = &p->frames[--p->depth];
  tpj_json_t* node = f->node;
  size_t count = p->pending_len - f->base;
  bool object = node->kind == TPJ_JSON_OBJECT;
  if (count > 0) { /* only then is p->pending non-NULL */
    json_pending_t* m = p->pending + f->base;
    node->items = (tpj_json_t**)arena_array(p, count, sizeof(tpj_json_t*));
    if (object) {
      node->keys = (const char**)arena_array(p, count, sizeof(const char*));
      node->key_lens = (size_t*)arena_array(p, count, sizeof(size_t));
    }
    if (!node->items || (object && (!node->keys || !node->key_lens))) return json_oom(p);
    for (size_t i = 0; i < count; ++i) {
      node->items[i] = m[i].value;
      if (object) {
        node->keys[i] = m[i].key;
        node->key_lens[i] = m[i].key_len;
      }
    }
    if (object) TPJ_RETURN_IF_ERROR(check_duplicates(m, count));
  }
  node->count = count;
  p->pending_len = f->base;
  *out_node = node;
  return NULL;
}

/* Opens '[' or '{' at p->pos. An empty one closes at once into *out_value;
 * otherwise *out_value stays NULL and the container is left open. */
static tpj_status_t open_container(json_parser_t* p, tpj_json_kind_t kind,
                                   tpj_json_t** out_value) {
  if (p->depth == TPJ_JSON_MAX_DEPTH) {
    return json_error(p->pos, "nesting too deep (expected at most %d levels)",
                      TPJ_JSON_MAX_DEPTH);
  }
  tpj_json_t* node = NULL;
  TPJ_RETURN_IF_ERROR(new_node(p, kind, &node));
  json_frame_t* f = &p->frames[p->depth++];
  memset(f, 0, sizeof(*f));
  f->node = node;
  f->base = p->pending_len;
  ++p->pos;
  skip_ws(p);
  if (next_is(p, kind == TPJ_JSON_OBJECT ? '}' : ']')) {
    ++p->pos;
    return close_container(p, out_value);
  }
  return NULL;
}

/* Parses the key and ':' of the next member of the innermost object. */
static tpj_status_t parse_key(json_parser_t* p, bool after_comma) {
  json_frame_t* f = &p->frames[p->depth - 1];
  if (!next_is(p, '"')) {
    if (after_comma && next_is(p, '}')) return json_error(p->pos, "trailing comma");
    return json_unexpected(p, "a string key");
  }
  f->key_offset = p->pos;
  TPJ_RETURN_IF_ERROR(parse_string(p, &f->key, &f->key_len));
  skip_ws(p);
  if (!next_is(p, ':')) return json_unexpected(p, "':' after the key");
  ++p->pos;
  skip_ws(p);
  return NULL;
}

/* Parses the value starting at p->pos. *out_value is NULL when it opened a
 * non-empty container, which then awaits its first value. */
static tpj_status_t parse_value_start(json_parser_t* p, bool after_comma,
                                      tpj_json_t** out_value) {
  *out_value = NULL;
  if (p->pos >= p->len) return json_unexpected(p, "a value");
  unsigned char c = p->text[p->pos];
  if (c == '[') return open_container(p, TPJ_JSON_ARRAY, out_value);
  if (c == '{') return open_container(p, TPJ_JSON_OBJECT, out_value);
  if (c == ']' && after_comma) return json_error(p->pos, "trailing comma");
  tpj_json_t* node = NULL;
  if (c == '"') {
    TPJ_RETURN_IF_ERROR(new_node(p, TPJ_JSON_STRING, &node));
    TPJ_RETURN_IF_ERROR(parse_string(p, &node->string, &node->string_len));
  } else if (c == '-' || (c >= '0' && c <= '9')) {
    TPJ_RETURN_IF_ERROR(new_node(p, TPJ_JSON_NUMBER, &node));
    TPJ_RETURN_IF_ERROR(parse_number(p, node));
  } else if (c == 't' || c == 'f' || c == 'n') {
    TPJ_RETURN_IF_ERROR(new_node(p, c == 'n' ? TPJ_JSON_NULL : TPJ_JSON_BOOL, &node));
    TPJ_RETURN_IF_ERROR(parse_literal(p, c == 't' ? "true" : c == 'f' ? "false" : "null", node));
  } else {
    return json_unexpected(p, "a value");
  }
  *out_value = node;
  return NULL;
}

/* Hands a finished value to its container, closing every container that
 * ends right after it. *out_done is set when the root is complete. */
static tpj_status_t attach_value(json_parser_t* p, tpj_json_t* value, tpj_json_t** out_root,
                                 bool* out_done) {
  for (;;) {
    if (p->depth == 0) {
      skip_ws(p);
      if (p->pos < p->len) return json_unexpected(p, "end of input after the value");
      *out_root = value;
      *out_done = true;
      return NULL;
    }
    TPJ_RETURN_IF_ERROR(push_pending(p, value));
    skip_ws(p);
    bool object = p->frames[p->depth - 1].node->kind == TPJ_JSON_OBJECT;
    if (next_is(p, ',')) {
      ++p->pos;
      return NULL;
    }
    if (!next_is(p, object ? '}' : ']')) return json_unexpected(p, object ? "',' or '}'"
                                                                           : "',' or ']'");
    ++p->pos;
    TPJ_RETURN_IF_ERROR(close_container(p, &value));
  }
}

static tpj_status_t parse_document(json_parser_t* p, tpj_json_t** out_root) {
  bool after_comma = false, done = false;
  while (!done) {
    skip_ws(p);
    if (p->depth > 0 && p->frames[p->depth - 1].node->kind == TPJ_JSON_OBJECT) {
      TPJ_RETURN_IF_ERROR(parse_key(p, after_comma));
    }
    tpj_json_t* value = NULL;
    TPJ_RETURN_IF_ERROR(parse_value_start(p, after_comma, &value));
    after_comma = false;
    if (!value) continue; /* a container opened; its first value comes next */
    TPJ_RETURN_IF_ERROR(attach_value(p, value, out_root, &done));
    after_comma = true;
  }
  return NULL;
}

tpj_status_t tpj_json_parse(const char* text, size_t len, tpj_arena_t* arena,
                            tpj_json_t** out_root) {
  TPJ_CHECK_ARG(out_root, "json: out_root is NULL");
  *out_root = NULL;
  TPJ_CHECK_ARG(arena, "json: arena is NULL");
  TPJ_CHECK_ARG(text || len == 0, "json: text is NULL (got %zu bytes)", len);
  json_parser_t p; /* ~2.6 KB: the frames are the whole stack of open containers */
  memset(&p, 0, sizeof(p));
  p.text = (const unsigned char*)(text ? text : "");
  p.len = len;
  p.arena = arena;
  tpj_json_t* root = NULL;
  tpj_status_t s = parse_document(&p, &root);
  free(p.pending);
  if (!s) *out_root = root;
  return s;
}

/* -------------------------------------------------------------- accessors -- */

const tpj_json_t* tpj_json_get(const tpj_json_t* obj, const char* key) {
  if (!obj || obj->kind != TPJ_JSON_OBJECT || !key) return NULL;
  size_t n = strlen(key);
  for (size_t i = 0; i < obj->count; ++i) {
    if (obj->key_lens[i] == n && memcmp(obj->keys[i], key, n) == 0) return obj->items[i];
  }
  return NULL;
}

static const char* const kKindNames[] = {"null", "bool", "number", "string", "array",
                                         "object"};
/* The kind as the object of "expected": "a string", "an object", "null". */
static const char* const kKindArticles[] = {"null", "a bool", "a number", "a string",
                                            "an array", "an object"};

const char* tpj_json_kind_name(tpj_json_kind_t kind) {
  return (unsigned)kind <= TPJ_JSON_OBJECT ? kKindNames[kind] : "invalid";
}

static const char* kind_with_article(tpj_json_kind_t kind) {
  return (unsigned)kind <= TPJ_JSON_OBJECT ? kKindArticles[kind] : "a valid kind";
}

tpj_status_t tpj_json_expect(const tpj_json_t* value, tpj_json_kind_t kind, const char* what) {
  what = what ? what : "json value";
  if (!value) return TPJ_STATUS(INVALID_ARGUMENT, "%s: missing (expected %s)", what,
                                kind_with_article(kind));
  if (value->kind != kind) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expected %s (got %s)", what,
                      kind_with_article(kind), tpj_json_kind_name(value->kind));
  }
  return NULL;
}

tpj_status_t tpj_json_int(const tpj_json_t* value, int64_t min, int64_t max, const char* what,
                          int64_t* out_value) {
  if (!what) what = "json value";
  TPJ_CHECK_ARG(out_value, "%s: out_value is NULL", what);
  TPJ_RETURN_IF_ERROR(tpj_json_expect(value, TPJ_JSON_NUMBER, what));
  if (!value->is_int) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expected an integer in int64 (got %.17g)", what,
                      value->number);
  }
  if (value->integer < min || value->integer > max) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: out of range (got %lld, expected %lld..%lld)",
                      what, (long long)value->integer, (long long)min, (long long)max);
  }
  *out_value = value->integer;
  return NULL;
}

tpj_status_t tpj_json_str(const tpj_json_t* value, const char* what, const char** out_str) {
  if (!what) what = "json value";
  TPJ_CHECK_ARG(out_str, "%s: out_str is NULL", what);
  TPJ_RETURN_IF_ERROR(tpj_json_expect(value, TPJ_JSON_STRING, what));
  const char* nul = (const char*)memchr(value->string, 0, value->string_len);
  if (nul) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expected a string without NUL bytes (got one at "
                      "index %zu of %zu)", what, (size_t)(nul - value->string),
                      value->string_len);
  }
  *out_str = value->string;
  return NULL;
}
