// The fp32 kernels (some also reading f16 operands), written once with Highway and compiled for
// each SIMD target (ops/targets.hpp): this file includes itself once per target through
// hwy/foreach_target.h.
#include "kernels.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <type_traits>

#include "ops/f16.hpp"
#include "quant.hpp"
#include "thread_pool.hpp"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// After foreach_target.h, which includes this file again once per target:
#include <hwy/cache_control.h>
#include <hwy/contrib/math/math-inl.h>
#include <hwy/highway.h>

#include "ops/reduce-inl.h"

HWY_BEFORE_NAMESPACE();
namespace lsa_decode {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
using DH = hn::Rebind<hwy::float16_t, DF>;  // as many f16 lanes as DF has floats

// One vector of floats from p: fp32 as is, f16 widened (exact).
HWY_INLINE VF load(DF df, const float* p) { return hn::LoadU(df, p); }
HWY_INLINE VF load(DF df, const hwy::float16_t* p) { return hn::PromoteTo(df, hn::LoadU(DH(), p)); }

// Lanes [0, n) from p, the others 0; reads nothing past p + n. f16 goes through a buffer: Highway's
// masked loads of 16-bit lanes may read the whole vector on AVX2.
HWY_INLINE VF load_first(DF df, const float* p, size_t n) {
  return hn::MaskedLoad(hn::FirstN(df, n), df, p);
}
HWY_INLINE VF load_first(DF df, const hwy::float16_t* p, size_t n) {
  HWY_ALIGN hwy::float16_t buf[HWY_MAX_BYTES / sizeof(float)] = {};
  std::copy_n(p, n, buf);
  return hn::PromoteTo(df, hn::Load(DH(), buf));
}

// x-rows per block of the dot-product kernel: AVX-512's 32 registers hold 4 x 4 accumulators plus
// the operands, AVX2's 16 hold 3 x 4.
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int kMaxRows = 4;
#else
constexpr int kMaxRows = 3;
#endif
constexpr int kMaxCols = 8;

// out[i][o] = x[i] . w[o] for i < R, o < C over d elements: vectors along k, one accumulator per
// pair, summed across lanes at the end. Fully unrolled so that the accumulators stay in registers.
template <int R, int C, class TW>
HWY_INLINE void dot_block(const float* const* x, const TW* const* w, int64_t d,
                          float out[kMaxRows][kMaxCols]) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  VF acc[R][C];
#pragma GCC unroll 8
  for (int i = 0; i < R; ++i)
#pragma GCC unroll 8
    for (int o = 0; o < C; ++o) acc[i][o] = hn::Zero(df);
  int64_t k = 0;
  for (; k + N <= d; k += N) {
    VF xv[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) xv[i] = hn::LoadU(df, x[i] + k);
#pragma GCC unroll 8
    for (int o = 0; o < C; ++o) {
      const VF wv = load(df, w[o] + k);
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[i][o] = hn::MulAdd(xv[i], wv, acc[i][o]);
    }
  }
  if (k < d) {
    const auto m = hn::FirstN(df, static_cast<size_t>(d - k));
    VF xv[R];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) xv[i] = hn::MaskedLoad(m, df, x[i] + k);
#pragma GCC unroll 8
    for (int o = 0; o < C; ++o) {
      const VF wv = load_first(df, w[o] + k, static_cast<size_t>(d - k));
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) acc[i][o] = hn::MulAdd(xv[i], wv, acc[i][o]);
    }
  }
  static_assert(C % 4 == 0, "blocks reduce 4 columns at a time");
  for (int i = 0; i < R; ++i) {
    for (int o = 0; o < C; o += 4) {
      sum_lanes4(df, acc[i][o], acc[i][o + 1], acc[i][o + 2], acc[i][o + 3], &out[i][o]);
    }
  }
}

