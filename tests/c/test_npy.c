/* test_npy.c: the .npy reader and writer behind tpj-run (src/model/npy.c) and
 * the host-tensor size arithmetic (src/model/host_tensor.c): round trips of
 * every dtype NumPy can spell, files NumPy itself wrote, and one test per
 * refusal checking its code and message. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpj/model.h"
#include "tpj/npy.h"
#include "tpj_test.h"

/* Written by NumPy 2.4.6:
 *   .venv/bin/python -c 'import numpy as np, io; b = io.BytesIO();
 *     np.save(b, np.array([[1.5, -2.0, 0.25], [3.0, 4.0, -0.5]], dtype="<f4"));
 *     print(list(b.getvalue()))' */
static const uint8_t kNumpyF32[152] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x66, 0x34, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x32, 0x2c, 0x20,
    0x33, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x00, 0x00, 0xc0, 0x3f, 0x00, 0x00, 0x00, 0xc0, 0x00, 0x00, 0x80, 0x3e, 0x00, 0x00, 0x40, 0x40,
    0x00, 0x00, 0x80, 0x40, 0x00, 0x00, 0x00, 0xbf,
};

/* Format 2.0 (u32 header length), written by NumPy 2.4.6:
 *   np.lib.format.write_array(b, np.array([1, -2, 300, -32768], dtype="<i2"),
 *                             version=(2, 0)) */
static const uint8_t kNumpyI16V2[136] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x02, 0x00, 0x74, 0x00, 0x00, 0x00, 0x7b, 0x27, 0x64, 0x65,
    0x73, 0x63, 0x72, 0x27, 0x3a, 0x20, 0x27, 0x3c, 0x69, 0x32, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f,
    0x72, 0x74, 0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61,
    0x6c, 0x73, 0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x34,
    0x2c, 0x29, 0x2c, 0x20, 0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x01, 0x00, 0xfe, 0xff, 0x2c, 0x01, 0x00, 0x80,
};

/* A 0-d bool, written by NumPy 2.4.6: np.save(b, np.array(True)) */
static const uint8_t kNumpyBool0d[129] = {
    0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 0x01, 0x00, 0x76, 0x00, 0x7b, 0x27, 0x64, 0x65, 0x73, 0x63,
    0x72, 0x27, 0x3a, 0x20, 0x27, 0x7c, 0x62, 0x31, 0x27, 0x2c, 0x20, 0x27, 0x66, 0x6f, 0x72, 0x74,
    0x72, 0x61, 0x6e, 0x5f, 0x6f, 0x72, 0x64, 0x65, 0x72, 0x27, 0x3a, 0x20, 0x46, 0x61, 0x6c, 0x73,
    0x65, 0x2c, 0x20, 0x27, 0x73, 0x68, 0x61, 0x70, 0x65, 0x27, 0x3a, 0x20, 0x28, 0x29, 0x2c, 0x20,
    0x7d, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20, 0x0a,
    0x01,
};

/* ---------------------------------------------------------------- helpers -- */

/* An .npy image: magic, version major.0, the header dict padded with spaces
 * and '\n' to a preamble of a multiple of `align`, then `data`. */
typedef struct {
  uint8_t bytes[1024];
  size_t len;
} image_t;

static image_t make_image_aligned(int major, const char* dict, const void* data,
                                  size_t data_len, size_t align) {
  image_t im;
  memset(&im, 0, sizeof(im));
  size_t prefix = major == 1 ? 10 : 12;
  size_t dict_len = strlen(dict);
  size_t total = prefix + dict_len + 1;
  total = (total + align - 1) / align * align;
  size_t hlen = total - prefix;
  memcpy(im.bytes, "\x93NUMPY", 6);
  im.bytes[6] = (uint8_t)major;
  im.bytes[7] = 0;
  im.bytes[8] = (uint8_t)(hlen & 0xff);
  im.bytes[9] = (uint8_t)(hlen >> 8);
  memcpy(im.bytes + prefix, dict, dict_len);
  memset(im.bytes + prefix + dict_len, ' ', hlen - dict_len - 1);
  im.bytes[total - 1] = '\n';
  if (data_len) memcpy(im.bytes + total, data, data_len);
  im.len = total + data_len;
  return im;
}

