/* npy.c: NumPy .npy files (format 1.0-3.0), tpj-run's inputs and outputs.
 * Files are outside input, so the header is parsed as a strict grammar (a
 * Python dict literal of exactly three keys) instead of being evaluated, and
 * every size is checked before use; anything not understood is refused. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tpj/ir.h"
#include "tpj/npy.h"

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
#define NPY_ALIGN 64
#define NPY_OLD_ALIGN 16     /* what writers before NumPy 1.14 padded to */
#define NPY_GROWTH_DIGITS 21 /* NumPy's spare room after the shape */
#define NPY_STR_MAX 64       /* longest string token kept (with its NUL) */

/* The header dict being parsed: a cursor over [p, end) and what was read. */
typedef struct npy_lexer_s {
  const char* start;
  const char* p;
  const char* end;
  bool utf8; /* format 3.0: bytes >= 0x80 allowed inside strings */
} npy_lexer_t;

typedef struct npy_header_s {
  char descr[NPY_STR_MAX];
  bool have_descr, have_fortran, have_shape;
  bool fortran;
  int32_t rank;
  int64_t dims[TPJ_MAX_RANK];
} npy_header_t;

/* ---------------------------------------------------------------- lexing -- */

static void npy_skip_ws(npy_lexer_t* lx) {
  while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t')) ++lx->p;
}

/* "expected X (got Y at header byte N)" for the byte under the cursor. */
static tpj_status_t npy_syntax(const npy_lexer_t* lx, const char* expected) {
  size_t off = (size_t)(lx->p - lx->start);
  if (lx->p >= lx->end) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: header is not a valid dict literal: expected %s (got the end "
                      "of the header at header byte %zu)", expected, off);
  }
  unsigned char c = (unsigned char)*lx->p;
  if (c >= 0x20 && c < 0x7f) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: header is not a valid dict literal: expected %s (got '%c' at "
                      "header byte %zu)", expected, (char)c, off);
  }
  return TPJ_STATUS(INVALID_ARGUMENT,
                    "npy: header is not a valid dict literal: expected %s (got byte 0x%02x "
                    "at header byte %zu)", expected, c, off);
}

static bool npy_accept(npy_lexer_t* lx, char c) {
  if (lx->p < lx->end && *lx->p == c) {
    ++lx->p;
    return true;
  }
  return false;
}

/* A quoted string ('...' or "...") without escapes, copied into buf. */
static tpj_status_t npy_string(npy_lexer_t* lx, const char* what, char* buf) {
  if (lx->p >= lx->end || (*lx->p != '\'' && *lx->p != '"')) return npy_syntax(lx, what);
  char quote = *lx->p++;
  size_t n = 0;
  while (lx->p < lx->end && *lx->p != quote) {
    unsigned char c = (unsigned char)*lx->p;
    if (c == '\\') return npy_syntax(lx, "a string without escapes");
    if (c < 0x20 || c == 0x7f || (c >= 0x80 && !lx->utf8)) {
      return npy_syntax(lx, "a printable character in a string");
    }
    if (n + 1 >= NPY_STR_MAX) {
      return TPJ_STATUS(INVALID_ARGUMENT,
                        "npy: header string too long (got more than %d bytes at header "
                        "byte %zu)", NPY_STR_MAX - 1, (size_t)(lx->p - lx->start));
    }
    buf[n++] = (char)c;
    ++lx->p;
  }
  if (lx->p >= lx->end) return npy_syntax(lx, "the closing quote of a string");
  ++lx->p;
  buf[n] = '\0';
  return NULL;
}

static bool npy_is_ident(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_';
}

/* The keyword `word` as a whole token. */
static bool npy_keyword(npy_lexer_t* lx, const char* word) {
  size_t n = strlen(word);
  if ((size_t)(lx->end - lx->p) < n || memcmp(lx->p, word, n) != 0) return false;
  if (lx->p + n < lx->end && npy_is_ident(lx->p[n])) return false;
  lx->p += n;
  return true;
}

/* A decimal integer literal (optionally negative, no leading zeros) that
 * fits int64. */
