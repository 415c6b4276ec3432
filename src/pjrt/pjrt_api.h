/* pjrt_api.h: our own declarations of the subset of the PJRT C API that
 * src/pjrt/ (and the test fake plugin) use. Private: nothing outside src/pjrt
 * and tests/fake_plugin may include it.
 *
 * Layout facts (checked below with _Static_assert):
 *   - every args struct starts with {size_t struct_size; PJRT_Extension_Base*};
 *   - PJRT_Api: struct_size at 0, extension at 8, version {.., major @32,
 *     minor @36}, then function pointers; slot i lives at byte 40 + 8*i;
 *   - fields are only ever appended, and a plugin rejects a caller struct_size
 *     smaller than its own. Args structs we pass by pointer therefore end with
 *     a zeroed reserved tail (PJRT_TAIL) so that plugins newer than the header
 *     we know (fields appended up to API 0.115 and a little beyond) see a
 *     large-enough struct whose unknown trailing fields are zero/NULL. Structs
 *     used in arrays (PJRT_NamedValue) keep their exact size.
 */
#ifndef TPJ_PJRT_PJRT_API_H_
#define TPJ_PJRT_PJRT_API_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appended to args structs we own; stays zero. 8 words = 8 future fields. */
#define PJRT_TAIL uint64_t reserved_tail_[8]
/* A zeroed args struct with struct_size set. */
#define PJRT_ARGS(T) ((T){.struct_size = sizeof(T)})

typedef struct PJRT_Extension_Base {
  size_t struct_size;
  int type;
  struct PJRT_Extension_Base* next;
} PJRT_Extension_Base;

typedef struct PJRT_Error PJRT_Error;
typedef struct PJRT_Event PJRT_Event;
typedef struct PJRT_Client PJRT_Client;
typedef struct PJRT_Device PJRT_Device;
typedef struct PJRT_DeviceDescription PJRT_DeviceDescription;
typedef struct PJRT_Memory PJRT_Memory;
typedef struct PJRT_Executable PJRT_Executable;
typedef struct PJRT_LoadedExecutable PJRT_LoadedExecutable;
typedef struct PJRT_Buffer PJRT_Buffer;

/* ------------------------------------------------------------ PJRT_Api -- */

typedef struct PJRT_Api_Version {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  int major_version;
  int minor_version;
} PJRT_Api_Version;

/* Only the header; function pointers are reached by slot index. */
typedef struct PJRT_Api_Header {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Api_Version pjrt_api_version;
} PJRT_Api_Header;

#define PJRT_API_SLOT_OFFSET(i) (40 + 8 * (size_t)(i))

