/* buffer.c: device buffers. Host <-> device transfers (dense row-major), copies
 * between devices, and cached metadata (dtype, dims, device index) so that
 * accessors need no plugin call. Where a buffer provably is dense row-major
 * host memory (CPU plugins), device-to-host is a wait plus memcpy.
 */
#include <stdlib.h>
#include <string.h>

#include "pjrt/pjrt_internal.h"

/* Bytes per element by tpj_dtype_t / PJRT_Buffer_Type number (0 = unsupported). */
static const size_t kItemSize[TPJ_DTYPE_COUNT_] = {
    0, 1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 2, 8, 16,
};

static size_t item_size(tpj_dtype_t dtype) {
  return (dtype > 0 && dtype < TPJ_DTYPE_COUNT_) ? kItemSize[dtype] : 0;
}

static tpj_status_t dense_size(tpj_dtype_t dtype, const int64_t* dims, size_t rank,
                               size_t* out_bytes) {
  size_t n = item_size(dtype);
  if (!n) return TPJ_STATUS(INVALID_ARGUMENT, "buffer dtype unsupported (got %d)", (int)dtype);
  for (size_t i = 0; i < rank; ++i) {
    if (dims[i] < 0) {
      return TPJ_STATUS(INVALID_ARGUMENT, "buffer dim %zu is negative (got %lld)", i,
                        (long long)dims[i]);
    }
    if (dims[i] && n > SIZE_MAX / (size_t)dims[i]) {
      return TPJ_STATUS(INVALID_ARGUMENT, "buffer size overflows (dim %zu = %lld)", i,
                        (long long)dims[i]);
    }
    n *= (size_t)dims[i];
  }
  *out_bytes = n;
  return NULL;
}

void tpj_pjrt_buffer_destroy_raw(const tpj_plugin_t* plugin, PJRT_Buffer* buffer) {
  if (!buffer) return;
  PJRT_Buffer_Args a = PJRT_ARGS(PJRT_Buffer_Args);
  a.buffer = buffer;
  tpj_status_t st = TPJ_PJRT_CALL(plugin, Buffer_Destroy, &a);
  if (st) TPJ_LOG(WARNING, "%s", tpj_status_message(st));
  tpj_status_free(st);
}

static tpj_status_t read_metadata(tpj_buffer_t* b) {
  tpj_plugin_t* p = b->client->plugin;
  PJRT_Buffer_ElementType_Args t = PJRT_ARGS(PJRT_Buffer_ElementType_Args);
  t.buffer = b->buffer;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(p, Buffer_ElementType, &t));
  b->dtype = (tpj_dtype_t)t.type;
  PJRT_Buffer_Dimensions_Args d = PJRT_ARGS(PJRT_Buffer_Dimensions_Args);
  d.buffer = b->buffer;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(p, Buffer_Dimensions, &d));
  if (d.num_dims > TPJ_MAX_RANK) {
    return TPJ_STATUS(UNIMPLEMENTED, "buffer rank too large (got %zu, expected <= %d)",
                      d.num_dims, TPJ_MAX_RANK);
  }
  b->rank = d.num_dims;
  if (d.num_dims) memcpy(b->dims, d.dims, d.num_dims * sizeof(int64_t));
  PJRT_Buffer_Device_Args dev = PJRT_ARGS(PJRT_Buffer_Device_Args);
  dev.buffer = b->buffer;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(p, Buffer_Device, &dev));
  b->device_index = tpj_client_device_index(b->client, dev.device);
  if (b->device_index == SIZE_MAX) {
    return TPJ_STATUS(INTERNAL, "buffer is on a device the client does not address");
  }
  return NULL;
}

tpj_status_t tpj_buffer_wrap(tpj_client_t* client, PJRT_Buffer* raw,
                             tpj_buffer_t** out_buffer) {
  *out_buffer = NULL;
  tpj_buffer_t* b = (tpj_buffer_t*)calloc(1, sizeof(*b));
  if (!b) {
    tpj_pjrt_buffer_destroy_raw(client->plugin, raw);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "buffer: out of memory");
  }
  b->client = client;
  b->buffer = raw;
  tpj_status_t st = read_metadata(b);
  if (st) {
    tpj_buffer_destroy(b);
    return st;
  }
  *out_buffer = b;
  return NULL;
}

