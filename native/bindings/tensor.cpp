#include "bindings/tensor.h"

#include <cstring>

#include "bindings/addon_data.h"
#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/exports.h"
#include "ibq/core/errors.h"

namespace ibqb {
namespace {

constexpr const char* kCtorName = "TensorHandle";
constexpr const char* kSupported = "float32, float64, float16, bfloat16, int64, int32, int8, uint8, bool";

struct DTypeEntry {
  const char* name;
  at::ScalarType type;
};
const DTypeEntry kDTypes[] = {
    {"float32", at::kFloat}, {"float64", at::kDouble}, {"float16", at::kHalf}, {"bfloat16", at::kBFloat16},
    {"int64", at::kLong},    {"int32", at::kInt},      {"int8", at::kChar},    {"uint8", at::kByte},
    {"bool", at::kBool},
};

std::string ShapeString(at::IntArrayRef s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

const char* TypedArrayName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
    default: return "TypedArray";
  }
}

// The typed array type `tensorFromData` accepts for a dtype (raw: the 16-bit bits of float16/bfloat16).
napi_typedarray_type InputArrayType(at::ScalarType t, bool raw) {
  switch (t) {
    case at::kFloat: return napi_float32_array;
    case at::kDouble: return napi_float64_array;
    case at::kHalf:
    case at::kBFloat16: return raw ? napi_uint16_array : napi_float32_array;
    case at::kLong: return napi_bigint64_array;
    case at::kInt: return napi_int32_array;
    case at::kChar: return napi_int8_array;
    default: return napi_uint8_array;  // uint8, bool
  }
}

// tensorFromData(data: TypedArray, shape: number[], dtype: string, device?: string, raw?: boolean)
Napi::Value TensorFromData(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray()) ThrowType(env, "data: expected a TypedArray");
  auto data = info[0].As<Napi::TypedArray>();
  auto shape = ArgShape(info[1], "shape");
  at::ScalarType dtype = ArgDType(info[2], "dtype");
  at::Device device = info[3].IsUndefined() ? at::Device(at::kCPU) : ArgDevice(info[3], "device");
  bool raw = ArgBool(info[4], "raw", false);
  if (raw && dtype != at::kHalf && dtype != at::kBFloat16)
    ThrowType(env, "raw: only float16 and bfloat16 take raw Uint16Array bits");
  napi_typedarray_type want = InputArrayType(dtype, raw);
  if (data.TypedArrayType() != want)
    ThrowType(env, std::string("data: dtype ") + DTypeName(dtype) + " expects a " + TypedArrayName(want) + ", got a " +
                       TypedArrayName(data.TypedArrayType()));
  int64_t numel = 1;
  for (auto d : shape) {
    if (d != 0 && numel > (int64_t(1) << 48) / d) ThrowRange(env, "shape: " + ShapeString(shape) + " is too large");
    numel *= d;
  }
  if (static_cast<int64_t>(data.ElementLength()) != numel)
    ThrowRange(env, "data: shape " + ShapeString(shape) + " needs " + std::to_string(numel) + " elements, got " +
                        std::to_string(data.ElementLength()));
  // the view's bytes, also of a SharedArrayBuffer (which Napi::ArrayBuffer refuses)
  void* bytes = nullptr;
  NAPI_THROW_IF_FAILED(env, napi_get_typedarray_info(env, data, nullptr, nullptr, &bytes, nullptr, nullptr), Napi::Value());
  return Guard(env, [&] {
    at::ScalarType storage_type = dtype;
    if (dtype == at::kBool) storage_type = at::kByte;
    if ((dtype == at::kHalf || dtype == at::kBFloat16) && !raw) storage_type = at::kFloat;
    at::Tensor t = at::empty(shape, at::TensorOptions().dtype(storage_type));
    if (numel > 0) {
      const uint8_t* src = static_cast<const uint8_t*>(bytes);
      std::memcpy(t.data_ptr(), src, static_cast<size_t>(numel) * t.element_size());
    }
    if (dtype == at::kBool) t = t.ne(0);
    else if (storage_type == at::kFloat && dtype != at::kFloat) t = t.to(dtype);
    else if (raw) t = t.view(dtype);  // the bits of a 16-bit float as int16-sized elements
    if (device != at::Device(at::kCPU)) t = t.to(device);
    return TensorHandle::New(env, t);
  });
}

