/* eager_cache.h: signature -> program map of the eager runtime (internal). */
#ifndef TPJ_EAGER_CACHE_H_
#define TPJ_EAGER_CACHE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/program.h"

/* Signature bytes of one call: built in place on the stack, spilling to the
 * heap only for very long calls, so a signature hit allocates nothing. */
typedef struct tpj_eager_sig_s {
  char* data;            /* inline_buf or malloc'd */
  size_t len;
  size_t cap;
  bool oom;              /* a spill failed; later puts are ignored */
  char inline_buf[1024];
} tpj_eager_sig_t;

void tpj_eager_sig_init(tpj_eager_sig_t* sig);
void tpj_eager_sig_deinit(tpj_eager_sig_t* sig);
void tpj_eager_sig_put(tpj_eager_sig_t* sig, const void* bytes, size_t n);
/* A word-at-a-time hash of the bytes (computed on every op). */
uint64_t tpj_eager_sig_hash(const tpj_eager_sig_t* sig);

/* A new reference to the program stored for blob, or NULL. */
tpj_program_t* tpj_eager_cache_find(const char* blob, size_t len, uint64_t hash);
/* Stores a reference of its own (the caller keeps its reference). */
void tpj_eager_cache_put(const char* blob, size_t len, uint64_t hash, tpj_program_t* program);

#endif /* TPJ_EAGER_CACHE_H_ */
