/* test_safetensors.c: the strict safetensors reader for model weights. Images
 * are built in C (8-byte header length, JSON header, buffer); one golden image
 * written by the real `safetensors` library checks its output, header padding
 * included. Every refusal is INVALID_ARGUMENT naming the tensor and the rule. */
#include <stdint.h>
#include <string.h>

#include "model/json.h"
#include "model/safetensors.h"
#include "tpj_test.h"

/* Written once by the safetensors library (0.8.0, numpy 2.4.6):
 *   .venv/bin/python -c "import numpy as np; from safetensors.numpy import save_file;
 *     save_file({'fc.weight': np.array([[1,2],[3,4]], dtype=np.float32),
 *                'fc.bias': np.array([-1,0,1], dtype=np.int64),
 *                'mask': np.array([True,False]),
 *                'empty': np.zeros((0,3), dtype=np.float16)},
 *               'golden.safetensors', metadata={'format':'np'})"
 * Its 280-byte header ends in 3 spaces of padding (to 8-byte alignment). */
static const uint8_t kGolden[] = {
    0x18, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7b, 0x22, 0x5f, 0x5f, 0x6d, 0x65, 0x74, 0x61,
    0x64, 0x61, 0x74, 0x61, 0x5f, 0x5f, 0x22, 0x3a, 0x7b, 0x22, 0x66, 0x6f, 0x72, 0x6d, 0x61, 0x74,
    0x22, 0x3a, 0x22, 0x6e, 0x70, 0x22, 0x7d, 0x2c, 0x22, 0x66, 0x63, 0x2e, 0x62, 0x69, 0x61, 0x73,
    0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x49, 0x36, 0x34, 0x22,
    0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61,
    0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x32,
    0x34, 0x5d, 0x7d, 0x2c, 0x22, 0x66, 0x63, 0x2e, 0x77, 0x65, 0x69, 0x67, 0x68, 0x74, 0x22, 0x3a,
    0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x33, 0x32, 0x22, 0x2c, 0x22,
    0x73, 0x68, 0x61, 0x70, 0x65, 0x22, 0x3a, 0x5b, 0x32, 0x2c, 0x32, 0x5d, 0x2c, 0x22, 0x64, 0x61,
    0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x32, 0x34, 0x2c,
    0x34, 0x30, 0x5d, 0x7d, 0x2c, 0x22, 0x65, 0x6d, 0x70, 0x74, 0x79, 0x22, 0x3a, 0x7b, 0x22, 0x64,
    0x74, 0x79, 0x70, 0x65, 0x22, 0x3a, 0x22, 0x46, 0x31, 0x36, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61,
    0x70, 0x65, 0x22, 0x3a, 0x5b, 0x30, 0x2c, 0x33, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f,
    0x6f, 0x66, 0x66, 0x73, 0x65, 0x74, 0x73, 0x22, 0x3a, 0x5b, 0x34, 0x30, 0x2c, 0x34, 0x30, 0x5d,
    0x7d, 0x2c, 0x22, 0x6d, 0x61, 0x73, 0x6b, 0x22, 0x3a, 0x7b, 0x22, 0x64, 0x74, 0x79, 0x70, 0x65,
    0x22, 0x3a, 0x22, 0x42, 0x4f, 0x4f, 0x4c, 0x22, 0x2c, 0x22, 0x73, 0x68, 0x61, 0x70, 0x65, 0x22,
    0x3a, 0x5b, 0x32, 0x5d, 0x2c, 0x22, 0x64, 0x61, 0x74, 0x61, 0x5f, 0x6f, 0x66, 0x66, 0x73, 0x65,
    0x74, 0x73, 0x22, 0x3a, 0x5b, 0x34, 0x30, 0x2c, 0x34, 0x32, 0x5d, 0x7d, 0x7d, 0x20, 0x20, 0x20,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x40,
    0x00, 0x00, 0x40, 0x40, 0x00, 0x00, 0x80, 0x40, 0x01, 0x00,
};

/* A safetensors image: the header's length (LE), the header, data_len bytes of
 * buffer (from `data`, or counting 0, 1, 2, ... when data is NULL). */
