#include "ibq/core/jpeg_decode.h"

#include <algorithm>
#include <csetjmp>
#include <cstdio>  // jpeglib.h uses FILE and size_t without including their headers
#include <cstring>
#include <string>
#include <vector>

#include <jerror.h>
#include <jpeglib.h>

#include "ibq/core/errors.h"

// libjpeg's default message printer writes here: the addon links a copy of Debian's libjpeg.a whose reference to
// stderr is renamed to this (CMakeLists.txt); unused by the decoder, which replaces that printer.
extern "C" {
__attribute__((visibility("hidden"))) FILE* ibq_jpeg_stderr = stderr;
}

namespace ibq::image {
namespace {

// More scans than any real progressive JPEG has (libjpeg-turbo's own tools stop at 500): a stream of thousands of
// tiny scans is a denial of service (each scan revisits the whole coefficient buffer), refused as corrupt.
constexpr int kMaxScans = 500;

// Rows handed to libjpeg per jpeg_read_scanlines call (it returns at most its output row group, 1 or 2).
constexpr int kRowsPerCall = 16;

struct ErrorManager {
  jpeg_error_mgr pub;  // first member: libjpeg sees a jpeg_error_mgr*
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX + 64];
};

[[noreturn]] void on_error(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

// Warnings are ignored as PIL ignores them, except libjpeg's end of the data before the image is complete (it would
// go on with grey pixels; PIL raises "image file is truncated").
void on_message(j_common_ptr cinfo, int level) {
  if (level != -1 || cinfo->err->msg_code != JWRN_JPEG_EOF) return;
  auto* e = reinterpret_cast<ErrorManager*>(cinfo->err);
  std::snprintf(e->message, sizeof e->message, "truncated: the data ends before the image is complete");
  std::longjmp(e->jump, 1);
}

void on_progress(j_common_ptr cinfo) {
  if (!cinfo->is_decompressor) return;
  const int scans = reinterpret_cast<j_decompress_ptr>(cinfo)->input_scan_number;
  if (scans <= kMaxScans) return;
  auto* e = reinterpret_cast<ErrorManager*>(cinfo->err);
  std::snprintf(e->message, sizeof e->message, "more than %d scans (a corrupt or hostile progressive JPEG)", kMaxScans);
  std::longjmp(e->jump, 1);
}

// One decompression: libjpeg's state, freed by the destructor whatever happened. The steps below run under setjmp
// and hold only trivially destructible locals (a longjmp skips destructors), returning false with `err.message`
// set when libjpeg reported an error.
struct Decoder {
  jpeg_decompress_struct cinfo;
  ErrorManager err;
  jpeg_progress_mgr progress;

  Decoder() {
    std::memset(&cinfo, 0, sizeof cinfo);  // jpeg_destroy_decompress is safe on it even if creation failed
    cinfo.err = jpeg_std_error(&err.pub);
    err.pub.error_exit = on_error;
    err.pub.emit_message = on_message;
    err.message[0] = '\0';
    progress.progress_monitor = on_progress;
  }
  ~Decoder() { jpeg_destroy_decompress(&cinfo); }
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;
};

bool read_header(Decoder& d, const uint8_t* data, size_t size) {
  if (setjmp(d.err.jump)) return false;
  jpeg_create_decompress(&d.cinfo);
  d.cinfo.progress = &d.progress;
  jpeg_mem_src(&d.cinfo, data, static_cast<unsigned long>(size));
  jpeg_read_header(&d.cinfo, TRUE);
  return true;
}

// Pillow's CMYK -> RGB of a JPEG (JpegImagePlugin reads CMYK with Adobe's inverted polarity, "CMYK;I", and
// convert('RGB') computes (255 - k) - (255 - k) x c / 255 with its rounding MULDIV255): from libjpeg's stored values
// c' = 255 - c and k' = 255 - k, out = k' - MULDIV255(255 - c', k').
inline uint8_t cmyk_channel(int stored_c, int stored_k) {
  const int t = (255 - stored_c) * stored_k + 128;
  const int v = stored_k - (((t >> 8) + t) >> 8);
  return static_cast<uint8_t>(v < 0 ? 0 : v > 255 ? 255 : v);
}

// Decodes the scanlines into `dst` (RGB), through `cmyk` (one row group of 4-byte pixels) when the image is CMYK.
bool read_pixels(Decoder& d, uint8_t* dst, uint8_t* cmyk) {
  if (setjmp(d.err.jump)) return false;
  j_decompress_ptr c = &d.cinfo;
  // the rest stays at libjpeg's defaults, as PIL leaves it: JDCT_ISLOW, fancy upsampling, scale 1/1
  c->out_color_space = c->num_components == 4 ? JCS_CMYK : JCS_RGB;  // greyscale -> RGB replicates the grey
  jpeg_start_decompress(c);
  const size_t stride = static_cast<size_t>(c->output_width) * 3;
  JSAMPROW rows[kRowsPerCall];
  while (c->output_scanline < c->output_height) {
    const JDIMENSION y = c->output_scanline;
    if (!cmyk) {
      const JDIMENSION n = std::min<JDIMENSION>(kRowsPerCall, c->output_height - y);
      for (JDIMENSION k = 0; k < n; ++k) rows[k] = dst + (y + k) * stride;
      jpeg_read_scanlines(c, rows, n);
      continue;
    }
    rows[0] = cmyk;
    if (jpeg_read_scanlines(c, rows, 1) != 1) continue;
    uint8_t* out = dst + y * stride;
    for (JDIMENSION x = 0; x < c->output_width; ++x, out += 3) {
      const uint8_t* p = cmyk + 4 * static_cast<size_t>(x);
      out[0] = cmyk_channel(p[0], p[3]);
      out[1] = cmyk_channel(p[1], p[3]);
      out[2] = cmyk_channel(p[2], p[3]);
    }
  }
  // no jpeg_finish_decompress: the pixels are complete; what follows the last scan (EOI, trailing bytes) is not read
  return true;
}

JpegSize size_of(const Decoder& d) {
  const int n = d.cinfo.num_components;
  if (n != 1 && n != 3 && n != 4) throw JpegError(std::to_string(n) + " colour components (neither greyscale, RGB/YCbCr nor CMYK)");
  return {static_cast<int>(d.cinfo.image_width), static_cast<int>(d.cinfo.image_height), n};
}

}  // namespace

JpegSize jpeg_size(const uint8_t* data, size_t size) {
  Decoder d;
  if (!read_header(d, data, size)) throw JpegError(d.err.message);
  return size_of(d);
}

void jpeg_decode_rgb(const uint8_t* data, size_t size, uint8_t* dst, size_t dst_size) {
  Decoder d;
  if (!read_header(d, data, size)) throw JpegError(d.err.message);
  const JpegSize s = size_of(d);
  const size_t need = static_cast<size_t>(s.width) * s.height * 3;
  IBQ_CHECK(dst_size >= need, "jpeg_decode_rgb: " + std::to_string(dst_size) + " bytes for " + std::to_string(need));
  std::vector<uint8_t> cmyk(s.components == 4 ? static_cast<size_t>(s.width) * 4 : 0);
  if (!read_pixels(d, dst, cmyk.empty() ? nullptr : cmyk.data())) throw JpegError(d.err.message);
}

}  // namespace ibq::image
