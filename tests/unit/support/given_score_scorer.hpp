// Test scorer whose chunk keys are the chunk scores themselves (times query[0]), so tests choose
// exactly which chunks a refresh sees as important.
#pragma once

#include <cmath>
#include <cstring>
#include <vector>

#include "lsa/scorer_concept.hpp"

namespace lsa::testing {

/// One float per completed chunk; score = key * q[0].
class GivenScoreScorer {
 public:
  struct Index {
    std::vector<float> keys;
  };
  static constexpr KeyGranularity kGranularity = KeyGranularity::kChunk;
  static constexpr bool kProbabilities = false;

  GivenScoreScorer(const ScorerConfig&, int32_t chunk_tokens) : chunk_tokens_(chunk_tokens) {}

  int64_t row_bytes() const noexcept { return sizeof(float); }
  Status check_keys(KeyRows rows) const noexcept {
    for (int64_t i = 0; i < rows.num_rows; ++i) {
      float v;
      std::memcpy(&v, rows.data + i * sizeof(float), sizeof(float));
      if (!std::isfinite(v)) return Status::kNonFiniteInput;
    }
    return Status::kOk;
  }
  Status check_query(Query q) const noexcept {
    if (q.q.size() != 1) return Status::kInvalidArgument;
    return std::isfinite(q.q[0]) ? Status::kOk : Status::kNonFiniteInput;
  }
  void append(Index& index, KeyRows rows) const {
    const auto* f = reinterpret_cast<const float*>(rows.data);
    index.keys.insert(index.keys.end(), f, f + rows.num_rows);
  }
  void truncate(Index& index, int64_t num_tokens) const noexcept {
    index.keys.resize(static_cast<size_t>(num_tokens / chunk_tokens_));
  }
  int64_t num_chunks(const Index& index) const noexcept {
    return static_cast<int64_t>(index.keys.size());
  }
  void score(const Index& index, Query q, std::span<float> out) const noexcept {
    for (size_t i = 0; i < index.keys.size(); ++i) out[i] = index.keys[i] * q.q[0];
  }

 private:
  int32_t chunk_tokens_;
};

static_assert(IndexScorer<GivenScoreScorer>);

}  // namespace lsa::testing