// selectRows(t, rows: BigInt64Array, dtype?: string) -> Promise<Tensor>: t[rows] (index_select along dim 0, on
// t's device), converted to dtype when given; a copy made on a worker thread (batches of in-memory data sets)
Napi::Value SelectRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Tensor t = ArgTensor(info[0], "tensor");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_bigint64_array)
    ThrowType(env, "rows: expected a BigInt64Array");
  auto rows = info[1].As<Napi::TypedArray>();
  std::optional<at::ScalarType> dtype;
  if (!info[2].IsUndefined() && !info[2].IsNull()) dtype = ArgDType(info[2], "dtype");
  if (t.dim() < 1) ThrowRange(env, "tensor: expected at least one dimension");
  const auto* src = reinterpret_cast<const int64_t*>(static_cast<const uint8_t*>(rows.ArrayBuffer().Data()) + rows.ByteOffset());
  const int64_t n = static_cast<int64_t>(rows.ElementLength()), N = t.size(0);
  for (int64_t i = 0; i < n; ++i)
    if (src[i] < 0 || src[i] >= N)
      ThrowRange(env, "rows[" + std::to_string(i) + "]: " + std::to_string(src[i]) + " is outside [0, " + std::to_string(N) + ")");
  at::Tensor idx = at::empty({n}, at::kLong);
  if (n > 0) std::memcpy(idx.data_ptr(), src, static_cast<size_t>(n) * sizeof(int64_t));
  return Submit(env, [t, idx, dtype](JobContext&) -> Finisher {
    at::Tensor out = t.index_select(0, idx.to(t.device()));
    if (dtype && out.scalar_type() != *dtype) out = out.to(*dtype);
    return [out](Napi::Env env) -> Napi::Value { return TensorHandle::New(env, out); };
  });
}

// catRows(tensors: Tensor[]) -> Promise<Tensor>: the tensors one after another along dim 0 (at::cat), copied on a
// worker thread (results assembled from batches, without a copy on the JS thread)
Napi::Value CatRows(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) ThrowType(env, "tensors: expected an array of Tensors");
  auto arr = info[0].As<Napi::Array>();
  if (arr.Length() == 0) ThrowRange(env, "tensors: expected at least one Tensor");
  std::vector<at::Tensor> parts;
  for (uint32_t i = 0; i < arr.Length(); ++i) {
    std::string name = "tensors[" + std::to_string(i) + "]";
    parts.push_back(ArgTensor(arr.Get(i), name.c_str()));
    const auto& p = parts.back();
    if (p.dim() < 1 || p.dim() != parts[0].dim() || p.scalar_type() != parts[0].scalar_type() ||
        p.sizes().slice(1) != parts[0].sizes().slice(1))
      ThrowRange(env, name + ": " + DTypeName(p.scalar_type()) + " " + c10::str(p.sizes()) + " does not stack with tensors[0] " +
                          DTypeName(parts[0].scalar_type()) + " " + c10::str(parts[0].sizes()) + " along dim 0");
  }
  return Submit(env, [parts](JobContext&) -> Finisher {
    at::Tensor out = at::cat(parts, 0);
    return [out](Napi::Env env) -> Napi::Value { return TensorHandle::New(env, out); };
  });
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitTensor(Napi::Env env, Napi::Object exports) {
  TensorHandle::Init(env, exports);
  exports.Set("tensorFromData", Napi::Function::New(env, TensorFromData, "tensorFromData"));
  exports.Set("selectRows", Napi::Function::New(env, SelectRows, "selectRows"));
  exports.Set("catRows", Napi::Function::New(env, CatRows, "catRows"));
}

void TensorHandle::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function ctor = DefineClass(env, kCtorName,
                                    {
                                        InstanceMethod<&TensorHandle::Shape>("shape"),
                                        InstanceMethod<&TensorHandle::DType>("dtype"),
                                        InstanceMethod<&TensorHandle::Device>("device"),
                                        InstanceMethod<&TensorHandle::Disposed>("disposed"),
                                        InstanceMethod<&TensorHandle::DataSync>("dataSync"),
                                        InstanceMethod<&TensorHandle::Data>("data"),
                                        InstanceMethod<&TensorHandle::To>("to"),
                                        InstanceMethod<&TensorHandle::Dispose>("dispose"),
                                    });
  GetAddonData(env).ctors[kCtorName] = Napi::Persistent(ctor);
  exports.Set(kCtorName, ctor);
}

TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info), env_(info.Env()) {}

TensorHandle::~TensorHandle() { release(); }

namespace {
// A tensor's bytes are reported to V8 as external memory at this fraction. V8 answers every 64 MB of external
// memory that outgrows its level at the last full collection with another full collection, whose pause grows
// with the JavaScript heap (measured: 600-800 ms for a 430 MB heap on 2 cores), and tensors that are alive
// because calls are using them (16 concurrent generate() calls hold hundreds of MB) are nothing it can free.
// At 1/16, V8 is asked for a collection after about 1 GB of tensors, which still collects tensors left to the
// garbage collector instead of disposed.
constexpr int64_t kReportedShare = 16;
}  // namespace

Napi::Object TensorHandle::New(Napi::Env env, at::Tensor t) {
  Napi::Object obj = GetAddonData(env).ctors.at(kCtorName).New({});
  auto* self = Unwrap(obj);
  self->reported_ = static_cast<int64_t>(t.defined() ? t.numel() * t.element_size() : 0) / kReportedShare;
  self->t_ = std::move(t);
  if (self->reported_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env, self->reported_);
  return obj;
}

bool TensorHandle::IsHandle(const Napi::Value& v) {
  if (!v.IsObject()) return false;
  auto& ctors = GetAddonData(v.Env()).ctors;
  auto it = ctors.find(kCtorName);
  return it != ctors.end() && v.As<Napi::Object>().InstanceOf(it->second.Value());
}

void TensorHandle::release() {
  if (reported_ > 0) Napi::MemoryManagement::AdjustExternalMemory(env_, -reported_);
  reported_ = 0;
  if (t_) ReleaseOnWorker(std::move(*t_));
  t_.reset();
}

const at::Tensor& TensorHandle::tensor(const char* arg) const {
  if (!t_) ThrowDisposed(env_, std::string(arg) + ": the tensor has been disposed");
  return *t_;
}

Napi::Value TensorHandle::Shape(const Napi::CallbackInfo& info) {
  const auto& t = tensor("tensor");
  auto arr = Napi::Array::New(info.Env(), t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) arr.Set(uint32_t(i), Napi::Number::New(info.Env(), double(t.size(i))));
  return arr;
}
Napi::Value TensorHandle::DType(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DTypeName(tensor("tensor").scalar_type()));
}
Napi::Value TensorHandle::Device(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), tensor("tensor").device().str());
}
Napi::Value TensorHandle::Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !t_); }

Napi::Value TensorHandle::DataSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool raw = ArgBool(info[0], "raw", false);
  const at::Tensor& t = tensor("tensor");
  return Guard(env, [&] { return ToTypedArray(env, HostCopyForJs(t, raw), raw); });
}

Napi::Value TensorHandle::Data(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool raw = ArgBool(info[0], "raw", false);
  at::Tensor t = tensor("tensor");
  return Submit(env, [t, raw](JobContext&) -> Finisher {
    // the copy JS receives is made here, and the JS thread only wraps it (copying a large tensor there took
    // tens of milliseconds)
    at::Tensor host = HostCopyForJs(t, raw);
    if (host.numel() > 0 && host.storage().is_alias_of(t.storage())) host = host.clone();
    return [host](Napi::Env env) { return WrapTypedArray(env, host); };
  });
}

Napi::Value TensorHandle::To(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  at::Device device = ArgDevice(info[0], "device");
  const at::Tensor& t = tensor("tensor");
  return Guard(env, [&] { return TensorHandle::New(env, t.to(device)); });
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  release();
  return info.Env().Undefined();
}

at::Tensor ArgTensor(const Napi::Value& v, const char* arg) {
  if (!TensorHandle::IsHandle(v)) ThrowType(v.Env(), std::string(arg) + ": expected a Tensor");
  return TensorHandle::Unwrap(v.As<Napi::Object>())->tensor(arg);
}

