/* client.c: PJRT clients. Creates a client with named options, and copies the
 * platform strings and the addressable device list (id, kind, local hardware
 * id, debug string) once, so later lookups need no plugin calls.
 */
#include <stdlib.h>
#include <string.h>

#include "pjrt/pjrt_internal.h"

static tpj_status_t to_named_values(const tpj_option_t* options, size_t n,
                                    PJRT_NamedValue* out) {
  for (size_t i = 0; i < n; ++i) {
    const tpj_option_t* o = &options[i];
    TPJ_CHECK_ARG(o->name && *o->name, "client option %zu: name is empty", i);
    PJRT_NamedValue* v = &out[i];
    memset(v, 0, sizeof(*v));
    v->struct_size = PJRT_NamedValue_STRUCT_SIZE;
    v->name = o->name;
    v->name_size = strlen(o->name);
    v->value_size = 1;
    switch (o->kind) {
      case TPJ_OPTION_KIND_STRING:
        TPJ_CHECK_ARG(o->string_value, "client option %s: string value is NULL", o->name);
        v->type = PJRT_NamedValue_kString;
        v->string_value = o->string_value;
        v->value_size = strlen(o->string_value);
        break;
      case TPJ_OPTION_KIND_INT64:
        v->type = PJRT_NamedValue_kInt64;
        v->int64_value = o->int_value;
        break;
      case TPJ_OPTION_KIND_INT64_LIST:
        TPJ_CHECK_ARG(o->int_list || o->int_list_count == 0,
                      "client option %s: int list is NULL", o->name);
        v->type = PJRT_NamedValue_kInt64List;
        v->int64_array_value = o->int_list;
        v->value_size = o->int_list_count;
        break;
      case TPJ_OPTION_KIND_FLOAT:
        v->type = PJRT_NamedValue_kFloat;
        v->float_value = o->float_value;
        break;
      case TPJ_OPTION_KIND_BOOL:
        v->type = PJRT_NamedValue_kBool;
        v->bool_value = o->int_value != 0;
        break;
      default:
        return TPJ_STATUS(INVALID_ARGUMENT, "client option %s: unknown kind (got %d)",
                          o->name, (int)o->kind);
    }
  }
  return NULL;
}

static tpj_status_t read_client_string(tpj_client_t* c, pjrt_slot_t slot,
                                       const char* name, char** out) {
  PJRT_Client_String_Args a = PJRT_ARGS(PJRT_Client_String_Args);
  a.client = c->client;
  TPJ_RETURN_IF_ERROR(tpj_pjrt_call(c->plugin, slot, name, &a));
  *out = tpj_pjrt_strndup(a.value ? a.value : "", a.value ? a.value_size : 0);
  return *out ? NULL : TPJ_STATUS(RESOURCE_EXHAUSTED, "%s: out of memory", name);
}

static tpj_status_t read_desc_string(tpj_plugin_t* p, PJRT_DeviceDescription* desc,
                                     pjrt_slot_t slot, const char* name, char** out) {
  PJRT_DeviceDescription_String_Args a = PJRT_ARGS(PJRT_DeviceDescription_String_Args);
  a.device_description = desc;
  TPJ_RETURN_IF_ERROR(tpj_pjrt_call(p, slot, name, &a));
  *out = tpj_pjrt_strndup(a.value ? a.value : "", a.value ? a.value_size : 0);
  return *out ? NULL : TPJ_STATUS(RESOURCE_EXHAUSTED, "%s: out of memory", name);
}

static tpj_status_t read_device(tpj_plugin_t* p, PJRT_Device* device, tpj_device_t* d) {
  d->device = device;
  d->local_hardware_id = -1;
  PJRT_Device_GetDescription_Args g = PJRT_ARGS(PJRT_Device_GetDescription_Args);
  g.device = device;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(p, Device_GetDescription, &g));
  PJRT_DeviceDescription_Id_Args id = PJRT_ARGS(PJRT_DeviceDescription_Id_Args);
  id.device_description = g.device_description;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(p, DeviceDescription_Id, &id));
  d->id = id.id;
  TPJ_RETURN_IF_ERROR(read_desc_string(p, g.device_description, PJRT_SLOT_DeviceDescription_Kind,
                                       "PJRT_DeviceDescription_Kind", &d->kind));
  TPJ_RETURN_IF_ERROR(read_desc_string(p, g.device_description,
                                       PJRT_SLOT_DeviceDescription_DebugString,
                                       "PJRT_DeviceDescription_DebugString",
                                       &d->debug_string));
  void* fn = NULL;
  tpj_status_t st = tpj_pjrt_fn(p, PJRT_SLOT_Device_LocalHardwareId, "", &fn);
  if (st) { /* optional */
    tpj_status_free(st);
    return NULL;
  }
  PJRT_Device_LocalHardwareId_Args h = PJRT_ARGS(PJRT_Device_LocalHardwareId_Args);
  h.device = device;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(p, Device_LocalHardwareId, &h));
  d->local_hardware_id = h.local_hardware_id;
  return NULL;
}