static image_t make_image(const char* dict, const void* data, size_t data_len) {
  return make_image_aligned(1, dict, data, data_len, 64);
}

static tpj_status_t parse_image(const image_t* im) {
  tpj_host_tensor_t v;
  return tpj_npy_parse(im->bytes, im->len, &v);
}

static tpj_status_t parse_dict(const char* dict, size_t data_len) {
  static const uint8_t zeros[256];
  image_t im = make_image(dict, zeros, data_len);
  return parse_image(&im);
}

static char* make_temp_dir(void) {
  char tmpl[] = "/tmp/tpj_test_npy_XXXXXX";
  char* dir = mkdtemp(tmpl);
  return dir ? strdup(dir) : NULL;
}

/* A tensor of `dtype` with dims (2, 3) and a byte pattern (0/1 for bool). */
static tpj_status_t pattern_tensor(tpj_dtype_t dtype, int32_t rank, const int64_t* dims,
                                   tpj_host_tensor_t* t) {
  memset(t, 0, sizeof(*t));
  size_t numel = 0;
  t->dtype = dtype;
  t->rank = rank;
  memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
  TPJ_RETURN_IF_ERROR(tpj_host_tensor_size(dtype, rank, dims, &numel, &t->nbytes));
  t->data = t->nbytes ? malloc(t->nbytes) : NULL;
  if (t->nbytes && !t->data) return TPJ_STATUS(RESOURCE_EXHAUSTED, "test: out of memory");
  uint8_t* b = (uint8_t*)t->data;
  for (size_t i = 0; i < t->nbytes; ++i) {
    b[i] = dtype == TPJ_DTYPE_PRED ? (uint8_t)(i % 3 == 0) : (uint8_t)(i * 37 + 11);
  }
  return NULL;
}

static int same_tensor(const tpj_host_tensor_t* a, const tpj_host_tensor_t* b) {
  if (a->dtype != b->dtype || a->rank != b->rank || a->nbytes != b->nbytes) return 0;
  for (int32_t i = 0; i < a->rank; ++i) {
    if (a->dims[i] != b->dims[i]) return 0;
  }
  return a->nbytes == 0 || memcmp(a->data, b->data, a->nbytes) == 0;
}

/* Saves t to dir/name, loads it back and compares; checks the preamble. */
static void round_trip(const char* dir, const tpj_host_tensor_t* t, int* failed) {
  char path[256];
  snprintf(path, sizeof(path), "%s/t.npy", dir);
  TPJ_EXPECT_OK(tpj_npy_save(path, t));
  tpj_host_tensor_t back;
  TPJ_EXPECT_OK(tpj_npy_load(path, &back));
  TPJ_EXPECT(same_tensor(t, &back));
  tpj_host_tensor_free(&back);
  struct stat st;
  TPJ_EXPECT(stat(path, &st) == 0);
  TPJ_EXPECT((size_t)st.st_size >= t->nbytes + 64);
  TPJ_EXPECT(((size_t)st.st_size - t->nbytes) % 64 == 0);
  unlink(path);
}

/* ------------------------------------------------------------ round trips -- */

TPJ_TEST(round_trip_every_dtype_with_a_descr) {
  char* dir = make_temp_dir();
  TPJ_EXPECT(dir);
  if (!dir) return;
  int64_t dims[2] = {2, 3};
  int tried = 0;
  for (int d = TPJ_DTYPE_INVALID + 1; d < TPJ_DTYPE_COUNT_; ++d) {
    if (!tpj_dtype_npy_descr((tpj_dtype_t)d)) continue;
    tpj_host_tensor_t t;
    tpj_status_t s = pattern_tensor((tpj_dtype_t)d, 2, dims, &t);
    TPJ_EXPECT(!s);
    tpj_status_free(s);
    if (!s) round_trip(dir, &t, failed);
    tpj_host_tensor_free(&t);
    ++tried;
  }
  TPJ_EXPECT(tried == 14); /* every dtype of the table but bfloat16 */
  rmdir(dir);
  free(dir);
}