static tpj_status_t from_host_raw(tpj_client_t* c, const void* data, tpj_dtype_t dtype,
                                  const int64_t* dims, size_t rank, PJRT_Device* device,
                                  PJRT_HostBufferSemantics semantics, PJRT_Buffer** out) {
  PJRT_Client_BufferFromHostBuffer_Args a = PJRT_ARGS(PJRT_Client_BufferFromHostBuffer_Args);
  a.client = c->client;
  a.data = data;
  a.type = (int)dtype;
  a.dims = dims;
  a.num_dims = rank;
  a.host_buffer_semantics = semantics;
  a.device = device;
  tpj_status_t st = TPJ_PJRT_CALL(c->plugin, Client_BufferFromHostBuffer, &a);
  if (st) { /* a misbehaving plugin may still have produced objects */
    tpj_pjrt_event_destroy_raw(c->plugin, a.done_with_host_buffer);
    tpj_pjrt_buffer_destroy_raw(c->plugin, a.buffer);
    return st;
  }
  if (semantics == PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes) {
    st = tpj_pjrt_event_await_raw(c->plugin, a.done_with_host_buffer,
                                  "waiting for the host-to-device copy");
  } else { /* zero-copy: the event fires when the buffer dies; nobody waits */
    tpj_pjrt_event_destroy_raw(c->plugin, a.done_with_host_buffer);
  }
  if (st) {
    tpj_pjrt_buffer_destroy_raw(c->plugin, a.buffer);
    return st;
  }
  if (!a.buffer) return TPJ_STATUS(INTERNAL, "PJRT_Client_BufferFromHostBuffer returned no buffer");
  *out = a.buffer;
  return NULL;
}

tpj_status_t tpj_buffer_from_host(tpj_client_t* client, const void* data,
                                  tpj_dtype_t dtype, const int64_t* dims, size_t rank,
                                  size_t device_index, tpj_host_semantics_t semantics,
                                  tpj_buffer_t** out_buffer) {
  TPJ_CHECK_ARG(client && out_buffer, "tpj_buffer_from_host: client or out_buffer is NULL");
  *out_buffer = NULL;
  TPJ_CHECK_ARG(dims || rank == 0, "tpj_buffer_from_host: dims is NULL");
  TPJ_CHECK_ARG(rank <= TPJ_MAX_RANK, "buffer rank too large (got %zu, expected <= %d)",
                rank, TPJ_MAX_RANK);
  TPJ_CHECK_ARG(device_index < client->num_addressable,
                "buffer device index out of range (got %zu, expected < %zu)", device_index,
                client->num_addressable);
  size_t nbytes = 0;
  TPJ_RETURN_IF_ERROR(dense_size(dtype, dims, rank, &nbytes));
  TPJ_CHECK_ARG(data || nbytes == 0, "tpj_buffer_from_host: data is NULL");
  PJRT_Device* device = client->devices[device_index].device;
  PJRT_Buffer* raw = NULL;
  tpj_status_t st = NULL;
  if (semantics == TPJ_HOST_SEMANTICS_ZERO_COPY) {
    st = from_host_raw(client, data, dtype, dims, rank, device,
                       PJRT_HostBufferSemantics_kImmutableZeroCopy, &raw);
    tpj_status_code_t code = tpj_status_code(st);
    if (code == TPJ_STATUS_UNIMPLEMENTED || code == TPJ_STATUS_INVALID_ARGUMENT) {
      TPJ_LOG(DEBUG, "zero-copy refused, copying: %s", tpj_status_message(st));
      tpj_status_free(st);
      st = NULL;
      raw = NULL;
    }
    if (st) return st;
  }
  if (!raw) {
    TPJ_RETURN_IF_ERROR(from_host_raw(client, data, dtype, dims, rank, device,
                                      PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes,
                                      &raw));
  }
  return tpj_buffer_wrap(client, raw, out_buffer);
}

