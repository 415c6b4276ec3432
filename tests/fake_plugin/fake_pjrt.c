/* fake_pjrt.c: the API table, errors, events, plugin attributes, clients and
 * devices of the fake PJRT plugin. $TPJ_FAKE_MODE (read at each call) picks a
 * fault: bad_major, tiny_api, old_api, init_fail, compile_fail, alloc_fail,
 * execute_fail, execute_partial, event_error, event_pending_error (failing
 * events that read as not ready); anything else is normal.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake.h"

int fake_mode_is(const char* mode) {
  const char* m = getenv("TPJ_FAKE_MODE");
  return m && !strcmp(m, mode);
}

static char* vformat(const char* fmt, va_list ap) {
  char* s = (char*)malloc(512);
  if (s) vsnprintf(s, 512, fmt, ap);
  return s;
}

PJRT_Error* fake_error(int code, const char* fmt, ...) {
  PJRT_Error* e = (PJRT_Error*)calloc(1, sizeof(*e));
  if (!e) return NULL;
  va_list ap;
  va_start(ap, fmt);
  e->code = code;
  e->message = vformat(fmt, ap);
  va_end(ap);
  return e;
}

PJRT_Event* fake_event(void) {
  PJRT_Event* ev = (PJRT_Event*)calloc(1, sizeof(*ev));
  if (ev && (fake_mode_is("event_error") || fake_mode_is("event_pending_error"))) {
    ev->code = 15; /* DATA_LOSS */
    ev->message = strdup("fake: device lost while the event was pending");
  }
  return ev;
}

PJRT_Error* fake_check_size(const char* name, size_t got, size_t need) {
  if (got >= need) return NULL;
  return fake_error(3, "Unexpected %s size: expected %zu, got %zu", name, need, got);
}

size_t fake_item_size(int type) {
  static const size_t sizes[16] = {0, 1, 1, 2, 4, 8, 1, 2, 4, 8, 2, 4, 8, 2, 8, 16};
  return type > 0 && type < 16 ? sizes[type] : 0;
}

/* -------------------------------------------------------- errors/events -- */

static void error_destroy(PJRT_Error_Destroy_Args* a) {
  if (!a->error) return;
  free(a->error->message);
  free(a->error);
}
static void error_message(PJRT_Error_Message_Args* a) {
  a->message = a->error->message ? a->error->message : "";
  a->message_size = strlen(a->message);
}
static PJRT_Error* error_get_code(void* args) {
  PJRT_Error_GetCode_Args* a = (PJRT_Error_GetCode_Args*)args;
  a->code = a->error->code;
  return NULL;
}

static PJRT_Error* event_error_of(const PJRT_Event* ev) {
  return ev->code ? fake_error(ev->code, "%s", ev->message ? ev->message : "") : NULL;
}
static PJRT_Error* event_destroy(void* args) {
  PJRT_Event_Args* a = (PJRT_Event_Args*)args;
  if (a->event) free(a->event->message);
  free(a->event);
  return NULL;
}
/* In mode event_pending_error a failing event reads as not ready yet (its
 * OnReady callback still runs at once, with the error). */
static PJRT_Error* event_is_ready(void* args) {
  PJRT_Event_IsReady_Args* a = (PJRT_Event_IsReady_Args*)args;
  a->is_ready = !(a->event->code && fake_mode_is("event_pending_error"));
  return NULL;
}
static PJRT_Error* event_await(void* args) {
  return event_error_of(((PJRT_Event_Args*)args)->event);
}
static PJRT_Error* event_on_ready(void* args) {
  PJRT_Event_OnReady_Args* a = (PJRT_Event_OnReady_Args*)args;
  a->callback(event_error_of(a->event), a->user_arg);
  return NULL;
}

/* -------------------------------------------------------------- plugin -- */

static PJRT_Error* plugin_initialize(void* args) {
  if (fake_mode_is("init_fail")) return fake_error(9, "fake: initialization refused");
  return NULL;
}

static const int64_t kShloCurrent[3] = {1, 2, 3};
static const int64_t kShloMinimum[3] = {0, 9, 0};

static PJRT_Error* plugin_attributes(void* args) {
  static PJRT_NamedValue attrs[3];
  attrs[0] = (PJRT_NamedValue){.struct_size = PJRT_NamedValue_STRUCT_SIZE, .name = "xla_version",
                               .name_size = 11, .type = PJRT_NamedValue_kInt64,
                               .int64_value = 7, .value_size = 1};
  attrs[1] = (PJRT_NamedValue){.struct_size = PJRT_NamedValue_STRUCT_SIZE,
                               .name = "stablehlo_current_version", .name_size = 25,
                               .type = PJRT_NamedValue_kInt64List,
                               .int64_array_value = kShloCurrent, .value_size = 3};
  attrs[2] = attrs[1];
  attrs[2].name = "stablehlo_minimum_version";
  attrs[2].int64_array_value = kShloMinimum;
  PJRT_Plugin_Attributes_Args* a = (PJRT_Plugin_Attributes_Args*)args;
  a->attributes = attrs;
  a->num_attributes = 3;
  return NULL;
}

