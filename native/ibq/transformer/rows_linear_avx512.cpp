// The batch-invariant row kernels (rows_linear_impl.h) for AVX512 (16 floats per vector), selected per function by a
// target pragma, so the rest of the library keeps the compiler's default instruction set.
#include "ibq/transformer/rows_linear.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#endif

namespace ibq::rows::avx512 {
#define IBQ_ROWS_WIDTH 16
#define IBQ_ROWS_TILE 12
#define IBQ_ROWS_NAME "avx512"
#include "ibq/transformer/rows_linear_impl.h"
#undef IBQ_ROWS_WIDTH
#undef IBQ_ROWS_TILE
#undef IBQ_ROWS_NAME
}  // namespace ibq::rows::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace ibq::rows {
const Kernels* kernels_avx512() { return avx512::table(); }
}  // namespace ibq::rows
#else
namespace ibq::rows {
const Kernels* kernels_avx512() { return nullptr; }
}  // namespace ibq::rows
#endif
