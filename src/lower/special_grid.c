/* special_grid.c: grid_sampler_2d forward (no Core-ATen decomposition).
 * Coordinates are unnormalized and padded (zeros / border / reflection) as
 * PyTorch's grid sampler does, then the 4 bilinear corners (or the nearest
 * pixel) are gathered from input laid out as [N, H, W, C] and blended in the
 * tensor dtype, as the CPU kernel does. Out-of-range corners contribute 0
 * under zeros padding.
 */
#include <math.h>

#include "lower/lower_elementwise.h"
#include "lower/lower_special.h"

/* PyTorch's reflect_coordinates over [twice_lo / 2, twice_hi / 2]. */
static tpj_value_t sp_reflect(tpj_ew_t* e, tpj_value_t v, double twice_lo, double twice_hi) {
  if (twice_lo == twice_hi) return tpj_ew_k(e, 0.0);
  double mn = twice_lo / 2, span = (twice_hi - twice_lo) / 2;
  tpj_value_t a = tpj_ew_un(e, TPJ_UNARY_OP_ABS, tpj_ew_addk(e, v, -mn));
  tpj_value_t flips = tpj_ew_un(e, TPJ_UNARY_OP_FLOOR, tpj_ew_mulk(e, a, 1.0 / span));
  tpj_value_t extra = tpj_ew_sub(e, a, tpj_ew_mulk(e, flips, span));
  tpj_value_t half = tpj_ew_mulk(e, flips, 0.5);
  tpj_value_t even = tpj_ew_cmp(e, TPJ_COMPARE_DIR_EQ, half, tpj_ew_un(e, TPJ_UNARY_OP_FLOOR, half));
  return tpj_ew_sel(e, even, tpj_ew_addk(e, extra, mn),
                    tpj_ew_addk(e, tpj_ew_mulk(e, extra, -1.0), span + mn));
}

/* Grid coordinate -> pixel coordinate for an axis of `size`. */
static tpj_value_t sp_grid_coord(tpj_ew_t* e, tpj_value_t c, int64_t size, int64_t pad,
                                 bool align) {
  double s = (double)size;
  tpj_value_t v = align ? tpj_ew_mulk(e, tpj_ew_addk(e, c, 1.0), (s - 1) / 2)
                        : tpj_ew_mulk(e, tpj_ew_addk(e, tpj_ew_mulk(e, tpj_ew_addk(e, c, 1.0), s), -1.0), 0.5);
  if (pad == 2) v = align ? sp_reflect(e, v, 0, 2 * (s - 1)) : sp_reflect(e, v, -1, 2 * s - 1);
  if (pad >= 1) {
    v = tpj_ew_bin(e, TPJ_BINARY_OP_MAX, v, tpj_ew_k(e, 0.0));
    v = tpj_ew_bin(e, TPJ_BINARY_OP_MIN, v, tpj_ew_k(e, s - 1));
  }
  return v;
}

