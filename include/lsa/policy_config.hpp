// Knobs of the lookahead policy: when to refresh and how scores become a resident set.
#pragma once

#include <cstdint>

namespace lsa {

/// Which chunks a refresh keeps before pages are ranked.
enum class Selection : uint8_t {
  kThreshold,  ///< chunks with score > threshold (the reference system; scores are probabilities)
  kTopK,       ///< the top_k_chunks best chunks
  kTopP,       ///< the fewest best chunks holding top_p of the attention mass (softmax of scores)
};

/// How kept chunks become a page score.
enum class PageScore : uint8_t {
  kKeptChunks,  ///< number of kept chunks in the page (the reference system)
  kScoreMass,   ///< sum of the scores of kept chunks in the page
};

/// Lookahead policy configuration; defaults are the reference system's.
struct PolicyConfig {
  int32_t interval = 64;       ///< decode steps between refreshes of one sequence
  bool spread_phase = true;    ///< give each sequence its own refresh phase so a batch's refreshes spread out
  Selection selection = Selection::kThreshold;  ///< chunk selection rule
  float threshold = 0.5f;      ///< kThreshold: keep chunks with score > threshold
  int64_t top_k_chunks = 2048; ///< kTopK: chunks kept
  float top_p = 0.9f;          ///< kTopP: attention mass kept, in (0, 1]
  PageScore page_score = PageScore::kKeptChunks;  ///< page ranking
  int32_t kmax_pages = 1024;    ///< resident pages per sequence, forced pages included
  int32_t sink_chunks = 1;     ///< first chunks always resident
  int32_t recent_chunks = 2048;  ///< last chunks always resident
  float hysteresis = 0.0f;     ///< a resident page's score gets this bonus when ranking (page-score units)
  int32_t max_recall_pages = 0;  ///< cap on pages newly recalled per refresh; 0 = no cap
};

}  // namespace lsa
