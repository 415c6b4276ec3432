// device_buffer_cache.cpp: the device buffer cache of graphs compiled over
// CPU tensors: device copies of host tensors that have not changed since they
// were uploaded (or downloaded), so unchanged parameters are not sent to the
// device again on every call. It is C++ so that a compiled call can look its
// arguments up without Python (device_host_call.cpp); torch_pjrt/buffer_cache.py
// is its Python face.
//
// An entry is keyed by the tensor's storage and view (offset, sizes, strides,
// dtype) and confirmed by the tensor's version counter and data pointer. An
// entry made by an upload matches only the same tensor (TensorImpl); one made
// by a download (a device result) also matches other tensors on the same
// storage and view at the same version: autograd hands results back as
// detach()ed aliases, which share the version counter; while the original
// result is alive, a change of its version invalidates the entry. Entries of
// dead storages are dropped by a sweep: once per host call, and every size()
// inserts otherwise. Limit: writes through an alias with its own version
// counter (`.data`, `set_`) are not seen.
#include <Python.h>

#include <ATen/ATen.h>
#include <c10/util/intrusive_ptr.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/autograd/python_variable.h>

#include <unordered_map>
#include <vector>

#include "device_internal.h"

extern "C" {
#include "tpj_py.h"
}

namespace {

struct Key {
  const c10::StorageImpl* storage;
  int64_t offset;
  c10::ScalarType dtype;
  std::vector<int64_t> sizes, strides;
  bool operator==(const Key& o) const {
    return storage == o.storage && offset == o.offset && dtype == o.dtype && sizes == o.sizes &&
           strides == o.strides;
  }
};

struct KeyHash {
  size_t operator()(const Key& k) const {
    size_t h = std::hash<const void*>()(k.storage) ^ (size_t)k.offset * 0x9e3779b97f4a7c15ull;
    for (int64_t s : k.sizes) h = h * 31 + (size_t)s;
    for (int64_t s : k.strides) h = h * 131 + (size_t)s;
    return h ^ (size_t)k.dtype;
  }
};

using WeakTensorImpl = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>;

struct Entry {
  c10::weak_intrusive_ptr<c10::StorageImpl> storage;
  WeakTensorImpl owner;  // the tensor it was made for
  bool alias_ok;
  uint32_t version;
  const void* data_ptr;
  PyObject* buffer;  // a torch_pjrt._C.Buffer (strong)
};

// Under the GIL (every caller holds it), so no lock of its own.
std::unordered_map<Key, Entry, KeyHash> g_cache;
size_t g_inserts_since_sweep = 0;

Key key_of(const at::Tensor& t) {
  return Key{t.storage().unsafeGetStorageImpl(), t.storage_offset(), t.scalar_type(),
             t.sizes().vec(), t.strides().vec()};
}

uint32_t version_of(const at::Tensor& t) {
  return t.unsafeGetTensorImpl()->version_counter().current_version();
}

void drop(std::unordered_map<Key, Entry, KeyHash>::iterator it) {
  PyObject* b = it->second.buffer;
  g_cache.erase(it);
  Py_DECREF(b);  // may free a tensor whose deleter re-enters: erase first
}

// Drops the entries whose storage died, or made for one tensor that died;
// their buffers are released after the map is consistent again.
void sweep() {
  g_inserts_since_sweep = 0;
  std::vector<PyObject*> released;
  for (auto it = g_cache.begin(); it != g_cache.end();) {
    const Entry& e = it->second;
    if (e.storage.expired() || (!e.alias_ok && e.owner.expired())) {
      released.push_back(e.buffer);
      it = g_cache.erase(it);
    } else {
      ++it;
    }
  }
  for (PyObject* b : released) Py_DECREF(b);
}

}  // namespace

