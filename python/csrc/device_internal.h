// device_internal.h: what the C++ files of the _eager extension share: the
// current device, C status -> PyTorch exception, client start-up and the
// device allocator (device.cpp, device_memory.cpp) and generators (device_rng.cpp).
#pragma once

#include <Python.h>

#include <ATen/core/Generator.h>
#include <c10/core/Allocator.h>
#include <c10/core/Device.h>

#include "tpj/base.h"

namespace tpj_device {

constexpr auto kDev = c10::DeviceType::PrivateUse1;
// The current pjrt device of this thread (the device guard's state).
extern thread_local c10::DeviceIndex g_current;

// Raises a C status (consumes it): RESOURCE_EXHAUSTED as torch.OutOfMemoryError
// (counted in the device's num_ooms), OUT_OF_RANGE as IndexError, every other
// code as a RuntimeError.
void check(tpj_status_t st);
// Starts the default client on first use (torch_pjrt.device._lazy_init).
void ensure_client();
c10::DeviceIndex device_count();
// The pjrt allocator (a c10::DeviceAllocator) and its storage deleter.
c10::Allocator* allocator();
void storage_deleter(void* ctx);

// Random numbers (device_rng.cpp). The default generator of a device (-1: the
// current one), a new generator, and the ThreeFry state words of the next
// random op from `gen` (the device's default when absent); `op` names the op
// in the error for a generator of another device type.
const at::Generator& default_generator(c10::DeviceIndex index);
at::Generator new_generator(c10::DeviceIndex index);
void generator_words(const std::optional<at::Generator>& gen, const char* op,
                     c10::DeviceIndex device, uint64_t out_words[2]);

// Streams and events (device_stream.cpp): adds current_stream, default_stream
// and set_stream to the _eager module; -1 with a Python error on failure.
int add_stream_functions(PyObject* module);

}  // namespace tpj_device

// Python calls defined outside device.cpp, listed in its method table.
PyObject* tpj_py_default_generator(PyObject*, PyObject* index);
PyObject* tpj_py_rng_words(PyObject*, PyObject* index);
