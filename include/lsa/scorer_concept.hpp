// The IndexScorer concept: per-chunk index keys in, one score per chunk out.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <span>

#include "lsa/status.hpp"

namespace lsa {

/// Whether append hands a scorer one key row per token or one per completed chunk.
enum class KeyGranularity : uint8_t {
  kToken,  ///< rows are tokens; lsa summarizes them per chunk (bound, centroid)
  kChunk,  ///< rows are chunks, given when a chunk completes (lightning, embedding)
};

/// Index key rows handed to append: each row is [num_layers][num_key_heads] vectors in key_format.
struct KeyRows {
  const std::byte* data = nullptr;  // [num_rows][row_bytes()]
  int64_t num_rows = 0;             ///< tokens (kToken scorers) or newly completed chunks (kChunk)
};

/// The indexer query of one sequence at a refresh.
struct Query {
  std::span<const float> q;        ///< [num_layers][num_heads][head_dim]
  std::span<const float> weights;  ///< [num_layers][num_heads]; lightning head weights, else empty
};

/// A scorer keeps per-sequence index state (`Index`, copyable for forks) and scores all chunks.
/// Constructed as `S(const ScorerConfig&, int32_t chunk_tokens)`, throwing lsa::Error on bad shapes.
template <class S>
concept IndexScorer =
    std::copyable<typename S::Index> && std::default_initializable<typename S::Index> &&
    requires(const S& s, typename S::Index& index, const typename S::Index& cindex, KeyRows rows,
             Query query, std::span<float> out, int64_t n) {
      { S::kGranularity } -> std::convertible_to<KeyGranularity>;
      // True when scores are probabilities in [0, 1] (threshold selection makes sense).
      { S::kProbabilities } -> std::convertible_to<bool>;
      // Bytes of one key row.
      { s.row_bytes() } noexcept -> std::same_as<int64_t>;
      // kNonFiniteInput when a key (or fp8 scale) is NaN/Inf or an fp8 byte is a NaN code.
      { s.check_keys(rows) } noexcept -> std::same_as<Status>;
      // kInvalidArgument on a wrong shape, kNonFiniteInput on NaN/Inf.
      { s.check_query(query) } noexcept -> std::same_as<Status>;
      // Adds checked rows; may throw std::bad_alloc (the index is then unchanged).
      { s.append(index, rows) } -> std::same_as<void>;
      // Forgets everything past token n (kChunk: keeps the floor(n / chunk_tokens) full chunks).
      { s.truncate(index, n) } noexcept -> std::same_as<void>;
      // Chunks that have a score (kToken: ceil(tokens / chunk_tokens); kChunk: rows appended).
      { s.num_chunks(cindex) } noexcept -> std::same_as<int64_t>;
      // Writes num_chunks(index) scores into out (out.size() >= num_chunks); query already checked.
      { s.score(cindex, query, out) } noexcept -> std::same_as<void>;
    };

}  // namespace lsa
