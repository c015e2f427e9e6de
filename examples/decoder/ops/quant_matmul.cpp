// Quantized products, written once with Highway; this file includes itself once per SIMD target
// through hwy/foreach_target.h. Block layouts: quant.hpp.
#include "ops/quant_matmul.hpp"

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <vector>

#include "gguf.hpp"
#include "kernels.hpp"
#include "ops/weight_matrix.hpp"
#include "quant.hpp"
#include "thread_pool.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "ops/quant_matmul.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// After foreach_target.h, which includes this file again once per target:
#include <hwy/cache_control.h>
#include <hwy/highway.h>

#include "ops/reduce-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lsa_decode {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// At most 16 float lanes: a block's 16 quant bytes then decode as one vector of low nibbles and
// one of high nibbles on AVX-512, in two halves on AVX2.
using DF = hn::CappedTag<float, 16>;
using VF = hn::Vec<DF>;
using DI = hn::RebindToSigned<DF>;
using DU8 = hn::Rebind<uint8_t, DF>;
using DI8 = hn::Rebind<int8_t, DF>;
using DH = hn::Rebind<hwy::float16_t, DF>;

constexpr int64_t kBlock = 32;  // elements per Q4_0 / Q4_1 / Q8_0 block

const uint8_t* bytes(const std::byte* p) { return reinterpret_cast<const uint8_t*>(p); }

uint16_t half_bits(const std::byte* p) {
  uint16_t h;
  std::memcpy(&h, p, sizeof h);
  return h;
}

// A block's f16 scale as a float. F16C converts exactly; Highway's scalar emulation does not
// handle inf/NaN, so the scalar target uses quant.hpp's exact conversion.
HWY_INLINE float scale_at(const std::byte* p) {
#if HWY_TARGET == HWY_SCALAR
  return half_to_float(half_bits(p));
#else
  const hn::CappedTag<float, 1> d1;
  const hn::Rebind<hwy::float16_t, decltype(d1)> dh1;
  return hn::GetLane(hn::PromoteTo(d1, hn::LoadU(dh1, reinterpret_cast<const hwy::float16_t*>(p))));
#endif
}

// Q4_1's two f16 scales d and m (adjacent) as floats, converted together.
HWY_INLINE void scale_and_min_at(const std::byte* p, float& d, float& m) {
#if HWY_TARGET == HWY_SCALAR
  d = half_to_float(half_bits(p));
  m = half_to_float(half_bits(p + 2));
#else
  const hn::CappedTag<float, 2> d2;
  const hn::Rebind<hwy::float16_t, decltype(d2)> dh2;
  const auto v = hn::PromoteTo(d2, hn::LoadU(dh2, reinterpret_cast<const hwy::float16_t*>(p)));
  d = hn::GetLane(v);
  m = hn::ExtractLane(v, 1);
#endif
}

// Lanes(DF) consecutive halves as floats.
HWY_INLINE VF halves_at(DF df, const std::byte* p) {
#if HWY_TARGET == HWY_SCALAR
  return hn::Set(df, half_to_float(half_bits(p)));
#else
  return hn::PromoteTo(df, hn::LoadU(DH(), reinterpret_cast<const hwy::float16_t*>(p)));
#endif
}

// Each format: the quants of one block as floats, `lo`/`hi` lanes j..j+N of elements 0..15 and
// 16..31 (for Q8_0, `at` lanes j..j+N of 0..31), and whether it has a min (Q4_1's m).
struct Q4_0 {
  static constexpr int64_t kBytes = 18;
  static constexpr bool kHasMin = false;
  static HWY_INLINE void nibbles(DF df, const std::byte* block, size_t j, VF& lo, VF& hi) {
    const DI di;
    const auto q = hn::PromoteTo(di, hn::LoadU(DU8(), bytes(block) + 2 + j));
    lo = hn::ConvertTo(df, hn::Sub(hn::And(q, hn::Set(di, 0x0F)), hn::Set(di, 8)));
    hi = hn::ConvertTo(df, hn::Sub(hn::ShiftRight<4>(q), hn::Set(di, 8)));
  }
};

struct Q4_1 {
  static constexpr int64_t kBytes = 20;
  static constexpr bool kHasMin = true;
  static HWY_INLINE void nibbles(DF df, const std::byte* block, size_t j, VF& lo, VF& hi) {
    const DI di;
    const auto q = hn::PromoteTo(di, hn::LoadU(DU8(), bytes(block) + 4 + j));
    lo = hn::ConvertTo(df, hn::And(q, hn::Set(di, 0x0F)));
    hi = hn::ConvertTo(df, hn::ShiftRight<4>(q));
  }
};

