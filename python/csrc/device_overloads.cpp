// device_overloads.cpp: which lowered overload an eager op runs as. Op names
// ("aten::add.Tensor"), and for a mutating op (add_, sum.IntList_out) or a
// `generator=` overload the functional overload with the same leading
// arguments, searched once per op and cached until a lowering is disabled or
// enabled again.
#include <Python.h>

#include <ATen/core/dispatch/Dispatcher.h>

#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "device_internal.h"
#include "tpj/lower.h"

namespace tpj_device {

std::string target_of(const c10::FunctionSchema& s) {
  return s.name() + "." + (s.overload_name().empty() ? "default" : s.overload_name());
}

// target_of for the per-op path, built once per schema and thread (a schema
// lives as long as its registration; the name check catches a reused address).
const std::string& target_of_cached(const c10::FunctionSchema& s) {
  thread_local std::unordered_map<const c10::FunctionSchema*, std::pair<std::string, std::string>>
      cache;
  auto& entry = cache[&s];
  if (entry.first != s.name() || entry.second.empty()) {
    entry.first = s.name();
    entry.second = target_of(s);
  }
  return entry.second;
}

namespace {

std::mutex g_functional_lock;
std::unordered_map<std::string, Functional> g_functional;

bool is_options_arg(const std::string& n) {
  return n == "dtype" || n == "layout" || n == "device" || n == "pin_memory";
}

bool matches(const c10::FunctionSchema& fs, const std::vector<const c10::Argument*>& want,
             std::vector<std::string>* extra) {
  if (fs.arguments().size() < want.size() || fs.is_mutable()) return false;
  for (size_t i = 0; i < want.size(); ++i) {
    const c10::Argument& a = fs.arguments()[i];
    if (a.name() != want[i]->name() || a.real_type()->kind() != want[i]->real_type()->kind()) {
      return false;
    }
  }
  extra->clear();
  for (size_t i = want.size(); i < fs.arguments().size(); ++i) {
    if (!is_options_arg(fs.arguments()[i].name())) return false;
    extra->push_back(fs.arguments()[i].name());
  }
  for (const auto& r : fs.returns()) {
    if (r.alias_info()) return false;
  }
  return tpj_lower_is_supported(target_of(fs).c_str());
}


// The lowered non-mutating overload of `base` whose leading arguments are `want`.
Functional search_overloads(const std::string& base, const std::vector<const c10::Argument*>& want) {
  Functional found;
  for (const auto& name : c10::Dispatcher::singleton().getAllOpNames()) {
    if (name.name != base) continue;
    auto h = c10::Dispatcher::singleton().findSchema(name);
    std::vector<std::string> extra;
    if (h && h->hasSchema() && matches(h->schema(), want, &extra)) {
      found.target = target_of(h->schema());
      found.extra = extra;
      if (extra.empty()) break;  // prefer an exact match
    }
  }
  return found;
}

}  // namespace

// The lowering a mutating op (or a `generator=` overload) runs as: the
// functional overload with the same leading arguments; failing that, for ops
// with a generator argument, the overload without it (rand.generator ->
// rand.default), the generator's state going in as the trailing seed.
Functional functional_of(const c10::FunctionSchema& s) {
  std::string key = target_of(s);
  std::lock_guard<std::mutex> lk(g_functional_lock);
  static uint64_t generation = 0;  // answers depend on which lowerings are disabled
  if (generation != tpj_lower_disabled_generation()) {
    g_functional.clear();
    generation = tpj_lower_disabled_generation();
  }
  auto it = g_functional.find(key);
  if (it != g_functional.end()) return it->second;
  std::string base = s.name();
  if (!base.empty() && base.back() == '_') base.pop_back();
  std::vector<const c10::Argument*> want, no_gen;
  bool has_gen = false;
  for (const auto& a : s.arguments()) {
    if (a.is_out()) continue;
    want.push_back(&a);
    bool gen = is_type(a, c10::TypeKind::GeneratorType);
    has_gen = has_gen || gen;
    if (!gen) no_gen.push_back(&a);
  }
  Functional found = s.is_mutable() ? search_overloads(base, want) : Functional{};
  if (found.target.empty() && has_gen) {
    found = search_overloads(base, no_gen);
    found.drop_generator = !found.target.empty();
    if (!s.is_mutable() && !found.extra.empty()) found = Functional{};
  }
  g_functional[key] = found;
  return found;
}

bool is_type(const c10::Argument& a, c10::TypeKind kind) {
  const c10::Type* t = a.real_type().get();  // no shared_ptr copies: this runs per argument
  if (t->kind() == c10::TypeKind::OptionalType) {
    t = static_cast<const c10::OptionalType*>(t)->getElementType().get();
  }
  return t->kind() == kind;
}

}  // namespace tpj_device

// _eager.functional_lowered(name, overload) -> bool: whether the fallback runs
// this mutating overload as a lowered functional one (functional_of), so the
// Python kernels (eager_decomp.py) need not cover it.
PyObject* tpj_py_functional_lowered(PyObject*, PyObject* args) {
  using namespace tpj_device;
  const char *name = nullptr, *overload = nullptr;
  if (!PyArg_ParseTuple(args, "ss:functional_lowered", &name, &overload)) return nullptr;
  auto h = c10::Dispatcher::singleton().findSchema({name, overload});
  if (!h || !h->hasSchema()) {
    return PyErr_Format(PyExc_ValueError, "functional_lowered: no op %s.%s", name, overload);
  }
  return PyBool_FromLong(!functional_of(h->schema()).target.empty());
}