/* Checks dst against the buffer; *out_bytes = numel * itemsize. */
static tpj_status_t check_to_host(const tpj_buffer_t* b, const void* dst, size_t dst_size,
                                  size_t* out_bytes) {
  size_t nbytes = 0;
  TPJ_RETURN_IF_ERROR(dense_size(b->dtype, b->dims, b->rank, &nbytes));
  TPJ_CHECK_ARG(dst_size == nbytes,
                "buffer to host: dst_size does not match the buffer (got %zu, expected %zu)",
                dst_size, nbytes);
  TPJ_CHECK_ARG(dst || nbytes == 0, "buffer to host: dst is NULL");
  *out_bytes = nbytes;
  return NULL;
}

/* Ignores a failed probe: the fast path is then simply not taken. */
static bool probe_ok(tpj_status_t st) {
  if (!st) return true;
  TPJ_LOG(DEBUG, "host fast path off: %s", tpj_status_message(st));
  tpj_status_free(st);
  return false;
}

/* True when the plugin reports the descending (row-major) tiled layout with
 * no tiles; anything else (strides, tiles, permutations, no answer) is false. */
static bool layout_is_row_major(const tpj_buffer_t* b) {
  PJRT_Buffer_GetMemoryLayout_Args a = PJRT_ARGS(PJRT_Buffer_GetMemoryLayout_Args);
  a.buffer = b->buffer;
  a.layout.struct_size = sizeof(a.layout);
  if (!probe_ok(TPJ_PJRT_CALL(b->client->plugin, Buffer_GetMemoryLayout, &a))) return false;
  const PJRT_Buffer_MemoryLayout_Tiled* t = &a.layout.tiled;
  if (a.layout.type != PJRT_Buffer_MemoryLayout_Type_Tiled || t->num_tiles != 0 ||
      t->minor_to_major_size != b->rank || (b->rank && !t->minor_to_major)) {
    TPJ_LOG(DEBUG, "host fast path off: layout is not plain tiled (type %d, %zu tiles)",
            (int)a.layout.type, t->num_tiles);
    return false;
  }
  for (size_t i = 0; i < b->rank; ++i) {
    if (t->minor_to_major[i] != (int64_t)(b->rank - 1 - i)) {
      TPJ_LOG(DEBUG, "host fast path off: minor_to_major[%zu] is %lld, not row-major", i,
              (long long)t->minor_to_major[i]);
      return false;
    }
  }
  return true;
}

/* Whether the buffer's bytes are host memory holding exactly the dense
 * row-major image of nbytes: on CPU, UnsafePointer and ReadyEvent present,
 * default layout, on-device size == nbytes. Cached per buffer. All supported
 * dtypes (kItemSize) are whole bytes with the same host and device encoding. */
static bool host_direct(tpj_buffer_t* b, size_t nbytes) {
  int known = b->host_direct;
  if (known) return known > 0;
  tpj_plugin_t* p = b->client->plugin;
  void* fn = NULL;
  bool ok = nbytes > 0 &&
            probe_ok(tpj_pjrt_fn(p, PJRT_SLOT_Buffer_UnsafePointer, "PJRT_Buffer_UnsafePointer",
                                 &fn)) &&
            probe_ok(tpj_pjrt_fn(p, PJRT_SLOT_Buffer_ReadyEvent, "PJRT_Buffer_ReadyEvent", &fn));
  if (ok) {
    PJRT_Buffer_IsOnCpu_Args c = PJRT_ARGS(PJRT_Buffer_IsOnCpu_Args);
    c.buffer = b->buffer;
    ok = probe_ok(TPJ_PJRT_CALL(p, Buffer_IsOnCpu, &c)) && c.is_on_cpu;
  }
  ok = ok && layout_is_row_major(b);
  if (ok) {
    size_t dev_size = 0;
    ok = probe_ok(tpj_buffer_on_device_size(b, &dev_size)) && dev_size == nbytes;
  }
  b->host_direct = ok ? 1 : -1;
  return ok;
}

/* The fast path: wait until the buffer is computed, then memcpy its bytes.
 * The caller must not delete or donate the buffer during the copy. */
