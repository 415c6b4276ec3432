/* fake.h: shared internals of the fault-injecting fake PJRT plugin used by the
 * tests (built as libfake_pjrt.so). Objects live in malloc'ed memory; the
 * fault to inject is read from $TPJ_FAKE_MODE at every call.
 */
#ifndef TPJ_FAKE_H_
#define TPJ_FAKE_H_

#include <stddef.h>
#include <stdint.h>

#include "pjrt/pjrt_api.h"

#define FAKE_MAX_RANK 8

struct PJRT_Error { int code; char* message; };
struct PJRT_Event { int code; char* message; };   /* always ready */
struct PJRT_Device { int id; char debug[48]; };   /* doubles as its description */

struct PJRT_Client {
  int num_devices;
  struct PJRT_Device* devices;      /* (num_devices) */
  PJRT_Device** device_ptrs;        /* (num_devices) */
  char version[512];
  int node_id, num_nodes;           /* options node_id / num_nodes (0 / 1) */
  int kv_timeout_ms;                /* option fake_kv_timeout_ms (5000) */
};

struct PJRT_Buffer {
  int type;                         /* PJRT_Buffer_Type */
  int64_t dims[FAKE_MAX_RANK];      /* (rank) */
  size_t rank;
  void* data;                       /* (nbytes) malloc'ed, NULL once deleted */
  size_t nbytes;
  PJRT_Device* device;
  int deleted;
};

struct PJRT_LoadedExecutable {
  PJRT_Client* client;
  size_t num_outputs;
  size_t num_devices;               /* = num_replicas */
  int* output_types;                /* (num_outputs), all F32 */
  int portable;                     /* no device assignment: runs on execute_device */
};
struct PJRT_Executable { PJRT_LoadedExecutable* loaded; };

/* True when $TPJ_FAKE_MODE equals `mode`. */
int fake_mode_is(const char* mode);
PJRT_Error* fake_error(int code, const char* fmt, ...);
PJRT_Event* fake_event(void); /* carries an error in mode event_error */
/* Checks a caller's struct_size against the size the real ABI needs. */
PJRT_Error* fake_check_size(const char* name, size_t got, size_t need);
#define FAKE_CHECK_SIZE(T, args) \
  do { PJRT_Error* e_ = fake_check_size(#T, (args)->struct_size, offsetof(T, reserved_tail_)); \
       if (e_) return e_; } while (0)

size_t fake_item_size(int type);

/* fake_exec.c: buffers, compile, execute (PJRT_Fn-shaped). */
PJRT_Error* fake_buffer_from_host(void* args);
PJRT_Error* fake_buffer_destroy(void* args);
PJRT_Error* fake_buffer_element_type(void* args);
PJRT_Error* fake_buffer_dimensions(void* args);
PJRT_Error* fake_buffer_on_device_size(void* args);
PJRT_Error* fake_buffer_device(void* args);
PJRT_Error* fake_buffer_delete(void* args);
PJRT_Error* fake_buffer_is_deleted(void* args);
PJRT_Error* fake_buffer_copy_to_device(void* args);
PJRT_Error* fake_buffer_to_host(void* args);
PJRT_Error* fake_buffer_ready_event(void* args);
PJRT_Error* fake_compile(void* args);
PJRT_Error* fake_executable_destroy(void* args);
PJRT_Error* fake_executable_num_outputs(void* args);
PJRT_Error* fake_executable_output_types(void* args);
PJRT_Error* fake_loaded_destroy(void* args);
PJRT_Error* fake_loaded_get_executable(void* args);
PJRT_Error* fake_loaded_devices(void* args);
PJRT_Error* fake_execute(void* args);

#endif /* TPJ_FAKE_H_ */
