// The batch-invariant row kernels (rows_linear_impl.h, written once) for AVX-512, 16 floats per vector.
#include "ibq/transformer/rows_linear.h"

#define IBQ_UNIT_NS ibq::rows
#define IBQ_UNIT_TABLE Kernels
#define IBQ_UNIT_GETTER kernels_avx512
#define IBQ_UNIT_ISA avx512
#define IBQ_UNIT_TARGET "avx512f,avx2,fma"
#define IBQ_UNIT_IMPL "ibq/transformer/rows_linear_impl.h"
#define IBQ_SIMD_WIDTH 16
#define IBQ_SIMD_NAME "avx512"
#include "ibq/core/simd_isa_unit.h"
