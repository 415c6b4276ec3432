/* safetensors.c: the strict reader behind safetensors.h. Weights arrive from
 * outside, so every byte range is checked before anything points into it: the
 * header length against the file, each tensor's dtype x shape against its
 * offsets, and all ranges together against the buffer (no overlap, no hole). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/json.h"
#include "model/safetensors.h"

/* One tensor's byte range, for the coverage check. */
typedef struct st_range_s {
  uint64_t begin;
  uint64_t end;
  size_t index; /* into the tensors, in header order */
} st_range_t;

/* `s` quoted for a message: tpj_json_excerpt between double quotes. */
static void quote_name(const char* s, size_t n, char* buf, size_t cap) {
  buf[0] = '"';
  tpj_json_excerpt(s, n, buf + 1, cap - 2);
  size_t o = strlen(buf);
  buf[o] = '"';
  buf[o + 1] = 0;
}

/* "[2, 3]" ("[]" for a scalar) into buf. */
static void format_shape(const int64_t* dims, int32_t rank, char* buf, size_t cap) {
  size_t o = (size_t)snprintf(buf, cap, "[");
  for (int32_t i = 0; i < rank && o < cap; ++i) {
    o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)dims[i]);
  }
  if (o < cap) snprintf(buf + o, cap - o, "]");
}

static uint64_t read_u64_le(const uint8_t* b) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | b[i];
  return v;
}

/* Splits the file into its JSON header (parsed into *out_root, an object)
 * and the byte buffer after it. */
static tpj_status_t read_header(const uint8_t* bytes, size_t len, tpj_arena_t* arena,
                                tpj_json_t** out_root, const uint8_t** out_buf,
                                size_t* out_buf_len) {
  TPJ_CHECK_ARG(len >= 8, "safetensors: file too short for the header length (got %zu "
                "bytes, expected at least 8)", len);
  uint64_t n = read_u64_le(bytes);
  TPJ_CHECK_ARG(n <= (uint64_t)(len - 8), "safetensors: header length runs past the file "
                "(got %llu, expected at most %zu)", (unsigned long long)n, len - 8);
  /* The writer pads the header with spaces to 8-byte alignment; JSON allows
   * trailing whitespace, so the parser takes the padding as it is. */
  tpj_json_t* root = NULL;
  tpj_status_t s = tpj_json_parse((const char*)bytes + 8, (size_t)n, arena, &root);
  if (s) return tpj_status_annotate(s, "safetensors: header (%llu bytes at offset 8)",
                                    (unsigned long long)n);
  TPJ_CHECK_ARG(root->kind == TPJ_JSON_OBJECT, "safetensors: header is not a JSON object "
                "(got %s, expected object)", tpj_json_kind_name(root->kind));
  *out_root = root;
  *out_buf = bytes + 8 + (size_t)n;
  *out_buf_len = len - 8 - (size_t)n;
  return NULL;
}

static tpj_status_t check_metadata(const tpj_json_t* meta) {
  TPJ_CHECK_ARG(meta->kind == TPJ_JSON_OBJECT, "safetensors: __metadata__ is not an object "
                "(got %s, expected an object of strings)", tpj_json_kind_name(meta->kind));
  for (size_t i = 0; i < meta->count; ++i) {
    if (meta->items[i]->kind != TPJ_JSON_STRING) {
      char key[96];
      quote_name(meta->keys[i], meta->key_lens[i], key, sizeof(key));
      return TPJ_STATUS(INVALID_ARGUMENT, "safetensors: __metadata__ %s: expected a string "
                        "(got %s)", key, tpj_json_kind_name(meta->items[i]->kind));
    }
  }
  return NULL;
}

