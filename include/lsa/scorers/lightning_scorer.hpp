// The lightning indexer scorer: a trained per-chunk key scored by weighted ReLU heads.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

#include "lsa/detail/chunk_rows.hpp"
#include "lsa/detail/cpu_dispatch.hpp"
#include "lsa/detail/ensemble.hpp"
#include "lsa/detail/key_decode.hpp"
#include "lsa/detail/key_tile.hpp"
#include "lsa/detail/lightning_kernels.hpp"
#include "lsa/detail/prefetch.hpp"
#include "lsa/detail/scorer_checks.hpp"
#include "lsa/scorer_concept.hpp"
#include "lsa/scorer_config.hpp"
#include "lsa/status.hpp"

namespace lsa {

/// Lightning indexer (the reference system's scorer). For chunk n and indexer layer l:
/// `logit = sum_h w[l][h] * relu(q[l][h] . k[n][l])`, layer score `sigmoid(logit + logit_offset)`,
/// layers ensembled by max or mean, so scores are probabilities.
///
/// Rows are chunks: `[num_layers]` key vectors in `key_format` (fp8: head_dim e4m3 bytes then a
/// little-endian fp32 scale, k = fp8 * scale; 132 B at D=128). The key is shared by all heads
/// (num_key_heads must be 1); head_dim <= 1024. Queries need weights `[num_layers][num_heads]`.
class LightningScorer {
 public:
  /// Per-sequence index: the chunks' key rows, byte-exact.
  using Index = detail::ChunkRows;
  /// Rows are given per completed chunk.
  static constexpr KeyGranularity kGranularity = KeyGranularity::kChunk;
  /// Scores are sigmoid outputs.
  static constexpr bool kProbabilities = true;

  /// Throws lsa::Error naming the field when the shapes do not fit this scorer.
  LightningScorer(const ScorerConfig& config, int32_t chunk_tokens)
      : config_(config), chunk_tokens_(chunk_tokens) {
    constexpr const char* kName = "lightning";
    detail::check_common_config(config, chunk_tokens, kName);
    detail::require(config.num_key_heads == 1, "scorer.num_key_heads",
                    "be 1 (one key shared by all heads)", kName, config.num_key_heads);
    detail::require(config.head_dim <= detail::kMaxTileHeadDim, "scorer.head_dim", "be <= 1024",
                    kName, config.head_dim);
    detail::require(std::isfinite(config.logit_offset), "scorer.logit_offset", "be finite", kName,
                    config.logit_offset);
    vector_bytes_ = detail::key_vector_bytes(config.key_format, config.head_dim);
    row_bytes_ = vector_bytes_ * config.num_layers;
    tile_rows_ = detail::tile_rows(config.head_dim);
  }

  /// The configuration this scorer was built with.
  const ScorerConfig& config() const noexcept { return config_; }

  /// Bytes of one chunk row: num_layers key vectors.
  int64_t row_bytes() const noexcept { return row_bytes_; }

  /// kNonFiniteInput on a NaN/Inf key or scale or a NaN fp8 code; kInvalidArgument on a bad count.
  Status check_keys(KeyRows rows) const noexcept {
    return detail::check_key_rows(rows, config_.key_format, config_.num_layers, config_.head_dim);
  }

  /// q must be [num_layers][num_heads][head_dim] and weights [num_layers][num_heads], all finite.
  Status check_query(Query query) const noexcept {
    const int64_t heads = int64_t{config_.num_layers} * config_.num_heads;
    if (static_cast<int64_t>(query.q.size()) != heads * config_.head_dim ||
        static_cast<int64_t>(query.weights.size()) != heads) {
      return Status::kInvalidArgument;
    }
    return detail::all_finite(query.q) && detail::all_finite(query.weights)
               ? Status::kOk
               : Status::kNonFiniteInput;
  }

  /// Appends checked chunk rows; on std::bad_alloc the index is unchanged.
  void append(Index& index, KeyRows rows) const { index.append(rows, row_bytes_); }

  /// Keeps the floor(num_tokens / chunk_tokens) chunks that are still complete.
  void truncate(Index& index, int64_t num_tokens) const noexcept {
    index.truncate(num_tokens, chunk_tokens_, row_bytes_);
  }

