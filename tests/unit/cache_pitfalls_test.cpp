// DESIGN.md s.7: the failures seen in the reference system, each as a test.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "support/cache_harness.hpp"

namespace {

using lsa::RecallMode;
using lsa::SeqId;
using lsa::Status;
using lsa::testing::Harness;
using lsa::testing::small_config;
using lsa::testing::Snapshot;
using lsa::testing::TempDir;
using Kv = Harness::Kv;

std::vector<int32_t> row_slots(const Harness& h, int64_t b) {
  return std::vector<int32_t>(h.views.indices.begin() + h.views.indptr[b],
                              h.views.indices.begin() + h.views.indptr[b + 1]);
}

}  // namespace

TEST_CASE("pitfall: removing one request never disturbs another's view or bytes (ids, not rows)",
          "[cpu][pitfall]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  lsa::CacheConfig c = small_config();
  c.max_sequences = 3;
  c.policy.interval = 1000;  // one refresh, then stable views: any change is a clobber
  c.num_slots = 30;
  c.recall_mode = mode;
  Harness h(c, 17);
  const std::vector<SeqId> ids = {1000, 7, 42};
  for (SeqId id : ids) {
    REQUIRE(h.add(id) == Status::kOk);
    REQUIRE(h.append(id, 30 + static_cast<int32_t>(id % 5)) == Status::kOk);
  }
  // Rows reordered every step.
  const std::vector<std::vector<SeqId>> orders = {{1000, 7, 42}, {42, 1000, 7}, {7, 42, 1000}};
  for (int i = 0; i < 6; ++i) REQUIRE(h.step(orders[i % 3], 1.0f) == Status::kOk);
  REQUIRE(h.step({7, 1000, 42}) == Status::kOk);
  const std::vector<int32_t> view1000 = row_slots(h, 1), view42 = row_slots(h, 2);
  const Snapshot before = lsa::testing::take_snapshot(h.cache, {1000, 42});
  // Remove the request in batch row 0 (and the middle of the id order).
  REQUIRE(h.remove(7) == Status::kOk);
  CHECK(before.seqs == lsa::testing::take_snapshot(h.cache, {1000, 42}).seqs);
  REQUIRE(h.step({42, 1000}) == Status::kOk);
  CHECK(row_slots(h, 0) == view42);
  CHECK(row_slots(h, 1) == view1000);
  // A new request reusing the freed slots does not touch the others either.
  REQUIRE(h.add(7) == Status::kOk);
  REQUIRE(h.append(7, 25) == Status::kOk);
  REQUIRE(h.step({1000, 7, 42}) == Status::kOk);
  CHECK(row_slots(h, 0) == view1000);
  CHECK(row_slots(h, 2) == view42);
  const Snapshot after = lsa::testing::take_snapshot(h.cache, {1000, 42});
  CHECK(before.seqs == after.seqs);
  h.check_all();
}

TEST_CASE("pitfall: page->slot maps are never stale after eviction and recall", "[cpu][pitfall]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  lsa::CacheConfig c = small_config();
  c.max_sequences = 2;
  c.policy.kmax_pages = 5;
  c.num_slots = 12;
  c.recall_mode = mode;
  Harness h(c, 23);
  // Page p's chunks score p - 10: q = +1 prefers late pages, q = -1 early ones.
  h.key_fn = [](SeqId, int64_t chunk) { return static_cast<float>(chunk / 2) - 10.0f; };
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.add(2) == Status::kOk);
  REQUIRE(h.append_in_pieces(1, 4 * 20, 8) == Status::kOk);  // 20 pages through 10 slots
  std::map<int32_t, std::set<int32_t>> slots_seen;  // page -> slots it was listed in
  for (int i = 0; i < 60; ++i) {
    // One request alone: its own refreshes evict and recall; a second one churns free slots.
    REQUIRE(h.step({1}, i % 4 < 2 ? 1.0f : -1.0f) == Status::kOk);  // view bytes checked
    h.settle(1, i % 4 < 2 ? 1.0f : -1.0f);
    for (int32_t p : h.cache.resident_pages(1)) slots_seen[p].insert(h.cache.slot_of(1, p));
    if (i % 3 == 0) {
      const Status a = h.append(2, 4);  // churn; may find the reserve full (async: both sets pinned)
      REQUIRE((a == Status::kOk || a == Status::kCapacityExceeded));
      REQUIRE(h.step({2}, 1.0f) == Status::kOk);
    }
    h.check_state();
  }
  const lsa::Stats s = h.cache.stats();
  INFO(lsa::testing::to_text(s));
  CHECK(s.evictions > 10);
  CHECK(s.recalled_pages > 10);
  int moved = 0;
  for (const auto& [p, slots] : slots_seen) moved += slots.size() > 1;
  CHECK(moved > 3);  // pages came back in other slots, and every listing was byte-checked
  h.check_bytes();
}

