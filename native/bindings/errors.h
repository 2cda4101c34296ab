// Turning C++ exceptions into JS errors, and argument checks that name the argument.
#pragma once
#include <napi.h>

#include <exception>
#include <string>

namespace ibqb {

// What a caught exception (or a refused call) becomes in JS: the class, the code and the message (first lines,
// no C++ backtrace). MakeError is the one place that assigns the codes of lib/core/errors.ts (ERROR_CODES).
struct ErrorInfo {
  enum Kind { kError, kTypeError, kRangeError, kShape, kAbort, kDistributed, kDisposed, kBusy, kShuttingDown } kind = kError;
  std::string message;
};

// Classifies the exception currently being handled (call inside a catch block).
ErrorInfo CurrentError();
Napi::Value MakeError(Napi::Env env, const ErrorInfo& info);
// The first lines of a c10 message, without "Exception raised from ..." and the backtrace.
std::string FirstLines(const std::string& message, size_t max_lines = 12);

// Runs fn, rethrowing any C++ exception as the matching JS error (for synchronous calls).
template <typename Fn>
auto Guard(Napi::Env env, Fn&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    ErrorInfo info = CurrentError();
    throw Napi::Error(env, MakeError(env, info));
  }
}

[[noreturn]] void ThrowType(Napi::Env env, const std::string& message);
[[noreturn]] void ThrowRange(Napi::Env env, const std::string& message);
// Throws MakeError(kind, message): e.g. kDisposed (a TypeError with code ERR_IBQ_DISPOSED: a call on a model or
// tensor whose dispose() ran), kBusy (ERR_IBQ_BUSY), kShuttingDown (ERR_IBQ_SHUTTING_DOWN).
[[noreturn]] void ThrowCoded(Napi::Env env, ErrorInfo::Kind kind, const std::string& message);
[[noreturn]] inline void ThrowDisposed(Napi::Env env, const std::string& message) {
  ThrowCoded(env, ErrorInfo::kDisposed, message);
}

// Argument readers: each throws a TypeError/RangeError naming `arg` when the value is not of the form.
int64_t ArgInt(const Napi::Value& v, const char* arg, int64_t min, int64_t max);
double ArgNumber(const Napi::Value& v, const char* arg);
bool ArgBool(const Napi::Value& v, const char* arg, bool fallback);
std::string ArgString(const Napi::Value& v, const char* arg);
// An array of strings; undefined or null: empty.
std::vector<std::string> ArgStrings(const Napi::Value& v, const char* arg);
std::vector<int64_t> ArgShape(const Napi::Value& v, const char* arg);
Napi::Object ArgObject(const Napi::Value& v, const char* arg);
Napi::Function ArgFunction(const Napi::Value& v, const char* arg);

}  // namespace ibqb
