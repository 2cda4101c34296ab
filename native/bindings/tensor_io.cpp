// Bindings of native/ibq/tensor_io (checkpoint, safetensors and npy bytes), exported as `io`:
//   zipRecord(path, name) -> Promise<Buffer>
//   loadTensors(path, zip, storages: [record, fileOffset, nbytes, dtype, byteswap, mappable?][],
//               tensors: [storage, sizes, strides, offset][]) -> Promise<TensorHandle[]>
//   writeZip(path, records: [name, Uint8Array | TensorHandle][]) -> Promise<void>
//   writeFile(path, parts: (Uint8Array | TensorHandle)[]) -> Promise<void>
// Each is one job off the JS thread (no model queue: they touch no model).
#include <napi.h>

#include "bindings/errors.h"
#include "bindings/jobs.h"
#include "bindings/exports.h"
#include "bindings/tensor.h"
#include "ibq/io/tensor_io.h"

namespace ibqb {
namespace {

constexpr int64_t kMaxSafe = (int64_t(1) << 53);

Napi::Array ArgArray(const Napi::Value& v, const std::string& arg) {
  if (!v.IsArray()) ThrowType(v.Env(), arg + ": expected an array");
  return v.As<Napi::Array>();
}

std::vector<int64_t> ArgInts(const Napi::Value& v, const std::string& arg, int64_t min) {
  auto a = ArgArray(v, arg);
  if (a.Length() > 64) ThrowRange(v.Env(), arg + ": at most 64 dimensions");
  std::vector<int64_t> out;
  for (uint32_t i = 0; i < a.Length(); ++i)
    out.push_back(ArgInt(a.Get(i), (arg + "[" + std::to_string(i) + "]").c_str(), min, kMaxSafe));
  return out;
}

std::string ArgBytes(const Napi::Value& v, const std::string& arg) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    ThrowType(v.Env(), arg + ": expected a Uint8Array");
  auto u = v.As<Napi::Uint8Array>();
  return std::string(reinterpret_cast<const char*>(u.Data()), u.ByteLength());
}

ibq::io::RecordSpec ArgPart(const Napi::Value& v, const std::string& arg) {
  ibq::io::RecordSpec r;
  if (TensorHandle::IsHandle(v)) r.tensor = ArgTensor(v, arg.c_str());
  else r.bytes = ArgBytes(v, arg);
  return r;
}

Napi::Value ZipRecord(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info[0], "path");
  std::string name = ArgString(info[1], "name");
  return Submit(env, [path, name](JobContext&) -> Finisher {
    auto bytes = std::make_shared<std::string>(ibq::io::read_zip_record(path, name));
    return [bytes](Napi::Env env) -> Napi::Value { return Napi::Buffer<char>::Copy(env, bytes->data(), bytes->size()); };
  });
}

Napi::Value LoadTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info[0], "path");
  bool zip = ArgBool(info[1], "zip", true);
  auto sa = ArgArray(info[2], "storages");
  std::vector<ibq::io::StorageSpec> storages(sa.Length());
  for (uint32_t i = 0; i < sa.Length(); ++i) {
    std::string arg = "storages[" + std::to_string(i) + "]";
    auto e = ArgArray(sa.Get(i), arg);
    auto& s = storages[i];
    s.record = e.Get(0u).IsString() ? e.Get(0u).As<Napi::String>().Utf8Value() : "";
    s.file_offset = ArgInt(e.Get(1u), (arg + ".fileOffset").c_str(), 0, kMaxSafe);
    s.nbytes = ArgInt(e.Get(2u), (arg + ".nbytes").c_str(), 0, kMaxSafe);
    s.dtype = ArgDType(e.Get(3u), (arg + ".dtype").c_str());
    s.byteswap = ArgBool(e.Get(4u), (arg + ".byteswap").c_str(), false);
    s.mappable = e.Length() > 5 && ArgBool(e.Get(5u), (arg + ".mappable").c_str(), false);
  }
  auto ta = ArgArray(info[3], "tensors");
  std::vector<ibq::io::TensorSpec> tensors(ta.Length());
  for (uint32_t i = 0; i < ta.Length(); ++i) {
    std::string arg = "tensors[" + std::to_string(i) + "]";
    auto e = ArgArray(ta.Get(i), arg);
    auto& t = tensors[i];
    t.storage = ArgInt(e.Get(0u), (arg + ".storage").c_str(), 0, int64_t(storages.size()) - 1);
    t.sizes = ArgInts(e.Get(1u), arg + ".sizes", 0);
    t.strides = ArgInts(e.Get(2u), arg + ".strides", 0);
    t.offset = ArgInt(e.Get(3u), (arg + ".offset").c_str(), 0, kMaxSafe);
  }
  return Submit(env, [path, zip, storages, tensors](JobContext&) -> Finisher {
    auto out = std::make_shared<std::vector<at::Tensor>>(ibq::io::load_tensors(path, zip, storages, tensors));
    return [out](Napi::Env env) -> Napi::Value {
      auto arr = Napi::Array::New(env, out->size());
      for (size_t i = 0; i < out->size(); ++i) arr.Set(uint32_t(i), TensorHandle::New(env, (*out)[i]));
      return arr;
    };
  });
}

Napi::Value WriteZip(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info[0], "path");
  auto ra = ArgArray(info[1], "records");
  std::vector<ibq::io::RecordSpec> records;
  for (uint32_t i = 0; i < ra.Length(); ++i) {
    std::string arg = "records[" + std::to_string(i) + "]";
    auto e = ArgArray(ra.Get(i), arg);
    auto r = ArgPart(e.Get(1u), arg + ".data");
    r.name = ArgString(e.Get(0u), (arg + ".name").c_str());
    records.push_back(std::move(r));
  }
  return Submit(env, [path, records](JobContext&) -> Finisher {
    ibq::io::write_zip(path, records);
    return [](Napi::Env env) { return env.Undefined(); };
  });
}

Napi::Value WriteFile(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = ArgString(info[0], "path");
  auto pa = ArgArray(info[1], "parts");
  std::vector<ibq::io::RecordSpec> parts;
  for (uint32_t i = 0; i < pa.Length(); ++i) parts.push_back(ArgPart(pa.Get(i), "parts[" + std::to_string(i) + "]"));
  return Submit(env, [path, parts](JobContext&) -> Finisher {
    ibq::io::write_file(path, parts);
    return [](Napi::Env env) { return env.Undefined(); };
  });
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitTensorIo(Napi::Env env, Napi::Object exports) {
  auto io = Napi::Object::New(env);
  io.Set("zipRecord", Napi::Function::New(env, ZipRecord, "zipRecord"));
  io.Set("loadTensors", Napi::Function::New(env, LoadTensors, "loadTensors"));
  io.Set("writeZip", Napi::Function::New(env, WriteZip, "writeZip"));
  io.Set("writeFile", Napi::Function::New(env, WriteFile, "writeFile"));
  exports.Set("io", io);
}

}  // namespace ibqb
