// device_memory.cpp: the pjrt device's allocator as a c10::DeviceAllocator, so
// torch.accelerator.memory.* and torch.pjrt.memory_* read true numbers: the C
// runtime counts live storages per device (src/runtime/eager_memory.c) and
// asks the plugin for free/total memory. Also the one place where a C status
// becomes a PyTorch exception (out of memory -> torch.OutOfMemoryError).
#include <c10/core/CachingDeviceAllocator.h>
#include <c10/util/Exception.h>
#include <torch/csrc/Exceptions.h>

#include <string>

#include "device_internal.h"
#include "tpj/eager.h"

// torch_pjrt._C.IndexError (python/csrc/checks.c): an IndexError and a
// RuntimeError, because CPU raises one or the other by op (index_select and
// embedding IndexError; gather, scatter and embedding_bag RuntimeError).
extern "C" PyObject* tpj_py_index_error_type;

namespace tpj_device {

void check(tpj_status_t st) {
  if (!st) return;
  tpj_status_code_t code = tpj_status_code(st);
  std::string msg = std::string(tpj_status_code_name(code)) + ": " + tpj_status_message(st);
  tpj_status_free(st);
  if (code == TPJ_STATUS_RESOURCE_EXHAUSTED) {
    tpj_eager_memory_note_oom((size_t)g_current);
    TORCH_CHECK_WITH(OutOfMemoryError, false, "torch_pjrt: out of memory on the pjrt device ",
                     "(current device pjrt:", (int)g_current, "): ", msg);
  }
  // A runtime index check failed (tpj/ir.h): raised as the Python exception
  // _C.IndexError, which both `except IndexError` and `except RuntimeError` catch.
  TORCH_CHECK_INDEX(code != TPJ_STATUS_OUT_OF_RANGE || tpj_py_index_error_type,
                    "torch_pjrt: ", msg);
  if (code == TPJ_STATUS_OUT_OF_RANGE) {
    PyGILState_STATE gs = PyGILState_Ensure();
    PyErr_SetString(tpj_py_index_error_type, ("torch_pjrt: " + msg).c_str());
    python_error e;
    e.persist();
    PyGILState_Release(gs);
    throw e;
  }
  TORCH_CHECK(false, "torch_pjrt: ", msg);
}

void storage_deleter(void* ctx) { tpj_eager_storage_destroy((tpj_eager_storage_t*)ctx); }

namespace {

using c10::CachingAllocator::Stat;
using c10::CachingAllocator::StatArray;
using c10::CachingAllocator::StatType;

c10::DeviceIndex checked_index(c10::DeviceIndex d) {
  ensure_client();
  c10::DeviceIndex i = d < 0 ? g_current : d;
  TORCH_CHECK(i < device_count(), "torch_pjrt: memory stats: invalid device index ", (int)i,
              " (have ", (int)device_count(), " devices)");
  return i;
}

// One pool: every storage is its own device allocation, so the pool
// breakdown (small_pool/large_pool) is not tracked and stays zero.
void fill(StatArray& a, int64_t current, int64_t peak, int64_t allocated, int64_t freed) {
  Stat& s = a[static_cast<size_t>(StatType::AGGREGATE)];
  s.current = current;
  s.peak = peak;
  s.allocated = allocated;
  s.freed = freed;
}

struct PjrtAllocator final : c10::DeviceAllocator {
  at::DataPtr allocate(size_t nbytes) override {
    ensure_client();
    tpj_eager_storage_t* s = nullptr;
    check(tpj_eager_storage_create(nbytes, (size_t)g_current, &s));
    return {s, s, &storage_deleter, c10::Device(kDev, g_current)};
  }
  at::DeleterFnPtr raw_deleter() const override { return &storage_deleter; }
  void copy_data(void*, const void*, std::size_t) const override {
    TORCH_CHECK(false, "torch_pjrt: raw copies of pjrt storage are not supported");
  }
  bool initialized() override { return tpj_eager_client() != nullptr; }
  // Storages are freed as soon as PyTorch releases them: nothing is cached.
  void emptyCache(c10::MempoolId_t) override {}
  // One stream per device: a storage is never in use on another stream.
  void recordStream(const at::DataPtr&, c10::Stream) override {}
  c10::CachingDeviceAllocator::DeviceStats getDeviceStats(c10::DeviceIndex d) override {
    tpj_eager_memory_stats_t m;
    check(tpj_eager_memory_stats((size_t)checked_index(d), &m));
    c10::CachingDeviceAllocator::DeviceStats r;
    auto cur = (int64_t)m.allocated_bytes, peak = (int64_t)m.peak_allocated_bytes;
    auto total = (int64_t)m.total_allocated_bytes, freed = (int64_t)m.total_freed_bytes;
    // Nothing is reserved beyond live storages: reserved == active == allocated.
    for (StatArray* a : {&r.allocated_bytes, &r.reserved_bytes, &r.active_bytes,
                         &r.requested_bytes}) {
      fill(*a, cur, peak, total, freed);
    }
    for (StatArray* a : {&r.allocation, &r.segment, &r.active}) {
      fill(*a, (int64_t)m.allocations, (int64_t)m.peak_allocations,
           (int64_t)m.total_allocations, (int64_t)m.total_frees);
    }
    r.num_ooms = (int64_t)m.num_ooms;
    r.num_device_alloc = (int64_t)m.total_allocations;
    r.num_device_free = (int64_t)m.total_frees;
    return r;
  }
  void resetAccumulatedStats(c10::DeviceIndex d) override {
    tpj_eager_memory_reset_accumulated((size_t)checked_index(d));
  }
  void resetPeakStats(c10::DeviceIndex d) override {
    tpj_eager_memory_reset_peak((size_t)checked_index(d));
  }
  std::pair<size_t, size_t> getMemoryInfo(c10::DeviceIndex d) override {
    uint64_t free_bytes = 0, total = 0;
    check(tpj_eager_memory_info((size_t)checked_index(d), &free_bytes, &total));
    return {(size_t)free_bytes, (size_t)total};
  }
};

PjrtAllocator g_alloc;
// torch.UntypedStorage(n, device="pjrt") (torch.load's map_location) asks c10 for it.
REGISTER_ALLOCATOR(kDev, &g_alloc)

}  // namespace

c10::Allocator* allocator() { return &g_alloc; }

}  // namespace tpj_device
