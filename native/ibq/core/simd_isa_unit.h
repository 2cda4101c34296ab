// The body of a translation unit that compiles one set of kernels for one instruction set: the file defines
//   IBQ_UNIT_NS      namespace of the getter (ibq::fused)      IBQ_UNIT_ISA    avx2 | avx512 (its sub-namespace)
//   IBQ_UNIT_TABLE   the table type (Kernels)                   IBQ_UNIT_GETTER the getter's name (kernels_avx2)
//   IBQ_UNIT_TARGET  the target string ("avx2,fma")             IBQ_UNIT_IMPL   the header written once ("...impl.h")
//   IBQ_SIMD_WIDTH   floats per vector (8, 16)                  IBQ_SIMD_NAME   the table's name ("avx2")
// and includes this after the header that declares the table and the getter. The impl header is compiled inside
// namespace IBQ_UNIT_NS::IBQ_UNIT_ISA with the target selected for every function (pragma), so the rest of the
// library keeps the compiler's default instruction set; it defines `const IBQ_UNIT_TABLE* table()`. On other
// architectures or compilers the getter returns null. scripts/check-isa.js checks the result.
#define IBQ_UNIT_STR(x) #x
#define IBQ_UNIT_XSTR(x) IBQ_UNIT_STR(x)

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#if defined(__clang__)
_Pragma(IBQ_UNIT_XSTR(clang attribute push(__attribute__((target(IBQ_UNIT_TARGET))), apply_to = function)))
#else
_Pragma("GCC push_options")
_Pragma(IBQ_UNIT_XSTR(GCC target(IBQ_UNIT_TARGET)))
#endif

namespace IBQ_UNIT_NS::IBQ_UNIT_ISA {
#include IBQ_UNIT_IMPL
}  // namespace IBQ_UNIT_NS::IBQ_UNIT_ISA

#if defined(__clang__)
_Pragma("clang attribute pop")
#else
_Pragma("GCC pop_options")
#endif

namespace IBQ_UNIT_NS {
const IBQ_UNIT_TABLE* IBQ_UNIT_GETTER() { return IBQ_UNIT_ISA::table(); }
}  // namespace IBQ_UNIT_NS
#else
namespace IBQ_UNIT_NS {
const IBQ_UNIT_TABLE* IBQ_UNIT_GETTER() { return nullptr; }
}  // namespace IBQ_UNIT_NS
#endif
