// JS handle of the continuous-batching engine (ibq::BatchEngine) of one transformer: lib/transformer/generator.ts
// wraps it. Requests are handed in with submit() and run by one long job on the transformer's queue (the decode
// loop) that admits queued requests at every token step and ends when none is left; the next submit() starts
// another. The loop reports each finished request through its progress channel (id, 1); the JS side then take()s
// its tokens. One native call per busy period, not per token.
#include <napi.h>

#include <deque>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "bindings/addon_data.h"
#include "bindings/errors.h"
#include "bindings/exports.h"
#include "bindings/jobs.h"
#include "bindings/module_ref.h"
#include "bindings/tensor.h"
#include "ibq/transformer/batch_engine.h"

namespace ibqb {
namespace {

constexpr const char* kCtor = "GeneratorHandle";

// What the JS thread and the loop's worker share (under `mu`).
struct Shared {
  std::mutex mu;
  std::deque<std::pair<int64_t, ibq::EngineRequest>> inbox;  // submitted, not yet in a slot
  std::unordered_set<int64_t> cancelled;                     // ids to drop at the next step
  std::unordered_map<int64_t, at::Tensor> results;          // finished, not yet taken
  int64_t running_requests = 0;                              // in slots
  bool looping = false;                                      // a loop job is queued or running
};

class GeneratorHandle : public Napi::ObjectWrap<GeneratorHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto ctor = DefineClass(env, kCtor,
                            {InstanceMethod<&GeneratorHandle::Submit_>("submit"),
                             InstanceMethod<&GeneratorHandle::Cancel>("cancel"),
                             InstanceMethod<&GeneratorHandle::Take>("take"),
                             InstanceMethod<&GeneratorHandle::Stats>("stats")});
    GetAddonData(env).ctors[kCtor] = Napi::Persistent(ctor);
    exports.Set(kCtor, ctor);
  }

  // new GeneratorHandle(transformerHandle, maxBatch, onFinished(id)): the static buffers are allocated here.
  explicit GeneratorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<GeneratorHandle>(info) {
    Napi::Env env = info.Env();
    auto ref = ArgModuleRef(info[0], "transformer");
    auto model = std::dynamic_pointer_cast<ibq::TransformerImpl>(ref.module);
    if (!model) ThrowType(env, "transformer: expected a Transformer");
    int64_t max_batch = ArgInt(info[1], "maxBatch", 1, 4096);
    on_finished_ = Napi::Persistent(ArgFunction(info[2], "onFinished"));
    queue_ = ref.queue;
    engine_ = Guard(env, [&] { return std::make_shared<ibq::BatchEngine>(model, max_batch, /*resident=*/true); });
    shared_ = std::make_shared<Shared>();
  }

