// One validated config struct (DESIGN.md s.7): every rule of lsa::validate throws lsa::Error whose
// message names the field; valid boundary values pass.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "lsa/cache_config.hpp"
#include "lsa/error.hpp"
#include "lsa/sparse_kv_cache.hpp"
#include "support/allocation_hooks.hpp"
#include "support/cache_harness.hpp"

namespace {

// A valid configuration: 4-token chunks, 16-chunk pages, sink 1, recent 32 chunks.
lsa::CacheConfig valid() {
  lsa::CacheConfig c;
  c.num_layers = 2;
  c.bytes_per_token_per_layer = 16;
  c.chunk_tokens = 4;
  c.page_chunks = 16;
  c.max_sequences = 2;
  c.max_tokens = 1 << 16;
  c.policy.sink_chunks = 1;
  c.policy.recent_chunks = 32;
  c.policy.kmax_pages = 8;
  c.num_slots = 16;
  return c;
}

// validate(c) throws lsa::Error whose message contains `field`; returns the message.
std::string rejects(const lsa::CacheConfig& c, const std::string& field) {
  try {
    lsa::validate(c);
  } catch (const lsa::Error& e) {
    const std::string what = e.what();
    INFO("message: " << what);
    CHECK(what.find(field) != std::string::npos);
    return what;
  }
  FAIL("validate accepted an invalid " << field);
  return {};
}

struct Rule {
  const char* field;
  std::function<void(lsa::CacheConfig&)> breaks;
};

}  // namespace

TEST_CASE("config: the valid base configuration and its boundary values pass", "[cpu][config]") {
  CHECK_NOTHROW(lsa::validate(valid()));
  lsa::CacheConfig c = valid();
  c.num_layers = 1;
  c.bytes_per_token_per_layer = 1;
  c.chunk_tokens = 1;
  c.page_chunks = 1;
  c.max_sequences = 1;
  c.max_tokens = 1;
  c.policy.interval = 1;
  c.policy.top_k_chunks = 1;
  c.policy.top_p = 1.0f;
  c.policy.sink_chunks = 0;
  c.policy.recent_chunks = 0;
  c.policy.hysteresis = 0.0f;
  c.policy.max_recall_pages = 0;
  c.policy.threshold = -1e30f;
  c.policy.kmax_pages = 1;  // = the pages sink 0, recent 0 and the tail can force
  c.num_slots = 1;          // = max_sequences * kmax_pages
  CHECK_NOTHROW(lsa::validate(c));
  c = valid();
  c.policy.kmax_pages = 4;  // sink 1 chunk -> 1 page; recent 32 chunks -> 2 pages + 1 straddling
  c.num_slots = 8;
  CHECK_NOTHROW(lsa::validate(c));
}

TEST_CASE("config: every invalid field throws lsa::Error naming the field", "[cpu][config]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<Rule> rules = {
      {"num_layers", [](auto& c) { c.num_layers = 0; }},
      {"num_layers", [](auto& c) { c.num_layers = -3; }},
      {"bytes_per_token_per_layer", [](auto& c) { c.bytes_per_token_per_layer = 0; }},
      {"bytes_per_token_per_layer", [](auto& c) { c.bytes_per_token_per_layer = -16; }},
      {"chunk_tokens", [](auto& c) { c.chunk_tokens = 0; }},
      {"page_chunks", [](auto& c) { c.page_chunks = 0; }},
      {"page_chunks", [](auto& c) { c.page_chunks = -1; }},
      // Page bytes over 2^40 (64-token pages, 2 layers) and page tokens over 2^30.
      {"bytes_per_token_per_layer",
       [](auto& c) { c.bytes_per_token_per_layer = (int64_t{1} << 33) + 1; }},
      {"chunk_tokens",
       [](auto& c) {
         c.chunk_tokens = 1 << 16;
         c.page_chunks = 1 << 15;
       }},
      {"max_sequences", [](auto& c) { c.max_sequences = 0; }},
      {"max_tokens", [](auto& c) { c.max_tokens = 0; }},
      {"max_tokens", [](auto& c) { c.max_tokens = int64_t{1} << 40; }},  // 2^34 pages > int32
      {"policy.interval", [](auto& c) { c.policy.interval = 0; }},
      {"policy.threshold", [nan](auto& c) { c.policy.threshold = nan; }},
      {"policy.threshold", [inf](auto& c) { c.policy.threshold = inf; }},
      {"policy.threshold", [inf](auto& c) { c.policy.threshold = -inf; }},
      {"policy.top_k_chunks", [](auto& c) { c.policy.top_k_chunks = 0; }},
      {"policy.top_p", [](auto& c) { c.policy.top_p = 0.0f; }},
      {"policy.top_p", [](auto& c) { c.policy.top_p = -0.5f; }},
      {"policy.top_p", [](auto& c) { c.policy.top_p = 1.0001f; }},
      {"policy.top_p", [nan](auto& c) { c.policy.top_p = nan; }},
      {"policy.sink_chunks", [](auto& c) { c.policy.sink_chunks = -1; }},
      {"policy.recent_chunks", [](auto& c) { c.policy.recent_chunks = -1; }},
      {"policy.hysteresis", [](auto& c) { c.policy.hysteresis = -0.5f; }},
      {"policy.hysteresis", [nan](auto& c) { c.policy.hysteresis = nan; }},
      {"policy.hysteresis", [inf](auto& c) { c.policy.hysteresis = inf; }},
      {"policy.max_recall_pages", [](auto& c) { c.policy.max_recall_pages = -1; }},
      {"policy.kmax_pages",
       [](auto& c) {
         c.policy.kmax_pages = 3;
         c.num_slots = 6;
       }},  // forced 4
      {"policy.kmax_pages", [](auto& c) { c.policy.kmax_pages = 0; }},
      {"policy.kmax_pages",
       [](auto& c) { c.policy.sink_chunks = 100; }},     // 7 sink + 3 recent pages
      {"num_slots", [](auto& c) { c.num_slots = 15; }},  // < 2 * 8
      {"num_slots", [](auto& c) { c.num_slots = 0; }},
      {"num_slots", [](auto& c) { c.max_sequences = 3; }},
      // Enum fields holding values that are none of their enumerators.
      {"policy.selection", [](auto& c) { c.policy.selection = static_cast<lsa::Selection>(7); }},
      {"policy.page_score", [](auto& c) { c.policy.page_score = static_cast<lsa::PageScore>(9); }},
      {"recall_mode", [](auto& c) { c.recall_mode = static_cast<lsa::RecallMode>(5); }},
  };
  for (size_t i = 0; i < rules.size(); ++i) {
    lsa::CacheConfig c = valid();
    rules[i].breaks(c);
    INFO("rule " << i << ": " << rules[i].field);
    rejects(c, rules[i].field);
  }
}

