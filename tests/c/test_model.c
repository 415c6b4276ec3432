/* test_model.c: the .tpj loader and runner (tpj/model.h) on the real CPU
 * plugin. Artifacts are written here byte by byte (a small writer of the
 * container in docs/artifact.md), so every check of the loader can be hit:
 * good models static and bucketed, serialized executables, runtime checks,
 * and damaged or inconsistent files, each refused with its clear error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/model_internal.h"
#include "tpj/model.h"
#include "tpj/runtime.h"
#include "tpj_test.h"

static tpj_client_t* g_client;

static tpj_status_t ensure_client(void) {
  return g_client ? NULL : tpj_test_cpu_client(0, &g_client);
}

/* ---------------------------------------------------------------- writer -- */

typedef struct {
  const char* name;
  const void* data;
  size_t size;
} part_t;

static void put_u32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = (uint8_t)(v >> (8 * i));
}

static void digest(const void* data, size_t len, uint8_t* out) {
  tpj_digest_t d;
  tpj_sha256_bytes(data, len, &d);
  memcpy(out, d.bytes, 32);
}

/* The container of `parts` (malloc'ed, *out_len bytes). */
static uint8_t* build_container(const part_t* parts, size_t n, size_t* out_len) {
  size_t offset = 64 + n * 128, total = offset;
  for (size_t i = 0; i < n; ++i) total = (total + 63) / 64 * 64 + parts[i].size;
  uint8_t* b = calloc(1, total);
  memcpy(b, "TPJMODEL", 8);
  put_u32(b + 8, 1);
  put_u32(b + 12, (uint32_t)n);
  for (size_t i = 0; i < n; ++i) {
    uint8_t* e = b + 64 + i * 128;
    offset = (offset + 63) / 64 * 64;
    strncpy((char*)e, parts[i].name, 63);
    put_u64(e + 64, offset);
    put_u64(e + 72, parts[i].size);
    memcpy(b + offset, parts[i].data, parts[i].size);
    digest(b + offset, parts[i].size, e + 80);
    offset += parts[i].size;
  }
  digest(b + 64, n * 128, b + 16);
  *out_len = total;
  return b;
}

/* safetensors with one tensor "w" = F32 [3, 2] holding `w`. */
static uint8_t* build_weights(const float* w, size_t* out_len) {
  const char* header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[0,24]}}";
  size_t hlen = strlen(header), padded = (hlen + 7) / 8 * 8;
  uint8_t* b = malloc(8 + padded + 24);
  put_u64(b, padded);
  memset(b + 8, ' ', padded);
  memcpy(b + 8, header, hlen);
  memcpy(b + 8 + padded, w, 24);
  *out_len = 8 + padded + 24;
  return b;
}

/* x[B, 3] . w[3, 2] at bucket B. */
static char* matmul_program(int64_t b) {
  char* text = malloc(1024);
  snprintf(text, 1024,
           "module {\n  func.func @main(%%x: tensor<%lldx3xf32>, %%w: tensor<3x2xf32>) -> "
           "tensor<%lldx2xf32> {\n    %%0 = stablehlo.dot_general %%x, %%w, contracting_dims "
           "= [1] x [0] : (tensor<%lldx3xf32>, tensor<3x2xf32>) -> tensor<%lldx2xf32>\n"
           "    return %%0 : tensor<%lldx2xf32>\n  }\n}\n",
           (long long)b, (long long)b, (long long)b, (long long)b, (long long)b);
  return text;
}

static const float kW[6] = {1, 2, 3, 4, 5, 6};

/* The manifest of the matmul model: static (symbol NULL) or bucketed. */
static char* matmul_manifest(const char* symbol, const char* programs, const char* extra) {
  char* m = malloc(4096);
  snprintf(m, 4096,
           "{\"format\": \"tpj-model\", \"version\": 1, \"producer\": {\"torch\": \"test\"},\n"
           " \"symbol\": %s,\n"
           " \"inputs\": [{\"name\": \"x\", \"dtype\": \"float32\", \"shape\": [%s, 3]}],\n"
           " \"outputs\": [{\"name\": \"y\", \"dtype\": \"float32\", \"shape\": [%s, 2]}],\n"
           " \"programs\": [%s]%s}",
           symbol ? symbol : "null", symbol ? "{\"scale\": 1}" : "2",
           symbol ? "{\"scale\": 1}" : "2", programs, extra ? extra : "");
  return m;
}

#define MATMUL_PARAMS "\"params\": [{\"input\": 0}, {\"weight\": \"w\"}], \"checks\": []"

