// Handing a model's native module and job queue from one handle to another (e.g. a TokenizerTrainer built on
// a Tokenizer handle, sharing its weights and its queue so calls on both run in order). ModuleHandle exposes
// `moduleRef()` returning an External; only Externals made here are accepted back (a registry of live ones).
#pragma once
#include <napi.h>
#include <torch/torch.h>

#include <memory>

#include "bindings/jobs.h"

namespace ibqb {

struct ModuleRef {
  std::shared_ptr<torch::nn::Module> module;
  std::shared_ptr<JobQueue> queue;
};

// A JS External carrying a copy of `ref` (freed by the GC).
Napi::Value MakeModuleRef(Napi::Env env, ModuleRef ref);
// The module and queue of a model handle (an object with moduleRef(), e.g. Tokenizer's native handle) passed
// as `arg`. TypeError naming `arg` for anything else or a disposed model.
ModuleRef ArgModuleRef(const Napi::Value& v, const char* arg);

}  // namespace ibqb
