// A baseline lsa::IndexScorer: a chunk's score is its position, so a refresh keeps the most recent
// pages (plus the forced sink) at the cache's budget (the "recency" method of lsa-eval).
#pragma once

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
class RecencyScorer : public TokenCountingScorer {
 public:
  /// Scores are positions, not probabilities.
  static constexpr bool kProbabilities = false;

  /// Throws lsa::Error naming the field when a shape is invalid.
  RecencyScorer(const lsa::ScorerConfig& config, int32_t chunk_tokens)
      : TokenCountingScorer(config, chunk_tokens, "recency") {}

  /// out[c] = c (exact in float up to 2^24 chunks).
  void score(const Index& index, lsa::Query /*query*/, std::span<float> out) const noexcept {
    const int64_t n = num_chunks(index);
    for (int64_t c = 0; c < n; ++c) out[static_cast<size_t>(c)] = static_cast<float>(c);
  }
};

static_assert(lsa::IndexScorer<RecencyScorer>);

}  // namespace lsa_decode