static tpj_status_t to_host_direct(tpj_buffer_t* b, void* dst, size_t nbytes) {
  tpj_plugin_t* p = b->client->plugin;
  PJRT_Buffer_ReadyEvent_Args r = PJRT_ARGS(PJRT_Buffer_ReadyEvent_Args);
  r.buffer = b->buffer;
  tpj_status_t st = TPJ_PJRT_CALL(p, Buffer_ReadyEvent, &r);
  if (st) {
    tpj_pjrt_event_destroy_raw(p, r.event);
    return tpj_status_annotate(st, "copying a buffer to host");
  }
  TPJ_RETURN_IF_ERROR(tpj_pjrt_event_await_raw(
      p, r.event, "copying a buffer to host: waiting for its contents"));
  PJRT_Buffer_UnsafePointer_Args u = PJRT_ARGS(PJRT_Buffer_UnsafePointer_Args);
  u.buffer = b->buffer;
  st = TPJ_PJRT_CALL(p, Buffer_UnsafePointer, &u);
  if (st) return tpj_status_annotate(st, "copying a buffer to host");
  if (!u.buffer_pointer) {
    return TPJ_STATUS(INTERNAL, "copying a buffer to host: PJRT_Buffer_UnsafePointer "
                      "returned NULL for a %zu-byte buffer", nbytes);
  }
  memcpy(dst, (const void*)u.buffer_pointer, nbytes);
  return NULL;
}

tpj_status_t tpj_buffer_to_host_async(tpj_buffer_t* b, void* dst, size_t dst_size,
                                      tpj_event_t** out_event) {
  TPJ_CHECK_ARG(b && out_event, "tpj_buffer_to_host_async: buffer or out_event is NULL");
  *out_event = NULL;
  size_t nbytes = 0;
  TPJ_RETURN_IF_ERROR(check_to_host(b, dst, dst_size, &nbytes));
  if (host_direct(b, nbytes)) { /* copied now; the event is born ready */
    TPJ_RETURN_IF_ERROR(to_host_direct(b, dst, nbytes));
    return tpj_event_wrap(b->client->plugin, NULL, out_event);
  }
  PJRT_Buffer_ToHostBuffer_Args a = PJRT_ARGS(PJRT_Buffer_ToHostBuffer_Args);
  a.src = b->buffer;
  a.dst = dst;
  a.dst_size = dst_size;
  tpj_status_t st = TPJ_PJRT_CALL(b->client->plugin, Buffer_ToHostBuffer, &a);
  if (st) {
    tpj_pjrt_event_destroy_raw(b->client->plugin, a.event);
    return st;
  }
  return tpj_event_wrap(b->client->plugin, a.event, out_event);
}

tpj_status_t tpj_buffer_to_host(tpj_buffer_t* b, void* dst, size_t dst_size) {
  TPJ_CHECK_ARG(b, "tpj_buffer_to_host: buffer is NULL");
  size_t nbytes = 0;
  TPJ_RETURN_IF_ERROR(check_to_host(b, dst, dst_size, &nbytes));
  if (host_direct(b, nbytes)) return to_host_direct(b, dst, nbytes);
  tpj_event_t* event = NULL;
  TPJ_RETURN_IF_ERROR(tpj_buffer_to_host_async(b, dst, dst_size, &event));
  tpj_status_t st = tpj_event_await(event);
  tpj_event_destroy(event);
  return st ? tpj_status_annotate(st, "copying a buffer to host") : NULL;
}

tpj_status_t tpj_buffer_copy_to_device(tpj_buffer_t* b, size_t device_index,
                                       tpj_buffer_t** out_buffer) {
  TPJ_CHECK_ARG(b && out_buffer, "tpj_buffer_copy_to_device: buffer or out_buffer is NULL");
  *out_buffer = NULL;
  TPJ_CHECK_ARG(device_index < b->client->num_addressable,
                "copy to device: index out of range (got %zu, expected < %zu)", device_index,
                b->client->num_addressable);
  PJRT_Buffer_CopyToDevice_Args a = PJRT_ARGS(PJRT_Buffer_CopyToDevice_Args);
  a.buffer = b->buffer;
  a.dst_device = b->client->devices[device_index].device;
  tpj_status_t st = TPJ_PJRT_CALL(b->client->plugin, Buffer_CopyToDevice, &a);
  if (st) {
    tpj_pjrt_buffer_destroy_raw(b->client->plugin, a.dst_buffer);
    return st;
  }
  return tpj_buffer_wrap(b->client, a.dst_buffer, out_buffer);
}

