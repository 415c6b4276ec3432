/* fake_exec.c: buffers, compile and execute of the fake PJRT plugin.
 * A compiled program has N float32 outputs, N taken from "fake.outputs=N" in
 * the program text (default 1), and runs on num_replicas devices parsed from
 * the CompileOptionsProto. Output j = argument (j % num_args) + (j + 1).
 */
#include <stdlib.h>
#include <string.h>

#include "fake.h"

#define F32 11

/* ------------------------------------------------------------- buffers -- */

static PJRT_Buffer* buffer_new(int type, const int64_t* dims, size_t rank, PJRT_Device* dev) {
  PJRT_Buffer* b = (PJRT_Buffer*)calloc(1, sizeof(*b));
  if (!b) return NULL;
  b->type = type;
  b->rank = rank;
  b->nbytes = fake_item_size(type);
  for (size_t i = 0; i < rank; ++i) {
    b->dims[i] = dims[i];
    b->nbytes *= (size_t)dims[i];
  }
  b->device = dev;
  b->data = malloc(b->nbytes ? b->nbytes : 1);
  if (!b->data) { free(b); return NULL; }
  return b;
}

static void buffer_free(PJRT_Buffer* b) {
  if (!b) return;
  free(b->data);
  free(b);
}

PJRT_Error* fake_buffer_from_host(void* args) {
  PJRT_Client_BufferFromHostBuffer_Args* a = (PJRT_Client_BufferFromHostBuffer_Args*)args;
  FAKE_CHECK_SIZE(PJRT_Client_BufferFromHostBuffer_Args, a);
  if (fake_mode_is("alloc_fail")) return fake_error(8, "fake: out of device memory");
  if (a->host_buffer_semantics >= PJRT_HostBufferSemantics_kImmutableZeroCopy)
    return fake_error(12, "fake: zero-copy is not supported");
  if (!fake_item_size(a->type)) return fake_error(3, "fake: bad element type %d", a->type);
  if (a->num_dims > FAKE_MAX_RANK || a->byte_strides) return fake_error(12, "fake: layout");
  PJRT_Buffer* b = buffer_new(a->type, a->dims, a->num_dims, a->device);
  PJRT_Event* ev = fake_event();
  if (!b || !ev) { buffer_free(b); free(ev); return fake_error(8, "fake: oom"); }
  memcpy(b->data, a->data, b->nbytes);
  a->buffer = b;
  a->done_with_host_buffer = ev;
  return NULL;
}

PJRT_Error* fake_buffer_destroy(void* args) {
  buffer_free(((PJRT_Buffer_Args*)args)->buffer);
  return NULL;
}
PJRT_Error* fake_buffer_element_type(void* args) {
  PJRT_Buffer_ElementType_Args* a = (PJRT_Buffer_ElementType_Args*)args;
  a->type = a->buffer->type;
  return NULL;
}
PJRT_Error* fake_buffer_dimensions(void* args) {
  PJRT_Buffer_Dimensions_Args* a = (PJRT_Buffer_Dimensions_Args*)args;
  a->dims = a->buffer->dims;
  a->num_dims = a->buffer->rank;
  return NULL;
}
PJRT_Error* fake_buffer_on_device_size(void* args) {
  PJRT_Buffer_OnDeviceSizeInBytes_Args* a = (PJRT_Buffer_OnDeviceSizeInBytes_Args*)args;
  a->on_device_size_in_bytes = a->buffer->nbytes;
  return NULL;
}
PJRT_Error* fake_buffer_device(void* args) {
  PJRT_Buffer_Device_Args* a = (PJRT_Buffer_Device_Args*)args;
  a->device = a->buffer->device;
  return NULL;
}
PJRT_Error* fake_buffer_delete(void* args) {
  PJRT_Buffer* b = ((PJRT_Buffer_Args*)args)->buffer;
  free(b->data);
  b->data = NULL;
  b->deleted = 1;
  return NULL;
}
PJRT_Error* fake_buffer_is_deleted(void* args) {
  PJRT_Buffer_IsDeleted_Args* a = (PJRT_Buffer_IsDeleted_Args*)args;
  a->is_deleted = a->buffer->deleted != 0;
  return NULL;
}
PJRT_Error* fake_buffer_copy_to_device(void* args) {
  PJRT_Buffer_CopyToDevice_Args* a = (PJRT_Buffer_CopyToDevice_Args*)args;
  PJRT_Buffer* src = a->buffer;
  if (src->deleted) return fake_error(9, "fake: copy of a deleted buffer");
  PJRT_Buffer* b = buffer_new(src->type, src->dims, src->rank, a->dst_device);
  if (!b) return fake_error(8, "fake: oom");
  memcpy(b->data, src->data, src->nbytes);
  a->dst_buffer = b;
  return NULL;
}
PJRT_Error* fake_buffer_to_host(void* args) {
  PJRT_Buffer_ToHostBuffer_Args* a = (PJRT_Buffer_ToHostBuffer_Args*)args;
  FAKE_CHECK_SIZE(PJRT_Buffer_ToHostBuffer_Args, a);
  PJRT_Buffer* b = a->src;
  if (b->deleted) return fake_error(9, "fake: buffer was deleted");
  if (!a->dst) { a->dst_size = b->nbytes; return NULL; }
  if (a->dst_size < b->nbytes) return fake_error(3, "fake: dst too small");
  memcpy(a->dst, b->data, b->nbytes);
  a->event = fake_event();
  return a->event ? NULL : fake_error(8, "fake: oom");
}
PJRT_Error* fake_buffer_ready_event(void* args) {
  PJRT_Buffer_ReadyEvent_Args* a = (PJRT_Buffer_ReadyEvent_Args*)args;
  a->event = fake_event();
  return a->event ? NULL : fake_error(8, "fake: oom");
}

