// Lightning logits for a tile of decoded chunk keys: sum_h w_h * relu(scale * q_h . k).
//
// Compute floor: H * D FMAs per chunk. A core with two 256-bit FMA pipes retires 16 fp32 FMAs per
// cycle, so H=64, D=128 needs >= 512 cycles per chunk (160 ns at 3.2 GHz); with two 512-bit pipes
// (AVX-512 on Zen 5, Sapphire Rapids) half that. The 132 B/chunk of fp8 keys is far below memory
// bandwidth at these rates, so the kernels aim at the FMA pipes.
//
// The main AVX2 kernel vectorizes across heads ("outer product" form): the query is transposed to
// [D][H] once per layer, and each step broadcasts one key value of 4 chunks against 16 heads: 8
// accumulators, 6 loads per 8 FMAs, no horizontal sums until all heads are done. When the
// transposed query does not fit its stack buffer, or without AVX2, the dot-product form (4 chunks
// x 2 heads per micro-kernel, horizontal sums per pair) is used instead. With AVX-512 the same
// outer-product form runs on 32 heads (two 16-float vectors) per step.
#pragma once

#include <algorithm>
#include <cstdint>

#include "lsa/detail/cpu_dispatch.hpp"
#include "lsa/detail/dot_kernels.hpp"

namespace lsa::detail {

/// Floats of the stack buffer holding one layer's transposed query (head_dim x heads rounded to
/// 8); 64 KiB covers H=128, D=128.
inline constexpr int64_t kTransposedQueryFloats = 16384;

/// Heads rounded up to a whole number of 8-float vectors.
constexpr int64_t padded_heads(int64_t num_heads) noexcept { return (num_heads + 7) / 8 * 8; }

/// logits[c] = sum_h w_h * relu(scales[c] * <tile row c, q_h>) for c < num_rows, where the tile
/// holds num_rows rows of len floats and num_rows is a multiple of 4.
inline void weighted_relu_logits_generic(const float* tile, int64_t num_rows, int64_t len,
                                         const float* queries, const float* weights,
                                         int32_t num_heads, const float* scales,
                                         float* logits) noexcept {
  for (int64_t c = 0; c < num_rows; ++c) logits[c] = 0.0f;
  for (int32_t h = 0; h < num_heads; h += 2) {
    const bool pair = h + 1 < num_heads;
    const float* q0 = queries + h * len;
    const float* q1 = pair ? q0 + len : q0;
    for (int64_t c = 0; c < num_rows; c += 4) {
      const float* k[4] = {tile + c * len, tile + (c + 1) * len, tile + (c + 2) * len,
                           tile + (c + 3) * len};
      float v[8];
      dot4x2_generic<DotMode::kDot>(k, q0, q1, len, v);
      for (int i = 0; i < 4; ++i) {
        float sum = weights[h] * std::max(scales[c + i] * v[2 * i], 0.0f);
        if (pair) sum += weights[h + 1] * std::max(scales[c + i] * v[2 * i + 1], 0.0f);
        logits[c + i] += sum;
      }
    }
  }
}

#if LSA_X86_SIMD
/// weighted_relu_logits_generic in AVX2/FMA, dot-product form; num_rows <= 4 * kMaxBlocks.
template <int kMaxBlocks>
LSA_TARGET_AVX2 inline void weighted_relu_logits_avx2(const float* tile, int64_t num_rows,
                                                      int64_t len, const float* queries,
                                                      const float* weights, int32_t num_heads,
                                                      const float* scales, float* logits) noexcept {
  const int64_t num_blocks = num_rows / 4;
  // Lane order of dot4x2_avx2 is [c0h0, c0h1, c1h0, c1h1, ...]: scales repeat per chunk.
  __m256 block_scale[kMaxBlocks];
  __m256 acc[kMaxBlocks];
  const __m256i pairs = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  for (int64_t b = 0; b < num_blocks; ++b) {
    block_scale[b] =
        _mm256_permutevar8x32_ps(_mm256_castps128_ps256(_mm_loadu_ps(scales + 4 * b)), pairs);
    acc[b] = _mm256_setzero_ps();
  }
  const __m256 zero = _mm256_setzero_ps();
  // Heads outer, chunks inner: a head pair's query rows stay in L1 while the tile passes by.
  for (int32_t h = 0; h < num_heads; h += 2) {
    const bool pair = h + 1 < num_heads;
    const float* q0 = queries + h * len;
    const float* q1 = pair ? q0 + len : q0;
    const float w1 = pair ? weights[h + 1] : 0.0f;
    const __m256 w = _mm256_setr_ps(weights[h], w1, weights[h], w1, weights[h], w1, weights[h], w1);
    // An unpaired last head's duplicate lane is zeroed, not just weighted by 0: inf * 0 is NaN.
    const __m256 keep = pair ? _mm256_castsi256_ps(_mm256_set1_epi32(-1))
                             : _mm256_castsi256_ps(_mm256_setr_epi32(-1, 0, -1, 0, -1, 0, -1, 0));
    for (int64_t b = 0; b < num_blocks; ++b) {
      const float* row = tile + 4 * b * len;
      const float* k[4] = {row, row + len, row + 2 * len, row + 3 * len};
      const __m256 v = dot4x2_avx2<DotMode::kDot>(k, q0, q1, len);
      const __m256 r = _mm256_and_ps(_mm256_max_ps(_mm256_mul_ps(v, block_scale[b]), zero), keep);
      acc[b] = _mm256_fmadd_ps(r, w, acc[b]);
    }
  }
  for (int64_t b = 0; b < num_blocks; ++b) {
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc[b]);
    for (int i = 0; i < 4; ++i) logits[4 * b + i] = lanes[2 * i] + lanes[2 * i + 1];
  }
}

