// The JS handle of an at::Tensor (wrapped by the Tensor class of lib/tensor.ts), and the dtype table of
// docs/architecture.md (Tensors and dtypes): which typed array carries which dtype in and out.
#pragma once
#include <napi.h>
#include <torch/torch.h>

#include <optional>
#include <string>

namespace ibqb {

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  static Napi::Object New(Napi::Env env, at::Tensor t);
  static bool IsHandle(const Napi::Value& v);

  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  // The tensor, or a TypeError naming `arg` when the handle was disposed.
  const at::Tensor& tensor(const char* arg) const;

 private:
  Napi::Value Shape(const Napi::CallbackInfo& info);
  Napi::Value DType(const Napi::CallbackInfo& info);
  Napi::Value Device(const Napi::CallbackInfo& info);
  Napi::Value Disposed(const Napi::CallbackInfo& info);
  Napi::Value DataSync(const Napi::CallbackInfo& info);
  Napi::Value Data(const Napi::CallbackInfo& info);
  Napi::Value To(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  // Drops the tensor (a large one is freed off the JS thread: ReleaseOnWorker).
  void release();

  std::optional<at::Tensor> t_;
  int64_t reported_ = 0;
  Napi::Env env_;
};

// The tensor behind a handle passed as argument `arg` (TypeError when it is not a live handle).
at::Tensor ArgTensor(const Napi::Value& v, const char* arg);
// dtype name <-> ScalarType ('float32', 'int64', ...). Unknown names: RangeError naming `arg`.
at::ScalarType ArgDType(const Napi::Value& v, const char* arg);
std::string DTypeName(at::ScalarType t);
at::Device ArgDevice(const Napi::Value& v, const char* arg);
// A CPU copy of `t` as the typed array of the dtype table (raw: 16-bit floats as Uint16Array bits).
Napi::Value ToTypedArray(Napi::Env env, const at::Tensor& t, bool raw);
// The same without a copy: a typed array over the memory of `t` (CPU, contiguous, of a dtype of the table, shared
// with no other tensor), which it keeps alive until the typed array is collected.
Napi::Value WrapTypedArray(Napi::Env env, const at::Tensor& t);
// Prepares `t` for ToTypedArray off the JS thread (device to CPU, contiguous, dtype conversion).
at::Tensor HostCopyForJs(const at::Tensor& t, bool raw);

}  // namespace ibqb