 private:
  // submit(id, label, { cfgScale, temperature, topK, topP, greedy, seed }) -> Promise<void> | undefined: queues
  // the request; returns the Promise of the decode loop it started (settles when the loop ends: rejects with the
  // loop's error, e.g. ERR_IBQ_DISPOSED, for every request it held) or undefined when a loop is running.
  Napi::Value Submit_(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    const int64_t lim = int64_t(1) << 53;  // conversion only: lib/transformer checked the options
    int64_t id = ArgInt(info[0], "id", 0, lim);
    ibq::EngineRequest r;
    r.label = ArgInt(info[1], "label", 0, lim);
    auto o = ArgObject(info[2], "options");
    r.sample.cfg_scale = ArgNumber(o.Get("cfgScale"), "cfgScale");
    r.sample.temperature = ArgNumber(o.Get("temperature"), "temperature");
    r.sample.top_k = ArgInt(o.Get("topK"), "topK", 0, lim);
    r.sample.top_p = ArgNumber(o.Get("topP"), "topP");
    r.sample.greedy = ArgBool(o.Get("greedy"), "greedy", false);
    r.sample.seed = static_cast<uint64_t>(ArgInt(o.Get("seed"), "seed", 0, lim));
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->inbox.emplace_back(id, r);
      if (shared_->looping) return env.Undefined();
      shared_->looping = true;
    }
    try {
      JobOptions jo{queue_};
      jo.on_progress = on_finished_.Value();
      return ibqb::Submit(env, Loop(engine_, shared_), jo);
    } catch (...) {
      std::lock_guard<std::mutex> lock(shared_->mu);
      shared_->looping = false;
      shared_->inbox.clear();
      throw;
    }
  }

  // The decode loop: admit, drop cancelled, one step, report finished; until no request is left.
  static Work Loop(std::shared_ptr<ibq::BatchEngine> engine, std::shared_ptr<Shared> sh) {
    return [engine, sh](JobContext& ctx) -> Finisher {
      std::unordered_map<int64_t, int64_t> slot_of, id_of;  // request id <-> slot (this worker only)
      auto finish_all = [&] {
        engine->clear();
        std::lock_guard<std::mutex> lock(sh->mu);
        sh->inbox.clear();
        sh->cancelled.clear();
        sh->running_requests = 0;
        sh->looping = false;
      };
      try {
        engine->prepare();
        for (;;) {
          std::vector<std::pair<int64_t, ibq::EngineRequest>> admit;
          {
            std::lock_guard<std::mutex> lock(sh->mu);
            for (int64_t id : sh->cancelled) {
              if (auto it = slot_of.find(id); it != slot_of.end()) {
                engine->leave(it->second);
                id_of.erase(it->second);
                slot_of.erase(it);
              }
              sh->results.erase(id);
            }
            sh->cancelled.clear();
            while (!sh->inbox.empty() && engine->active() + static_cast<int64_t>(admit.size()) < engine->max_batch()) {
              admit.push_back(std::move(sh->inbox.front()));
              sh->inbox.pop_front();
            }
            if (admit.empty() && slot_of.empty()) {
              sh->looping = false;
              sh->running_requests = 0;
              break;
            }
            sh->running_requests = static_cast<int64_t>(slot_of.size() + admit.size());
          }
          ctx.check_aborted();  // the model was disposed, or the environment is shutting down
          for (auto& [id, req] : admit) {
            int64_t slot = engine->join(req);
            slot_of[id] = slot;
            id_of[slot] = id;
          }
          for (int64_t slot : engine->step()) {
            int64_t id = id_of.at(slot);
            at::Tensor tokens = engine->take(slot);
            id_of.erase(slot);
            slot_of.erase(id);
            {
              std::lock_guard<std::mutex> lock(sh->mu);
              if (sh->cancelled.erase(id) == 0) sh->results[id] = tokens;
              sh->running_requests = static_cast<int64_t>(slot_of.size());
            }
            ctx.progress(id, 1);
          }
        }
      } catch (...) {
        finish_all();
        throw;
      }
      return [](Napi::Env env) { return env.Undefined(); };
    };
  }

  // cancel(id): drops a queued or running request (its slot is freed at the next step) or a result not taken.
  Napi::Value Cancel(const Napi::CallbackInfo& info) {
    int64_t id = ArgInt(info[0], "id", 0, int64_t(1) << 53);
    std::lock_guard<std::mutex> lock(shared_->mu);
    for (auto it = shared_->inbox.begin(); it != shared_->inbox.end(); ++it) {
      if (it->first == id) {
        shared_->inbox.erase(it);
        return info.Env().Undefined();
      }
    }
    if (shared_->results.erase(id) == 0) shared_->cancelled.insert(id);
    return info.Env().Undefined();
  }

  // take(id) -> TensorHandle int64 [block_size] | undefined: the tokens of a finished request.
  Napi::Value Take(const Napi::CallbackInfo& info) {
    int64_t id = ArgInt(info[0], "id", 0, int64_t(1) << 53);
    at::Tensor t;
    {
      std::lock_guard<std::mutex> lock(shared_->mu);
      auto it = shared_->results.find(id);
      if (it == shared_->results.end()) return info.Env().Undefined();
      t = it->second;
      shared_->results.erase(it);
    }
    return TensorHandle::New(info.Env(), t);
  }

  // stats() -> { queued, running }: requests waiting for a slot, requests in slots.
  Napi::Value Stats(const Napi::CallbackInfo& info) {
    std::lock_guard<std::mutex> lock(shared_->mu);
    auto o = Napi::Object::New(info.Env());
    o.Set("queued", Napi::Number::New(info.Env(), double(shared_->inbox.size())));
    o.Set("running", Napi::Number::New(info.Env(), double(shared_->running_requests)));
    return o;
  }

  std::shared_ptr<ibq::BatchEngine> engine_;
  std::shared_ptr<Shared> shared_;
  std::shared_ptr<JobQueue> queue_;
  Napi::FunctionReference on_finished_;
};

}  // namespace

// Listed in addon.cpp (exports.h).
void InitGenerator(Napi::Env env, Napi::Object exports) { GeneratorHandle::Init(env, exports); }

}  // namespace ibqb
