#include "bindings/errors.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <sstream>

#include "ibq/distributed/distributed.h"
#include "ibq/core/errors.h"

namespace ibqb {

std::string FirstLines(const std::string& message, size_t max_lines) {
  std::istringstream in(message);
  std::string line, out;
  size_t n = 0;
  while (std::getline(in, line) && n < max_lines) {
    if (line.rfind("Exception raised from", 0) == 0) break;
    if (n > 0) out += "\n";
    out += line;
    ++n;
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out.empty() ? message.substr(0, 2000) : out;
}

ErrorInfo CurrentError() {
  ErrorInfo info;
  try {
    throw;
  } catch (const ibq::Aborted& e) {
    info = {ErrorInfo::kAbort, e.what()};
  } catch (const ibq::ShapeError& e) {
    info = {ErrorInfo::kShape, e.what()};
  } catch (const ibq::dist::DistError& e) {
    info = {ErrorInfo::kDistributed, e.what()};
  } catch (const ibq::TypeError& e) {
    info = {ErrorInfo::kTypeError, e.what()};
  } catch (const ibq::ValueError& e) {
    info = {ErrorInfo::kRangeError, e.what()};
  } catch (const c10::Error& e) {
    info = {ErrorInfo::kError, FirstLines(e.what_without_backtrace())};
  } catch (const std::bad_alloc&) {
    info = {ErrorInfo::kRangeError, "out of memory (std::bad_alloc)"};
  } catch (const std::exception& e) {
    info = {ErrorInfo::kError, FirstLines(e.what())};
  } catch (...) {
    info = {ErrorInfo::kError, "unknown native exception"};
  }
  return info;
}

// Codes as listed in lib/core/errors.ts (ERROR_CODES).
Napi::Value MakeError(Napi::Env env, const ErrorInfo& info) {
  Napi::Error err;
  const char* code = "ERR_IBQ_NATIVE";
  switch (info.kind) {
    case ErrorInfo::kTypeError:
      err = Napi::TypeError::New(env, info.message);
      code = "ERR_IBQ_INVALID_ARGUMENT";
      break;
    case ErrorInfo::kRangeError:
      err = Napi::RangeError::New(env, info.message);
      code = "ERR_IBQ_INVALID_ARGUMENT";
      break;
    case ErrorInfo::kShape:
      err = Napi::RangeError::New(env, info.message);
      code = "ERR_IBQ_SHAPE";
      break;
    case ErrorInfo::kDistributed:
      err = Napi::Error::New(env, info.message);
      code = "ERR_IBQ_DISTRIBUTED";
      break;
    case ErrorInfo::kDisposed:
      err = Napi::TypeError::New(env, info.message);
      code = "ERR_IBQ_DISPOSED";
      break;
    case ErrorInfo::kBusy:
      err = Napi::Error::New(env, info.message);
      code = "ERR_IBQ_BUSY";
      break;
    case ErrorInfo::kShuttingDown:
      err = Napi::Error::New(env, info.message);
      code = "ERR_IBQ_SHUTTING_DOWN";
      break;
    case ErrorInfo::kAbort:
      err = Napi::Error::New(env, info.message);
      err.Set("name", Napi::String::New(env, "AbortError"));
      code = "ERR_IBQ_ABORTED";
      break;
    default:
      err = Napi::Error::New(env, info.message);
  }
  err.Set("code", Napi::String::New(env, code));
  return err.Value();
}

void ThrowType(Napi::Env env, const std::string& message) { throw Napi::TypeError::New(env, message); }
void ThrowRange(Napi::Env env, const std::string& message) { throw Napi::RangeError::New(env, message); }
void ThrowCoded(Napi::Env env, ErrorInfo::Kind kind, const std::string& message) {
  throw Napi::Error(env, MakeError(env, {kind, message}));
}

int64_t ArgInt(const Napi::Value& v, const char* arg, int64_t min, int64_t max) {
  Napi::Env env = v.Env();
  double d;
  if (v.IsNumber()) {
    d = v.As<Napi::Number>().DoubleValue();
  } else if (v.IsBigInt()) {
    bool lossless = true;
    int64_t i = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) ThrowRange(env, std::string(arg) + ": expected an integer in [" + std::to_string(min) + ", " +
                                       std::to_string(max) + "]");
    d = static_cast<double>(i);
  } else {
    ThrowType(env, std::string(arg) + ": expected an integer, got " + (v.IsUndefined() ? "undefined" : "a non-number"));
  }
  if (!std::isfinite(d) || std::floor(d) != d || d < static_cast<double>(min) || d > static_cast<double>(max)) {
    std::ostringstream os;
    os << arg << ": expected an integer in [" << min << ", " << max << "], got " << d;
    ThrowRange(env, os.str());
  }
  return static_cast<int64_t>(d);
}

double ArgNumber(const Napi::Value& v, const char* arg) {
  if (!v.IsNumber()) ThrowType(v.Env(), std::string(arg) + ": expected a number");
  double d = v.As<Napi::Number>().DoubleValue();
  if (!std::isfinite(d)) ThrowRange(v.Env(), std::string(arg) + ": expected a finite number");
  return d;
}

bool ArgBool(const Napi::Value& v, const char* arg, bool fallback) {
  if (v.IsUndefined() || v.IsNull()) return fallback;
  if (!v.IsBoolean()) ThrowType(v.Env(), std::string(arg) + ": expected a boolean");
  return v.As<Napi::Boolean>().Value();
}

std::string ArgString(const Napi::Value& v, const char* arg) {
  if (!v.IsString()) ThrowType(v.Env(), std::string(arg) + ": expected a string");
  return v.As<Napi::String>().Utf8Value();
}

std::vector<std::string> ArgStrings(const Napi::Value& v, const char* arg) {
  std::vector<std::string> out;
  if (v.IsUndefined() || v.IsNull()) return out;
  if (!v.IsArray()) ThrowType(v.Env(), std::string(arg) + ": expected an array of strings");
  auto a = v.As<Napi::Array>();
  for (uint32_t i = 0; i < a.Length(); ++i) out.push_back(ArgString(a.Get(i), (std::string(arg) + "[]").c_str()));
  return out;
}

std::vector<int64_t> ArgShape(const Napi::Value& v, const char* arg) {
  Napi::Env env = v.Env();
  if (!v.IsArray()) ThrowType(env, std::string(arg) + ": expected an array of non-negative integers");
  auto a = v.As<Napi::Array>();
  if (a.Length() > 64) ThrowRange(env, std::string(arg) + ": at most 64 dimensions");
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i) {
    std::string name = std::string(arg) + "[" + std::to_string(i) + "]";
    out.push_back(ArgInt(a.Get(i), name.c_str(), 0, int64_t(1) << 48));
  }
  return out;
}

Napi::Object ArgObject(const Napi::Value& v, const char* arg) {
  if (!v.IsObject()) ThrowType(v.Env(), std::string(arg) + ": expected an object");
  return v.As<Napi::Object>();
}

Napi::Function ArgFunction(const Napi::Value& v, const char* arg) {
  if (!v.IsFunction()) ThrowType(v.Env(), std::string(arg) + ": expected a function");
  return v.As<Napi::Function>();
}

}  // namespace ibqb
