/* event.c: PJRT events (completion of transfers and executions). Wraps
 * await / is-ready / on-ready so that an event's error arrives as a status.
 */
#include <stdlib.h>

#include "pjrt/pjrt_internal.h"

void tpj_pjrt_event_destroy_raw(const tpj_plugin_t* plugin, PJRT_Event* event) {
  if (!event) return;
  PJRT_Event_Args a = PJRT_ARGS(PJRT_Event_Args);
  a.event = event;
  tpj_status_t st = TPJ_PJRT_CALL(plugin, Event_Destroy, &a);
  if (st) TPJ_LOG(WARNING, "%s", tpj_status_message(st));
  tpj_status_free(st);
}

tpj_status_t tpj_pjrt_event_await_raw(const tpj_plugin_t* plugin, PJRT_Event* event,
                                      const char* what) {
  if (!event) return NULL;
  PJRT_Event_Args a = PJRT_ARGS(PJRT_Event_Args);
  a.event = event;
  tpj_status_t st = TPJ_PJRT_CALL(plugin, Event_Await, &a);
  tpj_pjrt_event_destroy_raw(plugin, event);
  return st ? tpj_status_annotate(st, "%s", what) : NULL;
}

tpj_status_t tpj_event_wrap(tpj_plugin_t* plugin, PJRT_Event* raw, tpj_event_t** out_event) {
  tpj_event_t* e = (tpj_event_t*)calloc(1, sizeof(*e));
  if (!e) {
    tpj_pjrt_event_destroy_raw(plugin, raw);
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "event: out of memory");
  }
  e->plugin = plugin;
  e->event = raw;
  e->refs = 1;
  *out_event = e;
  return NULL;
}

tpj_status_t tpj_event_await(tpj_event_t* event) {
  TPJ_CHECK_ARG(event, "tpj_event_await: event is NULL");
  if (!event->event) return NULL;
  PJRT_Event_Args a = PJRT_ARGS(PJRT_Event_Args);
  a.event = event->event;
  return TPJ_PJRT_CALL(event->plugin, Event_Await, &a);
}

bool tpj_event_is_ready(tpj_event_t* event) {
  if (!event || !event->event) return true;
  PJRT_Event_IsReady_Args a = PJRT_ARGS(PJRT_Event_IsReady_Args);
  a.event = event->event;
  tpj_status_t st = TPJ_PJRT_CALL(event->plugin, Event_IsReady, &a);
  if (st) { /* cannot ask: report ready so that await surfaces the problem */
    tpj_status_free(st);
    return true;
  }
  return a.is_ready;
}

typedef struct on_ready_ctx_s {
  tpj_plugin_t* plugin;
  tpj_event_callback_fn fn;
  void* user;
} on_ready_ctx_t;

static void on_ready_trampoline(PJRT_Error* error, void* user_arg) {
  on_ready_ctx_t* ctx = (on_ready_ctx_t*)user_arg;
  tpj_status_t st = tpj_pjrt_error_to_status(ctx->plugin, error, "PJRT_Event");
  tpj_event_callback_fn fn = ctx->fn;
  void* user = ctx->user;
  free(ctx);
  fn(st, user);
}

tpj_status_t tpj_event_on_ready(tpj_event_t* event, tpj_event_callback_fn fn, void* user) {
  TPJ_CHECK_ARG(event && fn, "tpj_event_on_ready: event or fn is NULL");
  if (!event->event) {
    fn(NULL, user);
    return NULL;
  }
  on_ready_ctx_t* ctx = (on_ready_ctx_t*)malloc(sizeof(*ctx));
  if (!ctx) return TPJ_STATUS(RESOURCE_EXHAUSTED, "tpj_event_on_ready: out of memory");
  ctx->plugin = event->plugin;
  ctx->fn = fn;
  ctx->user = user;
  PJRT_Event_OnReady_Args a = PJRT_ARGS(PJRT_Event_OnReady_Args);
  a.event = event->event;
  a.callback = on_ready_trampoline;
  a.user_arg = ctx;
  tpj_status_t st = TPJ_PJRT_CALL(event->plugin, Event_OnReady, &a);
  if (st) free(ctx); /* the callback was not registered */
  return st;
}

tpj_event_t* tpj_event_ref(tpj_event_t* event) {
  if (event) __atomic_add_fetch(&event->refs, 1, __ATOMIC_RELAXED);
  return event;
}

void tpj_event_destroy(tpj_event_t* event) {
  if (!event || __atomic_sub_fetch(&event->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
  tpj_pjrt_event_destroy_raw(event->plugin, event->event);
  free(event);
}
