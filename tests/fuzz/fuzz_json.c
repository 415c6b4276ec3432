/* fuzz_json.c: libFuzzer harness for the strict JSON parser (tpj_json_parse)
 * that reads the artifact manifest and the safetensors header. Every input
 * must parse or fail with a status, never read out of bounds or leak; a parsed
 * tree must keep its promises and survive a print-and-reparse round trip. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/json.h"

/* Prints `v` as JSON that must parse back to the same tree. Non-integer
 * numbers keep a '.' or an exponent so they do not come back as integers. */
static void print_json(const tpj_json_t* v, tpj_strbuf_t* sb);

static void print_string(const char* s, size_t n, tpj_strbuf_t* sb) {
  tpj_strbuf_puts(sb, "\"");
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = (unsigned char)s[i];
    if (c < 0x20 || c == '"' || c == '\\') {
      tpj_strbuf_printf(sb, "\\u%04x", c);
    } else {
      tpj_strbuf_append(sb, s + i, 1);
    }
  }
  tpj_strbuf_puts(sb, "\"");
}

static void print_json(const tpj_json_t* v, tpj_strbuf_t* sb) {
  switch (v->kind) {
    case TPJ_JSON_NULL: tpj_strbuf_puts(sb, "null"); return;
    case TPJ_JSON_BOOL: tpj_strbuf_puts(sb, v->boolean ? "true" : "false"); return;
    case TPJ_JSON_STRING: print_string(v->string, v->string_len, sb); return;
    case TPJ_JSON_NUMBER: {
      char buf[64];
      if (v->is_int) {
        snprintf(buf, sizeof(buf), "%s%lld", signbit(v->number) && !v->integer ? "-" : "",
                 (long long)v->integer); /* "-0" is an integer whose double is -0.0 */
      } else {
        snprintf(buf, sizeof(buf), "%.17g", v->number);
        if (!strpbrk(buf, ".e")) strcat(buf, ".0");
      }
      tpj_strbuf_puts(sb, buf);
      return;
    }
    case TPJ_JSON_ARRAY:
    case TPJ_JSON_OBJECT: {
      bool object = v->kind == TPJ_JSON_OBJECT;
      tpj_strbuf_puts(sb, object ? "{" : "[");
      for (size_t i = 0; i < v->count; ++i) {
        if (i) tpj_strbuf_puts(sb, ",");
        if (object) print_string(v->keys[i], v->key_lens[i], sb), tpj_strbuf_puts(sb, ":");
        print_json(v->items[i], sb);
      }
      tpj_strbuf_puts(sb, object ? "}" : "]");
      return;
    }
  }
  abort(); /* an invalid kind */
}

static bool same_tree(const tpj_json_t* a, const tpj_json_t* b) {
  if (a->kind != b->kind) return false;
  switch (a->kind) {
    case TPJ_JSON_NULL: return true;
    case TPJ_JSON_BOOL: return a->boolean == b->boolean;
    case TPJ_JSON_NUMBER:
      if (a->is_int != b->is_int || (a->is_int && a->integer != b->integer)) return false;
      return a->number == b->number && signbit(a->number) == signbit(b->number);
    case TPJ_JSON_STRING:
      return a->string_len == b->string_len && !memcmp(a->string, b->string, a->string_len);
    case TPJ_JSON_ARRAY:
    case TPJ_JSON_OBJECT:
      if (a->count != b->count) return false;
      for (size_t i = 0; i < a->count; ++i) {
        if (a->kind == TPJ_JSON_OBJECT &&
            (a->key_lens[i] != b->key_lens[i] || memcmp(a->keys[i], b->keys[i], a->key_lens[i])))
          return false;
        if (!same_tree(a->items[i], b->items[i])) return false;
      }
      return true;
  }
  return false;
}

/* What a successful parse promises; anything else is a bug worth a crash. */
static void check_tree(const tpj_json_t* v, size_t size, int depth) {
  if (v->offset >= size) abort();
  if (v->kind == TPJ_JSON_STRING && v->string[v->string_len] != 0) abort();
  if (v->kind == TPJ_JSON_NUMBER && (isinf(v->number) || isnan(v->number))) abort();
  if (v->kind == TPJ_JSON_NUMBER && v->is_int && (double)v->integer != v->number) abort();
  if (v->kind != TPJ_JSON_ARRAY && v->kind != TPJ_JSON_OBJECT) return;
  if (++depth > TPJ_JSON_MAX_DEPTH) abort();
  for (size_t i = 0; i < v->count; ++i) {
    check_tree(v->items[i], size, depth);
    if (v->kind != TPJ_JSON_OBJECT) continue;
    if (v->keys[i][v->key_lens[i]] != 0) abort();
    for (size_t j = 0; j < i; ++j) { /* keys are unique */
      if (v->key_lens[i] == v->key_lens[j] && !memcmp(v->keys[i], v->keys[j], v->key_lens[i]))
        abort();
    }
    if (strlen(v->keys[i]) == v->key_lens[i] && tpj_json_get(v, v->keys[i]) != v->items[i])
      abort();
  }
}

/* The typed reads must succeed or fail with a status, never crash. */
static void poke_typed_reads(const tpj_json_t* v) {
  int64_t n = 0;
  const char* str = NULL;
  tpj_status_free(tpj_json_expect(v, TPJ_JSON_OBJECT, "fuzz"));
  tpj_status_free(tpj_json_int(v, -8, 8, "fuzz", &n));
  tpj_status_free(tpj_json_str(v, "fuzz", &str));
  if (tpj_json_kind_name(v->kind)[0] == 0) abort();
}

static void round_trip(const tpj_json_t* root) {
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  print_json(root, &sb);
  if (sb.oom) {
    tpj_strbuf_deinit(&sb);
    return;
  }
  tpj_arena_t arena;
  tpj_arena_init(&arena, 4096);
  tpj_json_t* again = NULL;
  tpj_status_t s = tpj_json_parse(sb.data, sb.len, &arena, &again);
  if (s) {
    fprintf(stderr, "reparse failed: %s\n%s\n", tpj_status_message(s), sb.data);
    abort();
  }
  if (!same_tree(root, again)) abort();
  tpj_arena_deinit(&arena);
  tpj_strbuf_deinit(&sb);
}

int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  /* A private copy of exactly `size` bytes, so reads past it are caught. */
  char* copy = (char*)malloc(size ? size : 1);
  if (!copy) return 0;
  if (size) memcpy(copy, data, size);
  tpj_arena_t arena;
  tpj_arena_init(&arena, 4096);
  tpj_json_t* root = NULL;
  tpj_status_t s = tpj_json_parse(copy, size, &arena, &root);
  if (s) {
    if (root || tpj_status_code(s) != TPJ_STATUS_INVALID_ARGUMENT ||
        strncmp(tpj_status_message(s), "json: ", 6) || !strstr(tpj_status_message(s), " at byte "))
      abort();
    tpj_status_free(s);
  } else {
    check_tree(root, size, 0);
    poke_typed_reads(root);
    for (size_t i = 0; i < root->count; ++i) poke_typed_reads(root->items[i]);
    round_trip(root);
  }
  tpj_arena_deinit(&arena);
  free(copy);
  return 0;
}
