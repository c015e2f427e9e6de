// The scorers' shared inner loop: blocks of 4 key vectors against pairs of query heads.
//
// Bound, centroid and embedding scores, and lightning scores when the outer-product kernel cannot
// run, are dot products of a key vector with a query head (bound: with the positive and negative
// parts of the head). One register-blocked micro-kernel serves them all: 4 keys x 2 heads = 8
// independent accumulators, enough to keep both FMA pipes of a core busy, with 6 loads per 8 FMAs.
// Callers keep a small block of keys hot in L1 and walk the heads over it. Keys are floats, or
// bf16 bits widened in registers (bounds of bf16 keys, stored at half the bytes).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "lsa/detail/cpu_dispatch.hpp"
#include "lsa/detail/prefetch.hpp"
#include "lsa/fp8.hpp"

namespace lsa::detail {

/// What one (key, query) product means.
enum class DotMode : uint8_t {
  kDot,    ///< key vector [len]: sum_d q_d * k_d
  kBound,  ///< key vector [max(len), min(len)]: sum_d max(q_d * max_d, q_d * min_d)
};

/// A stored key value as float: floats as they are, uint16_t as bf16 bits.
template <class T>
inline float key_value(T x) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    return x;
  } else {
    static_assert(std::is_same_v<T, uint16_t>, "keys are float or bf16 bits");
    return bf16_to_float(x);
  }
}

/// Products of keys k[i] (i < 4; float or bf16 bits) with heads q0, q1:
/// out[2 * i + j] = <key i, q_j>.
template <DotMode kMode, class T>
inline void dot4x2_generic(const T* const (&k)[4], const float* q0, const float* q1, int64_t len,
                           float* out) noexcept {
  for (int i = 0; i < 4; ++i) {
    const T* key = k[i];
    for (int j = 0; j < 2; ++j) {
      const float* q = j == 0 ? q0 : q1;
      // Eight partial sums, so the loop vectorizes without reassociation flags.
      float partial[8] = {};
      auto term = [&](int64_t d) {
        if constexpr (kMode == DotMode::kDot) {
          return q[d] * key_value(key[d]);
        } else {
          return std::max(q[d] * key_value(key[d]), q[d] * key_value(key[len + d]));
        }
      };
      int64_t d = 0;
      for (; d + 8 <= len; d += 8) {
        for (int l = 0; l < 8; ++l) partial[l] += term(d + l);
      }
      for (int l = 0; d < len; ++d, ++l) partial[l] += term(d);
      out[2 * i + j] = ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
                       ((partial[4] + partial[5]) + (partial[6] + partial[7]));
    }
  }
}

#if LSA_X86_SIMD
/// Loads 8 values as floats (T is float or bf16 bits); when kMasked only the first `count`
/// (the lanes of `mask`), the others reading as 0.
template <bool kMasked, class T>
LSA_TARGET_AVX2 __attribute__((always_inline)) inline __m256 load8(const T* p, __m256i mask,
                                                                   int64_t count) noexcept {
  if constexpr (std::is_same_v<T, float>) {
    (void)count;
    if constexpr (kMasked) return _mm256_maskload_ps(p, mask);
    (void)mask;
    return _mm256_loadu_ps(p);
  } else {
    (void)mask;
    __m128i bits;
    if constexpr (kMasked) {
      alignas(16) uint16_t tail[8] = {};
      std::memcpy(tail, p, static_cast<size_t>(count) * sizeof(uint16_t));
      bits = _mm_load_si128(reinterpret_cast<const __m128i*>(tail));
    } else {
      (void)count;
      bits = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    }
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(bits), 16));
  }
}

/// One key's share of an 8-dim step: acc0 += key * x0, acc1 += key * x1 (kBound: x0, x1 are the
/// heads' positive parts, n0, n1 their negative parts, and the key is [max, min]).
template <DotMode kMode, bool kMasked, class T>
LSA_TARGET_AVX2 __attribute__((always_inline)) inline void key_step(
    const T* key, int64_t len, int64_t d, __m256i mask, int64_t count, __m256 x0, __m256 x1,
    __m256 n0, __m256 n1, __m256& acc0, __m256& acc1) noexcept {
  if constexpr (kMode == DotMode::kDot) {
    (void)len, (void)n0, (void)n1;
    __m256 kv = load8<kMasked>(key + d, mask, count);
    __asm__("" : "+x"(kv));  // keep kv in a register: GCC would otherwise load it once per FMA
    acc0 = _mm256_fmadd_ps(kv, x0, acc0);
    acc1 = _mm256_fmadd_ps(kv, x1, acc1);
  } else {
    __m256 hi = load8<kMasked>(key + d, mask, count);
    __m256 lo = load8<kMasked>(key + len + d, mask, count);
    __asm__("" : "+x"(hi), "+x"(lo));
    acc0 = _mm256_fmadd_ps(x0, hi, _mm256_fmadd_ps(n0, lo, acc0));
    acc1 = _mm256_fmadd_ps(x1, hi, _mm256_fmadd_ps(n1, lo, acc1));
  }
}

