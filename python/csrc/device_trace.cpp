// device_trace.cpp: PyTorch's side of the runtime trace (tpj_runtime_trace_*,
// src/runtime/trace.c). While a trace runs, an at::RecordFunction global
// callback forwards:
// - USER_SCOPE ranges (torch.profiler.record_function,
//   torch.autograd.profiler.record_function, torch.compile's own ranges) as
//   "user" spans on the thread that opened them;
// - every FUNCTION-scope op (an ATen op call) inside which an op fell back to
//   the CPU (tpj_runtime_metrics_add_fallback, counted per thread by the
//   trace) as a "fallback" span named by the op; the innermost such op only.
// The callback is added when a trace starts and removed when it stops (the
// trace's observer, set when this extension loads), so no op pays for it
// otherwise.
#include <ATen/record_function.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "tpj/runtime.h"

namespace {

struct SpanStart final : at::ObserverContext {
  uint64_t start_ns = 0;
  uint64_t fallbacks = 0;  // this thread's fallback count when the op began
  uint64_t tid = 0;
};

thread_local uint64_t t_claimed = 0;  // fallback count already given to an op span

std::unique_ptr<at::ObserverContext> on_start(const at::RecordFunction&) {
  if (!tpj_runtime_trace_enabled()) return nullptr;
  auto c = std::make_unique<SpanStart>();
  c->start_ns = tpj_runtime_metrics_now_ns();
  c->fallbacks = tpj_runtime_trace_thread_fallbacks();
  c->tid = tpj_runtime_trace_thread_id();
  return c;
}

void on_end(const at::RecordFunction& fn, at::ObserverContext* ctx) {
  if (!ctx || !tpj_runtime_trace_enabled()) return;
  auto* c = static_cast<SpanStart*>(ctx);
  uint64_t end = tpj_runtime_metrics_now_ns();
  if (fn.scope() == at::RecordScope::USER_SCOPE) {
    tpj_trace_span_t s = {"user", fn.name(), c->start_ns, end, c->tid, nullptr, 0};
    tpj_runtime_trace_span(&s);
    return;
  }
  uint64_t now = tpj_runtime_trace_thread_fallbacks();
  if (now <= c->fallbacks || now <= t_claimed) return;
  t_claimed = now;
  std::string name = fn.name();
  const char* overload = fn.overload_name();
  name += ".";
  name += overload && overload[0] ? overload : "default";
  tpj_runtime_trace_fallback(name.c_str(), c->start_ns, end);
}

std::mutex g_mu;
bool g_added = false;
at::CallbackHandle g_handle = 0;

void on_trace(bool tracing, void*) {
  std::lock_guard<std::mutex> lk(g_mu);
  if (tracing && !g_added) {
    g_handle = at::addGlobalCallback(
        at::RecordFunctionCallback(on_start, on_end)
            .needsInputs(false)
            .scopes({at::RecordScope::FUNCTION, at::RecordScope::USER_SCOPE}));
    g_added = true;
  } else if (!tracing && g_added) {
    at::removeCallback(g_handle);
    g_added = false;
  }
}

// Loaded after torch_pjrt._C (RTLD_GLOBAL), so the C core is there; a trace
// started before this extension loaded (TORCH_PJRT_TRACE) is joined at once.
struct Install {
  Install() { tpj_runtime_trace_set_observer(on_trace, nullptr); }
} g_install;

}  // namespace