  /// Chunks with a row.
  int64_t num_chunks(const Index& index) const noexcept { return index.num_rows; }

  /// Writes num_chunks(index) scores to out; the query has passed check_query. No allocation
  /// (about 80 KiB of stack: a decoded key tile and one layer's transposed query).
  void score(const Index& index, Query query, std::span<float> out) const noexcept {
    const bool use_simd = detail::use_simd_kernels();
    const int64_t head_dim = config_.head_dim;
    const int32_t num_heads = config_.num_heads;
    const bool max_ensemble = config_.ensemble == Ensemble::kMax;
    const bool transposed =
        use_simd && detail::padded_heads(num_heads) * head_dim <= detail::kTransposedQueryFloats;
    detail::KeyTile tile;
    float logits[detail::kMaxTileRows];
    alignas(64) float qt[detail::kTransposedQueryFloats];
    // Layers outer: one transposition per layer; each layer's keys are decoded once either way.
    for (int32_t l = 0; l < config_.num_layers; ++l) {
      const float* q = query.q.data() + int64_t{l} * num_heads * head_dim;
      const float* w = query.weights.data() + int64_t{l} * num_heads;
#if LSA_X86_SIMD
      if (transposed) detail::transpose_query(q, num_heads, head_dim, qt);
#endif
      for (int64_t c0 = 0; c0 < index.num_rows; c0 += tile_rows_) {
        const int64_t n = std::min<int64_t>(tile_rows_, index.num_rows - c0);
        const int64_t next = c0 + tile_rows_;
        if (next < index.num_rows) {
          const int64_t rows = std::min<int64_t>(tile_rows_, index.num_rows - next);
          detail::prefetch_bytes(index.row(next, row_bytes_), rows * row_bytes_);
        }
        const int64_t rows = tile.load(index, row_bytes_, l * vector_bytes_, config_.key_format,
                                       head_dim, c0, n, use_simd);
        logits_of_tile(tile, rows, q, qt, w, logits, use_simd, transposed);
        // Max ensemble folds logits (sigmoid is monotonic: one exp per chunk instead of one per
        // layer); mean needs each layer's probability.
        for (int64_t c = 0; c < n; ++c) {
          const float x = logits[c] + config_.logit_offset;
          logits[c] = max_ensemble ? x : detail::sigmoid(x);
        }
        detail::fold_layer(config_.ensemble, l == 0, logits, out.data() + c0, n);
      }
    }
    const int64_t chunks = index.num_rows;
    if (max_ensemble) {
      for (int64_t c = 0; c < chunks; ++c) out[c] = detail::sigmoid(out[c]);
    } else {
      detail::finish_ensemble(config_.ensemble, config_.num_layers, out.data(), chunks);
    }
  }

 private:
  // Logits of one tile with the fastest kernel available.
  void logits_of_tile(const detail::KeyTile& tile, int64_t rows, const float* q, const float* qt,
                      const float* w, float* logits, bool use_simd,
                      bool transposed) const noexcept {
    const int64_t head_dim = config_.head_dim;
#if LSA_X86_SIMD
    if (transposed && detail::use_avx512_kernels()) {
      return detail::weighted_relu_logits_transposed_avx512<detail::kMaxTileRows>(
          tile.values, rows, head_dim, qt, w, config_.num_heads, tile.scales, logits);
    }
    if (transposed) {
      return detail::weighted_relu_logits_transposed_avx2<detail::kMaxTileRows>(
          tile.values, rows, head_dim, qt, w, config_.num_heads, tile.scales, logits);
    }
    if (use_simd) {
      return detail::weighted_relu_logits_avx2<detail::kMaxTileRows / 4>(
          tile.values, rows, head_dim, q, w, config_.num_heads, tile.scales, logits);
    }
#endif
    (void)qt, (void)use_simd, (void)transposed;
    detail::weighted_relu_logits_generic(tile.values, rows, head_dim, q, w, config_.num_heads,
                                         tile.scales, logits);
  }

  ScorerConfig config_;
  int32_t chunk_tokens_;
  int64_t vector_bytes_ = 0;
  int64_t row_bytes_ = 0;
  int32_t tile_rows_ = 4;
};

static_assert(IndexScorer<LightningScorer>);

}  // namespace lsa
