// Validation of CacheConfig: one rule per field, each error names the field and the rule.
#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "lsa/cache_config.hpp"
#include "lsa/chunker.hpp"
#include "lsa/error.hpp"

namespace lsa {
namespace {

template <class... Args>
[[noreturn]] void fail(fmt::format_string<Args...> format, Args&&... args) {
  throw Error(fmt::format(format, std::forward<Args>(args)...));
}

void validate_policy(const CacheConfig& c) {
  const PolicyConfig& p = c.policy;
  if (p.interval < 1) fail("policy.interval must be >= 1 (got {})", p.interval);
  // Enum fields can hold any value of their underlying type (a cast, a config file, memory).
  if (static_cast<int>(p.selection) > static_cast<int>(Selection::kTopP)) {
    fail("policy.selection must be kThreshold, kTopK or kTopP (got {})",
         static_cast<int>(p.selection));
  }
  if (static_cast<int>(p.page_score) > static_cast<int>(PageScore::kScoreMass)) {
    fail("policy.page_score must be kKeptChunks or kScoreMass (got {})",
         static_cast<int>(p.page_score));
  }
  if (!std::isfinite(p.threshold)) fail("policy.threshold must be finite (got {})", p.threshold);
  if (p.top_k_chunks < 1) fail("policy.top_k_chunks must be >= 1 (got {})", p.top_k_chunks);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) fail("policy.top_p must be in (0, 1] (got {})", p.top_p);
  if (p.sink_chunks < 0) fail("policy.sink_chunks must be >= 0 (got {})", p.sink_chunks);
  if (p.recent_chunks < 0) fail("policy.recent_chunks must be >= 0 (got {})", p.recent_chunks);
  if (!(std::isfinite(p.hysteresis) && p.hysteresis >= 0.0f)) {
    fail("policy.hysteresis must be finite and >= 0 (got {})", p.hysteresis);
  }
  if (p.max_recall_pages < 0) {
    fail("policy.max_recall_pages must be >= 0, 0 meaning no cap (got {})", p.max_recall_pages);
  }
  const int64_t forced = Chunker(c.chunk_tokens, c.page_chunks).max_forced_pages(p.sink_chunks, p.recent_chunks);
  if (p.kmax_pages < forced) {
    fail(
        "policy.kmax_pages must be >= the pages sink, recent and tail can force ({}: sink {} chunks, "
        "recent {} chunks, {} chunks per page) (got {})",
        forced, p.sink_chunks, p.recent_chunks, c.page_chunks, p.kmax_pages);
  }
}

}  // namespace

void validate(const CacheConfig& c) {
  if (c.num_layers < 1) fail("num_layers must be >= 1 (got {})", c.num_layers);
  if (c.bytes_per_token_per_layer < 1) {
    fail("bytes_per_token_per_layer must be >= 1 (got {})", c.bytes_per_token_per_layer);
  }
  if (c.chunk_tokens < 1) fail("chunk_tokens must be >= 1 (got {})", c.chunk_tokens);
  if (c.page_chunks < 1) fail("page_chunks must be >= 1 (got {})", c.page_chunks);
  constexpr int64_t kMaxPageBytes = int64_t{1} << 40;
  if (c.page_tokens() > (int64_t{1} << 30) ||
      c.bytes_per_token_per_layer > kMaxPageBytes / c.page_tokens() / c.num_layers) {
    fail("page bytes (bytes_per_token_per_layer * chunk_tokens * page_chunks * num_layers) must be <= 2^40");
  }
  if (c.max_sequences < 1) fail("max_sequences must be >= 1 (got {})", c.max_sequences);
  if (static_cast<int>(c.recall_mode) > static_cast<int>(RecallMode::kAsync)) {
    fail("recall_mode must be kSync or kAsync (got {})", static_cast<int>(c.recall_mode));
  }
  if (c.max_tokens < 1) fail("max_tokens must be >= 1 (got {})", c.max_tokens);
  if (c.max_tokens / c.page_tokens() >= std::numeric_limits<int32_t>::max()) {
    fail("max_tokens / page tokens must fit in int32 (got {} tokens)", c.max_tokens);
  }
  validate_policy(c);
  const int64_t needed = int64_t{c.max_sequences} * c.policy.kmax_pages;
  if (c.num_slots < needed) {
    fail(
        "num_slots must be >= max_sequences * policy.kmax_pages ({} * {} = {}) so every live "
        "sequence can hold its resident set (got {})",
        c.max_sequences, c.policy.kmax_pages, needed, c.num_slots);
  }
  if (c.num_slots > std::numeric_limits<int64_t>::max() / c.page_bytes()) {
    fail("num_slots * page bytes (the reserve) must fit in int64 (got {} slots of {} B)", c.num_slots,
         c.page_bytes());
  }
}

}  // namespace lsa