/* The tensor object holds exactly dtype, shape and data_offsets. */
static tpj_status_t check_fields(const tpj_json_t* obj, const char* qname) {
  static const char* const kFields[] = {"dtype", "shape", "data_offsets"};
  TPJ_CHECK_ARG(obj->kind == TPJ_JSON_OBJECT, "safetensors: tensor %s: expected an object "
                "(got %s)", qname, tpj_json_kind_name(obj->kind));
  for (size_t i = 0; i < obj->count; ++i) {
    bool known = false;
    for (size_t f = 0; f < 3; ++f) {
      known = known || (obj->key_lens[i] == strlen(kFields[f]) &&
                        memcmp(obj->keys[i], kFields[f], obj->key_lens[i]) == 0);
    }
    if (!known) {
      char key[96];
      quote_name(obj->keys[i], obj->key_lens[i], key, sizeof(key));
      return TPJ_STATUS(INVALID_ARGUMENT, "safetensors: tensor %s: unexpected field %s "
                        "(expected only dtype, shape, data_offsets)", qname, key);
    }
  }
  for (size_t f = 0; f < 3; ++f) {
    TPJ_CHECK_ARG(tpj_json_get(obj, kFields[f]), "safetensors: tensor %s: missing field "
                  "\"%s\"", qname, kFields[f]);
  }
  return NULL;
}

static tpj_status_t parse_dtype(const tpj_json_t* obj, const char* qname,
                                tpj_dtype_t* out_dtype) {
  char what[160];
  snprintf(what, sizeof(what), "safetensors: tensor %s: dtype", qname);
  const char* name = NULL;
  TPJ_RETURN_IF_ERROR(tpj_json_str(tpj_json_get(obj, "dtype"), what, &name));
  tpj_dtype_t dtype = tpj_dtype_from_safetensors(name);
  if (dtype != TPJ_DTYPE_INVALID) {
    *out_dtype = dtype;
    return NULL;
  }
  char known[160];
  size_t o = 0;
  known[0] = 0;
  for (int d = TPJ_DTYPE_INVALID + 1; d < TPJ_DTYPE_COUNT_ && o < sizeof(known); ++d) {
    const char* spelled = tpj_dtype_safetensors_name((tpj_dtype_t)d);
    if (spelled) o += (size_t)snprintf(known + o, sizeof(known) - o, "%s%s", o ? ", " : "",
                                       spelled);
  }
  char quoted[96];
  quote_name(name, strlen(name), quoted, sizeof(quoted));
  return TPJ_STATUS(INVALID_ARGUMENT, "safetensors: tensor %s: unknown dtype %s (expected "
                    "one of %s)", qname, quoted, known);
}

static tpj_status_t parse_shape(const tpj_json_t* obj, const char* qname,
                                tpj_safetensor_t* t) {
  char what[160];
  snprintf(what, sizeof(what), "safetensors: tensor %s: shape", qname);
  const tpj_json_t* shape = tpj_json_get(obj, "shape");
  TPJ_RETURN_IF_ERROR(tpj_json_expect(shape, TPJ_JSON_ARRAY, what));
  TPJ_CHECK_ARG(shape->count <= TPJ_MAX_RANK, "%s: rank too large (got %zu, expected at "
                "most %d)", what, shape->count, TPJ_MAX_RANK);
  for (size_t i = 0; i < shape->count; ++i) {
    snprintf(what, sizeof(what), "safetensors: tensor %s: shape[%zu]", qname, i);
    TPJ_RETURN_IF_ERROR(tpj_json_int(shape->items[i], 0, INT64_MAX, what, &t->dims[i]));
  }
  t->rank = (int32_t)shape->count;
  return NULL;
}

static tpj_status_t parse_offsets(const tpj_json_t* obj, const char* qname, size_t buf_len,
                                  st_range_t* out_range) {
  char what[160];
  snprintf(what, sizeof(what), "safetensors: tensor %s: data_offsets", qname);
  const tpj_json_t* offs = tpj_json_get(obj, "data_offsets");
  TPJ_RETURN_IF_ERROR(tpj_json_expect(offs, TPJ_JSON_ARRAY, what));
  TPJ_CHECK_ARG(offs->count == 2, "%s: expected [begin, end] (got %zu items)", what,
                offs->count);
  int64_t v[2];
  for (size_t i = 0; i < 2; ++i) {
    snprintf(what, sizeof(what), "safetensors: tensor %s: data_offsets[%zu]", qname, i);
    TPJ_RETURN_IF_ERROR(tpj_json_int(offs->items[i], 0, INT64_MAX, what, &v[i]));
  }
  TPJ_CHECK_ARG(v[0] <= v[1], "safetensors: tensor %s: data_offsets [%lld, %lld] run "
                "backwards (expected begin <= end)", qname, (long long)v[0], (long long)v[1]);
  TPJ_CHECK_ARG((uint64_t)v[1] <= (uint64_t)buf_len, "safetensors: tensor %s: data_offsets "
                "[%lld, %lld] end past the buffer (got end %lld, expected at most %zu)", qname,
                (long long)v[0], (long long)v[1], (long long)v[1], buf_len);
  out_range->begin = (uint64_t)v[0];
  out_range->end = (uint64_t)v[1];
  return NULL;
}

