// The image pipeline's native steps (lib/data/images.ts), all synchronous: lib/data/images.ts calls them once per
// image, on the thread that decodes it (a decode worker, or the main thread without workers).
//   resampleCrop(pixels, crop, out?) -> Float32Array: resize, crop, mirror and float conversion of decoded pixels
//     (ibq/core/image_resample.h); about a millisecond for a 256 px crop.
//   jpegSize(bytes) -> { width, height, components }: a JPEG's header (ibq/core/jpeg_decode.h), no pixels decoded.
//   decodeJpeg(bytes) -> Uint8Array: the whole JPEG as HWC uint8 RGB, PIL's bytes.
//   decodeJpegCrop(bytes, crop, out?) -> Float32Array: decodeJpeg then resampleCrop in one call, the RGB pixels in a
//     buffer of this thread (no JS allocation for them).
//   decodeJpegCropAsync(bytes, crop) -> Promise<Float32Array>: decodeJpegCrop on libuv's pool (below).
// `out`: where the float32 crop goes (see Output), else a new Float32Array.
#include <napi.h>

#include <vector>

#include "bindings/errors.h"
#include "bindings/exports.h"
#include "ibq/core/image_resample.h"
#include "ibq/core/jpeg_decode.h"

namespace ibqb {
namespace {

constexpr int64_t kMax = 1 << 20;
// decodeJpegCrop keeps its pixel buffer between calls up to this size (a 1280 x 1024 RGB image), frees larger ones
constexpr size_t kKeepBytes = 4u << 20;

Napi::Uint8Array ArgBytes(const Napi::Value& v, const char* arg) {
  if (!v.IsTypedArray() || v.As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    ThrowType(v.Env(), std::string(arg) + ": expected a Uint8Array");
  return v.As<Napi::Uint8Array>();
}

// The resize and crop fields of a crop object: { resizedWidth, resizedHeight, left, top, size, flip }.
void ReadPlacement(const Napi::Object& o, ibq::image::CropResample& c) {
  c.resized_width = static_cast<int>(ArgInt(o.Get("resizedWidth"), "crop.resizedWidth", 1, kMax));
  c.resized_height = static_cast<int>(ArgInt(o.Get("resizedHeight"), "crop.resizedHeight", 1, kMax));
  c.left = static_cast<int>(ArgInt(o.Get("left"), "crop.left", 0, kMax));
  c.top = static_cast<int>(ArgInt(o.Get("top"), "crop.top", 0, kMax));
  c.size = static_cast<int>(ArgInt(o.Get("size"), "crop.size", 1, 16384));
  c.flip = ArgBool(o.Get("flip"), "crop.flip", false);
}

// The output: `out` when given (a Float32Array of exactly 3 x size x size floats, also one on a SharedArrayBuffer that a
// decode worker writes a batch's image into), else a new Float32Array.
Napi::Float32Array Output(const Napi::Value& out, const ibq::image::CropResample& c) {
  const size_t n = 3 * static_cast<size_t>(c.size) * c.size;
  if (out.IsUndefined()) return Napi::Float32Array::New(out.Env(), n);
  if (!out.IsTypedArray() || out.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    ThrowType(out.Env(), "out: expected a Float32Array");
  auto o = out.As<Napi::Float32Array>();
  if (o.ElementLength() != n) ThrowRange(out.Env(), "out: " + std::to_string(o.ElementLength()) + " floats, expected 3 x size x size = " + std::to_string(n));
  return o;
}

Napi::Float32Array Resample(Napi::Env env, const uint8_t* px, const ibq::image::CropResample& c, Napi::Float32Array out) {
  Guard(env, [&] { ibq::image::resample_crop(px, c, out.Data()); });
  return out;
}

// crop: { srcWidth, srcHeight, channels, resizedWidth, resizedHeight, left, top, size, flip }
Napi::Value ResampleCrop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto px = ArgBytes(info[0], "pixels");
  Napi::Object o = ArgObject(info[1], "crop");
  ibq::image::CropResample c;
  c.src_width = static_cast<int>(ArgInt(o.Get("srcWidth"), "crop.srcWidth", 1, kMax));
  c.src_height = static_cast<int>(ArgInt(o.Get("srcHeight"), "crop.srcHeight", 1, kMax));
  c.channels = static_cast<int>(ArgInt(o.Get("channels"), "crop.channels", 3, 4));
  ReadPlacement(o, c);
  const size_t need = static_cast<size_t>(c.src_width) * c.src_height * c.channels;
  if (px.ByteLength() < need)
    ThrowRange(env, "pixels: " + std::to_string(px.ByteLength()) + " bytes, fewer than srcWidth x srcHeight x channels = " + std::to_string(need));
  return Resample(env, px.Data(), c, Output(info[2], c));
}

Napi::Value JpegSize(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto bytes = ArgBytes(info[0], "bytes");
  const auto s = Guard(env, [&] { return ibq::image::jpeg_size(bytes.Data(), bytes.ByteLength()); });
  auto o = Napi::Object::New(env);
  o.Set("width", s.width);
  o.Set("height", s.height);
  o.Set("components", s.components);
  return o;
}

Napi::Value DecodeJpeg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto bytes = ArgBytes(info[0], "bytes");
  const auto s = Guard(env, [&] { return ibq::image::jpeg_size(bytes.Data(), bytes.ByteLength()); });
  const size_t n = static_cast<size_t>(s.width) * s.height * 3;
  auto out = Napi::Uint8Array::New(env, n);
  Guard(env, [&] { ibq::image::jpeg_decode_rgb(bytes.Data(), bytes.ByteLength(), out.Data(), n); });
  return out;
}

// crop: { resizedWidth, resizedHeight, left, top, size, flip } of the image jpegSize gave
Napi::Value DecodeJpegCrop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto bytes = ArgBytes(info[0], "bytes");
  Napi::Object o = ArgObject(info[1], "crop");
  ibq::image::CropResample c;
  ReadPlacement(o, c);
  auto out = Output(info[2], c);
  // the decoded pixels: kept by this thread from one image to the next (a decode worker decodes one at a time)
  thread_local std::vector<uint8_t> rgb;
  Guard(env, [&] {
    const auto s = ibq::image::jpeg_size(bytes.Data(), bytes.ByteLength());
    c.src_width = s.width;
    c.src_height = s.height;
    c.channels = 3;
    rgb.resize(static_cast<size_t>(s.width) * s.height * 3);
    ibq::image::jpeg_decode_rgb(bytes.Data(), bytes.ByteLength(), rgb.data(), rgb.size());
  });
  Resample(env, rgb.data(), c, out);
  if (rgb.capacity() > kKeepBytes) std::vector<uint8_t>().swap(rgb);
  return out;
}

// decodeJpegCropAsync(bytes, crop) -> Promise<Float32Array>: decodeJpegCrop on libuv's pool (where sharp decodes the
// other formats), for a thread that must not block: the main thread without decode workers. The bytes are copied
// (a JS view could move or change meanwhile); the output is an ArrayBuffer made here, whose memory never moves.
class DecodeJpegJob : public Napi::AsyncWorker {
 public:
  DecodeJpegJob(Napi::Env env, const Napi::Uint8Array& bytes, const ibq::image::CropResample& c)
      : Napi::AsyncWorker(env, "ibq.decodeJpegCrop"), deferred_(Napi::Promise::Deferred::New(env)),
        bytes_(bytes.Data(), bytes.Data() + bytes.ByteLength()), crop_(c) {
    auto out = Napi::Float32Array::New(env, 3 * static_cast<size_t>(c.size) * c.size);
    dst_ = out.Data();
    out_ = Napi::Persistent(out);
  }
  Napi::Promise Promise() const { return deferred_.Promise(); }

