/* tpj/pjrt.h: plugins, clients, buffers, executables and events.
 *
 * This is the only public face of src/pjrt/, which is the only code that
 * touches PJRT_* declarations. Everything is synchronous-looking C with
 * tpj_status_t errors; a PJRT_Error becomes a status carrying the plugin's
 * message and code.
 */
#ifndef TPJ_PJRT_H_
#define TPJ_PJRT_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tpj/base.h"
#include "tpj/ir.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- plugin -- */

typedef struct tpj_plugin_s tpj_plugin_t;

typedef struct tpj_plugin_info_s {
  const char* path;            /* borrowed, lives as long as the process */
  int api_major;
  int api_minor;
  int64_t xla_version;         /* -1 if the plugin does not report it */
  int64_t stablehlo_current[3];/* {-1,-1,-1} if not reported */
  int64_t stablehlo_minimum[3];
} tpj_plugin_info_t;

/* Resolves a plugin spec to a file path (caller frees *out_path with free()):
 *   "cpu"  -> <dir>/xla_plugins/xla_cpu_pjrt/xla_cpu_pjrt.so
 *   "cuda" -> <dir>/jax_plugins/xla_cuda13/xla_cuda_plugin.so, then xla_cuda12
 *   "tpu"  -> $TPU_LIBRARY_PATH, then <dir>/libtpu/libtpu.so
 *   anything containing '/' or ending in ".so" -> that path
 * for each of `search_dirs` (count). NULL spec means $TORCH_PJRT_PLUGIN or "cpu".
 * NOT_FOUND lists every place tried. */
tpj_status_t tpj_plugin_resolve(const char* spec, const char* const* search_dirs,
                                size_t count, char** out_path) TPJ_MUST_USE;

/* Loads (dlopen RTLD_LOCAL, never unloaded), checks the API version and
 * struct size, runs PJRT_Plugin_Initialize once and reads attributes. Loading
 * the same path twice returns the same plugin. Plugins live for the process:
 * the returned pointer is borrowed and never freed. */
tpj_status_t tpj_plugin_load(const char* path, tpj_plugin_t** out_plugin) TPJ_MUST_USE;
void tpj_plugin_get_info(const tpj_plugin_t* plugin, tpj_plugin_info_t* out_info);

/* ---------------------------------------------------------------- client -- */

typedef enum tpj_option_kind_e {
  TPJ_OPTION_KIND_STRING = 0,
  TPJ_OPTION_KIND_INT64 = 1,
  TPJ_OPTION_KIND_INT64_LIST = 2,
  TPJ_OPTION_KIND_FLOAT = 3,
  TPJ_OPTION_KIND_BOOL = 4,
} tpj_option_kind_t;

typedef struct tpj_option_s {
  const char* name;
  tpj_option_kind_t kind;
  const char* string_value;
  int64_t int_value;            /* INT64, BOOL */
  const int64_t* int_list;      /* (int_list_count) */
  size_t int_list_count;
  float float_value;
} tpj_option_t;

typedef struct tpj_client_s tpj_client_t;

typedef struct tpj_device_info_s {
  int id;                /* global device id */
  int local_hardware_id; /* -1 if unknown */
  const char* kind;      /* borrowed from the client, e.g. "cpu" */
  const char* debug_string;
} tpj_device_info_t;

tpj_status_t tpj_client_create(tpj_plugin_t* plugin, const tpj_option_t* options,
                               size_t num_options, tpj_client_t** out_client) TPJ_MUST_USE;

/* A key-value store shared by the processes of one job (under torch.distributed,
 * its c10d Store), which plugins use to build a multi-process client (the XLA
 * CUDA plugin with options node_id and num_nodes). The plugin may call these
 * from any of its threads, during tpj_client_create_with_store and later,
 * until the client is destroyed; they must be thread-safe. */
