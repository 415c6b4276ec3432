/* eager_view.c: reading and writing strided views of a flat storage inside a
 * StableHLO program. Contiguous and permuted/expanded views use slice,
 * reshape, transpose and broadcast; any other view uses a gather (read) or a
 * scatter (write) over its element offsets. */
#include <string.h>

#include "runtime/eager_internal.h"

int64_t tpj_eager_view_numel(const tpj_eager_tensor_t* v) {
  int64_t n = 1;
  for (int32_t i = 0; i < v->rank; ++i) n *= v->sizes[i];
  return n;
}

bool tpj_eager_view_contiguous(const tpj_eager_tensor_t* v) {
  int64_t expect = 1;
  for (int32_t i = v->rank - 1; i >= 0; --i) {
    if (v->sizes[i] == 1) continue;
    if (v->strides[i] != expect) return false;
    expect *= v->sizes[i];
  }
  return true;
}

bool tpj_eager_view_covers_storage(const tpj_eager_tensor_t* v) {
  return v->offset == 0 && tpj_eager_view_contiguous(v) &&
         tpj_eager_view_numel(v) == tpj_eager_storage_numel(v->storage, v->dtype);
}

/* Element offsets of every view position: s64 [sizes..., 1]. */
static tpj_status_t view_indices(tpj_graph_t* g, const tpj_eager_tensor_t* v, tpj_value_t* out) {
  int64_t dims[TPJ_MAX_RANK + 1];
  size_t r = (size_t)v->rank;
  memcpy(dims, v->sizes, r * sizeof(int64_t));
  tpj_type_t t;
  TPJ_RETURN_IF_ERROR(tpj_type_init(TPJ_DTYPE_S64, dims, r, &t));
  tpj_value_t acc;
  TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, dims, r, v->offset, &acc));
  for (size_t d = 0; d < r; ++d) {
    if (v->strides[d] == 0 || v->sizes[d] == 1) continue;
    tpj_value_t io, st, prod;
    TPJ_RETURN_IF_ERROR(tpj_build_iota(g, &t, (int64_t)d, &io));
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, dims, r, v->strides[d], &st));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_MUL, io, st, &prod));
    TPJ_RETURN_IF_ERROR(tpj_build_binary(g, TPJ_BINARY_OP_ADD, acc, prod, &acc));
  }
  dims[r] = 1;
  return tpj_build_reshape(g, acc, dims, r + 1, out);
}

/* Contiguous run [offset, offset + n) of the flat value, reshaped to dims. */
static tpj_status_t flat_range(tpj_graph_t* g, tpj_value_t flat, int64_t offset, int64_t n,
                               const int64_t* dims, size_t rank, tpj_value_t* out) {
  const tpj_type_t* ft = tpj_graph_value_type(g, flat);
  tpj_value_t x = flat;
  if (offset != 0 || n != ft->dims[0]) {
    int64_t start = offset, limit = offset + n, stride = 1;
    TPJ_RETURN_IF_ERROR(tpj_build_slice(g, flat, &start, &limit, &stride, 1, &x));
  }
  return tpj_build_reshape(g, x, dims, rank, out);
}

/* Views whose non-broadcast dims, sorted by stride, form a dense block:
 * slice + reshape + transpose + broadcast. Returns false if not applicable. */
static bool dense_permuted(const tpj_eager_tensor_t* v, int64_t* perm, size_t* out_n) {
  size_t n = 0;
  for (int32_t d = 0; d < v->rank; ++d) {
    if (v->sizes[d] != 1 && v->strides[d] != 0) perm[n++] = d;
  }
  for (size_t i = 1; i < n; ++i) { /* insertion sort, stride descending */
    int64_t k = perm[i];
    size_t j = i;
    while (j > 0 && v->strides[perm[j - 1]] < v->strides[k]) { perm[j] = perm[j - 1]; --j; }
    perm[j] = k;
  }
  int64_t expect = 1;
  for (size_t i = n; i-- > 0;) {
    if (v->strides[perm[i]] != expect) return false;
    expect *= v->sizes[perm[i]];
  }
  *out_n = n;
  return true;
}

static tpj_status_t read_dense(tpj_graph_t* g, tpj_value_t flat, const tpj_eager_tensor_t* v,
                               const int64_t* perm, size_t n, tpj_value_t* out) {
  int64_t pdims[TPJ_MAX_RANK], inv[TPJ_MAX_RANK], bdims[TPJ_MAX_RANK];
  int64_t count = 1;
  for (size_t i = 0; i < n; ++i) { pdims[i] = v->sizes[perm[i]]; count *= pdims[i]; }
  tpj_value_t x;
  TPJ_RETURN_IF_ERROR(flat_range(g, flat, v->offset, count, pdims, n, &x));
  /* Kept dims in their original order: inv[k] = position of that dim in perm. */
  size_t k = 0;
  bool identity = true;
  for (int32_t d = 0; d < v->rank; ++d) {
    for (size_t i = 0; i < n; ++i) {
      if (perm[i] != d) continue;
      inv[k] = (int64_t)i;
      bdims[k] = d;
      identity = identity && i == k;
      ++k;
    }
  }
  if (!identity) TPJ_RETURN_IF_ERROR(tpj_build_transpose(g, x, inv, n, &x));
  if ((int32_t)n == v->rank) {
    *out = x;
    return NULL;
  }
  return tpj_build_broadcast_in_dim(g, x, v->sizes, (size_t)v->rank, bdims, out);
}

