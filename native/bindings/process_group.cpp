// JS handle of a c10d process group (ibq::dist::ProcessGroup): rendezvous and the collectives lib/ uses
// (log averaging, failure reports, communication measurements). Each blocking call is a job on a worker thread.
#include "bindings/process_group.h"

#include <cstring>
#include <limits>

#include "bindings/addon_data.h"
#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/exports.h"
#include "bindings/tensor.h"

namespace ibqb {
namespace {

constexpr const char* kCtor = "ProcessGroupHandle";

class ProcessGroupHandle : public Napi::ObjectWrap<ProcessGroupHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports) {
    auto ctor = DefineClass(env, kCtor,
                            {InstanceMethod<&ProcessGroupHandle::InitGroup>("init"),
                             InstanceMethod<&ProcessGroupHandle::Rank>("rank"),
                             InstanceMethod<&ProcessGroupHandle::WorldSize>("worldSize"),
                             InstanceMethod<&ProcessGroupHandle::AllReduceValues>("allReduceValues"),
                             InstanceMethod<&ProcessGroupHandle::AllReduceTensors>("allReduceTensors"),
                             InstanceMethod<&ProcessGroupHandle::Barrier>("barrier"),
                             InstanceMethod<&ProcessGroupHandle::ReportFailure>("reportFailure"),
                             InstanceMethod<&ProcessGroupHandle::Destroy>("destroy")});
    GetAddonData(env).ctors[kCtor] = Napi::Persistent(ctor);
    exports.Set(kCtor, ctor);
  }

  explicit ProcessGroupHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ProcessGroupHandle>(info) {}

  std::shared_ptr<ibq::dist::ProcessGroup> group(Napi::Env env) const {
    if (!pg_) ThrowType(env, "processGroup: not initialised, or destroyed");
    return pg_;
  }

 private:
  // init({ masterAddr, masterPort, worldSize, rank, timeoutSeconds, device, glooInterface, ranksPerNode,
  //        rendezvousDeadlineMs }) -> Promise<void>
  Napi::Value InitGroup(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (pg_ || pending_) ThrowType(env, "processGroup: already initialised");
    auto o = ArgObject(info[0], "options");
    ibq::dist::GroupOptions g;
    g.master_addr = ArgString(o.Get("masterAddr"), "masterAddr");
    // conversion only: lib/distributed checked the ranges (port, rank in [0, worldSize))
    const int64_t lo = std::numeric_limits<int>::min(), hi = std::numeric_limits<int>::max();
    g.master_port = int(ArgInt(o.Get("masterPort"), "masterPort", lo, hi));
    g.world_size = int(ArgInt(o.Get("worldSize"), "worldSize", lo, hi));
    g.rank = int(ArgInt(o.Get("rank"), "rank", lo, hi));
    g.timeout_s = ArgNumber(o.Get("timeoutSeconds"), "timeoutSeconds");
    if (o.Has("device") && !o.Get("device").IsUndefined()) g.device = ArgString(o.Get("device"), "device");
    if (o.Has("glooInterface") && !o.Get("glooInterface").IsUndefined())
      g.gloo_interface = ArgString(o.Get("glooInterface"), "glooInterface");
    if (o.Has("ranksPerNode") && !o.Get("ranksPerNode").IsUndefined())
      g.ranks_per_node = static_cast<int>(ArgNumber(o.Get("ranksPerNode"), "ranksPerNode"));
    if (o.Has("rendezvousDeadlineMs") && !o.Get("rendezvousDeadlineMs").IsUndefined())
      g.rendezvous_deadline_ms = ArgNumber(o.Get("rendezvousDeadlineMs"), "rendezvousDeadlineMs");
    pending_ = true;
    auto slot = std::make_shared<std::shared_ptr<ibq::dist::ProcessGroup>>();
    Napi::Reference<Napi::Object> self = Napi::Persistent(info.This().As<Napi::Object>());
    auto keep = std::make_shared<Napi::Reference<Napi::Object>>(std::move(self));
    return Submit(env, [g, slot, keep, this](JobContext&) -> Finisher {
      *slot = std::make_shared<ibq::dist::ProcessGroup>(g);
      return [slot, keep, this](Napi::Env env) -> Napi::Value {
        pg_ = *slot;
        pending_ = false;
        keep->Reset();
        return env.Undefined();
      };
    });
  }

