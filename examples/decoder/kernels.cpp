#include "kernels.hpp"

#include <algorithm>
#include <cmath>

#include "thread_pool.hpp"

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define LSA_DECODE_X86 1
#include <immintrin.h>
#define LSA_DECODE_AVX512 __attribute__((target("avx512f,avx2,fma")))
#else
#define LSA_DECODE_X86 0
#endif

namespace lsa_decode {
namespace {

bool has_avx512() {
#if LSA_DECODE_X86
  static const bool yes = __builtin_cpu_supports("avx512f") != 0;
  return yes;
#else
  return false;
#endif
}

// A block of dot products, portable: out[i][o] = x[i] . w[o] for i < nx, o < nw.
void block_generic(const float* const* x, int nx, const float* const* w, int nw, int64_t d,
                   float out[4][8]) {
  for (int i = 0; i < nx; ++i) {
    for (int o = 0; o < nw; ++o) {
      float acc[8] = {};
      int64_t k = 0;
      for (; k + 8 <= d; k += 8) {
        for (int j = 0; j < 8; ++j) acc[j] += x[i][k + j] * w[o][k + j];
      }
      float s = 0.0f;
      for (; k < d; ++k) s += x[i][k] * w[o][k];
      out[i][o] = s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
  }
}

#if LSA_DECODE_X86
// Sum of the 16 lanes (stored and added: GCC 12's _mm512_reduce_add_ps warns in its own header).
LSA_DECODE_AVX512 inline float lane_sum(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0.0f;
  for (const float x : lanes) sum += x;
  return sum;
}

// kRows x-rows by kCols w-rows of dot products with AVX-512 (rows past nx/nw repeat the last
// pointer and are not stored). Fully unrolled so that every accumulator stays in a register.
template <int kRows, int kCols>
LSA_DECODE_AVX512 void block_avx512(const float* const* x, int nx, const float* const* w, int nw,
                                    int64_t d, float out[4][8]) {
  __m512 acc[kRows][kCols];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 8
    for (int o = 0; o < kCols; ++o) acc[i][o] = _mm512_setzero_ps();
  int64_t k = 0;
  auto step = [&](__mmask16 m) LSA_DECODE_AVX512 {
    __m512 xv[kRows], wv[kCols];
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) xv[i] = _mm512_maskz_loadu_ps(m, x[i] + k);
#pragma GCC unroll 8
    for (int o = 0; o < kCols; ++o) wv[o] = _mm512_maskz_loadu_ps(m, w[o] + k);
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i)
#pragma GCC unroll 8
      for (int o = 0; o < kCols; ++o) acc[i][o] = _mm512_fmadd_ps(xv[i], wv[o], acc[i][o]);
  };
  for (; k + 16 <= d; k += 16) step(__mmask16(0xFFFF));
  if (k < d) step(static_cast<__mmask16>((1u << (d - k)) - 1u));
  for (int i = 0; i < std::min(nx, kRows); ++i)
    for (int o = 0; o < std::min(nw, kCols); ++o) out[i][o] = lane_sum(acc[i][o]);
}
#endif

}  // namespace

void matmul(ThreadPool& pool, const float* x, int64_t n, int64_t d_in, const float* w,
            int64_t d_out, float* y) {
  matmul(pool, x, n, d_in, d_in, w, d_out, d_in, y, d_out);
}

namespace {

// Outputs [o_begin, o_end) of y = x w^T, in tiles of 64 outputs x 64 rows: both operands' tiles
// stay in L2 while the micro-kernel runs. One x-row (decode) takes 1 x 8 blocks, the product
// streams the weights once; more rows take 4 x 4 blocks.
void matmul_range(const float* x, int64_t n, int64_t d_in, int64_t ldx, const float* w, int64_t ldw,
                  float* y, int64_t ldy, int64_t o_begin, int64_t o_end) {
  const bool wide = has_avx512();
  const int rows = n == 1 ? 1 : 4;
  const int cols = n == 1 ? 8 : 4;
  constexpr int64_t kTile = 64;
  for (int64_t ob = o_begin; ob < o_end; ob += kTile) {
    const int64_t oe = std::min(ob + kTile, o_end);
    for (int64_t ib = 0; ib < n; ib += kTile) {
      const int64_t ie = std::min(ib + kTile, n);
      for (int64_t i0 = ib; i0 < ie; i0 += rows) {
        const int nx = static_cast<int>(std::min<int64_t>(rows, ie - i0));
        const float* xs[4];
        for (int i = 0; i < 4; ++i) xs[i] = x + (i0 + std::min(i, nx - 1)) * ldx;
        for (int64_t o0 = ob; o0 < oe; o0 += cols) {
          const int nw = static_cast<int>(std::min<int64_t>(cols, oe - o0));
          const float* ws[8];
          for (int o = 0; o < 8; ++o) ws[o] = w + (o0 + std::min(o, nw - 1)) * ldw;
          float out[4][8];
#if LSA_DECODE_X86
          if (wide && n == 1) {
            block_avx512<1, 8>(xs, nx, ws, nw, d_in, out);
          } else if (wide) {
            block_avx512<4, 4>(xs, nx, ws, nw, d_in, out);
          } else {
            block_generic(xs, nx, ws, nw, d_in, out);
          }
#else
          (void)wide;
          block_generic(xs, nx, ws, nw, d_in, out);
#endif
          for (int i = 0; i < nx; ++i)
            for (int o = 0; o < nw; ++o) y[(i0 + i) * ldy + o0 + o] = out[i][o];
        }
      }
    }
  }
}

}  // namespace

