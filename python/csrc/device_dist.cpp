// device_dist.cpp: the c10d backend "pjrt", so torch.distributed (DDP, FSDP2,
// DTensor, functional collectives) works on pjrt tensors. The XLA CPU plugin
// has no collectives across processes, so each collective here stages its
// pjrt tensors through host memory and runs on a host backend (torch's gloo,
// built over the same store by torch_pjrt/distributed.py), then copies back:
// collectives before they return, point-to-point ops when waited on.
#include <Python.h>

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/Exceptions.h>
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Work.hpp>
#include <torch/csrc/utils/pybind.h>

#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "device_internal.h"
#include "tpj/runtime.h"

namespace tpj_device {

static bool interpreter_finalizing() {
#if PY_VERSION_HEX >= 0x030D0000
  return Py_IsFinalizing();
#else
  return _Py_IsFinalizing();
#endif
}

using c10d::OpType;
using Tensors = std::vector<at::Tensor>;
using TensorLists = std::vector<std::vector<at::Tensor>>;
using WorkPtr = c10::intrusive_ptr<c10d::Work>;

// A collective that already ran: its outputs are on the device when it is
// returned, so wait() has nothing left to wait for and the future is done.
class StagedWork : public c10d::Work {
 public:
  StagedWork(int rank, OpType op, Tensors outputs)
      : c10d::Work(rank, op), outputs_(std::move(outputs)) {
    future_ = c10::make_intrusive<c10::ivalue::Future>(
        c10::ListType::create(c10::TensorType::get()));
    future_->markCompleted(c10::IValue(outputs_));
  }
  bool isCompleted() override { return true; }
  bool isSuccess() const override { return true; }
  bool wait(std::chrono::milliseconds /*timeout*/) override { return true; }
  Tensors result() override { return outputs_; }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override { return future_; }

 private:
  Tensors outputs_;
  c10::intrusive_ptr<c10::ivalue::Future> future_;
};

// The host copies of one collective's tensors, and which of them go back.
class Staging {
 public:
  explicit Staging(const char* op) : op_(op) {}
  // A host copy of `t`'s values (contiguous); with `back`, t gets the
  // host tensor's values after the collective.
  at::Tensor in(const at::Tensor& t, bool back) {
    check_device(t);
    if (t.device().is_cpu()) {  // passed through (init_process_group("pjrt") sends CPU here)
      if (t.is_contiguous()) return t;
      at::Tensor h = t.contiguous();
      if (back) pairs_.emplace_back(t, h);
      return h;
    }
    at::Tensor h = t.to(at::kCPU).contiguous();
    bytes_ += t.nbytes();
    if (back) pairs_.emplace_back(t, h);
    return h;
  }
  // A host tensor the collective writes, copied into `t` afterwards.
  at::Tensor out(const at::Tensor& t) {
    check_device(t);
    if (t.device().is_cpu() && t.is_contiguous()) return t;
    at::Tensor h = at::empty(t.sizes(), t.options().device(at::kCPU));
    pairs_.emplace_back(t, h);
    return h;
  }
  Tensors in_all(const Tensors& ts, bool back) {
    Tensors r;
    for (const auto& t : ts) r.push_back(in(t, back));
    return r;
  }
  Tensors out_all(const Tensors& ts) {
    Tensors r;
    for (const auto& t : ts) r.push_back(out(t));
    return r;
  }
  TensorLists in_lists(const TensorLists& ls) {
    TensorLists r;
    for (const auto& l : ls) r.push_back(in_all(l, false));
    return r;
  }
  TensorLists out_lists(const TensorLists& ls) {
    TensorLists r;
    for (const auto& l : ls) r.push_back(out_all(l));
    return r;
  }
  // Waits for the host collective and copies its results to the device.
  void finish(const WorkPtr& work) {
    wait_host(work, kNoTimeout);
    copy_back();
  }
  void wait_host(const WorkPtr& work, std::chrono::milliseconds timeout) const {
    try {
      work->wait(timeout);
    } catch (const std::exception& e) {
      C10_THROW_ERROR(DistBackendError, std::string("pjrt ") + op_ +
                                            ": the host (gloo) collective failed: " + e.what());
    }
  }
  void copy_back() {
    for (auto& [dev, host] : pairs_) {
      dev.copy_(host);
      if (!dev.device().is_cpu()) bytes_ += dev.nbytes();
    }
    pairs_.clear();
    tpj_runtime_metrics_add_dist_staged(bytes_);
    bytes_ = 0;
  }

