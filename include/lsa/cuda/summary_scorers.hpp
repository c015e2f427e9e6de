// The training-free scorers (bound, centroid, embedding) on the device, reading the host scorers'
// per-sequence indexes uploaded as they are.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lsa/cuda/cuda_error.hpp"
#include "lsa/cuda/page_stats.hpp"
#include "lsa/scorer_config.hpp"

namespace lsa::cuda {

/// Device copy of one sequence's BoundScorer or CentroidScorer index (detail::TokenSummaries).
struct TokenSummaryInput {
  const void* d_values = nullptr;  ///< the index storage, byte-exact: [num_chunks][num_layers]
                                   ///< [num_key_heads][values]; bound: bf16_values for kBF16 keys
                                   ///< (uint16_t), else values (float), [max(D), min(D)] per head;
                                   ///< centroid: values (float sums, D per head)
  int64_t num_tokens = 0;          ///< Index::num_tokens; num_chunks = ceil(tokens / chunk_tokens)
  int32_t chunk_tokens = 0;        ///< the chunk_tokens the scorer was built with, >= 1
  const float* d_q = nullptr;      ///< [num_layers][num_heads][head_dim]
};

/// Device copy of one sequence's EmbeddingScorer index.
struct EmbeddingInput {
  const std::byte* d_rows = nullptr;  ///< Index::rows.bytes: [num_chunks][num_layers][head_dim] in
                                      ///< key_format
  const float* d_norms = nullptr;     ///< Index::norms, [num_chunks][num_layers]; read when cosine
  int64_t num_chunks = 0;             ///< Index::rows.num_rows
  const float* d_q = nullptr;         ///< [num_layers][head_dim]
};

/// Most layers embedding_score takes when ScorerConfig::cosine (the query norms sit in shared
/// memory).
inline constexpr int32_t kMaxCosineLayers = 1024;

/// BoundScorer::score on the device: d_scores[ceil(num_tokens / chunk_tokens)] (same layer
/// ensembling and dot order, fp32), then the threshold PageStats when stats.d_kept is set.
/// No allocation, no synchronization: everything is queued on `stream`. kInvalidValue: a config
/// BoundScorer rejects, chunk_tokens < 1, num_tokens < 0, missing or misaligned pointers (values
/// aligned to their element), bad PageStats.
[[nodiscard]] CudaError bound_score(const ScorerConfig& config, const TokenSummaryInput& input,
                                    float* d_scores, const PageStats& stats,
                                    Stream stream) noexcept;

/// CentroidScorer::score on the device; arguments, outputs and errors as bound_score.
[[nodiscard]] CudaError centroid_score(const ScorerConfig& config, const TokenSummaryInput& input,
                                       float* d_scores, const PageStats& stats,
                                       Stream stream) noexcept;

/// EmbeddingScorer::score on the device: d_scores[num_chunks], then the threshold PageStats when
/// stats.d_kept is set. No allocation, no synchronization. kInvalidValue: a config EmbeddingScorer
/// rejects, num_layers > kMaxCosineLayers with cosine, num_chunks < 0, missing or misaligned
/// pointers (d_norms only with cosine), bad PageStats.
[[nodiscard]] CudaError embedding_score(const ScorerConfig& config, const EmbeddingInput& input,
                                        float* d_scores, const PageStats& stats,
                                        Stream stream) noexcept;

}  // namespace lsa::cuda
