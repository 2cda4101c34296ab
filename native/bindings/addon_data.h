// Per-environment state of the addon (Node allows one instance-data slot per environment).
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <unordered_map>

namespace ibqb {

struct AddonData {
  std::unordered_map<std::string, Napi::FunctionReference> ctors;  // ObjectWrap constructors by class name
  std::shared_ptr<void> jobs;                                       // owned by jobs.cpp
};

AddonData& GetAddonData(Napi::Env env);

}  // namespace ibqb
