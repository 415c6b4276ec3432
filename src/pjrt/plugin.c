/* plugin.c: loading PJRT plugins (dlopen + GetPjrtApi), checking their API
 * version and function table, the process-wide plugin registry, and the one
 * place where PJRT_Error values become tpj_status_t.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pjrt/pjrt_internal.h"

static pthread_mutex_t g_registry_mu = PTHREAD_MUTEX_INITIALIZER;
static tpj_plugin_t* g_registry; /* loaded plugins, never freed */

/* ---------------------------------------------------------------- errors -- */

char* tpj_pjrt_strndup(const char* s, size_t n) {
  char* out = (char*)malloc(n + 1);
  if (!out) return NULL;
  if (n) memcpy(out, s, n);
  out[n] = '\0';
  return out;
}

static void* slot_ptr(const tpj_plugin_t* plugin, pjrt_slot_t slot) {
  if (PJRT_API_SLOT_OFFSET(slot + 1) > plugin->api_size) return NULL;
  void* fn = NULL;
  memcpy(&fn, (const char*)plugin->api + PJRT_API_SLOT_OFFSET(slot), sizeof(fn));
  return fn;
}

tpj_status_t tpj_pjrt_fn(const tpj_plugin_t* plugin, pjrt_slot_t slot,
                         const char* name, void** out_fn) {
  void* fn = slot_ptr(plugin, slot);
  if (!fn) {
    return TPJ_STATUS(UNIMPLEMENTED,
                      "%s is not provided by plugin %s (PJRT API %d.%d, api "
                      "struct_size %zu, slot %d)",
                      name, plugin->path, plugin->api_major, plugin->api_minor,
                      plugin->api_size, (int)slot);
  }
  *out_fn = fn;
  return NULL;
}

/* XLA's CPU runtime reports a failed allocation as INTERNAL "Out of memory
 * allocating N bytes"; other plugins use RESOURCE_EXHAUSTED. Both become
 * RESOURCE_EXHAUSTED, so callers see one code for running out of memory. */
static bool says_out_of_memory(const char* msg, size_t len) {
  static const char kNeedle[] = "out of memory";
  size_t n = sizeof(kNeedle) - 1;
  for (size_t i = 0; msg && i + n <= len; ++i) {
    if (strncasecmp(msg + i, kNeedle, n) == 0) return true;
  }
  return false;
}

tpj_status_t tpj_pjrt_error_to_status(const tpj_plugin_t* plugin, PJRT_Error* error,
                                      const char* what) {
  if (!error) return NULL;
  /* The error slots are checked at load time, so they exist here. */
  PJRT_Error_Message_Fn message_fn = (PJRT_Error_Message_Fn)slot_ptr(
      plugin, PJRT_SLOT_Error_Message);
  PJRT_Fn code_fn = (PJRT_Fn)slot_ptr(plugin, PJRT_SLOT_Error_GetCode);
  PJRT_Error_Destroy_Fn destroy_fn = (PJRT_Error_Destroy_Fn)slot_ptr(
      plugin, PJRT_SLOT_Error_Destroy);

  PJRT_Error_Message_Args m = PJRT_ARGS(PJRT_Error_Message_Args);
  m.error = error;
  message_fn(&m);
  PJRT_Error_GetCode_Args c = PJRT_ARGS(PJRT_Error_GetCode_Args);
  c.error = error;
  c.code = TPJ_STATUS_UNKNOWN;
  PJRT_Error* code_error = code_fn(&c);
  int code = c.code;
  if (code_error) { /* cannot even read the code: report UNKNOWN */
    PJRT_Error_Destroy_Args d = PJRT_ARGS(PJRT_Error_Destroy_Args);
    d.error = code_error;
    destroy_fn(&d);
    code = TPJ_STATUS_UNKNOWN;
  }
  if (code <= TPJ_STATUS_OK || code > TPJ_STATUS_UNAUTHENTICATED) code = TPJ_STATUS_UNKNOWN;
  int len = m.message_size > 4096 ? 4096 : (int)m.message_size;
  if (says_out_of_memory(m.message, (size_t)len)) code = TPJ_STATUS_RESOURCE_EXHAUSTED;
  tpj_status_t status = tpj_status_make((tpj_status_code_t)code, __FILE__, __LINE__,
                                        "%s failed: %.*s", what, len,
                                        m.message ? m.message : "");
  PJRT_Error_Destroy_Args d = PJRT_ARGS(PJRT_Error_Destroy_Args);
  d.error = error;
  destroy_fn(&d);
  return status;
}