struct Q8_0 {
  static constexpr int64_t kBytes = 34;
  static constexpr bool kHasMin = false;
  static HWY_INLINE VF at(DF df, const std::byte* block, size_t j) {
    const auto q =
        hn::PromoteTo(DI(), hn::LoadU(DI8(), reinterpret_cast<const int8_t*>(block) + 2 + j));
    return hn::ConvertTo(df, q);
  }
};

// Lane-wise sum over one block of q * x (x: the block's 32 activations).
template <class Format>
HWY_INLINE VF block_dot(DF df, const std::byte* block, const float* x) {
  const size_t N = hn::Lanes(df);
  if constexpr (std::is_same_v<Format, Q8_0>) {
    VF t = hn::Mul(Format::at(df, block, 0), hn::LoadU(df, x));
    for (size_t j = N; j < kBlock; j += N) {
      t = hn::MulAdd(Format::at(df, block, j), hn::LoadU(df, x + j), t);
    }
    return t;
  } else {
    VF t;
    for (size_t j = 0; j < kBlock / 2; j += N) {
      VF lo, hi;
      Format::nibbles(df, block, j, lo, hi);
      t = j == 0 ? hn::Mul(lo, hn::LoadU(df, x)) : hn::MulAdd(lo, hn::LoadU(df, x + j), t);
      t = hn::MulAdd(hi, hn::LoadU(df, x + kBlock / 2 + j), t);
    }
    return t;
  }
}

// How far ahead of the block being decoded its row is prefetched (past the end of a row is
// harmless: a prefetch never faults). Without it one thread streams the weights at about half
// the speed; 1 KiB ahead was the best of 256 B to 2 KiB on an AMD EPYC (Zen 4).
constexpr int64_t kPrefetchBytes = 1024;

// out[r] = x . row r for R rows of a block format: per block, the vector accumulator takes
// d * (q . x) and, for Q4_1, a scalar one m * sum(x). Rows are independent, so an output does not
// depend on which rows share its group.
template <class Format, int R>
HWY_INLINE void direct_rows(const float* x, const float* xsum, int64_t blocks,
                            const std::byte* const* rows, float* out) {
  const DF df;
  VF acc[R];
  float min_acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) {
    acc[r] = hn::Zero(df);
    min_acc[r] = 0.0f;
  }
  for (int64_t b = 0; b < blocks; ++b) {
    const float* xb = x + b * kBlock;
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) {
      const std::byte* block = rows[r] + b * Format::kBytes;
      hwy::Prefetch(block + kPrefetchBytes);
      const VF t = block_dot<Format>(df, block, xb);
      if constexpr (Format::kHasMin) {
        float d, m;
        scale_and_min_at(block, d, m);
        acc[r] = hn::MulAdd(hn::Set(df, d), t, acc[r]);
        min_acc[r] += m * xsum[b];
      } else {
        acc[r] = hn::MulAdd(hn::Set(df, scale_at(block)), t, acc[r]);
      }
    }
  }
  static_assert(R == 4, "rows reduce 4 at a time");
  sum_lanes4(df, acc[0], acc[1], acc[2], acc[3], out);
  for (int r = 0; r < R; ++r) out[r] += min_acc[r];
}

// The same for F16 rows of `cols` elements (the tail past the last full vector in scalar code).
template <int R>
HWY_INLINE void direct_rows_f16(const float* x, int64_t cols, const std::byte* const* rows,
                                float* out) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  VF acc[R];
#pragma GCC unroll 4
  for (int r = 0; r < R; ++r) acc[r] = hn::Zero(df);
  int64_t k = 0;
  for (; k + N <= cols; k += N) {
    const VF xv = hn::LoadU(df, x + k);
#pragma GCC unroll 4
    for (int r = 0; r < R; ++r) acc[r] = hn::MulAdd(halves_at(df, rows[r] + 2 * k), xv, acc[r]);
  }
  static_assert(R == 4, "rows reduce 4 at a time");
  sum_lanes4(df, acc[0], acc[1], acc[2], acc[3], out);
  for (int r = 0; r < R; ++r) {
    for (int64_t t = k; t < cols; ++t) out[r] += half_to_float(half_bits(rows[r] + 2 * t)) * x[t];
  }
}

constexpr int kDirectRows = 4;  // weight rows decoded together (independent accumulators)

