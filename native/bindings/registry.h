// Each binding file registers its exports with IBQB_REGISTER; addon.cpp calls them all at load time.
#pragma once
#include <napi.h>

namespace ibqb {

using InitFn = void (*)(Napi::Env env, Napi::Object exports);

struct Registrar {
  Registrar(const char* name, InitFn fn);
};

void InitAll(Napi::Env env, Napi::Object exports);

}  // namespace ibqb

#define IBQB_CONCAT2(a, b) a##b
#define IBQB_CONCAT(a, b) IBQB_CONCAT2(a, b)
#define IBQB_REGISTER(name, fn) static ::ibqb::Registrar IBQB_CONCAT(ibqb_registrar_, __LINE__)(name, fn)