/* Slot indices (0-based) of the functions we call. */
typedef enum pjrt_slot_e {
  PJRT_SLOT_Error_Destroy = 0,
  PJRT_SLOT_Error_Message = 1,
  PJRT_SLOT_Error_GetCode = 2,
  PJRT_SLOT_Plugin_Initialize = 3,
  PJRT_SLOT_Plugin_Attributes = 4,
  PJRT_SLOT_Event_Destroy = 5,
  PJRT_SLOT_Event_IsReady = 6,
  PJRT_SLOT_Event_Error = 7,
  PJRT_SLOT_Event_Await = 8,
  PJRT_SLOT_Event_OnReady = 9,
  PJRT_SLOT_Client_Create = 10,
  PJRT_SLOT_Client_Destroy = 11,
  PJRT_SLOT_Client_PlatformName = 12,
  PJRT_SLOT_Client_PlatformVersion = 14,
  PJRT_SLOT_Client_Devices = 15,
  PJRT_SLOT_Client_AddressableDevices = 16,
  PJRT_SLOT_Client_Compile = 20,
  PJRT_SLOT_Client_BufferFromHostBuffer = 22,
  PJRT_SLOT_DeviceDescription_Id = 23,
  PJRT_SLOT_DeviceDescription_Kind = 26,
  PJRT_SLOT_DeviceDescription_DebugString = 27,
  PJRT_SLOT_Device_GetDescription = 29,
  PJRT_SLOT_Device_LocalHardwareId = 31,
  PJRT_SLOT_Device_MemoryStats = 34,
  PJRT_SLOT_Executable_Destroy = 40,
  PJRT_SLOT_Executable_NumOutputs = 44,
  PJRT_SLOT_Executable_Serialize = 49,
  PJRT_SLOT_LoadedExecutable_Destroy = 50,
  PJRT_SLOT_LoadedExecutable_GetExecutable = 51,
  PJRT_SLOT_LoadedExecutable_AddressableDevices = 52,
  PJRT_SLOT_LoadedExecutable_Execute = 55,
  PJRT_SLOT_Executable_DeserializeAndLoad = 56,
  PJRT_SLOT_Buffer_Destroy = 58,
  PJRT_SLOT_Buffer_ElementType = 59,
  PJRT_SLOT_Buffer_Dimensions = 60,
  PJRT_SLOT_Buffer_GetMemoryLayout = 63,
  PJRT_SLOT_Buffer_OnDeviceSizeInBytes = 64,
  PJRT_SLOT_Buffer_Device = 65,
  PJRT_SLOT_Buffer_Delete = 67,
  PJRT_SLOT_Buffer_IsDeleted = 68,
  PJRT_SLOT_Buffer_CopyToDevice = 69,
  PJRT_SLOT_Buffer_ToHostBuffer = 70,
  PJRT_SLOT_Buffer_IsOnCpu = 71,
  PJRT_SLOT_Buffer_ReadyEvent = 72,
  PJRT_SLOT_Buffer_UnsafePointer = 73,
  PJRT_SLOT_Executable_OutputElementTypes = 90,
  PJRT_SLOT_Executable_GetCompiledMemoryStats = 96, /* optional: newer plugins */
  PJRT_SLOT_COUNT_KNOWN_ = 92, /* slots 0..91 exist since API 0.4x */
} pjrt_slot_t;

/* Every call except the two error accessors has this shape. */
typedef PJRT_Error* (*PJRT_Fn)(void* args);

/* -------------------------------------------------------------- errors -- */

typedef struct PJRT_Error_Destroy_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Error* error;
  PJRT_TAIL;
} PJRT_Error_Destroy_Args;
typedef void (*PJRT_Error_Destroy_Fn)(PJRT_Error_Destroy_Args* args);

typedef struct PJRT_Error_Message_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const PJRT_Error* error;
  const char* message; /* out, lives as long as error */
  size_t message_size; /* out */
  PJRT_TAIL;
} PJRT_Error_Message_Args;
typedef void (*PJRT_Error_Message_Fn)(PJRT_Error_Message_Args* args);

typedef struct PJRT_Error_GetCode_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const PJRT_Error* error;
  int code; /* out: abseil code */
  PJRT_TAIL;
} PJRT_Error_GetCode_Args;

/* -------------------------------------------------------- named values -- */

typedef enum PJRT_NamedValue_Type {
  PJRT_NamedValue_kString = 0,
  PJRT_NamedValue_kInt64 = 1,
  PJRT_NamedValue_kInt64List = 2,
  PJRT_NamedValue_kFloat = 3,
  PJRT_NamedValue_kBool = 4,
} PJRT_NamedValue_Type;

/* Used in arrays: exact size, no tail. */
typedef struct PJRT_NamedValue {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const char* name;
  size_t name_size;
  PJRT_NamedValue_Type type;
  union {
    const char* string_value;
    int64_t int64_value;
    const int64_t* int64_array_value;
    float float_value;
    bool bool_value;
  };
  size_t value_size; /* elements for strings/lists, 1 for scalars */
} PJRT_NamedValue;
#define PJRT_NamedValue_STRUCT_SIZE \
  (offsetof(PJRT_NamedValue, value_size) + sizeof(size_t))

/* -------------------------------------------------------------- plugin -- */

typedef struct PJRT_Plugin_Initialize_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_TAIL;
} PJRT_Plugin_Initialize_Args;

typedef struct PJRT_Plugin_Attributes_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const PJRT_NamedValue* attributes; /* out (num_attributes), process lifetime */
  size_t num_attributes;             /* out */
  PJRT_TAIL;
} PJRT_Plugin_Attributes_Args;

