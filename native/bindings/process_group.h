// The JS handle of an ibq::dist::ProcessGroup, for the bindings that take one (data-parallel trainers).
#pragma once
#include <napi.h>

#include <memory>

#include "ibq/distributed/distributed.h"

namespace ibqb {

// The process group behind a ProcessGroupHandle passed as `arg`; TypeError naming `arg` for anything else, or
// for a group not yet initialised / already destroyed.
std::shared_ptr<ibq::dist::ProcessGroup> ArgProcessGroup(const Napi::Value& v, const char* arg);

}  // namespace ibqb