/* input_nhwc[n, y, x, :] * w, with w zeroed where (y, x) is outside. -> [N, Ho, Wo, C] */
static tpj_value_t sp_corner(tpj_ew_t* e, tpj_value_t in_nhwc, tpj_value_t nidx, tpj_value_t y,
                             tpj_value_t x, tpj_value_t w, int64_t h, int64_t wd) {
  tpj_value_t inside = tpj_ew_bin(
      e, TPJ_BINARY_OP_AND,
      tpj_ew_bin(e, TPJ_BINARY_OP_AND, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_GE, y, 0.0),
                 tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LE, y, (double)(h - 1))),
      tpj_ew_bin(e, TPJ_BINARY_OP_AND, tpj_ew_cmpk(e, TPJ_COMPARE_DIR_GE, x, 0.0),
                 tpj_ew_cmpk(e, TPJ_COMPARE_DIR_LE, x, (double)(wd - 1))));
  w = tpj_ew_sel(e, inside, w, tpj_ew_k(e, 0.0));
  tpj_value_t yc = tpj_ew_bin(e, TPJ_BINARY_OP_MIN, tpj_ew_bin(e, TPJ_BINARY_OP_MAX, y, tpj_ew_k(e, 0.0)),
                              tpj_ew_k(e, (double)(h - 1)));
  tpj_value_t xc = tpj_ew_bin(e, TPJ_BINARY_OP_MIN, tpj_ew_bin(e, TPJ_BINARY_OP_MAX, x, tpj_ew_k(e, 0.0)),
                              tpj_ew_k(e, (double)(wd - 1)));
  /* NaN coordinates: clamp keeps NaN; send them to pixel 0 with weight 0 */
  w = tpj_ew_sel(e, tpj_ew_isnan(e, yc), tpj_ew_k(e, 0.0), w);
  w = tpj_ew_sel(e, tpj_ew_isnan(e, xc), tpj_ew_k(e, 0.0), w);
  yc = tpj_ew_sel(e, tpj_ew_isnan(e, yc), tpj_ew_k(e, 0.0), yc);
  xc = tpj_ew_sel(e, tpj_ew_isnan(e, xc), tpj_ew_k(e, 0.0), xc);
  const tpj_type_t* ct = &e->ct; /* [N, Ho, Wo] */
  int64_t d4[4] = {ct->dims[0], ct->dims[1], ct->dims[2], 1};
  tpj_value_t parts[3] = {nidx, tpj_ew_cvt(e, yc, TPJ_DTYPE_S64), tpj_ew_cvt(e, xc, TPJ_DTYPE_S64)};
  for (int i = 1; i < 3 && !e->st; ++i) e->st = tpj_build_reshape(e->g, parts[i], d4, 4, &parts[i]);
  tpj_value_t idx = TPJ_VALUE_NONE, v = TPJ_VALUE_NONE, wb = TPJ_VALUE_NONE;
  if (!e->st) e->st = tpj_build_concatenate(e->g, parts, 3, 3, &idx);
  int64_t c = tpj_lower_type(e->g, in_nhwc)->dims[3];
  int64_t offset[1] = {3}, collapsed[3] = {0, 1, 2}, map[3] = {0, 1, 2}, sizes[4] = {1, 1, 1, c};
  tpj_gather_dims_t gd = {.offset_dims = offset, .num_offset_dims = 1,
                          .collapsed_slice_dims = collapsed, .num_collapsed_slice_dims = 3,
                          .start_index_map = map, .num_start_index_map = 3,
                          .index_vector_dim = 3, .slice_sizes = sizes, .num_slice_sizes = 4};
  if (!e->st) e->st = tpj_build_gather(e->g, in_nhwc, idx, &gd, &v);
  int64_t full[4] = {ct->dims[0], ct->dims[1], ct->dims[2], c}, bd[3] = {0, 1, 2};
  if (!e->st) e->st = tpj_build_broadcast_in_dim(e->g, w, full, 4, bd, &wb);
  return tpj_ew_mul(e, v, wb);
}

/* grid[..., k] as [N, Ho, Wo] in the compute dtype. */
static tpj_value_t sp_grid_comp(tpj_ew_t* e, tpj_value_t grid, int k) {
  const tpj_type_t* t = tpj_lower_type(e->g, grid);
  int64_t lo[4] = {0, 0, 0, k}, hi[4] = {t->dims[0], t->dims[1], t->dims[2], k + 1};
  int64_t st[4] = {1, 1, 1, 1};
  tpj_value_t v = TPJ_VALUE_NONE;
  if (!e->st) e->st = tpj_build_slice(e->g, grid, lo, hi, st, 4, &v);
  if (!e->st) e->st = tpj_build_reshape(e->g, v, t->dims, 3, &v);
  return tpj_ew_cvt(e, v, e->ct.dtype);
}

/* grid_sampler_2d(input [N, C, H, W], grid [N, Ho, Wo, 2], interpolation_mode,
 * padding_mode, align_corners) -> [N, C, Ho, Wo]. */
