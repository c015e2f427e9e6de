// The oracle of lsa-eval: an lsa::IndexScorer whose chunk scores come with the query, so that a
// refresh keeps the pages a reference (dense) run of the same tokens attends to most over the
// next `interval` steps (methods `oracle-iN`: the ceiling of any N-step lookahead at a budget).
#pragma once

#include <algorithm>
#include <cstdint>
#include <lsa/detail/scorer_checks.hpp>
#include <lsa/scorer_concept.hpp>
#include <lsa/scorer_config.hpp>
#include <lsa/status.hpp>
#include <span>
#include <vector>

#include "baseline_scorer.hpp"

namespace lsa_decode {

/// What an oracle session knows ahead of time: the attention of the reference run's decode steps.
class FutureAttention {
 public:
  virtual ~FutureAttention() = default;
  /// Adds to out[p] the attention mass on logical page p, summed over every layer and head and
  /// over the reference run's decode steps [step, step + horizon), for p < out.size(). Steps past
  /// the end of the reference run count as its last step.
  virtual void add_page_mass(int64_t step, int32_t horizon, std::span<float> out) const = 0;
};

/// The oracle's query weights for `num_chunks` chunks: chunk c gets the mass of its page
/// (page_mass[c / page_chunks], 0 past the end) divided by page_chunks, so that a page's score by
/// mass (the sum over its chunks) is the page's mass.
inline void chunk_scores_from_page_mass(std::span<const float> page_mass, int32_t page_chunks,
                                        int64_t num_chunks, std::vector<float>& out) {
  out.resize(static_cast<size_t>(num_chunks));
  for (int64_t c = 0; c < num_chunks; ++c) {
    const auto p = static_cast<size_t>(c / page_chunks);
    out[static_cast<size_t>(c)] =
        p < page_mass.size() ? page_mass[p] / static_cast<float>(page_chunks) : 0.0f;
  }
}

/// Scores chunk c with `query.weights[c]` (0 past its end): the session hands the oracle's chunk
/// masses over in the weights of the query, which no other baseline reads. With top-k selection
/// and page scores by mass, a refresh keeps the pages of largest mass (ties to the lower page).
/// Keys and query vectors are not read.
class OracleScorer : public TokenCountingScorer {
 public:
  /// Scores are attention masses, not probabilities.
  static constexpr bool kProbabilities = false;

  /// Throws lsa::Error naming the field when a shape is invalid.
  OracleScorer(const lsa::ScorerConfig& config, int32_t chunk_tokens)
      : TokenCountingScorer(config, chunk_tokens, "oracle") {}

  /// q must have the usual shape; the weights (the chunk masses) must be finite.
  lsa::Status check_query(lsa::Query query) const noexcept {
    if (const lsa::Status s = BaselineScorer::check_query(query); s != lsa::Status::kOk) return s;
    return lsa::detail::all_finite(query.weights) ? lsa::Status::kOk
                                                  : lsa::Status::kNonFiniteInput;
  }
  /// out[c] = query.weights[c], 0 where the weights end.
  void score(const Index& index, lsa::Query query, std::span<float> out) const noexcept {
    const int64_t n = num_chunks(index);
    const auto given = static_cast<int64_t>(query.weights.size());
    for (int64_t c = 0; c < n; ++c) {
      out[static_cast<size_t>(c)] = c < given ? query.weights[static_cast<size_t>(c)] : 0.0f;
    }
  }
};

static_assert(lsa::IndexScorer<OracleScorer>);

}  // namespace lsa_decode
