#include "ibq/io/state_dict.h"

#include <sstream>
#include <unordered_map>

#include "ibq/core/errors.h"

namespace ibq {
namespace {

void collect(const torch::nn::Module& m, const std::string& prefix, NamedTensors& out) {
  for (const auto& p : m.named_parameters(/*recurse=*/false)) out.emplace_back(prefix + p.key(), p.value());
  for (const auto& b : m.named_buffers(/*recurse=*/false)) out.emplace_back(prefix + b.key(), b.value());
  for (const auto& c : m.named_children()) collect(*c.value(), prefix + c.key() + ".", out);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

void list(std::ostringstream& os, const char* what, const std::vector<std::string>& keys) {
  if (keys.empty()) return;
  os << "\n  " << what << " (" << keys.size() << "): ";
  for (size_t i = 0; i < keys.size() && i < 40; ++i) os << (i ? ", " : "") << keys[i];
  if (keys.size() > 40) os << ", ... (" << keys.size() - 40 << " more)";
}

}  // namespace

bool has_prefix(const std::string& key, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (key.rfind(p, 0) == 0) return true;
  return false;
}

NamedTensors state_dict(const torch::nn::Module& module) {
  NamedTensors out;
  collect(module, "", out);
  return out;
}

std::string LoadResult::describe() const {
  std::ostringstream os;
  os << "state dict does not match the model:";
  list(os, "missing keys", missing);
  list(os, "unexpected keys", unexpected);
  if (!mismatched.empty()) {
    os << "\n  shape mismatches (" << mismatched.size() << "): ";
    for (size_t i = 0; i < mismatched.size() && i < 40; ++i)
      os << (i ? ", " : "") << mismatched[i].key << " expected " << shape_str(mismatched[i].expected) << " got "
         << shape_str(mismatched[i].got);
  }
  return os.str();
}

LoadResult load_state_dict(torch::nn::Module& module, const NamedTensors& input, bool strict,
                           const std::vector<std::string>& skip_prefixes) {
  auto own = state_dict(module);
  std::unordered_map<std::string, at::Tensor> by_name;
  for (const auto& [k, v] : input) by_name[k] = v;
  LoadResult r;
  std::vector<std::pair<at::Tensor, at::Tensor>> copies;
  std::unordered_map<std::string, bool> own_keys;
  for (const auto& [k, dst] : own) {
    own_keys[k] = true;
    auto it = by_name.find(k);
    if (it == by_name.end()) {
      r.missing.push_back(k);
      continue;
    }
    const at::Tensor& src = it->second;
    if (src.sizes() != dst.sizes()) {
      r.mismatched.push_back({k, dst.sizes().vec(), src.sizes().vec()});
      continue;
    }
    copies.emplace_back(dst, src);
  }
  for (const auto& [k, v] : input) {
    if (!has_prefix(k, skip_prefixes) && !own_keys.count(k)) r.unexpected.push_back(k);
  }
  if (strict && !r.ok()) throw ValueError(r.describe());
  torch::NoGradGuard no_grad;
  for (auto& [dst, src] : copies) dst.copy_(src.to(dst.device(), dst.scalar_type()));
  return r;
}

}  // namespace ibq