/* Writes an artifact to a fresh temp file; returns its malloc'ed path. */
static char* write_temp(const uint8_t* bytes, size_t len) {
  char* path = strdup("/tmp/tpj_test_model_XXXXXX");
  int fd = mkstemp(path);
  if (fd < 0 || write(fd, bytes, len) != (ssize_t)len) {
    free(path);
    if (fd >= 0) close(fd);
    return NULL;
  }
  close(fd);
  return path;
}

/* The bucketed matmul model (buckets 2 and 4, symbol in 0..4) with an
 * optional extra part. */
static uint8_t* matmul_bucketed(size_t* out_len, const part_t* extra_part, const char* extra) {
  char* p2 = matmul_program(2);
  char* p4 = matmul_program(4);
  char* man = matmul_manifest("{\"name\": \"batch\", \"min\": 0, \"max\": 4}",
                              "{\"part\": \"program/0.mlir\", \"bucket\": 2, " MATMUL_PARAMS
                              "}, {\"part\": \"program/1.mlir\", \"bucket\": 4, "
                              MATMUL_PARAMS "}", extra);
  size_t wlen = 0;
  uint8_t* w = build_weights(kW, &wlen);
  part_t parts[5] = {{"manifest.json", man, strlen(man)},
                     {"weights.safetensors", w, wlen},
                     {"program/0.mlir", p2, strlen(p2)},
                     {"program/1.mlir", p4, strlen(p4)}};
  size_t n = 4;
  if (extra_part) parts[n++] = *extra_part;
  uint8_t* bytes = build_container(parts, n, out_len);
  free(p2);
  free(p4);
  free(man);
  free(w);
  return bytes;
}

static uint8_t* matmul_static(size_t* out_len, const char* manifest_override) {
  char* p = matmul_program(2);
  char* man = matmul_manifest(NULL, "{\"part\": \"program/0.mlir\", \"bucket\": 0, "
                              MATMUL_PARAMS "}", NULL);
  const char* text = manifest_override ? manifest_override : man;
  size_t wlen = 0;
  uint8_t* w = build_weights(kW, &wlen);
  part_t parts[3] = {{"manifest.json", text, strlen(text)},
                     {"weights.safetensors", w, wlen},
                     {"program/0.mlir", p, strlen(p)}};
  uint8_t* bytes = build_container(parts, 3, out_len);
  free(p);
  free(man);
  free(w);
  return bytes;
}

/* --------------------------------------------------------------- helpers -- */

static tpj_status_t load_bytes(const uint8_t* bytes, size_t len, tpj_model_t** out) {
  TPJ_RETURN_IF_ERROR(ensure_client());
  char* path = write_temp(bytes, len);
  if (!path) return TPJ_STATUS(INTERNAL, "test: cannot write a temp file");
  tpj_status_t s = tpj_model_load(g_client, path, out);
  unlink(path);
  free(path);
  return s;
}

static tpj_host_tensor_t x_rows(float* data, int64_t rows) {
  tpj_host_tensor_t t = {.dtype = TPJ_DTYPE_F32, .rank = 2, .dims = {rows, 3}, .data = data,
                         .nbytes = (size_t)rows * 3 * sizeof(float)};
  return t;
}

/* True when y (rows x 2) is x (rows x 3) times kW. */
static bool matmul_ok(const float* x, const tpj_host_tensor_t* y, int64_t rows) {
  if (y->dtype != TPJ_DTYPE_F32 || y->rank != 2 || y->dims[0] != rows || y->dims[1] != 2 ||
      y->nbytes != (size_t)rows * 2 * sizeof(float)) {
    return false;
  }
  const float* out = y->data;
  for (int64_t i = 0; i < rows; ++i) {
    for (int j = 0; j < 2; ++j) {
      float want = 0;
      for (int k = 0; k < 3; ++k) want += x[i * 3 + k] * kW[k * 2 + j];
      if (out[i * 2 + j] != want) return false;
    }
  }
  return true;
}

/* ----------------------------------------------------------------- tests -- */