TPJ_TEST(round_trip_0d_and_empty_arrays) {
  char* dir = make_temp_dir();
  TPJ_EXPECT(dir);
  if (!dir) return;
  static const int64_t shapes[][3] = {{0, 0, 0}, {0, 0, 0}, {2, 0, 3}, {1, 1, 1}};
  static const int32_t ranks[] = {0, 1, 3, 3};
  for (size_t i = 0; i < sizeof(ranks) / sizeof(ranks[0]); ++i) {
    tpj_host_tensor_t t;
    tpj_status_t s = pattern_tensor(TPJ_DTYPE_F64, ranks[i], shapes[i], &t);
    TPJ_EXPECT(!s);
    tpj_status_free(s);
    if (!s) round_trip(dir, &t, failed);
    TPJ_EXPECT(t.nbytes == (i == 0 ? 8u : i == 3 ? 8u : 0u));
    tpj_host_tensor_free(&t);
  }
  rmdir(dir);
  free(dir);
}

TPJ_TEST(empty_array_loads_with_null_data) {
  char* dir = make_temp_dir();
  TPJ_EXPECT(dir);
  if (!dir) return;
  char path[256];
  snprintf(path, sizeof(path), "%s/e.npy", dir);
  int64_t dims[1] = {0};
  tpj_host_tensor_t t = {.dtype = TPJ_DTYPE_S64, .rank = 1, .dims = {0}, .data = NULL,
                         .nbytes = 0};
  t.dims[0] = dims[0];
  TPJ_EXPECT_OK(tpj_npy_save(path, &t));
  tpj_host_tensor_t back;
  TPJ_EXPECT_OK(tpj_npy_load(path, &back));
  TPJ_EXPECT(back.rank == 1 && back.dims[0] == 0 && back.nbytes == 0 && !back.data);
  tpj_host_tensor_free(&back);
  unlink(path);
  rmdir(dir);
  free(dir);
}

TPJ_TEST(save_refuses_bfloat16_and_inconsistent_tensors) {
  uint16_t data[2] = {0x3f80, 0x4000};
  tpj_host_tensor_t t = {.dtype = TPJ_DTYPE_BF16, .rank = 1, .dims = {2}, .data = data,
                         .nbytes = 4};
  TPJ_EXPECT_ERROR(tpj_npy_save("/tmp/never_written.npy", &t), INVALID_ARGUMENT,
                   "bfloat16 has no .npy dtype");
  TPJ_EXPECT(access("/tmp/never_written.npy", F_OK) != 0);
  t.dtype = TPJ_DTYPE_F16;
  t.nbytes = 6;
  TPJ_EXPECT_ERROR(tpj_npy_save("/tmp/never_written.npy", &t), INVALID_ARGUMENT,
                   "nbytes does not match its shape (got 6, expected 4)");
  t.nbytes = 4;
  t.data = NULL;
  TPJ_EXPECT_ERROR(tpj_npy_save("/tmp/never_written.npy", &t), INVALID_ARGUMENT,
                   "data is NULL");
}

/* ----------------------------------------------------------------- golden -- */

