// The vector passes of the image resampling (image_resample.cpp), written once in image_kernels_impl.h and
// compiled per instruction set (image_kernels_avx512.cpp, image_kernels_avx2.cpp; simd_isa_unit.h). Integer
// arithmetic only: every table gives the same bytes as the scalar code of image_resample.cpp (Pillow's).
#pragma once
#include <cstddef>
#include <cstdint>

namespace ibq::image {

struct Kernels {
  const char* name;
  // The weights [n, taps] (each in [0, 2^22]) laid out for `across`: packed_size(taps, n) int16.
  void (*pack)(const int32_t* weight, int taps, int n, int16_t* packed);
  // Horizontal pass of one RGB row (3 bytes per pixel): out[3x + c] = clip8(2^21 + sum_j row[3(first[x] + j) + c] *
  // weight[x * taps + j]), x < n (more than 8 taps: scalar). Reads up to 28 bytes from row + 3 first[x] for the
  // first `safe` outputs, only the pixels themselves for the rest. Writes up to 1 byte past out[3n - 1].
  void (*across)(const uint8_t* row, const int* first, const int32_t* weight, const int16_t* packed, int taps, int n,
                 int safe, uint8_t* out);
  // Vertical pass: out[i] = clip8(2^21 + sum_j rows[j][i] * k[j]), i < n, j < taps, k in [0, 2^22].
  void (*down)(const uint8_t* const* rows, const int32_t* k, int taps, size_t n, uint8_t* out);
};

inline size_t packed_size(int taps, int n) { return static_cast<size_t>(n) * (taps > 4 ? 64 : 32); }

const Kernels* kernels_avx512();  // null where not compiled (not x86-64 GCC/Clang)
const Kernels* kernels_avx2();

}  // namespace ibq::image
