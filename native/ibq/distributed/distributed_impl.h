// The c10d objects behind ibq::dist::ProcessGroup (for translation units that drive c10d directly, such as the
// data-parallel wrapper). Needs IBQ_C10D (see compat.h).
#pragma once
#define IBQ_C10D 1
#include "ibq/core/compat.h"
#include "ibq/distributed/distributed.h"

namespace ibq::dist {

struct ProcessGroup::Impl {
  c10::intrusive_ptr<c10d::TCPStore> store;
  c10::intrusive_ptr<c10d::ProcessGroup> pg;
  at::Device device{at::kCPU};
};

}  // namespace ibq::dist
