/* test_json.c: the strict JSON parser that reads the artifact manifest and
 * the safetensors header. Valid documents decode exactly (int64 without a
 * float round trip, escapes to UTF-8); every class of invalid input is refused
 * with INVALID_ARGUMENT naming the reason and the byte offset. */
#include <locale.h>
#include <stdint.h>
#include <string.h>

#include "model/json.h"
#include "tpj_test.h"

/* An input and a substring of its error; len 0 means strlen(text). */
typedef struct bad_case_s {
  const char* text;
  size_t len;
  const char* needle;
} bad_case_t;

static tpj_status_t parse_only(const char* text, size_t len) {
  tpj_arena_t arena;
  tpj_arena_init(&arena, 0);
  tpj_json_t* root = (tpj_json_t*)&arena; /* must come back NULL on error */
  tpj_status_t s = tpj_json_parse(text, len, &arena, &root);
  if (s && root) s = tpj_status_annotate(s, "test: root not NULL after an error");
  tpj_arena_deinit(&arena);
  return s;
}

static void expect_errors(const bad_case_t* cases, size_t n, int* failed) {
  for (size_t i = 0; i < n; ++i) {
    size_t len = cases[i].len ? cases[i].len : strlen(cases[i].text);
    tpj_status_t s = parse_only(cases[i].text, len);
    if (!s || tpj_status_code(s) != TPJ_STATUS_INVALID_ARGUMENT ||
        !strstr(tpj_status_message(s), cases[i].needle)) {
      fprintf(stderr, "  case %zu (%.40s): got [%s] \"%s\", expected INVALID_ARGUMENT with "
              "\"%s\"\n", i, cases[i].text, s ? tpj_status_code_name(tpj_status_code(s)) : "OK",
              tpj_status_message(s), cases[i].needle);
      *failed = 1;
    }
    tpj_status_free(s);
  }
}
#define EXPECT_ERRORS(cases) expect_errors(cases, sizeof(cases) / sizeof(cases[0]), failed)

#define PARSE(arena, text, out) tpj_json_parse((text), strlen(text), (arena), (out))

TPJ_TEST(parses_literals_and_offsets) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_OK(PARSE(&a, "  [null, true,false ]  ", &v));
  TPJ_EXPECT(v->kind == TPJ_JSON_ARRAY && v->count == 3 && v->offset == 2);
  TPJ_EXPECT(v->items[0]->kind == TPJ_JSON_NULL && v->items[0]->offset == 3);
  TPJ_EXPECT(v->items[1]->kind == TPJ_JSON_BOOL && v->items[1]->boolean);
  TPJ_EXPECT(v->items[2]->kind == TPJ_JSON_BOOL && !v->items[2]->boolean);
  TPJ_EXPECT(v->items[2]->offset == 14);
  TPJ_EXPECT_OK(PARSE(&a, "true", &v));
  TPJ_EXPECT(v->kind == TPJ_JSON_BOOL && v->boolean && v->offset == 0);
  tpj_arena_deinit(&a);
}

TPJ_TEST(integers_are_exact_in_int64) {
  static const struct { const char* text; int64_t value; } kCases[] = {
      {"0", 0}, {"-0", 0}, {"42", 42}, {"-17", -17},
      {"9007199254740993", 9007199254740993LL}, /* 2^53 + 1: not a double */
      {"9223372036854775807", INT64_MAX}, {"-9223372036854775808", INT64_MIN},
  };
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); ++i) {
    tpj_json_t* v = NULL;
    TPJ_EXPECT_OK(PARSE(&a, kCases[i].text, &v));
    TPJ_EXPECT(v->kind == TPJ_JSON_NUMBER && v->is_int && v->integer == kCases[i].value);
    TPJ_EXPECT(v->number == (double)kCases[i].value);
  }
  tpj_arena_deinit(&a);
}

