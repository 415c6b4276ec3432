/* pjrt_internal.h: the object layouts and call helpers shared by the files of
 * src/pjrt/. Every PJRT call goes through tpj_pjrt_call(), which checks that
 * the slot exists in the plugin's table and turns a PJRT_Error into a status.
 */
#ifndef TPJ_PJRT_INTERNAL_H_
#define TPJ_PJRT_INTERNAL_H_

#include "pjrt/pjrt_api.h"
#include "tpj/pjrt.h"

struct tpj_plugin_s {
  char* path;                /* owned, NUL-terminated */
  void* handle;              /* dlopen handle, never closed */
  const PJRT_Api_Header* api;
  size_t api_size;           /* api->struct_size */
  int api_major;
  int api_minor;
  int64_t xla_version;
  int64_t stablehlo_current[3];
  int64_t stablehlo_minimum[3];
  struct tpj_plugin_s* next; /* registry list */
};

typedef struct tpj_device_s {
  PJRT_Device* device;
  int id;
  int local_hardware_id;
  char* kind;         /* owned */
  char* debug_string; /* owned */
} tpj_device_t;

struct tpj_client_s {
  tpj_plugin_t* plugin;
  PJRT_Client* client;
  char* platform_name;    /* owned */
  char* platform_version; /* owned */
  size_t num_devices;     /* all devices, addressable or not */
  tpj_device_t* devices;  /* (num_addressable) */
  size_t num_addressable;
  tpj_kv_store_t kv;      /* get == NULL: none (the callbacks' user_arg is &kv) */
};

struct tpj_event_s {
  tpj_plugin_t* plugin;
  PJRT_Event* event;
  int refs; /* tpj_event_ref / tpj_event_destroy (atomic) */
};

struct tpj_buffer_s {
  tpj_client_t* client;
  PJRT_Buffer* buffer;
  tpj_dtype_t dtype;
  size_t rank;
  int64_t dims[TPJ_MAX_RANK]; /* (rank) */
  size_t device_index;
  /* Host-memory fast path (buffer.c): 0 not yet checked, 1 the bytes are
   * dense row-major host memory read in place, -1 use PJRT_Buffer_ToHostBuffer.
   * Static per buffer; atomic so concurrent copies may race to set it. */
  _Atomic int host_direct;
};

struct tpj_executable_s {
  tpj_client_t* client;
  PJRT_LoadedExecutable* loaded;
  PJRT_Executable* executable; /* from GetExecutable, owned */
  size_t num_outputs;
  size_t num_devices;
  size_t* device_indices; /* (num_devices) client addressable indices */
  bool portable;          /* no device assignment: runs where execute says */
  int64_t temp_bytes;     /* device temporaries per launch; -1: not reported */
};

/* Looks up slot `slot`: UNIMPLEMENTED naming `name` and the API version when
 * the plugin's table is too short or the pointer is NULL. */
tpj_status_t tpj_pjrt_fn(const tpj_plugin_t* plugin, pjrt_slot_t slot,
                         const char* name, void** out_fn) TPJ_MUST_USE;
/* Calls slot with args; a PJRT_Error becomes a status annotated with `name`
 * (and destroyed). */
tpj_status_t tpj_pjrt_call(const tpj_plugin_t* plugin, pjrt_slot_t slot,
                           const char* name, void* args) TPJ_MUST_USE;
#define TPJ_PJRT_CALL(plugin, NAME, args) \
  tpj_pjrt_call((plugin), PJRT_SLOT_##NAME, "PJRT_" #NAME, (args))

/* Converts and destroys a PJRT_Error (NULL -> NULL). */
tpj_status_t tpj_pjrt_error_to_status(const tpj_plugin_t* plugin, PJRT_Error* error,
                                      const char* what) TPJ_MUST_USE;
/* Destroys an event, ignoring errors (there is nothing to report to). */
void tpj_pjrt_event_destroy_raw(const tpj_plugin_t* plugin, PJRT_Event* event);
/* Awaits then destroys a raw event; returns the event's error. */
tpj_status_t tpj_pjrt_event_await_raw(const tpj_plugin_t* plugin, PJRT_Event* event,
                                      const char* what) TPJ_MUST_USE;
void tpj_pjrt_buffer_destroy_raw(const tpj_plugin_t* plugin, PJRT_Buffer* buffer);
/* Wraps a raw buffer; takes ownership of `raw` (destroyed on failure). */
tpj_status_t tpj_buffer_wrap(tpj_client_t* client, PJRT_Buffer* raw,
                             tpj_buffer_t** out_buffer) TPJ_MUST_USE;
tpj_status_t tpj_event_wrap(tpj_plugin_t* plugin, PJRT_Event* raw,
                            tpj_event_t** out_event) TPJ_MUST_USE;
/* Index of `device` among the client's addressable devices, or SIZE_MAX. */
size_t tpj_client_device_index(const tpj_client_t* client, const PJRT_Device* device);
/* Fills e->executable, e->num_outputs and e->device_indices/num_devices from
 * e->loaded (after compile or deserialize). */
tpj_status_t tpj_executable_read_info(tpj_executable_t* e) TPJ_MUST_USE;

/* kv_store.c: a store's callbacks for PJRT_Client_Create (c->kv, if set). */
tpj_status_t tpj_pjrt_kv_check(const tpj_kv_store_t* store) TPJ_MUST_USE;
void tpj_pjrt_kv_offer(tpj_client_t* c, PJRT_Client_Create_Args* a);
void tpj_pjrt_kv_release(tpj_client_t* c);
/* Copies a (ptr, size) string from the plugin; NULL on out of memory. */
char* tpj_pjrt_strndup(const char* s, size_t n);

#endif /* TPJ_PJRT_INTERNAL_H_ */
