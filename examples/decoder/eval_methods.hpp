// The KV selection methods lsa-eval compares, each an lsa session configuration at a page budget.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "session.hpp"

namespace lsa_decode {

/// How a method picks the resident pages.
enum class MethodKind {
  kDense,    ///< every page (the reference)
  kLsa,      ///< bound (Quest min/max) scorer, refreshed every `interval` steps with the previous
             ///< token's query (what a lookahead cache can do off the decode path)
  kQuest,    ///< bound scorer every step with the current token's query (two decode passes)
  kRecency,  ///< sink + the most recent pages (RecencyScorer, every step)
  kRandom,   ///< sink + recent + random pages (RandomScorer, redrawn every `interval` steps)
};

/// "dense", "lsa", "quest", "recency", "random".
std::string_view method_kind_name(MethodKind kind);
/// Parses a method_kind_name; throws DecodeError naming the value otherwise.
MethodKind parse_method_kind(std::string_view name);

/// One method at one budget.
struct Method {
  MethodKind kind = MethodKind::kDense;
  double budget =
      1.0;  ///< resident pages as a fraction of the context's pages (sink/recent included)
  int32_t interval = 64;  ///< decode steps between refreshes (kLsa, kRandom)

  /// Short name without the budget: "dense", "lsa-i8", "quest", "recency", "random".
  std::string name() const;
  /// Name and budget: "lsa-i8@10%" ("dense" alone).
  std::string label() const;
  bool operator==(const Method&) const = default;
};

/// Every method to run: dense first (when listed), then for each budget (ascending) each kind in
/// `kinds` order, kLsa once per interval.
std::vector<Method> method_grid(std::span<const MethodKind> kinds, std::span<const double> budgets,
                                std::span<const int32_t> intervals, int32_t random_interval = 64);

/// Chunking and the always-resident sink / recent chunks (they count against the budget).
struct CacheShape {
  int32_t chunk_tokens = 16;
  int32_t page_chunks = 1;
  int32_t sink_chunks = 1;
  int32_t recent_chunks = 1;
};

/// The session options of `method` for a context of `max_tokens` tokens (prompt + generated).
CacheOptions cache_options(const Method& method, int64_t max_tokens, const CacheShape& shape = {});

}  // namespace lsa_decode