/* -------------------------------------------------------------- client -- */

static PJRT_Error* apply_option(PJRT_Client* c, const PJRT_NamedValue* v, int* ndev) {
  char* out = c->version + strlen(c->version);
  size_t room = sizeof(c->version) - strlen(c->version);
  if (!strcmp(v->name, "device_count") && v->type == PJRT_NamedValue_kInt64) {
    *ndev = (int)v->int64_value;
    snprintf(out, room, " device_count=%d", *ndev);
  } else if (!strcmp(v->name, "fake_string") && v->type == PJRT_NamedValue_kString) {
    snprintf(out, room, " string=%.*s", (int)v->value_size, v->string_value);
  } else if (!strcmp(v->name, "fake_list") && v->type == PJRT_NamedValue_kInt64List) {
    for (size_t i = 0; i < v->value_size; ++i, out += strlen(out), room = sizeof(c->version) - strlen(c->version))
      snprintf(out, room, "%s%lld", i ? "," : " list=", (long long)v->int64_array_value[i]);
  } else if (!strcmp(v->name, "fake_float") && v->type == PJRT_NamedValue_kFloat) {
    snprintf(out, room, " float=%.2f", (double)v->float_value);
  } else if (!strcmp(v->name, "node_id") && v->type == PJRT_NamedValue_kInt64) {
    c->node_id = (int)v->int64_value;
  } else if (!strcmp(v->name, "num_nodes") && v->type == PJRT_NamedValue_kInt64) {
    c->num_nodes = (int)v->int64_value;
  } else if (!strcmp(v->name, "fake_kv_timeout_ms") && v->type == PJRT_NamedValue_kInt64) {
    c->kv_timeout_ms = (int)v->int64_value;
  } else if (!strcmp(v->name, "fake_bool") && v->type == PJRT_NamedValue_kBool) {
    snprintf(out, room, " bool=%d", v->bool_value ? 1 : 0);
  } else {
    return fake_error(3, "fake: unknown client option '%s' (type %d)", v->name, (int)v->type);
  }
  return NULL;
}

/* What the fake's key-value callbacks hand back for a failed call. */
static PJRT_Error* kv_callback_error(int code, const char* message, size_t size) {
  return fake_error(code, "%.*s", (int)size, message);
}

/* A multi-node client (num_nodes > 1), as the XLA CUDA plugin builds one:
 * each node puts its topology under its own key and reads every other
 * node's, through the caller's key-value store. The peers' values go into
 * the platform version, so a test sees what was exchanged. */
static PJRT_Error* exchange_topology(PJRT_Client* c, const PJRT_Client_Create_Args* a, int ndev) {
  if (c->node_id < 0 || c->node_id >= c->num_nodes)
    return fake_error(3, "fake: node_id %d outside 0..%d", c->node_id, c->num_nodes - 1);
  if (!a->kv_get_callback || !a->kv_put_callback)
    return fake_error(3, "fake: num_nodes %d needs the key-value store callbacks", c->num_nodes);
  PJRT_CallbackError make = kv_callback_error;
  char key[64], value[64];
  snprintf(key, sizeof(key), "fake/topology/%d", c->node_id);
  snprintf(value, sizeof(value), "node%d:%ddev", c->node_id, ndev);
  PJRT_KeyValuePutCallback_Args put = {.struct_size = sizeof(put), .key = key,
                                       .key_size = strlen(key), .value = value,
                                       .value_size = strlen(value), .callback_error = &make,
                                       .user_arg = a->kv_put_user_arg};
  PJRT_Error* e = ((PJRT_KeyValuePutCallback)a->kv_put_callback)(&put);
  if (e) return e;
  size_t len = strlen(c->version);
  snprintf(c->version + len, sizeof(c->version) - len, " node=%d/%d peers=", c->node_id,
           c->num_nodes);
  for (int j = 0; j < c->num_nodes; ++j) {
    if (j == c->node_id) continue;
    snprintf(key, sizeof(key), "fake/topology/%d", j);
    PJRT_KeyValueGetCallback_Args get = {.struct_size = sizeof(get), .key = key,
                                         .key_size = strlen(key),
                                         .timeout_in_ms = c->kv_timeout_ms,
                                         .callback_error = &make,
                                         .user_arg = a->kv_get_user_arg};
    e = ((PJRT_KeyValueGetCallback)a->kv_get_callback)(&get);
    if (e) return e;
    len = strlen(c->version);
    snprintf(c->version + len, sizeof(c->version) - len, "%s%.*s",
             c->version[len - 1] == '=' ? "" : ",", (int)get.value_size, get.value);
    get.value_deleter_callback(get.value);
  }
  return NULL;
}

