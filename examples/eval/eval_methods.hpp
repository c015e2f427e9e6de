// The KV selection methods lsa-eval compares, each an lsa session configuration at a page budget.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "session.hpp"

namespace lsa_decode {

/// How a method picks the resident pages.
enum class MethodKind {
  kDense,    ///< every page (the reference)
  kOracle,   ///< the pages the dense run's next `interval` steps attend to most (OracleScorer)
  kLsa,      ///< bound (Quest min/max) scorer, refreshed every `interval` steps with the previous
             ///< token's query (what a lookahead cache can do off the decode path)
  kLearned,  ///< the trained lookahead indexer (lsa::LightningScorer), every `interval` steps
  kQuest,    ///< bound scorer every step with the current token's query (two decode passes)
  kRecency,  ///< sink + the most recent pages (RecencyScorer, every step)
  kRandom,   ///< sink + recent + random pages (RandomScorer, redrawn every `interval` steps)
};

/// "dense", "oracle", "lsa", "learned", "quest", "recency", "random".
std::string_view method_kind_name(MethodKind kind);
/// True for the kinds whose refresh interval is a parameter (their names end in "-iN").
bool has_interval(MethodKind kind);

/// A method without its budget: a kind and, where it has one, a refresh interval.
struct MethodSpec {
  MethodKind kind = MethodKind::kDense;
  int32_t interval = 1;  ///< decode steps between refreshes (1 for dense, quest, recency)
  bool operator==(const MethodSpec&) const = default;
};

/// Parses "dense", "quest", "recency", "random" (every 64 steps) or "<kind>-i<N>" for kinds with
/// an interval ("lsa-i64", "oracle-i1", "learned-i8", "random-i8"); throws DecodeError naming
/// the value otherwise.
MethodSpec parse_method(std::string_view name);

/// One method at one budget.
struct Method {
  MethodKind kind = MethodKind::kDense;
  double budget =
      1.0;  ///< resident pages as a fraction of the context's pages (sink/recent included)
  int32_t interval = 64;  ///< decode steps between refreshes (kinds with has_interval)

  /// Short name without the budget: "dense", "lsa-i8", "oracle-i64", "quest", "recency".
  std::string name() const;
  /// Name and budget: "lsa-i8@10%" ("dense" alone).
  std::string label() const;
  bool operator==(const Method&) const = default;
};

/// Every method to run: dense first (when listed), then for each budget (ascending) each spec in
/// the order given. Throws DecodeError on a budget outside (0, 1].
std::vector<Method> method_grid(std::span<const MethodSpec> specs, std::span<const double> budgets);

/// Chunking, the always-resident sink / recent chunks (they count against the budget) and how
/// pages store K and V (every method and the prefills use it).
struct CacheShape {
  int32_t chunk_tokens = 16;
  int32_t page_chunks = 1;
  int32_t sink_chunks = 1;
  int32_t recent_chunks = 4;  ///< 64 tokens: what an interval of 64 steps appends stays visible
  KvType kv = KvType::kF32;
};

/// The session options of `method` for a context of `max_tokens` tokens (prompt + generated).
/// An oracle method needs `oracle`, the reference run's attention, a learned one `indexer` (others
/// ignore them). A learned method scores chunks of the indexer's size over the same pages, sink
/// and recent tokens (with_chunk_tokens).
CacheOptions cache_options(const Method& method, int64_t max_tokens, const CacheShape& shape = {},
                           std::shared_ptr<const FutureAttention> oracle = nullptr,
                           std::shared_ptr<const IndexerFile> indexer = nullptr);

}  // namespace lsa_decode
