// The memory indexer's training labels, read off the model's attention in a dense prefill:
// golden chunks per position and lookahead positives per refresh (DESIGN.md s.1 and s.8).
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>
#include <vector>

namespace lsa_indexer {

/// How golden chunks and lookahead positives are defined.
struct LabelConfig {
  int32_t chunk_tokens = 16;  ///< tokens per chunk (the cache's chunk size)
  /// Per position and layer, the kept chunks are the fewest of largest attention mass whose mass
  /// reaches top_p of the layer's total (ties to the lower chunk): the chunk that crosses top_p is
  /// kept.
  double top_p = 0.6;
  int32_t min_layers = 3;   ///< a chunk is golden at a position when this many layers keep it
  int32_t lookahead = 64;   ///< a refresh at t is labelled by the positions [t, t + lookahead)
};

/// Labels of one refresh at position t (it decodes token t with the state of token t - 1): the
/// candidates are the chunks complete at t, [0, t / chunk_tokens).
struct RefreshLabels {
  int64_t position = 0;
  int64_t num_candidates = 0;
  std::vector<int32_t> positives;  ///< golden at some position of [t, t + lookahead), ascending
  std::vector<int32_t> next_positives;  ///< golden at position t itself, ascending
  std::vector<float> future_mass;       ///< [num_candidates]: attention of [t, t + lookahead) on
                                        ///< each candidate, summed over layers and heads
  /// [num_candidates]: the most layers keeping the candidate at one position of the window, so
  /// that the positives under any min_layers m are the candidates with window_layers >= m.
  std::vector<uint8_t> window_layers;
  std::vector<uint8_t> next_layers;  ///< [num_candidates]: layers keeping it at position t
};

/// Accumulates a document's attention layer by layer (ForwardTaps::on_chunk_mass) and produces
/// the labels of the refresh positions it was given.
class LookaheadLabeler {
 public:
  /// `refresh_positions` must lie in [1, num_tokens) (a window that runs past the document's end
  /// is cut there); throws DecodeError otherwise or on a bad config.
  LookaheadLabeler(int64_t num_tokens, const LabelConfig& config,
                   std::vector<int64_t> refresh_positions);

  /// Chunks of the document (the last one may be partial).
  int64_t num_chunks() const { return num_chunks_; }

  /// One layer's attention: mass[i * num_chunks() + c] of position i on chunk c, summed over heads.
  void add_layer(std::span<const float> mass);

  /// Golden chunks of position i, ascending (after every layer was added).
  std::vector<int32_t> golden(int64_t i) const;

  /// The labels of every refresh position, in the order given.
  std::vector<RefreshLabels> labels() const;

 private:
  int64_t num_tokens_;
  LabelConfig config_;
  int64_t num_chunks_;
  std::vector<int64_t> refreshes_;
  std::vector<uint8_t> kept_;               // [num_tokens][num_chunks]: layers keeping the chunk
  std::vector<std::vector<float>> future_;  // per refresh: [candidates]
  std::vector<int32_t> order_;              // scratch: chunks by mass

  int64_t window_end(int64_t t) const { return std::min(t + config_.lookahead, num_tokens_); }
};

}  // namespace lsa_indexer