TPJ_TEST(static_model_runs) {
  size_t len = 0;
  uint8_t* bytes = matmul_static(&len, NULL);
  tpj_model_t* m = NULL;
  tpj_status_t s = load_bytes(bytes, len, &m);
  free(bytes);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(tpj_model_num_inputs(m) == 1 && tpj_model_num_outputs(m) == 1);
  TPJ_EXPECT(!strcmp(tpj_model_input(m, 0)->name, "x"));
  TPJ_EXPECT(tpj_model_input(m, 0)->dynamic_dim == -1);
  TPJ_EXPECT(tpj_model_num_buckets(m) == 1 && tpj_model_bucket(m, 0) == 0);
  TPJ_EXPECT(strstr(tpj_model_manifest(m), "tpj-model") != NULL);
  float x[6] = {1, 0, -1, 0.5f, 2, 3};
  tpj_host_tensor_t in = x_rows(x, 2), out;
  s = tpj_model_run(m, &in, 1, &out, 1);
  if (!s) {
    TPJ_EXPECT(matmul_ok(x, &out, 2));
    tpj_host_tensor_free(&out);
  }
  tpj_model_release(m);
  TPJ_EXPECT_OK(s);
}

TPJ_TEST(bucketed_model_pads_and_slices) {
  size_t len = 0;
  uint8_t* bytes = matmul_bucketed(&len, NULL, NULL);
  tpj_model_t* m = NULL;
  tpj_status_t s = load_bytes(bytes, len, &m);
  free(bytes);
  TPJ_EXPECT_OK(s);
  TPJ_EXPECT(tpj_model_num_buckets(m) == 2 && tpj_model_bucket(m, 1) == 4);
  TPJ_EXPECT(tpj_model_input(m, 0)->dynamic_dim == 0 && tpj_model_input(m, 0)->dims[0] == -1);
  float x[12] = {1, 2, 3, -1, 0, 1, 2, 2, 2, 0.25f, -4, 8};
  for (int64_t rows = 0; rows <= 4; ++rows) {
    tpj_host_tensor_t in = x_rows(x, rows), out;
    s = tpj_model_run(m, &in, 1, &out, 1);
    if (s) break;
    TPJ_EXPECT(matmul_ok(x, &out, rows));
    tpj_host_tensor_free(&out);
  }
  if (s) tpj_model_release(m);
  TPJ_EXPECT_OK(s);
  float big[15] = {0};
  tpj_host_tensor_t in = x_rows(big, 5), out;
  TPJ_EXPECT_ERROR(tpj_model_run(m, &in, 1, &out, 1), INVALID_ARGUMENT,
                   "batch out of range (got 5, expected 0..4)");
  tpj_model_release(m);
}

TPJ_TEST(run_refuses_bad_inputs) {
  size_t len = 0;
  uint8_t* bytes = matmul_static(&len, NULL);
  tpj_model_t* m = NULL;
  tpj_status_t s = load_bytes(bytes, len, &m);
  free(bytes);
  TPJ_EXPECT_OK(s);
  float x[9] = {0};
  tpj_host_tensor_t out;
  tpj_host_tensor_t wrong_rows = x_rows(x, 3);
  TPJ_EXPECT_ERROR(tpj_model_run(m, &wrong_rows, 1, &out, 1), INVALID_ARGUMENT,
                   "input \"x\": wrong size at dim 0 (got 3, expected 2)");
  tpj_host_tensor_t wrong_dtype = x_rows(x, 2);
  wrong_dtype.dtype = TPJ_DTYPE_S32;
  TPJ_EXPECT_ERROR(tpj_model_run(m, &wrong_dtype, 1, &out, 1), INVALID_ARGUMENT,
                   "wrong dtype (got int32, expected float32)");
  tpj_host_tensor_t short_data = x_rows(x, 2);
  short_data.nbytes = 8;
  TPJ_EXPECT_ERROR(tpj_model_run(m, &short_data, 1, &out, 1), INVALID_ARGUMENT,
                   "8 bytes of data (expected 24)");
  TPJ_EXPECT_ERROR(tpj_model_run(m, NULL, 0, &out, 1), INVALID_ARGUMENT,
                   "wrong number of inputs (got 0, expected 1)");
  tpj_model_release(m);
}

/* tpj_model_check_bytes and tpj_model_load both refuse `bytes`. */
#define EXPECT_REFUSED(bytes, len, code, needle)                              \
  do {                                                                        \
    TPJ_EXPECT_ERROR(tpj_model_check_bytes((bytes), (len)), code, (needle));  \
    tpj_model_t* m_ = NULL;                                                   \
    TPJ_EXPECT_ERROR(load_bytes((bytes), (len), &m_), code, (needle));        \
    TPJ_EXPECT(m_ == NULL);                                                   \
  } while (0)

