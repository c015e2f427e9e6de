// A small lsa cache over one of lsa-eval's scorers, with synthetic keys and KV: a prefill of
// `tokens` tokens, then decode steps that each append one token after the step.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <lsa/lsa.hpp>
#include <span>
#include <vector>

namespace eval_test {

template <class Scorer>
class SmallCache {
 public:
  /// 4-token chunks, `page_chunks` per page; sink and recent: one chunk each.
  SmallCache(int64_t tokens, int32_t kmax, int32_t interval, int64_t max_steps,
             int32_t page_chunks = 1)
      : cache_(config(tokens + max_steps, kmax, interval, page_chunks)),
        view_(1, kmax, static_cast<int32_t>((tokens + max_steps) / 4 + 1)),
        keys_(static_cast<size_t>((tokens + 1) * kRowFloats)),
        kv_(static_cast<size_t>(4 * page_chunks * kKvBytes)),
        where_(static_cast<size_t>(4 * page_chunks)) {
    REQUIRE(lsa::ok(cache_.add(kId)));
    for (size_t i = 0; i < keys_.size(); ++i) {
      keys_[i] = static_cast<float>((i * 7919) % 101) / 50.0f - 1.0f;
    }
    const int64_t page_tokens = 4 * page_chunks;
    for (int64_t t = 0; t < tokens; t += page_tokens) {  // page by page, as a prefill goes
      const auto n = static_cast<int32_t>(std::min(page_tokens, tokens - t));
      where_.resize(static_cast<size_t>(n));
      REQUIRE(lsa::ok(cache_.append(
          kId, n, {reinterpret_cast<const std::byte*>(keys_.data() + t * kRowFloats), n}, where_,
          kv_.data())));
    }
  }

  /// True when the next step refreshes.
  bool refresh_due() const { return cache_.refresh_due(kId); }
  /// Tokens so far.
  int64_t length() const { return cache_.length(kId); }

  /// One step (refreshing with query weights `weights` when due), then one appended token; returns
  /// the resident pages of the step.
  std::vector<int32_t> step(std::span<const float> weights = {}) {
    const lsa::Query query{query_, weights};
    const lsa::SeqId batch[1] = {kId};
    const bool due = cache_.refresh_due(kId);
    REQUIRE(lsa::ok(cache_.step(
        batch, due ? std::span<const lsa::Query>(&query, 1) : std::span<const lsa::Query>{},
        view_.buffers())));
    const auto r = cache_.resident_pages(kId);
    std::vector<int32_t> listed(r.begin(), r.end());
    where_.resize(1);
    REQUIRE(lsa::ok(cache_.append(kId, 1, {reinterpret_cast<const std::byte*>(keys_.data()), 1},
                                  where_, kv_.data())));
    return listed;
  }

 private:
  static constexpr lsa::SeqId kId = 1;
  static constexpr int64_t kRowFloats = 8;  // 2 layers x 1 key head x 4
  static constexpr int64_t kKvBytes = 16;   // 2 layers x 8 bytes

  static lsa::CacheConfig config(int64_t max_tokens, int32_t kmax, int32_t interval,
                                 int32_t page_chunks) {
    lsa::CacheConfig c;
    c.num_layers = 2;
    c.bytes_per_token_per_layer = 8;
    c.chunk_tokens = 4;
    c.page_chunks = page_chunks;
    c.max_sequences = 1;
    c.max_tokens = max_tokens;
    c.recall_mode = lsa::RecallMode::kSync;
    c.num_slots = kmax;
    c.policy.interval = interval;
    c.policy.spread_phase = false;
    c.policy.sink_chunks = 1;
    c.policy.recent_chunks = 1;
    c.policy.kmax_pages = kmax;
    c.policy.selection = lsa::Selection::kTopK;
    c.policy.top_k_chunks = int64_t{kmax} * page_chunks;
    c.policy.page_score = lsa::PageScore::kScoreMass;
    c.scorer.num_layers = 2;
    c.scorer.num_heads = 2;
    c.scorer.num_key_heads = 1;
    c.scorer.head_dim = 4;
    c.scorer.key_format = lsa::KeyFormat::kF32;
    return c;
  }

  lsa::SparseKVCache<lsa::Chunker, Scorer> cache_;
  lsa::ViewStorage view_;
  std::vector<float> keys_;
  std::vector<std::byte> kv_;
  std::vector<lsa::TokenSlot> where_;
  std::vector<float> query_ = std::vector<float>(16, 0.5f);
};

}  // namespace eval_test