typedef struct tpj_kv_store_s {
  /* Waits up to timeout_ms for `key` (DEADLINE_EXCEEDED when it does not
   * appear); *out_value is malloc'ed and freed by the client. */
  tpj_status_t (*get)(void* user, const char* key, size_t key_size, int timeout_ms,
                      char** out_value, size_t* out_value_size);
  /* NULL: not offered. Like get, but NOT_FOUND at once when the key is absent. */
  tpj_status_t (*try_get)(void* user, const char* key, size_t key_size, char** out_value,
                          size_t* out_value_size);
  tpj_status_t (*put)(void* user, const char* key, size_t key_size, const char* value,
                      size_t value_size);
  void* user;
  /* NULL, or called once with `user` when the client is destroyed. */
  void (*release)(void* user);
} tpj_kv_store_t;

/* tpj_client_create with `store` (copied; NULL: none) offered to the plugin's
 * key-value callbacks. The client takes the store: its release runs when the
 * client is destroyed, or before an error is returned. */
tpj_status_t tpj_client_create_with_store(tpj_plugin_t* plugin, const tpj_option_t* options,
                                          size_t num_options, const tpj_kv_store_t* store,
                                          tpj_client_t** out_client) TPJ_MUST_USE;
void tpj_client_destroy(tpj_client_t* client);
tpj_plugin_t* tpj_client_plugin(const tpj_client_t* client);
const char* tpj_client_platform_name(const tpj_client_t* client);
const char* tpj_client_platform_version(const tpj_client_t* client);
size_t tpj_client_device_count(const tpj_client_t* client);             /* all */
size_t tpj_client_addressable_device_count(const tpj_client_t* client);
/* index < addressable device count */
tpj_status_t tpj_client_device_info(const tpj_client_t* client, size_t index,
                                    tpj_device_info_t* out_info) TPJ_MUST_USE;

/* What the plugin reports about a device's memory (PJRT_Device_MemoryStats);
 * a field the plugin does not fill is -1. */
typedef struct tpj_device_memory_s {
  int64_t bytes_in_use;
  int64_t peak_bytes_in_use;
  int64_t num_allocs;
  int64_t largest_alloc_size;
  int64_t bytes_limit;
  int64_t bytes_reserved;
  int64_t peak_bytes_reserved;
} tpj_device_memory_t;
/* UNIMPLEMENTED when the plugin has no memory statistics for the device (the
 * XLA CPU plugin, for one). */
tpj_status_t tpj_client_device_memory(const tpj_client_t* client, size_t index,
                                      tpj_device_memory_t* out_memory) TPJ_MUST_USE;

/* ---------------------------------------------------------------- events -- */

typedef struct tpj_event_s tpj_event_t;
typedef void (*tpj_event_callback_fn)(tpj_status_t status /* owned by callee */,
                                      void* user);
/* Blocks until ready; returns the event's error, if any. */
tpj_status_t tpj_event_await(tpj_event_t* event) TPJ_MUST_USE;
bool tpj_event_is_ready(tpj_event_t* event);
/* Calls fn once when ready (possibly at once, possibly on another thread). */
tpj_status_t tpj_event_on_ready(tpj_event_t* event, tpj_event_callback_fn fn, void* user)
    TPJ_MUST_USE;
/* Another reference to `event` (returned; NULL for NULL): each reference is
 * released with tpj_event_destroy, the last one destroys the event. */
tpj_event_t* tpj_event_ref(tpj_event_t* event);
void tpj_event_destroy(tpj_event_t* event);

/* --------------------------------------------------------------- buffers -- */

typedef struct tpj_buffer_s tpj_buffer_t;

typedef enum tpj_host_semantics_e {
  /* Copy now; the host memory may be reused when the call returns. */
  TPJ_HOST_SEMANTICS_COPY = 0,
  /* Zero-copy where the plugin can: host memory must stay alive and unchanged
   * until the buffer is destroyed. Falls back to a copy otherwise. */
  TPJ_HOST_SEMANTICS_ZERO_COPY = 2,
} tpj_host_semantics_t;