static uint8_t* make_image(const char* header, const void* data, size_t data_len,
                           size_t* out_len) {
  size_t n = strlen(header);
  uint8_t* img = (uint8_t*)malloc(8 + n + data_len + 1);
  if (!img) return NULL;
  for (int i = 0; i < 8; ++i) img[i] = (uint8_t)((uint64_t)n >> (8 * i));
  memcpy(img + 8, header, n);
  for (size_t i = 0; i < data_len; ++i) {
    img[8 + n + i] = data ? ((const uint8_t*)data)[i] : (uint8_t)i;
  }
  *out_len = 8 + n + data_len;
  return img;
}

/* Parses a built image and throws the result away. */
static tpj_status_t parse_image(const char* header, size_t data_len) {
  size_t len = 0;
  uint8_t* img = make_image(header, NULL, data_len, &len);
  if (!img) return TPJ_STATUS(RESOURCE_EXHAUSTED, "test: out of memory");
  tpj_arena_t arena;
  tpj_arena_init(&arena, 0);
  tpj_safetensors_t st;
  tpj_status_t s = tpj_safetensors_parse(img, len, &arena, &st);
  if (s && (st.count || st.tensors || st.metadata)) {
    s = tpj_status_annotate(s, "test: output not cleared after an error");
  }
  tpj_arena_deinit(&arena);
  free(img);
  return s;
}

typedef struct bad_case_s {
  const char* header;
  size_t data_len;
  const char* needle;
} bad_case_t;

static void expect_errors(const bad_case_t* cases, size_t n, int* failed) {
  for (size_t i = 0; i < n; ++i) {
    tpj_status_t s = parse_image(cases[i].header, cases[i].data_len);
    if (!s || tpj_status_code(s) != TPJ_STATUS_INVALID_ARGUMENT ||
        !strstr(tpj_status_message(s), cases[i].needle)) {
      fprintf(stderr, "  case %zu (%.60s): got [%s] \"%s\", expected INVALID_ARGUMENT with "
              "\"%s\"\n", i, cases[i].header, s ? tpj_status_code_name(tpj_status_code(s)) : "OK",
              tpj_status_message(s), cases[i].needle);
      *failed = 1;
    }
    tpj_status_free(s);
  }
}
#define EXPECT_ERRORS(cases) expect_errors(cases, sizeof(cases) / sizeof(cases[0]), failed)

static void expect_parses(const char* header, size_t data_len, size_t count, int* failed) {
  size_t len = 0;
  uint8_t* img = make_image(header, NULL, data_len, &len);
  TPJ_EXPECT(img != NULL);
  if (!img) return;
  tpj_arena_t arena;
  tpj_arena_init(&arena, 0);
  tpj_safetensors_t st;
  tpj_status_t s = tpj_safetensors_parse(img, len, &arena, &st);
  if (s) {
    fprintf(stderr, "  %s: [%s] %s\n", header, tpj_status_code_name(tpj_status_code(s)),
            tpj_status_message(s));
    *failed = 1;
  } else if (st.count != count) {
    fprintf(stderr, "  %s: got %zu tensors, expected %zu\n", header, st.count, count);
    *failed = 1;
  }
  tpj_status_free(s);
  tpj_arena_deinit(&arena);
  free(img);
}