/* -------------------------------------------------------------- events -- */

typedef struct PJRT_Event_Args { /* Destroy, Error, Await */
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Event* event;
  PJRT_TAIL;
} PJRT_Event_Args;

typedef struct PJRT_Event_IsReady_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Event* event;
  bool is_ready; /* out */
  PJRT_TAIL;
} PJRT_Event_IsReady_Args;

/* Owns `error` (must destroy it). */
typedef void (*PJRT_Event_OnReadyCallback)(PJRT_Error* error, void* user_arg);

typedef struct PJRT_Event_OnReady_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Event* event;
  PJRT_Event_OnReadyCallback callback;
  void* user_arg;
  PJRT_TAIL;
} PJRT_Event_OnReady_Args;

/* -------------------------------------------------------------- client -- */

/* Key-value store callbacks (the plugin calls them; it fills struct_size). */
typedef PJRT_Error* (*PJRT_CallbackError)(int code, const char* message, size_t message_size);
typedef void (*PJRT_KeyValueGetCallback_ValueDeleter)(char* value);

typedef struct PJRT_KeyValueGetCallback_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const char* key;
  size_t key_size;
  int timeout_in_ms;
  PJRT_CallbackError* callback_error;
  void* user_arg;
  char* value;                                         /* out */
  size_t value_size;                                   /* out */
  PJRT_KeyValueGetCallback_ValueDeleter value_deleter_callback; /* out */
} PJRT_KeyValueGetCallback_Args;

typedef struct PJRT_KeyValueTryGetCallback_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const char* key;
  size_t key_size;
  PJRT_CallbackError* callback_error;
  void* user_arg;
  char* value;                                         /* out */
  size_t value_size;                                   /* out */
  PJRT_KeyValueGetCallback_ValueDeleter value_deleter_callback; /* out */
} PJRT_KeyValueTryGetCallback_Args;

typedef struct PJRT_KeyValuePutCallback_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const char* key;
  size_t key_size;
  const char* value;
  size_t value_size;
  PJRT_CallbackError* callback_error;
  void* user_arg;
} PJRT_KeyValuePutCallback_Args;

typedef PJRT_Error* (*PJRT_KeyValueGetCallback)(PJRT_KeyValueGetCallback_Args* args);
typedef PJRT_Error* (*PJRT_KeyValueTryGetCallback)(PJRT_KeyValueTryGetCallback_Args* args);
typedef PJRT_Error* (*PJRT_KeyValuePutCallback)(PJRT_KeyValuePutCallback_Args* args);

typedef struct PJRT_Client_Create_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const PJRT_NamedValue* create_options; /* (num_options) */
  size_t num_options;
  void* kv_get_callback;
  void* kv_get_user_arg;
  void* kv_put_callback;
  void* kv_put_user_arg;
  PJRT_Client* client; /* out */
  void* kv_try_get_callback;
  void* kv_try_get_user_arg;
  PJRT_TAIL;
} PJRT_Client_Create_Args;

typedef struct PJRT_Client_Args { /* Destroy */
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Client* client;
  PJRT_TAIL;
} PJRT_Client_Args;

typedef struct PJRT_Client_String_Args { /* PlatformName, PlatformVersion */
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Client* client;
  const char* value;  /* out, lives as long as client */
  size_t value_size;  /* out */
  PJRT_TAIL;
} PJRT_Client_String_Args;

typedef struct PJRT_Client_Devices_Args { /* Devices, AddressableDevices */
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Client* client;
  PJRT_Device* const* devices; /* out (num_devices), owned by client */
  size_t num_devices;          /* out */
  PJRT_TAIL;
} PJRT_Client_Devices_Args;

typedef struct PJRT_Program {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  char* code; /* (code_size) */
  size_t code_size;
  const char* format; /* "mlir" */
  size_t format_size;
  PJRT_TAIL;
} PJRT_Program;

typedef struct PJRT_Client_Compile_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Client* client;
  const PJRT_Program* program;
  const char* compile_options; /* serialized CompileOptionsProto */
  size_t compile_options_size;
  PJRT_LoadedExecutable* executable; /* out */
  PJRT_TAIL;
} PJRT_Client_Compile_Args;