/* dtype size x element count, without overflow, must equal the range. The
 * product of the non-zero dims must fit in int64 even when a dim is zero, so
 * no later element count overflows. */
static tpj_status_t check_size(const tpj_safetensor_t* t, const char* qname,
                               const st_range_t* r) {
  char shape[200];
  format_shape(t->dims, t->rank, shape, sizeof(shape));
  const char* dname = tpj_dtype_safetensors_name(t->dtype);
  uint64_t bytes = tpj_dtype_size(t->dtype);
  bool empty = false;
  for (int32_t i = 0; i < t->rank; ++i) {
    uint64_t d = (uint64_t)t->dims[i];
    if (d == 0) {
      empty = true;
      continue;
    }
    TPJ_CHECK_ARG(bytes <= (uint64_t)INT64_MAX / d, "safetensors: tensor %s: %s %s is too "
                  "large (expected at most %lld bytes)", qname, dname, shape,
                  (long long)INT64_MAX);
    bytes *= d;
  }
  if (empty) bytes = 0;
  uint64_t held = r->end - r->begin;
  TPJ_CHECK_ARG(held == bytes, "safetensors: tensor %s: data_offsets [%llu, %llu] hold %llu "
                "bytes (expected %llu for %s %s)", qname, (unsigned long long)r->begin,
                (unsigned long long)r->end, (unsigned long long)held,
                (unsigned long long)bytes, dname, shape);
  return NULL;
}

/* Checks one header entry and fills in *t (data excepted) and *range. */
static tpj_status_t parse_tensor(const char* name, size_t name_len, const tpj_json_t* obj,
                                 size_t buf_len, tpj_safetensor_t* t, st_range_t* range) {
  char qname[96];
  quote_name(name, name_len, qname, sizeof(qname));
  TPJ_CHECK_ARG(name_len > 0, "safetensors: tensor name is empty (expected a non-empty "
                "name)");
  TPJ_CHECK_ARG(!memchr(name, 0, name_len), "safetensors: tensor %s: name holds a NUL byte",
                qname);
  TPJ_RETURN_IF_ERROR(check_fields(obj, qname));
  TPJ_RETURN_IF_ERROR(parse_dtype(obj, qname, &t->dtype));
  TPJ_RETURN_IF_ERROR(parse_shape(obj, qname, t));
  TPJ_RETURN_IF_ERROR(parse_offsets(obj, qname, buf_len, range));
  TPJ_RETURN_IF_ERROR(check_size(t, qname, range));
  t->name = name;
  t->nbytes = (size_t)(range->end - range->begin);
  return NULL;
}

static int compare_ranges(const void* a, const void* b) {
  const st_range_t* x = (const st_range_t*)a;
  const st_range_t* y = (const st_range_t*)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return x->index < y->index ? -1 : x->index > y->index;
}

