#include "eval_methods.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cmath>

#include "error.hpp"

namespace lsa_decode {
namespace {

constexpr MethodKind kAllKinds[] = {MethodKind::kDense,   MethodKind::kOracle,
                                    MethodKind::kLsa,     MethodKind::kLearned,
                                    MethodKind::kQuest,   MethodKind::kRecency,
                                    MethodKind::kRandom};
constexpr int32_t kDefaultRandomInterval = 64;

}  // namespace

std::string_view method_kind_name(MethodKind kind) {
  switch (kind) {
    case MethodKind::kDense:
      return "dense";
    case MethodKind::kOracle:
      return "oracle";
    case MethodKind::kLsa:
      return "lsa";
    case MethodKind::kLearned:
      return "learned";
    case MethodKind::kQuest:
      return "quest";
    case MethodKind::kRecency:
      return "recency";
    case MethodKind::kRandom:
      return "random";
  }
  return "?";
}

bool has_interval(MethodKind kind) {
  return kind == MethodKind::kOracle || kind == MethodKind::kLsa || kind == MethodKind::kLearned ||
         kind == MethodKind::kRandom;
}

MethodSpec parse_method(std::string_view name) {
  const size_t dash = name.rfind("-i");
  const std::string_view base = dash == std::string_view::npos ? name : name.substr(0, dash);
  for (const MethodKind k : kAllKinds) {
    if (method_kind_name(k) != base) continue;
    if (dash == std::string_view::npos) {
      if (k == MethodKind::kRandom) return {k, kDefaultRandomInterval};
      if (!has_interval(k)) return {k, 1};
      break;
    }
    const std::string_view digits = name.substr(dash + 2);
    int32_t interval = 0;
    const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), interval);
    if (!has_interval(k) || ec != std::errc{} || end != digits.data() + digits.size() ||
        interval < 1 || interval > (1 << 20)) {
      break;
    }
    return {k, interval};
  }
  throw DecodeError(fmt::format(
      "unknown method '{}' (methods: dense, quest, recency, random, and lsa-iN, oracle-iN, "
      "learned-iN, random-iN with a refresh interval N in [1, 2^20], e.g. lsa-i64)",
      name));
}

std::string Method::name() const {
  if (has_interval(kind) && !(kind == MethodKind::kRandom && interval == kDefaultRandomInterval)) {
    return fmt::format("{}-i{}", method_kind_name(kind), interval);
  }
  return std::string(method_kind_name(kind));
}

std::string Method::label() const {
  if (kind == MethodKind::kDense) return name();
  return fmt::format("{}@{:g}%", name(), std::round(budget * 1000.0) / 10.0);
}

std::vector<Method> method_grid(std::span<const MethodSpec> specs, std::span<const double> budgets) {
  std::vector<Method> out;
  const auto dense = [](const MethodSpec& s) { return s.kind == MethodKind::kDense; };
  if (std::any_of(specs.begin(), specs.end(), dense)) out.push_back({MethodKind::kDense, 1.0, 1});
  std::vector<double> sorted(budgets.begin(), budgets.end());
  std::sort(sorted.begin(), sorted.end());
  for (const double b : sorted) {
    if (!(b > 0.0 && b <= 1.0))
      throw DecodeError(fmt::format("a budget must be in (0, 1] (got {})", b));
    for (const MethodSpec& s : specs) {
      if (!dense(s)) out.push_back({s.kind, b, s.interval});
    }
  }
  return out;
}

CacheOptions cache_options(const Method& method, int64_t max_tokens, const CacheShape& shape,
                           std::shared_ptr<const FutureAttention> oracle,
                           std::shared_ptr<const IndexerFile> indexer) {
  CacheOptions o;
  o.max_tokens = max_tokens;
  o.chunk_tokens = shape.chunk_tokens;
  o.page_chunks = shape.page_chunks;
  o.sink_chunks = shape.sink_chunks;
  o.recent_chunks = shape.recent_chunks;
  o.kv = shape.kv;
  o.budget_fraction = method.budget;
  o.interval = method.interval;
  switch (method.kind) {
    case MethodKind::kDense:
      o.dense = true;
      break;
    case MethodKind::kOracle:
      if (oracle == nullptr) {
        throw DecodeError(fmt::format("{} needs the dense run's attention", method.label()));
      }
      o.scorer = ScorerKind::kOracle;
      o.oracle = std::move(oracle);
      break;
    case MethodKind::kLsa:
      o.scorer = ScorerKind::kBound;
      break;
    case MethodKind::kLearned:
      if (indexer == nullptr) {
        throw DecodeError(fmt::format("{} needs an indexer file (--indexer)", method.label()));
      }
      o = with_chunk_tokens(std::move(o), indexer->chunk_tokens());
      o.scorer = ScorerKind::kLearned;
      o.indexer = std::move(indexer);
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
