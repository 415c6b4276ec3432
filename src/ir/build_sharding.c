/* Builders for the manual-sharding custom calls the SPMD partitioner reads:
 * @Sharding (annotate a value), @SPMDFullToShardShape (the full value to this
 * partition's shard, manual from here on) and @SPMDShardToFullShape (back).
 * Each checks the sharding text, which is pasted into a quoted attribute. */
#include <stdio.h>
#include <string.h>

#include "ir/ir_internal.h"

#define TPJ_FMT(t, buf) tpj_type_format((t), (buf), sizeof(buf))
/* Longest sharding text accepted, in chars (a mesh of thousands of devices). */
#define TPJ_IR_MAX_SHARDING 4096

/* The text goes between quotes: "{...}", no quote, backslash or control char. */
static tpj_status_t tpj_ir_sharding_check(const char* name, const char* sharding) {
  TPJ_CHECK_ARG(sharding, "%s: sharding is NULL", name);
  size_t n = strnlen(sharding, TPJ_IR_MAX_SHARDING + 1);
  TPJ_CHECK_ARG(n >= 2 && n <= TPJ_IR_MAX_SHARDING, "%s: sharding has the wrong length (got "
                "%s%zu chars, expected 2..%d)", name, n > TPJ_IR_MAX_SHARDING ? "more than " : "",
                n > TPJ_IR_MAX_SHARDING ? (size_t)TPJ_IR_MAX_SHARDING : n, TPJ_IR_MAX_SHARDING);
  TPJ_CHECK_ARG(sharding[0] == '{' && sharding[n - 1] == '}', "%s: sharding is not in braces "
                "(got \"%.64s%s\", expected \"{...}\")", name, sharding, n > 64 ? "..." : "");
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = (unsigned char)sharding[i];
    TPJ_CHECK_ARG(c != '"' && c != '\\' && c >= 0x20, "%s: sharding has a character that "
                  "cannot be quoted (got byte 0x%02x at offset %zu, expected no '\"', '\\' or "
                  "control character)", name, (unsigned)c, i);
  }
  return NULL;
}

/* `t` (the result type, named `what`) has the operand's dtype and rank. */
static tpj_status_t tpj_ir_sharding_type(const char* name, const char* what,
                                         const tpj_type_t* tx, const tpj_type_t* t) {
  TPJ_CHECK_ARG(t, "%s: %s is NULL", name, what);
  char a[96], b[96];
  TPJ_FMT(tx, a);
  TPJ_CHECK_ARG(t->rank >= 0 && t->rank <= TPJ_MAX_RANK, "%s: %s has a bad rank (got %d, "
                "expected %d like the operand %s)", name, what, (int)t->rank, (int)tx->rank, a);
  TPJ_FMT(t, b);
  TPJ_CHECK_ARG(t->dtype == tx->dtype, "%s: %s has the wrong dtype (got %s, expected %s like "
                "the operand %s)", name, what, b, tpj_dtype_mlir(tx->dtype), a);
  TPJ_CHECK_ARG(t->rank == tx->rank, "%s: %s has the wrong rank (got %s, expected rank %d like "
                "the operand %s)", name, what, b, (int)tx->rank, a);
  return NULL;
}

/* custom_call @target of x with result type rt and mhlo.sharding = sharding. */
static tpj_status_t tpj_ir_sharding_append(tpj_graph_t* g, const char* target, tpj_value_t x,
                                           const char* sharding, const tpj_type_t* rt,
                                           tpj_value_t* out) {
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_strbuf_printf(&sb, "call_target_name = \"%s\", mhlo.sharding = \"%s\"", target, sharding);
  tpj_ir_op_desc_t d = {.name = "stablehlo.custom_call", .operands = &x, .num_operands = 1,
                        .result_types = rt, .num_results = 1};
  return tpj_ir_append_with_attrs(g, &d, &sb, out);
}

/* -------------------------------------------------------------- sharding -- */

tpj_status_t tpj_build_sharding(tpj_graph_t* g, tpj_value_t x, const char* sharding,
                                tpj_value_t* out) {
  const char* name = "stablehlo.custom_call @Sharding";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_sharding_check(name, sharding));
  tpj_type_t rt = *tx;
  return tpj_ir_sharding_append(g, "Sharding", x, sharding, &rt, out);
}

/* --------------------------------------------------------- full <-> shard -- */

tpj_status_t tpj_build_full_to_shard(tpj_graph_t* g, tpj_value_t x, const tpj_type_t* shard_type,
                                     tpj_value_t* out) {
  const char* name = "stablehlo.custom_call @SPMDFullToShardShape";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_sharding_type(name, "shard_type", tx, shard_type));
  for (int32_t i = 0; i < tx->rank; ++i) {
    int64_t s = shard_type->dims[i], f = tx->dims[i];
    TPJ_CHECK_ARG(s <= f && s >= (f >= 1 ? 1 : 0), "%s: shard dim %d does not fit the full dim "
                  "(got %lld, expected %s%lld)", name, (int)i, (long long)s,
                  f >= 1 ? "1..": "", (long long)f);
  }
  tpj_type_t rt = *shard_type;
  return tpj_ir_sharding_append(g, "SPMDFullToShardShape", x, "{manual}", &rt, out);
}

tpj_status_t tpj_build_shard_to_full(tpj_graph_t* g, tpj_value_t x, const char* sharding,
                                     const tpj_type_t* full_type, tpj_value_t* out) {
  const char* name = "stablehlo.custom_call @SPMDShardToFullShape";
  TPJ_CHECK_ARG(g && out, "%s: graph or out is NULL", name);
  const tpj_type_t* tx;
  TPJ_RETURN_IF_ERROR(tpj_ir_operand(g, name, "operand", x, &tx));
  TPJ_RETURN_IF_ERROR(tpj_ir_sharding_check(name, sharding));
  TPJ_RETURN_IF_ERROR(tpj_ir_sharding_type(name, "full_type", tx, full_type));
  for (int32_t i = 0; i < tx->rank; ++i) {
    int64_t f = full_type->dims[i], s = tx->dims[i];
    TPJ_CHECK_ARG(f >= s, "%s: full dim %d is smaller than the shard dim (got %lld, expected "
                  ">= %lld)", name, (int)i, (long long)f, (long long)s);
  }
  tpj_type_t rt = *full_type;
  return tpj_ir_sharding_append(g, "SPMDShardToFullShape", x, sharding, &rt, out);
}
