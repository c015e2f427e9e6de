// Per-page kept-chunk counts and kept score mass on the device: what threshold selection ranks.
#pragma once

#include <cstdint>

#include "lsa/cuda/cuda_error.hpp"

namespace lsa::cuda {

/// Where per-page statistics of threshold selection go (device memory). Page p covers chunks
/// [p * page_chunks, (p + 1) * page_chunks); a chunk is kept when its score > threshold (NaN never).
struct PageStats {
  float threshold = 0.5f;     ///< PolicyConfig::threshold
  int32_t page_chunks = 16;   ///< chunks per page, >= 1
  int32_t* d_kept = nullptr;  ///< [ceil(num_chunks / page_chunks)] kept chunks per page; null: none
  float* d_mass = nullptr;    ///< same shape: kept scores summed in chunk order (fp32, as the host
                              ///< policy adds them); null: not computed
};

/// Number of pages that `num_chunks` scored chunks touch (the length of the PageStats arrays).
constexpr int64_t num_stat_pages(int64_t num_chunks, int32_t page_chunks) noexcept {
  return (num_chunks + page_chunks - 1) / page_chunks;
}

/// Computes PageStats from `num_chunks` device scores (for scores that lightning_score did not
/// produce, or to check its fused epilogue). kInvalidValue when page_chunks < 1 or d_kept is null
/// while d_mass is not.
[[nodiscard]] CudaError compute_page_stats(const float* d_scores, int64_t num_chunks,
                                           const PageStats& stats, Stream stream) noexcept;

}  // namespace lsa::cuda