namespace tpj_device {

PyObject* cache_lookup(const at::Tensor& t) {
  if (!t.has_storage() || t.is_sparse()) return nullptr;
  auto it = g_cache.find(key_of(t));
  if (it == g_cache.end()) return nullptr;
  Entry& e = it->second;
  if (e.storage.lock().get() != t.storage().unsafeGetStorageImpl() || e.data_ptr != t.data_ptr()) {
    return nullptr;
  }
  auto owner = e.owner.lock();
  if (!owner || owner.get() != t.unsafeGetTensorImpl()) {
    if (!e.alias_ok) return nullptr;
    if (owner && owner->version_counter().current_version() != e.version) {
      drop(it);
      return nullptr;
    }
  }
  if (e.version != version_of(t)) return nullptr;
  return e.buffer;
}

void cache_insert(const at::Tensor& t, PyObject* buffer, int64_t version, bool alias_ok) {
  if (!t.has_storage() || t.is_sparse()) return;
  // A sweep per size() inserts: amortized O(1), and dead entries never
  // outnumber the live ones for long (a host call sweeps once per call).
  if (++g_inserts_since_sweep > g_cache.size()) sweep();
  Key k = key_of(t);
  auto it = g_cache.find(k);
  if (it != g_cache.end()) drop(it);
  Entry e{c10::weak_intrusive_ptr<c10::StorageImpl>(t.storage().getWeakStorageImpl()),
          WeakTensorImpl(t.getIntrusivePtr()),
          alias_ok, version >= 0 ? (uint32_t)version : version_of(t), t.data_ptr(),
          Py_NewRef(buffer)};
  g_cache.emplace(std::move(k), std::move(e));
}

void cache_sweep() { sweep(); }

void cache_evict(const at::Tensor& t) {
  if (!t.has_storage()) return;
  auto it = g_cache.find(key_of(t));
  if (it != g_cache.end()) drop(it);
}

}  // namespace tpj_device

// ------------------------------------------------------------ Python calls --

namespace {

at::Tensor tensor_of(PyObject* o) {
  TORCH_CHECK_TYPE(THPVariable_Check(o), "buffer cache: expected a tensor, got ",
                   Py_TYPE(o)->tp_name);
  return THPVariable_Unpack(o);
}

}  // namespace

// cache_lookup(t) -> Buffer | None
PyObject* tpj_py_cache_lookup(PyObject*, PyObject* t) {
  HANDLE_TH_ERRORS
  PyObject* b = tpj_device::cache_lookup(tensor_of(t));
  return Py_NewRef(b ? b : Py_None);
  END_HANDLE_TH_ERRORS
}

// cache_insert(t, buffer, version=-1, alias_ok=False)
PyObject* tpj_py_cache_insert(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  PyObject *t = nullptr, *buf = nullptr;
  long long version = -1;
  int alias_ok = 0;
  if (!PyArg_ParseTuple(args, "OO!|Lp:cache_insert", &t, &tpj_py_buffer_type, &buf, &version,
                        &alias_ok)) {
    return nullptr;
  }
  tpj_device::cache_insert(tensor_of(t), buf, version, alias_ok != 0);
  Py_RETURN_NONE;
  END_HANDLE_TH_ERRORS
}

// cache_evict(t)
PyObject* tpj_py_cache_evict(PyObject*, PyObject* t) {
  HANDLE_TH_ERRORS
  tpj_device::cache_evict(tensor_of(t));
  Py_RETURN_NONE;
  END_HANDLE_TH_ERRORS
}

// cache_clear()
PyObject* tpj_py_cache_clear(PyObject*, PyObject*) {
  std::vector<PyObject*> released;
  for (auto& kv : g_cache) released.push_back(kv.second.buffer);
  g_cache.clear();
  for (PyObject* b : released) Py_DECREF(b);
  Py_RETURN_NONE;
}

// cache_len() -> live entries
PyObject* tpj_py_cache_len(PyObject*, PyObject*) {
  sweep();
  return PyLong_FromSize_t(g_cache.size());
}
