/* model_run.h: the loaded model as model.c (load, lifetime) and model_run.c
 * (runs) share it. */
#ifndef TPJ_MODEL_RUN_H_
#define TPJ_MODEL_RUN_H_

#include <stdatomic.h>

#include "model/model_internal.h"
#include "tpj/program.h"
#include "tpj/runtime.h"

typedef struct tpj_model_program_s {
  tpj_program_t* program;
  tpj_buffer_t** weights;         /* (num_params) borrowed from the model; NULL for inputs */
} tpj_model_program_t;

struct tpj_model_s {
  atomic_int refs;
  tpj_client_t* client;           /* borrowed */
  tpj_arena_t arena;              /* the parsed parts' strings and tables */
  tpj_model_parts_t parts;        /* data pointers are NULL after the load */
  tpj_buffer_t** weight_buffers;  /* (parts.weights.count) NULL for unused weights */
  tpj_model_program_t* programs;  /* (parts.manifest.num_programs) */
  size_t num_deserialized;
};

#endif /* TPJ_MODEL_RUN_H_ */