template <class Format>
void direct_range_blocks(const float* x, int64_t n, const std::byte* base, int64_t row_bytes,
                         int64_t cols, int64_t o_begin, int64_t o_end, float* y, int64_t ldy) {
  const int64_t blocks = cols / kBlock;
  thread_local std::vector<float> xsum;
  if constexpr (Format::kHasMin) {
    xsum.resize(static_cast<size_t>(n * blocks));
    for (int64_t i = 0; i < n * blocks; ++i) {
      float s = 0.0f;
      for (int64_t e = 0; e < kBlock; ++e) s += x[i * kBlock + e];
      xsum[i] = s;
    }
  }
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kDirectRows) {
    const int nw = static_cast<int>(std::min<int64_t>(kDirectRows, o_end - o0));
    const std::byte* rows[kDirectRows];
    for (int r = 0; r < kDirectRows; ++r) rows[r] = base + (o0 + std::min(r, nw - 1)) * row_bytes;
    for (int64_t i = 0; i < n; ++i) {
      float out[kDirectRows];
      direct_rows<Format, kDirectRows>(
          x + i * cols, Format::kHasMin ? xsum.data() + i * blocks : nullptr, blocks, rows, out);
      for (int r = 0; r < nw; ++r) y[i * ldy + o0 + r] = out[r];
    }
  }
}

void direct_range_f16(const float* x, int64_t n, const std::byte* base, int64_t row_bytes,
                      int64_t cols, int64_t o_begin, int64_t o_end, float* y, int64_t ldy) {
  for (int64_t o0 = o_begin; o0 < o_end; o0 += kDirectRows) {
    const int nw = static_cast<int>(std::min<int64_t>(kDirectRows, o_end - o0));
    const std::byte* rows[kDirectRows];
    for (int r = 0; r < kDirectRows; ++r) rows[r] = base + (o0 + std::min(r, nw - 1)) * row_bytes;
    for (int64_t i = 0; i < n; ++i) {
      float out[kDirectRows];
      direct_rows_f16<kDirectRows>(x + i * cols, cols, rows, out);
      for (int r = 0; r < nw; ++r) y[i * ldy + o0 + r] = out[r];
    }
  }
}

// F32 rows go to the fp32 kernel (kernels.hpp), which has no blocks to decode.
void direct_range(GgmlType type, const float* x, int64_t n, const std::byte* base,
                  int64_t row_bytes, int64_t cols, int64_t o_begin, int64_t o_end, float* y,
                  int64_t ldy) {
  switch (type) {
    case GgmlType::kQ4_0:
      return direct_range_blocks<Q4_0>(x, n, base, row_bytes, cols, o_begin, o_end, y, ldy);
    case GgmlType::kQ4_1:
      return direct_range_blocks<Q4_1>(x, n, base, row_bytes, cols, o_begin, o_end, y, ldy);
    case GgmlType::kQ8_0:
      return direct_range_blocks<Q8_0>(x, n, base, row_bytes, cols, o_begin, o_end, y, ldy);
    case GgmlType::kF16:
      return direct_range_f16(x, n, base, row_bytes, cols, o_begin, o_end, y, ldy);
    case GgmlType::kF32:
      break;
  }
}

// Rows of a block format as floats: Q4_1 as fma(q, d, m), the others as d * q; every product of an
// f16 scale and a quant is exact in float, so this is quant.hpp's dequantize bit for bit.
template <class Format>
void dequantize_blocks(const std::byte* base, int64_t row_bytes, int64_t cols, int64_t num_rows,
                       float* out) {
  const DF df;
  const size_t N = hn::Lanes(df);
  const int64_t blocks = cols / kBlock;
  for (int64_t r = 0; r < num_rows; ++r) {
    for (int64_t b = 0; b < blocks; ++b) {
      const std::byte* block = base + r * row_bytes + b * Format::kBytes;
      float* dst = out + r * cols + b * kBlock;
      const VF d = hn::Set(df, scale_at(block));
      if constexpr (std::is_same_v<Format, Q8_0>) {
        for (size_t j = 0; j < kBlock; j += N)
          hn::StoreU(hn::Mul(Format::at(df, block, j), d), df, dst + j);
      } else {
        const VF m = Format::kHasMin ? hn::Set(df, scale_at(block + 2)) : hn::Zero(df);
        for (size_t j = 0; j < kBlock / 2; j += N) {
          VF lo, hi;
          Format::nibbles(df, block, j, lo, hi);
          hn::StoreU(Format::kHasMin ? hn::MulAdd(lo, d, m) : hn::Mul(lo, d), df, dst + j);
          hn::StoreU(Format::kHasMin ? hn::MulAdd(hi, d, m) : hn::Mul(hi, d), df,
                     dst + kBlock / 2 + j);
        }
      }
    }
  }
}