/* ------------------------------------------------------------- compile -- */

/* Reads num_replicas (field 4) inside field 3 of a CompileOptionsProto. */
static int parse_replicas(const uint8_t* p, size_t n) {
  if (n < 2 || p[0] != 0x1a || (size_t)p[1] + 2 > n) return -1;
  for (size_t i = 2; i + 1 < (size_t)p[1] + 2; i += 2) {
    if (p[i] == 0x20) return p[i + 1];
  }
  return -1;
}

/* compile_portable_executable (field 4 = 1) after field 3. */
static int parse_portable(const uint8_t* p, size_t n) {
  size_t at = n >= 2 ? (size_t)p[1] + 2 : n;
  return at + 1 < n && p[at] == 0x20 && p[at + 1] == 1;
}

PJRT_Error* fake_compile(void* args) {
  PJRT_Client_Compile_Args* a = (PJRT_Client_Compile_Args*)args;
  FAKE_CHECK_SIZE(PJRT_Client_Compile_Args, a);
  if (fake_mode_is("compile_fail"))
    return fake_error(3, "fake: compile error: unknown op 'stablehlo.frobnicate' at line 3");
  if (a->program->format_size != 4 || memcmp(a->program->format, "mlir", 4))
    return fake_error(3, "fake: program format must be mlir");
  int replicas = parse_replicas((const uint8_t*)a->compile_options, a->compile_options_size);
  if (replicas < 1 || replicas > a->client->num_devices)
    return fake_error(3, "fake: bad num_replicas %d in compile options", replicas);
  size_t outs = 1;
  const char* key = "fake.outputs=";
  char* text = strndup(a->program->code, a->program->code_size);
  const char* at = text ? strstr(text, key) : NULL;
  if (at) outs = (size_t)strtoul(at + strlen(key), NULL, 10);
  free(text);
  PJRT_LoadedExecutable* e = (PJRT_LoadedExecutable*)calloc(1, sizeof(*e));
  int* types = (int*)calloc(outs + 1, sizeof(int));
  if (!e || !types) { free(e); free(types); return fake_error(8, "fake: oom"); }
  for (size_t i = 0; i < outs; ++i) types[i] = F32;
  e->client = a->client;
  e->num_outputs = outs;
  e->num_devices = (size_t)replicas;
  e->output_types = types;
  e->portable = parse_portable((const uint8_t*)a->compile_options, a->compile_options_size);
  a->executable = e;
  return NULL;
}