typedef enum PJRT_HostBufferSemantics {
  PJRT_HostBufferSemantics_kImmutableOnlyDuringCall = 0,
  PJRT_HostBufferSemantics_kImmutableUntilTransferCompletes = 1,
  PJRT_HostBufferSemantics_kImmutableZeroCopy = 2,
  PJRT_HostBufferSemantics_kMutableZeroCopy = 3,
} PJRT_HostBufferSemantics;

typedef struct PJRT_Client_BufferFromHostBuffer_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Client* client;
  const void* data;
  int type; /* PJRT_Buffer_Type == tpj_dtype_t */
  const int64_t* dims; /* (num_dims) */
  size_t num_dims;
  const int64_t* byte_strides; /* NULL: dense row-major */
  size_t num_byte_strides;
  PJRT_HostBufferSemantics host_buffer_semantics;
  PJRT_Device* device;
  PJRT_Memory* memory;  /* NULL */
  void* device_layout;  /* NULL */
  PJRT_Event* done_with_host_buffer; /* out, caller destroys */
  PJRT_Buffer* buffer;               /* out, caller destroys */
  PJRT_TAIL;
} PJRT_Client_BufferFromHostBuffer_Args;

/* ------------------------------------------------------------- devices -- */

typedef struct PJRT_Device_GetDescription_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Device* device;
  PJRT_DeviceDescription* device_description; /* out */
  PJRT_TAIL;
} PJRT_Device_GetDescription_Args;

typedef struct PJRT_Device_LocalHardwareId_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Device* device;
  int local_hardware_id; /* out */
  PJRT_TAIL;
} PJRT_Device_LocalHardwareId_Args;

/* Each *_is_set flag says whether the plugin filled the field before it. */
typedef struct PJRT_Device_MemoryStats_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Device* device;
  int64_t bytes_in_use; /* out, always set */
  int64_t peak_bytes_in_use;
  bool peak_bytes_in_use_is_set;
  int64_t num_allocs;
  bool num_allocs_is_set;
  int64_t largest_alloc_size;
  bool largest_alloc_size_is_set;
  int64_t bytes_limit;
  bool bytes_limit_is_set;
  int64_t bytes_reserved;
  bool bytes_reserved_is_set;
  int64_t peak_bytes_reserved;
  bool peak_bytes_reserved_is_set;
  int64_t bytes_reservable_limit;
  bool bytes_reservable_limit_is_set;
  PJRT_TAIL;
} PJRT_Device_MemoryStats_Args;

typedef struct PJRT_DeviceDescription_Id_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_DeviceDescription* device_description;
  int id; /* out */
  PJRT_TAIL;
} PJRT_DeviceDescription_Id_Args;

typedef struct PJRT_DeviceDescription_String_Args { /* Kind, DebugString */
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_DeviceDescription* device_description;
  const char* value; /* out, lives as long as the device */
  size_t value_size; /* out */
  PJRT_TAIL;
} PJRT_DeviceDescription_String_Args;

/* --------------------------------------------------------- executables -- */

typedef struct PJRT_Executable_Args { /* Executable_Destroy */
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Executable* executable;
  PJRT_TAIL;
} PJRT_Executable_Args;

typedef struct PJRT_Executable_NumOutputs_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Executable* executable;
  size_t num_outputs; /* out */
  PJRT_TAIL;
} PJRT_Executable_NumOutputs_Args;

typedef struct PJRT_Executable_OutputElementTypes_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Executable* executable;
  int* output_types;       /* out (num_output_types), owned by executable */
  size_t num_output_types; /* out */
  PJRT_TAIL;
} PJRT_Executable_OutputElementTypes_Args;

/* Device bytes a compiled program needs besides its arguments and outputs
 * (temp_size_in_bytes); the host_* fields are the same for host memory. */