TPJ_TEST(reads_numpy_float32_and_writes_the_same_bytes) {
  tpj_host_tensor_t v;
  TPJ_EXPECT_OK(tpj_npy_parse(kNumpyF32, sizeof(kNumpyF32), &v));
  TPJ_EXPECT(v.dtype == TPJ_DTYPE_F32 && v.rank == 2 && v.dims[0] == 2 && v.dims[1] == 3);
  TPJ_EXPECT(v.nbytes == 24 && v.data == kNumpyF32 + 128);
  float want[6] = {1.5f, -2.0f, 0.25f, 3.0f, 4.0f, -0.5f}, got[6];
  memcpy(got, v.data, sizeof(got));
  TPJ_EXPECT(memcmp(got, want, sizeof(got)) == 0);

  char* dir = make_temp_dir();
  TPJ_EXPECT(dir);
  if (!dir) return;
  char path[256];
  snprintf(path, sizeof(path), "%s/g.npy", dir);
  TPJ_EXPECT_OK(tpj_npy_save(path, &v));
  FILE* f = fopen(path, "rb");
  uint8_t written[256];
  size_t n = f ? fread(written, 1, sizeof(written), f) : 0;
  if (f) fclose(f);
  TPJ_EXPECT(n == sizeof(kNumpyF32) && memcmp(written, kNumpyF32, n) == 0);
  unlink(path);
  rmdir(dir);
  free(dir);
}

TPJ_TEST(reads_numpy_format_2_0) {
  tpj_host_tensor_t v;
  TPJ_EXPECT_OK(tpj_npy_parse(kNumpyI16V2, sizeof(kNumpyI16V2), &v));
  TPJ_EXPECT(v.dtype == TPJ_DTYPE_S16 && v.rank == 1 && v.dims[0] == 4 && v.nbytes == 8);
  int16_t want[4] = {1, -2, 300, -32768}, got[4];
  memcpy(got, v.data, sizeof(got));
  TPJ_EXPECT(memcmp(got, want, sizeof(got)) == 0);
}

TPJ_TEST(reads_numpy_0d_bool) {
  tpj_host_tensor_t v;
  TPJ_EXPECT_OK(tpj_npy_parse(kNumpyBool0d, sizeof(kNumpyBool0d), &v));
  TPJ_EXPECT(v.dtype == TPJ_DTYPE_PRED && v.rank == 0 && v.nbytes == 1);
  TPJ_EXPECT(*(const uint8_t*)v.data == 1);
}

/* ----------------------------------------------------- accepted spellings -- */

TPJ_TEST(accepts_quotes_key_orders_and_tuple_spellings) {
  tpj_host_tensor_t v;
  image_t im = make_image("{\"shape\": (2,3,), \"descr\": \"<u4\", \"fortran_order\": False}",
                          "abcdefghijklmnopqrstuvwx", 24);
  TPJ_EXPECT_OK(tpj_npy_parse(im.bytes, im.len, &v));
  TPJ_EXPECT(v.dtype == TPJ_DTYPE_U32 && v.rank == 2 && v.dims[0] == 2 && v.dims[1] == 3);
  im = make_image("{ 'fortran_order' : False ,'shape':( 5 , ),'descr':'|u1' , }", "12345", 5);
  TPJ_EXPECT_OK(tpj_npy_parse(im.bytes, im.len, &v));
  TPJ_EXPECT(v.dtype == TPJ_DTYPE_U8 && v.rank == 1 && v.dims[0] == 5);
  im = make_image("{'descr': '<c8', 'fortran_order': False, 'shape': ()}", "abcdefgh", 8);
  TPJ_EXPECT_OK(tpj_npy_parse(im.bytes, im.len, &v));
  TPJ_EXPECT(v.dtype == TPJ_DTYPE_C64 && v.rank == 0 && v.nbytes == 8);
}

