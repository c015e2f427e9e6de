// A baseline lsa::IndexScorer: seeded pseudo-random chunk scores, so a refresh keeps random pages
// at the cache's budget (the "random" method of lsa-eval).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <lsa/scorer_concept.hpp>
#include <lsa/scorer_config.hpp>
#include <lsa/status.hpp>
#include <span>
#include <vector>

#include "baseline_scorer.hpp"
#include "draws.hpp"

namespace lsa_decode {

/// Scores every chunk with a pseudo-random number in [0, 1). The constructor signature is fixed by
/// the concept (no seed argument), so the randomness is seeded by content: a chunk's value is a
/// hash of kSeed and the key bytes of the chunk's first token, redrawn at each refresh by mixing in
/// the history length. The same tokens therefore give the same draws in every run, and a task
/// generator's seed (which decides the tokens) decides the pages. Query values are ignored.
class RandomScorer : public BaselineScorer {
 public:
  /// Per-sequence index: one hash per touched chunk.
  struct Index {
    std::vector<uint64_t> chunk_hash;  ///< [num_chunks]
    int64_t num_tokens = 0;            ///< tokens appended
  };
  /// Rows are given per token (the key rows the decoder appends for the other scorers).
  static constexpr lsa::KeyGranularity kGranularity = lsa::KeyGranularity::kToken;
  /// Scores are uniform draws, not the chunk-is-needed probabilities threshold selection assumes.
  static constexpr bool kProbabilities = false;
  /// Mixed into every draw.
  static constexpr uint64_t kSeed = 0x6C73612D6576616Cull;  // "lsa-eval"

  /// Throws lsa::Error naming the field when a shape is invalid.
  RandomScorer(const lsa::ScorerConfig& config, int32_t chunk_tokens)
      : BaselineScorer(config, chunk_tokens, "random") {}

  /// kInvalidArgument on a negative count or missing data; fp32 keys must be finite.
  lsa::Status check_keys(lsa::KeyRows rows) const noexcept {
    if (rows.num_rows < 0 || (rows.num_rows > 0 && rows.data == nullptr))
      return lsa::Status::kInvalidArgument;
    if (config_.key_format != lsa::KeyFormat::kF32) return lsa::Status::kOk;
    const int64_t n = rows.num_rows * row_bytes_ / int64_t{sizeof(float)};
    for (int64_t i = 0; i < n; ++i) {
      float x;
      std::memcpy(&x, rows.data + i * int64_t{sizeof(float)}, sizeof(x));
      if (!std::isfinite(x)) return lsa::Status::kNonFiniteInput;
    }
    return lsa::Status::kOk;
  }

  /// Hashes the first token of every chunk the rows start; on std::bad_alloc nothing changed.
  void append(Index& index, lsa::KeyRows rows) const {
    const int64_t new_tokens = index.num_tokens + rows.num_rows;
    index.chunk_hash.reserve(static_cast<size_t>((new_tokens + chunk_tokens_ - 1) / chunk_tokens_));
    for (int64_t i = 0; i < rows.num_rows; ++i) {
      if ((index.num_tokens + i) % chunk_tokens_ != 0) continue;
      index.chunk_hash.push_back(hash_row(rows.data + i * row_bytes_));
    }
    index.num_tokens = new_tokens;
  }

  /// Forgets tokens from n on (a chunk cut in the middle keeps its draw).
  void truncate(Index& index, int64_t n) const noexcept {
    index.num_tokens = std::min(index.num_tokens, n);
    index.chunk_hash.resize(static_cast<size_t>(num_chunks(index)));
  }

  /// ceil(tokens / chunk_tokens).
  int64_t num_chunks(const Index& index) const noexcept { return chunks_of(index.num_tokens); }

  /// Uniform draws in [0, 1), new ones whenever the history has grown.
  void score(const Index& index, lsa::Query /*query*/, std::span<float> out) const noexcept {
    const uint64_t salt = mix64(kSeed ^ static_cast<uint64_t>(index.num_tokens));
    const int64_t n = num_chunks(index);
    for (int64_t c = 0; c < n; ++c) {
      const uint64_t h = mix64(index.chunk_hash[static_cast<size_t>(c)] ^ salt);
      out[static_cast<size_t>(c)] =
          static_cast<float>(h >> 40) * 0x1.0p-24f;  // 24 bits: exact floats
    }
  }

 private:
  uint64_t hash_row(const std::byte* row) const noexcept {
    uint64_t h = kSeed;
    int64_t i = 0;
    for (; i + 8 <= row_bytes_; i += 8) {
      uint64_t word;
      std::memcpy(&word, row + i, sizeof(word));
      h = mix64(h ^ word);
    }
    for (; i < row_bytes_; ++i) h = mix64(h ^ static_cast<uint64_t>(row[i]));
    return h;
  }
};

static_assert(lsa::IndexScorer<RandomScorer>);

}  // namespace lsa_decode
