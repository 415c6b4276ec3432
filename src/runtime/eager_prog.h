/* eager_prog.h: one eager op call as the runtime sees it while finding or
 * building its program (internal): the distinct storages it reads, which
 * scalars are runtime inputs, the view it writes. Shared by eager_run.c,
 * which fills it, and eager_cache.c, which turns it into the signature. */
#ifndef TPJ_EAGER_PROG_H_
#define TPJ_EAGER_PROG_H_

#include "runtime/eager_cache.h"
#include "runtime/eager_internal.h"

#define TPJ_EAGER_PROG_INLINE 16

typedef struct tpj_eager_prog_s {
  const tpj_eager_op_t* op;        /* target NULL: identity of value 0 */
  const tpj_eager_tensor_t* dst;   /* NULL, or the view result 0 is written into */
  tpj_eager_storage_t** storages;  /* (num_storages) distinct parameters */
  size_t num_storages;
  size_t* slot;                    /* (num_inputs) storage slot of each input */
  long dst_slot;                   /* -1: dst is overwritten whole */
  tpj_dtype_t dst_flat_dtype;
  bool* lifted;                    /* (num_args) scalar argument is a runtime input */
  size_t num_scalars;              /* host scalars + lifted arguments */
  /* Small calls (almost all) use these instead of heap arrays. */
  tpj_eager_storage_t* storages_inline[TPJ_EAGER_PROG_INLINE];
  size_t slot_inline[TPJ_EAGER_PROG_INLINE];
  bool lifted_inline[TPJ_EAGER_PROG_INLINE];
} tpj_eager_prog_t;

/* The call's signature: everything its program depends on (op, argument
 * kinds and non-lifted values, storage and view shapes, output types,
 * whether checks are on), never the lifted scalars' values. */
void tpj_eager_sig_build(const tpj_eager_prog_t* p, tpj_eager_sig_t* sb);

#endif /* TPJ_EAGER_PROG_H_ */
