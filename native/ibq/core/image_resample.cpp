#include "ibq/core/image_resample.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "ibq/core/errors.h"
#include "ibq/core/image_kernels_table.h"

namespace ibq::image {
namespace {

constexpr int kBits = 22;                    // fractional bits of the fixed-point weights (Pillow: 32 - 8 - 2)
constexpr int32_t kHalf = 1 << (kBits - 1);  // rounding term of every sum

inline uint8_t clip8(int32_t v) {
  const int32_t x = v >> kBits;
  return static_cast<uint8_t>(x < 0 ? 0 : x > 255 ? 255 : x);
}

// The sampling of one axis for outputs [from, from + n): for output i, `count[i]` weights from source index `first[i]`.
struct Axis {
  int taps = 0;
  std::vector<int> first, count;
  std::vector<int32_t> weight;  // [n, taps]
};

Axis axis(int in, int out, int from, int n) {
  const double scale = static_cast<double>(in) / out;
  const double widen = std::max(scale, 1.0);  // the triangle stretched when shrinking: antialiasing
  const double support = widen;               // the triangle's half-width (1) in source pixels
  const double inv = 1.0 / widen;
  const int most = static_cast<int>(std::ceil(support)) * 2 + 1;  // Pillow's bound on the weights per output
  std::vector<double> centre(n);
  std::vector<int> lo(n), cnt(n);
  Axis a;
  for (int i = 0; i < n; ++i) {
    centre[i] = (from + i + 0.5) * scale;
    lo[i] = std::max(0, static_cast<int>(centre[i] - support + 0.5));
    cnt[i] = std::min(std::min(in, static_cast<int>(centre[i] + support + 0.5)) - lo[i], most);
    a.taps = std::max(a.taps, cnt[i]);
  }
  a.first.resize(n);
  a.count.resize(n);
  a.weight.assign(static_cast<size_t>(n) * a.taps, 0);
  std::vector<double> w(a.taps);
  for (int i = 0; i < n; ++i) {
    double sum = 0;
    for (int j = 0; j < cnt[i]; ++j) {
      const double t = std::abs((j + lo[i] - centre[i] + 0.5) * inv);
      w[j] = t < 1.0 ? 1.0 - t : 0.0;
      sum += w[j];
    }
    // every output gets `taps` weights (zeros past its own): its window moves left where it would end past the
    // source, so that the loops run a fixed count without reading outside
    const int start = std::max(0, std::min(lo[i], in - a.taps));
    int32_t* k = &a.weight[static_cast<size_t>(i) * a.taps + (lo[i] - start)];
    for (int j = 0; j < cnt[i]; ++j) {
      const double v = sum != 0.0 ? w[j] / sum : w[j];
      k[j] = static_cast<int32_t>(v < 0 ? -0.5 + v * (1 << kBits) : 0.5 + v * (1 << kBits));
    }
    a.first[i] = start;
    a.count[i] = std::min(a.taps, in - start);
  }
  return a;
}

// One source row through the horizontal weights of `a`: S RGB outputs. TAPS: a.taps when known at compile time.
template <int TAPS>
void across_row(const uint8_t* row, int C, const Axis& a, int S, uint8_t* out) {
  const int taps = TAPS > 0 ? TAPS : a.taps;
  for (int x = 0; x < S; ++x) {
    const uint8_t* p = row + static_cast<size_t>(a.first[x]) * C;
    const int32_t* k = &a.weight[static_cast<size_t>(x) * taps];
    const int n = TAPS > 0 ? TAPS : a.count[x];
    int32_t r = kHalf, g = kHalf, b = kHalf;
    for (int j = 0; j < n; ++j, p += C) {
      r += p[0] * k[j];
      g += p[1] * k[j];
      b += p[2] * k[j];
    }
    out[3 * x] = clip8(r), out[3 * x + 1] = clip8(g), out[3 * x + 2] = clip8(b);
  }
}

// v / 127.5 - 1 for every uint8 v, rounded once to float32 (the values of the JS table it replaces)
struct Symmetric {
  float v[256];
  Symmetric() {
    for (int i = 0; i < 256; ++i) v[i] = static_cast<float>(i / 127.5 - 1.0);
  }
};
const Symmetric kSymmetric;

// The vector passes this CPU runs (IBQ_KERNEL, else IBQ_QUANTIZER_KERNEL: avx512, avx2, or aten for none, as
// for our other kernels); null: the scalar loops. The bytes are the same either way.
const Kernels* vector_kernels() {
  static const Kernels* chosen = []() -> const Kernels* {
    const char* env = std::getenv("IBQ_KERNEL");
    if (!env) env = std::getenv("IBQ_QUANTIZER_KERNEL");
    const std::string want = env ? env : "";
    if (want == "aten") return nullptr;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (kernels_avx512() && (want.empty() || want == "avx512") && __builtin_cpu_supports("avx512f") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
      return kernels_avx512();
    if (kernels_avx2() && (want.empty() || want == "avx2" || want == "avx512") && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
      return kernels_avx2();
#endif
    return nullptr;
  }();
  return chosen;
}

}  // namespace

void resample_crop(const uint8_t* src, const CropResample& c, float* dst) {
  const int S = c.size, C = c.channels;
  if (c.src_width < 1 || c.src_height < 1 || c.resized_width < 1 || c.resized_height < 1 || S < 1)
    throw ValueError("resample_crop: sizes must be positive");
  if (C != 3 && C != 4) throw ValueError("resample_crop: channels must be 3 or 4, got " + std::to_string(C));
  if (c.left < 0 || c.top < 0 || c.left + S > c.resized_width || c.top + S > c.resized_height)
    throw ValueError("resample_crop: the crop " + std::to_string(S) + " at (" + std::to_string(c.left) + ", " + std::to_string(c.top) +
                     ") does not lie inside the resized image " + std::to_string(c.resized_width) + "x" + std::to_string(c.resized_height));
  const bool across = c.src_width != c.resized_width;  // Pillow skips a pass whose size does not change (an identity)
  const bool down = c.src_height != c.resized_height;
  const Axis ax = across ? axis(c.src_width, c.resized_width, c.left, S) : Axis{};
  const Axis ay = down ? axis(c.src_height, c.resized_height, c.top, S) : Axis{};
  const int y0 = down ? ay.first[0] : c.top;
  const int y1 = down ? ay.first[S - 1] + ay.count[S - 1] : c.top + S;
  const size_t row3 = static_cast<size_t>(S) * 3;
  // whether every output has all its taps inside the source (a source at least `taps` wide)
  const bool full_x = across && c.src_width >= ax.taps;

  // horizontal pass over the source rows the crop needs: uint8 RGB [y1 - y0, S]
  const Kernels* vk = vector_kernels();
  std::vector<int16_t> packed(vk && across && C == 3 ? packed_size(ax.taps, S) : 0);
  if (!packed.empty()) vk->pack(ax.weight.data(), ax.taps, S, packed.data());
  std::vector<uint8_t> tmp(static_cast<size_t>(y1 - y0) * row3 + 4);  // + 4: the vector pass writes a byte past
  for (int y = y0; y < y1; ++y) {
    const uint8_t* row = src + static_cast<size_t>(y) * c.src_width * C;
    uint8_t* out = tmp.data() + static_cast<size_t>(y - y0) * row3;
    if (!across) {
      for (int x = 0; x < S; ++x) {
        const uint8_t* p = row + static_cast<size_t>(c.left + x) * C;
        out[3 * x] = p[0], out[3 * x + 1] = p[1], out[3 * x + 2] = p[2];
      }
      continue;
    }
    if (vk && C == 3) {
      // outputs whose window of up to 28 bytes lies inside the source
      const size_t avail = static_cast<size_t>(c.src_height - y) * c.src_width * 3;
      const size_t need = ax.taps > 4 ? 28 : 16;
      int safe = S;
      while (safe > 0 && 3 * static_cast<size_t>(ax.first[safe - 1]) + need > avail) --safe;
      vk->across(row, ax.first.data(), ax.weight.data(), packed.data(), ax.taps, S, safe, out);
    } else if (ax.taps == 3 && full_x && C == 3) across_row<3>(row, 3, ax, S, out);
    else if (ax.taps == 4 && full_x && C == 3) across_row<4>(row, 3, ax, S, out);
    else if (ax.taps == 5 && full_x && C == 3) across_row<5>(row, 3, ax, S, out);
    else across_row<0>(row, C, ax, S, out);
  }

  // vertical pass, mirror and conversion to float32 CHW, one output row at a time
  const size_t plane = static_cast<size_t>(S) * S;
  std::vector<int32_t> acc(row3);
  std::vector<uint8_t> line(row3);
  std::vector<const uint8_t*> rows(down ? ay.taps : 0);
  for (int y = 0; y < S; ++y) {
    const uint8_t* v;
    if (down) {
      const int32_t* k = &ay.weight[static_cast<size_t>(y) * ay.taps];
      const int n = ay.count[y];
      for (int j = 0; j < n; ++j) rows[j] = tmp.data() + static_cast<size_t>(ay.first[y] - y0 + j) * row3;
      if (vk) {
        vk->down(rows.data(), k, n, row3, line.data());
      } else {
        std::fill(acc.begin(), acc.end(), kHalf);
        for (int j = 0; j < n; ++j)
          for (size_t i = 0; i < row3; ++i) acc[i] += rows[j][i] * k[j];
        for (size_t i = 0; i < row3; ++i) line[i] = clip8(acc[i]);
      }
      v = line.data();
    } else {
      v = tmp.data() + static_cast<size_t>(y) * row3;
    }
    float* r = dst + static_cast<size_t>(y) * S;
    float* g = r + plane;
    float* b = g + plane;
    if (c.flip) {
      for (int x = 0, m = S - 1; x < S; ++x, --m)
        r[m] = kSymmetric.v[v[3 * x]], g[m] = kSymmetric.v[v[3 * x + 1]], b[m] = kSymmetric.v[v[3 * x + 2]];
    } else {
      for (int x = 0; x < S; ++x)
        r[x] = kSymmetric.v[v[3 * x]], g[x] = kSymmetric.v[v[3 * x + 1]], b[x] = kSymmetric.v[v[3 * x + 2]];
    }
  }
}

}  // namespace ibq::image