/// Writes q [num_heads][len] transposed in blocks of 16 heads: block b (heads 16b ..) is
/// [len][16] floats at qt + 16 * b * len, the last block 8 or 16 wide, padded with zero heads.
/// Blocks keep the 16 heads that one pass reads contiguous, so they stay in L1 beside the tile.
inline void transpose_query(const float* q, int32_t num_heads, int64_t len, float* qt) noexcept {
  const int64_t padded = padded_heads(num_heads);
  for (int64_t h0 = 0; h0 < padded; h0 += 16) {
    const int64_t width = std::min<int64_t>(16, padded - h0);
    float* block = qt + h0 * len;
    for (int64_t d = 0; d < len; ++d) {
      for (int64_t j = 0; j < width; ++j) {
        block[d * width + j] = h0 + j < num_heads ? q[(h0 + j) * len + d] : 0.0f;
      }
    }
  }
}

/// For 4 tile rows and one block of 8 * kVecs transposed heads (kVecs is 1 or 2):
/// logit_acc[c] += w * relu(scales[c] * q . k_c), a vector of per-head partial logits per chunk.
template <int kVecs>
LSA_TARGET_AVX2 __attribute__((always_inline)) inline void outer_product_block(
    const float* rows, int64_t len, const float* qt, int64_t qt_stride, const float* scales,
    __m256 w0, __m256 w1, __m256* logit_acc) noexcept {
  // Written out (no arrays of vectors) so that every accumulator lives in a register.
  __m256 a00 = _mm256_setzero_ps(), a01 = _mm256_setzero_ps();
  __m256 a10 = _mm256_setzero_ps(), a11 = _mm256_setzero_ps();
  __m256 a20 = _mm256_setzero_ps(), a21 = _mm256_setzero_ps();
  __m256 a30 = _mm256_setzero_ps(), a31 = _mm256_setzero_ps();
  const float* r0 = rows;
  const float* r1 = rows + len;
  const float* r2 = rows + 2 * len;
  const float* r3 = rows + 3 * len;
  for (int64_t d = 0; d < len; ++d) {
    const float* q = qt + d * qt_stride;
    __m256 x0 = _mm256_loadu_ps(q);
    __m256 x1 = kVecs == 2 ? _mm256_loadu_ps(q + 8) : x0;
    // Keep the query in registers: GCC would otherwise reload it as an operand of every FMA.
    __asm__("" : "+x"(x0), "+x"(x1));
    __m256 b = _mm256_broadcast_ss(r0 + d);
    a00 = _mm256_fmadd_ps(b, x0, a00);
    if constexpr (kVecs == 2) a01 = _mm256_fmadd_ps(b, x1, a01);
    b = _mm256_broadcast_ss(r1 + d);
    a10 = _mm256_fmadd_ps(b, x0, a10);
    if constexpr (kVecs == 2) a11 = _mm256_fmadd_ps(b, x1, a11);
    b = _mm256_broadcast_ss(r2 + d);
    a20 = _mm256_fmadd_ps(b, x0, a20);
    if constexpr (kVecs == 2) a21 = _mm256_fmadd_ps(b, x1, a21);
    b = _mm256_broadcast_ss(r3 + d);
    a30 = _mm256_fmadd_ps(b, x0, a30);
    if constexpr (kVecs == 2) a31 = _mm256_fmadd_ps(b, x1, a31);
  }
  const __m256 zero = _mm256_setzero_ps();
  auto fold = [&](int c, __m256 acc0, __m256 acc1) LSA_TARGET_AVX2 {
    const __m256 s = _mm256_broadcast_ss(scales + c);
    __m256 l = _mm256_fmadd_ps(_mm256_max_ps(_mm256_mul_ps(acc0, s), zero), w0, logit_acc[c]);
    if constexpr (kVecs == 2) {
      l = _mm256_fmadd_ps(_mm256_max_ps(_mm256_mul_ps(acc1, s), zero), w1, l);
    } else {
      (void)acc1, (void)w1;
    }
    logit_acc[c] = l;
  };
  fold(0, a00, a01);
  fold(1, a10, a11);
  fold(2, a20, a21);
  fold(3, a30, a31);
}

