// The image kernels (image_kernels_table.h), compiled once per instruction set inside
// namespace ibq::image::<isa> by simd_isa_unit.h. 256-bit integer vectors in both units (the AVX-512 unit gets
// the wider encodings and registers of its target).
namespace {

constexpr int kBits = 22;
constexpr int32_t kHalf = 1 << (kBits - 1);

inline uint8_t clip8(int32_t v) {
  const int32_t x = v >> kBits;
  return static_cast<uint8_t>(x < 0 ? 0 : x > 255 ? 255 : x);
}

void across_scalar(const uint8_t* row, const int* first, const int32_t* weight, int taps, int from, int n, uint8_t* out) {
  for (int x = from; x < n; ++x) {
    const uint8_t* p = row + 3 * static_cast<size_t>(first[x]);
    const int32_t* k = weight + static_cast<size_t>(x) * taps;
    int32_t r = kHalf, g = kHalf, b = kHalf;
    for (int j = 0; j < taps; ++j, p += 3) r += p[0] * k[j], g += p[1] * k[j], b += p[2] * k[j];
    out[3 * x] = clip8(r), out[3 * x + 1] = clip8(g), out[3 * x + 2] = clip8(b);
  }
}

// The weights of one output as int16 halves (w = hi * 2^11 + lo, both < 2^11), laid out for vpmaddwd against the
// pixels that kShuffle spreads: 128-bit lane 0 pairs taps (0, 1), lane 1 taps (2, 3) of R, G, B (+ a zero pair).
inline void split(const int32_t* k, int taps, int base, int16_t hi[16], int16_t lo[16]) {
  for (int lane = 0; lane < 2; ++lane)
    for (int c = 0; c < 4; ++c)
      for (int t = 0; t < 2; ++t) {
        const int j = base + lane * 2 + t;
        const int32_t w = c < 3 && j < taps ? k[j] : 0;
        hi[lane * 8 + c * 2 + t] = static_cast<int16_t>(w >> 11);
        lo[lane * 8 + c * 2 + t] = static_cast<int16_t>(w & 2047);
      }
}

// 16 source bytes (pixels 0..4 of a window, both 128-bit lanes) -> int16 [R0 R1 G0 G1 B0 B1 0 0 | R2 R3 G2 G3 B2 B3 0 0]
inline __m256i spread(const uint8_t* p) {
  const __m256i shuffle = _mm256_setr_epi8(0, -1, 3, -1, 1, -1, 4, -1, 2, -1, 5, -1, -1, -1, -1, -1,
                                           6, -1, 9, -1, 7, -1, 10, -1, 8, -1, 11, -1, -1, -1, -1, -1);
  return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))), shuffle);
}

// The weights of n outputs laid out for `across`: per output, (taps > 4 ? 2 : 1) x (hi[16], lo[16]).
void pack(const int32_t* weight, int taps, int n, int16_t* out) {
  const int groups = taps > 4 ? 2 : 1;
  for (int x = 0; x < n; ++x)
    for (int g = 0; g < groups; ++g, out += 32) split(weight + static_cast<size_t>(x) * taps, taps, 4 * g, out, out + 16);
}

void across(const uint8_t* row, const int* first, const int32_t* weight, const int16_t* packed, int taps, int n, int safe,
            uint8_t* out) {
  if (taps > 8) return across_scalar(row, first, weight, taps, 0, n, out);
  const int m = std::min(safe, n);
  const bool two = taps > 4;
  const __m128i half = _mm_set1_epi32(kHalf);
  const __m256i* w = reinterpret_cast<const __m256i*>(packed);
  for (int x = 0; x < m; ++x) {
    const uint8_t* p = row + 3 * static_cast<size_t>(first[x]);
    __m256i v = spread(p);
    __m256i h = _mm256_madd_epi16(v, _mm256_loadu_si256(w++));
    __m256i l = _mm256_madd_epi16(v, _mm256_loadu_si256(w++));
    if (two) {
      v = spread(p + 12);
      h = _mm256_add_epi32(h, _mm256_madd_epi16(v, _mm256_loadu_si256(w++)));
      l = _mm256_add_epi32(l, _mm256_madd_epi16(v, _mm256_loadu_si256(w++)));
    }
    const __m256i t = _mm256_add_epi32(_mm256_slli_epi32(h, 11), l);
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256(t, 1));  // [R G B 0]
    s = _mm_srai_epi32(_mm_add_epi32(s, half), kBits);
    s = _mm_packus_epi16(_mm_packs_epi32(s, s), s);  // saturates to [0, 255]
    const int32_t px = _mm_cvtsi128_si32(s);
    std::memcpy(out + 3 * static_cast<size_t>(x), &px, 4);  // the 4th byte is overwritten by the next output
  }
  across_scalar(row, first, weight, taps, m, n, out);
}

void down(const uint8_t* const* rows, const int32_t* k, int taps, size_t n, uint8_t* out) {
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256i a0 = _mm256_set1_epi32(kHalf), a1 = a0;
    for (int j = 0; j < taps; ++j) {
      const __m256i kj = _mm256_set1_epi32(k[j]);
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[j] + i));
      a0 = _mm256_add_epi32(a0, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(b), kj));
      a1 = _mm256_add_epi32(a1, _mm256_mullo_epi32(_mm256_cvtepu8_epi32(_mm_srli_si128(b, 8)), kj));
    }
    a0 = _mm256_srai_epi32(a0, kBits);
    a1 = _mm256_srai_epi32(a1, kBits);
    // packs within 128-bit lanes: fix the order with a permute
    const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(a0, a1), 0xD8);
    const __m128i b8 = _mm_packus_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), b8);
  }
  for (; i < n; ++i) {
    int32_t a = kHalf;
    for (int j = 0; j < taps; ++j) a += rows[j][i] * k[j];
    out[i] = clip8(a);
  }
}

const IBQ_UNIT_TABLE kTable = {IBQ_SIMD_NAME, pack, across, down};

}  // namespace

const IBQ_UNIT_TABLE* table() { return &kTable; }