tpj_status_t tpj_buffer_await(tpj_buffer_t* b) {
  TPJ_CHECK_ARG(b, "tpj_buffer_await: buffer is NULL");
  PJRT_Buffer_ReadyEvent_Args a = PJRT_ARGS(PJRT_Buffer_ReadyEvent_Args);
  a.buffer = b->buffer;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(b->client->plugin, Buffer_ReadyEvent, &a));
  return tpj_pjrt_event_await_raw(b->client->plugin, a.event, "waiting for a buffer");
}

tpj_status_t tpj_buffer_ready_event(tpj_buffer_t* b, tpj_event_t** out_event) {
  TPJ_CHECK_ARG(b && out_event, "tpj_buffer_ready_event: buffer or out_event is NULL");
  *out_event = NULL;
  PJRT_Buffer_ReadyEvent_Args a = PJRT_ARGS(PJRT_Buffer_ReadyEvent_Args);
  a.buffer = b->buffer;
  tpj_status_t st = TPJ_PJRT_CALL(b->client->plugin, Buffer_ReadyEvent, &a);
  if (st) {
    tpj_pjrt_event_destroy_raw(b->client->plugin, a.event);
    return tpj_status_annotate(st, "asking for a buffer's ready event");
  }
  return tpj_event_wrap(b->client->plugin, a.event, out_event);
}

tpj_dtype_t tpj_buffer_dtype(const tpj_buffer_t* b) { return b ? b->dtype : TPJ_DTYPE_INVALID; }
size_t tpj_buffer_rank(const tpj_buffer_t* b) { return b ? b->rank : 0; }
const int64_t* tpj_buffer_dims(const tpj_buffer_t* b) { return b ? b->dims : NULL; }
size_t tpj_buffer_device_index(const tpj_buffer_t* b) { return b ? b->device_index : 0; }

tpj_status_t tpj_buffer_on_device_size(tpj_buffer_t* b, size_t* out_size) {
  TPJ_CHECK_ARG(b && out_size, "tpj_buffer_on_device_size: buffer or out_size is NULL");
  PJRT_Buffer_OnDeviceSizeInBytes_Args a = PJRT_ARGS(PJRT_Buffer_OnDeviceSizeInBytes_Args);
  a.buffer = b->buffer;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(b->client->plugin, Buffer_OnDeviceSizeInBytes, &a));
  *out_size = a.on_device_size_in_bytes;
  return NULL;
}

bool tpj_buffer_is_deleted(tpj_buffer_t* b) {
  if (!b || !b->buffer) return true;
  PJRT_Buffer_IsDeleted_Args a = PJRT_ARGS(PJRT_Buffer_IsDeleted_Args);
  a.buffer = b->buffer;
  tpj_status_t st = TPJ_PJRT_CALL(b->client->plugin, Buffer_IsDeleted, &a);
  if (st) {
    TPJ_LOG(WARNING, "%s", tpj_status_message(st));
    tpj_status_free(st);
    return false;
  }
  return a.is_deleted;
}

void tpj_buffer_destroy(tpj_buffer_t* b) {
  if (!b) return;
  tpj_pjrt_buffer_destroy_raw(b->client->plugin, b->buffer);
  free(b);
}

tpj_status_t tpj_buffer_delete(tpj_buffer_t* b) {
  TPJ_CHECK_ARG(b, "tpj_buffer_delete: buffer is NULL");
  PJRT_Buffer_Args a = PJRT_ARGS(PJRT_Buffer_Args);
  a.buffer = b->buffer;
  return TPJ_PJRT_CALL(b->client->plugin, Buffer_Delete, &a);
}