/// Sum of the 8 lanes.
LSA_TARGET_AVX2 inline float horizontal_sum(__m256 v) noexcept {
  __m128 x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  x = _mm_add_ps(x, _mm_movehl_ps(x, x));
  x = _mm_add_ss(x, _mm_movehdup_ps(x));
  return _mm_cvtss_f32(x);
}

/// 8 head weights from head h on; heads past num_heads read as 0.
LSA_TARGET_AVX2 inline __m256 load_head_weights8(const float* weights, int32_t num_heads,
                                                 int64_t h) noexcept {
  alignas(32) static constexpr int32_t kLanes[16] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                     0,  0,  0,  0,  0,  0,  0,  0};
  const int64_t n = std::clamp<int64_t>(num_heads - h, 0, 8);
  return _mm256_maskload_ps(n > 0 ? weights + h : weights,
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kLanes + 8 - n)));
}

/// Heads [first, padded) of the transposed query (first a multiple of 16) in 16- and 8-head
/// blocks: logit_acc[c] += per-lane w * relu(scales[c] * q . k_c).
LSA_TARGET_AVX2 inline void transposed_heads_avx2(const float* tile, int64_t num_rows, int64_t len,
                                                  const float* qt, const float* weights,
                                                  int32_t num_heads, int64_t first, int64_t padded,
                                                  const float* scales, __m256* logit_acc) noexcept {
  // Heads outer, chunks inner: 16 heads' query columns stay in L1 while the tile passes by.
  for (int64_t h = first; h < padded; h += 16) {
    const __m256 w0 = load_head_weights8(weights, num_heads, h);
    const float* block = qt + h * len;
    if (h + 16 <= padded) {
      const __m256 w1 = load_head_weights8(weights, num_heads, h + 8);
      for (int64_t c = 0; c < num_rows; c += 4) {
        outer_product_block<2>(tile + c * len, len, block, 16, scales + c, w0, w1, logit_acc + c);
      }
    } else {
      for (int64_t c = 0; c < num_rows; c += 4) {
        outer_product_block<1>(tile + c * len, len, block, 8, scales + c, w0, w0, logit_acc + c);
      }
    }
  }
}