typedef struct PJRT_Executable_GetCompiledMemoryStats_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Executable* executable;
  int64_t generated_code_size_in_bytes; /* out */
  int64_t argument_size_in_bytes;       /* out */
  int64_t output_size_in_bytes;         /* out */
  int64_t alias_size_in_bytes;          /* out */
  int64_t temp_size_in_bytes;           /* out */
  int64_t host_generated_code_size_in_bytes;
  int64_t host_argument_size_in_bytes;
  int64_t host_output_size_in_bytes;
  int64_t host_alias_size_in_bytes;
  int64_t host_temp_size_in_bytes;
  int64_t peak_memory_in_bytes; /* out (newer plugins) */
  PJRT_TAIL;
} PJRT_Executable_GetCompiledMemoryStats_Args;

/* Serialize: the bytes live until serialized_executable_deleter is called
 * (exactly once) on serialized_executable. */
typedef struct PJRT_SerializedExecutable PJRT_SerializedExecutable;
typedef struct PJRT_Executable_Serialize_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const PJRT_Executable* executable;
  const char* serialized_bytes;                      /* out (size) */
  size_t serialized_bytes_size;                      /* out */
  PJRT_SerializedExecutable* serialized_executable;  /* out: backs the bytes */
  void (*serialized_executable_deleter)(PJRT_SerializedExecutable* exec); /* out */
  PJRT_TAIL;
} PJRT_Executable_Serialize_Args;

/* DeserializeAndLoad: bytes from Serialize on the same platform and plugin
 * build. Newer APIs append override fields, left zero by PJRT_TAIL. */
typedef struct PJRT_Executable_DeserializeAndLoad_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Client* client;
  const char* serialized_executable; /* (serialized_executable_size) */
  size_t serialized_executable_size;
  PJRT_LoadedExecutable* loaded_executable; /* out, caller destroys */
  PJRT_TAIL;
} PJRT_Executable_DeserializeAndLoad_Args;

typedef struct PJRT_LoadedExecutable_Args { /* LoadedExecutable_Destroy */
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_LoadedExecutable* executable;
  PJRT_TAIL;
} PJRT_LoadedExecutable_Args;

typedef struct PJRT_LoadedExecutable_GetExecutable_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_LoadedExecutable* loaded_executable;
  PJRT_Executable* executable; /* out, caller destroys */
  PJRT_TAIL;
} PJRT_LoadedExecutable_GetExecutable_Args;

typedef struct PJRT_LoadedExecutable_AddressableDevices_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_LoadedExecutable* executable;
  PJRT_Device* const* addressable_devices; /* out (num), owned by executable */
  size_t num_addressable_devices;          /* out */
  PJRT_TAIL;
} PJRT_LoadedExecutable_AddressableDevices_Args;

typedef struct PJRT_ExecuteOptions {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  void** send_callbacks;
  void** recv_callbacks;
  size_t num_send_ops;
  size_t num_recv_ops;
  int launch_id;
  const int64_t* non_donatable_input_indices; /* (num_non_donatable_...) */
  size_t num_non_donatable_input_indices;
  void* context;
  const char* call_location;
  size_t num_tasks;
  int* task_ids;
  int64_t* incarnation_ids;
  PJRT_TAIL;
} PJRT_ExecuteOptions;

typedef struct PJRT_LoadedExecutable_Execute_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_LoadedExecutable* executable;
  PJRT_ExecuteOptions* options;               /* never NULL */
  PJRT_Buffer* const* const* argument_lists;  /* (num_devices, num_args) */
  size_t num_devices;
  size_t num_args;
  PJRT_Buffer** const* output_lists;   /* (num_devices, num_outputs), filled */
  PJRT_Event** device_complete_events; /* (num_devices) or NULL, filled */
  PJRT_Device* execute_device;         /* NULL */
  PJRT_TAIL;
} PJRT_LoadedExecutable_Execute_Args;

/* ------------------------------------------------------------- buffers -- */

typedef struct PJRT_Buffer_Args { /* Destroy, Delete */
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  PJRT_TAIL;
} PJRT_Buffer_Args;

typedef struct PJRT_Buffer_ElementType_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  int type; /* out */
  PJRT_TAIL;
} PJRT_Buffer_ElementType_Args;

