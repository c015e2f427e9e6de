// One training document through the model: a dense prefill that taps the residual stream and
// every layer's chunk attention, then the chunk features, the refresh rows and their labels.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "dump_writer.hpp"
#include "lookahead_labels.hpp"

namespace lsa_decode {
class LlamaModel;
}

namespace lsa_indexer {

/// What to take from each document.
struct DumpConfig {
  LabelConfig labels;
  std::vector<int32_t> taps;   ///< layers whose entering residual stream is a feature
  int32_t refresh_stride = 64;  ///< regular refreshes at multiples of this ...
  int32_t min_history = 128;    ///< ... from this many tokens of history on
};

/// A refresh position chosen for a reason other than the stride.
struct SpecialRefresh {
  int64_t position = 0;
  RefreshKind kind = RefreshKind::kQuestion;
};

/// Per-document counts, for the log.
struct DocumentStats {
  int64_t refreshes = 0;
  int64_t positives = 0;
  int64_t candidates = 0;
};

/// Runs `tokens` through `model` and appends the document to `writer`.
DocumentStats dump_document(const lsa_decode::LlamaModel& model, std::span<const int32_t> tokens,
                            DocKind kind, std::span<const SpecialRefresh> special,
                            const DumpConfig& config, DumpWriter& writer);

/// The refresh positions of a document of `num_tokens` tokens: multiples of the stride from
/// min_history on, and the special ones, ascending, without repeats.
std::vector<std::pair<int64_t, RefreshKind>> refresh_positions(
    int64_t num_tokens, std::span<const SpecialRefresh> special, const DumpConfig& config);

}  // namespace lsa_indexer
