// A stack tile of decoded key vectors, so scoring never allocates and decodes each key once.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "lsa/detail/chunk_rows.hpp"
#include "lsa/detail/key_decode.hpp"
#include "lsa/scorer_config.hpp"

namespace lsa::detail {

/// Floats in a tile (16 KiB: half of a typical L1d, the other half serves the query rows).
inline constexpr int64_t kTileFloats = 4096;
/// Most rows in a tile; beyond this the query rows are reused enough already.
inline constexpr int32_t kMaxTileRows = 32;
/// Largest head_dim a tile holds (4 rows, one micro-kernel block).
inline constexpr int32_t kMaxTileHeadDim = static_cast<int32_t>(kTileFloats / 4);

/// Rows per tile for `head_dim`: a multiple of 4 in [4, kMaxTileRows].
constexpr int32_t tile_rows(int64_t head_dim) noexcept {
  return static_cast<int32_t>(std::clamp<int64_t>(kTileFloats / head_dim / 4 * 4, 4, kMaxTileRows));
}

/// Decoded vectors of one layer for a block of chunks, plus their fp8 scales (1 otherwise).
struct KeyTile {
  alignas(64) float values[kTileFloats];  ///< [rows][head_dim]
  float scales[kMaxTileRows];             ///< per row

  /// Decodes the vectors at byte `offset` of rows [c0, c0 + n) (n <= tile_rows(head_dim)) and
  /// zero-fills rows up to the next multiple of 4; returns that padded row count.
  int64_t load(const ChunkRows& rows, int64_t row_bytes, int64_t offset, KeyFormat format,
               int64_t head_dim, int64_t c0, int64_t n, bool use_simd) noexcept {
    decode_vectors(format, rows.row(c0, row_bytes) + offset, row_bytes, n, head_dim, values, scales,
                   use_simd);
    const int64_t padded = (n + 3) / 4 * 4;
    std::fill(values + n * head_dim, values + padded * head_dim, 0.0f);
    std::fill(scales + n, scales + padded, 0.0f);
    return padded;
  }
};

}  // namespace lsa::detail