TPJ_TEST(golden_file_from_the_safetensors_library) {
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = header_len << 8 | kGolden[i];
  TPJ_EXPECT(header_len == 280 && kGolden[8 + header_len - 1] == ' ');
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_safetensors_t st;
  TPJ_EXPECT_OK(tpj_safetensors_parse(kGolden, sizeof(kGolden), &a, &st));
  TPJ_EXPECT(st.count == 4);
  static const char* const kOrder[] = {"fc.bias", "fc.weight", "empty", "mask"};
  for (size_t i = 0; i < 4 && i < st.count; ++i) TPJ_EXPECT(!strcmp(st.tensors[i].name, kOrder[i]));
  const uint8_t* buf = kGolden + 8 + header_len;
  const tpj_safetensor_t* w = tpj_safetensors_find(&st, "fc.weight");
  TPJ_EXPECT(w && w->dtype == TPJ_DTYPE_F32 && w->rank == 2 && w->dims[0] == 2 && w->dims[1] == 2);
  float f[4] = {0};
  if (w && w->nbytes == sizeof(f)) memcpy(f, w->data, sizeof(f));
  TPJ_EXPECT(w && w->data == buf + 24 && f[0] == 1.0f && f[3] == 4.0f);
  const tpj_safetensor_t* b = tpj_safetensors_find(&st, "fc.bias");
  int64_t bias[3] = {0};
  if (b && b->nbytes == sizeof(bias)) memcpy(bias, b->data, sizeof(bias));
  TPJ_EXPECT(b && b->dtype == TPJ_DTYPE_S64 && b->data == buf && bias[0] == -1 && bias[2] == 1);
  const tpj_safetensor_t* e = tpj_safetensors_find(&st, "empty");
  TPJ_EXPECT(e && e->dtype == TPJ_DTYPE_F16 && e->rank == 2 && e->dims[0] == 0 && e->nbytes == 0);
  const tpj_safetensor_t* m = tpj_safetensors_find(&st, "mask");
  TPJ_EXPECT(m && m->dtype == TPJ_DTYPE_PRED && m->nbytes == 2 && m->data[0] == 1 && m->data[1] == 0);
  const tpj_json_t* format = tpj_json_get((const tpj_json_t*)st.metadata, "format");
  TPJ_EXPECT(format && format->kind == TPJ_JSON_STRING && !strcmp(format->string, "np"));
  tpj_arena_deinit(&a);
}

TPJ_TEST(tensors_come_in_header_order_pointing_into_the_buffer) {
  static const char kHeader[] =
      "{\"b\":{\"dtype\":\"I32\",\"shape\":[3],\"data_offsets\":[16,28]},"
      "\"a\":{\"shape\":[2,2],\"data_offsets\":[0,16],\"dtype\":\"F32\"}}";
  size_t len = 0;
  uint8_t* img = make_image(kHeader, NULL, 28, &len);
  TPJ_EXPECT(img != NULL);
  if (!img) return;
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_safetensors_t st;
  tpj_status_t s = tpj_safetensors_parse(img, len, &a, &st);
  const uint8_t* buf = img + 8 + strlen(kHeader);
  if (!s) {
    TPJ_EXPECT(st.count == 2 && st.metadata == NULL);
    TPJ_EXPECT(!strcmp(st.tensors[0].name, "b") && st.tensors[0].data == buf + 16);
    TPJ_EXPECT(st.tensors[0].dtype == TPJ_DTYPE_S32 && st.tensors[0].nbytes == 12);
    TPJ_EXPECT(!strcmp(st.tensors[1].name, "a") && st.tensors[1].data == buf);
    TPJ_EXPECT(st.tensors[1].rank == 2 && st.tensors[1].nbytes == 16 && buf[15] == 15);
    TPJ_EXPECT(tpj_safetensors_find(&st, "a") == &st.tensors[1]);
    TPJ_EXPECT(tpj_safetensors_find(&st, "c") == NULL && tpj_safetensors_find(&st, NULL) == NULL);
    TPJ_EXPECT(tpj_safetensors_find(NULL, "a") == NULL);
  }
  tpj_arena_deinit(&a);
  free(img);
  TPJ_EXPECT_OK(s);
}

