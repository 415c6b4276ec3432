/* lower_special.h: the special-function lowering family (internal): erfc,
 * erfcx, erfinv, ndtri, lgamma, digamma, polygamma, Bessel i0/i1 (and the
 * exponentially scaled variants), the scans cummax/cummin/logcumsumexp, and
 * pipeline creation ops the other families lack (empty_permuted). Rows are in
 * ops_special.inc.
 *
 * Precision: f16/bf16 (and integer inputs, whose result is float) compute in
 * f32 and convert once; f64 computes in f64. Max errors measured against
 * torch float64 are noted next to each function in special.c.
 */
#ifndef TPJ_LOWER_SPECIAL_H_
#define TPJ_LOWER_SPECIAL_H_

#include "lower/lower_util.h"

/* special.c: elementwise special functions. */
TPJ_LOWERING(tpj_lower_sp_erfc);      /* erfc.default */
TPJ_LOWERING(tpj_lower_sp_erfcx);     /* special_erfcx.default */
TPJ_LOWERING(tpj_lower_sp_erfinv);    /* erfinv.default */
TPJ_LOWERING(tpj_lower_sp_ndtri);     /* special_ndtri.default */
TPJ_LOWERING(tpj_lower_sp_lgamma);    /* lgamma.default */
TPJ_LOWERING(tpj_lower_sp_digamma);   /* digamma.default */
TPJ_LOWERING(tpj_lower_sp_polygamma); /* polygamma.default(n, self) */

/* special_bessel.c: modified Bessel functions of the first kind. */
TPJ_LOWERING(tpj_lower_sp_i0);        /* i0.default, special_modified_bessel_i0 */
TPJ_LOWERING(tpj_lower_sp_i0e);       /* special_i0e.default */
TPJ_LOWERING(tpj_lower_sp_i1);        /* special_i1.default, special_modified_bessel_i1 */
TPJ_LOWERING(tpj_lower_sp_i1e);       /* special_i1e.default */

/* special_scan.c: scans with a custom reduce_window body. */
TPJ_LOWERING(tpj_lower_sp_cummax);       /* cummax.default -> (values, indices) */
TPJ_LOWERING(tpj_lower_sp_cummin);       /* cummin.default -> (values, indices) */
TPJ_LOWERING(tpj_lower_sp_logcumsumexp); /* logcumsumexp.default */

/* special_dist.c: pairwise distances. */
TPJ_LOWERING(tpj_lower_sp_cdist);        /* _cdist_forward.default */
TPJ_LOWERING(tpj_lower_sp_pdist);        /* _pdist_forward.default */
TPJ_LOWERING(tpj_lower_sp_dist);         /* dist.default */

/* special_misc.c */
TPJ_LOWERING(tpj_lower_sp_signbit);      /* signbit.default */
TPJ_LOWERING(tpj_lower_sp_ldexp);        /* ldexp.Tensor */
TPJ_LOWERING(tpj_lower_sp_angle);        /* angle.default (real inputs) */

/* special_grid.c */
TPJ_LOWERING(tpj_lower_sp_grid_sampler_2d); /* grid_sampler_2d.default (bilinear/nearest) */

#endif /* TPJ_LOWER_SPECIAL_H_ */