/// Sums of 8 accumulators, in [a0, a1, ..., a7] lane order.
LSA_TARGET_AVX2 __attribute__((always_inline)) inline __m256 horizontal_sums(__m256 a0, __m256 a1,
                                                                             __m256 a2, __m256 a3,
                                                                             __m256 a4, __m256 a5,
                                                                             __m256 a6,
                                                                             __m256 a7) noexcept {
  const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(a4, a5), _mm256_hadd_ps(a6, a7));
  return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/// One 8-dim step of dot4x2_avx2 over dims [d, d + 8) (kMasked: only `count` of them).
template <DotMode kMode, bool kMasked, class T>
LSA_TARGET_AVX2 __attribute__((always_inline)) inline void dot4x2_step(
    const T* const (&k)[4], const float* q0, const float* q1, int64_t len, int64_t d, __m256i mask,
    int64_t count, __m256& a00, __m256& a01, __m256& a10, __m256& a11, __m256& a20, __m256& a21,
    __m256& a30, __m256& a31) noexcept {
  __m256 x0 = load8<kMasked>(q0 + d, mask, count);
  __m256 x1 = load8<kMasked>(q1 + d, mask, count);
  __m256 n0 = x0, n1 = x1;
  if constexpr (kMode == DotMode::kBound) {
    // max(q*hi, q*lo) = max(q,0)*hi + min(q,0)*lo exactly (one of the two terms is +-0).
    const __m256 zero = _mm256_setzero_ps();
    n0 = _mm256_min_ps(x0, zero);
    n1 = _mm256_min_ps(x1, zero);
    x0 = _mm256_max_ps(x0, zero);
    x1 = _mm256_max_ps(x1, zero);
  }
  key_step<kMode, kMasked>(k[0], len, d, mask, count, x0, x1, n0, n1, a00, a01);
  key_step<kMode, kMasked>(k[1], len, d, mask, count, x0, x1, n0, n1, a10, a11);
  key_step<kMode, kMasked>(k[2], len, d, mask, count, x0, x1, n0, n1, a20, a21);
  key_step<kMode, kMasked>(k[3], len, d, mask, count, x0, x1, n0, n1, a30, a31);
}

/// dot4x2_generic in AVX2/FMA, returned as one vector [k0q0, k0q1, k1q0, k1q1, ..., k3q1].
template <DotMode kMode, class T>
LSA_TARGET_AVX2 __attribute__((always_inline)) inline __m256 dot4x2_avx2(const T* const (&k)[4],
                                                                         const float* q0,
                                                                         const float* q1,
                                                                         int64_t len) noexcept {
  // Written out (no arrays of vectors, no lambdas) so that every accumulator lives in a register.
  __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps();
  __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
  __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps();
  __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
  const __m256i all = _mm256_set1_epi32(-1);
  int64_t d = 0;
  for (; d + 8 <= len; d += 8) {
    dot4x2_step<kMode, false>(k, q0, q1, len, d, all, 8, a00, a01, a10, a11, a20, a21, a30, a31);
  }
  if (d < len) {
    // Masked tail: lanes past len read as 0 and add nothing.
    alignas(32) static constexpr int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                       0,  0,  0,  0,  0,  0,  0,  0};
    const int64_t count = len - d;
    const __m256i mask = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - count));
    dot4x2_step<kMode, true>(k, q0, q1, len, d, mask, count, a00, a01, a10, a11, a20, a21, a30,
                             a31);
  }
  return horizontal_sums(a00, a01, a10, a11, a20, a21, a30, a31);
}
#endif

/// Shapes of a max-over-heads scoring pass: key heads of each chunk, query heads grouped on them.
struct HeadLayout {
  int64_t chunk_stride;   ///< floats between consecutive chunks' vectors
  int64_t head_stride;    ///< floats between a chunk's consecutive key-head vectors
  int32_t num_key_heads;  ///< key heads per chunk
  int32_t group;          ///< query heads per key head: query head h reads key head h / group
  int64_t len;            ///< query vector length (head_dim)
};

