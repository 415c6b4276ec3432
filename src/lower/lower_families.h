/* lower_families.h: declarations of every family's lowering functions
 * (internal). table.c includes this once; each family header is optional so a
 * family that does not exist yet is skipped (its ops_*.inc is then empty). */
#ifndef TPJ_LOWER_FAMILIES_H_
#define TPJ_LOWER_FAMILIES_H_

#include "lower/lower_util.h"

#if defined(__has_include)
#if __has_include("lower/lower_elementwise.h")
#include "lower/lower_elementwise.h"
#endif
#if __has_include("lower/lower_shape.h")
#include "lower/lower_shape.h"
#endif
#if __has_include("lower/lower_reduce.h")
#include "lower/lower_reduce.h"
#endif
#if __has_include("lower/lower_nn.h")
#include "lower/lower_nn.h"
#endif
#include "lower/lower_special.h"
#else
#include "lower/lower_elementwise.h"
#include "lower/lower_shape.h"
#include "lower/lower_reduce.h"
#include "lower/lower_nn.h"
#endif

#endif /* TPJ_LOWER_FAMILIES_H_ */
