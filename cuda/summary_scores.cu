// Bound, centroid and embedding scoring on the device: one CUDA-core kernel in fp32 that repeats
// the host scorers' arithmetic.
//
// The host kernels (lsa/detail/dot_kernels.hpp) give each (key, query head) product 8 partial
// sums, lane l taking dims d = l (mod 8) in order with an FMA, and add them as
// ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)). Here 8 threads of a warp own one chunk, thread
// l keeps partial sum l, and three xor shuffles add the partials in that same tree, so every
// product rounds as on an AVX2 host; max over heads, the layer ensemble, the cosine and the
// centroid mean follow the host order too.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "detail/common.cuh"
#include "lsa/cuda/page_stats.hpp"
#include "lsa/cuda/summary_scorers.hpp"

namespace lsa::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;
constexpr int kLanes = 8;  // threads per chunk: the host kernels' partial sums
constexpr int kChunksPerWarp = 32 / kLanes;
constexpr int kChunksPerBlock = kThreads / kLanes;
constexpr int64_t kMaxBlocks = 4096;  // a grid-stride loop takes longer histories
constexpr int32_t kMaxEmbeddingDim = 1024;

// The kernel's arguments for all three scorers: where the key vectors lie, and the optional
// per-layer cosine and per-chunk mean.
template <class T>
struct SummaryArgs {
  const T* keys;  // vector (chunk c, layer l, key head g) at keys + c * chunk_stride +
                  // (l * num_key_heads + g) * vector_stride
  int64_t num_chunks;
  int64_t chunk_stride;   // values between chunks
  int64_t vector_stride;  // values between key heads (bound: [max, min], 2 * head_dim)
  int32_t num_layers;
  int32_t num_heads;
  int32_t num_key_heads;
  int32_t head_dim;
  const float* q;  // [num_layers][num_heads][head_dim]
  bool max_ensemble;
  const float* norms;  // cosine: [num_chunks][num_layers] key norms; else null
  int64_t num_tokens;  // centroid (chunk_tokens > 0): scores are divided by token counts
  int32_t chunk_tokens;
  float* scores;
};

// A stored key value as float: floats as they are, uint16_t as bf16 bits (exact).
__device__ __forceinline__ float key_value(float x) { return x; }
__device__ __forceinline__ float key_value(uint16_t bits) {
  return __uint_as_float(uint32_t{bits} << 16);
}

// The product of one key vector with one query head, on the 8 lanes of a chunk; the whole warp
// calls it together.
// kBound: the key is [max(D), min(D)] and each term is max(q * max, q * min), computed as the AVX2
// kernel does: max(q, 0) * max + min(q, 0) * min, one of the two terms being +-0.
template <bool kBound, class T>
__device__ __forceinline__ float lane_product(const T* __restrict__ key,
                                              const float* __restrict__ q, int32_t head_dim,
                                              int lane) {
  float partial = 0.0f;
  for (int32_t d = lane; d < head_dim; d += kLanes) {
    const float x = __ldg(q + d);
    if constexpr (kBound) {
      partial = fmaf(fmaxf(x, 0.0f), key_value(key[d]),
                     fmaf(fminf(x, 0.0f), key_value(key[head_dim + d]), partial));
    } else {
      partial = fmaf(key_value(key[d]), x, partial);
    }
  }
  // Lane l ends with ((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)) up to commutation (exact).
  partial += __shfl_xor_sync(0xFFFFFFFFu, partial, 1);
  partial += __shfl_xor_sync(0xFFFFFFFFu, partial, 2);
  partial += __shfl_xor_sync(0xFFFFFFFFu, partial, 4);
  return partial;
}

// EmbeddingScorer::norm: squares added in order in double, rounded to float once. The intrinsics
// keep the multiply and the add separate, as on the host.
__device__ float query_norm(const float* __restrict__ q, int32_t head_dim) {
  double sum = 0.0;
  for (int32_t d = 0; d < head_dim; ++d) {
    const double x = q[d];
    sum = __dadd_rn(sum, __dmul_rn(x, x));
  }
  return __double2float_rn(sqrt(sum));
}