tpj_status_t tpj_pjrt_call(const tpj_plugin_t* plugin, pjrt_slot_t slot,
                           const char* name, void* args) {
  void* fn = NULL;
  TPJ_RETURN_IF_ERROR(tpj_pjrt_fn(plugin, slot, name, &fn));
  return tpj_pjrt_error_to_status(plugin, ((PJRT_Fn)fn)(args), name);
}

/* ------------------------------------------------------------- loading -- */

/* Slots without which the plugin is unusable; checked once at load. */
static const struct { pjrt_slot_t slot; const char* name; } kRequiredSlots[] = {
    {PJRT_SLOT_Error_Destroy, "PJRT_Error_Destroy"},
    {PJRT_SLOT_Error_Message, "PJRT_Error_Message"},
    {PJRT_SLOT_Error_GetCode, "PJRT_Error_GetCode"},
    {PJRT_SLOT_Plugin_Initialize, "PJRT_Plugin_Initialize"},
    {PJRT_SLOT_Event_Destroy, "PJRT_Event_Destroy"},
    {PJRT_SLOT_Event_Await, "PJRT_Event_Await"},
    {PJRT_SLOT_Client_Create, "PJRT_Client_Create"},
    {PJRT_SLOT_Client_Destroy, "PJRT_Client_Destroy"},
};

static tpj_status_t check_api(tpj_plugin_t* p) {
  if (p->api_size < sizeof(PJRT_Api_Header)) {
    return TPJ_STATUS(FAILED_PRECONDITION,
                      "plugin %s: PJRT_Api struct_size too small (got %zu, expected "
                      ">= %zu)", p->path, p->api_size, sizeof(PJRT_Api_Header));
  }
  p->api_major = p->api->pjrt_api_version.major_version;
  p->api_minor = p->api->pjrt_api_version.minor_version;
  if (p->api_major != 0) {
    return TPJ_STATUS(FAILED_PRECONDITION,
                      "plugin %s: unsupported PJRT API major version (got %d.%d, "
                      "expected 0.x)", p->path, p->api_major, p->api_minor);
  }
  size_t n = sizeof(kRequiredSlots) / sizeof(kRequiredSlots[0]);
  for (size_t i = 0; i < n; ++i) {
    if (!slot_ptr(p, kRequiredSlots[i].slot)) {
      return TPJ_STATUS(FAILED_PRECONDITION,
                        "plugin %s: required function %s missing (PJRT API %d.%d, "
                        "api struct_size %zu)", p->path, kRequiredSlots[i].name,
                        p->api_major, p->api_minor, p->api_size);
    }
  }
  return NULL;
}

static void read_version3(const PJRT_NamedValue* v, int64_t out[3]) {
  if (v->type != PJRT_NamedValue_kInt64List || v->value_size < 3) return;
  for (int i = 0; i < 3; ++i) out[i] = v->int64_array_value[i];
}

/* Attributes are optional: a missing slot or a failing call is not an error. */
static void read_attributes(tpj_plugin_t* p) {
  if (!slot_ptr(p, PJRT_SLOT_Plugin_Attributes)) return;
  PJRT_Plugin_Attributes_Args a = PJRT_ARGS(PJRT_Plugin_Attributes_Args);
  tpj_status_t st = TPJ_PJRT_CALL(p, Plugin_Attributes, &a);
  if (st) {
    TPJ_LOG(INFO, "plugin %s: no attributes: %s", p->path, tpj_status_message(st));
    tpj_status_free(st);
    return;
  }
  for (size_t i = 0; i < a.num_attributes; ++i) {
    const PJRT_NamedValue* v = &a.attributes[i];
    if (!v->name) continue;
    if (v->name_size == 11 && !memcmp(v->name, "xla_version", 11) &&
        v->type == PJRT_NamedValue_kInt64) {
      p->xla_version = v->int64_value;
    } else if (v->name_size == 25 && !memcmp(v->name, "stablehlo_current_version", 25)) {
      read_version3(v, p->stablehlo_current);
    } else if (v->name_size == 25 && !memcmp(v->name, "stablehlo_minimum_version", 25)) {
      read_version3(v, p->stablehlo_minimum);
    }
  }
}

