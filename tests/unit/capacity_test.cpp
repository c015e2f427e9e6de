// What the validated minimum reserve (num_slots = max_sequences * kmax_pages) promises: a decode
// append always finds a slot, also while a refresh is in flight (async); truncate counts the slots
// of the pages it drops; a prefill with lsa-copied KV of any length streams its middle pages to the
// mirror.
#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

#include "support/cache_harness.hpp"

namespace {

using lsa::RecallMode;
using lsa::SeqId;
using lsa::Status;
using lsa::testing::Harness;
using lsa::testing::small_config;
using Kv = Harness::Kv;

std::vector<int32_t> resident(const Harness& h, SeqId id) {
  const auto r = h.cache.resident_pages(id);
  return {r.begin(), r.end()};
}

const char* mode_name(RecallMode mode) { return mode == RecallMode::kSync ? "sync" : "async"; }

}  // namespace

TEST_CASE("capacity (async): with the minimum reserve a set in flight gives way to a decode append",
          "[cpu][capacity][async]") {
  // A serves {1, 2, 3, 9}; its refresh toward pages 5-7 pins the last free slot for page 5 (6 and
  // 7 are refused); B, which fits its budget, then opens its 4th page: the page in flight, which
  // no view lists yet, gives its slot back.
  lsa::CacheConfig c = small_config();  // 4-token pages of 2-token chunks, interval 1
  c.max_sequences = 2;
  c.max_tokens = 256;
  c.policy.sink_chunks = 0;
  c.policy.recent_chunks = 1;
  c.policy.kmax_pages = 4;
  c.num_slots = 8;  // the validated minimum
  c.recall_mode = RecallMode::kAsync;
  Harness h(c, 5);
  h.key_fn = [](SeqId id, int64_t chunk) {
    if (id != 1) return 0.0f;
    const int64_t p = chunk / 2;
    return p >= 1 && p <= 3 ? 1.0f : p >= 5 && p <= 7 ? -1.0f : 0.0f;
  };
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append_in_pieces(1, 40, 4) == Status::kOk);
  REQUIRE(h.add(2) == Status::kOk);
  REQUIRE(h.append(2, 12) == Status::kOk);  // 3 full pages, all resident (B fits kmax)
  REQUIRE(h.step({1}, 1.0f) == Status::kOk);
  h.settle(1);
  REQUIRE(resident(h, 1) == std::vector<int32_t>{1, 2, 3, 9});
  REQUIRE(h.step({1}, -1.0f) == Status::kOk);  // page 5 in flight
  REQUIRE(h.cache.store().available_slots() == 0);
  CHECK(h.append(2, 1) == Status::kOk);
  CHECK(resident(h, 2) == std::vector<int32_t>{0, 1, 2, 3});
  h.check_all();
  // Decoding goes on for both, refreshing every step, and never stalls.
  for (int t = 0; t < 200; ++t) {
    INFO("step " << t);
    REQUIRE(h.step({1, 2}, t % 3 == 0 ? 1.0f : -1.0f) == Status::kOk);
    REQUIRE(h.append(1, 1) == Status::kOk);
    REQUIRE(h.append(2, 1) == Status::kOk);
  }
  h.check_all();
}

TEST_CASE(
    "capacity: with the minimum reserve a decode append with KV may fill the tail page and "
    "open the next one in one call",
    "[cpu][capacity]") {
  // Every sequence at its budget, tail page forced only: the tail this append fills leaves the
  // set, and its slot is the only one the next page can take, so it is sealed first.
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  INFO(mode_name(mode));
  lsa::CacheConfig c = small_config();
  c.max_sequences = 3;
  c.max_tokens = 4096;
  c.policy.sink_chunks = 0;
  c.policy.recent_chunks = 0;
  c.policy.kmax_pages = 2;
  c.num_slots = 6;  // the validated minimum
  c.recall_mode = mode;
  Harness h(c, 13);
  for (SeqId id : {1, 2, 3}) {
    REQUIRE(h.add(id) == Status::kOk);
    REQUIRE(h.append(id, 30) == Status::kOk);
  }
  for (int t = 0; t < 100; ++t) {
    INFO("step " << t);
    REQUIRE(h.step({1, 2, 3}, t % 2 ? 1.0f : -1.0f) == Status::kOk);
    for (SeqId id : {1, 2, 3}) REQUIRE(h.append(id, 3) == Status::kOk);  // 4-token pages
  }
  h.check_all();
}

TEST_CASE("capacity: truncate counts the slots of the pages it drops", "[cpu][capacity]") {
  // One sequence, kmax 4, 4 slots, 10 pages serving {6, 7, 8, 9}: truncating to 2 tokens (page 0)
  // or 16 tokens (pages 0-3) needs pages without slots, and the dropped pages free 4.
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  const int64_t target = GENERATE(2, 16);
  INFO(mode_name(mode) << ", truncate to " << target);
  lsa::CacheConfig c = small_config();
  c.max_sequences = 1;
  c.max_tokens = 256;
  c.policy.sink_chunks = 0;
  c.policy.recent_chunks = 1;
  c.policy.kmax_pages = 4;
  c.num_slots = 4;
  c.recall_mode = mode;
  Harness h(c, 9);
  h.key_fn = [](SeqId, int64_t chunk) { return chunk / 2 >= 6 ? 1.0f : 0.0f; };
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append_in_pieces(1, 40, 4) == Status::kOk);
  REQUIRE(h.step({1}, 1.0f) == Status::kOk);
  h.settle(1);
  REQUIRE(resident(h, 1) == std::vector<int32_t>{6, 7, 8, 9});
  REQUIRE(h.cache.store().available_slots() == 0);
  CHECK(h.truncate(1, target) == Status::kOk);
  CHECK(resident(h, 1) ==
        (target == 2 ? std::vector<int32_t>{0} : std::vector<int32_t>{0, 1, 2, 3}));
  h.check_all();
  // And the shorter history grows again.
  REQUIRE(h.append(1, 30) == Status::kOk);
  REQUIRE(h.step({1}, 1.0f) == Status::kOk);
  h.check_all();
}

TEST_CASE("capacity: a prefill with lsa-copied KV of any length needs only kmax_pages slots",
          "[cpu][capacity]") {
  // 4 slots, a 40-token (10-page) prompt in one append: the middle pages go straight to the
  // mirror; only the forced pages take slots.
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  const bool file = GENERATE(false, true);
  INFO(mode_name(mode) << (file ? ", file mirror" : ""));
  lsa::testing::TempDir dir;
  lsa::CacheConfig c = small_config();
  c.max_sequences = 1;
  c.max_tokens = 1024;
  c.policy.kmax_pages = 4;
  c.num_slots = 4;
  c.recall_mode = mode;
  c.mirror_path = file ? dir.file("mirror.bin") : "";
  Harness h(c, 11);
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 40) == Status::kOk);
  CHECK(h.cache.stats().sealed_pages == 10);
  h.check_all();  // every token byte-exact, most of them from the mirror
  // A longer one still, onto the existing history, and a partial tail.
  REQUIRE(h.append(1, 4 * 100 + 3) == Status::kOk);
  h.check_all();
  for (int t = 0; t < 20; ++t) REQUIRE(h.step({1}, t % 2 ? 1.0f : -1.0f) == Status::kOk);
  h.check_all();
  // KV the engine writes itself needs a slot per page until it is written: refused, unchanged.
  const lsa::testing::Snapshot before = h.snapshot();
  CHECK(h.append(1, 40, Kv::kEngineWrites) == Status::kCapacityExceeded);
  CHECK(before.diff(h.snapshot()) == "");
}