// 8 lanes per chunk, 4 chunks per warp, a grid-stride loop over warps' chunk groups. Past the last
// chunk lanes repeat it (as the host's last block does) so that whole warps shuffle.
template <bool kBound, class T>
__global__ void __launch_bounds__(kThreads) summary_score_kernel(SummaryArgs<T> a) {
  extern __shared__ float q_norms[];  // [num_layers] when cosine
  const int tid = static_cast<int>(threadIdx.x);
  if (a.norms != nullptr) {
    for (int l = tid; l < a.num_layers; l += kThreads) {
      q_norms[l] = query_norm(a.q + int64_t{l} * a.head_dim, a.head_dim);
    }
    __syncthreads();
  }
  const int lane = tid % kLanes;
  const int slot = (tid % 32) / kLanes;
  const int64_t warp = (int64_t{blockIdx.x} * kThreads + tid) / 32;
  const int64_t warp_stride = int64_t{gridDim.x} * (kThreads / 32) * kChunksPerWarp;
  const int32_t group = a.num_heads / a.num_key_heads;
  for (int64_t first = warp * kChunksPerWarp; first < a.num_chunks; first += warp_stride) {
    const int64_t chunk = min(first + slot, a.num_chunks - 1);
    const T* keys = a.keys + chunk * a.chunk_stride;
    float score = 0.0f;
    for (int32_t l = 0; l < a.num_layers; ++l) {
      float layer = -INFINITY;
      for (int32_t g = 0; g < a.num_key_heads; ++g) {
        const T* key = keys + (int64_t{l} * a.num_key_heads + g) * a.vector_stride;
        for (int32_t h = g * group; h < (g + 1) * group; ++h) {
          const float* q = a.q + (int64_t{l} * a.num_heads + h) * a.head_dim;
          layer = fmaxf(layer, lane_product<kBound>(key, q, a.head_dim, lane));
        }
      }
      if (a.norms != nullptr) {
        const float q_norm = q_norms[l];
        const float k_norm = a.norms[chunk * a.num_layers + l];
        // Two divisions, as on the host: the product of the norms could overflow or underflow.
        layer = q_norm > 0.0f && k_norm > 0.0f ? layer / q_norm / k_norm : 0.0f;
      }
      score = l == 0 ? layer : a.max_ensemble ? fmaxf(score, layer) : score + layer;
    }
    if (!a.max_ensemble && a.num_layers > 1) score /= static_cast<float>(a.num_layers);
    if (a.chunk_tokens > 0) {
      // Centroid: sums were scored; the positive count commutes with the maxima and the mean.
      const int64_t count = min(int64_t{a.chunk_tokens}, a.num_tokens - chunk * a.chunk_tokens);
      score /= static_cast<float>(count);
    }
    if (lane == 0 && first + slot < a.num_chunks) a.scores[chunk] = score;
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// The shape rules every summary scorer shares (detail::check_common_config, no fp8 keys).
bool valid_config(const ScorerConfig& c) {
  return c.num_layers >= 1 && c.num_heads >= 1 && c.num_key_heads >= 1 &&
         c.num_heads % c.num_key_heads == 0 && c.head_dim >= 1 &&
         (c.key_format == KeyFormat::kF32 || c.key_format == KeyFormat::kBF16) &&
         (c.ensemble == Ensemble::kMax || c.ensemble == Ensemble::kMean);
}

// PageStats rules of compute_page_stats, checked before anything is queued.
bool valid_stats(const PageStats& s) {
  return (s.d_kept == nullptr || s.page_chunks >= 1) &&
         (s.d_mass == nullptr || s.d_kept != nullptr);
}

// Scores, then page statistics, on `stream`.
template <bool kBound, class T>
CudaError launch(const SummaryArgs<T>& args, const PageStats& stats, Stream stream) {
  if (args.num_chunks == 0) return CudaError::kSuccess;
  const size_t smem =
      args.norms != nullptr ? sizeof(float) * static_cast<size_t>(args.num_layers) : 0;
  const int64_t blocks = std::min(ceil_div(args.num_chunks, kChunksPerBlock), kMaxBlocks);
  summary_score_kernel<kBound, T><<<static_cast<unsigned>(blocks), kThreads, smem, stream>>>(args);
  LSA_CUDA_TRY(cudaGetLastError());
  if (stats.d_kept == nullptr) return CudaError::kSuccess;
  return compute_page_stats(args.scores, args.num_chunks, stats, stream);
}

// bound_score and centroid_score: the index holds `values_per_dim` values of type T per key dim.
template <bool kBound, class T>
CudaError token_summary_score(const ScorerConfig& c, const TokenSummaryInput& input,
                              int64_t values_per_dim, float* d_scores, const PageStats& stats,
                              Stream stream) {
  if (!valid_config(c) || !valid_stats(stats) || input.chunk_tokens < 1 || input.num_tokens < 0) {
    return CudaError::kInvalidValue;
  }
  const int64_t num_chunks = ceil_div(input.num_tokens, input.chunk_tokens);
  if (num_chunks > 0 &&
      (input.d_values == nullptr || input.d_q == nullptr || d_scores == nullptr ||
       !aligned(input.d_values, sizeof(T)) || !aligned(input.d_q, 4) || !aligned(d_scores, 4))) {
    return CudaError::kInvalidValue;
  }
  const int64_t vector_stride = values_per_dim * c.head_dim;
  SummaryArgs<T> args{};
  args.keys = static_cast<const T*>(input.d_values);
  args.num_chunks = num_chunks;
  args.chunk_stride = int64_t{c.num_layers} * c.num_key_heads * vector_stride;
  args.vector_stride = vector_stride;
  args.num_layers = c.num_layers;
  args.num_heads = c.num_heads;
  args.num_key_heads = c.num_key_heads;
  args.head_dim = c.head_dim;
  args.q = input.d_q;
  args.max_ensemble = c.ensemble == Ensemble::kMax;
  args.norms = nullptr;
  args.num_tokens = input.num_tokens;
  args.chunk_tokens = kBound ? 0 : input.chunk_tokens;
  args.scores = d_scores;
  return launch<kBound>(args, stats, stream);
}

// embedding_score for keys stored as T.
template <class T>
CudaError embedding_rows_score(const ScorerConfig& c, const EmbeddingInput& input, float* d_scores,
                               const PageStats& stats, Stream stream) {
  if (input.num_chunks > 0 && (input.d_rows == nullptr || input.d_q == nullptr ||
                               d_scores == nullptr || (c.cosine && input.d_norms == nullptr) ||
                               !aligned(input.d_rows, sizeof(T)) || !aligned(input.d_q, 4) ||
                               !aligned(d_scores, 4) || (c.cosine && !aligned(input.d_norms, 4)))) {
    return CudaError::kInvalidValue;
  }
  SummaryArgs<T> args{};
  args.keys = reinterpret_cast<const T*>(input.d_rows);
  args.num_chunks = input.num_chunks;
  args.chunk_stride = int64_t{c.num_layers} * c.head_dim;
  args.vector_stride = c.head_dim;
  args.num_layers = c.num_layers;
  args.num_heads = 1;
  args.num_key_heads = 1;
  args.head_dim = c.head_dim;
  args.q = input.d_q;
  args.max_ensemble = c.ensemble == Ensemble::kMax;
  args.norms = c.cosine ? input.d_norms : nullptr;
  args.num_tokens = 0;
  args.chunk_tokens = 0;
  args.scores = d_scores;
  return launch<false>(args, stats, stream);
}

}  // namespace
}  // namespace detail