 private:
  void check_device(const at::Tensor& t) const {
    TORCH_CHECK(t.device().type() == kDev || t.device().is_cpu(), "pjrt ", op_,
                ": tensors must be on a pjrt device or the CPU (got a tensor on ", t.device(),
                ")");
    TORCH_CHECK(!t.is_sparse(), "pjrt ", op_, ": sparse tensors are not supported");
  }
  const char* op_;
  std::vector<std::pair<at::Tensor, at::Tensor>> pairs_;
  uint64_t bytes_ = 0;
};

// A point-to-point op still in flight on the host backend (a send must not
// wait for its receiver: isend before irecv would deadlock). wait(), or
// isCompleted() once the host op is done, copies what it received to the
// device, once; the future completes after that copy.
class PendingWork : public c10d::Work {
 public:
  PendingWork(int rank, OpType op, WorkPtr host, Staging staging, Tensors outputs)
      : c10d::Work(rank, op),
        host_(std::move(host)),
        staging_(std::move(staging)),
        outputs_(std::move(outputs)) {}
  bool isCompleted() override {
    if (!host_->isCompleted()) return false;
    finish(kNoTimeout);
    return true;
  }
  bool isSuccess() const override { return host_->isSuccess(); }
  int sourceRank() const override { return host_->sourceRank(); }
  bool wait(std::chrono::milliseconds timeout) override {
    finish(timeout);
    return true;
  }
  Tensors result() override { return outputs_; }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override {
    std::lock_guard<std::mutex> lock(mu_);
    if (!future_) {
      c10::intrusive_ptr<PendingWork> self =
          c10::intrusive_ptr<PendingWork>::reclaim_copy(this);
      future_ = host_->getFuture()->then(
          [self](c10::ivalue::Future&) {
            self->finish(kNoTimeout);
            return c10::IValue(self->outputs_);
          },
          c10::ListType::create(c10::TensorType::get()));
    }
    return future_;
  }

 private:
  void finish(std::chrono::milliseconds timeout) {
    std::lock_guard<std::mutex> lock(mu_);
    if (done_) return;
    staging_.wait_host(host_, timeout);
    staging_.copy_back();
    done_ = true;
  }
  WorkPtr host_;
  Staging staging_;
  Tensors outputs_;
  std::mutex mu_;
  bool done_ = false;
  c10::intrusive_ptr<c10::ivalue::Future> future_;
};

// What endCoalescing returns: waits for the point-to-point ops issued since
// startCoalescing (the collectives among them completed when issued).
class CoalescedWork : public c10d::Work {
 public:
  CoalescedWork(int rank, std::vector<WorkPtr> works)
      : c10d::Work(rank, OpType::COALESCED), works_(std::move(works)) {}
  bool isCompleted() override {
    for (auto& w : works_)
      if (!w->isCompleted()) return false;
    return true;
  }
  bool wait(std::chrono::milliseconds timeout) override {
    for (auto& w : works_) w->wait(timeout);
    return true;
  }
  c10::intrusive_ptr<c10::ivalue::Future> getFuture() override {
    auto f = c10::make_intrusive<c10::ivalue::Future>(c10::NoneType::get());
    wait(kNoTimeout);
    f->markCompleted(c10::IValue());
    return f;
  }