TPJ_TEST(damaged_containers_are_refused) {
  size_t len = 0;
  uint8_t* good = matmul_static(&len, NULL);
  TPJ_EXPECT_OK(tpj_model_check_bytes(good, len));
  uint8_t* b = malloc(len);
  memcpy(b, good, len);
  b[0] = 'X';
  EXPECT_REFUSED(b, len, INVALID_ARGUMENT, "bad magic");
  memcpy(b, good, len);
  put_u32(b + 8, 2);
  EXPECT_REFUSED(b, len, INVALID_ARGUMENT, "unsupported format version (got 2, expected 1)");
  memcpy(b, good, len);
  put_u32(b + 12, 100000);
  EXPECT_REFUSED(b, len, INVALID_ARGUMENT, "bad part count");
  memcpy(b, good, len);
  b[64 + 128 + 70] ^= 1; /* part 1's offset: the table checksum no longer matches */
  EXPECT_REFUSED(b, len, DATA_LOSS, "part table checksum mismatch");
  memcpy(b, good, len);
  b[len - 5] ^= 0x20; /* a byte of the last part (the program) */
  EXPECT_REFUSED(b, len, DATA_LOSS, "part \"program/0.mlir\": checksum mismatch");
  EXPECT_REFUSED(good, len - 10, INVALID_ARGUMENT, "run past the end of the file");
  EXPECT_REFUSED(good, 40, INVALID_ARGUMENT, "file too short for the header");
  /* Part 1 moved onto part 0 (overlap), table checksum redone. */
  memcpy(b, good, len);
  memcpy(b + 64 + 128 + 64, b + 64 + 64, 8);
  digest(b + 64, 3 * 128, b + 16);
  EXPECT_REFUSED(b, len, INVALID_ARGUMENT, "bad offset");
  /* A name with an upper-case letter. */
  memcpy(b, good, len);
  b[64] = 'M';
  digest(b + 64, 3 * 128, b + 16);
  EXPECT_REFUSED(b, len, INVALID_ARGUMENT, "bad name byte 0x4d");
  free(b);
  free(good);
  tpj_model_t* m = NULL;
  TPJ_EXPECT_OK(ensure_client());
  TPJ_EXPECT_ERROR(tpj_model_load(g_client, "/nonexistent/model.tpj", &m), NOT_FOUND,
                   "cannot open /nonexistent/model.tpj");
  TPJ_EXPECT_ERROR(tpj_model_check_file("/nonexistent/model.tpj"), NOT_FOUND,
                   "cannot open /nonexistent/model.tpj");
}

TPJ_TEST(check_file_reads_the_file_as_load_does) {
  size_t len = 0;
  uint8_t* good = matmul_static(&len, NULL);
  char* path = write_temp(good, len);
  TPJ_EXPECT(path != NULL);
  if (path) TPJ_EXPECT_OK(tpj_model_check_file(path));
  char* bad_path = write_temp(good, len - 10);
  if (bad_path) {
    TPJ_EXPECT_ERROR(tpj_model_check_file(bad_path), INVALID_ARGUMENT,
                     "run past the end of the file");
  }
  char* empty = write_temp(good, 0);
  if (empty) TPJ_EXPECT_ERROR(tpj_model_check_file(empty), INVALID_ARGUMENT, "is empty (0 bytes");
  const char* paths[3] = {path, bad_path, empty};
  for (int i = 0; i < 3; ++i) {
    if (paths[i]) unlink(paths[i]);
  }
  free(path);
  free(bad_path);
  free(empty);
  free(good);
}

/* The static model with `from` replaced by `to` in its manifest. */
static uint8_t* with_manifest_edit(const char* from, const char* to, size_t* out_len) {
  char* man = matmul_manifest(NULL, "{\"part\": \"program/0.mlir\", \"bucket\": 0, "
                              MATMUL_PARAMS "}", NULL);
  char* at = strstr(man, from);
  char edited[4096];
  if (!at) {
    snprintf(edited, sizeof(edited), "%s", man);
  } else {
    snprintf(edited, sizeof(edited), "%.*s%s%s", (int)(at - man), man, to, at + strlen(from));
  }
  free(man);
  return matmul_static(out_len, edited);
}