void dequantize_f16(const std::byte* base, int64_t cols, int64_t num_rows, float* out) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t r = 0; r < num_rows; ++r) {
    const std::byte* row = base + r * cols * 2;
    int64_t k = 0;
    for (; k + N <= cols; k += N) hn::StoreU(halves_at(df, row + 2 * k), df, out + r * cols + k);
    for (; k < cols; ++k) out[r * cols + k] = half_to_float(half_bits(row + 2 * k));
  }
}

void dequantize_range(GgmlType type, const std::byte* base, int64_t row_bytes, int64_t cols,
                      int64_t num_rows, float* out) {
  switch (type) {
    case GgmlType::kQ4_0:
      return dequantize_blocks<Q4_0>(base, row_bytes, cols, num_rows, out);
    case GgmlType::kQ4_1:
      return dequantize_blocks<Q4_1>(base, row_bytes, cols, num_rows, out);
    case GgmlType::kQ8_0:
      return dequantize_blocks<Q8_0>(base, row_bytes, cols, num_rows, out);
    case GgmlType::kF16:
      return dequantize_f16(base, cols, num_rows, out);
    case GgmlType::kF32:
      if (num_rows > 0)
        std::memcpy(out, base, static_cast<size_t>(num_rows * cols) * sizeof(float));
      return;
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace lsa_decode
HWY_AFTER_NAMESPACE();

#if HWY_ONCE

namespace lsa_decode {

HWY_EXPORT(direct_range);
HWY_EXPORT(dequantize_range);

namespace {

const float* f32_rows(const WeightMatrix& w, int64_t r) {
  return reinterpret_cast<const float*>(w.row(r));
}

}  // namespace

void matmul_direct(const float* x, int64_t n, const WeightMatrix& w, int64_t o_begin, int64_t o_end,
                   float* y, int64_t ldy) {
  if (o_begin >= o_end || n <= 0) return;
  if (w.type() == GgmlType::kF32) {
    return matmul_rows(x, n, w.cols(), f32_rows(w, o_begin), o_end - o_begin, w.cols(), y + o_begin,
                       ldy);
  }
  HWY_DYNAMIC_DISPATCH(direct_range)
  (w.type(), x, n, w.row(0), w.row_bytes(), w.cols(), o_begin, o_end, y, ldy);
}

void dequantize_rows(const WeightMatrix& w, int64_t r_begin, int64_t r_end, float* out) {
  if (r_begin >= r_end) return;
  HWY_DYNAMIC_DISPATCH(dequantize_range)
  (w.type(), w.row(r_begin), w.row_bytes(), w.cols(), r_end - r_begin, out);
}

void matmul_tiled(const float* x, int64_t n, const WeightMatrix& w, int64_t o_begin, int64_t o_end,
                  float* y, int64_t ldy) {
  if (o_begin >= o_end || n <= 0) return;
  // 64 weight rows at a time are decoded and transposed into a panel [cols][64] (up to 384 KiB
  // for 1536 columns, in L2), so that matmul_nn runs the product as broadcasts of x times
  // vectors of outputs: no lane sums, every load of the panel feeds several rows of x.
  constexpr int64_t kTileRows = 64;
  const int64_t cols = w.cols();
  thread_local std::vector<float> rows, panel;
  rows.resize(static_cast<size_t>(kTileRows * cols));
  panel.resize(static_cast<size_t>(kTileRows * cols));
  for (int64_t ob = o_begin; ob < o_end; ob += kTileRows) {
    const int64_t oe = std::min(ob + kTileRows, o_end);
    dequantize_rows(w, ob, oe, rows.data());
    for (int64_t o = 0; o < oe - ob; ++o) {
      for (int64_t k = 0; k < cols; ++k) panel[k * kTileRows + o] = rows[o * cols + k];
    }
    matmul_nn(x, n, cols, cols, panel.data(), oe - ob, kTileRows, y + ob, ldy);
  }
}

void matmul(ThreadPool& pool, const float* x, int64_t n, const WeightMatrix& w, float* y) {
  const bool direct = n <= kDirectMaxRows;
  pool.parallel_for(w.rows(), 16, [&](int64_t o_begin, int64_t o_end) {
    if (direct) {
      matmul_direct(x, n, w, o_begin, o_end, y, w.rows());
    } else {
      matmul_tiled(x, n, w, o_begin, o_end, y, w.rows());
    }
  });
}

}  // namespace lsa_decode

#endif  // HWY_ONCE
