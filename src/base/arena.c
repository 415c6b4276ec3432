/* Arena and string builder: the two allocation patterns the IR and emitter use.
 * The arena hands out zeroed, aligned memory that is freed all at once; the
 * string builder grows a heap string and remembers (instead of crashing on) OOM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/base.h"

struct tpj_arena_block_s {
  tpj_arena_block_t* next;
  size_t size; /* usable bytes after the header */
  size_t used;
  _Alignas(16) unsigned char data[];
};

void tpj_arena_init(tpj_arena_t* arena, size_t block_size) {
  arena->head = NULL;
  arena->block_size = block_size ? block_size : 16384;
  arena->bytes_allocated = 0;
}

void tpj_arena_deinit(tpj_arena_t* arena) {
  if (!arena) return;
  tpj_arena_block_t* b = arena->head;
  while (b) {
    tpj_arena_block_t* next = b->next;
    free(b);
    b = next;
  }
  arena->head = NULL;
  arena->bytes_allocated = 0;
}

void* tpj_arena_alloc(tpj_arena_t* arena, size_t size) {
  size = (size + 15) & ~(size_t)15;
  if (size == 0) size = 16;
  tpj_arena_block_t* b = arena->head;
  if (!b || b->size - b->used < size) {
    size_t cap = size > arena->block_size ? size : arena->block_size;
    b = (tpj_arena_block_t*)malloc(sizeof(tpj_arena_block_t) + cap);
    if (!b) return NULL;
    b->next = arena->head;
    b->size = cap;
    b->used = 0;
    arena->head = b;
    arena->bytes_allocated += cap;
  }
  void* p = b->data + b->used;
  b->used += size;
  memset(p, 0, size);
  return p;
}

char* tpj_arena_strdup(tpj_arena_t* arena, const char* s, size_t len) {
  char* d = (char*)tpj_arena_alloc(arena, len + 1);
  if (!d) return NULL;
  memcpy(d, s, len);
  d[len] = 0;
  return d;
}

void tpj_strbuf_init(tpj_strbuf_t* sb) { memset(sb, 0, sizeof(*sb)); }

void tpj_strbuf_deinit(tpj_strbuf_t* sb) {
  free(sb->data);
  memset(sb, 0, sizeof(*sb));
}

static int tpj_strbuf_reserve(tpj_strbuf_t* sb, size_t extra) {
  if (sb->oom) return 0;
  if (sb->len + extra + 1 <= sb->cap) return 1;
  size_t cap = sb->cap ? sb->cap : 256;
  while (cap < sb->len + extra + 1) cap *= 2;
  char* d = (char*)realloc(sb->data, cap);
  if (!d) {
    sb->oom = 1;
    return 0;
  }
  sb->data = d;
  sb->cap = cap;
  return 1;
}

void tpj_strbuf_append(tpj_strbuf_t* sb, const char* s, size_t len) {
  if (!tpj_strbuf_reserve(sb, len)) return;
  memcpy(sb->data + sb->len, s, len);
  sb->len += len;
  sb->data[sb->len] = 0;
}

void tpj_strbuf_puts(tpj_strbuf_t* sb, const char* s) { tpj_strbuf_append(sb, s, strlen(s)); }

void tpj_strbuf_printf(tpj_strbuf_t* sb, const char* fmt, ...) {
  va_list ap, ap2;
  va_start(ap, fmt);
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  va_end(ap);
  if (n > 0 && tpj_strbuf_reserve(sb, (size_t)n)) {
    vsnprintf(sb->data + sb->len, (size_t)n + 1, fmt, ap2);
    sb->len += (size_t)n;
  }
  va_end(ap2);
}

char* tpj_strbuf_take(tpj_strbuf_t* sb, size_t* out_len) {
  if (!sb->data && !sb->oom) tpj_strbuf_reserve(sb, 0);
  char* d = sb->data;
  if (out_len) *out_len = sb->len;
  memset(sb, 0, sizeof(*sb));
  return d;
}

tpj_status_t tpj_strbuf_status(const tpj_strbuf_t* sb) {
  if (sb->oom) return TPJ_STATUS(RESOURCE_EXHAUSTED, "string builder: out of memory (had %zu bytes)", sb->len);
  return NULL;
}
