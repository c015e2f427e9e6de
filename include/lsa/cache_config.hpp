// Everything a SparseKVCache needs to know, validated once at construction.
#pragma once

#include <cstdint>
#include <string>

#include "lsa/policy_config.hpp"
#include "lsa/scorer_config.hpp"

namespace lsa {

/// When recalled pages (mirror -> reserve) are copied.
enum class RecallMode : uint8_t {
  kSync,   ///< inside the step that refreshes; the new set serves that same step
  kAsync,  ///< on a worker thread; the new set serves from the first step after all its copies finish
};

/// Configuration of one cache; invalid values throw lsa::Error naming the field.
struct CacheConfig {
  int32_t num_layers = 1;                  ///< model layers whose KV lives in each page
  int64_t bytes_per_token_per_layer = 0;   ///< K and V bytes of one token in one layer
  int32_t chunk_tokens = 4;                ///< tokens per chunk (the scored unit)
  int32_t page_chunks = 16;                ///< chunks per page (the resident / transferred unit)
  int32_t num_slots = 0;                   ///< pages the reserve (fast tier) holds
  int32_t max_sequences = 1;               ///< live sequences at once
  int64_t max_tokens = 1 << 20;            ///< longest sequence
  std::string mirror_path;        ///< empty: mirror in memory; else the mirror is this file,
                                  ///< locked for this cache alone (see mirror_overwrite)
  bool mirror_overwrite = false;  ///< an existing non-empty mirror_path file: false refuses
                                  ///< it (lsa::Error), true discards its contents
  RecallMode recall_mode = RecallMode::kSync;  ///< how recalls are copied
  ScorerConfig scorer;                     ///< indexer shapes
  PolicyConfig policy;                     ///< lookahead policy

  /// Tokens per page.
  constexpr int64_t page_tokens() const { return int64_t{chunk_tokens} * page_chunks; }
  /// Bytes of one layer of one page.
  constexpr int64_t bytes_per_page_per_layer() const { return bytes_per_token_per_layer * page_tokens(); }
  /// Bytes of one page, all layers contiguous.
  constexpr int64_t page_bytes() const { return bytes_per_page_per_layer() * num_layers; }
};

/// Throws lsa::Error naming the first field that breaks a rule.
void validate(const CacheConfig& config);

}  // namespace lsa
