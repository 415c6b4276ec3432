/* tpj/program.h: a compiled program with its input plan, and tpj_program_run,
 * the one function that launches programs. Eager ops (eager_run.c), graphs
 * compiled over host tensors and graphs compiled over device storages all
 * launch here, so launches, transfers, their timers, trace spans, runtime
 * checks and device-memory accounting are counted in one place.
 *
 * A program is made once per compiled signature (tpj_program_create) and run
 * many times. Its plan says where each executable parameter comes from; each
 * call (tpj_program_call_t) supplies the values and says, per result, whether
 * it comes back as a buffer, becomes the contents of an eager storage, or is
 * copied into host memory. Outputs that are an input or an alias of one are
 * not program results: the caller returns those without a launch.
 *
 * Thread safety: a program is immutable after create; runs may overlap.
 */
#ifndef TPJ_PROGRAM_H_
#define TPJ_PROGRAM_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"
#include "tpj/eager.h"
#include "tpj/ir.h"
#include "tpj/pjrt.h"
#include "tpj/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum tpj_program_input_kind_e {
  TPJ_PROGRAM_INPUT_BUFFER = 0, /* a device buffer passed per call (borrowed) */
  TPJ_PROGRAM_INPUT_STORAGE,    /* an eager storage view, read as a flat 1-D buffer */
  TPJ_PROGRAM_INPUT_HOST,       /* host memory of the plan's dtype and dims, uploaded per call */
  TPJ_PROGRAM_INPUT_CONSTANT,   /* a buffer the program owns (uploaded once) */
  TPJ_PROGRAM_INPUT_SEED,       /* random-op state: two u64 words per call, as u64[2] */
} tpj_program_input_kind_t;

typedef struct tpj_program_input_s {
  tpj_program_input_kind_t kind;
  /* BUFFER: the plugin may reuse the argument's memory (the buffer is then
   * deleted). Never donated when the same buffer feeds two parameters. */
  bool donate;
  tpj_dtype_t dtype;            /* HOST: element type; STORAGE: informational (the
                                   view in each call says how it is read) */
  int32_t rank;                 /* HOST */
  int64_t dims[TPJ_MAX_RANK];   /* HOST: (rank) */
  tpj_buffer_t* constant;       /* CONSTANT: taken by tpj_program_create (also on error) */
} tpj_program_input_t;

typedef struct tpj_program_plan_s {
  const char* name;                  /* trace and error name, e.g. "forward_3" (copied) */
  const tpj_program_input_t* inputs; /* (num_inputs): one per executable parameter */
  size_t num_inputs;
  /* (num_checks) runtime checks (tpj/ir.h; copied): the executable's last
   * result holds their (bad, value) pairs. */
  const tpj_check_t* checks;
  size_t num_checks;
} tpj_program_plan_t;

typedef struct tpj_program_s tpj_program_t;

/* A program over `executable` (retained). INVALID_ARGUMENT for a plan that
 * does not fit it: CONSTANT without a buffer, checks with no result for them,
 * HOST without a dtype. */
tpj_status_t tpj_program_create(tpj_cached_executable_t* executable,
                                const tpj_program_plan_t* plan,
                                tpj_program_t** out_program) TPJ_MUST_USE;
void tpj_program_retain(tpj_program_t* program);
void tpj_program_release(tpj_program_t* program);
/* Borrowed accessors. */
tpj_cached_executable_t* tpj_program_executable(const tpj_program_t* program);
const char* tpj_program_name(const tpj_program_t* program);
size_t tpj_program_num_inputs(const tpj_program_t* program);
/* The plan's input `index` as created (a CONSTANT's buffer is the program's);
 * NULL past the end. */
const tpj_program_input_t* tpj_program_input(const tpj_program_t* program, size_t index);
/* The results a call receives: the executable's outputs less the check result. */
size_t tpj_program_num_results(const tpj_program_t* program);
size_t tpj_program_num_checks(const tpj_program_t* program);

/* One input's value for one call; the field the plan's kind names is read. */
typedef struct tpj_program_arg_s {
  tpj_buffer_t* buffer;     /* BUFFER */
  /* STORAGE: a view covering its whole storage, kept in the view's dtype,
   * passes the storage's buffer (a never-written storage first gets zeros);
   * any other view is first read into a new flat buffer on the device. The
   * zeros and the view read are one-op programs of the eager runtime, which
   * launch through tpj_program_run themselves (with buffer inputs only, so
   * the recursion is one level deep). */
  tpj_eager_tensor_t view;
  const void* host;         /* HOST: row-major bytes of the plan's dtype and dims */
  uint64_t seed[2];         /* SEED */
} tpj_program_arg_t;

/* Where one result goes. */
typedef struct tpj_program_result_s {
  /* Non-NULL: the result (1-D, the storage's bytes) becomes the contents of
   * this storage, new or existing; every view of it sees the write. */
  tpj_eager_storage_t* storage;
  void* host;               /* non-NULL: the result's row-major bytes are copied here */
  size_t host_nbytes;       /* with host: must equal the result's size */
  bool keep;                /* with host: .buffer is returned as well */
  /* Out: the result, owned by the caller, unless installed, or copied and
   * not kept (then NULL). */
  tpj_buffer_t* buffer;
} tpj_program_result_t;

typedef struct tpj_program_call_s {
  const tpj_program_arg_t* args;  /* (num_devices, num_inputs) row-major */
  /* 1, or the executable's device count (a replicated or SPMD program:
   * BUFFER and STORAGE inputs only, row d for device d, results on the
   * device they ran). A row's buffer or storage on another device is first
   * copied to device d. */
  size_t num_devices;
  /* One device: where the inputs and results live. A portable executable
   * runs there; any other runs on device 0, inputs moved there and results
   * moved back. */
  size_t device;
  tpj_program_result_t* results;  /* (num_devices, tpj_program_num_results) */
  /* true: returns once the program completed; its failure and its failed
   * checks (OUT_OF_RANGE for an index) are the returned status.
   * false: returns once launched; the launch is tracked in flight on the
   * device (tpj_eager_synchronize and events wait for it) and failed checks
   * raise at the next synchronization, as an eager op's do. Host results
   * always wait for their copies. */
  bool wait;
} tpj_program_call_t;

/* Runs the program. On error no result buffers are left (results[].buffer
 * are NULL) and no storage was changed, except by donation. Counts one
 * execution, its seconds and the bytes moved (tpj_runtime_metrics_get),
 * traces the launch and copies, and charges the program's temporaries to the
 * device's peak memory (tpj_eager_memory_launch). */
tpj_status_t tpj_program_run(const tpj_program_t* program,
                             tpj_program_call_t* call) TPJ_MUST_USE;

#ifdef __cplusplus
}
#endif

#endif /* TPJ_PROGRAM_H_ */