TPJ_TEST(numbers_outside_int64_or_with_fraction_are_doubles) {
  static const struct { const char* text; double value; } kCases[] = {
      {"9223372036854775808", 9223372036854775808.0}, {"-9223372036854775809", -9223372036854775808.0},
      {"18446744073709551616", 18446744073709551616.0}, {"1.0", 1.0}, {"1e2", 100.0},
      {"1E+2", 100.0}, {"-2.5e-3", -2.5e-3}, {"0.5", 0.5}, {"-0.0", -0.0}, {"1e-400", 0.0},
      {"123456789012345678901234567890", 1.2345678901234568e29},
  };
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  for (size_t i = 0; i < sizeof(kCases) / sizeof(kCases[0]); ++i) {
    tpj_json_t* v = NULL;
    TPJ_EXPECT_OK(PARSE(&a, kCases[i].text, &v));
    TPJ_EXPECT(v->kind == TPJ_JSON_NUMBER && !v->is_int && v->number == kCases[i].value);
  }
  tpj_arena_deinit(&a);
}

TPJ_TEST(long_numbers_parse_from_a_bounded_copy) {
  char text[400];
  memset(text, '7', 300); /* 300 digits: longer than the on-stack copy */
  text[300] = 0;
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_OK(PARSE(&a, text, &v));
  TPJ_EXPECT(!v->is_int && v->number > 7.7e299 && v->number < 7.8e299);
  strcpy(text, "0.1");
  memset(text + 3, '0', 200);
  strcpy(text + 203, "]");
  TPJ_EXPECT_OK(tpj_json_parse(text, 203, &a, &v)); /* the ']' lies past len */
  TPJ_EXPECT(v->number == 0.1);
  tpj_arena_deinit(&a);
}

/* strtod follows LC_NUMERIC; JSON's '.' must still parse under a ',' locale.
 * Skipped (passes) where no such locale is installed. */
TPJ_TEST(numbers_parse_under_a_comma_decimal_locale) {
  static const char* const kLocales[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "de_DE"};
  const char* set = NULL;
  for (size_t i = 0; i < 4 && !set; ++i) set = setlocale(LC_NUMERIC, kLocales[i]);
  if (!set) return;
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  tpj_status_t s = PARSE(&a, "[1.5, -2.25e1]", &v);
  setlocale(LC_NUMERIC, "C");
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(v->items[0]->number == 1.5 && v->items[1]->number == -22.5);
  tpj_arena_deinit(&a);
}

