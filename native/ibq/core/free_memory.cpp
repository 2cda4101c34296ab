#include "ibq/core/free_memory.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace ibq {

bool return_free_memory() {
#if defined(__GLIBC__)
  return malloc_trim(0) != 0;
#else
  return false;
#endif
}

}  // namespace ibq