/// outer_product_block with AVX-512 for kRows (4 or 8) tile rows and 32 heads: two 16-head
/// blocks of the transposed query ([len][16] each). 8 rows: 16 accumulators, 2 query loads and 8
/// broadcasts per 16 FMAs.
template <int kRows>
LSA_TARGET_AVX512 __attribute__((always_inline)) inline void outer_product_block_avx512(
    const float* rows, int64_t len, const float* block0, const float* block1, const float* scales,
    __m512 w0, __m512 w1, __m512* logit_acc) noexcept {
  static_assert(kRows == 4 || kRows == 8);
  __m512 acc0[kRows], acc1[kRows];
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  for (int64_t d = 0; d < len; ++d) {
    __m512 x0 = _mm512_loadu_ps(block0 + d * 16);
    __m512 x1 = _mm512_loadu_ps(block1 + d * 16);
    __asm__("" : "+v"(x0), "+v"(x1));
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const __m512 b = _mm512_set1_ps(rows[r * len + d]);
      acc0[r] = _mm512_fmadd_ps(b, x0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(b, x1, acc1[r]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int r = 0; r < kRows; ++r) {
    const __m512 s = _mm512_set1_ps(scales[r]);
    // maskz_max: GCC 12's unmasked _mm512_max_ps trips -Wmaybe-uninitialized in its own header.
    const __m512 l = _mm512_fmadd_ps(_mm512_maskz_max_ps(0xFFFF, _mm512_mul_ps(acc0[r], s), zero),
                                     w0, logit_acc[r]);
    logit_acc[r] = _mm512_fmadd_ps(_mm512_maskz_max_ps(0xFFFF, _mm512_mul_ps(acc1[r], s), zero), w1, l);
  }
}

/// weighted_relu_logits_generic in AVX2/FMA, outer-product form, from the query transposed by
/// transpose_query; num_rows <= kMaxRows.
template <int kMaxRows>
LSA_TARGET_AVX2 inline void weighted_relu_logits_transposed_avx2(
    const float* tile, int64_t num_rows, int64_t len, const float* qt, const float* weights,
    int32_t num_heads, const float* scales, float* logits) noexcept {
  const int64_t padded = padded_heads(num_heads);
  __m256 logit_acc[kMaxRows];
  for (int64_t c = 0; c < num_rows; ++c) logit_acc[c] = _mm256_setzero_ps();
  transposed_heads_avx2(tile, num_rows, len, qt, weights, num_heads, 0, padded, scales, logit_acc);
  for (int64_t c = 0; c < num_rows; ++c) logits[c] = horizontal_sum(logit_acc[c]);
}

/// weighted_relu_logits_transposed_avx2 with AVX-512: 32 heads per pass; the last < 32 heads go
/// through the AVX2 blocks. num_rows <= kMaxRows.
template <int kMaxRows>
LSA_TARGET_AVX512 inline void weighted_relu_logits_transposed_avx512(
    const float* tile, int64_t num_rows, int64_t len, const float* qt, const float* weights,
    int32_t num_heads, const float* scales, float* logits) noexcept {
  const int64_t padded = padded_heads(num_heads);
  __m512 wide_acc[kMaxRows];
  __m256 narrow_acc[kMaxRows];
  for (int64_t c = 0; c < num_rows; ++c) {
    wide_acc[c] = _mm512_setzero_ps();
    narrow_acc[c] = _mm256_setzero_ps();
  }
  // Weights of heads past num_heads read as 0 (their transposed query lanes are 0 as well).
  auto load_weights = [&](int64_t h) LSA_TARGET_AVX512 {
    const int64_t n = std::clamp<int64_t>(num_heads - h, 0, 16);
    return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), n > 0 ? weights + h : weights);
  };
  int64_t h = 0;
  for (; h + 32 <= padded; h += 32) {
    const __m512 w0 = load_weights(h), w1 = load_weights(h + 16);
    const float* block0 = qt + h * len;
    const float* block1 = block0 + 16 * len;
    int64_t c = 0;
    for (; c + 8 <= num_rows; c += 8) {
      outer_product_block_avx512<8>(tile + c * len, len, block0, block1, scales + c, w0, w1,
                                    wide_acc + c);
    }
    if (c < num_rows) {  // num_rows is a multiple of 4
      outer_product_block_avx512<4>(tile + c * len, len, block0, block1, scales + c, w0, w1,
                                    wide_acc + c);
    }
  }
  if (h < padded) {
    transposed_heads_avx2(tile, num_rows, len, qt, weights, num_heads, h, padded, scales, narrow_acc);
  }
  for (int64_t c = 0; c < num_rows; ++c) {
    alignas(64) float lanes[16];  // (GCC 12's _mm512_reduce_add_ps warns like _mm512_max_ps)
    _mm512_store_ps(lanes, wide_acc[c]);
    float wide = 0.0f;
    for (const float x : lanes) wide += x;
    logits[c] = wide + horizontal_sum(narrow_acc[c]);
  }
}
#endif

}  // namespace lsa::detail