static tpj_status_t npy_int(npy_lexer_t* lx, int64_t* out) {
  const char* begin = lx->p;
  bool negative = npy_accept(lx, '-');
  if (lx->p >= lx->end || *lx->p < '0' || *lx->p > '9') return npy_syntax(lx, "a dimension");
  if (*lx->p == '0' && lx->p + 1 < lx->end && lx->p[1] >= '0' && lx->p[1] <= '9') {
    return npy_syntax(lx, "a decimal integer without leading zeros");
  }
  uint64_t v = 0;
  while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9') {
    uint64_t digit = (uint64_t)(*lx->p - '0');
    if (v > ((uint64_t)INT64_MAX - digit) / 10) {
      const char* digits = lx->p;
      while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9') ++lx->p;
      return TPJ_STATUS(INVALID_ARGUMENT,
                        "npy: shape dim overflows int64 (got %.*s... at header byte %zu, "
                        "expected at most %lld)", (int)(digits - begin), begin,
                        (size_t)(begin - lx->start), (long long)INT64_MAX);
    }
    v = v * 10 + digit;
    ++lx->p;
  }
  if (lx->p < lx->end && npy_is_ident(*lx->p)) return npy_syntax(lx, "the end of a dimension");
  *out = negative ? -(int64_t)v : (int64_t)v;
  return NULL;
}

/* ------------------------------------------------------------ the dict -- */

static tpj_status_t npy_shape_dim(npy_lexer_t* lx, npy_header_t* h) {
  size_t off = (size_t)(lx->p - lx->start);
  int64_t d = 0;
  TPJ_RETURN_IF_ERROR(npy_int(lx, &d));
  if (d < 0) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: negative dim in shape (got %lld at header byte %zu, expected "
                      ">= 0)", (long long)d, off);
  }
  if (h->rank >= TPJ_MAX_RANK) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: shape has too many dims (got more than %d, expected at most %d)",
                      TPJ_MAX_RANK, TPJ_MAX_RANK);
  }
  h->dims[h->rank++] = d;
  return NULL;
}

/* A tuple: "()", "(5,)", "(2, 3)" or "(2, 3,)". "(5)" is an int, not a tuple. */
static tpj_status_t npy_shape(npy_lexer_t* lx, npy_header_t* h) {
  if (!npy_accept(lx, '(')) return npy_syntax(lx, "a tuple for 'shape'");
  npy_skip_ws(lx);
  h->rank = 0;
  if (npy_accept(lx, ')')) return NULL;
  for (;;) {
    TPJ_RETURN_IF_ERROR(npy_shape_dim(lx, h));
    npy_skip_ws(lx);
    if (npy_accept(lx, ',')) {
      npy_skip_ws(lx);
      if (npy_accept(lx, ')')) return NULL;
      continue;
    }
    if (lx->p < lx->end && *lx->p == ')') {
      if (h->rank == 1) return npy_syntax(lx, "',' after the only dim of a 1-d shape, as in (5,)");
      ++lx->p;
      return NULL;
    }
    return npy_syntax(lx, "',' or ')' in 'shape'");
  }
}

static tpj_status_t npy_value(npy_lexer_t* lx, const char* key, npy_header_t* h) {
  if (!strcmp(key, "descr")) {
    if (lx->p < lx->end && *lx->p == '[') {
      return TPJ_STATUS(INVALID_ARGUMENT,
                        "npy: structured dtypes are not supported (got a list for 'descr', "
                        "expected a string like '<f4')");
    }
    h->have_descr = true;
    return npy_string(lx, "a string for 'descr'", h->descr);
  }
  if (!strcmp(key, "fortran_order")) {
    h->have_fortran = true;
    if (npy_keyword(lx, "True")) h->fortran = true;
    else if (npy_keyword(lx, "False")) h->fortran = false;
    else return npy_syntax(lx, "True or False for 'fortran_order'");
    return NULL;
  }
  h->have_shape = true;
  return npy_shape(lx, h);
}

