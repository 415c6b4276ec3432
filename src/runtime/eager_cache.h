/* eager_cache.h: signature -> executable map of the eager runtime (internal). */
#ifndef TPJ_EAGER_CACHE_H_
#define TPJ_EAGER_CACHE_H_

#include <stddef.h>
#include <stdint.h>

#include "tpj/runtime.h"

/* A new reference to the executable stored for blob, or NULL. */
tpj_cached_executable_t* tpj_eager_cache_find(const char* blob, size_t len, uint64_t hash);
/* Stores a reference of its own (the caller keeps its reference). */
void tpj_eager_cache_put(const char* blob, size_t len, uint64_t hash,
                         tpj_cached_executable_t* exe);

#endif /* TPJ_EAGER_CACHE_H_ */