static tpj_status_t read_devices(tpj_client_t* c) {
  PJRT_Client_Devices_Args all = PJRT_ARGS(PJRT_Client_Devices_Args);
  all.client = c->client;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(c->plugin, Client_Devices, &all));
  c->num_devices = all.num_devices;
  PJRT_Client_Devices_Args a = PJRT_ARGS(PJRT_Client_Devices_Args);
  a.client = c->client;
  TPJ_RETURN_IF_ERROR(TPJ_PJRT_CALL(c->plugin, Client_AddressableDevices, &a));
  if (a.num_devices == 0) return NULL;
  c->devices = (tpj_device_t*)calloc(a.num_devices, sizeof(tpj_device_t));
  if (!c->devices) return TPJ_STATUS(RESOURCE_EXHAUSTED, "client devices: out of memory");
  c->num_addressable = a.num_devices;
  for (size_t i = 0; i < a.num_devices; ++i) {
    TPJ_RETURN_IF_ERROR(tpj_status_annotate(read_device(c->plugin, a.devices[i], &c->devices[i]),
                                            "device %zu", i));
  }
  return NULL;
}

static tpj_status_t client_init(tpj_client_t* c, const tpj_option_t* options, size_t n) {
  PJRT_NamedValue* values = NULL;
  if (n) {
    values = (PJRT_NamedValue*)calloc(n, sizeof(PJRT_NamedValue));
    if (!values) return TPJ_STATUS(RESOURCE_EXHAUSTED, "client options: out of memory");
  }
  tpj_status_t st = to_named_values(options, n, values);
  if (!st) {
    PJRT_Client_Create_Args a = PJRT_ARGS(PJRT_Client_Create_Args);
    a.create_options = values;
    a.num_options = n;
    tpj_pjrt_kv_offer(c, &a);
    st = TPJ_PJRT_CALL(c->plugin, Client_Create, &a);
    c->client = a.client;
  }
  free(values);
  TPJ_RETURN_IF_ERROR(st);
  TPJ_RETURN_IF_ERROR(read_client_string(c, PJRT_SLOT_Client_PlatformName,
                                         "PJRT_Client_PlatformName", &c->platform_name));
  TPJ_RETURN_IF_ERROR(read_client_string(c, PJRT_SLOT_Client_PlatformVersion,
                                         "PJRT_Client_PlatformVersion",
                                         &c->platform_version));
  return read_devices(c);
}

tpj_status_t tpj_client_create(tpj_plugin_t* plugin, const tpj_option_t* options,
                               size_t num_options, tpj_client_t** out_client) {
  return tpj_client_create_with_store(plugin, options, num_options, NULL, out_client);
}

tpj_status_t tpj_client_create_with_store(tpj_plugin_t* plugin, const tpj_option_t* options,
                                          size_t num_options, const tpj_kv_store_t* store,
                                          tpj_client_t** out_client) {
  TPJ_CHECK_ARG(plugin, "tpj_client_create: plugin is NULL");
  TPJ_CHECK_ARG(out_client, "tpj_client_create: out_client is NULL");
  TPJ_CHECK_ARG(options || num_options == 0, "tpj_client_create: options is NULL");
  *out_client = NULL;
  tpj_status_t bad = tpj_pjrt_kv_check(store);
  tpj_client_t* c = bad ? NULL : (tpj_client_t*)calloc(1, sizeof(*c));
  if (!c) {
    if (store && store->release) store->release(store->user);
    return bad ? bad : TPJ_STATUS(RESOURCE_EXHAUSTED, "tpj_client_create: out of memory");
  }
  c->plugin = plugin;
  if (store) c->kv = *store;
  tpj_status_t st = client_init(c, options, num_options);
  if (st) {
    tpj_client_destroy(c);
    return tpj_status_annotate(st, "creating a client for %s", plugin->path);
  }
  *out_client = c;
  return NULL;
}

void tpj_client_destroy(tpj_client_t* c) {
  if (!c) return;
  if (c->client) {
    PJRT_Client_Args a = PJRT_ARGS(PJRT_Client_Args);
    a.client = c->client;
    tpj_status_t st = TPJ_PJRT_CALL(c->plugin, Client_Destroy, &a);
    if (st) TPJ_LOG(WARNING, "%s", tpj_status_message(st));
    tpj_status_free(st);
  }
  for (size_t i = 0; i < c->num_addressable; ++i) {
    free(c->devices[i].kind);
    free(c->devices[i].debug_string);
  }
  free(c->devices);
  tpj_pjrt_kv_release(c);
  free(c->platform_name);
  free(c->platform_version);
  free(c);
}

tpj_plugin_t* tpj_client_plugin(const tpj_client_t* c) { return c ? c->plugin : NULL; }
const char* tpj_client_platform_name(const tpj_client_t* c) {
  return c && c->platform_name ? c->platform_name : "";
}
const char* tpj_client_platform_version(const tpj_client_t* c) {
  return c && c->platform_version ? c->platform_version : "";
}
size_t tpj_client_device_count(const tpj_client_t* c) { return c ? c->num_devices : 0; }
size_t tpj_client_addressable_device_count(const tpj_client_t* c) {
  return c ? c->num_addressable : 0;
}

tpj_status_t tpj_client_device_info(const tpj_client_t* c, size_t index,
                                    tpj_device_info_t* out_info) {
  TPJ_CHECK_ARG(c && out_info, "tpj_client_device_info: client or out_info is NULL");
  TPJ_CHECK_ARG(index < c->num_addressable,
                "device index out of range (got %zu, expected < %zu)", index,
                c->num_addressable);
  const tpj_device_t* d = &c->devices[index];
  out_info->id = d->id;
  out_info->local_hardware_id = d->local_hardware_id;
  out_info->kind = d->kind;
  out_info->debug_string = d->debug_string;
  return NULL;
}

size_t tpj_client_device_index(const tpj_client_t* c, const PJRT_Device* device) {
  for (size_t i = 0; i < c->num_addressable; ++i) {
    if (c->devices[i].device == device) return i;
  }
  return SIZE_MAX;
}