/* Stores the key in buf; refuses unknown and repeated keys. */
static tpj_status_t npy_key(npy_lexer_t* lx, const npy_header_t* h, char* buf) {
  TPJ_RETURN_IF_ERROR(npy_string(lx, "a string key or '}'", buf));
  bool seen;
  if (!strcmp(buf, "descr")) seen = h->have_descr;
  else if (!strcmp(buf, "fortran_order")) seen = h->have_fortran;
  else if (!strcmp(buf, "shape")) seen = h->have_shape;
  else {
    for (char* c = buf; *c; ++c) {
      if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) *c = '?';
    }
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: header has an unexpected key (got '%s', expected exactly "
                      "'descr', 'fortran_order' and 'shape')", buf);
  }
  if (seen) {
    return TPJ_STATUS(INVALID_ARGUMENT, "npy: header repeats a key (got '%s' twice)", buf);
  }
  return NULL;
}

static tpj_status_t npy_dict(npy_lexer_t* lx, npy_header_t* h) {
  npy_skip_ws(lx);
  if (!npy_accept(lx, '{')) return npy_syntax(lx, "'{' (the header must be a dict literal)");
  for (;;) {
    npy_skip_ws(lx);
    if (npy_accept(lx, '}')) break;
    char key[NPY_STR_MAX];
    TPJ_RETURN_IF_ERROR(npy_key(lx, h, key));
    npy_skip_ws(lx);
    if (!npy_accept(lx, ':')) return npy_syntax(lx, "':' after a key");
    npy_skip_ws(lx);
    TPJ_RETURN_IF_ERROR(npy_value(lx, key, h));
    npy_skip_ws(lx);
    if (npy_accept(lx, ',')) continue;
    if (npy_accept(lx, '}')) break;
    return npy_syntax(lx, "',' or '}' after a value");
  }
  npy_skip_ws(lx);
  if (lx->p != lx->end) return npy_syntax(lx, "only spaces after the dict");
  const char* missing = !h->have_descr ? "descr"
                        : !h->have_fortran ? "fortran_order"
                        : !h->have_shape ? "shape" : NULL;
  if (missing) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: header is missing a key (got no '%s', expected exactly 'descr', "
                      "'fortran_order' and 'shape')", missing);
  }
  return NULL;
}

/* ---------------------------------------------------------- the checks -- */

/* The dtype of a descr of the table; a clear refusal for anything else. */
static tpj_status_t npy_descr_dtype(const char* descr, tpj_dtype_t* out) {
  *out = tpj_dtype_from_npy_descr(descr);
  if (*out != TPJ_DTYPE_INVALID) return NULL;
  if (descr[0] == '>') {
    char le[NPY_STR_MAX];
    memcpy(le, descr, strlen(descr) + 1);
    le[0] = '<';
    if (tpj_dtype_from_npy_descr(le) == TPJ_DTYPE_INVALID) le[0] = '|';
    if (tpj_dtype_from_npy_descr(le) != TPJ_DTYPE_INVALID) {
      return TPJ_STATUS(INVALID_ARGUMENT,
                        "npy: big-endian data is not supported (got descr '%s', expected "
                        "'%s')", descr, le);
    }
  }
  tpj_strbuf_t known;
  tpj_strbuf_init(&known);
  for (int d = TPJ_DTYPE_INVALID + 1; d < TPJ_DTYPE_COUNT_; ++d) {
    const char* spelled = tpj_dtype_npy_descr((tpj_dtype_t)d);
    if (spelled) tpj_strbuf_printf(&known, "%s'%s'", known.len ? ", " : "", spelled);
  }
  char shown[NPY_STR_MAX];
  memcpy(shown, descr, strlen(descr) + 1);
  for (char* c = shown; *c; ++c) {
    if ((unsigned char)*c >= 0x7f) *c = '?';
  }
  tpj_status_t s = TPJ_STATUS(INVALID_ARGUMENT,
                              "npy: unsupported descr (got '%s', expected one of %s)", shown,
                              known.data ? known.data : "(none)");
  tpj_strbuf_deinit(&known);
  return s;
}

/* Magic, version, header length and padding; *out_lx spans the dict text
 * (without the final '\n') and *out_data_off is where the data starts. */
