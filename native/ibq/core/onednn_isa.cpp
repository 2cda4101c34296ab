#include "ibq/core/onednn_isa.h"

#include <ATen/Context.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cstdlib>
#include <string_view>

namespace ibq {

std::string onednn_isa_limit() {
  for (const char* name : {"DNNL_MAX_CPU_ISA", "ONEDNN_MAX_CPU_ISA"}) {
    const char* v = std::getenv(name);
    if (v && *v) {
      std::string s(v);
      std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::toupper(c)); });
      return s;
    }
  }
  return {};
}

bool onednn_limit_allows_bf16(const std::string& limit) {
  static constexpr std::array<std::string_view, 5> below = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2"};
  return std::find(below.begin(), below.end(), limit) == below.end();
}

bool apply_onednn_isa_limit() {
  const std::string limit = onednn_isa_limit();
  if (limit.empty() || onednn_limit_allows_bf16(limit)) return false;
#if defined(__x86_64__) || defined(__i386__)
  // the flags libtorch 1.13 checks (mkldnn_bf16_device_check); without them it never sends bfloat16 to oneDNN
  if (!(__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx512dq")))
    return false;
#else
  return false;
#endif
  at::globalContext().setUserEnabledMkldnn(false);
  return true;
}

}  // namespace ibq