/* Dense row-major host data -> a buffer on addressable device `device_index`. */
tpj_status_t tpj_buffer_from_host(tpj_client_t* client, const void* data,
                                  tpj_dtype_t dtype, const int64_t* dims, size_t rank,
                                  size_t device_index, tpj_host_semantics_t semantics,
                                  tpj_buffer_t** out_buffer) TPJ_MUST_USE;
/* Copies to dense row-major host memory (dst_size must equal numel*itemsize). */
tpj_status_t tpj_buffer_to_host(tpj_buffer_t* buffer, void* dst, size_t dst_size) TPJ_MUST_USE;
/* Starts the copy; await *out_event before reading dst.
 * Host-memory fast path (both calls): where the plugin reports the buffer on
 * CPU with an in-place pointer (PJRT_Buffer_IsOnCpu, _UnsafePointer) and a
 * dense row-major layout of exactly numel*itemsize bytes, the copy waits for
 * the buffer and memcpys before returning (the event is then already ready;
 * errors of the buffer's ready event come back as the returned status). The
 * buffer must not be deleted or donated concurrently with the copy. */
tpj_status_t tpj_buffer_to_host_async(tpj_buffer_t* buffer, void* dst, size_t dst_size,
                                      tpj_event_t** out_event) TPJ_MUST_USE;
tpj_status_t tpj_buffer_copy_to_device(tpj_buffer_t* buffer, size_t device_index,
                                       tpj_buffer_t** out_buffer) TPJ_MUST_USE;
/* Waits until the buffer's contents are computed. */
tpj_status_t tpj_buffer_await(tpj_buffer_t* buffer) TPJ_MUST_USE;
/* The event that becomes ready when the buffer's contents are computed
 * (PJRT_Buffer_ReadyEvent; it carries the producing computation's error).
 * Destroy it with tpj_event_destroy; it does not keep the buffer alive. */
tpj_status_t tpj_buffer_ready_event(tpj_buffer_t* buffer, tpj_event_t** out_event) TPJ_MUST_USE;
tpj_dtype_t tpj_buffer_dtype(const tpj_buffer_t* buffer);
size_t tpj_buffer_rank(const tpj_buffer_t* buffer);
const int64_t* tpj_buffer_dims(const tpj_buffer_t* buffer); /* (rank) borrowed */
tpj_status_t tpj_buffer_on_device_size(tpj_buffer_t* buffer, size_t* out_size) TPJ_MUST_USE;
size_t tpj_buffer_device_index(const tpj_buffer_t* buffer);
/* Frees the device memory now (PJRT_Buffer_Delete); the handle stays valid
 * for is_deleted / destroy, every other use fails. */
tpj_status_t tpj_buffer_delete(tpj_buffer_t* buffer) TPJ_MUST_USE;
/* true once the buffer was donated to an execution or deleted. */
bool tpj_buffer_is_deleted(tpj_buffer_t* buffer);
void tpj_buffer_destroy(tpj_buffer_t* buffer);

/* ------------------------------------------------------------ executables -- */

typedef struct tpj_executable_s tpj_executable_t;

typedef struct tpj_compile_options_s {
  int num_replicas;   /* >= 1 */
  int num_partitions; /* >= 1 */
  bool use_spmd_partitioning;
  /* CompileOptionsProto field 4: no device assignment, so the one-device
   * executable runs on whichever addressable device tpj_execute_args_t.device
   * names (needs num_replicas == num_partitions == 1). */
  bool portable;
  /* ExecutableBuildOptionsProto field 19: ask for the Shardy partitioner
   * (with use_spmd_partitioning). The CPU plugin then takes sdy-dialect
   * programs but still uses GSPMD for ones carrying mhlo.sharding. */
  bool use_shardy_partitioner;
} tpj_compile_options_t;

/* Serializes CompileOptionsProto by hand (field 3 executable_build_options:
 * 4 num_replicas, 5 num_partitions, 6 use_spmd_partitioning, 19
 * use_shardy_partitioner; field 4 compile_portable_executable). out has room for
 * out_capacity bytes; *out_len receives the length. */