static tpj_status_t npy_preamble(const uint8_t* bytes, size_t len, npy_lexer_t* out_lx,
                                 size_t* out_data_off) {
  if (len < NPY_MAGIC_LEN || memcmp(bytes, NPY_MAGIC, NPY_MAGIC_LEN) != 0) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: bad magic (got %zu bytes that do not start with \\x93NUMPY, "
                      "expected an .npy file)", len);
  }
  if (len < NPY_MAGIC_LEN + 2) {
    return TPJ_STATUS(INVALID_ARGUMENT, "npy: truncated header (got %zu bytes, expected at "
                      "least %d for the version)", len, NPY_MAGIC_LEN + 2);
  }
  unsigned major = bytes[6], minor = bytes[7];
  if (major < 1 || major > 3 || minor != 0) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: unsupported format version (got %u.%u, expected 1.0, 2.0 or 3.0)",
                      major, minor);
  }
  size_t prefix = major == 1 ? 10 : 12;
  if (len < prefix) {
    return TPJ_STATUS(INVALID_ARGUMENT, "npy: truncated header (got %zu bytes, expected at "
                      "least %zu for the header length)", len, prefix);
  }
  uint64_t hlen = (uint64_t)bytes[8] | (uint64_t)bytes[9] << 8;
  if (major > 1) hlen |= (uint64_t)bytes[10] << 16 | (uint64_t)bytes[11] << 24;
  if (hlen > len - prefix) {
    return TPJ_STATUS(INVALID_ARGUMENT, "npy: truncated header (got %zu bytes after the "
                      "preamble's length field, expected %llu)", len - prefix,
                      (unsigned long long)hlen);
  }
  size_t total = prefix + (size_t)hlen;
  if (total % NPY_OLD_ALIGN != 0) {
    return TPJ_STATUS(INVALID_ARGUMENT, "npy: header is not padded (got a preamble of %zu "
                      "bytes, expected a multiple of %d)", total, NPY_ALIGN);
  }
  if (hlen == 0 || bytes[total - 1] != '\n') {
    return TPJ_STATUS(INVALID_ARGUMENT, "npy: header does not end in a newline (got %llu "
                      "header bytes)", (unsigned long long)hlen);
  }
  out_lx->start = out_lx->p = (const char*)bytes + prefix;
  out_lx->end = (const char*)bytes + total - 1;
  out_lx->utf8 = major == 3;
  *out_data_off = total;
  return NULL;
}

/* Data length exactly numel * itemsize; bools only 0 or 1. */
static tpj_status_t npy_check_data(const tpj_host_tensor_t* v, size_t have) {
  if (have < v->nbytes) {
    return TPJ_STATUS(INVALID_ARGUMENT, "npy: data too short (got %zu bytes, expected %zu "
                      "for %s)", have, v->nbytes, tpj_dtype_name(v->dtype));
  }
  if (have > v->nbytes) {
    return TPJ_STATUS(INVALID_ARGUMENT, "npy: data too long: %zu trailing bytes (got %zu "
                      "bytes, expected %zu for %s)", have - v->nbytes, have, v->nbytes,
                      tpj_dtype_name(v->dtype));
  }
  if (v->dtype == TPJ_DTYPE_PRED) {
    const uint8_t* b = (const uint8_t*)v->data;
    for (size_t i = 0; i < v->nbytes; ++i) {
      if (b[i] > 1) {
        return TPJ_STATUS(INVALID_ARGUMENT, "npy: bool element %zu is not 0 or 1 (got %u)",
                          i, (unsigned)b[i]);
      }
    }
  }
  return NULL;
}

static tpj_status_t npy_parse_into(const uint8_t* bytes, size_t len, tpj_host_tensor_t* v) {
  npy_lexer_t lx = {NULL, NULL, NULL, false};
  size_t data_off = 0;
  TPJ_RETURN_IF_ERROR(npy_preamble(bytes, len, &lx, &data_off));
  npy_header_t h;
  memset(&h, 0, sizeof(h));
  TPJ_RETURN_IF_ERROR(npy_dict(&lx, &h));
  TPJ_RETURN_IF_ERROR(npy_descr_dtype(h.descr, &v->dtype));
  if (h.fortran) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: fortran_order True is not supported (got a Fortran-order array, "
                      "expected C order: save np.ascontiguousarray(a))");
  }
  tpj_status_t s = tpj_host_tensor_size(v->dtype, h.rank, h.dims, NULL, &v->nbytes);
  if (s) return tpj_status_annotate(s, "npy: shape");
  v->rank = h.rank;
  memcpy(v->dims, h.dims, sizeof(h.dims));
  v->data = (void*)(bytes + data_off);
  return npy_check_data(v, len - data_off);
}

