/* executable.c: compiling StableHLO text into PJRT executables (with a
 * hand-encoded CompileOptionsProto) and launching them on one or many devices
 * with buffer donation. On any failure no output buffer or event survives.
 */
#include <stdlib.h>
#include <string.h>

#include "pjrt/pjrt_internal.h"

/* ----------------------------------------------------- compile options -- */

static size_t put_varint(uint8_t* out, uint64_t v) {
  size_t n = 0;
  do {
    uint8_t byte = (uint8_t)(v & 0x7f);
    v >>= 7;
    out[n++] = (uint8_t)(byte | (v ? 0x80 : 0));
  } while (v);
  return n;
}

tpj_status_t tpj_compile_options_encode(const tpj_compile_options_t* options,
                                        uint8_t* out, size_t out_capacity,
                                        size_t* out_len) {
  TPJ_CHECK_ARG(options && out && out_len, "tpj_compile_options_encode: NULL argument");
  TPJ_CHECK_ARG(options->num_replicas >= 1, "num_replicas must be >= 1 (got %d)",
                options->num_replicas);
  TPJ_CHECK_ARG(options->num_partitions >= 1, "num_partitions must be >= 1 (got %d)",
                options->num_partitions);
  TPJ_CHECK_ARG(!options->portable || (options->num_replicas == 1 && options->num_partitions == 1),
                "a portable executable needs one replica and one partition (got %d and %d)",
                options->num_replicas, options->num_partitions);
  /* ExecutableBuildOptionsProto: 4 num_replicas, 5 num_partitions, 6 spmd,
   * 19 use_shardy_partitioner (tag 19<<3 = 152, varint 98 01). */
  uint8_t inner[32];
  size_t n = 0;
  inner[n++] = 0x20;
  n += put_varint(inner + n, (uint64_t)options->num_replicas);
  inner[n++] = 0x28;
  n += put_varint(inner + n, (uint64_t)options->num_partitions);
  if (options->use_spmd_partitioning) {
    inner[n++] = 0x30;
    inner[n++] = 0x01;
  }
  if (options->use_shardy_partitioner) {
    inner[n++] = 0x98;
    inner[n++] = 0x01;
    inner[n++] = 0x01;
  }
  /* CompileOptionsProto field 3 (length-delimited). */
  uint8_t header[12];
  size_t h = 0;
  header[h++] = 0x1a;
  h += put_varint(header + h, n);
  size_t tail = options->portable ? 2 : 0; /* field 4 compile_portable_executable */
  if (h + n + tail > out_capacity) {
    return TPJ_STATUS(OUT_OF_RANGE, "compile options need %zu bytes (capacity %zu)",
                      h + n + tail, out_capacity);
  }
  memcpy(out, header, h);
  memcpy(out + h, inner, n);
  if (tail) {
    out[h + n] = 0x20;
    out[h + n + 1] = 0x01;
  }
  *out_len = h + n + tail;
  return NULL;
}

/* ------------------------------------------------------------- compile -- */

/* The program's temporaries from PJRT's compiled memory stats; -1 where the
 * plugin lacks the call or does not answer (nothing to report then). */
static int64_t read_temp_bytes(tpj_executable_t* e) {
  PJRT_Executable_GetCompiledMemoryStats_Args m =
      PJRT_ARGS(PJRT_Executable_GetCompiledMemoryStats_Args);
  m.executable = e->executable;
  tpj_status_t st = TPJ_PJRT_CALL(e->client->plugin, Executable_GetCompiledMemoryStats, &m);
  if (st) {
    tpj_status_free(st);
    return -1;
  }
  return m.temp_size_in_bytes >= 0 ? m.temp_size_in_bytes : -1;
}

int64_t tpj_executable_temp_bytes(const tpj_executable_t* executable) {
  return executable ? executable->temp_bytes : -1;
}

tpj_status_t tpj_executable_read_info(tpj_executable_t* e) {
  tpj_plugin_t* p = e->client->plugin;
  PJRT_LoadedExecutable_GetExecutable_Args g = PJRT_ARGS(PJRT_LoadedExecutable_GetExecutable_Args);
  g.loaded_executable = e->loaded;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(p, LoadedExecutable_GetExecutable, &g));
  e->executable = g.executable;
  PJRT_Executable_NumOutputs_Args n = PJRT_ARGS(PJRT_Executable_NumOutputs_Args);
  n.executable = e->executable;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(p, Executable_NumOutputs, &n));
  e->num_outputs = n.num_outputs;
  e->temp_bytes = read_temp_bytes(e);
  PJRT_LoadedExecutable_AddressableDevices_Args d =
      PJRT_ARGS(PJRT_LoadedExecutable_AddressableDevices_Args);
  d.executable = e->loaded;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(p, LoadedExecutable_AddressableDevices, &d));
  if (d.num_addressable_devices == 0) {
    /* Portable: no device assignment; it runs on the device execute names. */
    e->device_indices = (size_t*)calloc(1, sizeof(size_t));
    if (!e->device_indices) return TPJ_STATUS(RESOURCE_EXHAUSTED, "executable: out of memory");
    e->num_devices = 1;
    e->portable = true;
    return NULL;
  }
  e->device_indices = (size_t*)calloc(d.num_addressable_devices, sizeof(size_t));
  if (!e->device_indices) return TPJ_STATUS(RESOURCE_EXHAUSTED, "executable: out of memory");
  e->num_devices = d.num_addressable_devices;
  for (size_t i = 0; i < d.num_addressable_devices; ++i) {
    size_t index = tpj_client_device_index(e->client, d.addressable_devices[i]);
    if (index == SIZE_MAX) {
      return TPJ_STATUS(FAILED_PRECONDITION, "executable: device %zu is not addressable by "
                        "this client", i);
    }
    e->device_indices[i] = index;
  }
  return NULL;
}