TEST_CASE("config: the reserve's total size (num_slots * page bytes) must not overflow",
          "[cpu][config]") {
  // 2^40-byte pages are allowed, and 2^24 slots: 2^64 bytes would wrap to a 0-byte reserve.
  lsa::CacheConfig c = valid();
  c.num_layers = 1;
  c.chunk_tokens = 1;
  c.page_chunks = 16;
  c.bytes_per_token_per_layer = int64_t{1} << 36;  // 2^40-byte pages
  c.max_sequences = 1;
  c.policy.sink_chunks = 0;
  c.policy.recent_chunks = 0;
  c.policy.kmax_pages = 1;
  c.num_slots = 1 << 24;
  rejects(c, "num_slots");
}

TEST_CASE("config: messages name the rule and the offending value", "[cpu][config]") {
  lsa::CacheConfig c = valid();
  c.num_slots = 10;
  const std::string what = rejects(c, "num_slots");
  CHECK(what.find("max_sequences") != std::string::npos);
  CHECK(what.find("policy.kmax_pages") != std::string::npos);
  CHECK(what.find("10") != std::string::npos);
  c = valid();
  c.policy.kmax_pages = 2;
  c.num_slots = 4;
  const std::string kmax = rejects(c, "policy.kmax_pages");
  CHECK(kmax.find("(got 2)") != std::string::npos);
}

TEST_CASE("config: constructing a cache validates (and the scorer checks its own shapes)",
          "[cpu][config]") {
  lsa::CacheConfig c = lsa::testing::small_config();
  c.policy.interval = 0;
  CHECK_THROWS_AS(lsa::testing::TestCache(c), lsa::Error);
  // The default (lightning) scorer names its own fields.
  lsa::CacheConfig d = valid();
  d.scorer.num_heads = 0;
  try {
    lsa::SparseKVCache<> cache(d);
    FAIL("constructed with scorer.num_heads = 0");
  } catch (const lsa::Error& e) {
    CHECK(std::string(e.what()).find("scorer.num_heads") != std::string::npos);
  }
  d = valid();
  CHECK_NOTHROW(lsa::SparseKVCache<>(d));
}

TEST_CASE("config: a cache whose bookkeeping cannot be allocated throws lsa::Error, not bad_alloc",
          "[cpu][config]") {
  // Valid, but under a memory limit INT32_MAX slots cannot be had: their bookkeeping alone takes
  // gigabytes. Construction throws lsa::Error naming the field; nothing leaks (ASan checks).
  lsa::CacheConfig c = lsa::testing::small_config();
  c.bytes_per_token_per_layer = 1;
  c.num_layers = 1;
  c.chunk_tokens = 1;
  c.page_chunks = 1;
  c.policy.sink_chunks = 0;
  c.policy.recent_chunks = 0;
  c.policy.kmax_pages = 1;
  c.max_sequences = 1;
  c.num_slots = std::numeric_limits<int32_t>::max();
  REQUIRE_NOTHROW(lsa::validate(c));
  const auto construct = [](const lsa::CacheConfig& config) {
    lsa::testing::LimitAllocations limit(size_t{1} << 30);  // no single allocation above 1 GiB
    lsa::testing::TestCache cache(config);
  };
  try {
    construct(c);
    FAIL("constructed a cache of INT32_MAX slots under a 1 GiB allocation limit");
  } catch (const lsa::Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("num_slots") != std::string::npos);
  } catch (const std::bad_alloc&) {
    FAIL("std::bad_alloc escaped the constructor");
  }
}