 protected:
  void Execute() override {
    try {
      const auto s = ibq::image::jpeg_size(bytes_.data(), bytes_.size());
      crop_.src_width = s.width;
      crop_.src_height = s.height;
      crop_.channels = 3;
      std::vector<uint8_t> rgb(static_cast<size_t>(s.width) * s.height * 3);
      ibq::image::jpeg_decode_rgb(bytes_.data(), bytes_.size(), rgb.data(), rgb.size());
      ibq::image::resample_crop(rgb.data(), crop_, dst_);
    } catch (const std::exception& e) {
      SetError(e.what());
    }
  }
  void OnOK() override { deferred_.Resolve(out_.Value()); }
  void OnError(const Napi::Error& e) override { deferred_.Reject(e.Value()); }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<uint8_t> bytes_;
  ibq::image::CropResample crop_;
  Napi::Reference<Napi::Float32Array> out_;
  float* dst_ = nullptr;
};

Napi::Value DecodeJpegCropAsync(const Napi::CallbackInfo& info) {
  auto bytes = ArgBytes(info[0], "bytes");
  ibq::image::CropResample c;
  ReadPlacement(ArgObject(info[1], "crop"), c);
  auto* job = new DecodeJpegJob(info.Env(), bytes, c);  // deleted by Napi::AsyncWorker when it has settled
  job->Queue();
  return job->Promise();
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitImage(Napi::Env env, Napi::Object exports) {
  exports.Set("resampleCrop", Napi::Function::New(env, ResampleCrop, "resampleCrop"));
  exports.Set("jpegSize", Napi::Function::New(env, JpegSize, "jpegSize"));
  exports.Set("decodeJpeg", Napi::Function::New(env, DecodeJpeg, "decodeJpeg"));
  exports.Set("decodeJpegCrop", Napi::Function::New(env, DecodeJpegCrop, "decodeJpegCrop"));
  exports.Set("decodeJpegCropAsync", Napi::Function::New(env, DecodeJpegCropAsync, "decodeJpegCropAsync"));
}

}  // namespace ibqb