  Napi::Value Rank(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), group(info.Env())->rank()); }
  Napi::Value WorldSize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), group(info.Env())->world_size());
  }

  // allReduceValues(Float64Array) -> Promise<Float64Array>: element-wise sum over ranks
  Napi::Value AllReduceValues(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto pg = group(env);
    if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_float64_array)
      ThrowType(env, "values: expected a Float64Array");
    auto a = info[0].As<Napi::Float64Array>();
    std::vector<double> v(a.Data(), a.Data() + a.ElementLength());
    return Submit(env, [pg, v](JobContext&) -> Finisher {
      auto s = pg->all_reduce_sum(v);
      return [s](Napi::Env env) -> Napi::Value {
        auto out = Napi::Float64Array::New(env, s.size());
        if (!s.empty()) std::memcpy(out.Data(), s.data(), s.size() * sizeof(double));
        return out;
      };
    });
  }

  // allReduceTensors(Tensor[]) -> Promise<void>: in-place sum over ranks (one all-reduce per tensor)
  Napi::Value AllReduceTensors(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto pg = group(env);
    if (!info[0].IsArray()) ThrowType(env, "tensors: expected an array of Tensors");
    auto arr = info[0].As<Napi::Array>();
    std::vector<at::Tensor> ts;
    for (uint32_t i = 0; i < arr.Length(); ++i) ts.push_back(ArgTensor(arr.Get(i), "tensors[]"));
    return Submit(env, [pg, ts](JobContext&) -> Finisher {
      pg->all_reduce_sum(ts);
      return [](Napi::Env env) { return env.Undefined(); };
    });
  }

  Napi::Value Barrier(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    auto pg = group(env);
    return Submit(env, [pg](JobContext&) -> Finisher {
      pg->barrier();
      return [](Napi::Env env) { return env.Undefined(); };
    });
  }

  // reportFailure(message): records in the rendezvous store that this rank stops, and why (synchronous, best
  // effort), so the other ranks' errors name it.
  Napi::Value ReportFailure(const Napi::CallbackInfo& info) {
    auto pg = group(info.Env());
    pg->report_failure(ArgString(info[0], "message"));
    return info.Env().Undefined();
  }

  // destroy(): drops this handle's reference (the group ends once no trainer uses it).
  Napi::Value Destroy(const Napi::CallbackInfo& info) {
    pg_.reset();
    return info.Env().Undefined();
  }

  std::shared_ptr<ibq::dist::ProcessGroup> pg_;
  bool pending_ = false;
};

}  // namespace

// Listed in addon.cpp (exports.h).
void InitProcessGroup(Napi::Env env, Napi::Object exports) { ProcessGroupHandle::Init(env, exports); }

std::shared_ptr<ibq::dist::ProcessGroup> ArgProcessGroup(const Napi::Value& v, const char* arg) {
  Napi::Env env = v.Env();
  auto& ctors = GetAddonData(env).ctors;
  auto it = ctors.find(kCtor);
  if (!v.IsObject() || it == ctors.end() || !v.As<Napi::Object>().InstanceOf(it->second.Value()))
    ThrowType(env, std::string(arg) + ": expected a ProcessGroup");
  return Napi::ObjectWrap<ProcessGroupHandle>::Unwrap(v.As<Napi::Object>())->group(env);
}

DataParallelArgs ArgDataParallel(const Napi::CallbackInfo& info) {
  DataParallelArgs a;
  if (!info[0].IsNull() && !info[0].IsUndefined()) a.group = ArgProcessGroup(info[0], "processGroup");
  if (info[1].IsObject() && info[1].As<Napi::Object>().Has("bucketCapMb"))
    a.options.bucket_cap_mb = ArgInt(info[1].As<Napi::Object>().Get("bucketCapMb"), "bucketCapMb", 1, 1 << 16);
  return a;
}

Napi::Array RanksToJs(Napi::Env env, const std::vector<int>& ranks) {
  auto out = Napi::Array::New(env, ranks.size());
  for (size_t i = 0; i < ranks.size(); ++i) out.Set(uint32_t(i), Napi::Number::New(env, ranks[i]));
  return out;
}

}  // namespace ibqb
