/* execute.c: launching an executable on its devices. Builds the per-device
 * argument and output lists PJRT wants, marks every argument not donated as
 * non-donatable, and cleans up every output and event on any failure.
 */
#include <stdlib.h>
#include <string.h>

#include "pjrt/pjrt_internal.h"

#define LAUNCH_INLINE 16

/* Scratch arrays for one launch, freed together. A one-device launch of up to
 * LAUNCH_INLINE arguments and outputs (every eager op) uses the inline ones. */
typedef struct launch_s {
  PJRT_Buffer** args;          /* (num_devices, num_args) */
  PJRT_Buffer* const** arg_lists; /* (num_devices) rows of args */
  PJRT_Buffer** outs;          /* (num_devices, num_outputs), filled by plugin */
  PJRT_Buffer*** out_lists;    /* (num_devices) rows of outs */
  PJRT_Event** events;         /* (num_devices) or NULL */
  int64_t* keep;               /* (num_keep) non-donatable argument indices */
  size_t num_keep;
  bool small;                  /* the arrays below are used */
  PJRT_Buffer* args_inline[LAUNCH_INLINE + 1];
  PJRT_Buffer* const* arg_lists_inline[1];
  PJRT_Buffer* outs_inline[LAUNCH_INLINE + 1];
  PJRT_Buffer** out_lists_inline[1];
  PJRT_Event* events_inline[1];
  int64_t keep_inline[LAUNCH_INLINE + 1];
} launch_t;

static void launch_free(launch_t* l) {
  if (l->small) return;
  free(l->args);
  free(l->arg_lists);
  free(l->outs);
  free(l->out_lists);
  free(l->events);
  free(l->keep);
}

static void launch_alloc(launch_t* l, size_t nd, size_t na, size_t no, bool events) {
  l->small = nd == 1 && na <= LAUNCH_INLINE && no <= LAUNCH_INLINE;
  if (l->small) {
    l->args = l->args_inline;
    l->arg_lists = l->arg_lists_inline;
    l->outs = l->outs_inline;
    l->out_lists = l->out_lists_inline;
    l->events = events ? l->events_inline : NULL;
    l->keep = l->keep_inline;
    return;
  }
  l->args = (PJRT_Buffer**)calloc(nd * na + 1, sizeof(PJRT_Buffer*));
  l->arg_lists = (PJRT_Buffer* const**)calloc(nd, sizeof(*l->arg_lists));
  l->outs = (PJRT_Buffer**)calloc(nd * no + 1, sizeof(PJRT_Buffer*));
  l->out_lists = (PJRT_Buffer***)calloc(nd, sizeof(*l->out_lists));
  l->events = events ? (PJRT_Event**)calloc(nd, sizeof(PJRT_Event*)) : NULL;
  l->keep = (int64_t*)calloc(na + 1, sizeof(int64_t));
}

static tpj_status_t launch_init(launch_t* l, const tpj_executable_t* e,
                                const tpj_execute_args_t* x) {
  size_t nd = x->num_devices, na = x->num_args, no = e->num_outputs;
  launch_alloc(l, nd, na, no, x->out_events != NULL);
  if (!l->args || !l->arg_lists || !l->outs || !l->out_lists || !l->keep ||
      (x->out_events && !l->events)) {
    return TPJ_STATUS(RESOURCE_EXHAUSTED, "execute: out of memory");
  }
  for (size_t d = 0; d < nd; ++d) {
    for (size_t i = 0; i < na; ++i) {
      const tpj_buffer_t* b = x->args[d * na + i];
      TPJ_CHECK_ARG(b, "execute: argument %zu on device %zu is NULL", i, d);
      TPJ_CHECK_ARG(b->client == e->client,
                    "execute: argument %zu on device %zu belongs to another client", i, d);
      TPJ_CHECK_ARG(!(e->portable || x->device != 0) || b->device_index == x->device,
                    "execute: argument %zu is on device %zu (expected the execute device %zu)",
                    i, b->device_index, x->device);
      l->args[d * na + i] = b->buffer;
    }
    l->arg_lists[d] = l->args + d * na;
    l->out_lists[d] = l->outs + d * no;
  }
  for (size_t i = 0; i < na; ++i) {
    if (!(x->donate && x->donate[i])) l->keep[l->num_keep++] = (int64_t)i;
  }
  return NULL;
}

/* The PJRT device to run on (execute_device): x->device for a portable
 * executable; NULL (the compiled assignment) otherwise. */
