// State dicts with PyTorch's key order and semantics, shared by every model (official checkpoints load 1:1).
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace ibq {

using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Parameters and buffers in torch.nn.Module.state_dict() order: a module's own parameters, then its own
// buffers, then each child in registration order, names joined with '.'. Tensors are the live ones
// (share memory with the module); callers clone when they need a snapshot.
NamedTensors state_dict(const torch::nn::Module& module);

// Whether `key` starts with one of `prefixes` (state-dict keys of other modules, e.g. 'loss.', 'model_ema.').
bool has_prefix(const std::string& key, const std::vector<std::string>& prefixes);

struct ShapeMismatch {
  std::string key;
  std::vector<int64_t> expected, got;
};

struct LoadResult {
  std::vector<std::string> missing;     // module keys absent from the input
  std::vector<std::string> unexpected;  // input keys the module does not have
  std::vector<ShapeMismatch> mismatched;
  std::string describe() const;         // one message listing all three
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
};

// Copies matching tensors into the module (converted to each parameter's dtype and device). With strict,
// nothing is copied unless every key matches, and an ibq::ValueError with LoadResult::describe() is thrown.
// Keys in `skip_prefixes` are ignored (neither loaded nor reported as unexpected).
LoadResult load_state_dict(torch::nn::Module& module, const NamedTensors& input, bool strict,
                           const std::vector<std::string>& skip_prefixes = {});

}  // namespace ibq
