// Our element-wise CPU kernels (cpu_kernels_impl.h, written once) for AVX2 + FMA, 8 floats per vector.
#include "ibq/core/cpu_kernels_table.h"

#define IBQ_UNIT_NS ibq::kernels
#define IBQ_UNIT_TABLE Table
#define IBQ_UNIT_GETTER table_avx2
#define IBQ_UNIT_ISA avx2
#define IBQ_UNIT_TARGET "avx2,fma"
#define IBQ_UNIT_IMPL "ibq/core/cpu_kernels_impl.h"
#define IBQ_SIMD_WIDTH 8
#define IBQ_SIMD_NAME "avx2"
#include "ibq/core/simd_isa_unit.h"