TPJ_TEST(accepts_old_16_byte_padding_and_format_3_0) {
  tpj_host_tensor_t v;
  const char* dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }";
  image_t im = make_image_aligned(1, dict, "abcd", 4, 16);
  TPJ_EXPECT((im.len - 4) % 64 != 0);
  TPJ_EXPECT_OK(tpj_npy_parse(im.bytes, im.len, &v));
  TPJ_EXPECT(v.dtype == TPJ_DTYPE_S32 && v.dims[0] == 1);
  im = make_image_aligned(3, dict, "abcd", 4, 64);
  TPJ_EXPECT_OK(tpj_npy_parse(im.bytes, im.len, &v));
  /* 3.0 allows UTF-8 in strings; a descr like that is still unknown. */
  im = make_image_aligned(3, "{'descr': '\xc3\xa9', 'fortran_order': False, 'shape': ()}",
                          NULL, 0, 64);
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT, "unsupported descr");
  im = make_image_aligned(1, "{'descr': '\xc3\xa9', 'fortran_order': False, 'shape': ()}",
                          NULL, 0, 64);
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT, "got byte 0xc3 at header byte 11");
}

/* --------------------------------------------------------------- refusals -- */

TPJ_TEST(refuses_bad_magic) {
  image_t im = make_image("{'descr': '<f4', 'fortran_order': False, 'shape': ()}", "abcd", 4);
  im.bytes[1] = 'M';
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT, "npy: bad magic");
  tpj_host_tensor_t v;
  TPJ_EXPECT_ERROR(tpj_npy_parse(im.bytes, 3, &v), INVALID_ARGUMENT, "bad magic");
  TPJ_EXPECT_ERROR(tpj_npy_parse(NULL, 0, &v), INVALID_ARGUMENT, "bad magic");
}

TPJ_TEST(refuses_bad_version) {
  image_t im = make_image("{'descr': '<f4', 'fortran_order': False, 'shape': ()}", "abcd", 4);
  im.bytes[6] = 4;
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT,
                   "unsupported format version (got 4.0, expected 1.0, 2.0 or 3.0)");
  im.bytes[6] = 1;
  im.bytes[7] = 1;
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT, "(got 1.1,");
  im.bytes[6] = 0;
  im.bytes[7] = 0;
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT, "(got 0.0,");
}

TPJ_TEST(refuses_truncated_header) {
  image_t im = make_image("{'descr': '<f4', 'fortran_order': False, 'shape': ()}", "abcd", 4);
  tpj_host_tensor_t v;
  TPJ_EXPECT_ERROR(tpj_npy_parse(im.bytes, 7, &v), INVALID_ARGUMENT, "truncated header");
  TPJ_EXPECT_ERROR(tpj_npy_parse(im.bytes, 9, &v), INVALID_ARGUMENT, "truncated header");
  TPJ_EXPECT_ERROR(tpj_npy_parse(im.bytes, 40, &v), INVALID_ARGUMENT,
                   "truncated header (got 30 bytes");
  im.bytes[9] = 0xff; /* a header length past the end */
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT, "truncated header");
  im = make_image_aligned(2, "{'descr': '<f4', 'fortran_order': False, 'shape': ()}",
                          "abcd", 4, 64);
  im.bytes[11] = 0x80; /* format 2.0: a u32 length of 2 GiB */
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT, "truncated header");
  TPJ_EXPECT_ERROR(tpj_npy_parse(im.bytes, 11, &v), INVALID_ARGUMENT, "truncated header");
}

TPJ_TEST(refuses_bad_padding_and_missing_newline) {
  image_t im = make_image("{'descr': '<f4', 'fortran_order': False, 'shape': ()}", "abcd", 4);
  TPJ_EXPECT(im.len == 68);
  im.bytes[8] -= 1; /* preamble of 63 bytes */
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT,
                   "header is not padded (got a preamble of 63 bytes, expected a multiple "
                   "of 64)");
  im.bytes[8] += 1;
  im.bytes[63] = ' ';
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT, "does not end in a newline");
}