// Outputs [o_begin, o_end) of y = x w^T with R x C blocks, in tiles of 64 outputs x 64 rows so
// that both operands' tiles stay in L2 while the blocks run. Rows past the end repeat the last
// one and are not stored, so every output is computed the same way wherever its block falls.
template <int R, int C, class TW>
void matmul_range_with(const float* x, int64_t n, int64_t d_in, int64_t ldx, const TW* w,
                       int64_t ldw, float* y, int64_t ldy, int64_t o_begin, int64_t o_end) {
  constexpr int64_t kTile = 64;
  for (int64_t ob = o_begin; ob < o_end; ob += kTile) {
    const int64_t oe = std::min(ob + kTile, o_end);
    for (int64_t ib = 0; ib < n; ib += kTile) {
      const int64_t ie = std::min(ib + kTile, n);
      for (int64_t i0 = ib; i0 < ie; i0 += R) {
        const int nx = static_cast<int>(std::min<int64_t>(R, ie - i0));
        const float* xs[R];
        for (int i = 0; i < R; ++i) xs[i] = x + (i0 + std::min(i, nx - 1)) * ldx;
        for (int64_t o0 = ob; o0 < oe; o0 += C) {
          const int nw = static_cast<int>(std::min<int64_t>(C, oe - o0));
          const TW* ws[C];
          for (int o = 0; o < C; ++o) ws[o] = w + (o0 + std::min(o, nw - 1)) * ldw;
          float out[kMaxRows][kMaxCols];
          dot_block<R, C, TW>(xs, ws, d_in, out);
          for (int i = 0; i < nx; ++i)
            for (int o = 0; o < nw; ++o) y[(i0 + i) * ldy + o0 + o] = out[i][o];
        }
      }
    }
  }
}

// Asks for rows [0, rows) of `cols` elements, `ld` apart, when they are few (attention reads one
// KV page of short, strided rows per call; requesting all of its lines at once overlaps their
// misses instead of meeting them one block at a time).
template <class T>
HWY_INLINE void prefetch_rows(const T* p, int64_t rows, int64_t cols, int64_t ld) {
  constexpr int64_t kMaxBytes = 16384;  // a quarter of L1
  constexpr int64_t kLine = 64 / sizeof(T);
  if (rows * cols * int64_t{sizeof(T)} > kMaxBytes) return;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; c += kLine) hwy::Prefetch(p + r * ld + c);
  }
}

// One x-row (decode) streams the weights once with 1 x 8 blocks; more rows share each weight
// load across up to kMaxRows rows.
template <class TW>
void matmul_range_of(const float* x, int64_t n, int64_t d_in, int64_t ldx, const TW* w, int64_t ldw,
                     float* y, int64_t ldy, int64_t o_begin, int64_t o_end) {
  prefetch_rows(w + o_begin * ldw, o_end - o_begin, d_in, ldw);
  if (n == 1) {
    matmul_range_with<1, 8>(x, n, d_in, ldx, w, ldw, y, ldy, o_begin, o_end);
  } else if (n == 2) {
    matmul_range_with<2, 4>(x, n, d_in, ldx, w, ldw, y, ldy, o_begin, o_end);
  } else if (n == 3 || kMaxRows == 3) {
    matmul_range_with<3, 4>(x, n, d_in, ldx, w, ldw, y, ldy, o_begin, o_end);
  } else {
    matmul_range_with<kMaxRows, 4>(x, n, d_in, ldx, w, ldw, y, ldy, o_begin, o_end);
  }
}

void matmul_range(const float* x, int64_t n, int64_t d_in, int64_t ldx, const float* w, int64_t ldw,
                  float* y, int64_t ldy, int64_t o_begin, int64_t o_end) {
  matmul_range_of(x, n, d_in, ldx, w, ldw, y, ldy, o_begin, o_end);
}

void matmul_range_f16(const float* x, int64_t n, int64_t d_in, int64_t ldx, const hwy::float16_t* w,
                      int64_t ldw, float* y, int64_t ldy, int64_t o_begin, int64_t o_end) {
  matmul_range_of(x, n, d_in, ldx, w, ldw, y, ldy, o_begin, o_end);
}

