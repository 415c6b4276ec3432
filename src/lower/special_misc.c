/* special_misc.c: small elementwise ops PyTorch keeps as ATen ops without a
 * Core-ATen decomposition: signbit (sign bit of the float encoding, so -0.0
 * and -NaN count), ldexp (x * 2^e) and angle for real inputs (pi below 0,
 * NaN kept).
 */
#include <math.h>

#include "lower/lower_elementwise.h"
#include "lower/lower_special.h"

/* signbit(self) -> bool */
TPJ_LOWERING(tpj_lower_sp_signbit) {
  tpj_value_t x, k;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &x));
  const tpj_type_t* t = tpj_lower_type(g, x);
  const tpj_type_t* ot = tpj_lower_out_type(call, 0);
  if (t->dtype == TPJ_DTYPE_PRED || tpj_dtype_is_unsigned_int(t->dtype))
    return tpj_lower_full(g, ot, 0.0, &out[0]);
  if (tpj_dtype_is_float(t->dtype)) {
    tpj_dtype_t it;
    switch (tpj_dtype_size(t->dtype)) {
      case 2: it = TPJ_DTYPE_S16; break;
      case 4: it = TPJ_DTYPE_S32; break;
      case 8: it = TPJ_DTYPE_S64; break;
      default:
        return TPJ_LOWER_UNSUPPORTED(call, "signbit of a %zu-byte float", tpj_dtype_size(t->dtype));
    }
    TPJ_RETURN_IF_ERROR(tpj_build_bitcast_convert(g, x, it, &x));
  }
  TPJ_RETURN_IF_ERROR(tpj_lower_full(g, tpj_lower_type(g, x), 0.0, &k));
  TPJ_RETURN_IF_ERROR(tpj_build_compare(g, TPJ_COMPARE_DIR_LT, x, k, &x));
  return tpj_lower_coerce(g, x, ot, &out[0]);
}

/* ldexp.Tensor(self, other) = self * 2^other, in the (float) result dtype. */
TPJ_LOWERING(tpj_lower_sp_ldexp) {
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t x = tpj_ew_arg(&e, 0), p = tpj_ew_arg(&e, 1);
  tpj_value_t two = tpj_ew_bin(&e, TPJ_BINARY_OP_POW, tpj_ew_k(&e, 2.0), p);
  return tpj_ew_done(&e, tpj_ew_mul(&e, x, two), out);
}

/* angle(self) for real self: pi where self < 0, NaN where NaN, else 0. */
TPJ_LOWERING(tpj_lower_sp_angle) {
  tpj_value_t in;
  TPJ_RETURN_IF_ERROR(tpj_lower_arg_tensor(call, 0, &in));
  if (tpj_dtype_is_complex(tpj_lower_type(g, in)->dtype))
    return TPJ_LOWER_UNSUPPORTED(call, "angle of a complex tensor");
  tpj_ew_t e;
  tpj_ew_begin(&e, g, call);
  tpj_value_t x = tpj_ew_arg(&e, 0);
  tpj_value_t r = tpj_ew_sel(&e, tpj_ew_cmpk(&e, TPJ_COMPARE_DIR_LT, x, 0.0),
                             tpj_ew_k(&e, 3.14159265358979323846), tpj_ew_k(&e, 0.0));
  return tpj_ew_done(&e, tpj_ew_sel(&e, tpj_ew_isnan(&e, x), x, r), out);
}