tpj_status_t tpj_eager_view_read(tpj_graph_t* g, tpj_value_t flat, const tpj_eager_tensor_t* v,
                                 tpj_value_t* out) {
  const tpj_type_t* ft = tpj_graph_value_type(g, flat);
  tpj_value_t x;
  int64_t perm[TPJ_MAX_RANK];
  size_t n = 0;
  if (tpj_eager_view_numel(v) == 0) {
    TPJ_RETURN_IF_ERROR(tpj_build_splat(g, ft->dtype, v->sizes, (size_t)v->rank, 0.0, &x));
  } else if (dense_permuted(v, perm, &n)) {
    TPJ_RETURN_IF_ERROR(read_dense(g, flat, v, perm, n, &x));
  } else {
    tpj_value_t idx;
    TPJ_RETURN_IF_ERROR(view_indices(g, v, &idx));
    int64_t collapsed = 0, start_map = 0, slice = 1;
    tpj_gather_dims_t gd = {0};
    gd.collapsed_slice_dims = &collapsed;
    gd.num_collapsed_slice_dims = 1;
    gd.start_index_map = &start_map;
    gd.num_start_index_map = 1;
    gd.index_vector_dim = v->rank;
    gd.slice_sizes = &slice;
    gd.num_slice_sizes = 1;
    TPJ_RETURN_IF_ERROR(tpj_build_gather(g, flat, idx, &gd, &x));
  }
  if (ft->dtype == v->dtype) {
    *out = x;
    return NULL;
  }
  if (tpj_dtype_size(ft->dtype) != tpj_dtype_size(v->dtype)) {
    return TPJ_STATUS(UNIMPLEMENTED, "eager view: reading a %s storage as %s is not supported",
                      tpj_dtype_name(ft->dtype), tpj_dtype_name(v->dtype));
  }
  return tpj_build_bitcast_convert(g, x, v->dtype, out);
}

/* The scatter body: keep the update. */
static tpj_status_t replace_body(tpj_graph_t* g, tpj_dtype_t dtype, int32_t* out_region) {
  tpj_type_t s = tpj_type_scalar(dtype);
  tpj_type_t two[2] = {s, s};
  tpj_value_t args[2];
  TPJ_RETURN_IF_ERROR(tpj_graph_region_begin(g, two, 2, args));
  return tpj_graph_region_end(g, &args[1], 1, out_region);
}

tpj_status_t tpj_eager_view_write(tpj_graph_t* g, tpj_value_t flat, int64_t flat_numel,
                                  tpj_dtype_t flat_dtype, const tpj_eager_tensor_t* v,
                                  tpj_value_t update, tpj_value_t* out) {
  tpj_value_t u = update;
  const tpj_type_t* ut = tpj_graph_value_type(g, u);
  if (ut->dtype != flat_dtype) {
    bool same = tpj_dtype_size(ut->dtype) == tpj_dtype_size(flat_dtype);
    if (ut->dtype == v->dtype && same) {
      TPJ_RETURN_IF_ERROR(tpj_build_bitcast_convert(g, u, flat_dtype, &u));
    } else {
      TPJ_RETURN_IF_ERROR(tpj_build_convert(g, u, flat_dtype, &u));
    }
  }
  int64_t m = tpj_eager_view_numel(v);
  if (flat == TPJ_VALUE_NONE || (v->offset == 0 && m == flat_numel && tpj_eager_view_contiguous(v))) {
    return tpj_build_reshape(g, u, &flat_numel, 1, out);
  }
  if (m == 0) {
    *out = flat;
    return NULL;
  }
  if (tpj_eager_view_contiguous(v)) {
    tpj_value_t row, start;
    TPJ_RETURN_IF_ERROR(tpj_build_reshape(g, u, &m, 1, &row));
    TPJ_RETURN_IF_ERROR(tpj_build_splat_int(g, TPJ_DTYPE_S64, NULL, 0, v->offset, &start));
    return tpj_build_dynamic_update_slice(g, flat, row, &start, 1, out);
  }
  tpj_value_t idx;
  int32_t body;
  TPJ_RETURN_IF_ERROR(view_indices(g, v, &idx));
  TPJ_RETURN_IF_ERROR(replace_body(g, flat_dtype, &body));
  int64_t inserted = 0, to_operand = 0;
  tpj_scatter_dims_t sd = {0};
  sd.inserted_window_dims = &inserted;
  sd.num_inserted_window_dims = 1;
  sd.scatter_dims_to_operand_dims = &to_operand;
  sd.num_scatter_dims_to_operand_dims = 1;
  sd.index_vector_dim = v->rank;
  return tpj_build_scatter(g, flat, idx, u, &sd, body, out);
}
