/* tpj/emit.h: writes a tpj_graph_t as StableHLO text in the generic op form.
 *
 * The output is deterministic (same graph, same bytes) so its hash can key the
 * compile cache, and uses only conservative syntax that older PJRT plugins
 * (API 0.81, xla-cpu-pjrt 0.0.1) parse.
 */
#ifndef TPJ_EMIT_H_
#define TPJ_EMIT_H_

#include "tpj/base.h"
#include "tpj/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Verifies the graph, then writes `module { func.func @main(...) ... }`.
 * *out_text is NUL-terminated and owned by the caller (free()). */
tpj_status_t tpj_emit_stablehlo(const tpj_graph_t* graph, char** out_text,
                                size_t* out_len) TPJ_MUST_USE;

#ifdef __cplusplus
}
#endif

#endif /* TPJ_EMIT_H_ */