// Rows x vectors of columns per block of matmul_nn: per k, kNnCols loads of b and kNnRows
// broadcasts of x feed kNnRows * kNnCols FMAs, with the accumulators and operands in registers
// (32 on AVX-512, 16 on AVX2).
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
constexpr int kNnRows = 6, kNnCols = 4;
#else
constexpr int kNnRows = 6, kNnCols = 2;
#endif

// y rows yr[0..R) = x rows xr[0..R) times b over k, for the C vectors of columns at b (`left` of
// them inside the matrix; kFull: all of them, no masks).
// kAdd: y += x b instead of y = x b.
template <int R, int C, bool kFull, bool kAdd, class TB>
HWY_INLINE void matmul_nn_block(const float* const* xr, int64_t k, const TB* b, int64_t left,
                                int64_t ldb, float* const* yr) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  hn::Mask<DF> mask[C];
  for (int c = 0; c < C; ++c) {
    mask[c] = hn::FirstN(df, static_cast<size_t>(std::clamp<int64_t>(left - c * N, 0, N)));
  }
  VF acc[R][C];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      if constexpr (!kAdd) {
        acc[r][c] = hn::Zero(df);
      } else if constexpr (kFull) {
        acc[r][c] = hn::LoadU(df, yr[r] + c * N);
      } else {
        acc[r][c] = hn::MaskedLoad(mask[c], df, yr[r] + c * N);
      }
    }
  for (int64_t kk = 0; kk < k; ++kk) {
    const TB* brow = b + kk * ldb;
    VF bv[C];
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      if constexpr (kFull) {
        bv[c] = load(df, brow + c * N);
      } else if constexpr (std::is_same_v<TB, float>) {
        bv[c] = hn::MaskedLoad(mask[c], df, brow + c * N);
      } else {
        bv[c] = load_first(df, brow + c * N,
                           static_cast<size_t>(std::clamp<int64_t>(left - c * N, 0, N)));
      }
    }
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const VF s = hn::Set(df, xr[r][kk]);
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c) acc[r][c] = hn::MulAdd(s, bv[c], acc[r][c]);
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      if (kFull) {
        hn::StoreU(acc[r][c], df, yr[r] + c * N);
      } else {
        hn::BlendedStore(acc[r][c], mask[c], df, yr[r] + c * N);
      }
    }
  }
}

// The block for `rows` (1..R) rows: no work on rows past the end (decode has 3 query heads per
// KV head, fewer than a block).
template <int R, bool kFull, bool kAdd, class TB>
HWY_INLINE void matmul_nn_rows(int rows, const float* const* xr, int64_t k, const TB* b,
                               int64_t left, int64_t ldb, float* const* yr) {
  if constexpr (R > 1) {
    if (rows < R) return matmul_nn_rows<R - 1, kFull, kAdd>(rows, xr, k, b, left, ldb, yr);
  }
  matmul_nn_block<R, kNnCols, kFull, kAdd>(xr, k, b, left, ldb, yr);
}

template <bool kAdd, class TB>
void matmul_nn_of(const float* x, int64_t n, int64_t k, int64_t ldx, const TB* b, int64_t m,
                  int64_t ldb, float* y, int64_t ldy) {
  const int64_t width = kNnCols * static_cast<int64_t>(hn::Lanes(DF()));
  prefetch_rows(b, k, m, ldb);
  for (int64_t j0 = 0; j0 < m; j0 += width) {
    for (int64_t i0 = 0; i0 < n; i0 += kNnRows) {
      const int rows = static_cast<int>(std::min<int64_t>(kNnRows, n - i0));
      const float* xr[kNnRows];
      float* yr[kNnRows];
      for (int r = 0; r < rows; ++r) {
        xr[r] = x + (i0 + r) * ldx;
        yr[r] = y + (i0 + r) * ldy + j0;
      }
      if (m - j0 >= width) {
        matmul_nn_rows<kNnRows, true, kAdd>(rows, xr, k, b + j0, m - j0, ldb, yr);
      } else {
        matmul_nn_rows<kNnRows, false, kAdd>(rows, xr, k, b + j0, m - j0, ldb, yr);
      }
    }
  }
}

