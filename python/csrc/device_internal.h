// device_internal.h: what the C++ files of the _eager extension share: the
// current device, C status -> PyTorch exception, client start-up and the
// device allocator (device.cpp, device_memory.cpp), tensors as C eager views
// (device.cpp), the boxed fallback (device_dispatch.cpp), its decompositions
// (device_kernels.cpp), op overloads (device_overloads.cpp), generators
// (device_rng.cpp) and compiled calls (device_compiled.cpp).
#pragma once

#include <Python.h>

#include <ATen/core/Generator.h>
#include <c10/core/Allocator.h>
#include <c10/core/Device.h>
#include <c10/core/DispatchKeySet.h>
#include <c10/core/ScalarType.h>
#include <c10/util/ArrayRef.h>

#include <optional>
#include <string>
#include <vector>

#include "tpj/base.h"
#include "tpj/eager.h"
#include "tpj/program.h"

namespace at {
class Tensor;
}
namespace c10 {
class OperatorHandle;
struct IValue;
struct Argument;
struct FunctionSchema;
enum class TypeKind;
}  // namespace c10

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

// Tensors for the C eager runtime (device.cpp): the C dtype of a c10 dtype
// (TPJ_DTYPE_INVALID if none), a pjrt tensor as a view of its storage, and a
// new contiguous pjrt tensor owning `buffer` (a flat result buffer).
tpj_dtype_t to_tpj(c10::ScalarType t);
tpj_eager_tensor_t view_of(const at::Tensor& t);
at::Tensor wrap_buffer(tpj_buffer_t* buffer, c10::IntArrayRef sizes, c10::ScalarType dtype);

// Op names and overloads (device_overloads.cpp): "aten::add.Tensor" (cached
// per schema on the per-op path), whether an argument's type (through
// Optional) is `kind`, and the functional overload whose arguments match a
// mutating op's non-out arguments (add_.Tensor -> add.Tensor,
// sum.IntList_out -> sum.dim_IntList), possibly followed by tensor-options
// arguments (arange.start_out -> arange.start_step + dtype, layout, device,
// pin_memory); for a `generator=` overload, the one without the generator.
struct Functional {
  std::string target;              // empty: none with a lowering
  std::vector<std::string> extra;  // trailing tensor-options argument names
  bool drop_generator = false;     // the op's Generator argument is not passed
};
std::string target_of(const c10::FunctionSchema& s);
const std::string& target_of_cached(const c10::FunctionSchema& s);
bool is_type(const c10::Argument& a, c10::TypeKind kind);
Functional functional_of(const c10::FunctionSchema& s);

// The boxed fallback of every pjrt op (device_dispatch.cpp; `stack` is a
// torch::jit::Stack), and the generator argument of an op (absent, None or a
// Generator).
void fallback(const c10::OperatorHandle& op, c10::DispatchKeySet ks, std::vector<c10::IValue>* stack);
std::optional<at::Generator> generator_arg(const std::vector<c10::IValue>& in);
// Ops without a lowering that have a short exact decomposition into lowered
// ops (device_kernels.cpp): runs it and returns true, or false when `target`
// is not one of them.
bool decomposed(const c10::OperatorHandle& op, const std::string& target,
                std::vector<c10::IValue>* stack, size_t nargs);

// Random numbers (device_rng.cpp). The default generator of a device (-1: the
// current one), a new generator, and the ThreeFry state words of the next
// random op from `gen` (the device's default when absent); `op` names the op
// in the error for a generator of another device type.
const at::Generator& default_generator(c10::DeviceIndex index);
at::Generator new_generator(c10::DeviceIndex index);
void generator_words(const std::optional<at::Generator>& gen, const char* op,
                     c10::DeviceIndex device, uint64_t out_words[2]);

// The buffer cache of graphs compiled over CPU tensors (device_buffer_cache.cpp,
// under the GIL): the _C.Buffer holding t's value (borrowed) or nullptr;
// caching `buffer` as t's value (at `version`, -1: t's current one; alias_ok:
// other tensors on the same storage view and version match too); forgetting t.
PyObject* cache_lookup(const at::Tensor& t);
void cache_insert(const at::Tensor& t, PyObject* buffer, int64_t version, bool alias_ok);
void cache_evict(const at::Tensor& t);
// Drops the entries of dead storages (and of dead tensors they were made for).
void cache_sweep();
// The HOST_FEED_* kinds of host call specs (device_host_call.cpp).
int add_host_call_constants(PyObject* module);