typedef struct PJRT_Buffer_Dimensions_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  const int64_t* dims; /* out (num_dims), owned by buffer */
  size_t num_dims;     /* out */
  PJRT_TAIL;
} PJRT_Buffer_Dimensions_Args;

typedef struct PJRT_Buffer_OnDeviceSizeInBytes_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  size_t on_device_size_in_bytes; /* out */
  PJRT_TAIL;
} PJRT_Buffer_OnDeviceSizeInBytes_Args;

typedef struct PJRT_Buffer_Device_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  PJRT_Device* device; /* out */
  PJRT_TAIL;
} PJRT_Buffer_Device_Args;

typedef struct PJRT_Buffer_IsDeleted_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  bool is_deleted; /* out */
  PJRT_TAIL;
} PJRT_Buffer_IsDeleted_Args;

typedef struct PJRT_Buffer_CopyToDevice_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  PJRT_Device* dst_device;
  PJRT_Buffer* dst_buffer; /* out */
  PJRT_TAIL;
} PJRT_Buffer_CopyToDevice_Args;

typedef struct PJRT_Buffer_ToHostBuffer_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* src;
  void* host_layout; /* PJRT_Buffer_MemoryLayout*; NULL: the device layout
                      * (row-major unless a program chose otherwise) */
  void* dst;         /* NULL queries dst_size */
  size_t dst_size;   /* in/out */
  PJRT_Event* event; /* out, caller awaits and destroys */
  PJRT_TAIL;
} PJRT_Buffer_ToHostBuffer_Args;

typedef struct PJRT_Buffer_ReadyEvent_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  PJRT_Event* event; /* out */
  PJRT_TAIL;
} PJRT_Buffer_ReadyEvent_Args;

/* Host-memory fast path of buffer.c: where a buffer's bytes live and how they
 * are laid out. */
typedef struct PJRT_Buffer_IsOnCpu_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  bool is_on_cpu; /* out */
  PJRT_TAIL;
} PJRT_Buffer_IsOnCpu_Args;

typedef struct PJRT_Buffer_UnsafePointer_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  uintptr_t buffer_pointer; /* out: host address where IsOnCpu */
  PJRT_TAIL;
} PJRT_Buffer_UnsafePointer_Args;

typedef enum PJRT_Buffer_MemoryLayout_Type {
  PJRT_Buffer_MemoryLayout_Type_Tiled = 0,
  PJRT_Buffer_MemoryLayout_Type_Strides = 1,
} PJRT_Buffer_MemoryLayout_Type;

/* Embedded (in a union): exact sizes, no tail. */
typedef struct PJRT_Buffer_MemoryLayout_Tiled {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const int64_t* minor_to_major; /* (minor_to_major_size) logical dims, minor first */
  size_t minor_to_major_size;
  const int64_t* tile_dims;      /* concatenated tiles */
  const size_t* tile_dim_sizes;  /* (num_tiles) */
  size_t num_tiles;
} PJRT_Buffer_MemoryLayout_Tiled;

typedef struct PJRT_Buffer_MemoryLayout_Strides {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  const int64_t* byte_strides; /* (num_byte_strides) */
  size_t num_byte_strides;
} PJRT_Buffer_MemoryLayout_Strides;

typedef struct PJRT_Buffer_MemoryLayout {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  union {
    PJRT_Buffer_MemoryLayout_Tiled tiled;
    PJRT_Buffer_MemoryLayout_Strides strides;
  };
  PJRT_Buffer_MemoryLayout_Type type;
} PJRT_Buffer_MemoryLayout;

/* Deprecated upstream (layouts extension) but still in the table. */
typedef struct PJRT_Buffer_GetMemoryLayout_Args {
  size_t struct_size;
  PJRT_Extension_Base* extension_start;
  PJRT_Buffer* buffer;
  PJRT_Buffer_MemoryLayout layout; /* out, arrays owned by buffer */
  PJRT_TAIL;
} PJRT_Buffer_GetMemoryLayout_Args;

/* ------------------------------------------- layout checks (API 0.81+) -- */