TPJ_TEST(accepts_empty_scalar_and_zero_sized_tensors) {
  expect_parses("{}", 0, 0, failed);
  expect_parses("{}      ", 0, 0, failed); /* the writer's padding */
  expect_parses("{\"__metadata__\":{}}", 0, 0, failed);
  expect_parses("{\"__metadata__\":{\"a\":\"1\",\"b\":\"\"}}", 0, 0, failed);
  expect_parses("{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8, 1, failed);
  expect_parses("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", 0, 1, failed);
  expect_parses("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
                "\"z1\":{\"dtype\":\"F32\",\"shape\":[3,0],\"data_offsets\":[4,4]},"
                "\"z2\":{\"dtype\":\"I64\",\"shape\":[0],\"data_offsets\":[4,4]},"
                "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]},"
                "\"z3\":{\"dtype\":\"BF16\",\"shape\":[0],\"data_offsets\":[6,6]}}", 6, 5, failed);
}

TPJ_TEST(every_dtype_of_the_table_is_read) {
  for (int d = TPJ_DTYPE_INVALID + 1; d < TPJ_DTYPE_COUNT_; ++d) {
    const char* name = tpj_dtype_safetensors_name((tpj_dtype_t)d);
    if (!name) continue;
    char header[160];
    size_t nbytes = 3 * tpj_dtype_size((tpj_dtype_t)d);
    snprintf(header, sizeof(header), "{\"t\":{\"dtype\":\"%s\",\"shape\":[3],"
             "\"data_offsets\":[0,%zu]}}", name, nbytes);
    size_t len = 0;
    uint8_t* img = make_image(header, NULL, nbytes, &len);
    TPJ_EXPECT(img != NULL);
    if (!img) return;
    tpj_arena_t a;
    tpj_arena_init(&a, 0);
    tpj_safetensors_t st;
    tpj_status_t s = tpj_safetensors_parse(img, len, &a, &st);
    TPJ_EXPECT(s || (st.count == 1 && st.tensors[0].dtype == (tpj_dtype_t)d &&
                     st.tensors[0].nbytes == nbytes));
    tpj_arena_deinit(&a);
    free(img);
    TPJ_EXPECT_OK(s);
  }
}

TPJ_TEST(rejects_unknown_dtypes) {
  static const bad_case_t kBad[] = {
      {"{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
       "safetensors: tensor \"w\": unknown dtype \"F8_E4M3\" (expected one of BOOL, I8, I16, "
       "I32, I64, U8, U16, U32, U64, F16, F32, F64, BF16, C64)"},
      {"{\"w\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"f32\""},
      {"{\"w\":{\"dtype\":\"\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "unknown dtype \"\""},
      {"{\"w\":{\"dtype\":\"F32\\u0000\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
       "safetensors: tensor \"w\": dtype: expected a string without NUL bytes"},
      {"{\"w\":{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
       "safetensors: tensor \"w\": dtype: expected a string (got number)"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_header_lengths_outside_the_file) {
  static const uint8_t kShort[7] = {0};
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_safetensors_t st;
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(kShort, 7, &a, &st), INVALID_ARGUMENT,
                   "safetensors: file too short for the header length (got 7 bytes, expected "
                   "at least 8)");
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(NULL, 0, &a, &st), INVALID_ARGUMENT, "got 0 bytes");
  uint8_t img[10] = {100, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(img, sizeof(img), &a, &st), INVALID_ARGUMENT,
                   "safetensors: header length runs past the file (got 100, expected at most 2)");
  memset(img, 0xff, 8); /* 2^64 - 1: 8 + N wraps around */
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(img, sizeof(img), &a, &st), INVALID_ARGUMENT,
                   "(got 18446744073709551615, expected at most 2)");
  memset(img, 0, 8);
  img[0] = 3; /* one byte past the header */
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(img, sizeof(img), &a, &st), INVALID_ARGUMENT,
                   "(got 3, expected at most 2)");
  img[0] = 0;
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(img, sizeof(img), &a, &st), INVALID_ARGUMENT,
                   "safetensors: header (0 bytes at offset 8): json: unexpected end of input");
  img[0] = 2;
  TPJ_EXPECT_OK(tpj_safetensors_parse(img, sizeof(img), &a, &st));
  TPJ_EXPECT(st.count == 0 && st.tensors == NULL && st.metadata == NULL);
  tpj_arena_deinit(&a);
}