// Leaf kinds of compiled call specs (exported as _eager.LEAF_*): output leaf
// j is a program result, an argument, an alias (detach) of an argument, or a
// Python value.
enum LeafKind { kLeafResult = 0, kLeafInput = 1, kLeafAlias = 2, kLeafValue = 3 };

// Pieces of compiled call specs (device_compiled.cpp), shared by both
// compiled call paths: a tensor parameter's dtype and sizes, parsed from
// (torch.dtype, shape) and compared with a call's tensor; and the
// tpj_program_t* behind a _C.Program (its `handle`). Both throw on bad input.
struct TensorSig {
  c10::ScalarType dtype;
  std::vector<int64_t> sizes;
  bool matches(const at::Tensor& t) const;
};
TensorSig parse_tensor_sig(PyObject* dtype, PyObject* shape);
tpj_program_t* program_handle(PyObject* program);

// The output structure of a compiled graph (device_compiled.cpp): per flat
// output leaf a program result, an argument, an alias (detach) of one, or a
// Python value, built per call as a tuple (flat 0), a list (1) or a list the
// caller unflattens (2). Used by both compiled call paths.
class OutputLeaves {
 public:
  OutputLeaves() = default;
  OutputLeaves(const OutputLeaves&) = delete;
  OutputLeaves& operator=(const OutputLeaves&) = delete;
  ~OutputLeaves();
  // [(LEAF_* kind, index or value)], indices checked against the bounds;
  // throws (a Python error or a c10::Error) on bad input.
  void parse(PyObject* seq, int flat, size_t num_results, Py_ssize_t num_args);
  // The outputs of one call (new reference); throws python_error.
  PyObject* build(PyObject* args, const std::vector<at::Tensor>& results) const;

 private:
  struct Leaf {
    int kind;
    Py_ssize_t index;  // result or argument index
    PyObject* value;   // kLeafValue: strong
  };
  std::vector<Leaf> leaves_;
  int flat_ = 0;
};

// The feed and leaf kinds of compiled call specs (device_compiled.cpp) as
// _eager.FEED_* / LEAF_* constants; -1 with a Python error on failure.
int add_compiled_constants(PyObject* module);

// Streams and events (device_stream.cpp): adds current_stream, default_stream
// and set_stream to the _eager module; -1 with a Python error on failure.
int add_stream_functions(PyObject* module);

}  // namespace tpj_device

// Python calls defined outside device.cpp, listed in its method table.
PyObject* tpj_py_default_generator(PyObject*, PyObject* index);
PyObject* tpj_py_rng_words(PyObject*, PyObject* index);
// Whether a mutating overload runs as a lowered functional one (device_dispatch.cpp).
PyObject* tpj_py_functional_lowered(PyObject*, PyObject* args);
// The buffer cache's Python face (device_buffer_cache.cpp) and graphs compiled
// over CPU tensors in one native call (device_host_call.cpp).
PyObject* tpj_py_cache_lookup(PyObject*, PyObject* t);
PyObject* tpj_py_cache_insert(PyObject*, PyObject* args);
PyObject* tpj_py_cache_evict(PyObject*, PyObject* t);
PyObject* tpj_py_cache_clear(PyObject*, PyObject*);
PyObject* tpj_py_cache_len(PyObject*, PyObject*);
PyObject* tpj_py_host_create(PyObject*, PyObject* args);
// device_dist.cpp: dist_backend(host_backend, rank, size) -> the c10d "pjrt" backend.
PyObject* tpj_py_dist_backend(PyObject*, PyObject* args);
// device_comm.cpp: local_collective(kind, reduce, tensors) -> flat results per device.
PyObject* tpj_py_local_collective(PyObject*, PyObject* args);
// device_spmd.cpp: spmd_run(program, rows, results, wait=False, inputs=None) -> rows.
PyObject* tpj_py_spmd_run(PyObject*, PyObject* args, PyObject* kwargs);
PyObject* tpj_py_host_run(PyObject*, PyObject* args);
// Compiled graphs over pjrt tensors in one native call (device_compiled.cpp).
PyObject* tpj_py_compiled_create(PyObject*, PyObject* args);
PyObject* tpj_py_compiled_run(PyObject*, PyObject* args);
