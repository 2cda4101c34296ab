// JPEG decoding for the image pipeline (lib/data/images.ts): baseline and progressive JPEGs decoded whole by
// libjpeg-turbo (linked statically into the addon), synchronously on the calling thread, with the settings PIL uses
// (libjpeg's defaults: JDCT_ISLOW inverse DCT, fancy upsampling, no scaling), so that the RGB bytes equal those of
// PIL's Image.open(f).convert('RGB') on the same libjpeg-turbo: greyscale replicated to R = G = B, CMYK/YCCK read
// with Adobe's inverted polarity and converted by Pillow's cmyk2rgb, EXIF orientation and ICC profiles ignored.
// Pure C++, no libtorch, no N-API.
//
// Errors (never an exit of the process: libjpeg's error_exit longjmps back here) are ibq::image::JpegError with
// libjpeg's message: a corrupt or unsupported stream (12-bit, 2 components, arithmetic coding where not built), and
// a file that ends before the image is complete (PIL's "image file is truncated"); other libjpeg warnings (corrupt
// entropy data that libjpeg decodes around) are ignored, as PIL ignores them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>

namespace ibq::image {

// A JPEG that cannot be decoded; the message is libjpeg's (or says what is unsupported).
struct JpegError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// The size of a JPEG image and its colour components (1: greyscale, 3: YCbCr/RGB, 4: CMYK/YCCK).
struct JpegSize {
  int width = 0, height = 0, components = 0;
};

// Reads the header only (no pixels are decoded). Throws JpegError for a stream that is not a decodable JPEG.
JpegSize jpeg_size(const uint8_t* data, size_t size);

// Decodes the whole image to HWC uint8 RGB: `dst` holds width x height x 3 bytes of jpeg_size(data, size).
// Throws JpegError (see above); `dst` is then partly written.
void jpeg_decode_rgb(const uint8_t* data, size_t size, uint8_t* dst, size_t dst_size);

}  // namespace ibq::image