/* Sorted by begin, the ranges must tile [0, buf_len) exactly. Sorts `ranges`. */
static tpj_status_t check_coverage(const tpj_safetensor_t* tensors, st_range_t* ranges,
                                   size_t count, size_t buf_len) {
  if (count > 1) qsort(ranges, count, sizeof(st_range_t), compare_ranges);
  uint64_t cursor = 0;
  const st_range_t* prev = NULL;
  char a[96], b[96];
  for (size_t i = 0; i < count; ++i) {
    const st_range_t* r = &ranges[i];
    const tpj_safetensor_t* t = &tensors[r->index];
    quote_name(t->name, strlen(t->name), a, sizeof(a));
    if (r->begin < cursor) {
      const tpj_safetensor_t* pt = &tensors[prev->index];
      quote_name(pt->name, strlen(pt->name), b, sizeof(b));
      return TPJ_STATUS(INVALID_ARGUMENT, "safetensors: tensor %s: data_offsets [%llu, %llu] "
                        "overlap tensor %s [%llu, %llu]", a, (unsigned long long)r->begin,
                        (unsigned long long)r->end, b, (unsigned long long)prev->begin,
                        (unsigned long long)prev->end);
    }
    TPJ_CHECK_ARG(r->begin == cursor, "safetensors: bytes [%llu, %llu) of the buffer belong "
                  "to no tensor (got tensor %s at %llu, expected one at %llu)",
                  (unsigned long long)cursor, (unsigned long long)r->begin, a,
                  (unsigned long long)r->begin, (unsigned long long)cursor);
    prev = r; /* tiled so far, so only the last range can overlap the next */
    cursor = r->end;
  }
  TPJ_CHECK_ARG(cursor == (uint64_t)buf_len, "safetensors: bytes [%llu, %zu) of the buffer "
                "belong to no tensor (got a buffer of %zu bytes, expected %llu)",
                (unsigned long long)cursor, buf_len, buf_len, (unsigned long long)cursor);
  return NULL;
}

/* Parses every tensor entry of the header and checks their ranges together. */
static tpj_status_t parse_entries(const tpj_json_t* root, const uint8_t* buf, size_t buf_len,
                                  tpj_arena_t* arena, tpj_safetensors_t* out) {
  size_t count = root->count - (out->metadata ? 1 : 0);
  if (count == 0) return check_coverage(NULL, NULL, 0, buf_len);
  TPJ_CHECK_ARG(count <= SIZE_MAX / sizeof(tpj_safetensor_t), "safetensors: too many "
                "tensors (got %zu)", count);
  tpj_safetensor_t* tensors = (tpj_safetensor_t*)tpj_arena_alloc(
      arena, count * sizeof(tpj_safetensor_t));
  st_range_t* ranges = (st_range_t*)malloc(count * sizeof(st_range_t));
  if (!tensors || !ranges) {
    free(ranges);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "safetensors: out of memory for %zu tensors",
                      count);
  }
  tpj_status_t s = NULL;
  size_t n = 0;
  for (size_t i = 0; i < root->count && !s; ++i) {
    if (!strcmp(root->keys[i], "__metadata__") && root->key_lens[i] == 12) continue;
    ranges[n].index = n;
    s = parse_tensor(root->keys[i], root->key_lens[i], root->items[i], buf_len, &tensors[n],
                     &ranges[n]);
    if (!s) tensors[n].data = buf + ranges[n].begin;
    ++n;
  }
  if (!s) s = check_coverage(tensors, ranges, count, buf_len);
  free(ranges);
  if (s) return s;
  out->tensors = tensors;
  out->count = count;
  return NULL;
}

tpj_status_t tpj_safetensors_parse(const uint8_t* bytes, size_t len, tpj_arena_t* arena,
                                   tpj_safetensors_t* out) {
  TPJ_CHECK_ARG(out, "safetensors: out is NULL");
  memset(out, 0, sizeof(*out));
  TPJ_CHECK_ARG(arena, "safetensors: arena is NULL");
  TPJ_CHECK_ARG(bytes || len == 0, "safetensors: bytes is NULL (got %zu bytes)", len);
  tpj_json_t* root = NULL;
  const uint8_t* buf = NULL;
  size_t buf_len = 0;
  TPJ_RETURN_IF_ERROR(read_header(bytes, len, arena, &root, &buf, &buf_len));
  const tpj_json_t* meta = tpj_json_get(root, "__metadata__");
  if (meta) TPJ_RETURN_IF_ERROR(check_metadata(meta));
  out->metadata = meta;
  tpj_status_t s = parse_entries(root, buf, buf_len, arena, out);
  if (s) memset(out, 0, sizeof(*out));
  return s;
}

const tpj_safetensor_t* tpj_safetensors_find(const tpj_safetensors_t* st, const char* name) {
  if (!st || !name) return NULL;
  for (size_t i = 0; i < st->count; ++i) {
    if (!strcmp(st->tensors[i].name, name)) return &st->tensors[i];
  }
  return NULL;
}