 private:
  std::vector<WorkPtr> works_;
};

class PjrtBackend : public c10d::Backend {
 public:
  PjrtBackend(c10::intrusive_ptr<c10d::Backend> host, int rank, int size)
      : c10d::Backend(rank, size), host_(std::move(host)) {}
  // The gloo backend's destructor joins its worker threads, which may need the
  // GIL to free the last tensors they hold (CPU tensors with Python objects):
  // dropping it with the GIL held (DDP's reducer at interpreter exit) deadlocks.
  // So it is dropped without the GIL; while the interpreter is finalizing,
  // when a thread that gives up the GIL may not get it back, it is left to
  // the exiting process instead.
  ~PjrtBackend() override {
    if (!Py_IsInitialized() || !PyGILState_Check()) {
      host_.reset();
    } else if (interpreter_finalizing()) {
      (void)host_.release();
    } else {
      Py_BEGIN_ALLOW_THREADS
      host_.reset();
      Py_END_ALLOW_THREADS
    }
  }

  const std::string getBackendName() const override { return "pjrt"; }
  // Every collective completes before it returns, so a coalesced group is
  // already done when it ends.
  bool supportsCoalescing() const override { return true; }
  void startCoalescing() override {
    std::lock_guard<std::mutex> lock(mu_);
    coalescing_ = true;
    pending_.clear();
  }
  WorkPtr endCoalescing() override {
    std::lock_guard<std::mutex> lock(mu_);
    coalescing_ = false;
    return c10::make_intrusive<CoalescedWork>(getRank(), std::move(pending_));
  }
  void setTimeout(std::chrono::milliseconds timeout) override { host_->setTimeout(timeout); }
  // TORCH_DISTRIBUTED_DEBUG=DETAIL's wrapper asks for these.
  void setSequenceNumberForGroup() override { host_->setSequenceNumberForGroup(); }
  uint64_t getSequenceNumberForGroup() override { return host_->getSequenceNumberForGroup(); }

