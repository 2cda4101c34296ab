// Base of every model's JS handle: the module, its job queue (calls on one model run in order), and the
// methods all models share: stateDict, loadStateDict, train/eval, device. A model binding derives from
// ModuleHandle<Its Handle>, sets `module_` in its constructor/factory and adds its own methods with
// CommonMethods() + its own descriptors in DefineClass. Models can also be built off the JS thread (Build):
// random initialisation of a large model takes seconds.
#pragma once
#include <napi.h>
#include <torch/torch.h>

#include <functional>
#include <string>

#include "bindings/addon_data.h"
#include "bindings/convert.h"
#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/module_ref.h"
#include "ibq/io/state_dict.h"

namespace ibqb {

// The constructor argument of a handle that Build() makes: the constructor then leaves the module unset.
inline int kBuildMarkerTag = 0;
inline Napi::Value BuildMarker(Napi::Env env) { return Napi::External<int>::New(env, &kBuildMarkerTag); }
inline bool IsBuildMarker(const Napi::Value& v) {
  return v.IsExternal() && v.As<Napi::External<int>>().Data() == &kBuildMarkerTag;
}

template <class Derived>
class ModuleHandle : public Napi::ObjectWrap<Derived> {
 public:
  explicit ModuleHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Derived>(info) {}

  torch::nn::Module& module(Napi::Env env) const {
    if (!module_) ThrowDisposed(env, "model: the model has been disposed or was never created");
    return *module_;
  }
  const std::shared_ptr<JobQueue>& queue() const { return queue_; }

  // What a build job hands to the new handle, on the JS thread (sets module_ and what else the handle owns).
  using Adopt = std::function<void(Derived&)>;
  // Runs `make` (module creation, seeding, device move) as a job on a worker thread, on `queue` when given (after
  // that model's queued jobs); resolves with a new handle of the class registered as `ctor_name` (constructed
  // with BuildMarker(), so its constructor does nothing) given what `make` returned. Errors reject the Promise.
  static Napi::Promise Build(Napi::Env env, const char* ctor_name, std::function<Adopt()> make,
                             std::shared_ptr<JobQueue> queue = nullptr) {
    std::string name = ctor_name;
    return Submit(
        env,
        [make, name](JobContext&) -> Finisher {
          Adopt adopt = make();
          return [adopt, name](Napi::Env env) -> Napi::Value {
            Napi::Object obj = GetAddonData(env).ctors.at(name).New({BuildMarker(env)});
            adopt(*Derived::Unwrap(obj));
            return obj;
          };
        },
        JobOptions{std::move(queue)});
  }

  // A handle whose model is Derived::Make(Derived::ReadArgs(info)) (static members of the derived handle): its
  // constructor body (Construct: nothing for a BuildMarker) and its asynchronous factory (BuildFrom, on a
  // worker thread, resolving with a new handle of the class registered as `ctor_name`).
  void Construct(const Napi::CallbackInfo& info) {
    if (IsBuildMarker(info[0])) return;
    auto a = Derived::ReadArgs(info);
    module_ = Guard(info.Env(), [&] { return Derived::Make(a); });
  }
  static Napi::Value BuildFrom(const Napi::CallbackInfo& info, const char* ctor_name) {
    auto a = Derived::ReadArgs(info);
    return Build(info.Env(), ctor_name, [a] {
      auto m = Derived::Make(a);
      return Adopt([m](Derived& h) { h.module_ = m; });
    });
  }

  // The module as its own class (module_ is its one owner; nothing else in a handle holds it).
  template <class M>
  std::shared_ptr<M> typed(Napi::Env env) const {
    module(env);
    return std::static_pointer_cast<M>(module_);
  }

 protected:
  using Self = ModuleHandle<Derived>;
  static std::vector<typename Napi::ObjectWrap<Derived>::PropertyDescriptor> CommonMethods() {
    using W = Napi::ObjectWrap<Derived>;
    // Runtime overload: a pointer to a member of this base converts to one of Derived only as a function
    // argument, not as the template argument of InstanceMethod<&...>.
    using M = typename W::InstanceMethodCallback;
    return {
        W::InstanceMethod("stateDict", static_cast<M>(&Self::StateDict)),
        W::InstanceMethod("snapshot", static_cast<M>(&Self::Snapshot)),
        W::InstanceMethod("loadStateDict", static_cast<M>(&Self::LoadStateDict)),
        W::InstanceMethod("setTraining", static_cast<M>(&Self::SetTraining)),
        W::InstanceMethod("isTraining", static_cast<M>(&Self::IsTraining)),
        W::InstanceMethod("device", static_cast<M>(&Self::Device)),
        W::InstanceMethod("dispose", static_cast<M>(&Self::Dispose)),
        W::InstanceMethod("parameterNames", static_cast<M>(&Self::ParameterNames)),
        W::InstanceMethod("moduleRef", static_cast<M>(&Self::ModuleRefOf)),
    };
  }

