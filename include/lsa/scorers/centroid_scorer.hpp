// The centroid scorer: q . (mean key of the chunk).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

#include "lsa/detail/cpu_dispatch.hpp"
#include "lsa/detail/dot_kernels.hpp"
#include "lsa/detail/ensemble.hpp"
#include "lsa/detail/key_decode.hpp"
#include "lsa/detail/scorer_checks.hpp"
#include "lsa/detail/token_summaries.hpp"
#include "lsa/scorer_concept.hpp"
#include "lsa/scorer_config.hpp"
#include "lsa/status.hpp"

namespace lsa {

/// Training-free centroid scorer. lsa keeps, per chunk, layer and key head, the running sum of the
/// chunk's token keys (the count follows from the token count); head score = q . (sum / count),
/// query head h reading key head h / (num_heads / num_key_heads); layer score = max over query
/// heads; layers ensembled by max or mean.
///
/// Rows are tokens: `[num_layers][num_key_heads][head_dim]` in kF32 or kBF16 (fp8 is rejected).
/// Query weights are ignored (neither read nor checked).
///
/// Truncation inside a chunk cannot subtract the removed tokens (their keys are not kept), so the
/// cut chunk keeps its old mean, rescaled to the surviving token count; tokens appended later are
/// averaged in with that weight. An approximation; truncation at a chunk boundary is exact.
class CentroidScorer {
 public:
  /// Per-sequence index: key sums of every touched chunk, [chunk][layer][key head][dim].
  using Index = detail::TokenSummaries;
  /// Rows are given per token.
  static constexpr KeyGranularity kGranularity = KeyGranularity::kToken;
  /// Scores are unnormalized dot products.
  static constexpr bool kProbabilities = false;

  /// Throws lsa::Error naming the field when the shapes or the key format do not fit this scorer.
  CentroidScorer(const ScorerConfig& config, int32_t chunk_tokens)
      : config_(config), chunk_tokens_(chunk_tokens) {
    constexpr const char* kName = "centroid";
    detail::check_common_config(config, chunk_tokens, kName);
    detail::require(config.key_format != KeyFormat::kFp8E4M3, "scorer.key_format",
                    "be kF32 or kBF16 (token keys, not fp8)", kName,
                    static_cast<int>(config.key_format));
    vectors_per_row_ = int64_t{config.num_layers} * config.num_key_heads;
    row_bytes_ = vectors_per_row_ * detail::key_vector_bytes(config.key_format, config.head_dim);
    values_per_chunk_ = vectors_per_row_ * config.head_dim;
  }

  /// The configuration this scorer was built with.
  const ScorerConfig& config() const noexcept { return config_; }

  /// Bytes of one token row: num_layers * num_key_heads key vectors.
  int64_t row_bytes() const noexcept { return row_bytes_; }

  /// kNonFiniteInput on a NaN/Inf key; kInvalidArgument on a bad count.
  Status check_keys(KeyRows rows) const noexcept {
    return detail::check_key_rows(rows, config_.key_format, vectors_per_row_, config_.head_dim);
  }

  /// q must be [num_layers][num_heads][head_dim], all finite; weights are ignored.
  Status check_query(Query query) const noexcept {
    return detail::check_floats(query.q,
                                int64_t{config_.num_layers} * config_.num_heads * config_.head_dim);
  }

  /// Adds checked token rows to the chunk sums; on std::bad_alloc the index is unchanged.
  void append(Index& index, KeyRows rows) const {
    detail::append_token_rows<Summary>(index, rows, config_.key_format, chunk_tokens_,
                                       vectors_per_row_, config_.head_dim);
  }

  /// Forgets tokens from num_tokens on (see the class comment for a chunk cut in the middle).
  void truncate(Index& index, int64_t num_tokens) const noexcept {
    if (num_tokens > 0 && num_tokens < index.num_tokens && num_tokens % chunk_tokens_ != 0) {
      const int64_t c = num_tokens / chunk_tokens_;
      const int64_t kept = num_tokens - c * chunk_tokens_;
      const int64_t had = chunk_count(index.num_tokens, c);
      const float rescale = static_cast<float>(kept) / static_cast<float>(had);
      float* sums = index.values.data() + c * values_per_chunk_;
      for (int64_t i = 0; i < values_per_chunk_; ++i) sums[i] *= rescale;
    }
    detail::truncate_token_summaries(index, num_tokens, chunk_tokens_, values_per_chunk_);
  }

  /// ceil(tokens / chunk_tokens).
  int64_t num_chunks(const Index& index) const noexcept { return index.num_chunks(chunk_tokens_); }

  /// Writes num_chunks(index) scores to out; the query has passed check_query. No allocation.
  void score(const Index& index, Query query, std::span<float> out) const noexcept {
    const bool use_simd = detail::use_simd_kernels();
    const int64_t head_dim = config_.head_dim;
    const int64_t chunks = num_chunks(index);
    const detail::HeadLayout layout{values_per_chunk_, head_dim, config_.num_key_heads,
                                    config_.num_heads / config_.num_key_heads, head_dim};
    constexpr int64_t kBlock = 64;  // chunks per pass; keeps one block's sums in cache
    float layer[kBlock];
    for (int64_t c0 = 0; c0 < chunks; c0 += kBlock) {
      const int64_t n = std::min(kBlock, chunks - c0);
      float* block = out.data() + c0;
      for (int32_t l = 0; l < config_.num_layers; ++l) {
        const float* keys = index.values.data() + c0 * values_per_chunk_ +
                            l * int64_t{config_.num_key_heads} * head_dim;
        detail::max_over_heads<detail::DotMode::kDot>(
            keys, n, layout, query.q.data() + int64_t{l} * config_.num_heads * head_dim, layer,
            use_simd);
        detail::fold_layer(config_.ensemble, l == 0, layer, block, n);
      }
      detail::finish_ensemble(config_.ensemble, config_.num_layers, block, n);
      // Dividing by the positive count commutes with max over heads and with the layer ensemble,
      // so sums are scored and divided once.
      for (int64_t c = 0; c < n; ++c) {
        block[c] /= static_cast<float>(chunk_count(index.num_tokens, c0 + c));
      }
    }
  }

 private:
  // Sum of one key vector's tokens.
  struct Summary {
    static constexpr int64_t kValuesPerDim = 1;
    template <KeyFormat>
    using Stored = float;
    template <KeyFormat kFormat>
    static void init(float* sum, const std::byte* key, int64_t head_dim) noexcept {
      for (int64_t d = 0; d < head_dim; ++d) sum[d] = detail::key_element<kFormat>(key, d);
    }
    template <KeyFormat kFormat>
    static void merge(float* sum, const std::byte* key, int64_t head_dim) noexcept {
      for (int64_t d = 0; d < head_dim; ++d) sum[d] += detail::key_element<kFormat>(key, d);
    }
  };

  // Tokens of chunk c in a history of num_tokens tokens.
  int64_t chunk_count(int64_t num_tokens, int64_t c) const noexcept {
    return std::min<int64_t>(chunk_tokens_, num_tokens - c * chunk_tokens_);
  }

  ScorerConfig config_;
  int32_t chunk_tokens_;
  int64_t vectors_per_row_ = 0;
  int64_t row_bytes_ = 0;
  int64_t values_per_chunk_ = 0;
};

static_assert(IndexScorer<CentroidScorer>);

}  // namespace lsa
