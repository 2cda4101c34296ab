// The JS handle of an ibq::dist::ProcessGroup, for the bindings that take one (data-parallel trainers).
#pragma once
#include <napi.h>

#include <memory>
#include <vector>

#include "ibq/distributed/data_parallel.h"
#include "ibq/distributed/distributed.h"

namespace ibqb {

// The process group behind a ProcessGroupHandle passed as `arg`; TypeError naming `arg` for anything else, or
// for a group not yet initialised / already destroyed.
std::shared_ptr<ibq::dist::ProcessGroup> ArgProcessGroup(const Napi::Value& v, const char* arg);

// The arguments of a trainer's setDataParallel(processGroup | null, { bucketCapMb? }): a null group turns data
// parallelism off.
struct DataParallelArgs {
  std::shared_ptr<ibq::dist::ProcessGroup> group;
  ibq::dist::DataParallelOptions options;
};
DataParallelArgs ArgDataParallel(const Napi::CallbackInfo& info);

// The ranks whose loss was not finite, as a JS array of numbers (a trainer step's nonfiniteRanks).
Napi::Array RanksToJs(Napi::Env env, const std::vector<int>& ranks);

}  // namespace ibqb
