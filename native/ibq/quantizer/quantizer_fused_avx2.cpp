// The fused IBQ quantizer kernels (quantizer_fused_impl.h) for AVX2 + FMA with 8 floats per vector, selected per function by a
// target pragma, so the rest of the library keeps the compiler's default instruction set.
#include "ibq/quantizer/quantizer_fused_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace ibq::fused::avx2 {
#define IBQ_FUSED_WIDTH 8
#define IBQ_FUSED_NAME "avx2"
#include "ibq/quantizer/quantizer_fused_impl.h"
#undef IBQ_FUSED_NAME
#undef IBQ_FUSED_WIDTH
}  // namespace ibq::fused::avx2

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace ibq::fused {
const Kernels* kernels_avx2() { return avx2::table(); }
}  // namespace ibq::fused
#else
namespace ibq::fused {
const Kernels* kernels_avx2() { return nullptr; }
}  // namespace ibq::fused
#endif
