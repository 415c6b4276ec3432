/* eager_checks.h: runtime checks of eager programs (internal, eager_checks.c).
 * The messages of a program's checks are kept with its cached executable; a
 * launched program's check result waits in a pending list until the next
 * synchronization reads it. */
#ifndef TPJ_EAGER_CHECKS_H_
#define TPJ_EAGER_CHECKS_H_

#include "tpj/eager.h"

/* The checks of one program (reference counted, immutable). */
typedef struct tpj_eager_checks_s tpj_eager_checks_t;

/* A copy of g's checks; *out is NULL when g has none. */
tpj_status_t tpj_eager_checks_from_graph(const tpj_graph_t* g,
                                         tpj_eager_checks_t** out) TPJ_MUST_USE;
/* A copy of checks[0..n) (messages copied); *out is NULL when n is 0. */
tpj_status_t tpj_eager_checks_create(const tpj_check_t* checks, size_t n,
                                     tpj_eager_checks_t** out) TPJ_MUST_USE;
void tpj_eager_checks_retain(tpj_eager_checks_t* checks);
void tpj_eager_checks_release(tpj_eager_checks_t* checks); /* accepts NULL */
size_t tpj_eager_checks_count(const tpj_eager_checks_t* checks); /* 0 for NULL */
/* Keeps a launched program's check result (takes ownership of `buffer`, also
 * on error) until the next tpj_eager_checks_flush; starts its host copy. */
tpj_status_t tpj_eager_checks_defer(tpj_eager_checks_t* checks,
                                    tpj_buffer_t* buffer) TPJ_MUST_USE;
/* The first failed check among a result's (bad, value) pairs, read to host
 * as values (2 * tpj_eager_checks_count); NULL when all passed. */
tpj_status_t tpj_eager_checks_evaluate(const tpj_eager_checks_t* checks,
                                       const int64_t* values) TPJ_MUST_USE;
/* Waits for every pending check result and returns the first failed check
 * (oldest first; all pending results are consumed either way). */
tpj_status_t tpj_eager_checks_flush(void) TPJ_MUST_USE;

#endif /* TPJ_EAGER_CHECKS_H_ */