TPJ_TEST(inconsistent_manifests_are_refused) {
  static const struct {
    const char* from;
    const char* to;
    const char* needle;
  } cases[] = {
      {"\"float32\", \"shape\": [2, 3]", "\"float31\", \"shape\": [2, 3]",
       "inputs[0].dtype: unknown dtype \"float31\""},
      {"{\"weight\": \"w\"}", "{\"weight\": \"v\"}", "names weight \"v\", which"},
      {"program/0.mlir\", \"bucket\"", "program/9.mlir\", \"bucket\"",
       "names part \"program/9.mlir\", which the file does not have"},
      {"{\"input\": 0}", "{\"input\": 1}", "params[0].input: out of range (got 1, expected 0..0)"},
      {"\"version\": 1", "\"version\": 7", "unsupported version (got 7, expected 1)"},
      {"\"tpj-model\"", "\"onnx\"", "format: got \"onnx\""},
      {"[2, 3]", "[2, 3, 1, 1, 1, 1, 1, 1, 1]", "rank too large (got 9, expected <= 8)"},
      {"[2, 3]", "[{\"scale\": 1}, 3]", "dynamic size is allowed only at dim 0 of a model "
       "with a symbol"},
      {"\"version\": 1,", "\"version\": 1, \"version\": 1,", "duplicate"},
      {"\"shape\": [2, 2]", "\"shape\": [2, 2], \"shape\": [2]", "duplicate"},
  };
  for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
    size_t len = 0;
    uint8_t* b = with_manifest_edit(cases[i].from, cases[i].to, &len);
    EXPECT_REFUSED(b, len, INVALID_ARGUMENT, cases[i].needle);
    free(b);
  }
  /* The manifest says 2 outputs; the program has 1. */
  size_t len = 0;
  uint8_t* b = with_manifest_edit("\"outputs\": [{\"name\": \"y\", \"dtype\": \"float32\", "
                                  "\"shape\": [2, 2]}]", "\"outputs\": [{\"name\": \"y\", "
                                  "\"dtype\": \"float32\", \"shape\": [2, 2]}, {\"name\": "
                                  "\"z\", \"dtype\": \"float32\", \"shape\": [1]}]", &len);
  TPJ_EXPECT_OK(tpj_model_check_bytes(b, len));
  tpj_model_t* m = NULL;
  TPJ_EXPECT_ERROR(load_bytes(b, len, &m), INVALID_ARGUMENT,
                   "has 1 results (expected 2: the manifest's outputs)");
  free(b);
}

TPJ_TEST(bucket_rules) {
  size_t len = 0;
  char* man = matmul_manifest("{\"name\": \"batch\", \"min\": 0, \"max\": 8}",
                              "{\"part\": \"program/0.mlir\", \"bucket\": 2, " MATMUL_PARAMS
                              "}", NULL);
  uint8_t* b = matmul_static(&len, man);
  EXPECT_REFUSED(b, len, INVALID_ARGUMENT, "last bucket must be the symbol's max (got 2, "
                 "expected 8)");
  free(b);
  free(man);
  man = matmul_manifest("{\"name\": \"batch\", \"min\": 0, \"max\": 2}",
                        "{\"part\": \"program/0.mlir\", \"bucket\": 2, " MATMUL_PARAMS "}, "
                        "{\"part\": \"program/0.mlir\", \"bucket\": 2, " MATMUL_PARAMS "}",
                        NULL);
  b = matmul_static(&len, man);
  EXPECT_REFUSED(b, len, INVALID_ARGUMENT, "buckets must ascend (got 2 after 2)");
  free(b);
  free(man);
}

/* The bucketed model with program 0's executable serialized by this client,
 * named for `platform_version` (NULL: this client's). */
static uint8_t* with_executable(const char* platform_version, size_t* out_len,
                                tpj_status_t* out_status) {
  *out_status = ensure_client();
  if (*out_status) return NULL;
  char* text = matmul_program(2);
  tpj_executable_t* exe = NULL;
  uint8_t* bin = NULL;
  size_t bin_len = 0;
  *out_status = tpj_executable_compile(g_client, text, strlen(text), NULL, &exe);
  if (!*out_status) *out_status = tpj_executable_serialize(exe, &bin, &bin_len);
  tpj_executable_destroy(exe);
  free(text);
  if (*out_status) return NULL;
  tpj_plugin_info_t info;
  tpj_plugin_get_info(tpj_client_plugin(g_client), &info);
  char extra[1024];
  snprintf(extra, sizeof(extra), ",\n \"executables\": [{\"part\": \"executable/0.bin\", "
           "\"program\": 0, \"platform\": \"%s\", \"platform_version\": \"%s\", \"api\": "
           "[%d, %d], \"xla_version\": %lld}]", tpj_client_platform_name(g_client),
           platform_version ? platform_version : tpj_client_platform_version(g_client),
           info.api_major, info.api_minor, (long long)info.xla_version);
  part_t part = {"executable/0.bin", bin, bin_len};
  uint8_t* bytes = matmul_bucketed(out_len, &part, extra);
  free(bin);
  return bytes;
}

