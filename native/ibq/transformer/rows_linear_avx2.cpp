// The batch-invariant row kernels (rows_linear_impl.h, written once) for AVX2 + FMA, 8 floats per vector.
#include "ibq/transformer/rows_linear.h"

#define IBQ_UNIT_NS ibq::rows
#define IBQ_UNIT_TABLE Kernels
#define IBQ_UNIT_GETTER kernels_avx2
#define IBQ_UNIT_ISA avx2
#define IBQ_UNIT_TARGET "avx2,fma"
#define IBQ_UNIT_IMPL "ibq/transformer/rows_linear_impl.h"
#define IBQ_SIMD_WIDTH 8
#define IBQ_SIMD_NAME "avx2"
#include "ibq/core/simd_isa_unit.h"
