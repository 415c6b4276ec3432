/* Status records: the one way errors travel through the library.
 * A status carries an abseil code, a message, and the file/line that made it;
 * NULL means OK. Allocation failure yields a static record, never a crash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tpj/base.h"

struct tpj_status_s {
  tpj_status_code_t code;
  int line;
  const char* file;
  char* message;
};

static struct tpj_status_s tpj_oom_status = {
    TPJ_STATUS_RESOURCE_EXHAUSTED, 0, __FILE__,
    (char*)"out of memory while creating an error status"};

static char* tpj_vformat(const char* fmt, va_list ap) {
  va_list ap2;
  va_copy(ap2, ap);
  int n = vsnprintf(NULL, 0, fmt, ap2);
  va_end(ap2);
  if (n < 0) n = 0;
  char* s = (char*)malloc((size_t)n + 1);
  if (!s) return NULL;
  vsnprintf(s, (size_t)n + 1, fmt, ap);
  return s;
}

tpj_status_t tpj_status_makev(tpj_status_code_t code, const char* file, int line,
                              const char* fmt, va_list ap) {
  if (code == TPJ_STATUS_OK) code = TPJ_STATUS_UNKNOWN; /* an error is never OK */
  tpj_status_t s = (tpj_status_t)malloc(sizeof(*s));
  if (!s) return &tpj_oom_status;
  s->message = tpj_vformat(fmt, ap);
  if (!s->message) {
    free(s);
    return &tpj_oom_status;
  }
  s->code = code;
  s->file = file;
  s->line = line;
  return s;
}

tpj_status_t tpj_status_make(tpj_status_code_t code, const char* file, int line,
                             const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tpj_status_t s = tpj_status_makev(code, file, line, fmt, ap);
  va_end(ap);
  return s;
}

tpj_status_t tpj_status_annotate(tpj_status_t status, const char* fmt, ...) {
  if (!status || status == &tpj_oom_status) return status;
  va_list ap;
  va_start(ap, fmt);
  char* prefix = tpj_vformat(fmt, ap);
  va_end(ap);
  if (!prefix) return status;
  size_t a = strlen(prefix), b = strlen(status->message);
  char* joined = (char*)malloc(a + 2 + b + 1);
  if (joined) {
    memcpy(joined, prefix, a);
    memcpy(joined + a, ": ", 2);
    memcpy(joined + a + 2, status->message, b + 1);
    free(status->message);
    status->message = joined;
  }
  free(prefix);
  return status;
}

void tpj_status_free(tpj_status_t status) {
  if (!status || status == &tpj_oom_status) return;
  free(status->message);
  free(status);
}

tpj_status_code_t tpj_status_code(tpj_status_t s) { return s ? s->code : TPJ_STATUS_OK; }
const char* tpj_status_message(tpj_status_t s) { return s ? s->message : ""; }
const char* tpj_status_file(tpj_status_t s) { return s ? s->file : ""; }
int tpj_status_line(tpj_status_t s) { return s ? s->line : 0; }

const char* tpj_status_code_name(tpj_status_code_t code) {
  static const char* const names[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
      "INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  if ((int)code < 0 || (size_t)code >= sizeof(names) / sizeof(names[0])) return "UNKNOWN";
  return names[code];
}