  // Synchronous calls that read or change the model refuse to run while one of its jobs is queued or running
  // (Error with code ERR_IBQ_BUSY): await the job first. Asynchronous calls are queued in order instead.
  void check_idle(Napi::Env env, const char* what) const {
    if (!QueueBusy(queue_)) return;
    ThrowCoded(env, ErrorInfo::kBusy, std::string(what) + ": the model is busy with a running job; await it first");
  }

  // What a derived handle owns besides module_ (optimizer or trainer state); released by dispose().
  virtual void release_extra() {}

  std::shared_ptr<torch::nn::Module> module_;
  std::shared_ptr<JobQueue> queue_ = NewQueue();
  // false for a handle that shares another model's queue (a trainer on a tokenizer): its dispose() leaves the
  // queue open, as the other model still uses it.
  bool owns_queue_ = true;

 private:
  // stateDict() -> [name, Tensor][] (copies, in torch's state_dict order)
  Napi::Value StateDict(const Napi::CallbackInfo& info) {
    auto& m = module(info.Env());
    check_idle(info.Env(), "stateDict()");
    return Guard(info.Env(), [&] { return StateDictToJs(info.Env(), ibq::state_dict(m)); });
  }
  // snapshot(skip?: string[]) -> Promise<[name, Tensor][]>: the same copies, made on a worker thread after the
  // model's queued jobs (checkpoints of large models without blocking the event loop); keys under a `skip` prefix
  // are left out (not copied)
  Napi::Value Snapshot(const Napi::CallbackInfo& info) {
    module(info.Env());
    auto m = module_;
    auto skip = ArgStrings(info[0], "skip");
    return Submit(
        info.Env(),
        [m, skip](JobContext&) -> Finisher {
          ibq::NamedTensors copies;
          for (const auto& [k, t] : ibq::state_dict(*m)) {
            if (!ibq::has_prefix(k, skip)) copies.emplace_back(k, t.detach().clone());
          }
          return [copies](Napi::Env env) { return StateDictToJs(env, copies, /*share=*/true); };
        },
        JobOptions{queue_});
  }
  // loadStateDict(entries, strict, skip?: string[]) -> Promise<{missing, unexpected, mismatched}> (on the model's
  // queue); keys under a `skip` prefix are not the model's own (e.g. the tokenizer's 'loss.', 'model_ema.')
  Napi::Value LoadStateDict(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    module(env);
    auto sd = ArgStateDict(info[0], "stateDict");
    bool strict = ArgBool(info[1], "strict", true);
    auto m = module_;
    auto skip = ArgStrings(info[2], "skip");
    return Submit(
        env,
        [m, sd, strict, skip](JobContext&) -> Finisher {
          auto r = ibq::load_state_dict(*m, sd, strict, skip);
          return [r](Napi::Env env) { return LoadResultToJs(env, r); };
        },
        JobOptions{queue_});
  }
  // parameterNames() -> names of module.named_parameters() (all of them, requires_grad or not: the
  // parameters the official LitEma tracks), in registration order
  Napi::Value ParameterNames(const Napi::CallbackInfo& info) {
    auto& m = module(info.Env());
    std::vector<std::string> names;
    for (const auto& p : m.named_parameters(/*recurse=*/true)) names.push_back(p.key());
    return StringsToJs(info.Env(), names);
  }
  // moduleRef() -> External { module, queue } for bindings built on this model (see module_ref.h)
  Napi::Value ModuleRefOf(const Napi::CallbackInfo& info) {
    module(info.Env());
    return MakeModuleRef(info.Env(), ModuleRef{module_, queue_});
  }
  Napi::Value SetTraining(const Napi::CallbackInfo& info) {
    auto& m = module(info.Env());
    check_idle(info.Env(), "train()/eval()");
    m.train(ArgBool(info[0], "training", true));
    return info.Env().Undefined();
  }
  Napi::Value IsTraining(const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), module(info.Env()).is_training());
  }
  // Safe while a job runs: parameters change device only through the synchronous to(), which check_idle guards.
  Napi::Value Device(const Napi::CallbackInfo& info) {
    auto& m = module(info.Env());
    auto params = m.parameters();
    return Napi::String::New(info.Env(), params.empty() ? "cpu" : params[0].device().str());
  }
  // dispose(): releases the module and everything the handle owns at once. The model's queued jobs are rejected
  // with ERR_IBQ_DISPOSED now; the running one stops at its next step with the same code (it keeps what it uses
  // alive until it ends, then the memory goes); later calls throw ERR_IBQ_DISPOSED.
  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    if (owns_queue_) CloseQueue(info.Env(), queue_);
    module_.reset();
    release_extra();
    return info.Env().Undefined();
  }
};

}  // namespace ibqb