CudaError bound_score(const ScorerConfig& config, const TokenSummaryInput& input, float* d_scores,
                      const PageStats& stats, Stream stream) noexcept {
  // The bounds of bf16 keys are bf16 values, kept as bf16 bits.
  if (config.key_format == KeyFormat::kBF16) {
    return detail::token_summary_score<true, uint16_t>(config, input, 2, d_scores, stats, stream);
  }
  return detail::token_summary_score<true, float>(config, input, 2, d_scores, stats, stream);
}

CudaError centroid_score(const ScorerConfig& config, const TokenSummaryInput& input,
                         float* d_scores, const PageStats& stats, Stream stream) noexcept {
  return detail::token_summary_score<false, float>(config, input, 1, d_scores, stats, stream);
}

CudaError embedding_score(const ScorerConfig& config, const EmbeddingInput& input, float* d_scores,
                          const PageStats& stats, Stream stream) noexcept {
  const ScorerConfig& c = config;
  if (!detail::valid_config(c) || !detail::valid_stats(stats) || c.num_heads != 1 ||
      c.num_key_heads != 1 || c.head_dim > detail::kMaxEmbeddingDim ||
      (c.cosine && c.num_layers > kMaxCosineLayers) || input.num_chunks < 0) {
    return CudaError::kInvalidValue;
  }
  if (c.key_format == KeyFormat::kBF16) {
    return detail::embedding_rows_score<uint16_t>(c, input, d_scores, stats, stream);
  }
  return detail::embedding_rows_score<float>(c, input, d_scores, stats, stream);
}

}  // namespace lsa::cuda