static tpj_status_t open_plugin(tpj_plugin_t* p) {
  dlerror();
  p->handle = dlopen(p->path, RTLD_NOW | RTLD_LOCAL);
  if (!p->handle) {
    const char* why = dlerror();
    return TPJ_STATUS(NOT_FOUND, "cannot load plugin %s: %s", p->path,
                      why ? why : "unknown dlopen error");
  }
  typedef const PJRT_Api_Header* (*get_api_fn)(void);
  get_api_fn get_api = NULL;
  void* sym = dlsym(p->handle, "GetPjrtApi");
  memcpy(&get_api, &sym, sizeof(get_api));
  if (!get_api) {
    return TPJ_STATUS(INVALID_ARGUMENT,
                      "%s is not a PJRT plugin: it does not export GetPjrtApi", p->path);
  }
  p->api = get_api();
  if (!p->api) {
    return TPJ_STATUS(FAILED_PRECONDITION, "plugin %s: GetPjrtApi returned NULL", p->path);
  }
  p->api_size = p->api->struct_size;
  TPJ_RETURN_IF_ERROR(check_api(p));
  PJRT_Plugin_Initialize_Args init = PJRT_ARGS(PJRT_Plugin_Initialize_Args);
  TPJ_RETURN_IF_ERROR(tpj_status_annotate(TPJ_PJRT_CALL(p, Plugin_Initialize, &init),
                                          "plugin %s", p->path));
  read_attributes(p);
  return NULL;
}

tpj_status_t tpj_plugin_load(const char* path, tpj_plugin_t** out_plugin) {
  TPJ_CHECK_ARG(path && *path, "tpj_plugin_load: path is empty");
  TPJ_CHECK_ARG(out_plugin, "tpj_plugin_load: out_plugin is NULL");
  *out_plugin = NULL;
  pthread_mutex_lock(&g_registry_mu);
  for (tpj_plugin_t* p = g_registry; p; p = p->next) {
    if (!strcmp(p->path, path)) {
      *out_plugin = p;
      pthread_mutex_unlock(&g_registry_mu);
      return NULL;
    }
  }
  tpj_status_t st = NULL;
  tpj_plugin_t* p = (tpj_plugin_t*)calloc(1, sizeof(*p));
  char* copy = p ? tpj_pjrt_strndup(path, strlen(path)) : NULL;
  if (!p || !copy) {
    st = TPJ_STATUS(RESOURCE_EXHAUSTED, "tpj_plugin_load: out of memory");
  } else {
    p->path = copy;
    p->xla_version = -1;
    for (int i = 0; i < 3; ++i) p->stablehlo_current[i] = p->stablehlo_minimum[i] = -1;
    st = open_plugin(p);
  }
  if (st) { /* failed loads are not cached; the dlopen handle stays open */
    if (p) free(p->path);
    free(p);
  } else {
    p->next = g_registry;
    g_registry = p;
    *out_plugin = p;
  }
  pthread_mutex_unlock(&g_registry_mu);
  return st;
}

void tpj_plugin_get_info(const tpj_plugin_t* plugin, tpj_plugin_info_t* out_info) {
  if (!out_info) return;
  memset(out_info, 0, sizeof(*out_info));
  if (!plugin) return;
  out_info->path = plugin->path;
  out_info->api_major = plugin->api_major;
  out_info->api_minor = plugin->api_minor;
  out_info->xla_version = plugin->xla_version;
  memcpy(out_info->stablehlo_current, plugin->stablehlo_current,
         sizeof(out_info->stablehlo_current));
  memcpy(out_info->stablehlo_minimum, plugin->stablehlo_minimum,
         sizeof(out_info->stablehlo_minimum));
}
