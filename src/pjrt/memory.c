/* memory.c: device memory as the plugin reports it (PJRT_Device_MemoryStats).
 * The eager runtime combines this with its own count of live buffers for
 * torch.pjrt.memory_stats / mem_get_info and the early out-of-memory check.
 */
#include <string.h>

#include "pjrt/pjrt_internal.h"

static int64_t set_or_unknown(bool is_set, int64_t value) { return is_set ? value : -1; }

tpj_status_t tpj_client_device_memory(const tpj_client_t* client, size_t index,
                                      tpj_device_memory_t* out_memory) {
  TPJ_CHECK_ARG(client && out_memory, "device memory stats: client or out_memory is NULL");
  TPJ_CHECK_ARG(index < client->num_addressable,
                "device memory stats: device index out of range (got %zu, expected < %zu)",
                index, client->num_addressable);
  memset(out_memory, 0xff, sizeof(*out_memory)); /* every field -1 */
  PJRT_Device_MemoryStats_Args a = PJRT_ARGS(PJRT_Device_MemoryStats_Args);
  a.device = client->devices[index].device;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(client->plugin, Device_MemoryStats, &a));
  out_memory->bytes_in_use = a.bytes_in_use;
  out_memory->peak_bytes_in_use = set_or_unknown(a.peak_bytes_in_use_is_set, a.peak_bytes_in_use);
  out_memory->num_allocs = set_or_unknown(a.num_allocs_is_set, a.num_allocs);
  out_memory->largest_alloc_size =
      set_or_unknown(a.largest_alloc_size_is_set, a.largest_alloc_size);
  out_memory->bytes_limit = set_or_unknown(a.bytes_limit_is_set, a.bytes_limit);
  out_memory->bytes_reserved = set_or_unknown(a.bytes_reserved_is_set, a.bytes_reserved);
  out_memory->peak_bytes_reserved =
      set_or_unknown(a.peak_bytes_reserved_is_set, a.peak_bytes_reserved);
  return NULL;
}