TPJ_TEST(rejects_numbers_out_of_double_range) {
  static const bad_case_t kBad[] = {
      {"1e400", 0, "json: number out of range (expected a finite double) at byte 0"},
      {"[-1e400]", 0, "number out of range (expected a finite double) at byte 1"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_leading_zeros) {
  static const bad_case_t kBad[] = {
      {"01", 0, "json: leading zeros are not allowed at byte 0"},
      {"-01", 0, "leading zeros are not allowed at byte 1"},
      {"00", 0, "leading zeros are not allowed at byte 0"},
      {"[1, 007]", 0, "leading zeros are not allowed at byte 4"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_malformed_numbers) {
  static const bad_case_t kBad[] = {
      {"-", 0, "unexpected end of input (expected a digit) at byte 1"},
      {"-a", 0, "unexpected character 'a' (expected a digit) at byte 1"},
      {"1.", 0, "(expected a digit in the fraction) at byte 2"},
      {"1.e5", 0, "unexpected character 'e' (expected a digit in the fraction) at byte 2"},
      {"1e", 0, "(expected a digit in the exponent) at byte 2"},
      {"1e+", 0, "(expected a digit in the exponent) at byte 3"},
      {".5", 0, "unexpected character '.' (expected a value) at byte 0"},
      {"+1", 0, "unexpected character '+' (expected a value) at byte 0"},
      {"0x10", 0, "unexpected character 'x' (expected end of input after the value) at byte 1"},
      {"NaN", 0, "unexpected character 'N' (expected a value)"},
      {"-Infinity", 0, "unexpected character 'I' (expected a digit) at byte 1"},
      {"1.5.2", 0, "unexpected character '.'"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(decodes_simple_escapes) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_OK(PARSE(&a, "\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", &v));
  TPJ_EXPECT(v->kind == TPJ_JSON_STRING && v->string_len == 12);
  TPJ_EXPECT(!strcmp(v->string, "a\"b\\c/d\b\f\n\r\t"));
  TPJ_EXPECT_OK(PARSE(&a, "\"\"", &v));
  TPJ_EXPECT(v->string_len == 0 && v->string && v->string[0] == 0);
  tpj_arena_deinit(&a);
}

TPJ_TEST(decodes_unicode_escapes_and_surrogate_pairs) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_OK(PARSE(&a, "\"\\u0041\\u00e9\\u20AC\\uD83D\\uDE00\\u07ff\\uFFFF\"", &v));
  TPJ_EXPECT(!strcmp(v->string, "A\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xdf\xbf\xef\xbf\xbf"));
  TPJ_EXPECT(v->string_len == 15);
  TPJ_EXPECT_OK(PARSE(&a, "\"\\udbff\\udfff\"", &v)); /* U+10FFFF */
  TPJ_EXPECT(!strcmp(v->string, "\xf4\x8f\xbf\xbf"));
  tpj_arena_deinit(&a);
}

TPJ_TEST(escaped_nul_is_kept_with_its_length) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_OK(PARSE(&a, "\"a\\u0000b\"", &v));
  TPJ_EXPECT(v->string_len == 3 && v->string[0] == 'a' && v->string[1] == 0 &&
             v->string[2] == 'b' && v->string[3] == 0);
  const char* str = NULL;
  TPJ_EXPECT_ERROR(tpj_json_str(v, "manifest: name", &str), INVALID_ARGUMENT,
                   "manifest: name: expected a string without NUL bytes (got one at index 1");
  TPJ_EXPECT(str == NULL);
  tpj_arena_deinit(&a);
}

TPJ_TEST(copies_valid_raw_utf8) {
  static const char* const kGood[] = {
      "\"\xc2\x80\"", "\"\xdf\xbf\"", "\"\xe0\xa0\x80\"", "\"\xed\x9f\xbf\"", "\"\xee\x80\x80\"",
      "\"\xef\xbf\xbf\"", "\"\xf0\x90\x80\x80\"", "\"\xf4\x8f\xbf\xbf\"", "\"caf\xc3\xa9 \x7f\"",
  };
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  for (size_t i = 0; i < sizeof(kGood) / sizeof(kGood[0]); ++i) {
    tpj_json_t* v = NULL;
    TPJ_EXPECT_OK(PARSE(&a, kGood[i], &v));
    size_t n = strlen(kGood[i]) - 2;
    TPJ_EXPECT(v->string_len == n && !memcmp(v->string, kGood[i] + 1, n));
  }
  tpj_arena_deinit(&a);
}

TPJ_TEST(rejects_invalid_utf8) {
  static const bad_case_t kBad[] = {
      {"\"\x80\"", 0, "json: invalid UTF-8 (byte 0x80) at byte 1"},
      {"\"ab\xbf\"", 0, "invalid UTF-8 (byte 0xbf) at byte 3"},
      {"\"\xc0\x80\"", 0, "invalid UTF-8 (byte 0xc0)"},       /* overlong NUL */
      {"\"\xc1\xbf\"", 0, "invalid UTF-8 (byte 0xc1)"},
      {"\"\xe0\x9f\xbf\"", 0, "invalid UTF-8 (byte 0xe0)"},   /* overlong */
      {"\"\xed\xa0\x80\"", 0, "invalid UTF-8 (byte 0xed)"},   /* U+D800 */
      {"\"\xf0\x8f\xbf\xbf\"", 0, "invalid UTF-8 (byte 0xf0)"},
      {"\"\xf4\x90\x80\x80\"", 0, "invalid UTF-8 (byte 0xf4)"}, /* U+110000 */
      {"\"\xf5\x80\x80\x80\"", 0, "invalid UTF-8 (byte 0xf5)"},
      {"\"\xff\"", 0, "invalid UTF-8 (byte 0xff)"},
      {"\"\xe2\x82\"", 0, "invalid UTF-8 (byte 0xe2) at byte 1"}, /* cut by the quote */
      {"\"\xc3" "a\"", 0, "invalid UTF-8 (byte 0xc3)"},
      {"\"\xf0\x9f\x98\"", 0, "invalid UTF-8 (byte 0xf0)"},
      {"\xc3\xa9", 0, "unexpected byte 0xc3 (expected a value) at byte 0"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_lone_surrogates_and_bad_u_escapes) {
  static const bad_case_t kBad[] = {
      {"\"\\uD800\"", 0, "json: lone surrogate \\uD800 (expected a low surrogate"},
      {"\"x\\udbff\\u0041\"", 0, "lone surrogate \\uDBFF (expected a low surrogate \\uDC00..\\uDFFF "
                                 "after it) at byte 2"},
      {"\"\\uD800\\uD800\"", 0, "lone surrogate \\uD800"},
      {"\"\\uD800x\"", 0, "lone surrogate \\uD800"},
      {"\"\\uDC00\"", 0, "lone surrogate \\uDC00 (expected a high surrogate before it) at byte 1"},
      {"\"\\u12G4\"", 0, "json: invalid \\u escape (expected 4 hex digits) at byte 1"},
      {"\"\\u12\"", 0, "invalid \\u escape (expected 4 hex digits) at byte 1"},
      {"\"\\u\"", 0, "invalid \\u escape"},
      {"\"\\u 123\"", 0, "invalid \\u escape"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_invalid_escapes) {
  static const bad_case_t kBad[] = {
      {"\"\\x41\"", 0, "json: invalid escape '\\x' at byte 1"},
      {"\"ab\\'\"", 0, "invalid escape '\\'' at byte 3"},
      {"\"\\U0041\"", 0, "invalid escape '\\U'"},
      {"\"\\a\"", 0, "invalid escape '\\a'"},
      {"\"\\\x01\"", 4, "invalid escape (backslash before byte 0x01) at byte 1"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_control_characters_in_strings) {
  static const bad_case_t kBad[] = {
      {"\"a\nb\"", 0, "json: control character 0x0a in a string (expected it escaped) at byte 2"},
      {"\"\t\"", 0, "control character 0x09 in a string"},
      {"\"\x1f\"", 0, "control character 0x1f"},
      {"\"a\0b\"", 5, "control character 0x00 in a string (expected it escaped) at byte 2"},
      {"{\"k\ey\":1}", 0, "control character 0x1b"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_unterminated_strings) {
  static const bad_case_t kBad[] = {
      {"\"abc", 0, "json: unterminated string at byte 0"},
      {"[\"abc\\\"]", 0, "unterminated string at byte 1"},
      {"\"ab\\", 0, "unterminated string at byte 0"},
      {"\"abc\"", 4, "unterminated string at byte 0"}, /* the quote lies past len */
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(parses_arrays_and_objects_in_document_order) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_OK(PARSE(&a, "{\"z\": [1, \"a\", [true], {}], \"a\": {\"k\": null}, \"\": []}", &v));
  TPJ_EXPECT(v->kind == TPJ_JSON_OBJECT && v->count == 3);
  TPJ_EXPECT(!strcmp(v->keys[0], "z") && !strcmp(v->keys[1], "a") && v->key_lens[2] == 0);
  const tpj_json_t* z = tpj_json_get(v, "z");
  TPJ_EXPECT(z == v->items[0] && z->kind == TPJ_JSON_ARRAY && z->count == 4);
  TPJ_EXPECT(z->offset == 6 && z->items[0]->integer == 1 && !strcmp(z->items[1]->string, "a"));
  TPJ_EXPECT(z->items[2]->count == 1 && z->items[2]->items[0]->boolean);
  TPJ_EXPECT(z->items[3]->kind == TPJ_JSON_OBJECT && z->items[3]->count == 0);
  const tpj_json_t* inner = tpj_json_get(v, "a");
  TPJ_EXPECT(inner && tpj_json_get(inner, "k")->kind == TPJ_JSON_NULL);
  TPJ_EXPECT(tpj_json_get(v, "")->kind == TPJ_JSON_ARRAY);
  TPJ_EXPECT_OK(PARSE(&a, "[ ]", &v));
  TPJ_EXPECT(v->kind == TPJ_JSON_ARRAY && v->count == 0 && v->items == NULL);
  TPJ_EXPECT_OK(PARSE(&a, "{\n}", &v));
  TPJ_EXPECT(v->kind == TPJ_JSON_OBJECT && v->count == 0);
  tpj_arena_deinit(&a);
}

TPJ_TEST(large_containers_keep_every_item) {
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_puts(&sb, "[");
  for (int i = 0; i < 10000; ++i) tpj_strbuf_printf(&sb, "%s[%d, {\"k%d\": %d}]", i ? "," : "", i, i, -i);
  tpj_strbuf_puts(&sb, "]");
  TPJ_EXPECT_OK(tpj_strbuf_status(&sb));
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  tpj_status_t s = tpj_json_parse(sb.data, sb.len, &a, &v);
  tpj_strbuf_deinit(&sb);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(v->count == 10000);
  const tpj_json_t* last = v->items[9999];
  TPJ_EXPECT(last->count == 2 && last->items[0]->integer == 9999);
  TPJ_EXPECT(tpj_json_get(last->items[1], "k9999")->integer == -9999);
  tpj_arena_deinit(&a);
}

TPJ_TEST(rejects_trailing_commas_and_missing_separators) {
  static const bad_case_t kBad[] = {
      {"[1,]", 0, "json: trailing comma at byte 3"},
      {"{\"a\": 1 , }", 0, "trailing comma at byte 10"},
      {"[1,,2]", 0, "unexpected character ',' (expected a value) at byte 3"},
      {"[,]", 0, "unexpected character ',' (expected a value) at byte 1"},
      {"{,}", 0, "unexpected character ',' (expected a string key) at byte 1"},
      {"[1 2]", 0, "unexpected character '2' (expected ',' or ']') at byte 3"},
      {"{\"a\" 1}", 0, "unexpected character '1' (expected ':' after the key) at byte 5"},
      {"{\"a\":1 \"b\":2}", 0, "(expected ',' or '}') at byte 7"},
      {"{1:2}", 0, "unexpected character '1' (expected a string key) at byte 1"},
      {"{'a':1}", 0, "(expected a string key) at byte 1"},
      {"[1", 0, "unexpected end of input (expected ',' or ']') at byte 2"},
      {"{\"a\":", 0, "unexpected end of input (expected a value) at byte 5"},
      {"{\"a\"", 0, "unexpected end of input (expected ':' after the key)"},
      {"[1}", 0, "unexpected character '}' (expected ',' or ']')"},
      {"{\"a\":1]", 0, "unexpected character ']' (expected ',' or '}')"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_comments) {
  static const bad_case_t kBad[] = {
      {"// c\n1", 0, "json: comments are not allowed at byte 0"},
      {"/* c */ 1", 0, "comments are not allowed at byte 0"},
      {"[1 /* c */]", 0, "comments are not allowed at byte 3"},
      {"1 // c", 0, "comments are not allowed at byte 2"},
      {"{\"a\"/**/:1}", 0, "comments are not allowed at byte 4"},
      {"[/]", 0, "comments are not allowed at byte 1"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_duplicate_keys) {
  static const bad_case_t kBad[] = {
      {"{\"a\":1,\"a\":2}", 0, "json: duplicate key \"a\" at byte 7"},
      {"{\"a\":1, \"\\u0061\":2}", 0, "duplicate key \"a\" at byte 8"}, /* same once decoded */
      {"[{\"x\":{\"b\":1,\"c\":2,\"b\":3}}]", 0, "duplicate key \"b\" at byte 19"},
      {"{\"a\\u0000b\":1,\"a\\u0000b\":2}", 0, "duplicate key \"a\\x00b\""},
      {"{\"\":1,\"\":2}", 0, "duplicate key \"\" at byte 6"},
      {"{\"q\\\"\":1,\"q\\\"\":2}", 0, "duplicate key \"q\\x22\""},
      {"{\"k123456789k123456789k123456789k123456789k123456789k123456789\":1,"
       "\"k123456789k123456789k123456789k123456789k123456789k123456789\":2}", 0,
       "duplicate key \"k123456789k123456789k123456789k123456789k1234567...\" at byte 66"},
  };
  EXPECT_ERRORS(kBad);
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL; /* same key in different objects, keys differing after a NUL */
  TPJ_EXPECT_OK(PARSE(&a, "[{\"a\":1},{\"a\":2},{\"a\\u0000b\":1,\"a\\u0000c\":2,\"a\":3}]", &v));
  TPJ_EXPECT(v->items[2]->count == 3);
  tpj_arena_deinit(&a);
}

TPJ_TEST(reports_the_first_repeated_key_of_a_large_object) {
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_puts(&sb, "{");
  for (int i = 0; i < 200; ++i) tpj_strbuf_printf(&sb, "%s\"key%03d\":%d", i ? "," : "", i, i);
  size_t unique_len = sb.len;
  tpj_strbuf_puts(&sb, "}");
  tpj_status_t s = parse_only(sb.data, sb.len);
  TPJ_EXPECT(s == NULL);
  tpj_status_free(s);
  sb.len = unique_len; /* then repeat key150, key007 and key150 again */
  size_t first_dup = sb.len + 1;
  tpj_strbuf_puts(&sb, ",\"key150\":0,\"key007\":0,\"key150\":0}");
  char needle[64];
  snprintf(needle, sizeof(needle), "duplicate key \"key150\" at byte %zu", first_dup);
  TPJ_EXPECT_ERROR(parse_only(sb.data, sb.len), INVALID_ARGUMENT, needle);
  tpj_strbuf_deinit(&sb);
}

/* `depth` arrays (or objects) nested around a 0. */
static char* nested(size_t depth, bool objects, size_t* out_len) {
  size_t open = objects ? 5 : 1, n = depth * (open + 1) + 1;
  char* text = (char*)malloc(n + 1);
  if (!text) return NULL;
  for (size_t i = 0; i < depth; ++i) memcpy(text + i * open, objects ? "{\"k\":" : "[", open);
  text[depth * open] = '0';
  memset(text + depth * open + 1, objects ? '}' : ']', depth);
  text[n] = 0;
  *out_len = n;
  return text;
}

TPJ_TEST(nesting_is_limited_to_max_depth) {
  for (int objects = 0; objects < 2; ++objects) {
    size_t len = 0;
    char* text = nested(TPJ_JSON_MAX_DEPTH, objects, &len);
    TPJ_EXPECT(text != NULL);
    if (!text) return;
    tpj_status_t s = parse_only(text, len);
    TPJ_EXPECT(s == NULL);
    tpj_status_free(s);
    free(text);
    text = nested(TPJ_JSON_MAX_DEPTH + 1, objects, &len);
    if (!text) return;
    char needle[80];
    snprintf(needle, sizeof(needle), "json: nesting too deep (expected at most %d levels) at "
             "byte %d", TPJ_JSON_MAX_DEPTH, TPJ_JSON_MAX_DEPTH * (objects ? 5 : 1));
    TPJ_EXPECT_ERROR(parse_only(text, len), INVALID_ARGUMENT, needle);
    free(text);
  }
}

TPJ_TEST(very_deep_input_does_not_overflow_the_stack) {
  size_t n = 4 << 20;
  char* text = (char*)malloc(n);
  TPJ_EXPECT(text != NULL);
  if (!text) return;
  memset(text, '[', n);
  TPJ_EXPECT_ERROR(parse_only(text, n), INVALID_ARGUMENT, "nesting too deep");
  for (size_t i = 0; i + 5 <= n; i += 5) memcpy(text + i, "{\"\":[", 5);
  TPJ_EXPECT_ERROR(parse_only(text, n), INVALID_ARGUMENT, "nesting too deep");
  free(text);
}

TPJ_TEST(rejects_trailing_garbage_but_not_trailing_whitespace) {
  static const bad_case_t kBad[] = {
      {"1 2", 0, "json: unexpected character '2' (expected end of input after the value) at "
                 "byte 2"},
      {"{}x", 0, "unexpected character 'x' (expected end of input after the value) at byte 2"},
      {"[]]", 0, "at byte 2"},
      {"null null", 0, "at byte 5"},
      {"\"a\"\"b\"", 0, "at byte 3"},
      {"0\0", 2, "unexpected byte 0x00 (expected end of input after the value) at byte 1"},
      {"truex", 0, "unexpected character 'x'"},
  };
  EXPECT_ERRORS(kBad);
  tpj_status_t s = parse_only(" \t\r\n1 \t\r\n ", 10);
  TPJ_EXPECT(s == NULL);
  tpj_status_free(s);
}

TPJ_TEST(rejects_empty_input_bad_literals_and_bad_whitespace) {
  static const bad_case_t kBad[] = {
      {"", 0, "json: unexpected end of input (expected a value) at byte 0"},
      {"   ", 0, "unexpected end of input (expected a value) at byte 3"},
      {"tru", 0, "json: invalid literal (expected true) at byte 0"},
      {"True", 0, "unexpected character 'T' (expected a value)"},
      {"[nul]", 0, "invalid literal (expected null) at byte 1"},
      {"fals", 0, "invalid literal (expected false)"},
      {"\xef\xbb\xbf{}", 0, "unexpected byte 0xef (expected a value) at byte 0"}, /* BOM */
      {"\v1", 0, "unexpected byte 0x0b"},
      {"\f1", 0, "unexpected byte 0x0c"},
      {"[1,\xc2\xa0" "2]", 0, "unexpected byte 0xc2"}, /* no-break space */
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(reads_only_len_bytes) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_OK(tpj_json_parse("12345", 2, &a, &v));
  TPJ_EXPECT(v->is_int && v->integer == 12);
  TPJ_EXPECT_OK(tpj_json_parse("[1,2]garbage", 5, &a, &v));
  TPJ_EXPECT(v->count == 2);
  TPJ_EXPECT_ERROR(tpj_json_parse("true", 3, &a, &v), INVALID_ARGUMENT, "invalid literal");
  TPJ_EXPECT(v == NULL);
  tpj_arena_deinit(&a);
}

TPJ_TEST(get_and_kind_names) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_OK(PARSE(&a, "{\"ab\": 1, \"a\": 2, \"x\\u0000\": 3}", &v));
  TPJ_EXPECT(tpj_json_get(v, "a")->integer == 2 && tpj_json_get(v, "ab")->integer == 1);
  TPJ_EXPECT(tpj_json_get(v, "b") == NULL && tpj_json_get(v, "x") == NULL);
  TPJ_EXPECT(tpj_json_get(v, NULL) == NULL && tpj_json_get(NULL, "a") == NULL);
  TPJ_EXPECT(tpj_json_get(v->items[0], "a") == NULL); /* not an object */
  TPJ_EXPECT(!strcmp(tpj_json_kind_name(TPJ_JSON_NULL), "null"));
  TPJ_EXPECT(!strcmp(tpj_json_kind_name(TPJ_JSON_BOOL), "bool"));
  TPJ_EXPECT(!strcmp(tpj_json_kind_name(TPJ_JSON_NUMBER), "number"));
  TPJ_EXPECT(!strcmp(tpj_json_kind_name(TPJ_JSON_STRING), "string"));
  TPJ_EXPECT(!strcmp(tpj_json_kind_name(TPJ_JSON_ARRAY), "array"));
  TPJ_EXPECT(!strcmp(tpj_json_kind_name(TPJ_JSON_OBJECT), "object"));
  TPJ_EXPECT(!strcmp(tpj_json_kind_name((tpj_json_kind_t)42), "invalid"));
  tpj_arena_deinit(&a);
}

TPJ_TEST(typed_reads_name_the_field) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_OK(PARSE(&a, "{\"dtype\": 3, \"rank\": 99, \"f\": 1.5, \"e\": 1e2, \"s\": \"f32\","
                          " \"big\": -9223372036854775808}", &v));
  const tpj_json_t* dtype = tpj_json_get(v, "dtype");
  TPJ_EXPECT_OK(tpj_json_expect(dtype, TPJ_JSON_NUMBER, "manifest: inputs[0].dtype"));
  TPJ_EXPECT_ERROR(tpj_json_expect(dtype, TPJ_JSON_STRING, "manifest: inputs[0].dtype"),
                   INVALID_ARGUMENT, "manifest: inputs[0].dtype: expected a string (got number)");
  TPJ_EXPECT_ERROR(tpj_json_expect(v, TPJ_JSON_ARRAY, "manifest: inputs"), INVALID_ARGUMENT,
                   "manifest: inputs: expected an array (got object)");
  TPJ_EXPECT_ERROR(tpj_json_expect(tpj_json_get(v, "nope"), TPJ_JSON_OBJECT, "manifest: x"),
                   INVALID_ARGUMENT, "manifest: x: missing (expected an object)");
  int64_t n = -1;
  TPJ_EXPECT_OK(tpj_json_int(dtype, 0, 8, "manifest: dtype", &n));
  TPJ_EXPECT(n == 3);
  TPJ_EXPECT_ERROR(tpj_json_int(tpj_json_get(v, "rank"), 0, 8, "manifest: rank", &n),
                   INVALID_ARGUMENT, "manifest: rank: out of range (got 99, expected 0..8)");
  TPJ_EXPECT_ERROR(tpj_json_int(tpj_json_get(v, "f"), 0, 8, "manifest: f", &n), INVALID_ARGUMENT,
                   "manifest: f: expected an integer in int64 (got 1.5)");
  TPJ_EXPECT_ERROR(tpj_json_int(tpj_json_get(v, "e"), 0, 1000, "manifest: e", &n),
                   INVALID_ARGUMENT, "expected an integer in int64 (got 100)");
  TPJ_EXPECT_ERROR(tpj_json_int(tpj_json_get(v, "s"), 0, 8, "manifest: s", &n), INVALID_ARGUMENT,
                   "manifest: s: expected a number (got string)");
  TPJ_EXPECT_ERROR(tpj_json_int(NULL, 0, 8, "manifest: m", &n), INVALID_ARGUMENT,
                   "manifest: m: missing (expected a number)");
  TPJ_EXPECT(n == 3);
  TPJ_EXPECT_OK(tpj_json_int(tpj_json_get(v, "big"), INT64_MIN, INT64_MAX, "big", &n));
  TPJ_EXPECT(n == INT64_MIN);
  const char* str = NULL;
  TPJ_EXPECT_OK(tpj_json_str(tpj_json_get(v, "s"), "manifest: s", &str));
  TPJ_EXPECT(str && !strcmp(str, "f32"));
  TPJ_EXPECT_ERROR(tpj_json_str(dtype, "manifest: dtype", &str), INVALID_ARGUMENT,
                   "manifest: dtype: expected a string (got number)");
  tpj_arena_deinit(&a);
}

TPJ_TEST(rejects_null_arguments) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_json_t* v = NULL;
  TPJ_EXPECT_ERROR(tpj_json_parse(NULL, 0, &a, &v), INVALID_ARGUMENT,
                   "json: unexpected end of input (expected a value) at byte 0");
  TPJ_EXPECT_ERROR(tpj_json_parse(NULL, 3, &a, &v), INVALID_ARGUMENT, "json: text is NULL");
  TPJ_EXPECT_ERROR(tpj_json_parse("1", 1, NULL, &v), INVALID_ARGUMENT, "json: arena is NULL");
  TPJ_EXPECT_ERROR(tpj_json_parse("1", 1, &a, NULL), INVALID_ARGUMENT, "json: out_root is NULL");
  tpj_arena_deinit(&a);
}

#if !defined(__SANITIZE_ADDRESS__) /* ASan aborts on an impossible malloc */
TPJ_TEST(arena_exhaustion_is_resource_exhausted) {
  tpj_arena_t a;
  tpj_arena_init(&a, SIZE_MAX / 4); /* every block allocation fails */
  tpj_json_t* v = NULL;
  TPJ_EXPECT_ERROR(PARSE(&a, "[1, 2]", &v), RESOURCE_EXHAUSTED, "json: out of memory");
  TPJ_EXPECT(v == NULL);
  tpj_arena_deinit(&a);
}
#endif

TPJ_TEST_MAIN("json")