_Static_assert(offsetof(PJRT_Api_Header, pjrt_api_version) == 16, "api version");
_Static_assert(offsetof(PJRT_Api_Header, pjrt_api_version) +
                   offsetof(PJRT_Api_Version, major_version) == 32, "major");
_Static_assert(offsetof(PJRT_Api_Header, pjrt_api_version) +
                   offsetof(PJRT_Api_Version, minor_version) == 36, "minor");
_Static_assert(sizeof(PJRT_Api_Header) == 40, "first slot at 40");
_Static_assert(sizeof(PJRT_NamedValue) == 56 && PJRT_NamedValue_STRUCT_SIZE == 56,
               "named value");
_Static_assert(offsetof(PJRT_NamedValue, type) == 32, "named value type");
_Static_assert(offsetof(PJRT_NamedValue, int64_value) == 40, "named value union");
_Static_assert(offsetof(PJRT_Client_Create_Args, client) == 64, "create client");
_Static_assert(offsetof(PJRT_KeyValueGetCallback_Args, value_deleter_callback) == 72 &&
                   offsetof(PJRT_KeyValueTryGetCallback_Args, value_deleter_callback) == 64 &&
                   sizeof(PJRT_KeyValuePutCallback_Args) == 64,
               "key-value callbacks");
_Static_assert(offsetof(PJRT_Device_MemoryStats_Args, bytes_limit) == 80, "memory stats limit");
_Static_assert(offsetof(PJRT_Client_Create_Args, reserved_tail_) == 88, "create size");
_Static_assert(offsetof(PJRT_Program, format_size) == 40, "program");
_Static_assert(offsetof(PJRT_Client_Compile_Args, executable) == 48, "compile");
_Static_assert(offsetof(PJRT_Client_BufferFromHostBuffer_Args, host_buffer_semantics) == 72,
               "from host semantics");
_Static_assert(offsetof(PJRT_Client_BufferFromHostBuffer_Args, done_with_host_buffer) == 104,
               "from host event");
_Static_assert(offsetof(PJRT_Client_BufferFromHostBuffer_Args, reserved_tail_) == 120,
               "from host size");
_Static_assert(offsetof(PJRT_ExecuteOptions, launch_id) == 48, "options launch id");
_Static_assert(offsetof(PJRT_ExecuteOptions, non_donatable_input_indices) == 56,
               "options donation");
_Static_assert(offsetof(PJRT_ExecuteOptions, reserved_tail_) == 112, "options size");
_Static_assert(offsetof(PJRT_LoadedExecutable_Execute_Args, output_lists) == 56,
               "execute outputs");
_Static_assert(offsetof(PJRT_LoadedExecutable_Execute_Args, reserved_tail_) == 80,
               "execute size");
_Static_assert(offsetof(PJRT_Buffer_ToHostBuffer_Args, event) == 48, "to host event");
_Static_assert(offsetof(PJRT_Event_OnReady_Args, user_arg) == 32, "on ready");
_Static_assert(offsetof(PJRT_Error_GetCode_Args, code) == 24, "error code");
_Static_assert(offsetof(PJRT_Executable_Serialize_Args, serialized_executable_deleter) == 48,
               "serialize deleter");
_Static_assert(offsetof(PJRT_Executable_DeserializeAndLoad_Args, loaded_executable) == 40,
               "deserialize out");

_Static_assert(offsetof(PJRT_Buffer_UnsafePointer_Args, buffer_pointer) == 24, "unsafe ptr");
_Static_assert(offsetof(PJRT_Buffer_IsOnCpu_Args, is_on_cpu) == 24, "is on cpu");
_Static_assert(sizeof(PJRT_Buffer_MemoryLayout_Tiled) == 56, "tiled layout");
_Static_assert(offsetof(PJRT_Buffer_MemoryLayout, type) == 72 &&
                   sizeof(PJRT_Buffer_MemoryLayout) == 80, "memory layout");
_Static_assert(offsetof(PJRT_Buffer_GetMemoryLayout_Args, layout) == 24 &&
                   offsetof(PJRT_Buffer_GetMemoryLayout_Args, reserved_tail_) == 104,
               "get memory layout");

#endif /* TPJ_PJRT_PJRT_API_H_ */
