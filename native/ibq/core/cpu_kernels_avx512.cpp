// Our element-wise CPU kernels (cpu_kernels_impl.h, written once) for AVX-512 (F, DQ), 16 floats per vector.
#include "ibq/core/cpu_kernels_table.h"

#define IBQ_UNIT_NS ibq::kernels
#define IBQ_UNIT_TABLE Table
#define IBQ_UNIT_GETTER table_avx512
#define IBQ_UNIT_ISA avx512
#define IBQ_UNIT_TARGET "avx512f,avx512dq,avx2,fma"
#define IBQ_UNIT_IMPL "ibq/core/cpu_kernels_impl.h"
#define IBQ_SIMD_WIDTH 16
#define IBQ_SIMD_NAME "avx512"
#include "ibq/core/simd_isa_unit.h"
