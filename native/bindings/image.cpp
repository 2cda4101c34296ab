// resampleCrop(pixels, crop) -> Float32Array: the resize, crop, mirror and float conversion of the image pipeline
// (ibq/core/image_resample.h), synchronous: lib/data/images.ts calls it once per image, on the thread that
// decoded it (a decode worker, or the main thread without workers); about a millisecond for a 256 px crop.
#include <napi.h>

#include "bindings/errors.h"
#include "bindings/exports.h"
#include "ibq/core/image_resample.h"

namespace ibqb {
namespace {

// crop: { srcWidth, srcHeight, channels, resizedWidth, resizedHeight, left, top, size, flip }
Napi::Value ResampleCrop(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsTypedArray() || info[0].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array)
    ThrowType(env, "pixels: expected a Uint8Array (HWC uint8)");
  auto px = info[0].As<Napi::Uint8Array>();
  Napi::Object o = ArgObject(info[1], "crop");
  constexpr int64_t kMax = 1 << 20;
  ibq::image::CropResample c;
  c.src_width = static_cast<int>(ArgInt(o.Get("srcWidth"), "crop.srcWidth", 1, kMax));
  c.src_height = static_cast<int>(ArgInt(o.Get("srcHeight"), "crop.srcHeight", 1, kMax));
  c.channels = static_cast<int>(ArgInt(o.Get("channels"), "crop.channels", 3, 4));
  c.resized_width = static_cast<int>(ArgInt(o.Get("resizedWidth"), "crop.resizedWidth", 1, kMax));
  c.resized_height = static_cast<int>(ArgInt(o.Get("resizedHeight"), "crop.resizedHeight", 1, kMax));
  c.left = static_cast<int>(ArgInt(o.Get("left"), "crop.left", 0, kMax));
  c.top = static_cast<int>(ArgInt(o.Get("top"), "crop.top", 0, kMax));
  c.size = static_cast<int>(ArgInt(o.Get("size"), "crop.size", 1, 16384));
  c.flip = ArgBool(o.Get("flip"), "crop.flip", false);
  const size_t need = static_cast<size_t>(c.src_width) * c.src_height * c.channels;
  if (px.ByteLength() < need)
    ThrowRange(env, "pixels: " + std::to_string(px.ByteLength()) + " bytes, fewer than srcWidth x srcHeight x channels = " + std::to_string(need));
  const size_t n = 3 * static_cast<size_t>(c.size) * c.size;
  auto out = Napi::Float32Array::New(env, n);
  Guard(env, [&] { ibq::image::resample_crop(px.Data(), c, out.Data()); });
  return out;
}

}  // namespace

// Listed in addon.cpp (exports.h).
void InitImage(Napi::Env env, Napi::Object exports) {
  exports.Set("resampleCrop", Napi::Function::New(env, ResampleCrop, "resampleCrop"));
}

}  // namespace ibqb
