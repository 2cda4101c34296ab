// Stand-in for the one header of torch's distributed autograd that c10d/reducer.hpp includes and Debian's
// libtorch-dev does not ship (it ships c10d/ but not distributed/autograd/). reducer.hpp only needs these two
// names (a static_assert on GradCallback and a shared_ptr member in Reducer::RpcContext); no code of ours
// creates or touches a DistAutogradContext. Used only when the real header is absent (see CMakeLists.txt).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>

namespace torch::distributed::autograd {

class DistAutogradContext {
 public:
  using GradCallback = std::function<bool(at::Tensor&)>;
};
using ContextPtr = std::shared_ptr<DistAutogradContext>;

}  // namespace torch::distributed::autograd