TEST_CASE("pitfall: eviction never takes pages another live request uses (shared fork prefix)",
          "[cpu][pitfall]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  lsa::CacheConfig c = small_config();
  c.max_sequences = 3;
  c.policy.kmax_pages = 5;
  c.num_slots = 15;
  c.recall_mode = mode;
  Harness h(c, 29);
  // Parent prefers early pages (q = -1), child late ones (q = +1).
  h.key_fn = [](SeqId, int64_t chunk) { return static_cast<float>(chunk / 2) - 8.0f; };
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append_in_pieces(1, 4 * 16, 16) == Status::kOk);
  REQUIRE(h.step({1}, -1.0f) == Status::kOk);
  REQUIRE(h.fork(1, 2) == Status::kOk);
  REQUIRE(h.add(3) == Status::kOk);
  int shared_kept = 0;
  for (int i = 0; i < 80; ++i) {
    INFO("round " << i);
    REQUIRE(h.step(std::vector<SeqId>{2, 1}, std::vector<float>{1.0f, -1.0f}) == Status::kOk);
    if (i % 5 == 0) {
      REQUIRE(h.append(1, 1) == Status::kOk);
      REQUIRE(h.append(2, 2) == Status::kOk);
    }
    // The third request takes every slot it can (unwritten pages stay pinned): anything
    // evictable goes.
    int32_t k = 15;
    while (k > 0 && h.append(3, 4 * k, Kv::kEngineWrites) != Status::kOk) --k;
    REQUIRE(k > 0);
    h.check_state();  // every resident page of 1 and 2 still has its slot and bytes
    for (int32_t p : h.cache.resident_pages(1)) {
      auto r2 = h.cache.resident_pages(2);
      shared_kept += p < 16 && std::find(r2.begin(), r2.end(), p) == r2.end();
    }
    REQUIRE(h.truncate(3, 0) == Status::kOk);
  }
  CHECK(shared_kept > 0);  // shared pages resident for the parent only survived the pressure
  CHECK(h.cache.stats().evictions > 20);
  h.check_bytes();
}

TEST_CASE("pitfall: decoded tokens far beyond the prompt are kept and sealed into the mirror",
          "[cpu][pitfall]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  const Kv kv = GENERATE(Kv::kPass, Kv::kEngineWrites);
  const bool file = GENERATE(false, true);
  TempDir dir;
  INFO((mode == RecallMode::kSync ? "sync" : "async") << (kv == Kv::kPass ? " lsa-copied KV" : " engine-written KV")
                                                      << (file ? " file mirror" : ""));
  lsa::CacheConfig c;
  c.num_layers = 2;
  c.bytes_per_token_per_layer = 4;
  c.chunk_tokens = 4;
  c.page_chunks = 4;  // 16-token pages
  c.max_sequences = 1;
  c.max_tokens = 8192;
  c.policy.interval = 16;
  c.policy.sink_chunks = 2;
  c.policy.recent_chunks = 8;
  c.policy.kmax_pages = 8;
  c.num_slots = 12;
  c.recall_mode = mode;
  c.mirror_path = file ? dir.file("decode.bin") : "";
  Harness h(c, 31);
  REQUIRE(h.add(9) == Status::kOk);
  REQUIRE(h.append(9, 64) == Status::kOk);  // the prompt: 4 pages
  const int kDecode = 5000;
  for (int t = 0; t < kDecode; ++t) {
    const std::vector<SeqId> batch = {9};
    const std::vector<float> q = {t % 100 < 50 ? 1.0f : -1.0f};
    REQUIRE(h.step(batch, q) == Status::kOk);
    // Async too: a set in flight gives way rather than stall the decode append.
    REQUIRE(h.append(9, 1, kv) == Status::kOk);
    if (t % 500 == 0) h.check_state();
  }
  REQUIRE(h.commit(9) == Status::kOk);
  const int64_t len = 64 + kDecode;
  CHECK(h.cache.length(9) == len);
  const lsa::Stats s = h.cache.stats();
  INFO(lsa::testing::to_text(s));
  CHECK(s.sealed_pages == len / 16);  // every full page, decoded ones included, is in the mirror
  CHECK(s.mirror_pages == len / 16);
  int64_t evicted = 0;
  for (int64_t p = 0; p < len / 16; ++p) evicted += h.cache.slot_of(9, p) < 0;
  CHECK(evicted > 250);
  h.check_all();  // every decoded token readable byte-exact, most of them from the mirror
}