tpj_status_t tpj_compile_options_encode(const tpj_compile_options_t* options,
                                        uint8_t* out, size_t out_capacity,
                                        size_t* out_len) TPJ_MUST_USE;

/* Compiles MLIR (StableHLO) text; `options` NULL = one replica, one partition. */
tpj_status_t tpj_executable_compile(tpj_client_t* client, const char* program,
                                    size_t program_len,
                                    const tpj_compile_options_t* options,
                                    tpj_executable_t** out_executable) TPJ_MUST_USE;
void tpj_executable_destroy(tpj_executable_t* executable);
size_t tpj_executable_num_outputs(const tpj_executable_t* executable);
size_t tpj_executable_num_devices(const tpj_executable_t* executable); /* 1 if portable */
bool tpj_executable_is_portable(const tpj_executable_t* executable);
/* The client it was compiled or loaded on (borrowed). */
tpj_client_t* tpj_executable_client(const tpj_executable_t* executable);
/* Output dtypes if the plugin reports them (API >= 0.45), else UNIMPLEMENTED. */
tpj_status_t tpj_executable_output_dtypes(tpj_executable_t* executable,
                                          tpj_dtype_t* out_dtypes, size_t count) TPJ_MUST_USE;

/* Serialization (PJRT_Executable_Serialize / _DeserializeAndLoad). The bytes
 * are platform- and plugin-build-specific: load them only into a client of the
 * same plugin file, version and device setup that produced them.
 *
 * true when the plugin provides both slots (checked against its api
 * struct_size); false otherwise, or for NULL. */
bool tpj_executable_serialization_supported(const tpj_client_t* client);
/* Serializes `executable`; *out_bytes is malloc'd (free with free()), with
 * *out_len bytes. UNIMPLEMENTED when the plugin lacks the slot. */
tpj_status_t tpj_executable_serialize(tpj_executable_t* executable, uint8_t** out_bytes,
                                      size_t* out_len) TPJ_MUST_USE;
/* Loads bytes from tpj_executable_serialize into `client` (the bytes are only
 * read during the call). The result is like one from tpj_executable_compile. */
tpj_status_t tpj_executable_deserialize(tpj_client_t* client, const uint8_t* bytes,
                                        size_t len, tpj_executable_t** out_executable) TPJ_MUST_USE;

typedef struct tpj_execute_args_s {
  tpj_buffer_t* const* args;   /* (num_devices, num_args) row-major */
  size_t num_args;
  size_t num_devices;          /* must equal tpj_executable_num_devices */
  const bool* donate;          /* (num_args) or NULL: true lets the plugin reuse
                                  that argument's memory; the buffer is then
                                  deleted */
  tpj_buffer_t** out_buffers;  /* (num_devices, num_outputs) caller-allocated */
  tpj_event_t** out_events;    /* (num_devices) or NULL: completion events */
  /* Addressable device index a single-device executable runs on (then
   * num_devices is 1; the arguments must live on that device). 0, the
   * zero-initialised default, keeps the compiled device assignment, which is
   * device 0 for everything compiled without one (tpj_executable_compile). A
   * non-zero index with a multi-device executable is INVALID_ARGUMENT. */
  size_t device;
} tpj_execute_args_t;

/* Device bytes of temporaries one launch needs, from the plugin's compiled
 * memory stats (PJRT_Executable_GetCompiledMemoryStats); -1 when the plugin
 * does not report them. */
int64_t tpj_executable_temp_bytes(const tpj_executable_t* executable);

/* Launches; returns when the launch is enqueued. On error no output buffers or
 * events are left behind. The outputs live on the executing device(s). */
tpj_status_t tpj_executable_execute(tpj_executable_t* executable,
                                    const tpj_execute_args_t* args) TPJ_MUST_USE;

#ifdef __cplusplus
}
#endif

#endif /* TPJ_PJRT_H_ */
