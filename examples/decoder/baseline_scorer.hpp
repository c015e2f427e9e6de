// What the baseline scorers of lsa-eval (random, recency, oracle) share: shape checks, the token
// row size, the query check and the chunk count; they differ only in their index and their scores.
#pragma once

#include <cstdint>
#include <lsa/detail/key_decode.hpp>
#include <lsa/detail/scorer_checks.hpp>
#include <lsa/scorer_concept.hpp>
#include <lsa/scorer_config.hpp>
#include <lsa/status.hpp>

namespace lsa_decode {

/// Base of a token-granular baseline scorer that reads no query values.
class BaselineScorer {
 public:
  /// Bytes of one token row: num_layers * num_key_heads key vectors in the key format.
  int64_t row_bytes() const noexcept { return row_bytes_; }

  /// q must be [num_layers][num_heads][head_dim] (its values are not read).
  lsa::Status check_query(lsa::Query query) const noexcept {
    const int64_t want = int64_t{config_.num_layers} * config_.num_heads * config_.head_dim;
    return static_cast<int64_t>(query.q.size()) == want ? lsa::Status::kOk
                                                        : lsa::Status::kInvalidArgument;
  }

 protected:
  /// Throws lsa::Error naming the field (and the scorer `name`) when a shape is invalid.
  BaselineScorer(const lsa::ScorerConfig& config, int32_t chunk_tokens, const char* name)
      : config_(config), chunk_tokens_(chunk_tokens) {
    lsa::detail::check_common_config(config, chunk_tokens, name);
    row_bytes_ = int64_t{config.num_layers} * config.num_key_heads *
                 lsa::detail::key_vector_bytes(config.key_format, config.head_dim);
  }

  /// ceil(num_tokens / chunk_tokens).
  int64_t chunks_of(int64_t num_tokens) const noexcept {
    return (num_tokens + chunk_tokens_ - 1) / chunk_tokens_;
  }

  lsa::ScorerConfig config_;
  int32_t chunk_tokens_;
  int64_t row_bytes_ = 0;
};

/// A baseline whose index is only the token count (recency, oracle): key rows are counted, never
/// read.
class TokenCountingScorer : public BaselineScorer {
 public:
  /// Per-sequence index: only the token count.
  struct Index {
    int64_t num_tokens = 0;  ///< tokens appended
  };
  /// Rows are given per token (the key rows the decoder appends for the other scorers).
  static constexpr lsa::KeyGranularity kGranularity = lsa::KeyGranularity::kToken;

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
    index.num_tokens = index.num_tokens < n ? index.num_tokens : n;
  }
  /// ceil(tokens / chunk_tokens).
  int64_t num_chunks(const Index& index) const noexcept { return chunks_of(index.num_tokens); }

 protected:
  using BaselineScorer::BaselineScorer;
};

}  // namespace lsa_decode