TEST_CASE("pitfall: a full reserve refuses pages visibly (counted) and never masks forced pages",
          "[cpu][pitfall]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  lsa::CacheConfig c = small_config();
  c.max_sequences = 3;
  c.policy.kmax_pages = 6;
  c.policy.recent_chunks = 4;  // 2 or 3 pages
  c.num_slots = 18;
  c.recall_mode = mode;
  Harness h(c, 37);
  h.key_fn = [](SeqId, int64_t) { return 1.0f; };  // every chunk wanted
  for (SeqId id : {1, 2}) {
    REQUIRE(h.add(id) == Status::kOk);
    REQUIRE(h.append(id, 4 * 12) == Status::kOk);  // 12 pages each: 24 > 18 slots
    REQUIRE(h.step({id}, -1.0f) == Status::kOk);   // nothing kept: forced pages only
  }
  REQUIRE(h.add(3) == Status::kOk);
  // Pin the rest of the reserve under sequence 3's unwritten pages (forced until committed).
  REQUIRE(h.append(3, 4 * 12, Kv::kEngineWrites) == Status::kOk);
  REQUIRE(h.cache.store().available_slots() == 0);
  const int64_t refusals = h.cache.stats().capacity_refusals;
  REQUIRE(h.step({1, 2}, 1.0f) == Status::kOk);
  for (int i = 0; i < 3; ++i) REQUIRE(h.step({2, 1}, 1.0f) == Status::kOk);  // checks forced pages
  const lsa::Stats s = h.cache.stats();
  INFO(lsa::testing::to_text(s));
  // Each refresh of each sequence wanted 3 pages beyond its 3 forced ones and got none.
  CHECK(s.capacity_refusals >= refusals + (mode == RecallMode::kSync ? 24 : 12));
  // Nothing silently missing: each sequence still lists its forced pages.
  for (SeqId id : {1, 2}) CHECK(h.cache.resident_pages(id).size() == 3);
  h.check_all();
  // Once sequence 3 is written and refreshed, its pages become evictable and the others get theirs.
  REQUIRE(h.commit(3) == Status::kOk);
  REQUIRE(h.step({3}, -1.0f) == Status::kOk);
  h.settle(3, -1.0f);
  REQUIRE(h.step_until({2, 1}, 1.0f, [&] {
    return h.cache.resident_pages(1).size() == 6 && h.cache.resident_pages(2).size() == 6;
  }));
  h.check_all();
}