TPJ_TEST(refuses_header_that_is_not_a_dict) {
  TPJ_EXPECT_ERROR(parse_dict("['descr', '<f4']", 0), INVALID_ARGUMENT,
                   "expected '{' (the header must be a dict literal) (got '[' at header byte 0)");
  TPJ_EXPECT_ERROR(parse_dict("", 0), INVALID_ARGUMENT, "got the end of the header");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': ()", 0),
                   INVALID_ARGUMENT, "expected ',' or '}' after a value");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': ()} x", 0),
                   INVALID_ARGUMENT, "expected only spaces after the dict");
  TPJ_EXPECT_ERROR(parse_dict("{'descr' '<f4'}", 0), INVALID_ARGUMENT,
                   "expected ':' after a key");
  TPJ_EXPECT_ERROR(parse_dict("{descr: '<f4'}", 0), INVALID_ARGUMENT,
                   "expected a string key or '}'");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4, 'fortran_order': False, 'shape': ()}", 0),
                   INVALID_ARGUMENT, "expected ',' or '}' after a value");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f\\x34', 'fortran_order': False, 'shape': ()}", 0),
                   INVALID_ARGUMENT, "a string without escapes");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': 0, 'shape': ()}", 0),
                   INVALID_ARGUMENT, "True or False for 'fortran_order'");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': Falsey, 'shape': ()}", 0),
                   INVALID_ARGUMENT, "True or False");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': [2]}", 0),
                   INVALID_ARGUMENT, "a tuple for 'shape'");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2)}", 8),
                   INVALID_ARGUMENT, "',' after the only dim of a 1-d shape, as in (5,)");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (,)}", 0),
                   INVALID_ARGUMENT, "expected a dimension");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2,,)}", 0),
                   INVALID_ARGUMENT, "expected a dimension");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (02,)}", 0),
                   INVALID_ARGUMENT, "without leading zeros");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2L,)}", 0),
                   INVALID_ARGUMENT, "the end of a dimension");
  TPJ_EXPECT_ERROR(parse_dict("{,}", 0), INVALID_ARGUMENT, "a string key or '}'");
}

TPJ_TEST(refuses_missing_extra_and_repeated_keys) {
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False}", 0),
                   INVALID_ARGUMENT, "missing a key (got no 'shape'");
  TPJ_EXPECT_ERROR(parse_dict("{}", 0), INVALID_ARGUMENT, "got no 'descr'");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'shape': ()}", 0), INVALID_ARGUMENT,
                   "got no 'fortran_order'");
  TPJ_EXPECT_ERROR(
      parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (), 'extra': 1}", 0),
      INVALID_ARGUMENT, "unexpected key (got 'extra', expected exactly 'descr', "
      "'fortran_order' and 'shape')");
  TPJ_EXPECT_ERROR(
      parse_dict("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", 4),
      INVALID_ARGUMENT, "repeats a key (got 'descr' twice)");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa'}", 0),
                   INVALID_ARGUMENT, "header string too long");
}

TPJ_TEST(refuses_big_endian) {
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '>f4', 'fortran_order': False, 'shape': (1,)}", 4),
                   INVALID_ARGUMENT,
                   "npy: big-endian data is not supported (got descr '>f4', expected '<f4')");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '>c16', 'fortran_order': False, 'shape': ()}", 16),
                   INVALID_ARGUMENT, "(got descr '>c16', expected '<c16')");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '>u1', 'fortran_order': False, 'shape': ()}", 1),
                   INVALID_ARGUMENT, "(got descr '>u1', expected '|u1')");
}

TPJ_TEST(refuses_fortran_order) {
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2)}", 16),
                   INVALID_ARGUMENT, "fortran_order True is not supported");
}

TPJ_TEST(refuses_unknown_descr) {
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<U5', 'fortran_order': False, 'shape': ()}", 20),
                   INVALID_ARGUMENT, "unsupported descr (got '<U5', expected one of '|b1'");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': 'O', 'fortran_order': False, 'shape': ()}", 8),
                   INVALID_ARGUMENT, "(got 'O',");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '>U5', 'fortran_order': False, 'shape': ()}", 20),
                   INVALID_ARGUMENT, "unsupported descr (got '>U5'");
  TPJ_EXPECT_ERROR(
      parse_dict("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': ()}", 4),
      INVALID_ARGUMENT, "structured dtypes are not supported");
}