TPJ_LOWERING(tpj_lower_sp_grid_sampler_2d) {
  tpj_value_t in, grid;
  int64_t mode, pad;
  bool align;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &in));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 1, &grid));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 2, &mode));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_int(call, 3, &pad));
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_bool(call, 4, &align));
  const tpj_type_t* it = tpj_lower_type(g, in);
  const tpj_type_t* gt = tpj_lower_type(g, grid);
  if (it->rank != 4 || gt->rank != 4 || gt->dims[3] != 2 || gt->dims[0] != it->dims[0]) {
    return TPJ_STATUS(INVALID_ARGUMENT, "%s: expected input [N, C, H, W] and grid [N, Ho, Wo, 2] "
                      "(got ranks %d and %d)", call->target, it->rank, gt->rank);
  }
  if (mode != 0 && mode != 1) return TPJ_LOWER_UNSUPPORTED(call, "interpolation mode %lld (only bilinear 0 and nearest 1)", (long long)mode);
  if (pad < 0 || pad > 2) return TPJ_LOWER_UNSUPPORTED(call, "padding mode %lld", (long long)pad);
  int64_t h = it->dims[2], w = it->dims[3];
  /* PyTorch's CPU kernel computes in the tensor dtype (no f32 upcast for
   * bf16/f16): coordinates rounded in bf16 pick the same pixels as eager. */
  tpj_ew_t e;
  tpj_ew_begin_dtype(&e, g, call, tpj_lower_out_type(call, 0)->dtype);
  e.ct.rank = 3; /* coordinate math on [N, Ho, Wo] */
  e.ct.dims[0] = gt->dims[0];
  e.ct.dims[1] = gt->dims[1];
  e.ct.dims[2] = gt->dims[2];
  tpj_value_t nhwc = TPJ_VALUE_NONE, nidx = TPJ_VALUE_NONE;
  int64_t to_nhwc[4] = {0, 2, 3, 1};
  tpj_value_t inc = tpj_ew_cvt(&e, in, e.ct.dtype);
  if (!e.st) e.st = tpj_build_transpose(g, inc, to_nhwc, 4, &nhwc);
  tpj_type_t nt = {.dtype = TPJ_DTYPE_S64, .rank = 4, .dims = {gt->dims[0], gt->dims[1], gt->dims[2], 1}};
  if (!e.st) e.st = tpj_build_iota(g, &nt, 0, &nidx);
  tpj_value_t ix = sp_grid_coord(&e, sp_grid_comp(&e, grid, 0), w, pad, align);
  tpj_value_t iy = sp_grid_coord(&e, sp_grid_comp(&e, grid, 1), h, pad, align);
  tpj_value_t acc;
  if (mode == 1) {
    acc = sp_corner(&e, nhwc, nidx, tpj_ew_un(&e, TPJ_UNARY_OP_ROUND_EVEN, iy),
                    tpj_ew_un(&e, TPJ_UNARY_OP_ROUND_EVEN, ix), tpj_ew_k(&e, 1.0), h, w);
  } else {
    tpj_value_t x0 = tpj_ew_un(&e, TPJ_UNARY_OP_FLOOR, ix), y0 = tpj_ew_un(&e, TPJ_UNARY_OP_FLOOR, iy);
    tpj_value_t x1 = tpj_ew_addk(&e, x0, 1.0), y1 = tpj_ew_addk(&e, y0, 1.0);
    tpj_value_t dx1 = tpj_ew_sub(&e, x1, ix), dx0 = tpj_ew_sub(&e, ix, x0);
    tpj_value_t dy1 = tpj_ew_sub(&e, y1, iy), dy0 = tpj_ew_sub(&e, iy, y0);
    acc = sp_corner(&e, nhwc, nidx, y0, x0, tpj_ew_mul(&e, dx1, dy1), h, w);
    acc = tpj_ew_add(&e, acc, sp_corner(&e, nhwc, nidx, y0, x1, tpj_ew_mul(&e, dx0, dy1), h, w));
    acc = tpj_ew_add(&e, acc, sp_corner(&e, nhwc, nidx, y1, x0, tpj_ew_mul(&e, dx1, dy0), h, w));
    acc = tpj_ew_add(&e, acc, sp_corner(&e, nhwc, nidx, y1, x1, tpj_ew_mul(&e, dx0, dy0), h, w));
  }
  if (e.st) return e.st;
  int64_t to_nchw[4] = {0, 3, 1, 2};
  TPJ_RETURN_IF_ERROR(tpj_build_transpose(g, acc, to_nchw, 4, &acc));
  return tpj_lower_convert(g, acc, tpj_lower_out_type(call, 0)->dtype, &out[0]);
}
