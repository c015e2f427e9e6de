// Products of f32 activations with weights in their stored types (ops/weight_matrix.hpp): blocks
// are decoded in registers; activations, products and sums stay f32 (activations are never
// rounded to 8 bits). Compiled for each SIMD target (ops/targets.hpp).
#pragma once

#include <cstdint>

namespace lsa_decode {

class ThreadPool;
class WeightMatrix;

/// y[i][o] = sum_k x[i][k] * w[o][k] for i < n, o < w.rows(); x is n rows of w.cols() floats, y
/// n rows of w.rows(). Output rows are split across the pool's threads; the result does not depend
/// on the thread count. Up to kDirectMaxRows rows of x read the blocks directly (matmul_direct),
/// more dequantize tiles of w once for all of them (matmul_tiled).
void matmul(ThreadPool& pool, const float* x, int64_t n, const WeightMatrix& w, float* y);

/// Rows of x up to which matmul takes matmul_direct.
inline constexpr int64_t kDirectMaxRows = 3;

/// Outputs [o_begin, o_end) of matmul on the calling thread (y rows ldy floats apart), reading
/// every block once per x row: a 32-element block adds d * sum(q * x) to the dot product, plus
/// m * sum(x) for Q4_1 (the block sums of x are computed once per row). F16 and F32 rows are
/// converted in registers.
void matmul_direct(const float* x, int64_t n, const WeightMatrix& w, int64_t o_begin, int64_t o_end,
                   float* y, int64_t ldy);

/// The same by dequantizing 64 rows of w at a time into an fp32 tile (dequantize_rows) and
/// multiplying it with all n rows of x: the decoding cost is paid once per weight, not per row.
void matmul_tiled(const float* x, int64_t n, const WeightMatrix& w, int64_t o_begin, int64_t o_end,
                  float* y, int64_t ldy);

/// Rows [r_begin, r_end) of w as floats, w.cols() per row, with SIMD; bit-identical to
/// quant.hpp's dequantize.
void dequantize_rows(const WeightMatrix& w, int64_t r_begin, int64_t r_end, float* out);

}  // namespace lsa_decode