static void client_free(PJRT_Client* c) {
  if (!c) return;
  free(c->devices);
  free(c->device_ptrs);
  free(c);
}

static PJRT_Error* client_create(void* args) {
  PJRT_Client_Create_Args* a = (PJRT_Client_Create_Args*)args;
  FAKE_CHECK_SIZE(PJRT_Client_Create_Args, a);
  PJRT_Client* c = (PJRT_Client*)calloc(1, sizeof(*c));
  if (!c) return fake_error(8, "fake: out of memory");
  int ndev = 2;
  strcpy(c->version, "fake-1.0");
  c->num_nodes = 1;
  c->kv_timeout_ms = 5000;
  for (size_t i = 0; i < a->num_options; ++i) {
    PJRT_Error* e = apply_option(c, &a->create_options[i], &ndev);
    if (e) { client_free(c); return e; }
  }
  if (ndev < 1 || ndev > 64) {
    client_free(c);
    return fake_error(3, "fake: device_count out of range (got %d)", ndev);
  }
  if (c->num_nodes > 1) {
    PJRT_Error* e = exchange_topology(c, a, ndev);
    if (e) { client_free(c); return e; }
  }
  c->num_devices = ndev;
  c->devices = (struct PJRT_Device*)calloc((size_t)ndev, sizeof(struct PJRT_Device));
  c->device_ptrs = (PJRT_Device**)calloc((size_t)ndev, sizeof(PJRT_Device*));
  if (!c->devices || !c->device_ptrs) { client_free(c); return fake_error(8, "fake: oom"); }
  for (int i = 0; i < ndev; ++i) {
    c->devices[i].id = 100 + i;
    snprintf(c->devices[i].debug, sizeof(c->devices[i].debug), "FakeDevice(id=%d)", 100 + i);
    c->device_ptrs[i] = &c->devices[i];
  }
  a->client = c;
  return NULL;
}

static PJRT_Error* client_destroy(void* args) {
  client_free(((PJRT_Client_Args*)args)->client);
  return NULL;
}
static PJRT_Error* client_platform_name(void* args) {
  PJRT_Client_String_Args* a = (PJRT_Client_String_Args*)args;
  a->value = "fake";
  a->value_size = 4;
  return NULL;
}
static PJRT_Error* client_platform_version(void* args) {
  PJRT_Client_String_Args* a = (PJRT_Client_String_Args*)args;
  a->value = a->client->version;
  a->value_size = strlen(a->client->version);
  return NULL;
}
static PJRT_Error* client_devices(void* args) {
  PJRT_Client_Devices_Args* a = (PJRT_Client_Devices_Args*)args;
  a->devices = a->client->device_ptrs;
  a->num_devices = (size_t)a->client->num_devices;
  return NULL;
}

/* ------------------------------------------------------------- devices -- */

static PJRT_Error* device_get_description(void* args) {
  PJRT_Device_GetDescription_Args* a = (PJRT_Device_GetDescription_Args*)args;
  a->device_description = (PJRT_DeviceDescription*)a->device;
  return NULL;
}
static PJRT_Error* device_local_hardware_id(void* args) {
  PJRT_Device_LocalHardwareId_Args* a = (PJRT_Device_LocalHardwareId_Args*)args;
  a->local_hardware_id = a->device->id - 100;
  return NULL;
}
static PJRT_Error* description_id(void* args) {
  PJRT_DeviceDescription_Id_Args* a = (PJRT_DeviceDescription_Id_Args*)args;
  a->id = ((PJRT_Device*)a->device_description)->id;
  return NULL;
}
static PJRT_Error* description_kind(void* args) {
  PJRT_DeviceDescription_String_Args* a = (PJRT_DeviceDescription_String_Args*)args;
  a->value = "fake_kind";
  a->value_size = 9;
  return NULL;
}
static PJRT_Error* description_debug(void* args) {
  PJRT_DeviceDescription_String_Args* a = (PJRT_DeviceDescription_String_Args*)args;
  a->value = ((PJRT_Device*)a->device_description)->debug;
  a->value_size = strlen(a->value);
  return NULL;
}

/* ------------------------------------------------------------ PJRT_Api -- */

#define FAKE_NUM_SLOTS 92
typedef struct fake_api_s {
  PJRT_Api_Header header;
  void* slots[FAKE_NUM_SLOTS];
} fake_api_t;

static void set_slot(fake_api_t* api, pjrt_slot_t slot, PJRT_Fn fn) {
  api->slots[slot] = (void*)fn;
}

