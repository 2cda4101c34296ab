// Addon entry point: creates the per-environment data and runs every IBQB_REGISTER'ed initialiser.
#include <napi.h>

#include <vector>

#include "bindings/addon_data.h"
#include "bindings/jobs.h"
#include "bindings/registry.h"
#include "ibq/logging.h"

namespace ibqb {
namespace {

std::vector<std::pair<const char*, InitFn>>& Registry() {
  static std::vector<std::pair<const char*, InitFn>> fns;
  return fns;
}

}  // namespace

Registrar::Registrar(const char* name, InitFn fn) { Registry().emplace_back(name, fn); }

void InitAll(Napi::Env env, Napi::Object exports) {
  for (auto& [name, fn] : Registry()) fn(env, exports);
}

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
  ibq::init_logging();  // once per process (worker_threads load the addon again)
  ibqb::GetAddonData(env);
  ibqb::InitJobs(env);
  ibqb::InitAll(env, exports);
  exports.Set("shutdown", Napi::Function::New(env, ShutdownJs, "shutdown"));
  return exports;
}

NODE_API_MODULE(ibq_native, Init)
