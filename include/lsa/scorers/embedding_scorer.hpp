// The embedding scorer: a dense dual-encoder embedding per chunk, scored by dot or cosine.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lsa/detail/chunk_rows.hpp"
#include "lsa/detail/cpu_dispatch.hpp"
#include "lsa/detail/dot_kernels.hpp"
#include "lsa/detail/ensemble.hpp"
#include "lsa/detail/key_decode.hpp"
#include "lsa/detail/key_tile.hpp"
#include "lsa/detail/scorer_checks.hpp"
#include "lsa/scorer_concept.hpp"
#include "lsa/scorer_config.hpp"
#include "lsa/status.hpp"

namespace lsa {

/// Training-free dense retrieval scorer: the engine embeds each completed chunk (one vector per
/// layer) and the upcoming query; layer score = q . e, or the cosine when ScorerConfig::cosine (a
/// zero-norm query or embedding scores 0); layers ensembled by max or mean.
///
/// Rows are chunks: `[num_layers][head_dim]` in kF32 or kBF16; num_heads and num_key_heads must be
/// 1; head_dim <= 1024. Query weights are ignored (neither read nor checked).
class EmbeddingScorer {
 public:
  /// Per-sequence index: the chunks' embedding rows, plus their norms when scoring by cosine.
  struct Index {
    detail::ChunkRows rows;    ///< embedding rows, byte-exact
    std::vector<float> norms;  ///< [num_rows][num_layers] when cosine, else empty
  };
  /// Rows are given per completed chunk.
  static constexpr KeyGranularity kGranularity = KeyGranularity::kChunk;
  /// Scores are unnormalized similarities.
  static constexpr bool kProbabilities = false;

  /// Throws lsa::Error naming the field when the shapes or the key format do not fit this scorer.
  EmbeddingScorer(const ScorerConfig& config, int32_t chunk_tokens)
      : config_(config), chunk_tokens_(chunk_tokens) {
    constexpr const char* kName = "embedding";
    detail::check_common_config(config, chunk_tokens, kName);
    detail::require(config.num_heads == 1, "scorer.num_heads", "be 1 (one embedding per layer)",
                    kName, config.num_heads);
    detail::require(config.key_format != KeyFormat::kFp8E4M3, "scorer.key_format",
                    "be kF32 or kBF16", kName, static_cast<int>(config.key_format));
    detail::require(config.head_dim <= detail::kMaxTileHeadDim, "scorer.head_dim", "be <= 1024",
                    kName, config.head_dim);
    vector_bytes_ = detail::key_vector_bytes(config.key_format, config.head_dim);
    row_bytes_ = vector_bytes_ * config.num_layers;
    tile_rows_ = detail::tile_rows(config.head_dim);
  }

  /// The configuration this scorer was built with.
  const ScorerConfig& config() const noexcept { return config_; }

  /// Bytes of one chunk row: num_layers embeddings.
  int64_t row_bytes() const noexcept { return row_bytes_; }

  /// kNonFiniteInput on a NaN/Inf value; kInvalidArgument on a bad count.
  Status check_keys(KeyRows rows) const noexcept {
    return detail::check_key_rows(rows, config_.key_format, config_.num_layers, config_.head_dim);
  }

  /// q must be [num_layers][head_dim], all finite; weights are ignored.
  Status check_query(Query query) const noexcept {
    return detail::check_floats(query.q, int64_t{config_.num_layers} * config_.head_dim);
  }

  /// Appends checked chunk rows; on std::bad_alloc the index is unchanged.
  void append(Index& index, KeyRows rows) const {
    if (rows.num_rows <= 0) return;
    const int64_t first = index.rows.num_rows;
    if (config_.cosine) {
      index.norms.reserve(static_cast<size_t>((first + rows.num_rows) * config_.num_layers));
    }
    index.rows.append(rows, row_bytes_);  // the last step that may throw
    if (!config_.cosine) return;
    for (int64_t c = first; c < index.rows.num_rows; ++c) {
      for (int32_t l = 0; l < config_.num_layers; ++l) {
        index.norms.push_back(norm(index.rows.row(c, row_bytes_) + l * vector_bytes_));
      }
    }
  }

  /// Keeps the floor(num_tokens / chunk_tokens) chunks that are still complete.
  void truncate(Index& index, int64_t num_tokens) const noexcept {
    index.rows.truncate(num_tokens, chunk_tokens_, row_bytes_);
    if (config_.cosine) {
      index.norms.resize(static_cast<size_t>(index.rows.num_rows * config_.num_layers));
    }
  }

  /// Chunks with a row.
  int64_t num_chunks(const Index& index) const noexcept { return index.rows.num_rows; }

  /// Writes num_chunks(index) scores to out; the query has passed check_query. No allocation.
  void score(const Index& index, Query query, std::span<float> out) const noexcept {
    const bool use_simd = detail::use_simd_kernels();
    const int64_t head_dim = config_.head_dim;
    const detail::HeadLayout layout{head_dim, 0, 1, 1, head_dim};
    detail::KeyTile tile;
    float layer[detail::kMaxTileRows];
    for (int64_t c0 = 0; c0 < index.rows.num_rows; c0 += tile_rows_) {
      const int64_t n = std::min<int64_t>(tile_rows_, index.rows.num_rows - c0);
      float* block = out.data() + c0;
      for (int32_t l = 0; l < config_.num_layers; ++l) {
        const float* q = query.q.data() + int64_t{l} * head_dim;
        tile.load(index.rows, row_bytes_, l * vector_bytes_, config_.key_format, head_dim, c0, n,
                  use_simd);
        detail::max_over_heads<detail::DotMode::kDot>(tile.values, n, layout, q, layer, use_simd);
        if (config_.cosine) {
          const float q_norm = norm(q);
          for (int64_t c = 0; c < n; ++c) {
            const float k_norm =
                index.norms[static_cast<size_t>((c0 + c) * config_.num_layers + l)];
            // Two divisions: the product of the norms could overflow or underflow.
            layer[c] = q_norm > 0.0f && k_norm > 0.0f ? layer[c] / q_norm / k_norm : 0.0f;
          }
        }
        detail::fold_layer(config_.ensemble, l == 0, layer, block, n);
      }
      detail::finish_ensemble(config_.ensemble, config_.num_layers, block, n);
    }
  }

 private:
  // Euclidean norm of head_dim floats, accumulated in double so it is exact to float rounding.
  float norm(const float* v) const noexcept {
    double sum = 0.0;
    for (int64_t d = 0; d < config_.head_dim; ++d) sum += double{v[d]} * v[d];
    return static_cast<float>(std::sqrt(sum));
  }
  // Norm of one stored embedding.
  float norm(const std::byte* vector) const noexcept {
    double sum = 0.0;
    for (int64_t d = 0; d < config_.head_dim; ++d) {
      const double x = config_.key_format == KeyFormat::kBF16
                           ? detail::key_element<KeyFormat::kBF16>(vector, d)
                           : detail::key_element<KeyFormat::kF32>(vector, d);
      sum += x * x;
    }
    return static_cast<float>(std::sqrt(sum));
  }

  ScorerConfig config_;
  int32_t chunk_tokens_;
  int64_t vector_bytes_ = 0;
  int64_t row_bytes_ = 0;
  int32_t tile_rows_ = 4;
};

static_assert(IndexScorer<EmbeddingScorer>);

}  // namespace lsa