void matmul_nn(const float* x, int64_t n, int64_t k, int64_t ldx, const float* b, int64_t m,
               int64_t ldb, float* y, int64_t ldy) {
  matmul_nn_of<false>(x, n, k, ldx, b, m, ldb, y, ldy);
}

void matmul_nn_f16(const float* x, int64_t n, int64_t k, int64_t ldx, const hwy::float16_t* b,
                   int64_t m, int64_t ldb, float* y, int64_t ldy) {
  matmul_nn_of<false>(x, n, k, ldx, b, m, ldb, y, ldy);
}

void matmul_nn_add(const float* x, int64_t n, int64_t k, int64_t ldx, const float* b, int64_t m,
                   int64_t ldb, float* y, int64_t ldy) {
  matmul_nn_of<true>(x, n, k, ldx, b, m, ldb, y, ldy);
}

void matmul_nn_add_f16(const float* x, int64_t n, int64_t k, int64_t ldx, const hwy::float16_t* b,
                       int64_t m, int64_t ldb, float* y, int64_t ldy) {
  matmul_nn_of<true>(x, n, k, ldx, b, m, ldb, y, ldy);
}

// Rounds to binary16, ties to even. Highway's DemoteTo does so where the CPU converts (F16C on
// AVX2 and AVX-512); its portable fallback truncates, so the scalar target rounds here instead,
// and every target stores the same bits.
void to_f16(const float* in, hwy::float16_t* out, int64_t n) {
#if HWY_TARGET == HWY_SCALAR || HWY_TARGET == HWY_EMU128
  for (int64_t i = 0; i < n; ++i) out[i] = f16_nearest_even(in[i]);
#else
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  int64_t i = 0;
  for (; i + N <= n; i += N) hn::StoreU(hn::DemoteTo(DH(), hn::LoadU(df, in + i)), DH(), out + i);
  for (; i < n; ++i) out[i] = f16_nearest_even(in[i]);
#endif
}

// Partial sums of the softmax are flushed into a double every this many vectors, so that long
// rows lose no more precision than short ones.
constexpr int kFlushVectors = 64;

// max(start, x[0..n)).
HWY_INLINE float max_of(const float* x, int64_t n, float start) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  const VF vstart = hn::Set(df, start);
  VF vmax = vstart;
  int64_t k = 0;
  for (; k + N <= n; k += N) vmax = hn::Max(vmax, hn::LoadU(df, x + k));
  if (k < n) {
    const auto m = hn::FirstN(df, static_cast<size_t>(n - k));
    vmax = hn::Max(vmax, hn::IfThenElse(m, hn::MaskedLoad(m, df, x + k), vstart));
  }
  return hn::GetLane(hn::MaxOfLanes(df, vmax));
}

// x[i] = exp(x[i] - shift) in place; returns their sum.
HWY_INLINE double exp_shifted_sum(float* x, int64_t n, float shift) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  const VF vs = hn::Set(df, shift);
  double sum = 0.0;
  VF vsum = hn::Zero(df);
  int pending = 0;
  int64_t k = 0;
  for (; k + N <= n; k += N) {
    const VF e = hn::Exp(df, hn::Sub(hn::LoadU(df, x + k), vs));
    hn::StoreU(e, df, x + k);
    vsum = hn::Add(vsum, e);
    if (++pending == kFlushVectors) {
      sum += hn::GetLane(hn::SumOfLanes(df, vsum));
      vsum = hn::Zero(df);
      pending = 0;
    }
  }
  if (k < n) {
    const auto m = hn::FirstN(df, static_cast<size_t>(n - k));
    const VF e = hn::IfThenElseZero(m, hn::Exp(df, hn::Sub(hn::MaskedLoad(m, df, x + k), vs)));
    hn::BlendedStore(e, m, df, x + k);
    vsum = hn::Add(vsum, e);
  }
  return sum + hn::GetLane(hn::SumOfLanes(df, vsum));
}