tpj_status_t tpj_executable_compile(tpj_client_t* client, const char* program,
                                    size_t program_len,
                                    const tpj_compile_options_t* options,
                                    tpj_executable_t** out_executable) {
  TPJ_CHECK_ARG(client && program && out_executable, "tpj_executable_compile: NULL argument");
  *out_executable = NULL;
  static const tpj_compile_options_t kDefault = {1, 1, false, false, false};
  uint8_t encoded[64];
  size_t encoded_len = 0;
  TPJ_RETURN_IF_ERROR(tpj_compile_options_encode(options ? options : &kDefault, encoded,
                                                 sizeof(encoded), &encoded_len));
  tpj_executable_t* e = (tpj_executable_t*)calloc(1, sizeof(*e));
  if (!e) return TPJ_STATUS(RESOURCE_EXHAUSTED, "tpj_executable_compile: out of memory");
  e->client = client;
  PJRT_Program prog = PJRT_ARGS(PJRT_Program);
  prog.code = (char*)program; /* the plugin only reads it */
  prog.code_size = program_len;
  prog.format = "mlir";
  prog.format_size = 4;
  PJRT_Client_Compile_Args a = PJRT_ARGS(PJRT_Client_Compile_Args);
  a.client = client->client;
  a.program = &prog;
  a.compile_options = (const char*)encoded;
  a.compile_options_size = encoded_len;
  tpj_status_t st = TPJ_PJRT_CALL(client->plugin, Client_Compile, &a);
  e->loaded = a.executable;
  if (!st) st = tpj_executable_read_info(e);
  if (st) {
    tpj_executable_destroy(e);
    return st;
  }
  *out_executable = e;
  return NULL;
}

void tpj_executable_destroy(tpj_executable_t* e) {
  if (!e) return;
  tpj_plugin_t* p = e->client->plugin;
  tpj_status_t st = NULL;
  if (e->executable) {
    PJRT_Executable_Args a = PJRT_ARGS(PJRT_Executable_Args);
    a.executable = e->executable;
    st = TPJ_PJRT_CALL(p, Executable_Destroy, &a);
    if (st) TPJ_LOG(WARNING, "%s", tpj_status_message(st));
    tpj_status_free(st);
  }
  if (e->loaded) {
    PJRT_LoadedExecutable_Args a = PJRT_ARGS(PJRT_LoadedExecutable_Args);
    a.executable = e->loaded;
    st = TPJ_PJRT_CALL(p, LoadedExecutable_Destroy, &a);
    if (st) TPJ_LOG(WARNING, "%s", tpj_status_message(st));
    tpj_status_free(st);
  }
  free(e->device_indices);
  free(e);
}

size_t tpj_executable_num_outputs(const tpj_executable_t* e) { return e ? e->num_outputs : 0; }
size_t tpj_executable_num_devices(const tpj_executable_t* e) { return e ? e->num_devices : 0; }
bool tpj_executable_is_portable(const tpj_executable_t* e) { return e && e->portable; }

tpj_client_t* tpj_executable_client(const tpj_executable_t* e) { return e ? e->client : NULL; }

tpj_status_t tpj_executable_output_dtypes(tpj_executable_t* e, tpj_dtype_t* out_dtypes,
                                          size_t count) {
  TPJ_CHECK_ARG(e && (out_dtypes || count == 0), "tpj_executable_output_dtypes: NULL argument");
  PJRT_Executable_OutputElementTypes_Args a = PJRT_ARGS(PJRT_Executable_OutputElementTypes_Args);
  a.executable = e->executable;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(e->client->plugin, Executable_OutputElementTypes, &a));
  TPJ_CHECK_ARG(count == a.num_output_types,
                "output dtypes: count does not match (got %zu, expected %zu)", count,
                a.num_output_types);
  for (size_t i = 0; i < count; ++i) out_dtypes[i] = (tpj_dtype_t)a.output_types[i];
  return NULL;
}
