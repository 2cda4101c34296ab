// Addon entry point: creates the per-environment data and the job system, then adds every binding file's
// exports, in the order of the list below (exports.h declares them).
#include <napi.h>

#include "bindings/addon_data.h"
#include "bindings/jobs.h"
#include "bindings/exports.h"
#include "ibq/core/logging.h"
#include "ibq/core/large_blocks.h"
#include "ibq/core/onednn_isa.h"

namespace ibqb {

AddonData& GetAddonData(Napi::Env env) {
  auto* d = env.GetInstanceData<AddonData>();
  if (!d) {
    d = new AddonData();
    env.SetInstanceData<AddonData>(d);
  }
  return *d;
}

}  // namespace ibqb

// shutdown(processExiting): see ibqb::Shutdown. lib/native.ts calls it on process 'exit' (process.exit and
// uncaught exceptions skip the environment's cleanup hooks on the main thread, then exit() runs).
static Napi::Value ShutdownJs(const Napi::CallbackInfo& info) {
  ibqb::Shutdown(info.Env(), info[0].ToBoolean().Value());
  return info.Env().Undefined();
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  ibq::init_logging();            // once per process (worker_threads load the addon again)
  ibq::apply_onednn_isa_limit();  // before any libtorch op (see onednn_isa.h)
  ibq::LargeBlocks::install();    // libtorch's CPU allocator keeps large blocks for our jobs (large_blocks.h)
  ibqb::GetAddonData(env);
  ibqb::InitJobs(env);
  for (auto init : {ibqb::InitInfo, ibqb::InitTensor, ibqb::InitTensorIo, ibqb::InitIBQuantizer,
                    ibqb::InitVectorQuantizer, ibqb::InitTokenizer, ibqb::InitTokenizerTrainer, ibqb::InitTransformer, ibqb::InitGenerator,
                    ibqb::InitProcessGroup, ibqb::InitLpips, ibqb::InitFidInception, ibqb::InitMetrics,
                    ibqb::InitConfigFields, ibqb::InitImage, ibqb::InitTestOps})
    init(env, exports);
  exports.Set("shutdown", Napi::Function::New(env, ShutdownJs, "shutdown"));
  return exports;
}

NODE_API_MODULE(ibq_native, Init)