double softmax(float* x, int64_t n) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  const float mx = max_of(x, n, -std::numeric_limits<float>::infinity());
  const double sum = exp_shifted_sum(x, n, mx);
  const VF inv = hn::Set(df, static_cast<float>(1.0 / sum));
  int64_t k = 0;
  for (; k + N <= n; k += N) hn::StoreU(hn::Mul(hn::LoadU(df, x + k), inv), df, x + k);
  if (k < n) {
    const auto m = hn::FirstN(df, static_cast<size_t>(n - k));
    hn::BlendedStore(hn::Mul(hn::MaskedLoad(m, df, x + k), inv), m, df, x + k);
  }
  return std::log(sum) + mx;
}

float exp_sum(float* x, int64_t n, float* running_max) {
  *running_max = max_of(x, n, *running_max);
  return static_cast<float>(exp_shifted_sum(x, n, *running_max));
}

// silu(g) * u = g / (1 + exp(-g)) * u. exp's argument is capped at 88 (exp(88) is finite in
// float; Highway's Exp is exact to 1 ULP only up to 104): below g = -88, silu(g) is below 1e-36
// either way.
HWY_INLINE VF silu_times(const DF df, VF g, VF u) {
  const VF e = hn::Exp(df, hn::Min(hn::Neg(g), hn::Set(df, 88.0f)));
  return hn::Mul(hn::Div(g, hn::Add(hn::Set(df, 1.0f), e)), u);
}

void silu_mul(float* gate, const float* up, int64_t n) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  int64_t k = 0;
  for (; k + N <= n; k += N) {
    hn::StoreU(silu_times(df, hn::LoadU(df, gate + k), hn::LoadU(df, up + k)), df, gate + k);
  }
  if (k < n) {
    const auto m = hn::FirstN(df, static_cast<size_t>(n - k));
    const VF r = silu_times(df, hn::MaskedLoad(m, df, gate + k), hn::MaskedLoad(m, df, up + k));
    hn::BlendedStore(r, m, df, gate + k);
  }
}

float dot(const float* a, const float* b, int64_t n) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  VF acc = hn::Zero(df);
  int64_t k = 0;
  for (; k + N <= n; k += N) acc = hn::MulAdd(hn::LoadU(df, a + k), hn::LoadU(df, b + k), acc);
  if (k < n) {
    const auto m = hn::FirstN(df, static_cast<size_t>(n - k));
    acc = hn::MulAdd(hn::MaskedLoad(m, df, a + k), hn::MaskedLoad(m, df, b + k), acc);
  }
  return hn::GetLane(hn::SumOfLanes(df, acc));
}

