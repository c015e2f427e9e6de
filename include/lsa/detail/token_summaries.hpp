// Per-chunk float summaries built from token keys, for the token-granular scorers (bound,
// centroid).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "lsa/detail/key_decode.hpp"
#include "lsa/scorer_concept.hpp"
#include "lsa/scorer_config.hpp"

namespace lsa::detail {

/// Summaries of every chunk touched so far; the last chunk may be partial. A scorer stores them
/// as floats or, where that is exact and halves memory and scoring bandwidth, as bf16 bits.
struct TokenSummaries {
  std::vector<float> values;          ///< [num_chunks][values_per_chunk] floats, or empty
  std::vector<uint16_t> bf16_values;  ///< [num_chunks][values_per_chunk] bf16 bits, or empty
  int64_t num_tokens = 0;             ///< tokens summarized

  /// Chunks touched by the summarized tokens.
  int64_t num_chunks(int32_t chunk_tokens) const noexcept {
    return (num_tokens + chunk_tokens - 1) / chunk_tokens;
  }

  /// The storage for summaries of type T (float or uint16_t bf16 bits).
  template <class T>
  std::vector<T>& storage() noexcept {
    if constexpr (std::is_same_v<T, float>) {
      return values;
    } else {
      static_assert(std::is_same_v<T, uint16_t>, "summaries are float or bf16 bits");
      return bf16_values;
    }
  }
};

/// Adds token rows of `vectors_per_row` key vectors each. A chunk's first token initializes its
/// summary (Summary::init), later tokens merge into it (Summary::merge); a summary holds
/// Summary::kValuesPerDim values per key dimension, of type Summary::Stored<key format>.
/// On std::bad_alloc nothing changed: the only allocation comes first.
template <class Summary>
void append_token_rows(TokenSummaries& index, KeyRows rows, KeyFormat format, int32_t chunk_tokens,
                       int64_t vectors_per_row, int64_t head_dim) {
  if (rows.num_rows <= 0) return;
  const int64_t values_per_vector = Summary::kValuesPerDim * head_dim;
  const int64_t values_per_chunk = vectors_per_row * values_per_vector;
  const int64_t new_tokens = index.num_tokens + rows.num_rows;
  const int64_t new_chunks = (new_tokens + chunk_tokens - 1) / chunk_tokens;
  const int64_t vector_bytes = key_vector_bytes(format, head_dim);
  auto run = [&](auto format_tag) {
    constexpr KeyFormat kFormat = decltype(format_tag)::value;
    using Stored = typename Summary::template Stored<kFormat>;
    std::vector<Stored>& values = index.storage<Stored>();
    values.resize(static_cast<size_t>(new_chunks * values_per_chunk));
    for (int64_t i = 0; i < rows.num_rows; ++i) {
      const int64_t t = index.num_tokens + i;
      const bool fresh = t % chunk_tokens == 0;
      Stored* chunk = values.data() + (t / chunk_tokens) * values_per_chunk;
      const std::byte* row = rows.data + i * vectors_per_row * vector_bytes;
      for (int64_t v = 0; v < vectors_per_row; ++v) {
        Stored* summary = chunk + v * values_per_vector;
        const std::byte* key = row + v * vector_bytes;
        if (fresh) {
          Summary::template init<kFormat>(summary, key, head_dim);
        } else {
          Summary::template merge<kFormat>(summary, key, head_dim);
        }
      }
    }
  };
  if (format == KeyFormat::kBF16) {
    run(std::integral_constant<KeyFormat, KeyFormat::kBF16>{});
  } else {
    run(std::integral_constant<KeyFormat, KeyFormat::kF32>{});
  }
  index.num_tokens = new_tokens;
}

/// Forgets tokens from `num_tokens` on: chunks past the cut go; a chunk cut in the middle keeps
/// its summary (the caller decides what that summary then means).
inline void truncate_token_summaries(TokenSummaries& index, int64_t num_tokens,
                                     int32_t chunk_tokens, int64_t values_per_chunk) noexcept {
  num_tokens = std::max<int64_t>(num_tokens, 0);
  if (num_tokens >= index.num_tokens) return;
  index.num_tokens = num_tokens;
  // Shrinking never reallocates, so this cannot throw; only the storage in use is touched.
  const auto size = static_cast<size_t>(index.num_chunks(chunk_tokens) * values_per_chunk);
  if (!index.values.empty()) index.values.resize(size);
  if (!index.bf16_values.empty()) index.bf16_values.resize(size);
}

}  // namespace lsa::detail