tpj_status_t tpj_npy_parse(const uint8_t* bytes, size_t len, tpj_host_tensor_t* out_view) {
  TPJ_CHECK_ARG(out_view, "tpj_npy_parse: out_view is NULL");
  memset(out_view, 0, sizeof(*out_view));
  TPJ_CHECK_ARG(bytes || len == 0, "tpj_npy_parse: bytes is NULL (got len %zu)", len);
  tpj_host_tensor_t v;
  memset(&v, 0, sizeof(v));
  if (!bytes) bytes = (const uint8_t*)"";
  TPJ_RETURN_IF_ERROR(npy_parse_into(bytes, len, &v));
  *out_view = v;
  return NULL;
}

/* ----------------------------------------------------------------- files -- */

static tpj_status_t npy_errno_status(int err, const char* what) {
  if (err == ENOENT || err == ENOTDIR) {
    return TPJ_STATUS(NOT_FOUND, "npy: cannot %s: %s", what, strerror(err));
  }
  if (err == EACCES || err == EPERM) {
    return TPJ_STATUS(PERMISSION_DENIED, "npy: cannot %s: %s", what, strerror(err));
  }
  return TPJ_STATUS(UNKNOWN, "npy: cannot %s: %s", what, strerror(err));
}

static tpj_status_t npy_read_fd(int fd, uint8_t** out_buf, size_t* out_len) {
  struct stat st;
  if (fstat(fd, &st) != 0) return npy_errno_status(errno, "stat the file");
  if (!S_ISREG(st.st_mode)) {
    return TPJ_STATUS(INVALID_ARGUMENT, "npy: not a regular file (got mode 0%o)",
                      (unsigned)st.st_mode);
  }
  if ((uint64_t)st.st_size > SIZE_MAX - 1) {
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "npy: file too large (got %lld bytes)",
                      (long long)st.st_size);
  }
  size_t size = (size_t)st.st_size;
  uint8_t* buf = (uint8_t*)malloc(size ? size : 1);
  if (!buf) return TPJ_STATUS(RESOURCE_EXHAUSTED, "npy: out of memory (got %zu bytes)", size);
  size_t got = 0;
  while (got < size) {
    ssize_t n = read(fd, buf + got, size - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      tpj_status_t s = n < 0 ? npy_errno_status(errno, "read the file")
                             : TPJ_STATUS(DATA_LOSS, "npy: file shrank while read (got %zu "
                                          "bytes, expected %zu)", got, size);
      free(buf);
      return s;
    }
    got += (size_t)n;
  }
  *out_buf = buf;
  *out_len = size;
  return NULL;
}

static tpj_status_t npy_load_impl(const char* path, tpj_host_tensor_t* out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return npy_errno_status(errno, "open the file");
  uint8_t* buf = NULL;
  size_t len = 0;
  tpj_status_t s = npy_read_fd(fd, &buf, &len);
  close(fd);
  TPJ_RETURN_IF_ERROR(s);
  tpj_host_tensor_t view;
  s = tpj_npy_parse(buf, len, &view);
  if (s) {
    free(buf);
    return s;
  }
  /* Keep only the data: move it to the front of the buffer and shrink it. */
  size_t off = (size_t)((const uint8_t*)view.data - buf);
  if (view.nbytes == 0) {
    free(buf);
    view.data = NULL;
  } else {
    memmove(buf, buf + off, view.nbytes);
    uint8_t* shrunk = (uint8_t*)realloc(buf, view.nbytes);
    view.data = shrunk ? shrunk : buf;
  }
  *out = view;
  return NULL;
}

tpj_status_t tpj_npy_load(const char* path, tpj_host_tensor_t* out_tensor) {
  TPJ_CHECK_ARG(out_tensor, "tpj_npy_load: out_tensor is NULL");
  memset(out_tensor, 0, sizeof(*out_tensor));
  TPJ_CHECK_ARG(path, "tpj_npy_load: path is NULL");
  return tpj_status_annotate(npy_load_impl(path, out_tensor), "%s", path);
}