/// Pointers to the vectors of key head g of chunks c0 .. c0 + 3; past the last chunk they repeat
/// it, so a short last block reads only real keys (its extra results are ignored).
template <class T>
inline void block_keys(const T* keys, int64_t c0, int64_t num_chunks, int32_t g,
                       const HeadLayout& s, const T* (&k)[4]) noexcept {
  for (int64_t i = 0; i < 4; ++i) {
    k[i] = keys + std::min(c0 + i, num_chunks - 1) * s.chunk_stride + g * s.head_stride;
  }
}

/// Prefetches the 4 chunks of keys from c0 on (the block after next, so it arrives in time).
template <class T>
inline void prefetch_block(const T* keys, int64_t c0, const HeadLayout& s) noexcept {
  prefetch_bytes(keys + c0 * s.chunk_stride, 4 * s.chunk_stride * static_cast<int64_t>(sizeof(T)));
}

/// out[c] = max over query heads h of <key(c, h / group), q_h>, for c < num_chunks; key(c, g) is
/// at keys + c * chunk_stride + g * head_stride, q_h at queries + h * len. Heads go in pairs within
/// a group; an odd group's last head is paired with itself, which max() does not mind.
template <DotMode kMode, class T>
inline void max_over_heads_generic(const T* keys, int64_t num_chunks, const HeadLayout& s,
                                   const float* queries, float* out) noexcept {
  for (int64_t c0 = 0; c0 < num_chunks; c0 += 4) {
    if (c0 + 12 <= num_chunks) prefetch_block(keys, c0 + 8, s);
    float best[4] = {-__builtin_huge_valf(), -__builtin_huge_valf(), -__builtin_huge_valf(),
                     -__builtin_huge_valf()};
    for (int32_t g = 0; g < s.num_key_heads; ++g) {
      const T* k[4];
      block_keys(keys, c0, num_chunks, g, s, k);
      const int32_t end = (g + 1) * s.group;
      for (int32_t h = g * s.group; h < end; h += 2) {
        const float* q0 = queries + h * s.len;
        const float* q1 = h + 1 < end ? q0 + s.len : q0;
        float v[8];
        dot4x2_generic<kMode>(k, q0, q1, s.len, v);
        for (int i = 0; i < 4; ++i) best[i] = std::max({best[i], v[2 * i], v[2 * i + 1]});
      }
    }
    const int64_t n = std::min<int64_t>(4, num_chunks - c0);
    for (int64_t i = 0; i < n; ++i) out[c0 + i] = best[i];
  }
}

#if LSA_X86_SIMD
/// max_over_heads_generic in AVX2/FMA.
template <DotMode kMode, class T>
LSA_TARGET_AVX2 inline void max_over_heads_avx2(const T* keys, int64_t num_chunks,
                                                const HeadLayout& s, const float* queries,
                                                float* out) noexcept {
  const HeadLayout layout = s;  // a local copy: the compiler need not reload it after stores
  for (int64_t c0 = 0; c0 < num_chunks; c0 += 4) {
    if (c0 + 12 <= num_chunks) prefetch_block(keys, c0 + 8, layout);
    __m256 best = _mm256_set1_ps(-__builtin_huge_valf());
    for (int32_t g = 0; g < layout.num_key_heads; ++g) {
      const T* k[4];
      block_keys(keys, c0, num_chunks, g, layout, k);
      const int32_t end = (g + 1) * layout.group;
      for (int32_t h = g * layout.group; h < end; h += 2) {
        const float* q0 = queries + h * layout.len;
        const float* q1 = h + 1 < end ? q0 + layout.len : q0;
        best = _mm256_max_ps(best, dot4x2_avx2<kMode>(k, q0, q1, layout.len));
      }
    }
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, best);
    const int64_t n = std::min<int64_t>(4, num_chunks - c0);
    for (int64_t i = 0; i < n; ++i) out[c0 + i] = std::max(lanes[2 * i], lanes[2 * i + 1]);
  }
}
#endif

/// Dispatches max_over_heads to the AVX2 or the portable kernel.
template <DotMode kMode, class T>
inline void max_over_heads(const T* keys, int64_t num_chunks, const HeadLayout& layout,
                           const float* queries, float* out, bool use_simd) noexcept {
#if LSA_X86_SIMD
  if (use_simd) return max_over_heads_avx2<kMode>(keys, num_chunks, layout, queries, out);
#endif
  (void)use_simd;
  max_over_heads_generic<kMode>(keys, num_chunks, layout, queries, out);
}

}  // namespace lsa::detail