TPJ_TEST(refuses_negative_dim_and_overflowing_shapes) {
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}", 0),
                   INVALID_ARGUMENT, "negative dim in shape (got -3 at header byte 54");
  TPJ_EXPECT_ERROR(
      parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775808,)}",
                 0),
      INVALID_ARGUMENT, "shape dim overflows int64");
  TPJ_EXPECT_ERROR(
      parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
                 0),
      INVALID_ARGUMENT, "npy: shape: host tensor: element count overflows");
  TPJ_EXPECT_ERROR(
      parse_dict("{'descr': '<c16', 'fortran_order': False, 'shape': (4611686018427387904,)}",
                 0),
      INVALID_ARGUMENT, "byte size overflows");
  TPJ_EXPECT_ERROR(
      parse_dict("{'descr': '<f4', 'fortran_order': False, "
                 "'shape': (4294967296, 0, 4294967296)}", 0),
      INVALID_ARGUMENT, "element count overflows");
  TPJ_EXPECT_ERROR(
      parse_dict("{'descr': '<f4', 'fortran_order': False, "
                 "'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1)}", 4),
      INVALID_ARGUMENT, "shape has too many dims (got more than 8");
}

TPJ_TEST(refuses_data_too_short_or_too_long) {
  const char* dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
  TPJ_EXPECT_ERROR(parse_dict(dict, 23), INVALID_ARGUMENT,
                   "data too short (got 23 bytes, expected 24 for float32)");
  TPJ_EXPECT_ERROR(parse_dict(dict, 0), INVALID_ARGUMENT, "data too short (got 0 bytes");
  TPJ_EXPECT_ERROR(parse_dict(dict, 25), INVALID_ARGUMENT,
                   "data too long: 1 trailing bytes (got 25 bytes, expected 24");
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (0,)}", 1),
                   INVALID_ARGUMENT, "data too long");
}

TPJ_TEST(refuses_bool_other_than_0_or_1) {
  image_t im = make_image("{'descr': '|b1', 'fortran_order': False, 'shape': (3,)}",
                          "\x01\x00\x02", 3);
  TPJ_EXPECT_ERROR(parse_image(&im), INVALID_ARGUMENT, "bool element 2 is not 0 or 1 (got 2)");
}

TPJ_TEST(failed_parse_leaves_an_empty_view) {
  tpj_host_tensor_t v;
  memset(&v, 0xab, sizeof(v));
  TPJ_EXPECT_ERROR(parse_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", 3),
                   INVALID_ARGUMENT, "too short");
  image_t im = make_image("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", "abc", 3);
  tpj_status_free(tpj_npy_parse(im.bytes, im.len, &v));
  TPJ_EXPECT(v.data == NULL && v.nbytes == 0 && v.rank == 0 && v.dtype == TPJ_DTYPE_INVALID);
}

/* ------------------------------------------------------------------ files -- */

TPJ_TEST(load_and_save_errors_name_the_path) {
  tpj_host_tensor_t t;
  TPJ_EXPECT_ERROR(tpj_npy_load("/nonexistent/dir/x.npy", &t), NOT_FOUND,
                   "/nonexistent/dir/x.npy: npy: cannot open the file");
  TPJ_EXPECT(t.data == NULL);
  TPJ_EXPECT_ERROR(tpj_npy_load("/tmp", &t), INVALID_ARGUMENT, "/tmp: npy: not a regular file");
  float x = 1;
  tpj_host_tensor_t one = {.dtype = TPJ_DTYPE_F32, .rank = 0, .data = &x, .nbytes = 4};
  TPJ_EXPECT_ERROR(tpj_npy_save("/nonexistent/dir/x.npy", &one), NOT_FOUND,
                   "/nonexistent/dir/x.npy: npy: cannot create the file");
  char* dir = make_temp_dir();
  TPJ_EXPECT(dir);
  if (!dir) return;
  char path[256];
  snprintf(path, sizeof(path), "%s/bad.npy", dir);
  FILE* f = fopen(path, "wb");
  TPJ_EXPECT(f);
  if (f) {
    fwrite(kNumpyF32, 1, sizeof(kNumpyF32) - 1, f);
    fclose(f);
  }
  TPJ_EXPECT_ERROR(tpj_npy_load(path, &t), INVALID_ARGUMENT, "bad.npy: npy: data too short");
  unlink(path);
  rmdir(dir);
  free(dir);
}

