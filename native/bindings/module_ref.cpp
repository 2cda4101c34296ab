#include "bindings/module_ref.h"

#include <mutex>
#include <unordered_set>

#include "bindings/errors.h"

namespace ibqb {
namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::unordered_set<const ModuleRef*>& registry() {
  static std::unordered_set<const ModuleRef*> live;
  return live;
}

}  // namespace

Napi::Value MakeModuleRef(Napi::Env env, ModuleRef ref) {
  auto* p = new ModuleRef(std::move(ref));
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    registry().insert(p);
  }
  return Napi::External<ModuleRef>::New(env, p, [](Napi::Env, ModuleRef* r) {
    {
      std::lock_guard<std::mutex> lock(registry_mutex());
      registry().erase(r);
    }
    delete r;
  });
}

ModuleRef ArgModuleRef(const Napi::Value& v, const char* arg) {
  Napi::Env env = v.Env();
  const std::string what = std::string(arg) + ": expected a model (e.g. a Tokenizer)";
  if (!v.IsObject()) ThrowType(env, what);
  Napi::Value fn = v.As<Napi::Object>().Get("moduleRef");
  if (!fn.IsFunction()) ThrowType(env, what);
  Napi::Value ext = fn.As<Napi::Function>().Call(v, {});
  if (!ext.IsExternal()) ThrowType(env, what);
  auto* p = ext.As<Napi::External<ModuleRef>>().Data();
  ModuleRef out;
  {
    std::lock_guard<std::mutex> lock(registry_mutex());
    if (!registry().count(p)) ThrowType(env, what);
    out = *p;
  }
  if (!out.module) ThrowDisposed(env, std::string(arg) + ": the model has been disposed");
  return out;
}

}  // namespace ibqb