TPJ_TEST(header_must_be_one_json_object) {
  static const bad_case_t kBad[] = {
      {"[]", 0, "safetensors: header is not a JSON object (got array, expected object)"},
      {"\"x\"", 0, "header is not a JSON object (got string"},
      {"{\"a\":1,}", 0, "safetensors: header (8 bytes at offset 8): json: trailing comma at byte 7"},
      {"{} {}", 0, "json: unexpected character '{' (expected end of input after the value) at "
                   "byte 3"},
      {"{}\x01", 0, "json: unexpected byte 0x01"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{}}", 4,
       "json: duplicate key \"w\""},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(metadata_must_map_names_to_strings) {
  static const bad_case_t kBad[] = {
      {"{\"__metadata__\":[]}", 0, "safetensors: __metadata__ is not an object (got array, "
                                   "expected an object of strings)"},
      {"{\"__metadata__\":{\"n\":1}}", 0, "safetensors: __metadata__ \"n\": expected a string "
                                         "(got number)"},
      {"{\"__metadata__\":{\"a\":\"x\",\"o\":{}}}", 0, "__metadata__ \"o\": expected a string (got "
                                                      "object)"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(tensor_entries_hold_exactly_three_fields) {
  static const bad_case_t kBad[] = {
      {"{\"w\":[1]}", 0, "safetensors: tensor \"w\": expected an object (got array)"},
      {"{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
       "safetensors: tensor \"w\": missing field \"shape\""},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "missing field \"data_offsets\""},
      {"{\"w\":{}}", 0, "missing field \"dtype\""},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"extra\":0}}", 4,
       "safetensors: tensor \"w\": unexpected field \"extra\" (expected only dtype, shape, "
       "data_offsets)"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(rejects_bad_shapes) {
  static const bad_case_t kBad[] = {
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}}", 12,
       "safetensors: tensor \"w\": shape: expected an array (got number)"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
       "safetensors: tensor \"w\": shape: rank too large (got 9, expected at most 8)"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,-1],\"data_offsets\":[0,0]}}", 0,
       "safetensors: tensor \"w\": shape[1]: out of range (got -1, expected 0..9223372036854775807)"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,10]}}", 10,
       "tensor \"w\": shape[0]: expected an integer in int64 (got 2.5)"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1e30],\"data_offsets\":[0,4]}}", 4,
       "shape[0]: expected an integer in int64 (got 1e+30)"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8,
       "shape[0]: expected a number (got string)"},
  };
  EXPECT_ERRORS(kBad);
  expect_parses("{\"w\":{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]}}", 1,
                1, failed);
}

TPJ_TEST(rejects_bad_offsets) {
  static const bad_case_t kBad[] = {
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4,8]}}", 8,
       "safetensors: tensor \"w\": data_offsets: expected [begin, end] (got 3 items)"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":{}}}", 4,
       "data_offsets: expected an array (got object)"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[-4,0]}}", 4,
       "tensor \"w\": data_offsets[0]: out of range (got -4, expected 0..9223372036854775807)"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,\"4\"]}}", 4,
       "data_offsets[1]: expected a number (got string)"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,4]}}", 8,
       "safetensors: tensor \"w\": data_offsets [8, 4] run backwards (expected begin <= end)"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[10],\"data_offsets\":[0,40]}}", 32,
       "safetensors: tensor \"w\": data_offsets [0, 40] end past the buffer (got end 40, "
       "expected at most 32)"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[9223372036854775807,"
       "9223372036854775807]}}", 0, "end past the buffer (got end 9223372036854775807"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(byte_count_must_match_dtype_times_shape) {
  static const bad_case_t kBad[] = {
      {"{\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 12,
       "safetensors: tensor \"fc.weight\": data_offsets [0, 12] hold 12 bytes (expected 16 for "
       "F32 [2, 2])"},
      {"{\"s\":{\"dtype\":\"F64\",\"shape\":[],\"data_offsets\":[0,4]}}", 4,
       "data_offsets [0, 4] hold 4 bytes (expected 8 for F64 [])"},
      {"{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,4]}}", 4,
       "hold 4 bytes (expected 0 for F32 [0, 3])"},
      {"{\"w\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,4],\"data_offsets\":[0,0]}}", 0,
       "safetensors: tensor \"w\": F32 [4611686018427387904, 4] is too large (expected at "
       "most 9223372036854775807 bytes)"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[3037000500,3037000500],\"data_offsets\":[0,0]}}", 0,
       "U8 [3037000500, 3037000500] is too large"},
      {"{\"w\":{\"dtype\":\"U8\",\"shape\":[0,4294967296,4294967296],\"data_offsets\":[0,0]}}", 0,
       "U8 [0, 4294967296, 4294967296] is too large"}, /* even with no element */
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(ranges_must_tile_the_buffer) {
  static const bad_case_t kBad[] = {
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
       "\"b\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[4,12]}}", 12,
       "safetensors: tensor \"b\": data_offsets [4, 12] overlap tensor \"a\" [0, 8]"},
      {"{\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
       "\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4,
       "safetensors: tensor \"a\": data_offsets [0, 4] overlap tensor \"b\" [0, 4]"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]},"
       "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}", 8,
       "tensor \"z\": data_offsets [4, 4] overlap tensor \"a\" [0, 8]"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8,
       "safetensors: bytes [0, 4) of the buffer belong to no tensor (got tensor \"a\" at 4, "
       "expected one at 0)"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]},"
       "\"b\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}", 12,
       "bytes [4, 8) of the buffer belong to no tensor (got tensor \"b\" at 8, expected one at 4)"},
      {"{\"a\":{\"dtype\":\"U8\",\"shape\":[8],\"data_offsets\":[0,8]}}", 12,
       "safetensors: bytes [8, 12) of the buffer belong to no tensor (got a buffer of 12 bytes, "
       "expected 8)"},
      {"{}", 4, "bytes [0, 4) of the buffer belong to no tensor (got a buffer of 4 bytes, "
                "expected 0)"},
      {"{\"__metadata__\":{}}", 1, "(got a buffer of 1 bytes, expected 0)"},
  };
  EXPECT_ERRORS(kBad);
}

