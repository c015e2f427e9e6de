// The decoder's fp32 kernels: matrix products, RMS norm, rotary embeddings, SiLU, softmax, and the
// products attention runs on KV stored in f16 (read widened, summed in fp32). The vector ones run
// on the best SIMD target the CPU has (AVX-512, AVX2 or portable scalar code; see
// ops/targets.hpp). Products with weights in their stored types are in ops/quant_matmul.hpp.
#pragma once

#include <hwy/base.h>

#include <cstdint>

namespace lsa_decode {

class ThreadPool;

/// y[i][o] = sum_k x[i][k] * w[o][k] for i < n, o < d_out (w row-major [d_out][d_in]). Output rows
/// are split across the pool's threads; the result does not depend on the thread count.
void matmul(ThreadPool& pool, const float* x, int64_t n, int64_t d_in, const float* w,
            int64_t d_out, float* y);
/// The same with row strides: x rows ldx floats apart, w rows ldw, y rows ldy.
void matmul(ThreadPool& pool, const float* x, int64_t n, int64_t d_in, int64_t ldx, const float* w,
            int64_t d_out, int64_t ldw, float* y, int64_t ldy);

/// matmul on the calling thread only (for small products inside a parallel region).
void matmul_rows(const float* x, int64_t n, int64_t d_in, const float* w, int64_t d_out, int64_t ldw,
                 float* y, int64_t ldy);

/// matmul_rows with w in f16 (attention's Q K^T over an f16 KV page).
void matmul_rows(const float* x, int64_t n, int64_t d_in, const hwy::float16_t* w, int64_t d_out,
                 int64_t ldw, float* y, int64_t ldy);

/// y[i][j] = sum_k x[i][k] * b[k][j] for i < n, j < m ("NN": b row-major [k][m]); rows ldx, ldb
/// and ldy elements apart. Vectorized across j, so short sums (attention's head_dim) cost no
/// horizontal adds. Single-threaded.
void matmul_nn(const float* x, int64_t n, int64_t k, int64_t ldx, const float* b, int64_t m,
               int64_t ldb, float* y, int64_t ldy);
/// matmul_nn with b in f16 (attention's P V over an f16 KV page).
void matmul_nn(const float* x, int64_t n, int64_t k, int64_t ldx, const hwy::float16_t* b,
               int64_t m, int64_t ldb, float* y, int64_t ldy);

/// y[i][j] += sum_k x[i][k] * b[k][j]: matmul_nn accumulating into y (attention's running P V).
void matmul_nn_add(const float* x, int64_t n, int64_t k, int64_t ldx, const float* b, int64_t m,
                   int64_t ldb, float* y, int64_t ldy);
void matmul_nn_add(const float* x, int64_t n, int64_t k, int64_t ldx, const hwy::float16_t* b,
                   int64_t m, int64_t ldb, float* y, int64_t ldy);

/// out[i] = in[i] rounded to binary16, ties to even (overflow: infinity); the same bits on every
/// target (ops/f16.hpp).
void to_f16(const float* in, hwy::float16_t* out, int64_t n);
/// out[i] = in[i] (exact).
void from_f16(const hwy::float16_t* in, float* out, int64_t n);

/// out = x / rms(x) * weight over d elements (out may alias x).
void rms_norm(const float* x, const float* weight, int64_t d, float eps, float* out);

/// Rotary embedding of `num_heads` vectors of `head_dim` at position `pos`, on adjacent pairs
/// (x[2i], x[2i+1]) with frequency theta^(-2i/head_dim) (ggml's "normal" rope, which GGUF llama
/// weights are converted for).
void rope(float* v, int64_t num_heads, int64_t head_dim, int64_t pos, float theta);

/// gate[i] = silu(gate[i]) * up[i].
void silu_mul(float* gate, const float* up, int64_t n);

/// sum_k a[k] * b[k].
float dot(const float* a, const float* b, int64_t n);
/// y += a * x.
void axpy(float a, const float* x, float* y, int64_t n);

/// In-place softmax over n values; returns log(sum(exp(x - max))) + max (the log normalizer).
double softmax(float* x, int64_t n);

/// A step of a running softmax: *running_max = max(*running_max, x[i]), then x[i] = exp(x[i] -
/// *running_max) in place; returns their sum (flushed into a double every 64 vectors, as softmax
/// does, so long rows keep the precision of short ones).
float exp_sum(float* x, int64_t n, float* running_max);

}  // namespace lsa_decode