static void fill_slots(fake_api_t* api) {
  api->slots[PJRT_SLOT_Error_Destroy] = (void*)error_destroy;
  api->slots[PJRT_SLOT_Error_Message] = (void*)error_message;
  set_slot(api, PJRT_SLOT_Error_GetCode, error_get_code);
  set_slot(api, PJRT_SLOT_Plugin_Initialize, plugin_initialize);
  set_slot(api, PJRT_SLOT_Plugin_Attributes, plugin_attributes);
  set_slot(api, PJRT_SLOT_Event_Destroy, event_destroy);
  set_slot(api, PJRT_SLOT_Event_IsReady, event_is_ready);
  set_slot(api, PJRT_SLOT_Event_Await, event_await);
  set_slot(api, PJRT_SLOT_Event_OnReady, event_on_ready);
  set_slot(api, PJRT_SLOT_Client_Create, client_create);
  set_slot(api, PJRT_SLOT_Client_Destroy, client_destroy);
  set_slot(api, PJRT_SLOT_Client_PlatformName, client_platform_name);
  set_slot(api, PJRT_SLOT_Client_PlatformVersion, client_platform_version);
  set_slot(api, PJRT_SLOT_Client_Devices, client_devices);
  set_slot(api, PJRT_SLOT_Client_AddressableDevices, client_devices);
  set_slot(api, PJRT_SLOT_Client_Compile, fake_compile);
  set_slot(api, PJRT_SLOT_Client_BufferFromHostBuffer, fake_buffer_from_host);
  set_slot(api, PJRT_SLOT_DeviceDescription_Id, description_id);
  set_slot(api, PJRT_SLOT_DeviceDescription_Kind, description_kind);
  set_slot(api, PJRT_SLOT_DeviceDescription_DebugString, description_debug);
  set_slot(api, PJRT_SLOT_Device_GetDescription, device_get_description);
  set_slot(api, PJRT_SLOT_Device_LocalHardwareId, device_local_hardware_id);
  set_slot(api, PJRT_SLOT_Executable_Destroy, fake_executable_destroy);
  set_slot(api, PJRT_SLOT_Executable_NumOutputs, fake_executable_num_outputs);
  set_slot(api, PJRT_SLOT_Executable_OutputElementTypes, fake_executable_output_types);
  set_slot(api, PJRT_SLOT_LoadedExecutable_Destroy, fake_loaded_destroy);
  set_slot(api, PJRT_SLOT_LoadedExecutable_GetExecutable, fake_loaded_get_executable);
  set_slot(api, PJRT_SLOT_LoadedExecutable_AddressableDevices, fake_loaded_devices);
  set_slot(api, PJRT_SLOT_LoadedExecutable_Execute, fake_execute);
  set_slot(api, PJRT_SLOT_Buffer_Destroy, fake_buffer_destroy);
  set_slot(api, PJRT_SLOT_Buffer_ElementType, fake_buffer_element_type);
  set_slot(api, PJRT_SLOT_Buffer_Dimensions, fake_buffer_dimensions);
  set_slot(api, PJRT_SLOT_Buffer_OnDeviceSizeInBytes, fake_buffer_on_device_size);
  set_slot(api, PJRT_SLOT_Buffer_Device, fake_buffer_device);
  set_slot(api, PJRT_SLOT_Buffer_Delete, fake_buffer_delete);
  set_slot(api, PJRT_SLOT_Buffer_IsDeleted, fake_buffer_is_deleted);
  set_slot(api, PJRT_SLOT_Buffer_CopyToDevice, fake_buffer_copy_to_device);
  set_slot(api, PJRT_SLOT_Buffer_ToHostBuffer, fake_buffer_to_host);
  set_slot(api, PJRT_SLOT_Buffer_ReadyEvent, fake_buffer_ready_event);
}

/* The table is rebuilt at each call so every load sees the current mode. */
const PJRT_Api_Header* GetPjrtApi(void) {
  static fake_api_t api;
  memset(&api, 0, sizeof(api));
  fill_slots(&api);
  api.header.struct_size = sizeof(api);
  api.header.pjrt_api_version.struct_size = sizeof(PJRT_Api_Version);
  api.header.pjrt_api_version.major_version = fake_mode_is("bad_major") ? 1 : 0;
  api.header.pjrt_api_version.minor_version = 115;
  if (fake_mode_is("tiny_api")) api.header.struct_size = PJRT_API_SLOT_OFFSET(3);
  if (fake_mode_is("old_api")) {
    api.header.struct_size = PJRT_API_SLOT_OFFSET(PJRT_SLOT_Client_BufferFromHostBuffer);
    api.header.pjrt_api_version.minor_version = 20;
  }
  return &api.header;
}
