// Conversions shared by the model bindings: state dicts (JS Map<string, Tensor> <-> NamedTensors),
// LoadResult -> JS, string lists.
#pragma once
#include <napi.h>

#include "ibq/io/state_dict.h"

namespace ibqb {

// Accepts a Map<string, Tensor handle> or an array of [name, handle] pairs. Errors name `arg` and the key.
ibq::NamedTensors ArgStateDict(const Napi::Value& v, const char* arg);
// An array of [name, TensorHandle] pairs (lib/ turns it into a Map of Tensors). Clones unless `share`.
Napi::Array StateDictToJs(Napi::Env env, const ibq::NamedTensors& sd, bool share = false);
Napi::Object LoadResultToJs(Napi::Env env, const ibq::LoadResult& r);
Napi::Array StringsToJs(Napi::Env env, const std::vector<std::string>& v);
// { autocast?: "bfloat16" | "float16" } -> the autocast dtype; absent, null or false: none; RangeError otherwise.
c10::optional<at::ScalarType> ArgAutocast(const Napi::Value& opts);

}  // namespace ibqb
