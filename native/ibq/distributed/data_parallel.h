// Data parallelism with PyTorch DDP's semantics for a torch::nn::Module on an ibq::dist::ProcessGroup
// (torch/nn/parallel/distributed.py driving c10d::Reducer): parameters and buffers broadcast from rank 0 at the
// start; buffers broadcast from rank 0 once per training step (broadcast_buffers=True); gradients averaged over
// ranks in buckets (25 MiB, the first 1 MiB, in reverse registration order) by c10d::Reducer, whose autograd hooks
// launch each bucket's all-reduce as soon as its gradients are ready, overlapping the rest of the backward pass;
// parameters a backward does not reach are handled as find_unused_parameters=True does.
//
// One Reducer per parameter group: the tokenizer's discriminator step and generator step each reduce only their
// optimizer's parameters (the official Lightning run reduces the whole LightningModule after each manual_backward;
// the averaged gradients of the parameters an optimizer steps are the same).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <vector>

#include "ibq/distributed/distributed.h"

namespace ibq::dist {

struct DataParallelOptions {
  int64_t bucket_cap_mb = 25;  // DDP's bucket_cap_mb
  bool find_unused_parameters = true;
};

class DataParallel {
 public:
  // `groups`: the parameter lists reduced together (each an optimizer's parameters); parameters without
  // requires_grad are left out. Checks that every rank holds the same parameter shapes (DistError otherwise),
  // then broadcasts parameters and buffers from rank 0.
  DataParallel(std::shared_ptr<ProcessGroup> pg, std::shared_ptr<torch::nn::Module> module,
               const std::vector<std::vector<at::Tensor>>& groups, const DataParallelOptions& opts = {});
  ~DataParallel();

  // Every buffer of the module from rank 0 (DDP's per-step buffer broadcast).
  void sync_buffers();
  // Parameters and buffers from rank 0 (DDP's constructor; also after loading a checkpoint).
  void sync_module_states();

  // loss.backward() (restricted to `inputs` when given) with the gradients of group `group` averaged over the
  // ranks when `sync` (false: accumulate locally, as DDP's no_sync()). Throws DistError naming the failed rank.
  void backward(size_t group, const at::Tensor& loss, const std::vector<at::Tensor>& inputs = {}, bool sync = true);

  // Ranks whose `local_nonfinite` was true (a collective; every rank gets the same list).
  std::vector<int> nonfinite_ranks(bool local_nonfinite);
  // Element-wise mean over ranks.
  std::vector<double> mean(const std::vector<double>& values);

  ProcessGroup& group() { return *pg_; }
  int rank() const { return pg_->rank(); }
  int world_size() const { return pg_->world_size(); }

 private:
  struct Reducers;
  std::shared_ptr<ProcessGroup> pg_;
  std::shared_ptr<torch::nn::Module> module_;
  std::unique_ptr<Reducers> reducers_;
};

}  // namespace ibq::dist
