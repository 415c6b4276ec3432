/* kv_store.c: the PJRT key-value callbacks over a tpj_kv_store_t. Plugins that
 * build a client spanning several processes (node_id/num_nodes) exchange their
 * topology through them; under torch.distributed the store is the c10d Store.
 * Errors from the store go back to the plugin as PJRT errors with its code.
 */
#include <stdlib.h>
#include <string.h>

#include "pjrt/pjrt_internal.h"

static void free_value(char* value) { free(value); }

/* The store's error as the plugin's error (consumes st). */
static PJRT_Error* to_plugin_error(PJRT_CallbackError* make, tpj_status_t st) {
  const char* msg = tpj_status_message(st);
  PJRT_Error* e = make && *make ? (*make)((int)tpj_status_code(st), msg, strlen(msg)) : NULL;
  tpj_status_free(st);
  return e;
}

static PJRT_Error* kv_get(PJRT_KeyValueGetCallback_Args* a) {
  const tpj_kv_store_t* kv = (const tpj_kv_store_t*)a->user_arg;
  char* value = NULL;
  size_t size = 0;
  tpj_status_t st = kv->get(kv->user, a->key, a->key_size, a->timeout_in_ms, &value, &size);
  if (st) return to_plugin_error(a->callback_error, st);
  a->value = value;
  a->value_size = size;
  a->value_deleter_callback = free_value;
  return NULL;
}

static PJRT_Error* kv_try_get(PJRT_KeyValueTryGetCallback_Args* a) {
  const tpj_kv_store_t* kv = (const tpj_kv_store_t*)a->user_arg;
  char* value = NULL;
  size_t size = 0;
  tpj_status_t st = kv->try_get(kv->user, a->key, a->key_size, &value, &size);
  if (st) return to_plugin_error(a->callback_error, st);
  a->value = value;
  a->value_size = size;
  a->value_deleter_callback = free_value;
  return NULL;
}

static PJRT_Error* kv_put(PJRT_KeyValuePutCallback_Args* a) {
  const tpj_kv_store_t* kv = (const tpj_kv_store_t*)a->user_arg;
  tpj_status_t st = kv->put(kv->user, a->key, a->key_size, a->value, a->value_size);
  return st ? to_plugin_error(a->callback_error, st) : NULL;
}

tpj_status_t tpj_pjrt_kv_check(const tpj_kv_store_t* store) {
  if (!store) return NULL;
  TPJ_CHECK_ARG(store->get && store->put,
                "key-value store: get and put are required (got get %s, put %s)",
                store->get ? "set" : "NULL", store->put ? "set" : "NULL");
  return NULL;
}

void tpj_pjrt_kv_offer(tpj_client_t* c, PJRT_Client_Create_Args* a) {
  if (!c->kv.get) return;
  a->kv_get_callback = (void*)kv_get;
  a->kv_get_user_arg = &c->kv;
  a->kv_put_callback = (void*)kv_put;
  a->kv_put_user_arg = &c->kv;
  if (c->kv.try_get) {
    a->kv_try_get_callback = (void*)kv_try_get;
    a->kv_try_get_user_arg = &c->kv;
  }
}

void tpj_pjrt_kv_release(tpj_client_t* c) {
  if (c->kv.release) c->kv.release(c->kv.user);
  memset(&c->kv, 0, sizeof(c->kv));
}
