#include "eval_methods.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "error.hpp"

namespace lsa_decode {

std::string_view method_kind_name(MethodKind kind) {
  switch (kind) {
    case MethodKind::kDense:
      return "dense";
    case MethodKind::kLsa:
      return "lsa";
    case MethodKind::kQuest:
      return "quest";
    case MethodKind::kRecency:
      return "recency";
    case MethodKind::kRandom:
      return "random";
  }
  return "?";
}

MethodKind parse_method_kind(std::string_view name) {
  for (MethodKind k : {MethodKind::kDense, MethodKind::kLsa, MethodKind::kQuest,
                       MethodKind::kRecency, MethodKind::kRandom}) {
    if (method_kind_name(k) == name) return k;
  }
  throw DecodeError(
      fmt::format("unknown method '{}' (methods: dense, lsa, quest, recency, random)", name));
}

std::string Method::name() const {
  if (kind == MethodKind::kLsa) return fmt::format("lsa-i{}", interval);
  return std::string(method_kind_name(kind));
}

std::string Method::label() const {
  if (kind == MethodKind::kDense) return name();
  return fmt::format("{}@{:g}%", name(), std::round(budget * 1000.0) / 10.0);
}

std::vector<Method> method_grid(std::span<const MethodKind> kinds, std::span<const double> budgets,
                                std::span<const int32_t> intervals, int32_t random_interval) {
  std::vector<Method> out;
  if (std::find(kinds.begin(), kinds.end(), MethodKind::kDense) != kinds.end()) {
    out.push_back({MethodKind::kDense, 1.0, 1});
  }
  std::vector<double> sorted(budgets.begin(), budgets.end());
  std::sort(sorted.begin(), sorted.end());
  for (const double b : sorted) {
    if (!(b > 0.0 && b <= 1.0))
      throw DecodeError(fmt::format("a budget must be in (0, 1] (got {})", b));
    for (const MethodKind k : kinds) {
      switch (k) {
        case MethodKind::kDense:
          break;
        case MethodKind::kLsa:
          for (const int32_t i : intervals) out.push_back({k, b, i});
          break;
        case MethodKind::kQuest:
        case MethodKind::kRecency:
          out.push_back({k, b, 1});
          break;
        case MethodKind::kRandom:
          out.push_back({k, b, random_interval});
          break;
      }
    }
  }
  return out;
}

CacheOptions cache_options(const Method& method, int64_t max_tokens, const CacheShape& shape) {
  CacheOptions o;
  o.max_tokens = max_tokens;
  o.chunk_tokens = shape.chunk_tokens;
  o.page_chunks = shape.page_chunks;
  o.sink_chunks = shape.sink_chunks;
  o.recent_chunks = shape.recent_chunks;
  o.budget_fraction = method.budget;
  o.interval = method.interval;
  switch (method.kind) {
    case MethodKind::kDense:
      o.dense = true;
      break;
    case MethodKind::kLsa:
      o.scorer = ScorerKind::kBound;
      break;
    case MethodKind::kQuest:
      o.scorer = ScorerKind::kBound;
      o.interval = 1;
      o.current_query = true;
      break;
    case MethodKind::kRecency:
      o.scorer = ScorerKind::kRecency;
      o.interval = 1;
      break;
    case MethodKind::kRandom:
      o.scorer = ScorerKind::kRandom;
      break;
  }
  return o;
}

}  // namespace lsa_decode
