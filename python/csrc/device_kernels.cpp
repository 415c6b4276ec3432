// device_kernels.cpp: the pjrt kernels beside the boxed fallback: the short
// exact decompositions it tries first (batch norm's running stats, boolean-mask
// indexing, normal_, addcmul/addcdiv), the ops routed to it ahead of their
// composite kernels, torch.autocast("pjrt") and the attention backend choice.
#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/Resize.h>
#include <ATen/native/transformers/attention.h>
#include <ATen/SDPBackend.h>
#include <torch/library.h>

#include <string>
#include <vector>

#include "device_internal.h"
#include "tpj/eager.h"
#include "tpj/lower.h"

namespace {
using namespace tpj_device;

// self.normal_(mean, std) through the lowering table; false without it.
bool normal_into(const at::Tensor& self, double mean, double std,
                 const std::optional<at::Generator>& gen) {
  if (!tpj_lower_is_supported("aten::normal.float_float") ||
      !at::isFloatingType(self.scalar_type())) {
    return false;  // complex: no lowering
  }
  uint64_t words[2];
  generator_words(gen, "aten::normal_", self.device().index(), words);
  tpj_eager_tensor_t d = view_of(self);
  check(tpj_eager_normal_into(&d, mean, std, words));
  return true;
}

// Boolean / byte masks among the indices of index.Tensor -> one int64 index
// per mask dim; at::nonzero runs on the device (python/torch_pjrt/eager_decomp.py:
// a synchronizing count, then a static-shape program). False: no mask.
bool masks_to_long(const c10::IValue& v, c10::List<std::optional<at::Tensor>>* out) {
  bool any = false;
  for (const auto& o : v.toOptionalTensorList()) {
    std::optional<at::Tensor> t = o;
    if (t && t->defined() && (t->scalar_type() == at::kBool || t->scalar_type() == at::kByte)) {
      at::Tensor nz = at::nonzero(*t);
      for (int64_t d = 0; d < t->dim(); ++d) out->push_back(std::optional<at::Tensor>(nz.select(1, d)));
      any = true;
    } else {
      out->push_back(t);
    }
  }
  return any;
}

}  // namespace

namespace tpj_device {

// native_batch_norm in training with running stats: the update of
// running_mean / running_var is a side effect its schema does not show.
// Its composite kernel calls the mutating op again, so this goes to the
// lowering table directly through the boxed fallback. False when not that case.
static bool batch_norm_with_stats(const std::string& target, const std::vector<c10::IValue>& in,
                           torch::jit::Stack* stack, size_t nargs) {
  if ((target != "aten::native_batch_norm.default" &&
       target != "aten::_native_batch_norm_legit.default") ||
      !in[5].toBool() || !in[3].isTensor() || !in[3].toTensor().defined() ||
      !in[4].isTensor() || !in[4].toTensor().defined()) {  // C++ passes absent stats undefined
    return false;
  }
  static const auto functional = c10::Dispatcher::singleton().findSchemaOrThrow(
      "aten::_native_batch_norm_legit_functional", "");
  torch::jit::Stack fs(in.begin(), in.begin() + 8);
  fallback(functional, c10::DispatchKeySet(c10::DispatchKey::PrivateUse1), &fs);
  in[3].toTensor().copy_(fs[3].toTensor());
  in[4].toTensor().copy_(fs[4].toTensor());
  torch::jit::drop(*stack, nargs);
  for (size_t i = 0; i < 3; ++i) stack->push_back(fs[i]);
  return true;
}

// Replaces the op's arguments on the stack with its return: `result` copied
// into the in-place or out= argument, or returned itself (undefined: the op
// wrote its first argument).
static void push_result(const std::vector<c10::IValue>& in, const at::Tensor& result, bool inplace,
                 torch::jit::Stack* stack, size_t nargs) {
  c10::IValue ret = in[0];
  if (result.defined()) {
    if (inplace) {
      in[0].toTensor().copy_(result);
    } else if (nargs > 4 && in[4].isTensor()) {  // out=
      at::native::resize_output(in[4].toTensor(), result.sizes());
      in[4].toTensor().copy_(result);
      ret = in[4];
    } else {
      ret = result;
    }
  }
  torch::jit::drop(*stack, nargs);
  stack->push_back(ret);
}

// Ops without a lowering that have a short exact decomposition into lowered
// ops on the device. Returns false when `target` is not one of them.
bool decomposed(const c10::OperatorHandle& op, const std::string& target, torch::jit::Stack* stack,
                size_t nargs) {
  std::string name = op.schema().name();
  bool inplace = !name.empty() && name.back() == '_';
  if (inplace) name.pop_back();
  std::vector<c10::IValue> in(stack->end() - (ptrdiff_t)nargs, stack->end());
  if (batch_norm_with_stats(target, in, stack, nargs)) return true;
  at::Tensor result;
  c10::List<std::optional<at::Tensor>> long_idx;
  if (target == "aten::index.Tensor" && masks_to_long(in[1], &long_idx)) {
    result = at::index(in[0].toTensor(), long_idx);
  } else if ((name == "aten::index_put" || name == "aten::_index_put_impl") && nargs >= 4 &&
             in[2].isTensor() && in[2].toTensor().numel() != 1 && masks_to_long(in[1], &long_idx)) {
    // Values that vary along the masked elements (x[mask] = v, x[mask]'s backward).
    if (inplace) in[0].toTensor().index_put_(long_idx, in[2].toTensor(), in[3].toBool());
    else result = at::index_put(in[0].toTensor(), long_idx, in[2].toTensor(), in[3].toBool());
  } else if (name == "aten::zero" && inplace) {
    in[0].toTensor().fill_(0);
  } else if (target == "aten::normal_.default") {
    if (!normal_into(in[0].toTensor(), in[1].toDouble(), in[2].toDouble(), generator_arg(in))) {
      return false;
    }
  } else if ((name == "aten::addcmul" || name == "aten::addcdiv") && nargs >= 4 &&
             in[1].isTensor() && in[2].isTensor()) {
    const at::Tensor& t1 = in[1].toTensor();
    const at::Tensor& t2 = in[2].toTensor();
    at::Tensor prod = name == "aten::addcmul" ? at::mul(t1, t2) : at::div(t1, t2);
    result = at::add(in[0].toTensor(), prod, in[3].toScalar());
  } else {
    return false;
  }
  push_result(in, result, inplace, stack, nargs);
  return true;
}

}  // namespace tpj_device

