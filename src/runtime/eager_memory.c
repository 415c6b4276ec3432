/* eager_memory.c: per-device memory accounting of the eager device (bytes of
 * live storages, peaks, out-of-memory count), the free-memory query behind
 * mem_get_info and the early out-of-memory check of large allocations, and
 * the one rule that tells "no lowering" from device errors (out of memory).
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "runtime/eager_internal.h"

typedef struct mem_counts_s {
  uint64_t bytes, peak_bytes, total_bytes, freed_bytes;
  uint64_t count, peak_count, total_count, frees;
  uint64_t ooms;
  uint64_t peak_temp_bytes; /* largest program temporaries launched */
} mem_counts_t;

static pthread_mutex_t g_mem_lock = PTHREAD_MUTEX_INITIALIZER;
static mem_counts_t g_mem[TPJ_EAGER_MAX_DEVICES];

void tpj_eager_memory_count(size_t device, uint64_t nbytes, bool alloc) {
  if (device >= TPJ_EAGER_MAX_DEVICES) return; /* rejected by storage_new */
  pthread_mutex_lock(&g_mem_lock);
  mem_counts_t* m = &g_mem[device];
  if (alloc) {
    m->bytes += nbytes;
    m->total_bytes += nbytes;
    ++m->count;
    ++m->total_count;
    if (m->bytes > m->peak_bytes) m->peak_bytes = m->bytes;
    if (m->count > m->peak_count) m->peak_count = m->count;
  } else {
    m->bytes -= nbytes;
    m->freed_bytes += nbytes;
    --m->count;
    ++m->frees;
  }
  pthread_mutex_unlock(&g_mem_lock);
}

static tpj_status_t check_device(size_t device, const char* what) {
  size_t n = tpj_eager_device_count();
  if (n == 0) return TPJ_STATUS(FAILED_PRECONDITION, "%s: the device is not initialized", what);
  TPJ_CHECK_ARG(device < n && device < TPJ_EAGER_MAX_DEVICES,
                "%s: device index out of range (got %zu, expected < %zu)", what, device, n);
  return NULL;
}

tpj_status_t tpj_eager_memory_stats(size_t device, tpj_eager_memory_stats_t* out) {
  TPJ_CHECK_ARG(out, "memory stats: out_stats is NULL");
  TPJ_RETURN_IF_ERROR(check_device(device, "memory stats"));
  pthread_mutex_lock(&g_mem_lock);
  mem_counts_t m = g_mem[device];
  pthread_mutex_unlock(&g_mem_lock);
  *out = (tpj_eager_memory_stats_t){
      .allocated_bytes = m.bytes, .peak_allocated_bytes = m.peak_bytes,
      .total_allocated_bytes = m.total_bytes, .total_freed_bytes = m.freed_bytes,
      .allocations = m.count, .peak_allocations = m.peak_count,
      .total_allocations = m.total_count, .total_frees = m.frees, .num_ooms = m.ooms,
      .peak_temporary_bytes = m.peak_temp_bytes};
  tpj_status_t st = tpj_client_device_memory(tpj_eager_client(), device, &out->plugin);
  if (tpj_status_code(st) == TPJ_STATUS_UNIMPLEMENTED) {
    tpj_status_free(st); /* the plugin does not report: its fields stay -1 */
    memset(&out->plugin, 0xff, sizeof(out->plugin));
    return NULL;
  }
  return st;
}

void tpj_eager_memory_reset_peak(size_t device) {
  if (device >= TPJ_EAGER_MAX_DEVICES) return;
  pthread_mutex_lock(&g_mem_lock);
  g_mem[device].peak_bytes = g_mem[device].bytes;
  g_mem[device].peak_count = g_mem[device].count;
  g_mem[device].peak_temp_bytes = 0;
  pthread_mutex_unlock(&g_mem_lock);
}

void tpj_eager_memory_reset_accumulated(size_t device) {
  if (device >= TPJ_EAGER_MAX_DEVICES) return;
  pthread_mutex_lock(&g_mem_lock);
  mem_counts_t* m = &g_mem[device];
  m->total_bytes = m->freed_bytes = m->total_count = m->frees = m->ooms = 0;
  pthread_mutex_unlock(&g_mem_lock);
}

tpj_status_t tpj_eager_memory_launch(size_t device, const tpj_executable_t* executable) {
  int64_t temp = tpj_executable_temp_bytes(executable);
  if (temp <= 0 || device >= TPJ_EAGER_MAX_DEVICES) return NULL;
  tpj_status_t st = tpj_eager_memory_check(device, (size_t)temp);
  if (st) {
    tpj_eager_memory_note_oom(device);
    return tpj_status_annotate(st, "temporaries of a program");
  }
  pthread_mutex_lock(&g_mem_lock);
  mem_counts_t* m = &g_mem[device];
  if (m->bytes + (uint64_t)temp > m->peak_bytes) m->peak_bytes = m->bytes + (uint64_t)temp;
  if ((uint64_t)temp > m->peak_temp_bytes) m->peak_temp_bytes = (uint64_t)temp;
  pthread_mutex_unlock(&g_mem_lock);
  return NULL;
}