/* The preamble NumPy itself writes for format 1.0: the dict, spare room for
 * the shape to grow, spaces to a multiple of 64 and '\n' (byte-identical to
 * np.save of the same array). */
static tpj_status_t npy_build_header(const tpj_host_tensor_t* t, const char* descr,
                                     tpj_strbuf_t* sb) {
  tpj_strbuf_append(sb, NPY_MAGIC "\x01\x00\x00\x00", NPY_MAGIC_LEN + 4);
  tpj_strbuf_printf(sb, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
  for (int32_t i = 0; i < t->rank; ++i) {
    tpj_strbuf_printf(sb, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
  }
  tpj_strbuf_puts(sb, t->rank == 1 ? ",), }" : "), }");
  if (t->rank > 0) {
    int digits = snprintf(NULL, 0, "%lld", (long long)t->dims[0]);
    for (int i = digits; i < NPY_GROWTH_DIGITS; ++i) tpj_strbuf_puts(sb, " ");
  }
  size_t pad = NPY_ALIGN - (sb->len + 1) % NPY_ALIGN;
  for (size_t i = 0; i < pad; ++i) tpj_strbuf_puts(sb, " ");
  tpj_strbuf_puts(sb, "\n");
  TPJ_RETURN_IF_ERROR(tpj_strbuf_status(sb));
  size_t hlen = sb->len - (NPY_MAGIC_LEN + 4);
  if (hlen > 0xffff) {
    return TPJ_STATUS(INTERNAL, "npy: header too long for format 1.0 (got %zu bytes)", hlen);
  }
  sb->data[8] = (char)(hlen & 0xff);
  sb->data[9] = (char)(hlen >> 8);
  return NULL;
}

static tpj_status_t npy_check_tensor(const tpj_host_tensor_t* t, const char** out_descr) {
  *out_descr = tpj_dtype_npy_descr(t->dtype);
  if (!*out_descr) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "npy: %s has no .npy dtype (got dtype %s, expected one NumPy has: "
                      "convert bfloat16 to float32 first)", tpj_dtype_name(t->dtype),
                      tpj_dtype_name(t->dtype));
  }
  size_t nbytes = 0;
  TPJ_RETURN_IF_ERROR(tpj_host_tensor_size(t->dtype, t->rank, t->dims, NULL, &nbytes));
  TPJ_CHECK_ARG(t->nbytes == nbytes, "npy: tensor nbytes does not match its shape (got %zu, "
                "expected %zu)", t->nbytes, nbytes);
  TPJ_CHECK_ARG(t->data || nbytes == 0, "npy: tensor data is NULL (got %zu bytes)", nbytes);
  return NULL;
}

static tpj_status_t npy_write_all(FILE* f, const void* data, size_t len) {
  if (len && fwrite(data, 1, len, f) != len) return npy_errno_status(errno, "write the file");
  return NULL;
}

static tpj_status_t npy_save_impl(const char* path, const tpj_host_tensor_t* t) {
  const char* descr = NULL;
  TPJ_RETURN_IF_ERROR(npy_check_tensor(t, &descr));
  tpj_strbuf_t sb;
  tpj_strbuf_init(&sb);
  tpj_status_t s = npy_build_header(t, descr, &sb);
  FILE* f = NULL;
  if (!s) {
    f = fopen(path, "wb");
    if (!f) s = npy_errno_status(errno, "create the file");
  }
  if (!s) s = npy_write_all(f, sb.data, sb.len);
  if (!s) s = npy_write_all(f, t->data, t->nbytes);
  if (f && fclose(f) != 0 && !s) s = npy_errno_status(errno, "close the file");
  if (s && f) unlink(path); /* no half-written file left behind */
  tpj_strbuf_deinit(&sb);
  return s;
}

tpj_status_t tpj_npy_save(const char* path, const tpj_host_tensor_t* tensor) {
  TPJ_CHECK_ARG(path && tensor, "tpj_npy_save: path or tensor is NULL");
  return tpj_status_annotate(npy_save_impl(path, tensor), "%s", path);
}