  WorkPtr broadcast(Tensors& ts, const c10d::BroadcastOptions& o) override {
    return in_place("broadcast", OpType::BROADCAST, ts,
                    [&](Tensors& h) { return host_->broadcast(h, o); });
  }
  WorkPtr allreduce(Tensors& ts, const c10d::AllreduceOptions& o) override {
    return in_place("all_reduce", OpType::ALLREDUCE, ts,
                    [&](Tensors& h) { return host_->allreduce(h, o); });
  }
  WorkPtr allreduce_coalesced(Tensors& ts, const c10d::AllreduceCoalescedOptions& o) override {
    return in_place("all_reduce_coalesced", OpType::ALLREDUCE_COALESCED, ts,
                    [&](Tensors& h) { return host_->allreduce_coalesced(h, o); });
  }
  WorkPtr reduce(Tensors& ts, const c10d::ReduceOptions& o) override {
    return in_place("reduce", OpType::REDUCE, ts,
                    [&](Tensors& h) { return host_->reduce(h, o); });
  }
  WorkPtr allgather(TensorLists& outs, Tensors& ins, const c10d::AllgatherOptions& o) override {
    Staging s("all_gather");
    Tensors h = s.in_all(ins, false);
    TensorLists ho = s.out_lists(outs);
    s.finish(host_->allgather(ho, h, o));
    return done(OpType::ALLGATHER, flat(outs));
  }
  WorkPtr _allgather_base(at::Tensor& out, at::Tensor& in,
                          const c10d::AllgatherOptions& o) override {
    check_whole("all_gather_into_tensor", out, in, (int64_t)getSize(), 1);
    Staging s("all_gather_into_tensor");
    at::Tensor hi = s.in(in, false), ho = s.out(out);
    s.finish(host_->_allgather_base(ho, hi, o));
    return done(OpType::_ALLGATHER_BASE, {out});
  }
  WorkPtr allgather_coalesced(TensorLists& outs, Tensors& ins,
                              const c10d::AllgatherOptions& o) override {
    Staging s("all_gather_coalesced");
    Tensors h = s.in_all(ins, false);
    TensorLists ho = s.out_lists(outs);
    s.finish(host_->allgather_coalesced(ho, h, o));
    return done(OpType::ALLGATHER_COALESCED, flat(outs));
  }
  // One all_gather_into_tensor per pair: the host backend has no coalesced form.
  WorkPtr allgather_into_tensor_coalesced(Tensors& outs, Tensors& ins,
                                          const c10d::AllgatherOptions& o) override {
    TORCH_CHECK(outs.size() == ins.size(), "pjrt all_gather_into_tensor_coalesced: ",
                outs.size(), " outputs for ", ins.size(), " inputs (expected as many)");
    for (size_t i = 0; i < ins.size(); ++i) _allgather_base(outs[i], ins[i], o);
    return done(OpType::COALESCED, outs);
  }
  WorkPtr gather(TensorLists& outs, Tensors& ins, const c10d::GatherOptions& o) override {
    Staging s("gather");
    Tensors h = s.in_all(ins, false);
    TensorLists ho = s.out_lists(outs);
    s.finish(host_->gather(ho, h, o));
    return done(OpType::GATHER, flat(outs));
  }
  WorkPtr scatter(Tensors& outs, TensorLists& ins, const c10d::ScatterOptions& o) override {
    Staging s("scatter");
    TensorLists hi = s.in_lists(ins);
    Tensors ho = s.out_all(outs);
    s.finish(host_->scatter(ho, hi, o));
    return done(OpType::SCATTER, outs);
  }
  WorkPtr reduce_scatter(Tensors& outs, TensorLists& ins,
                         const c10d::ReduceScatterOptions& o) override {
    Staging s("reduce_scatter");
    TensorLists hi = s.in_lists(ins);
    Tensors ho = s.out_all(outs);
    s.finish(host_->reduce_scatter(ho, hi, o));
    return done(OpType::REDUCE_SCATTER, outs);
  }
  WorkPtr _reduce_scatter_base(at::Tensor& out, at::Tensor& in,
                               const c10d::ReduceScatterOptions& o) override {
    check_whole("reduce_scatter_tensor", out, in, 1, (int64_t)getSize());
    Staging s("reduce_scatter_tensor");
    at::Tensor hi = s.in(in, false), ho = s.out(out);
    s.finish(host_->_reduce_scatter_base(ho, hi, o));
    return done(OpType::_REDUCE_SCATTER_BASE, {out});
  }
  WorkPtr reduce_scatter_tensor_coalesced(Tensors& outs, Tensors& ins,
                                          const c10d::ReduceScatterOptions& o) override {
    TORCH_CHECK(outs.size() == ins.size(), "pjrt reduce_scatter_tensor_coalesced: ",
                outs.size(), " outputs for ", ins.size(), " inputs (expected as many)");
    for (size_t i = 0; i < ins.size(); ++i) _reduce_scatter_base(outs[i], ins[i], o);
    return done(OpType::COALESCED, outs);
  }
  WorkPtr alltoall_base(at::Tensor& out, at::Tensor& in, std::vector<int64_t>& out_splits,
                        std::vector<int64_t>& in_splits,
                        const c10d::AllToAllOptions& o) override {
    if (out_splits.empty() && in_splits.empty()) {
      check_whole("all_to_all_single", out, in, 1, 1);
      TORCH_CHECK(in.numel() % getSize() == 0, "pjrt all_to_all_single: the input's ",
                  in.numel(), " elements do not split into ", getSize(),
                  " equal parts (one per rank); pass split sizes for uneven parts");
    }
    Staging s("all_to_all_single");
    at::Tensor hi = s.in(in, false), ho = s.out(out);
    s.finish(host_->alltoall_base(ho, hi, out_splits, in_splits, o));
    return done(OpType::ALLTOALL_BASE, {out});
  }
  WorkPtr alltoall(Tensors& outs, Tensors& ins, const c10d::AllToAllOptions& o) override {
    Staging s("all_to_all");
    Tensors hi = s.in_all(ins, false), ho = s.out_all(outs);
    s.finish(host_->alltoall(ho, hi, o));
    return done(OpType::ALLTOALL, outs);
  }
  WorkPtr send(Tensors& ts, int dst, int tag) override {
    Staging s("send");
    Tensors h = s.in_all(ts, false);
    WorkPtr w = host_->send(h, dst, tag);
    return pending(OpType::SEND, std::move(w), std::move(s), ts);
  }
  WorkPtr recv(Tensors& ts, int src, int tag) override {
    Staging s("recv");
    Tensors h = s.out_all(ts);
    WorkPtr w = host_->recv(h, src, tag);
    return pending(OpType::RECV, std::move(w), std::move(s), ts);
  }
  WorkPtr recvAnysource(Tensors& ts, int tag) override {
    Staging s("recv");
    Tensors h = s.out_all(ts);
    WorkPtr w = host_->recvAnysource(h, tag);
    return pending(OpType::RECVANYSOURCE, std::move(w), std::move(s), ts);
  }
  WorkPtr barrier(const c10d::BarrierOptions& o) override {
    Staging s("barrier");
    c10d::BarrierOptions host = o;
    host.device_ids.clear();  // pjrt ordinals mean nothing to the host backend
    host.device = at::Device(at::kCPU);
    s.finish(host_->barrier(host));
    return done(OpType::BARRIER, {});
  }

