// A baseline lsa::IndexScorer: a chunk's score is its position, so a refresh keeps the most recent
// pages (plus the forced sink) at the cache's budget (the "recency" method of lsa-eval).
#pragma once

#include <algorithm>
#include <cstdint>
#include <lsa/error.hpp>
#include <lsa/scorer_concept.hpp>
#include <lsa/scorer_config.hpp>
#include <lsa/status.hpp>
#include <span>
#include <string>

namespace lsa_decode {

/// Scores chunk c with c: with top-k selection the resident set is the sink plus a recent window
/// that fills the budget exactly (StreamingLLM-style). Refreshed every step, the window slides with
/// the history; keys and query values are not read.
class RecencyScorer {
 public:
  /// Per-sequence index: only the token count.
  struct Index {
    int64_t num_tokens = 0;  ///< tokens appended
  };
  /// Rows are given per token (the key rows the decoder appends for the other scorers).
  static constexpr lsa::KeyGranularity kGranularity = lsa::KeyGranularity::kToken;
  /// Scores are positions, not probabilities.
  static constexpr bool kProbabilities = false;

  /// Throws lsa::Error naming the field when a shape is not positive.
  RecencyScorer(const lsa::ScorerConfig& config, int32_t chunk_tokens)
      : config_(config), chunk_tokens_(chunk_tokens) {
    auto require = [](bool ok, const char* field, int64_t got) {
      if (!ok)
        throw lsa::Error(std::string("recency scorer: ") + field + " must be >= 1 (got " +
                         std::to_string(got) + ")");
    };
    require(chunk_tokens >= 1, "chunk_tokens", chunk_tokens);
    require(config.num_layers >= 1, "scorer.num_layers", config.num_layers);
    require(config.num_heads >= 1, "scorer.num_heads", config.num_heads);
    require(config.num_key_heads >= 1, "scorer.num_key_heads", config.num_key_heads);
    require(config.head_dim >= 1, "scorer.head_dim", config.head_dim);
    const int64_t vector_bytes =
        config.key_format == lsa::KeyFormat::kF32    ? int64_t{4} * config.head_dim
        : config.key_format == lsa::KeyFormat::kBF16 ? int64_t{2} * config.head_dim
                                                     : config.head_dim + 4;
    row_bytes_ = int64_t{config.num_layers} * config.num_key_heads * vector_bytes;
  }

  /// Bytes of one token row: num_layers * num_key_heads key vectors in the key format.
  int64_t row_bytes() const noexcept { return row_bytes_; }
  /// Keys are not read: only the row count is checked.
  lsa::Status check_keys(lsa::KeyRows rows) const noexcept {
    return rows.num_rows < 0 || (rows.num_rows > 0 && rows.data == nullptr)
               ? lsa::Status::kInvalidArgument
               : lsa::Status::kOk;
  }
  /// q must be [num_layers][num_heads][head_dim] (its values are not read).
  lsa::Status check_query(lsa::Query query) const noexcept {
    const int64_t want = int64_t{config_.num_layers} * config_.num_heads * config_.head_dim;
    return static_cast<int64_t>(query.q.size()) == want ? lsa::Status::kOk
                                                        : lsa::Status::kInvalidArgument;
  }
  /// Counts the tokens.
  void append(Index& index, lsa::KeyRows rows) const noexcept { index.num_tokens += rows.num_rows; }
  /// Forgets tokens from n on.
  void truncate(Index& index, int64_t n) const noexcept {
    index.num_tokens = std::min(index.num_tokens, n);
  }
  /// ceil(tokens / chunk_tokens).
  int64_t num_chunks(const Index& index) const noexcept {
    return (index.num_tokens + chunk_tokens_ - 1) / chunk_tokens_;
  }
  /// out[c] = c (exact in float up to 2^24 chunks).
  void score(const Index& index, lsa::Query /*query*/, std::span<float> out) const noexcept {
    const int64_t n = num_chunks(index);
    for (int64_t c = 0; c < n; ++c) out[static_cast<size_t>(c)] = static_cast<float>(c);
  }

 private:
  lsa::ScorerConfig config_;
  int32_t chunk_tokens_;
  int64_t row_bytes_ = 0;
};

static_assert(lsa::IndexScorer<RecencyScorer>);

}  // namespace lsa_decode
