// device_rng.cpp: the pjrt device's random number generators. Each device has a
// default generator (torch.pjrt.manual_seed, torch.Generator(device="pjrt")),
// a (seed, offset) pair like CUDA's Philox generator: every random op takes
// the next offset and runs with a ThreeFry key derived from (seed, offset), so
// a seed gives one reproducible stream whatever the CPU generator does.
#include <Python.h>

#include <ATen/ATen.h>
#include <ATen/core/Generator.h>
#include <c10/core/GeneratorImpl.h>
#include <c10/core/TensorImpl.h>
#include <c10/util/irange.h>
#include <torch/csrc/Generator.h>

#include <cstring>
#include <mutex>
#include <vector>

#include "device_internal.h"

namespace tpj_device {
namespace {

constexpr size_t kStateBytes = 16;  // u64 seed, u64 offset (little-endian)

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

struct PjrtGeneratorImpl final : c10::GeneratorImpl {
  explicit PjrtGeneratorImpl(c10::DeviceIndex index, uint64_t seed = c10::default_rng_seed_val)
      : c10::GeneratorImpl(c10::Device(kDev, index), c10::DispatchKeySet(c10::DispatchKey::PrivateUse1)),
        seed_(seed) {}

  void set_current_seed(uint64_t seed) override {
    seed_ = seed;
    offset_ = 0;
  }
  void set_offset(uint64_t offset) override { offset_ = offset; }
  uint64_t get_offset() const override { return offset_; }
  uint64_t current_seed() const override { return seed_; }
  uint64_t seed() override {
    set_current_seed(c10::detail::getNonDeterministicRandom());
    return seed_;
  }
  void set_state(const c10::TensorImpl& state) override {
    TORCH_CHECK(state.dtype() == caffe2::TypeMeta::Make<uint8_t>() && state.device().is_cpu(),
                "torch_pjrt: generator state: expected a CPU ByteTensor (got ", state.dtype(),
                " on ", state.device(), ")");
    TORCH_CHECK((size_t)state.numel() == kStateBytes && state.is_contiguous(),
                "torch_pjrt: generator state: expected ", kStateBytes,
                " contiguous bytes (seed, offset), got ", state.numel());
    uint64_t words[2];
    std::memcpy(words, state.data(), kStateBytes);
    seed_ = words[0];
    offset_ = words[1];
  }
  c10::intrusive_ptr<c10::TensorImpl> get_state() const override {
    at::Tensor t = at::empty({(int64_t)kStateBytes}, at::TensorOptions().dtype(at::kByte));
    uint64_t words[2] = {seed_, offset_};
    std::memcpy(t.data_ptr(), words, kStateBytes);
    return t.getIntrusivePtr();
  }
  static c10::DeviceType device_type() { return kDev; }

  // The ThreeFry state (key, counter) of the next random op; advances the offset.
  void next_words(uint64_t out_words[2]) {
    uint64_t off = offset_++;
    out_words[0] = splitmix64(seed_ ^ splitmix64(off));
    out_words[1] = splitmix64(out_words[0] + off);
  }

 private:
  PjrtGeneratorImpl* clone_impl() const override {
    auto* g = new PjrtGeneratorImpl(device().index(), seed_);
    g->offset_ = offset_;
    return g;
  }
  uint64_t seed_;
  uint64_t offset_ = 0;
};

std::mutex g_defaults_lock;
std::vector<at::Generator>& defaults() {
  static std::vector<at::Generator>* d = new std::vector<at::Generator>();  // lives to exit
  return *d;
}

c10::DeviceIndex checked_index(c10::DeviceIndex index) {
  c10::DeviceIndex n = device_count();
  if (index < 0) index = g_current;
  TORCH_CHECK(index < n, "torch_pjrt: generator: invalid device index ", (int)index, " (have ",
              (int)n, " devices)");
  return index;
}

}  // namespace

const at::Generator& default_generator(c10::DeviceIndex index) {
  index = checked_index(index);
  std::lock_guard<std::mutex> lk(g_defaults_lock);
  auto& d = defaults();
  if (d.empty()) {
    for (c10::DeviceIndex i = 0; i < device_count(); ++i) {
      d.push_back(at::make_generator<PjrtGeneratorImpl>(i));
    }
  }
  return d[(size_t)index];
}

at::Generator new_generator(c10::DeviceIndex index) {
  return at::make_generator<PjrtGeneratorImpl>(checked_index(index));
}

void generator_words(const std::optional<at::Generator>& gen, const char* op,
                     c10::DeviceIndex device, uint64_t out_words[2]) {
  at::Generator g = gen.has_value() && gen->defined() ? *gen : default_generator(device);
  TORCH_CHECK(g.device().type() == kDev, op, ": expected a generator on the pjrt device, got a ",
              g.device().type(), " generator (torch.Generator(device=\"pjrt\") makes one)");
  std::lock_guard<std::mutex> lk(g.mutex());
  auto* impl = static_cast<PjrtGeneratorImpl*>(g.unsafeGetGeneratorImpl());
  impl->next_words(out_words);
}

}  // namespace tpj_device

// ------------------------------------------------------------ Python calls --

namespace {
using namespace tpj_device;

c10::DeviceIndex arg_index(PyObject* arg) {
  long d = arg == Py_None ? -1 : PyLong_AsLong(arg);
  return (c10::DeviceIndex)d;
}

template <typename F>
PyObject* guarded(F&& f) {
  try {
    return f();
  } catch (const c10::Error& e) {
    PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    return nullptr;
  }
}

}  // namespace

// _eager.default_generator(index): the device's default torch.Generator.
PyObject* tpj_py_default_generator(PyObject*, PyObject* arg) {
  c10::DeviceIndex i = arg_index(arg);
  if (PyErr_Occurred()) return nullptr;
  return guarded([&] { return THPGenerator_initDefaultGenerator(default_generator(i)); });
}

// _eager.rng_words(index): the next op's two state words from the default generator.
PyObject* tpj_py_rng_words(PyObject*, PyObject* arg) {
  c10::DeviceIndex i = arg_index(arg);
  if (PyErr_Occurred()) return nullptr;
  return guarded([&] {
    uint64_t w[2];
    generator_words(std::nullopt, "torch_pjrt: compiled random op", i, w);
    return Py_BuildValue("(KK)", (unsigned long long)w[0], (unsigned long long)w[1]);
  });
}