static tpj_status_t launch_device(const tpj_executable_t* e, const tpj_execute_args_t* x,
                                  PJRT_Device** out_device) {
  *out_device = NULL;
  if (x->device == 0 && !e->portable) return NULL;
  TPJ_CHECK_ARG(e->num_devices == 1, "execute: a device index needs a single-device "
                "executable (got device %zu for %zu devices)", x->device, e->num_devices);
  TPJ_CHECK_ARG(x->device < e->client->num_addressable,
                "execute: device index out of range (got %zu, expected < %zu)", x->device,
                e->client->num_addressable);
  if (!e->portable) {
    TPJ_CHECK_ARG(x->device == e->device_indices[0], "execute: the executable is assigned "
                  "to device %zu (got device %zu; compile it portable to choose the device)",
                  e->device_indices[0], x->device);
    return NULL;
  }
  *out_device = e->client->devices[x->device].device;
  return NULL;
}

/* Destroys whatever the plugin left in the output lists and event array. */
static void launch_release_outputs(launch_t* l, tpj_plugin_t* p, size_t nd, size_t no) {
  for (size_t i = 0; i < nd * no; ++i) tpj_pjrt_buffer_destroy_raw(p, l->outs[i]);
  if (l->events) {
    for (size_t d = 0; d < nd; ++d) tpj_pjrt_event_destroy_raw(p, l->events[d]);
  }
}

/* Moves raw outputs and events into caller-visible wrappers, all or nothing. */
static tpj_status_t launch_publish(launch_t* l, tpj_executable_t* e,
                                   const tpj_execute_args_t* x) {
  tpj_plugin_t* p = e->client->plugin;
  size_t total = x->num_devices * e->num_outputs;
  tpj_status_t st = NULL;
  size_t done = 0;
  for (; done < total && !st; ++done) {
    PJRT_Buffer* raw = l->outs[done];
    l->outs[done] = NULL; /* wrap owns it from here, even on failure */
    st = raw ? tpj_buffer_wrap(e->client, raw, &x->out_buffers[done])
             : TPJ_STATUS(INTERNAL, "execute: plugin returned no buffer for output %zu",
                          done % (e->num_outputs ? e->num_outputs : 1));
  }
  for (size_t d = 0; d < x->num_devices && x->out_events && !st; ++d) {
    PJRT_Event* raw = l->events[d];
    l->events[d] = NULL;
    st = tpj_event_wrap(p, raw, &x->out_events[d]);
  }
  if (!st) return NULL;
  launch_release_outputs(l, p, x->num_devices, e->num_outputs);
  for (size_t i = 0; i < total; ++i) {
    tpj_buffer_destroy(x->out_buffers[i]);
    x->out_buffers[i] = NULL;
  }
  for (size_t d = 0; x->out_events && d < x->num_devices; ++d) {
    tpj_event_destroy(x->out_events[d]);
    x->out_events[d] = NULL;
  }
  return st;
}

tpj_status_t tpj_executable_execute(tpj_executable_t* e, const tpj_execute_args_t* x) {
  TPJ_CHECK_ARG(e && x, "tpj_executable_execute: NULL argument");
  TPJ_CHECK_ARG(x->num_devices == e->num_devices,
                "execute: wrong number of devices (got %zu, expected %zu)", x->num_devices,
                e->num_devices);
  TPJ_CHECK_ARG(x->args || x->num_args == 0, "execute: args is NULL");
  TPJ_CHECK_ARG(x->out_buffers || e->num_outputs == 0, "execute: out_buffers is NULL");
  size_t total = x->num_devices * e->num_outputs;
  for (size_t i = 0; i < total; ++i) x->out_buffers[i] = NULL;
  for (size_t d = 0; x->out_events && d < x->num_devices; ++d) x->out_events[d] = NULL;

  launch_t l;
  memset(&l, 0, sizeof(l));
  PJRT_Device* device = NULL;
  tpj_status_t st = launch_device(e, x, &device);
  if (!st) st = launch_init(&l, e, x);
  if (st) {
    launch_free(&l);
    return st;
  }
  PJRT_ExecuteOptions opts = PJRT_ARGS(PJRT_ExecuteOptions);
  opts.non_donatable_input_indices = l.keep;
  opts.num_non_donatable_input_indices = l.num_keep;
  PJRT_LoadedExecutable_Execute_Args a = PJRT_ARGS(PJRT_LoadedExecutable_Execute_Args);
  a.executable = e->loaded;
  a.options = &opts;
  a.argument_lists = (PJRT_Buffer* const* const*)l.arg_lists;
  a.num_devices = x->num_devices;
  a.num_args = x->num_args;
  a.output_lists = (PJRT_Buffer** const*)l.out_lists;
  a.device_complete_events = l.events;
  a.execute_device = device;
  st = TPJ_PJRT_CALL(e->client->plugin, LoadedExecutable_Execute, &a);
  if (st) {
    /* A plugin may fail after producing some outputs: release them all. */
    launch_release_outputs(&l, e->client->plugin, x->num_devices, e->num_outputs);
  } else {
    st = launch_publish(&l, e, x);
  }
  launch_free(&l);
  return st;
}
