/* Element types and tensor types: sizes, MLIR spellings and formatting.
 * The dtype numbering equals the PJRT buffer-type enum, so these tables are the single
 * place that maps it to StableHLO element types. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "tpj/ir.h"

typedef struct {
  size_t size;
  const char* mlir;
  const char* name;
  const char* safetensors; /* the safetensors dtype, NULL when it has none */
  const char* npy;         /* the canonical .npy descr, NULL when NumPy has none */
} tpj_dtype_info_t;

static const tpj_dtype_info_t kDtypes[TPJ_DTYPE_COUNT_] = {
    [TPJ_DTYPE_INVALID] = {0, "invalid", "invalid", NULL, NULL},
    [TPJ_DTYPE_PRED] = {1, "i1", "bool", "BOOL", "|b1"},
    [TPJ_DTYPE_S8] = {1, "i8", "int8", "I8", "|i1"},
    [TPJ_DTYPE_S16] = {2, "i16", "int16", "I16", "<i2"},
    [TPJ_DTYPE_S32] = {4, "i32", "int32", "I32", "<i4"},
    [TPJ_DTYPE_S64] = {8, "i64", "int64", "I64", "<i8"},
    [TPJ_DTYPE_U8] = {1, "ui8", "uint8", "U8", "|u1"},
    [TPJ_DTYPE_U16] = {2, "ui16", "uint16", "U16", "<u2"},
    [TPJ_DTYPE_U32] = {4, "ui32", "uint32", "U32", "<u4"},
    [TPJ_DTYPE_U64] = {8, "ui64", "uint64", "U64", "<u8"},
    [TPJ_DTYPE_F16] = {2, "f16", "float16", "F16", "<f2"},
    [TPJ_DTYPE_F32] = {4, "f32", "float32", "F32", "<f4"},
    [TPJ_DTYPE_F64] = {8, "f64", "float64", "F64", "<f8"},
    [TPJ_DTYPE_BF16] = {2, "bf16", "bfloat16", "BF16", NULL},
    [TPJ_DTYPE_C64] = {8, "complex<f32>", "complex64", "C64", "<c8"},
    [TPJ_DTYPE_C128] = {16, "complex<f64>", "complex128", NULL, "<c16"},
};

static bool tpj_dtype_valid(tpj_dtype_t d) { return d > TPJ_DTYPE_INVALID && d < TPJ_DTYPE_COUNT_; }

size_t tpj_dtype_size(tpj_dtype_t dtype) { return tpj_dtype_valid(dtype) ? kDtypes[dtype].size : 0; }

const char* tpj_dtype_mlir(tpj_dtype_t dtype) {
  return tpj_dtype_valid(dtype) ? kDtypes[dtype].mlir : "invalid";
}

const char* tpj_dtype_name(tpj_dtype_t dtype) {
  return tpj_dtype_valid(dtype) ? kDtypes[dtype].name : "invalid";
}

const char* tpj_dtype_safetensors_name(tpj_dtype_t dtype) {
  return tpj_dtype_valid(dtype) ? kDtypes[dtype].safetensors : NULL;
}

const char* tpj_dtype_npy_descr(tpj_dtype_t dtype) {
  return tpj_dtype_valid(dtype) ? kDtypes[dtype].npy : NULL;
}

/* The dtype whose column `field` (a byte offset into tpj_dtype_info_t)
 * spells `text`; INVALID when none does. */
static tpj_dtype_t dtype_by_field(size_t field, const char* text) {
  if (!text) return TPJ_DTYPE_INVALID;
  for (int d = TPJ_DTYPE_INVALID + 1; d < TPJ_DTYPE_COUNT_; ++d) {
    const char* spelled = *(const char* const*)((const char*)&kDtypes[d] + field);
    if (spelled && !strcmp(spelled, text)) return (tpj_dtype_t)d;
  }
  return TPJ_DTYPE_INVALID;
}

tpj_dtype_t tpj_dtype_from_name(const char* name) {
  return dtype_by_field(offsetof(tpj_dtype_info_t, name), name);
}

tpj_dtype_t tpj_dtype_from_safetensors(const char* name) {
  return dtype_by_field(offsetof(tpj_dtype_info_t, safetensors), name);
}

tpj_dtype_t tpj_dtype_from_npy_descr(const char* descr) {
  return dtype_by_field(offsetof(tpj_dtype_info_t, npy), descr);
}

bool tpj_dtype_is_float(tpj_dtype_t d) {
  return d == TPJ_DTYPE_F16 || d == TPJ_DTYPE_BF16 || d == TPJ_DTYPE_F32 || d == TPJ_DTYPE_F64;
}

bool tpj_dtype_is_signed_int(tpj_dtype_t d) { return d >= TPJ_DTYPE_S8 && d <= TPJ_DTYPE_S64; }

bool tpj_dtype_is_unsigned_int(tpj_dtype_t d) { return d >= TPJ_DTYPE_U8 && d <= TPJ_DTYPE_U64; }

bool tpj_dtype_is_complex(tpj_dtype_t d) { return d == TPJ_DTYPE_C64 || d == TPJ_DTYPE_C128; }

tpj_status_t tpj_type_init(tpj_dtype_t dtype, const int64_t* dims, size_t rank,
                           tpj_type_t* out_type) {
  TPJ_CHECK_ARG(out_type, "type: out_type is NULL");
  TPJ_CHECK_ARG(tpj_dtype_valid(dtype), "type: invalid dtype (got %d, expected 1..%d)",
                (int)dtype, TPJ_DTYPE_COUNT_ - 1);
  TPJ_CHECK_ARG(rank <= TPJ_MAX_RANK, "type: rank too large (got %zu, expected <= %d)", rank,
                TPJ_MAX_RANK);
  TPJ_CHECK_ARG(rank == 0 || dims, "type: dims is NULL for rank %zu", rank);
  tpj_type_t t;
  memset(&t, 0, sizeof(t));
  t.dtype = dtype;
  t.rank = (int32_t)rank;
  for (size_t i = 0; i < rank; ++i) {
    TPJ_CHECK_ARG(dims[i] >= 0, "type: negative dim %zu (got %lld, expected >= 0)", i,
                  (long long)dims[i]);
    t.dims[i] = dims[i];
  }
  *out_type = t;
  return NULL;
}

tpj_type_t tpj_type_scalar(tpj_dtype_t dtype) {
  tpj_type_t t;
  memset(&t, 0, sizeof(t));
  t.dtype = dtype;
  return t;
}

int64_t tpj_type_numel(const tpj_type_t* type) {
  int64_t n = 1;
  for (int32_t i = 0; i < type->rank; ++i) n *= type->dims[i];
  return n;
}

bool tpj_type_equal(const tpj_type_t* a, const tpj_type_t* b) {
  if (a->dtype != b->dtype || a->rank != b->rank) return false;
  for (int32_t i = 0; i < a->rank; ++i)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

void tpj_type_format(const tpj_type_t* type, char* buf, size_t buf_size) {
  if (!buf || buf_size == 0) return;
  size_t used = 0;
  int n = snprintf(buf, buf_size, "tensor<");
  used = n > 0 ? (size_t)n : 0;
  for (int32_t i = 0; i < type->rank && used < buf_size; ++i) {
    n = snprintf(buf + used, buf_size - used, "%lldx", (long long)type->dims[i]);
    used += n > 0 ? (size_t)n : 0;
  }
  if (used < buf_size) snprintf(buf + used, buf_size - used, "%s>", tpj_dtype_mlir(type->dtype));
}