 private:
  // out has out_per elements for every in_per of in (all_gather_into_tensor:
  // size per 1; reduce_scatter_tensor: 1 per size), of one dtype: said here,
  // before any rank stages anything (gloo's own check logs a fatal line).
  void check_whole(const char* op, const at::Tensor& out, const at::Tensor& in,
                   int64_t out_per, int64_t in_per) const {
    TORCH_CHECK(out.scalar_type() == in.scalar_type(), "pjrt ", op, ": output is ",
                out.scalar_type(), " and input ", in.scalar_type(), " (expected one dtype)");
    TORCH_CHECK(out.numel() * in_per == in.numel() * out_per, "pjrt ", op, ": output has ",
                out.numel(), " elements for an input of ", in.numel(), " (expected ",
                (double)in.numel() * (double)out_per / (double)in_per,
                " with world size ", getSize(), ")");
  }
  // A collective that writes its tensors in place: staged there and back.
  template <class HostCall>
  WorkPtr in_place(const char* name, OpType op, Tensors& ts, HostCall&& call) {
    Staging s(name);
    Tensors h = s.in_all(ts, true);
    s.finish(call(h));
    return done(op, ts);
  }
  WorkPtr done(OpType op, Tensors outputs) {
    return c10::make_intrusive<StagedWork>(getRank(), op, std::move(outputs));
  }
  WorkPtr pending(OpType op, WorkPtr host, Staging staging, Tensors outputs) {
    WorkPtr w = c10::make_intrusive<PendingWork>(getRank(), op, std::move(host),
                                                 std::move(staging), std::move(outputs));
    std::lock_guard<std::mutex> lock(mu_);
    if (coalescing_) pending_.push_back(w);
    return w;
  }
  static Tensors flat(const TensorLists& ls) {
    Tensors r;
    for (const auto& l : ls) r.insert(r.end(), l.begin(), l.end());
    return r;
  }
  c10::intrusive_ptr<c10d::Backend> host_;
  std::mutex mu_;
  bool coalescing_ = false;
  std::vector<WorkPtr> pending_;  // point-to-point ops since startCoalescing
};

}  // namespace tpj_device

using tpj_device::PjrtBackend;

PyObject* tpj_py_dist_backend(PyObject*, PyObject* args) {
  HANDLE_TH_ERRORS
  PyObject* host = nullptr;
  int rank = 0, size = 0;
  if (!PyArg_ParseTuple(args, "Oii:dist_backend", &host, &rank, &size)) return nullptr;
  auto host_backend = py::handle(host).cast<c10::intrusive_ptr<c10d::Backend>>();
  TORCH_CHECK(rank >= 0 && rank < size, "pjrt backend: rank ", rank, " outside 0..", size - 1);
  TORCH_CHECK(host_backend->getSize() == size && host_backend->getRank() == rank,
              "pjrt backend: the host backend is rank ", host_backend->getRank(), " of ",
              host_backend->getSize(), " (expected rank ", rank, " of ", size, ")");
  c10::intrusive_ptr<c10d::Backend> b =
      c10::make_intrusive<PjrtBackend>(std::move(host_backend), rank, size);
  return py::cast(b).release().ptr();
  END_HANDLE_TH_ERRORS
}
