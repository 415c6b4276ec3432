/* program_internal.h: the program object and one call's working state,
 * shared by program.c (create, launch, checks) and program_io.c (resolving
 * inputs, delivering results). Internal to src/runtime. */
#ifndef TPJ_PROGRAM_INTERNAL_H_
#define TPJ_PROGRAM_INTERNAL_H_

#include "tpj/program.h"

typedef struct tpj_eager_checks_s tpj_eager_checks_t;

struct tpj_program_s {
  int refs;                     /* atomic */
  tpj_cached_executable_t* exe; /* one reference */
  char* name;
  tpj_program_input_t* inputs;  /* (num_inputs), constants owned */
  size_t num_inputs;
  size_t num_results;           /* executable outputs less the check result */
  tpj_eager_checks_t* checks;   /* NULL: none */
  bool any_donate;
};

/* Small calls (every eager op) use these instead of heap arrays. */
#define TPJ_PROGRAM_INLINE 16

typedef struct run_s {
  const tpj_program_t* p;
  tpj_program_call_t* call;
  size_t nd, ni, nout;          /* devices, inputs, executable outputs */
  size_t run_on;                /* first device it executes on */
  tpj_buffer_t** args;          /* (nd, ni) what the executable gets */
  tpj_buffer_t** owned;         /* (nd, ni) temporaries made for this call */
  bool* donate;                 /* (ni) or NULL */
  tpj_buffer_t** outs;          /* (nd, nout) */
  tpj_event_t** events;         /* (nd) */
  bool heap;
  tpj_buffer_t* args_inline[TPJ_PROGRAM_INLINE];
  tpj_buffer_t* owned_inline[TPJ_PROGRAM_INLINE];
  bool donate_inline[TPJ_PROGRAM_INLINE];
  tpj_buffer_t* outs_inline[TPJ_PROGRAM_INLINE];
  tpj_event_t* events_inline[1];
} run_t;

/* Validates the call and sets up r (arrays inline or on the heap). */
tpj_status_t tpj_program_run_begin(const tpj_program_t* p, tpj_program_call_t* call,
                                   run_t* r) TPJ_MUST_USE;
/* Fills r->args (and r->donate) from the call's values on the executing device. */
tpj_status_t tpj_program_resolve_inputs(run_t* r) TPJ_MUST_USE;
/* Hands the results to the call: storage installs, host copies, buffers. */
tpj_status_t tpj_program_deliver(run_t* r) TPJ_MUST_USE;
/* Frees the temporaries; `failed`: also every result not yet delivered. */
void tpj_program_run_end(run_t* r, bool failed);

#endif /* TPJ_PROGRAM_INTERNAL_H_ */