void matmul(ThreadPool& pool, const float* x, int64_t n, int64_t d_in, int64_t ldx, const float* w,
            int64_t d_out, int64_t ldw, float* y, int64_t ldy) {
  pool.parallel_for(d_out, 16, [&](int64_t o_begin, int64_t o_end) {
    matmul_range(x, n, d_in, ldx, w, ldw, y, ldy, o_begin, o_end);
  });
}

void matmul_rows(const float* x, int64_t n, int64_t d_in, const float* w, int64_t d_out, int64_t ldw,
                 float* y, int64_t ldy) {
  matmul_range(x, n, d_in, d_in, w, ldw, y, ldy, 0, d_out);
}

namespace {

void matmul_nn_generic(const float* x, int64_t n, int64_t k, int64_t ldx, const float* b, int64_t m,
                       int64_t ldb, float* y, int64_t ldy) {
  for (int64_t i = 0; i < n; ++i) {
    float* row = y + i * ldy;
    std::fill(row, row + m, 0.0f);
    for (int64_t kk = 0; kk < k; ++kk) {
      const float a = x[i * ldx + kk];
      const float* brow = b + kk * ldb;
      for (int64_t j = 0; j < m; ++j) row[j] += a * brow[j];
    }
  }
}

#if LSA_DECODE_X86
// 4 rows x 32 columns per block: 2 loads of b and 4 broadcasts per 8 FMAs.
LSA_DECODE_AVX512 void matmul_nn_avx512(const float* x, int64_t n, int64_t k, int64_t ldx,
                                        const float* b, int64_t m, int64_t ldb, float* y,
                                        int64_t ldy) {
  for (int64_t j0 = 0; j0 < m; j0 += 32) {
    const int64_t left = m - j0;
    const __mmask16 m0 = left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1u);
    const __mmask16 m1 = left >= 32 ? __mmask16(0xFFFF)
                         : left > 16 ? static_cast<__mmask16>((1u << (left - 16)) - 1u)
                                     : __mmask16(0);
    for (int64_t i0 = 0; i0 < n; i0 += 4) {
      const int rows = static_cast<int>(std::min<int64_t>(4, n - i0));
      const float* xr[4];
      for (int i = 0; i < 4; ++i) xr[i] = x + (i0 + std::min(i, rows - 1)) * ldx;
      __m512 a00 = _mm512_setzero_ps(), a01 = _mm512_setzero_ps(), a10 = _mm512_setzero_ps(),
             a11 = _mm512_setzero_ps(), a20 = _mm512_setzero_ps(), a21 = _mm512_setzero_ps(),
             a30 = _mm512_setzero_ps(), a31 = _mm512_setzero_ps();
      for (int64_t kk = 0; kk < k; ++kk) {
        const float* brow = b + kk * ldb + j0;
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, brow);
        const __m512 b1 = _mm512_maskz_loadu_ps(m1, brow + 16);
        __m512 s = _mm512_set1_ps(xr[0][kk]);
        a00 = _mm512_fmadd_ps(s, b0, a00);
        a01 = _mm512_fmadd_ps(s, b1, a01);
        s = _mm512_set1_ps(xr[1][kk]);
        a10 = _mm512_fmadd_ps(s, b0, a10);
        a11 = _mm512_fmadd_ps(s, b1, a11);
        s = _mm512_set1_ps(xr[2][kk]);
        a20 = _mm512_fmadd_ps(s, b0, a20);
        a21 = _mm512_fmadd_ps(s, b1, a21);
        s = _mm512_set1_ps(xr[3][kk]);
        a30 = _mm512_fmadd_ps(s, b0, a30);
        a31 = _mm512_fmadd_ps(s, b1, a31);
      }
      const __m512 acc[4][2] = {{a00, a01}, {a10, a11}, {a20, a21}, {a30, a31}};
      for (int i = 0; i < rows; ++i) {
        float* out = y + (i0 + i) * ldy + j0;
        _mm512_mask_storeu_ps(out, m0, acc[i][0]);
        _mm512_mask_storeu_ps(out + 16, m1, acc[i][1]);
      }
    }
  }
}
#endif

}  // namespace

void matmul_nn(const float* x, int64_t n, int64_t k, int64_t ldx, const float* b, int64_t m,
               int64_t ldb, float* y, int64_t ldy) {
#if LSA_DECODE_X86
  if (has_avx512()) return matmul_nn_avx512(x, n, k, ldx, b, m, ldb, y, ldy);
#endif
  matmul_nn_generic(x, n, k, ldx, b, m, ldb, y, ldy);
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
  for (int64_t i = 0; i < n; ++i) gate[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

float dot(const float* a, const float* b, int64_t n) {
  float acc[8] = {};
  int64_t k = 0;
  for (; k + 8 <= n; k += 8) {
    for (int j = 0; j < 8; ++j) acc[j] += a[k + j] * b[k + j];
  }
  float s = 0.0f;
  for (; k < n; ++k) s += a[k] * b[k];
  return s + ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

void axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

double softmax(float* x, int64_t n) {
  const float mx = *std::max_element(x, x + n);
  double sum = 0.0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  const float inv = static_cast<float>(1.0 / sum);
  for (int64_t i = 0; i < n; ++i) x[i] *= inv;
  return std::log(sum) + mx;
}

}  // namespace lsa_decode