TPJ_TEST(serialized_executables_load_only_on_their_plugin) {
  TPJ_EXPECT_OK(ensure_client());
  if (!tpj_executable_serialization_supported(g_client)) {
    printf("  (the plugin cannot serialize executables: nothing to test)\n");
    return;
  }
  for (int same = 1; same >= 0; --same) {
    size_t len = 0;
    tpj_status_t s = NULL;
    uint8_t* bytes = with_executable(same ? NULL : "another build", &len, &s);
    TPJ_EXPECT_OK(s);
    tpj_model_t* m = NULL;
    s = load_bytes(bytes, len, &m);
    free(bytes);
    TPJ_EXPECT_OK(s);
    TPJ_EXPECT(tpj_model_num_deserialized(m) == (size_t)same);
    float x[6] = {1, 2, 3, 4, 5, 6};
    tpj_host_tensor_t in = x_rows(x, 2), out;
    s = tpj_model_run(m, &in, 1, &out, 1);
    if (!s) {
      TPJ_EXPECT(matmul_ok(x, &out, 2));
      tpj_host_tensor_free(&out);
    }
    tpj_model_release(m);
    TPJ_EXPECT_OK(s);
  }
}

/* y = x . w and the check pairs given as input "c" (bad, value). */
static const char* CHECKED_PROGRAM =
    "module {\n  func.func @main(%x: tensor<2x3xf32>, %w: tensor<3x2xf32>, %c: tensor<2xi64>) "
    "-> (tensor<2x2xf32>, tensor<2xi64>) {\n"
    "    %0 = stablehlo.dot_general %x, %w, contracting_dims = [1] x [0] : "
    "(tensor<2x3xf32>, tensor<3x2xf32>) -> tensor<2x2xf32>\n"
    "    return %0, %c : tensor<2x2xf32>, tensor<2xi64>\n  }\n}\n";

TPJ_TEST(failed_checks_are_the_run_error) {
  const char* man =
      "{\"format\": \"tpj-model\", \"version\": 1, \"symbol\": null,\n"
      " \"inputs\": [{\"name\": \"x\", \"dtype\": \"float32\", \"shape\": [2, 3]},\n"
      "            {\"name\": \"c\", \"dtype\": \"int64\", \"shape\": [2]}],\n"
      " \"outputs\": [{\"name\": \"y\", \"dtype\": \"float32\", \"shape\": [2, 2]}],\n"
      " \"programs\": [{\"part\": \"program/0.mlir\", \"bucket\": 0, \"params\": "
      "[{\"input\": 0}, {\"weight\": \"w\"}, {\"input\": 1}], \"checks\": [{\"kind\": "
      "\"index\", \"message\": \"aten::embedding: index {} out of range for 5 rows\"}]}]}";
  size_t wlen = 0, len = 0;
  uint8_t* w = build_weights(kW, &wlen);
  part_t parts[3] = {{"manifest.json", man, strlen(man)},
                     {"weights.safetensors", w, wlen},
                     {"program/0.mlir", CHECKED_PROGRAM, strlen(CHECKED_PROGRAM)}};
  uint8_t* bytes = build_container(parts, 3, &len);
  free(w);
  tpj_model_t* m = NULL;
  tpj_status_t s = load_bytes(bytes, len, &m);
  free(bytes);
  TPJ_EXPECT_OK(s);
  float x[6] = {1, 2, 3, 4, 5, 6};
  int64_t fine[2] = {0, 3}, bad[2] = {1, 7};
  tpj_host_tensor_t in[2] = {x_rows(x, 2), {.dtype = TPJ_DTYPE_S64, .rank = 1, .dims = {2},
                                            .data = fine, .nbytes = sizeof(fine)}};
  tpj_host_tensor_t out;
  s = tpj_model_run(m, in, 2, &out, 1);
  if (!s) {
    TPJ_EXPECT(matmul_ok(x, &out, 2));
    tpj_host_tensor_free(&out);
  }
  TPJ_EXPECT(s == NULL);
  tpj_status_free(s);
  in[1].data = bad;
  TPJ_EXPECT_ERROR(tpj_model_run(m, in, 2, &out, 1), OUT_OF_RANGE,
                   "aten::embedding: index 7 out of range for 5 rows");
  TPJ_EXPECT(out.data == NULL);
  tpj_model_release(m);
}

TPJ_TEST_MAIN("model")