PJRT_Error* fake_loaded_destroy(void* args) {
  PJRT_LoadedExecutable* e = ((PJRT_LoadedExecutable_Args*)args)->executable;
  if (e) free(e->output_types);
  free(e);
  return NULL;
}
PJRT_Error* fake_loaded_get_executable(void* args) {
  PJRT_LoadedExecutable_GetExecutable_Args* a = (PJRT_LoadedExecutable_GetExecutable_Args*)args;
  PJRT_Executable* x = (PJRT_Executable*)calloc(1, sizeof(*x));
  if (!x) return fake_error(8, "fake: oom");
  x->loaded = a->loaded_executable;
  a->executable = x;
  return NULL;
}
PJRT_Error* fake_executable_destroy(void* args) {
  free(((PJRT_Executable_Args*)args)->executable);
  return NULL;
}
PJRT_Error* fake_executable_num_outputs(void* args) {
  PJRT_Executable_NumOutputs_Args* a = (PJRT_Executable_NumOutputs_Args*)args;
  a->num_outputs = a->executable->loaded->num_outputs;
  return NULL;
}
PJRT_Error* fake_executable_output_types(void* args) {
  PJRT_Executable_OutputElementTypes_Args* a = (PJRT_Executable_OutputElementTypes_Args*)args;
  a->output_types = a->executable->loaded->output_types;
  a->num_output_types = a->executable->loaded->num_outputs;
  return NULL;
}
PJRT_Error* fake_loaded_devices(void* args) {
  PJRT_LoadedExecutable_AddressableDevices_Args* a =
      (PJRT_LoadedExecutable_AddressableDevices_Args*)args;
  a->addressable_devices = a->executable->client->device_ptrs;
  a->num_addressable_devices = a->executable->portable ? 0 : a->executable->num_devices;
  return NULL;
}

/* ------------------------------------------------------------- execute -- */

static PJRT_Error* check_args(const PJRT_LoadedExecutable_Execute_Args* a) {
  const PJRT_LoadedExecutable* e = a->executable;
  if (a->num_devices != e->num_devices)
    return fake_error(3, "fake: expected %zu devices, got %zu", e->num_devices, a->num_devices);
  if (e->portable != (a->execute_device != NULL))
    return fake_error(3, "fake: execute_device must be set exactly for portable executables");
  for (size_t d = 0; d < a->num_devices; ++d) {
    for (size_t i = 0; i < a->num_args; ++i) {
      const PJRT_Buffer* b = a->argument_lists[d][i];
      if (b->deleted) return fake_error(9, "fake: argument %zu was deleted", i);
      if (b->type != F32) return fake_error(3, "fake: argument %zu is not f32", i);
      if (b->device != (e->portable ? a->execute_device : e->client->device_ptrs[d]))
        return fake_error(3, "fake: argument %zu is on the wrong device", i);
    }
  }
  return NULL;
}

/* Output j of device d = argument (j % num_args) + (j + 1); scalar 42 without args. */
static PJRT_Buffer* run_one(const PJRT_LoadedExecutable_Execute_Args* a, size_t d, size_t j) {
  if (a->num_args == 0) {
    PJRT_Device* dev = a->execute_device ? a->execute_device : a->executable->client->device_ptrs[d];
    PJRT_Buffer* b = buffer_new(F32, NULL, 0, dev);
    if (b) *(float*)b->data = 42.0f;
    return b;
  }
  const PJRT_Buffer* src = a->argument_lists[d][j % a->num_args];
  PJRT_Buffer* b = buffer_new(F32, src->dims, src->rank, src->device);
  if (!b) return NULL;
  const float* in = (const float*)src->data;
  float* out = (float*)b->data;
  for (size_t k = 0; k < src->nbytes / sizeof(float); ++k) out[k] = in[k] + (float)(j + 1);
  return b;
}

static int is_donated(const PJRT_LoadedExecutable_Execute_Args* a, size_t i) {
  for (size_t k = 0; k < a->options->num_non_donatable_input_indices; ++k) {
    if (a->options->non_donatable_input_indices[k] == (int64_t)i) return 0;
  }
  return 1;
}

PJRT_Error* fake_execute(void* args) {
  PJRT_LoadedExecutable_Execute_Args* a = (PJRT_LoadedExecutable_Execute_Args*)args;
  FAKE_CHECK_SIZE(PJRT_LoadedExecutable_Execute_Args, a);
  FAKE_CHECK_SIZE(PJRT_ExecuteOptions, a->options);
  if (fake_mode_is("execute_fail")) return fake_error(13, "fake: execution failed");
  PJRT_Error* err = check_args(a);
  if (err) return err;
  for (size_t d = 0; d < a->num_devices; ++d) {
    for (size_t j = 0; j < a->executable->num_outputs; ++j) {
      a->output_lists[d][j] = run_one(a, d, j);
      if (!a->output_lists[d][j]) return fake_error(8, "fake: oom");
    }
    if (fake_mode_is("execute_partial"))  /* leaves device 0's outputs behind */
      return fake_error(13, "fake: execution failed after producing outputs");
  }
  for (size_t d = 0; d < a->num_devices; ++d) {
    for (size_t i = 0; i < a->num_args; ++i) {
      if (is_donated(a, i)) fake_buffer_delete(&(PJRT_Buffer_Args){.buffer = a->argument_lists[d][i]});
    }
    if (a->device_complete_events) a->device_complete_events[d] = fake_event();
  }
  return NULL;
}