at::ScalarType ArgDType(const Napi::Value& v, const char* arg) {
  std::string name = ArgString(v, arg);
  for (const auto& e : kDTypes)
    if (name == e.name) return e.type;
  ThrowRange(v.Env(), std::string(arg) + ": unknown dtype '" + name + "' (expected one of " + kSupported + ")");
}

std::string DTypeName(at::ScalarType t) {
  for (const auto& e : kDTypes)
    if (t == e.type) return e.name;
  std::string n = c10::toString(t);
  for (auto& c : n) c = static_cast<char>(std::tolower(c));
  return n;  // e.g. 'complexfloat', 'short': loadable, not convertible
}

at::Device ArgDevice(const Napi::Value& v, const char* arg) {
  std::string s = ArgString(v, arg);
  try {
    at::Device d(s);
    if (d.is_cuda() && !torch::cuda::is_available())
      ThrowRange(v.Env(), std::string(arg) + ": '" + s + "' requested but this libtorch has no usable CUDA device");
    if (!d.is_cpu() && !d.is_cuda()) throw std::runtime_error("unsupported");
    return d;
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    ThrowRange(v.Env(), std::string(arg) + ": expected 'cpu', 'cuda' or 'cuda:N', got '" + s + "'");
  }
}

at::Tensor HostCopyForJs(const at::Tensor& t, bool raw) {
  bool supported = false;
  for (const auto& e : kDTypes) supported |= (t.scalar_type() == e.type);
  if (!supported)
    throw ibq::TypeError("dtype " + DTypeName(t.scalar_type()) + " cannot be read into JS (supported: " + kSupported +
                         ")");
  if (raw && t.scalar_type() != at::kHalf && t.scalar_type() != at::kBFloat16)
    throw ibq::TypeError("raw: only float16 and bfloat16 tensors have raw bits to read");
  at::Tensor h = t.detach().to(at::kCPU).contiguous();
  if (h.scalar_type() == at::kBool) h = h.to(at::kByte);
  if ((h.scalar_type() == at::kHalf || h.scalar_type() == at::kBFloat16) && !raw) h = h.to(at::kFloat);
  return h;
}

namespace {
// The typed array of h's dtype over `buf` (n elements).
Napi::Value TypedArrayOver(Napi::Env env, const at::Tensor& h, Napi::ArrayBuffer buf, size_t n) {
  switch (h.scalar_type()) {
    case at::kFloat: return Napi::Float32Array::New(env, n, buf, 0);
    case at::kDouble: return Napi::Float64Array::New(env, n, buf, 0);
    case at::kHalf:
    case at::kBFloat16: return Napi::Uint16Array::New(env, n, buf, 0);
    case at::kLong: return Napi::TypedArrayOf<int64_t>::New(env, n, buf, 0, napi_bigint64_array);
    case at::kInt: return Napi::Int32Array::New(env, n, buf, 0);
    case at::kChar: return Napi::Int8Array::New(env, n, buf, 0);
    case at::kByte: return Napi::Uint8Array::New(env, n, buf, 0);
    default: ThrowType(env, "dtype " + DTypeName(h.scalar_type()) + " cannot be read into JS");
  }
}
}  // namespace

Napi::Value ToTypedArray(Napi::Env env, const at::Tensor& h, bool) {
  size_t n = static_cast<size_t>(h.numel());
  auto buf = Napi::ArrayBuffer::New(env, n * h.element_size());
  if (n > 0) std::memcpy(buf.Data(), h.data_ptr(), n * h.element_size());
  return TypedArrayOver(env, h, buf, n);
}

Napi::Value WrapTypedArray(Napi::Env env, const at::Tensor& h) {
  size_t n = static_cast<size_t>(h.numel());
  if (n == 0) return ToTypedArray(env, h, false);
  auto* keep = new at::Tensor(h);
  auto buf = Napi::ArrayBuffer::New(
      env, h.data_ptr(), n * h.element_size(),
      [](Napi::Env, void*, at::Tensor* t) {
        ReleaseOnWorker(std::move(*t));  // the garbage collector's finalizer, on the JS thread
        delete t;
      },
      keep);
  return TypedArrayOver(env, h, buf, n);
}

}  // namespace ibqb