void axpy(float a, const float* x, float* y, int64_t n) {
  const DF df;
  const auto N = static_cast<int64_t>(hn::Lanes(df));
  const VF va = hn::Set(df, a);
  int64_t k = 0;
  for (; k + N <= n; k += N) {
    hn::StoreU(hn::MulAdd(va, hn::LoadU(df, x + k), hn::LoadU(df, y + k)), df, y + k);
  }
  if (k < n) {
    const auto m = hn::FirstN(df, static_cast<size_t>(n - k));
    const VF r = hn::MulAdd(va, hn::MaskedLoad(m, df, x + k), hn::MaskedLoad(m, df, y + k));
    hn::BlendedStore(r, m, df, y + k);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace lsa_decode
HWY_AFTER_NAMESPACE();

#if HWY_ONCE

namespace lsa_decode {

HWY_EXPORT(matmul_range);
HWY_EXPORT(matmul_range_f16);
HWY_EXPORT(matmul_nn);
HWY_EXPORT(matmul_nn_f16);
HWY_EXPORT(matmul_nn_add);
HWY_EXPORT(matmul_nn_add_f16);
HWY_EXPORT(to_f16);
HWY_EXPORT(exp_sum);
HWY_EXPORT(softmax);
HWY_EXPORT(silu_mul);
HWY_EXPORT(dot);
HWY_EXPORT(axpy);

void matmul(ThreadPool& pool, const float* x, int64_t n, int64_t d_in, const float* w,
            int64_t d_out, float* y) {
  matmul(pool, x, n, d_in, d_in, w, d_out, d_in, y, d_out);
}

void matmul(ThreadPool& pool, const float* x, int64_t n, int64_t d_in, int64_t ldx, const float* w,
            int64_t d_out, int64_t ldw, float* y, int64_t ldy) {
  pool.parallel_for(d_out, 16, [&](int64_t o_begin, int64_t o_end) {
    HWY_DYNAMIC_DISPATCH(matmul_range)(x, n, d_in, ldx, w, ldw, y, ldy, o_begin, o_end);
  });
}

void matmul_rows(const float* x, int64_t n, int64_t d_in, const float* w, int64_t d_out,
                 int64_t ldw, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(matmul_range)(x, n, d_in, d_in, w, ldw, y, ldy, 0, d_out);
}

void matmul_rows(const float* x, int64_t n, int64_t d_in, const hwy::float16_t* w, int64_t d_out,
                 int64_t ldw, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(matmul_range_f16)(x, n, d_in, d_in, w, ldw, y, ldy, 0, d_out);
}

void matmul_nn(const float* x, int64_t n, int64_t k, int64_t ldx, const float* b, int64_t m,
               int64_t ldb, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(matmul_nn)(x, n, k, ldx, b, m, ldb, y, ldy);
}

void matmul_nn(const float* x, int64_t n, int64_t k, int64_t ldx, const hwy::float16_t* b,
               int64_t m, int64_t ldb, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(matmul_nn_f16)(x, n, k, ldx, b, m, ldb, y, ldy);
}

void matmul_nn_add(const float* x, int64_t n, int64_t k, int64_t ldx, const float* b, int64_t m,
                   int64_t ldb, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(matmul_nn_add)(x, n, k, ldx, b, m, ldb, y, ldy);
}

void matmul_nn_add(const float* x, int64_t n, int64_t k, int64_t ldx, const hwy::float16_t* b,
                   int64_t m, int64_t ldb, float* y, int64_t ldy) {
  HWY_DYNAMIC_DISPATCH(matmul_nn_add_f16)(x, n, k, ldx, b, m, ldb, y, ldy);
}

void to_f16(const float* in, hwy::float16_t* out, int64_t n) {
  HWY_DYNAMIC_DISPATCH(to_f16)(in, out, n);
}

void from_f16(const hwy::float16_t* in, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = half_to_float(std::bit_cast<uint16_t>(in[i]));
}

void rms_norm(const float* x, const float* weight, int64_t d, float eps, float* out) {
  double ss = 0.0;
  for (int64_t i = 0; i < d; ++i) ss += double(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / double(d) + eps));
  for (int64_t i = 0; i < d; ++i) out[i] = x[i] * scale * weight[i];
}

void rope(float* v, int64_t num_heads, int64_t head_dim, int64_t pos, float theta) {
  for (int64_t i = 0; i < head_dim / 2; ++i) {
    const double freq = std::pow(double(theta), -2.0 * double(i) / double(head_dim));
    const double angle = double(pos) * freq;
    const float c = static_cast<float>(std::cos(angle)), s = static_cast<float>(std::sin(angle));
    for (int64_t h = 0; h < num_heads; ++h) {
      float* p = v + h * head_dim + 2 * i;
      const float a = p[0], b = p[1];
      p[0] = a * c - b * s;
      p[1] = a * s + b * c;
    }
  }
}

void silu_mul(float* gate, const float* up, int64_t n) {
  HWY_DYNAMIC_DISPATCH(silu_mul)(gate, up, n);
}

float dot(const float* a, const float* b, int64_t n) { return HWY_DYNAMIC_DISPATCH(dot)(a, b, n); }

void axpy(float a, const float* x, float* y, int64_t n) { HWY_DYNAMIC_DISPATCH(axpy)(a, x, y, n); }

double softmax(float* x, int64_t n) { return HWY_DYNAMIC_DISPATCH(softmax)(x, n); }

float exp_sum(float* x, int64_t n, float* running_max) {
  return HWY_DYNAMIC_DISPATCH(exp_sum)(x, n, running_max);
}

}  // namespace lsa_decode

#endif  // HWY_ONCE