void tpj_eager_memory_note_oom(size_t device) {
  if (device >= TPJ_EAGER_MAX_DEVICES) return;
  pthread_mutex_lock(&g_mem_lock);
  ++g_mem[device].ooms;
  pthread_mutex_unlock(&g_mem_lock);
}

/* The value of a "Key:  N kB" line of /proc/meminfo in bytes, or 0. */
static uint64_t meminfo_bytes(const char* key) {
  FILE* f = fopen("/proc/meminfo", "r");
  if (!f) return 0;
  char line[256];
  uint64_t kb = 0;
  size_t n = strlen(key);
  while (fgets(line, sizeof(line), f)) {
    if (strncmp(line, key, n) == 0 && line[n] == ':') {
      if (sscanf(line + n + 1, "%llu", (unsigned long long*)&kb) != 1) kb = 0;
      break;
    }
  }
  fclose(f);
  return kb * 1024;
}

/* Host memory, which is the XLA CPU plugin's device memory. */
static tpj_status_t host_memory(uint64_t* out_free, uint64_t* out_total) {
  uint64_t total = meminfo_bytes("MemTotal"), avail = meminfo_bytes("MemAvailable");
  if (total == 0) {
    return TPJ_STATUS(UNIMPLEMENTED, "memory info: /proc/meminfo is not readable");
  }
  struct rlimit lim;
  if (getrlimit(RLIMIT_AS, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY) {
    unsigned long long pages = 0;
    FILE* f = fopen("/proc/self/statm", "r");
    if (f) {
      if (fscanf(f, "%llu", &pages) != 1) pages = 0;
      fclose(f);
    }
    uint64_t used = (uint64_t)pages * (uint64_t)sysconf(_SC_PAGESIZE);
    uint64_t left = lim.rlim_cur > used ? (uint64_t)lim.rlim_cur - used : 0;
    if (left < avail) avail = left;
    if ((uint64_t)lim.rlim_cur < total) total = (uint64_t)lim.rlim_cur;
  }
  *out_free = avail;
  *out_total = total;
  return NULL;
}

tpj_status_t tpj_eager_memory_info(size_t device, uint64_t* out_free, uint64_t* out_total) {
  TPJ_CHECK_ARG(out_free && out_total, "memory info: NULL output");
  TPJ_RETURN_IF_ERROR(check_device(device, "memory info"));
  tpj_client_t* c = tpj_eager_client();
  tpj_device_memory_t pm;
  tpj_status_t st = tpj_client_device_memory(c, device, &pm);
  if (!st && pm.bytes_limit > 0) {
    *out_total = (uint64_t)pm.bytes_limit;
    *out_free = pm.bytes_in_use < pm.bytes_limit ? (uint64_t)(pm.bytes_limit - pm.bytes_in_use)
                                                 : 0;
    return NULL;
  }
  if (st && tpj_status_code(st) != TPJ_STATUS_UNIMPLEMENTED) return st;
  tpj_status_free(st);
  if (strcmp(tpj_client_platform_name(c), "cpu") == 0) return host_memory(out_free, out_total);
  return TPJ_STATUS(UNIMPLEMENTED, "memory info: plugin %s does not report the memory of "
                    "device %zu", tpj_client_platform_name(c), device);
}

tpj_status_t tpj_eager_memory_check(size_t device, size_t nbytes) {
  if (nbytes < TPJ_EAGER_MEMORY_CHECK_MIN) return NULL;
  uint64_t free_bytes = 0, total = 0;
  tpj_status_t st = tpj_eager_memory_info(device, &free_bytes, &total);
  if (st) { /* unknown free memory: the plugin decides */
    tpj_status_free(st);
    return NULL;
  }
  if ((uint64_t)nbytes <= free_bytes) return NULL;
  return TPJ_STATUS(RESOURCE_EXHAUSTED, "out of memory: tried to allocate %zu bytes on pjrt "
                    "device %zu (%llu bytes free of %llu)", nbytes, device,
                    (unsigned long long)free_bytes, (unsigned long long)total);
}

tpj_status_t tpj_eager_memory_check_outputs(const tpj_eager_op_t* op,
                                            const tpj_eager_tensor_t* dst) {
  if (dst) return tpj_eager_memory_check(dst->storage->device, dst->storage->nbytes);
  size_t total = 0;
  for (size_t i = 0; i < op->num_outs; ++i) {
    const tpj_type_t* t = &op->out_types[i];
    if (t->dtype != TPJ_DTYPE_INVALID) total += (size_t)tpj_type_numel(t) * tpj_dtype_size(t->dtype);
  }
  return tpj_eager_memory_check(op->device, total);
}

tpj_status_t tpj_eager_status_no_lowering(tpj_status_t st, bool compiled) {
  tpj_status_code_t code = tpj_status_code(st);
  if (!st || code == TPJ_STATUS_UNIMPLEMENTED || code == TPJ_STATUS_RESOURCE_EXHAUSTED ||
      (!compiled && code != TPJ_STATUS_INTERNAL)) {
    return st;
  }
  tpj_status_t u = TPJ_STATUS(UNIMPLEMENTED, "%s", tpj_status_message(st));
  tpj_status_free(st);
  return u;
}
