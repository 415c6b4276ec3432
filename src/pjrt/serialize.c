/* serialize.c: turning a compiled executable into plugin-specific bytes and
 * loading such bytes back (PJRT_Executable_Serialize, slot 49, and
 * PJRT_Executable_DeserializeAndLoad, slot 56). The persistent compile cache
 * (src/cache/disk_cache.c) is built on these two calls.
 */
#include <stdlib.h>
#include <string.h>

#include "pjrt/pjrt_internal.h"

bool tpj_executable_serialization_supported(const tpj_client_t* client) {
  if (!client || !client->plugin) return false;
  void* fn = NULL;
  tpj_status_t st = tpj_pjrt_fn(client->plugin, PJRT_SLOT_Executable_Serialize,
                                "PJRT_Executable_Serialize", &fn);
  if (!st) {
    st = tpj_pjrt_fn(client->plugin, PJRT_SLOT_Executable_DeserializeAndLoad,
                     "PJRT_Executable_DeserializeAndLoad", &fn);
  }
  if (!st) return true;
  TPJ_LOG(DEBUG, "executable serialization unavailable: %s", tpj_status_message(st));
  tpj_status_free(st);
  return false;
}

tpj_status_t tpj_executable_serialize(tpj_executable_t* executable, uint8_t** out_bytes,
                                      size_t* out_len) {
  TPJ_CHECK_ARG(executable && out_bytes && out_len,
                "tpj_executable_serialize: NULL argument");
  *out_bytes = NULL;
  *out_len = 0;
  PJRT_Executable_Serialize_Args a = PJRT_ARGS(PJRT_Executable_Serialize_Args);
  a.executable = executable->executable;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(executable->client->plugin, Executable_Serialize, &a));
  tpj_status_t st = NULL;
  uint8_t* copy = NULL;
  if (!a.serialized_bytes && a.serialized_bytes_size > 0) {
    st = TPJ_STATUS(INTERNAL, "PJRT_Executable_Serialize: plugin returned NULL bytes "
                    "(got size %zu)", a.serialized_bytes_size);
  } else {
    copy = (uint8_t*)malloc(a.serialized_bytes_size ? a.serialized_bytes_size : 1);
    if (!copy) {
      st = TPJ_STATUS(RESOURCE_EXHAUSTED, "tpj_executable_serialize: out of memory "
                      "copying %zu bytes", a.serialized_bytes_size);
    } else if (a.serialized_bytes_size) {
      memcpy(copy, a.serialized_bytes, a.serialized_bytes_size);
    }
  }
  /* The plugin's backing memory is freed exactly once, on every path. */
  if (a.serialized_executable_deleter) a.serialized_executable_deleter(a.serialized_executable);
  if (st) {
    free(copy);
    return st;
  }
  *out_bytes = copy;
  *out_len = a.serialized_bytes_size;
  return NULL;
}

tpj_status_t tpj_executable_deserialize(tpj_client_t* client, const uint8_t* bytes,
                                        size_t len, tpj_executable_t** out_executable) {
  TPJ_CHECK_ARG(client && (bytes || len == 0) && out_executable,
                "tpj_executable_deserialize: NULL argument");
  *out_executable = NULL;
  TPJ_CHECK_ARG(len > 0, "tpj_executable_deserialize: empty input (got 0 bytes)");
  tpj_executable_t* e = (tpj_executable_t*)calloc(1, sizeof(*e));
  if (!e) return TPJ_STATUS(RESOURCE_EXHAUSTED, "tpj_executable_deserialize: out of memory");
  e->client = client;
  PJRT_Executable_DeserializeAndLoad_Args a =
      PJRT_ARGS(PJRT_Executable_DeserializeAndLoad_Args);
  a.client = client->client;
  a.serialized_executable = (const char*)bytes;
  a.serialized_executable_size = len;
  tpj_status_t st = TPJ_PJRT_CALL(client->plugin, Executable_DeserializeAndLoad, &a);
  e->loaded = a.loaded_executable;
  if (!st) st = tpj_executable_read_info(e);
  if (st) {
    tpj_executable_destroy(e);
    return st;
  }
  *out_executable = e;
  return NULL;
}
