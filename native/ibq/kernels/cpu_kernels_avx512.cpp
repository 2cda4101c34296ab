// Our element-wise CPU kernels (cpu_kernels_impl.h) for AVX-512 (F, DQ) with 16 floats per vector, selected per function by a target
// pragma, so the rest of the library keeps the compiler's default instruction set.
#include "ibq/kernels/cpu_kernels_table.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512dq,avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,avx2,fma")
#endif

namespace ibq::kernels::avx512 {
#define IBQ_SIMD_WIDTH 16
#define IBQ_SIMD_NAME "avx512"
#include "ibq/kernels/cpu_kernels_impl.h"
#undef IBQ_SIMD_NAME
#undef IBQ_SIMD_WIDTH
}  // namespace ibq::kernels::avx512

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

namespace ibq::kernels {
const Table* table_avx512() { return avx512::table(); }
}  // namespace ibq::kernels
#else
namespace ibq::kernels {
const Table* table_avx512() { return nullptr; }
}  // namespace ibq::kernels
#endif
