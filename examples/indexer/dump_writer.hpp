// The memory indexer's training dump on disk: NumPy arrays that the trainer (Python) reads with
// numpy.load, plus meta.json. Layout (R refreshes, C complete chunks over all documents, T taps,
// d the model width; "offsets" arrays are CSR row pointers):
//
//   doc_tokens [D] i64, doc_kind [D] u8 (0 training text, 1 synthetic retrieval),
//   doc_chunk_offsets [D + 1] i64            chunks of document j: rows [o[j], o[j+1])
//   chunk_features [C, T, d] f32              mean residual stream over the chunk's tokens
//   refresh_doc [R] i32, refresh_position [R] i64, refresh_kind [R] u8 (0 regular,
//                                             1 in a question, 2 in an answer)
//   query_features [R, T, d] f32              residual stream of the token before the refresh
//   candidate_offsets [R + 1] i64             candidates of refresh r: its document's first
//                                             o[r+1] - o[r] chunks (those complete at t)
//   future_mass [sum] f32                     per candidate: attention of the lookahead window
//   bound_scores [sum] f32                    per candidate: the bound (Quest) scorer's score
//                                             with the query of the token before t
//   window_layers [sum] u8, next_layers [sum] u8   per candidate: the most layers keeping it at
//                                             one position of the window / at t (relabel with
//                                             another min_layers: window_layers >= m)
//   positive_offsets [R + 1] i64, positives [P] i32            lookahead positives
//   next_positive_offsets [R + 1] i64, next_positives [Q] i32  golden chunks at t itself
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "lookahead_labels.hpp"
#include "npy_writer.hpp"

namespace lsa_indexer {

/// What kind of document a row comes from.
enum class DocKind : uint8_t { kText = 0, kSynthetic = 1 };
/// Why a refresh position was sampled.
enum class RefreshKind : uint8_t {
  kRegular = 0,   ///< a multiple of the refresh stride
  kQuestion = 1,  ///< a position of a synthetic document's question (its first: setting b's refresh)
  kAnswer = 2,    ///< a position of its answer (its first: setting a's refresh)
};

/// Streams the dump's arrays into a directory.
class DumpWriter {
 public:
  /// Creates `dir` (and its arrays) for features of `num_taps` taps of width `d_model`.
  DumpWriter(const std::string& dir, int32_t num_taps, int32_t d_model);

  /// Starts the next document.
  void begin_doc(int64_t num_tokens, DocKind kind);
  /// Appends the document's complete chunks: [num_chunks][taps][d_model] features.
  void add_chunks(std::span<const float> features);
  /// Appends one refresh of the current document.
  void add_refresh(const RefreshLabels& labels, RefreshKind kind, std::span<const float> query,
                   std::span<const float> bound_scores);

  int64_t num_docs() const { return static_cast<int64_t>(doc_tokens_.size()); }
  int64_t num_refreshes() const { return static_cast<int64_t>(candidate_offsets_.size()) - 1; }
  int64_t num_chunks() const { return chunk_offsets_.back(); }

  /// Writes the offsets arrays and `meta_json` (meta.json), and closes every file.
  void finish(const std::string& meta_json);

 private:
  std::string dir_;
  int64_t feature_floats_;
  std::unique_ptr<NpyWriter> chunk_features_, query_features_, refresh_doc_, refresh_position_,
      refresh_kind_, future_mass_, bound_scores_, window_layers_, next_layers_, positives_,
      next_positives_;
  std::vector<int64_t> doc_tokens_, chunk_offsets_ = {0}, candidate_offsets_ = {0},
                                    positive_offsets_ = {0}, next_positive_offsets_ = {0};
  std::vector<uint8_t> doc_kind_;
};

}  // namespace lsa_indexer