TPJ_TEST(tensor_names_are_non_empty_without_nul) {
  static const bad_case_t kBad[] = {
      {"{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
       "safetensors: tensor name is empty (expected a non-empty name)"},
      {"{\"a\\u0000b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
       "safetensors: tensor \"a\\x00b\": name holds a NUL byte"},
      {"{\"q\\\"\\n\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
       "tensor \"q\\x22\\x0a\": data_offsets [0, 1] hold 1 bytes"},
      {"{\"a123456789b123456789c123456789d123456789e123456789f123456789\":"
       "{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,2]}}", 2,
       "tensor \"a123456789b123456789c123456789d123456789e1234567...\": data_offsets"},
  };
  EXPECT_ERRORS(kBad);
  /* A name of raw UTF-8 is kept, and cut between sequences in messages. */
  expect_parses("{\"\xe6\xa8\xa1\xe5\x9e\x8b.w\":{\"dtype\":\"U8\",\"shape\":[1],"
                "\"data_offsets\":[0,1]}}", 1, 1, failed);
}

TPJ_TEST(rejects_null_arguments_and_clears_the_output) {
  tpj_arena_t a;
  tpj_arena_init(&a, 0);
  tpj_safetensors_t st;
  memset(&st, 0x5a, sizeof(st));
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(kGolden, sizeof(kGolden), NULL, &st), INVALID_ARGUMENT,
                   "safetensors: arena is NULL");
  TPJ_EXPECT(st.count == 0 && st.tensors == NULL && st.metadata == NULL);
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(kGolden, sizeof(kGolden), &a, NULL), INVALID_ARGUMENT,
                   "safetensors: out is NULL");
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(NULL, 16, &a, &st), INVALID_ARGUMENT,
                   "safetensors: bytes is NULL (got 16 bytes)");
  TPJ_EXPECT_ERROR(tpj_safetensors_parse(kGolden, sizeof(kGolden) - 1, &a, &st),
                   INVALID_ARGUMENT, "tensor \"mask\": data_offsets [40, 42] end past the buffer "
                   "(got end 42, expected at most 41)");
  TPJ_EXPECT(st.count == 0 && st.tensors == NULL && st.metadata == NULL);
  tpj_arena_deinit(&a);
}

TPJ_TEST_MAIN("safetensors")
