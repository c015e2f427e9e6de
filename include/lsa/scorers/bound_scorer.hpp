// The Quest-style bound scorer: per-chunk min/max key bounds give an upper bound of q . k.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <type_traits>
#include <vector>

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

/// Training-free Quest scorer. lsa keeps, per chunk, layer and key head, the elementwise max and
/// min of the chunk's token keys; head score `sum_d max(q_d * max_d, q_d * min_d)` (an upper bound
/// of q . k over the chunk's tokens), query head h reading key head h / (num_heads /
/// num_key_heads); layer score = max over query heads; layers ensembled by max or mean.
///
/// Rows are tokens: `[num_layers][num_key_heads][head_dim]` in kF32 or kBF16 (fp8 is rejected).
/// Query weights are ignored (neither read nor checked).
///
/// Truncation inside a chunk keeps that chunk's bounds as they were (lsa does not keep token keys),
/// so they may still cover removed tokens, and tokens appended later widen them further. This is a
/// conservative approximation: the bounds stay valid upper bounds of the surviving and new tokens,
/// only possibly looser. Truncation at a chunk boundary is exact.
class BoundScorer {
 public:
  /// Per-sequence index: bounds of every touched chunk, [chunk][layer][key head][max | min][dim],
  /// floats for f32 keys and bf16 bits for bf16 keys.
  using Index = detail::TokenSummaries;
  /// Rows are given per token.
  static constexpr KeyGranularity kGranularity = KeyGranularity::kToken;
  /// Scores are unnormalized bounds.
  static constexpr bool kProbabilities = false;

  /// Throws lsa::Error naming the field when the shapes or the key format do not fit this scorer.
  BoundScorer(const ScorerConfig& config, int32_t chunk_tokens)
      : config_(config), chunk_tokens_(chunk_tokens) {
    constexpr const char* kName = "bound";
    detail::check_common_config(config, chunk_tokens, kName);
    detail::require(config.key_format != KeyFormat::kFp8E4M3, "scorer.key_format",
                    "be kF32 or kBF16 (token keys, not fp8)", kName,
                    static_cast<int>(config.key_format));
    vectors_per_row_ = int64_t{config.num_layers} * config.num_key_heads;
    row_bytes_ = vectors_per_row_ * detail::key_vector_bytes(config.key_format, config.head_dim);
    values_per_chunk_ = vectors_per_row_ * Summary::kValuesPerDim * config.head_dim;
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

  /// Widens the bounds with checked token rows; on std::bad_alloc the index is unchanged.
  void append(Index& index, KeyRows rows) const {
    detail::append_token_rows<Summary>(index, rows, config_.key_format, chunk_tokens_,
                                       vectors_per_row_, config_.head_dim);
  }

  /// Forgets tokens from num_tokens on (see the class comment for a chunk cut in the middle).
  void truncate(Index& index, int64_t num_tokens) const noexcept {
    detail::truncate_token_summaries(index, num_tokens, chunk_tokens_, values_per_chunk_);
  }

  /// ceil(tokens / chunk_tokens).
  int64_t num_chunks(const Index& index) const noexcept { return index.num_chunks(chunk_tokens_); }

  /// Writes num_chunks(index) scores to out; the query has passed check_query. No allocation.
  void score(const Index& index, Query query, std::span<float> out) const noexcept {
    const bool use_simd = detail::use_simd_kernels();
    const int64_t head_dim = config_.head_dim;
    const int64_t chunks = num_chunks(index);
    const detail::HeadLayout layout{values_per_chunk_, Summary::kValuesPerDim * head_dim,
                                    config_.num_key_heads,
                                    config_.num_heads / config_.num_key_heads, head_dim};
    constexpr int64_t kBlock = 64;  // chunks per pass; keeps one block's bounds in cache
    float layer[kBlock];
    for (int64_t c0 = 0; c0 < chunks; c0 += kBlock) {
      const int64_t n = std::min(kBlock, chunks - c0);
      for (int32_t l = 0; l < config_.num_layers; ++l) {
        const float* q = query.q.data() + int64_t{l} * config_.num_heads * head_dim;
        if (config_.key_format == KeyFormat::kBF16) {
          score_layer(index.bf16_values, c0, n, l, layout, q, layer, use_simd);
        } else {
          score_layer(index.values, c0, n, l, layout, q, layer, use_simd);
        }
        detail::fold_layer(config_.ensemble, l == 0, layer, out.data() + c0, n);
      }
      detail::finish_ensemble(config_.ensemble, config_.num_layers, out.data() + c0, n);
    }
  }

 private:
  // Bounds of one key vector, [max(head_dim), min(head_dim)], in the key format: the max and min of
  // bf16 values are bf16 values, so bf16 keys get exact bounds in half the memory of floats.
  struct Summary {
    static constexpr int64_t kValuesPerDim = 2;
    template <KeyFormat kFormat>
    using Stored = std::conditional_t<kFormat == KeyFormat::kBF16, uint16_t, float>;

    template <KeyFormat kFormat>
    static void init(Stored<kFormat>* bounds, const std::byte* key, int64_t head_dim) noexcept {
      for (int64_t d = 0; d < head_dim; ++d)
        bounds[d] = bounds[head_dim + d] = load<kFormat>(key, d);
    }
    template <KeyFormat kFormat>
    static void merge(Stored<kFormat>* bounds, const std::byte* key, int64_t head_dim) noexcept {
      for (int64_t d = 0; d < head_dim; ++d) {
        const Stored<kFormat> x = load<kFormat>(key, d);
        const float value = detail::key_value(x);
        if (value > detail::key_value(bounds[d])) bounds[d] = x;
        if (value < detail::key_value(bounds[head_dim + d])) bounds[head_dim + d] = x;
      }
    }
    // Element d of a key vector as stored.
    template <KeyFormat kFormat>
    static Stored<kFormat> load(const std::byte* key, int64_t d) noexcept {
      Stored<kFormat> x;
      std::memcpy(&x, key + d * sizeof(x), sizeof(x));
      return x;
    }
  };

  // Scores chunks [c0, c0 + n) of layer l with the kernel for the stored bound type T.
  template <class T>
  void score_layer(const std::vector<T>& bounds, int64_t c0, int64_t n, int32_t l,
                   const detail::HeadLayout& layout, const float* q, float* layer,
                   bool use_simd) const noexcept {
    const T* keys = bounds.data() + c0 * values_per_chunk_ +
                    l * int64_t{config_.num_key_heads} * layout.head_stride;
    detail::max_over_heads<detail::DotMode::kBound>(keys, n, layout, q, layer, use_simd);
  }

  ScorerConfig config_;
  int32_t chunk_tokens_;
  int64_t vectors_per_row_ = 0;
  int64_t row_bytes_ = 0;
  int64_t values_per_chunk_ = 0;
};

static_assert(IndexScorer<BoundScorer>);

}  // namespace lsa