TEST_CASE("pitfall: copies are per page with all layers contiguous", "[cpu][pitfall]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  lsa::CacheConfig c = small_config();
  c.num_layers = 5;
  c.bytes_per_token_per_layer = 12;
  c.max_sequences = 2;
  c.policy.kmax_pages = 4;
  c.num_slots = 8;
  c.recall_mode = mode;
  Harness h(c, 41);
  const int64_t pt = c.page_tokens();
  const int64_t page_bytes = c.num_layers * pt * c.bytes_per_token_per_layer;
  REQUIRE(h.cache.store().page_bytes() == page_bytes);
  for (int32_t slot = 0; slot < c.num_slots; ++slot) {
    for (int32_t layer = 0; layer < c.num_layers; ++layer) {
      for (int32_t off = 0; off < pt; ++off) {
        const std::byte* want = h.cache.store().reserve() + slot * page_bytes +
                                layer * pt * c.bytes_per_token_per_layer + off * c.bytes_per_token_per_layer;
        REQUIRE(h.cache.token_kv(slot, layer, off) == want);
        REQUIRE(h.cache.store().slot_data(slot) + (want - h.cache.store().slot_data(slot)) == want);
      }
    }
  }
  // Page 2 is evicted, then recalled: one recall carries all five layers of all its tokens.
  h.key_fn = [](SeqId, int64_t chunk) { return chunk / 2 == 2 ? 1.0f : 0.0f; };
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 4 * 8) == Status::kOk);
  for (int i = 0; i < 2; ++i) REQUIRE(h.step({1}, -1.0f) == Status::kOk);  // page 2 dropped
  REQUIRE(h.add(2) == Status::kOk);
  while (h.cache.slot_of(1, 2) >= 0) REQUIRE(h.append(2, 4) == Status::kOk);  // ... and evicted
  REQUIRE(h.remove(2) == Status::kOk);
  const lsa::Stats before = h.cache.stats();
  auto listed = [&] {
    auto r = h.cache.resident_pages(1);
    return std::find(r.begin(), r.end(), 2) != r.end();
  };
  REQUIRE(h.step_until({1}, 1.0f, listed));
  const lsa::Stats after = h.cache.stats();
  CHECK(after.recalled_pages == before.recalled_pages + 1);
  CHECK(after.recalled_bytes - before.recalled_bytes == page_bytes);
  CHECK(h.page_mismatch(h.ref.seqs.at(1), 2, h.cache.slot_of(1, 2)) == "");  // all layers
}

TEST_CASE("pitfall: the host mirror holds each page once, however many sequences share it",
          "[cpu][pitfall]") {
  lsa::CacheConfig c = small_config();
  c.max_sequences = 4;
  c.num_slots = 40;
  Harness h(c, 43);
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 4 * 10) == Status::kOk);
  REQUIRE(h.cache.stats().mirror_pages == 10);
  REQUIRE(h.fork(1, 2) == Status::kOk);
  REQUIRE(h.fork(1, 3) == Status::kOk);
  REQUIRE(h.fork(2, 4) == Status::kOk);
  CHECK(h.cache.stats().mirror_pages == 10);
  for (int i = 0; i < 4; ++i) REQUIRE(h.step({1, 2, 3, 4}, i % 2 ? 1.0f : -1.0f) == Status::kOk);
  CHECK(h.cache.stats().mirror_pages == 10);
  CHECK(h.cache.stats().sealed_pages == 10);
  REQUIRE(h.remove(1) == Status::kOk);
  REQUIRE(h.remove(2) == Status::kOk);
  REQUIRE(h.remove(3) == Status::kOk);
  CHECK(h.cache.stats().mirror_pages == 10);  // still shared by 4
  h.check_all();
  REQUIRE(h.remove(4) == Status::kOk);
  CHECK(h.cache.stats().mirror_pages == 0);
}

TEST_CASE("pitfall: with the validated minimum reserve, a sequence at its budget can still append "
          "its next page",
          "[cpu][pitfall][capacity]") {
  // num_slots = max_sequences * kmax_pages is accepted by validate() "so every live sequence can
  // hold its resident set". Decode must then never stall: when every sequence holds kmax pages,
  // the append that opens a new tail page needs one more slot than the sets hold.
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  lsa::CacheConfig c = small_config();
  c.max_sequences = 2;
  c.policy.kmax_pages = 5;
  c.num_slots = 10;  // the minimum validate() accepts
  c.recall_mode = mode;
  Harness h(c, 47);
  h.key_fn = [](SeqId, int64_t) { return 1.0f; };  // every chunk wanted: each set fills kmax
  for (SeqId id : {1, 2}) {
    REQUIRE(h.add(id) == Status::kOk);
    REQUIRE(h.append(id, 4 * 5) == Status::kOk);
  }
  for (int t = 0; t < 40; ++t) {
    INFO("decode step " << t);
    REQUIRE(h.step({1, 2}, 1.0f) == Status::kOk);
    for (SeqId id : {1, 2}) {
      INFO("sequence " << id << " length " << h.cache.length(id));
      REQUIRE(h.append(id, 1) == Status::kOk);
    }
  }
  h.check_all();
}
