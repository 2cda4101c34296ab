#include "ibq/distributed/data_parallel.h"

#include <algorithm>

#include "ibq/distributed/distributed_impl.h"
#include "ibq/core/errors.h"

namespace ibq::dist {

struct DataParallel::Reducers {
  std::vector<std::unique_ptr<c10d::Reducer>> list;
};

namespace {

constexpr int64_t kFirstBucketBytes = int64_t(1) << 20;  // DDP's _DEFAULT_FIRST_BUCKET_BYTES

std::vector<at::Tensor> buffers_of(torch::nn::Module& m) { return m.buffers(/*recurse=*/true); }

// The Reducer's hint "find_unused_parameters=True was specified in DDP constructor, but did not find any unused
// parameters ..." tells a PyTorch user to drop a constructor flag they chose. Here the flag is not the user's: it is
// set so that configurations whose steps leave some parameters without gradients train at all; the hint would
// only be noise on every rank (and the traversal it mentions is a cost we accept for that).
bool is_unused_parameters_hint(const std::string& msg) {
  return msg.rfind("find_unused_parameters=True was specified", 0) == 0;
}

}  // namespace

DataParallel::DataParallel(std::shared_ptr<ProcessGroup> pg, std::shared_ptr<torch::nn::Module> module,
                           const std::vector<std::vector<at::Tensor>>& groups, const DataParallelOptions& opts)
    : pg_(std::move(pg)), module_(std::move(module)), reducers_(std::make_unique<Reducers>()) {
  if (!pg_) throw TypeError("processGroup: expected a live process group");
  if (!module_) throw TypeError("module: expected a live module");
  if (opts.bucket_cap_mb < 1) throw ValueError("bucketCapMb: expected an integer >= 1");
  auto& impl = pg_->impl();
  std::unordered_map<const void*, std::string> names;
  for (const auto& p : module_->named_parameters(/*recurse=*/true)) names.emplace(p.value().unsafeGetTensorImpl(), p.key());

  std::vector<at::Tensor> all;
  for (const auto& g : groups)
    for (const auto& p : g)
      if (p.requires_grad()) all.push_back(p);
  try {
    c10d::verify_params_across_processes(impl.pg, all, c10::nullopt);
  } catch (const std::exception& e) {
    pg_->raise("checking that all ranks hold the same model", e.what());
  }
  sync_module_states();

  const int64_t cap = opts.bucket_cap_mb << 20;
  for (const auto& g : groups) {
    std::vector<at::Tensor> params;
    for (const auto& p : g)
      if (p.requires_grad()) params.push_back(p);
    if (params.empty()) {
      reducers_->list.emplace_back();
      continue;
    }
    std::unordered_map<size_t, std::string> param_names;
    for (size_t i = 0; i < params.size(); ++i) {
      auto it = names.find(params[i].unsafeGetTensorImpl());
      if (it != names.end()) param_names.emplace(i, it->second);
    }
    auto assigned = c10d::compute_bucket_assignment_by_size(
        params, {static_cast<size_t>(kFirstBucketBytes), static_cast<size_t>(cap)}, std::vector<bool>(params.size(), false));
    auto buckets = std::get<0>(assigned);
    auto limits = std::get<1>(assigned);
    std::reverse(buckets.begin(), buckets.end());
    std::reverse(limits.begin(), limits.end());
    reducers_->list.push_back(compat::make_reducer(params, std::move(buckets), std::move(limits), impl.pg, cap,
                                                   opts.find_unused_parameters, std::move(param_names), kFirstBucketBytes));
  }
}

DataParallel::~DataParallel() = default;

void DataParallel::sync_buffers() {
  torch::NoGradGuard no_grad;
  pg_->broadcast(buffers_of(*module_), 0);
}

void DataParallel::sync_module_states() {
  torch::NoGradGuard no_grad;
  auto ts = module_->parameters(/*recurse=*/true);
  auto bs = buffers_of(*module_);
  ts.insert(ts.end(), bs.begin(), bs.end());
  std::vector<at::Tensor> data;
  for (auto& t : ts) data.push_back(t.detach());
  pg_->broadcast(data, 0);
}

void DataParallel::backward(size_t group, const at::Tensor& loss, const std::vector<at::Tensor>& inputs, bool sync) {
  if (group >= reducers_->list.size()) throw ValueError("group: no parameter group " + std::to_string(group));
  auto& reducer = reducers_->list[group];
  compat::WarningFilter quiet(is_unused_parameters_hint);
  try {
    if (sync && reducer) reducer->prepare_for_backward({loss});
    if (inputs.empty()) {
      loss.backward();
    } else {
      loss.backward({}, /*retain_graph=*/false, /*create_graph=*/false, inputs);
    }
  } catch (const DistError&) {
    throw;
  } catch (const std::exception& e) {
    pg_->raise("gradient all-reduce", e.what());
  }
}

std::vector<int> DataParallel::nonfinite_ranks(bool local_nonfinite) {
  std::vector<double> v(static_cast<size_t>(pg_->world_size()), 0.0);
  v[static_cast<size_t>(pg_->rank())] = local_nonfinite ? 1.0 : 0.0;
  v = pg_->all_reduce_sum(v);
  std::vector<int> out;
  for (size_t r = 0; r < v.size(); ++r)
    if (v[r] != 0) out.push_back(static_cast<int>(r));
  return out;
}

std::vector<double> DataParallel::mean(const std::vector<double>& values) {
  auto s = pg_->all_reduce_sum(values);
  for (auto& x : s) x /= pg_->world_size();
  return s;
}

}  // namespace ibq::dist