/* ------------------------------------------------------------ host tensor -- */

TPJ_TEST(host_tensor_size) {
  size_t numel = 99, nbytes = 99;
  int64_t dims[3] = {2, 3, 4};
  TPJ_EXPECT_OK(tpj_host_tensor_size(TPJ_DTYPE_F64, 3, dims, &numel, &nbytes));
  TPJ_EXPECT(numel == 24 && nbytes == 192);
  TPJ_EXPECT_OK(tpj_host_tensor_size(TPJ_DTYPE_C128, 0, NULL, &numel, NULL));
  TPJ_EXPECT(numel == 1);
  dims[1] = 0;
  TPJ_EXPECT_OK(tpj_host_tensor_size(TPJ_DTYPE_S8, 3, dims, &numel, &nbytes));
  TPJ_EXPECT(numel == 0 && nbytes == 0);
  dims[1] = -1;
  TPJ_EXPECT_ERROR(tpj_host_tensor_size(TPJ_DTYPE_S8, 3, dims, &numel, &nbytes),
                   INVALID_ARGUMENT, "negative dim (got -1 at dim 1");
  TPJ_EXPECT(numel == 0 && nbytes == 0);
  int64_t big[2] = {INT64_MAX, 3};
  TPJ_EXPECT_ERROR(tpj_host_tensor_size(TPJ_DTYPE_S8, 2, big, &numel, &nbytes),
                   INVALID_ARGUMENT, "element count overflows");
  int64_t wide[1] = {INT64_MAX};
  TPJ_EXPECT_ERROR(tpj_host_tensor_size(TPJ_DTYPE_S32, 1, wide, &numel, &nbytes),
                   INVALID_ARGUMENT, "byte size overflows");
  TPJ_EXPECT_ERROR(tpj_host_tensor_size(TPJ_DTYPE_S16, 9, dims, &numel, &nbytes),
                   INVALID_ARGUMENT, "bad rank (got 9, expected 0..8)");
  TPJ_EXPECT_ERROR(tpj_host_tensor_size(TPJ_DTYPE_S16, -1, dims, &numel, &nbytes),
                   INVALID_ARGUMENT, "bad rank");
  TPJ_EXPECT_ERROR(tpj_host_tensor_size(TPJ_DTYPE_INVALID, 0, NULL, &numel, &nbytes),
                   INVALID_ARGUMENT, "bad dtype");
  TPJ_EXPECT_ERROR(tpj_host_tensor_size(TPJ_DTYPE_S16, 2, NULL, &numel, &nbytes),
                   INVALID_ARGUMENT, "dims is NULL");
}

TPJ_TEST(host_tensor_free_accepts_null_and_zeroes) {
  tpj_host_tensor_free(NULL);
  tpj_host_tensor_t t = {.dtype = TPJ_DTYPE_U8, .rank = 1, .dims = {3}, .nbytes = 3};
  t.data = malloc(3);
  tpj_host_tensor_free(&t);
  TPJ_EXPECT(t.data == NULL && t.nbytes == 0 && t.rank == 0 && t.dtype == TPJ_DTYPE_INVALID);
  tpj_host_tensor_free(&t); /* twice is harmless */
}

TPJ_TEST_MAIN("npy")
