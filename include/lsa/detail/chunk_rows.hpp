// Per-sequence storage of the key rows that chunk-granular scorers (lightning, embedding) read.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "lsa/scorer_concept.hpp"

namespace lsa::detail {

/// Key rows of completed chunks, byte-exact in the format they were given (fp8 stays 132 B/chunk).
struct ChunkRows {
  std::vector<std::byte> bytes;  ///< [num_rows][row_bytes]
  int64_t num_rows = 0;          ///< chunks with a row

  /// Appends rows; on std::bad_alloc nothing changed (vector insert at the end is all-or-nothing).
  void append(KeyRows rows, int64_t row_bytes) {
    if (rows.num_rows <= 0) return;
    bytes.insert(bytes.end(), rows.data, rows.data + rows.num_rows * row_bytes);
    num_rows += rows.num_rows;
  }

  /// Keeps the chunks that the first `num_tokens` tokens fill completely.
  void truncate(int64_t num_tokens, int32_t chunk_tokens, int64_t row_bytes) noexcept {
    const int64_t keep = std::clamp<int64_t>(num_tokens / chunk_tokens, 0, num_rows);
    // Shrinking never reallocates, so this cannot throw.
    bytes.resize(static_cast<size_t>(keep * row_bytes));
    num_rows = keep;
  }

  /// Row c.
  const std::byte* row(int64_t c, int64_t row_bytes) const noexcept {
    return bytes.data() + c * row_bytes;
  }
};

}  // namespace lsa::detail
