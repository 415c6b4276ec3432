/* Hashing and logging: a stable 64-bit hash for cache keys, and a leveled log
 * with a replaceable sink so the Python layer can route messages to `logging`. */
#include <stdio.h>
#include <stdlib.h>

#include "tpj/base.h"

uint64_t tpj_hash_bytes(const void* data, size_t len, uint64_t seed) {
  const unsigned char* p = (const unsigned char*)data;
  uint64_t h = seed;
  for (size_t i = 0; i < len; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

static int tpj_log_level_ = -1;
static tpj_log_sink_fn tpj_log_sink_ = NULL;
static void* tpj_log_user_ = NULL;

void tpj_log_set_level(tpj_log_level_t level) { tpj_log_level_ = (int)level; }

void tpj_log_set_sink(tpj_log_sink_fn sink, void* user) {
  tpj_log_sink_ = sink;
  tpj_log_user_ = user;
}

static int tpj_log_current_level(void) {
  if (tpj_log_level_ < 0) {
    const char* env = getenv("TPJ_LOG_LEVEL");
    int v = env ? atoi(env) : (int)TPJ_LOG_LEVEL_WARNING;
    tpj_log_level_ = v < 0 ? 0 : (v > 3 ? 3 : v);
  }
  return tpj_log_level_;
}

void tpj_log_write(tpj_log_level_t level, const char* fmt, ...) {
  if ((int)level > tpj_log_current_level()) return;
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof(buf), fmt, ap);
  va_end(ap);
  if (tpj_log_sink_) {
    tpj_log_sink_(level, buf, tpj_log_user_);
    return;
  }
  static const char* const tags[] = {"error", "warning", "info", "debug"};
  fprintf(stderr, "torch_pjrt %s: %s\n", tags[level & 3], buf);
}
