// A baseline lsa::IndexScorer: a chunk's score is its position, so a refresh keeps the most recent
// pages (plus the forced sink) at the cache's budget (the "recency" method of lsa-eval).
#pragma once

#include <algorithm>
#include <cstdint>
#include <lsa/scorer_concept.hpp>
#include <lsa/scorer_config.hpp>
#include <lsa/status.hpp>
#include <span>

#include "baseline_scorer.hpp"

namespace lsa_decode {

/// Scores chunk c with c: with top-k selection the resident set is the sink plus a recent window
/// that fills the budget exactly (StreamingLLM-style). Refreshed every step, the window slides with
/// the history; keys and query values are not read.
class RecencyScorer : public BaselineScorer {
 public:
  /// Per-sequence index: only the token count.
  struct Index {
    int64_t num_tokens = 0;  ///< tokens appended
  };
  /// Rows are given per token (the key rows the decoder appends for the other scorers).
  static constexpr lsa::KeyGranularity kGranularity = lsa::KeyGranularity::kToken;
  /// Scores are positions, not probabilities.
  static constexpr bool kProbabilities = false;

  /// Throws lsa::Error naming the field when a shape is invalid.
  RecencyScorer(const lsa::ScorerConfig& config, int32_t chunk_tokens)
      : BaselineScorer(config, chunk_tokens, "recency") {}

  /// Keys are not read: only the row count is checked.
  lsa::Status check_keys(lsa::KeyRows rows) const noexcept {
    return rows.num_rows < 0 || (rows.num_rows > 0 && rows.data == nullptr)
               ? lsa::Status::kInvalidArgument
               : lsa::Status::kOk;
  }
  /// Counts the tokens.
  void append(Index& index, lsa::KeyRows rows) const noexcept { index.num_tokens += rows.num_rows; }
  /// Forgets tokens from n on.
  void truncate(Index& index, int64_t n) const noexcept {
    index.num_tokens = std::min(index.num_tokens, n);
  }
  /// ceil(tokens / chunk_tokens).
  int64_t num_chunks(const Index& index) const noexcept { return chunks_of(index.num_tokens); }
  /// out[c] = c (exact in float up to 2^24 chunks).
  void score(const Index& index, lsa::Query /*query*/, std::span<float> out) const noexcept {
    const int64_t n = num_chunks(index);
    for (int64_t c = 0; c < n; ++c) out[static_cast<size_t>(c)] = static_cast<float>(c);
  }
};

static_assert(lsa::IndexScorer<RecencyScorer>);

}  // namespace lsa_decode
