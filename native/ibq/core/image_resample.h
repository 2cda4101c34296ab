// The resize and crop of the image pipeline (lib/data/images.ts): Pillow's antialiased bilinear resampling
// (Image.resize(size, BILINEAR), which torchvision's Resize applies to PIL images), computed for the output
// pixels of one crop only, followed by an optional left-right mirror and the conversion to float32 CHW in
// [-1, 1] (v / 127.5 - 1), in one pass over the crop. Pure C++, no libtorch.
//
// The arithmetic is Pillow's (libImaging/Resample.c, 8 bits per channel), so the uint8 values equal Pillow's:
// per axis, output pixel i samples around the source position (i + 0.5) * scale, scale = in / out, with a
// triangle of half-width max(scale, 1) (in source pixels), its weights normalised to sum 1 and rounded to fixed
// point with 22 fractional bits; the horizontal pass runs first and is rounded and clamped to uint8, then the
// vertical pass. An output pixel depends only on its own index, so computing the crop alone gives the pixels of
// the whole resized image cut to the crop.
#pragma once
#include <cstdint>

namespace ibq::image {

struct CropResample {
  int src_width = 0, src_height = 0;   // the decoded image, HWC uint8
  int channels = 3;                    // bytes per source pixel (3: RGB; 4: RGB + one ignored byte)
  int resized_width = 0, resized_height = 0;  // the size the image is resized to (Pillow's resize target)
  int left = 0, top = 0;               // the crop's corner in the resized image
  int size = 0;                        // the crop's side
  bool flip = false;                   // mirror the crop left to right
};

// Writes the crop `c` of `src` resized, as float32 [3, size, size] in [-1, 1], to `dst`.
// Throws ibq::ValueError when the crop does not lie inside the resized image or a size is not positive.
void resample_crop(const uint8_t* src, const CropResample& c, float* dst);

}  // namespace ibq::image