namespace {

// `param.data = pjrt_tensor` (what Module.to() does, keeping tied weights tied)
// needs CPU and pjrt dense tensors to be shallow-copy compatible.
bool compatible_shallow_copy(const at::Tensor& self, const at::Tensor& from) {
  auto dense = [](const at::Tensor& t) {
    return t.layout() == at::kStrided && (t.device().type() == kDev || t.device().is_cpu());
  };
  return dense(self) && dense(from);
}

}  // namespace

// torch.autocast("pjrt", dtype=...): PyTorch's own op lists and cast policies
// (matmuls and convolutions in the low precision, reductions and losses in
// f32), as it registers them for CUDA; every other op passes through.
#define TPJ_AUTOCAST_LOW(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, lower_precision_fp)
#define TPJ_AUTOCAST_FP32(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, fp32)
#define TPJ_AUTOCAST_FP32_OPT(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, fp32_set_opt_dtype)
#define TPJ_AUTOCAST_PROMOTE(...) KERNEL_PRIVATEUSEONE(__VA_ARGS__, promote)
namespace tpj_autocast {
using namespace at;  // the op lists name ATen types unqualified
TORCH_LIBRARY_IMPL(_, AutocastPrivateUse1, m) {
  m.fallback(torch::CppFunction::makeFallthrough());
}
TORCH_LIBRARY_IMPL(aten, AutocastPrivateUse1, m) {
  AT_FORALL_LOWER_PRECISION_FP(TPJ_AUTOCAST_LOW)
  AT_FORALL_FP32(TPJ_AUTOCAST_FP32)
  AT_FORALL_FP32_SET_OPT_DTYPE(TPJ_AUTOCAST_FP32_OPT)
  AT_FORALL_DIFFERENT_REDISPATCH_SIGNATURE(KERNEL_DIFFERENT_REDISPATCH_SIGNATURE_PRIVATEUSEONE)
  AT_FORALL_PROMOTE(TPJ_AUTOCAST_PROMOTE)
}
}  // namespace tpj_autocast

// scaled_dot_product_attention takes the flash path (one lowered op, with a
// lowered backward) instead of the math composite (bmm, _safe_softmax: ~10 ops)
// where that kernel's contract holds: 4-d q/k/v of one floating dtype, no
// dropout, k/v heads equal to or (enable_gqa) dividing q's, no mask or one of q's dtype that needs no
// gradient (the flash op is not differentiable in its mask: T5's position bias).
namespace {
int64_t sdp_choice(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                   const std::optional<at::Tensor>& mask, double dropout_p, bool is_causal,
                   std::optional<double> scale, bool enable_gqa) {
  bool heads = q.dim() == 4 && k.dim() == 4 && v.dim() == 4 && k.size(1) == v.size(1) &&
               (q.size(1) == k.size(1) ||
                (enable_gqa && k.size(1) > 0 && q.size(1) % k.size(1) == 0));
  bool ok = heads && dropout_p == 0.0 && at::isFloatingType(q.scalar_type()) &&
            k.scalar_type() == q.scalar_type() && v.scalar_type() == q.scalar_type() &&
            (!mask.has_value() || !mask->defined() ||
             (mask->scalar_type() == q.scalar_type() && !mask->requires_grad()));
  return static_cast<int64_t>(ok ? at::SDPBackend::flash_attention : at::SDPBackend::math);
}
}  // namespace
namespace at::native {
REGISTER_PRIVATEUSE1_DISPATCH(_fused_sdp_choice_stub, &sdp_choice)
}  // namespace at::native

// Composite kernels that would end in *_overrideable: send them to the
// lowering table instead.
TORCH_LIBRARY_IMPL(aten, PrivateUse1, m) {
  m.impl("convolution", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  m.impl("convolution_backward", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  // Its composite kernel runs a meta function that cannot take boolean masks.
  m.impl("index.Tensor", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  // Composite kernels that call helpers without a lowering; the ops themselves have one.
  m.impl("cummax", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  m.impl("cummin", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  m.impl("logcumsumexp", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  // Its composite kernel runs as several ops (batch norm over a reshape); the op has a lowering.
  m.impl("native_layer_norm", torch::CppFunction::makeFromBoxedFunction<&fallback>());
  m.impl("_has_compatible_shallow_copy_type", compatible_shallow_copy);
}
