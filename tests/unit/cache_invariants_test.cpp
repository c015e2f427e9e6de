// DESIGN.md s.4 invariants of SparseKVCache, each checked against a plain reference model.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "support/cache_harness.hpp"

namespace {

using lsa::RecallMode;
using lsa::SeqId;
using lsa::Status;
using lsa::testing::Harness;
using lsa::testing::small_config;
using lsa::testing::TempDir;
using Kv = Harness::Kv;

std::string mode_name(RecallMode m, bool file) {
  return std::string(m == RecallMode::kSync ? "sync" : "async") + (file ? "+file mirror" : "+memory mirror");
}

// A lifecycle of three sequences with non-contiguous ids under constant eviction pressure:
// appends (lsa-copied and engine-written KV), steps with changing queries, a fork, truncates,
// removals and re-adds. Runs `check` after every call.
template <class Check>
void run_lifecycle(Harness& h, Check&& check) {
  std::mt19937_64 rng(7);
  auto q = [&] { return std::uniform_real_distribution<float>(-2.0f, 2.0f)(rng); };
  auto live = [&] {
    std::vector<SeqId> ids;
    for (const auto& [id, r] : h.ref.seqs) ids.push_back(id);
    std::shuffle(ids.begin(), ids.end(), rng);
    return ids;
  };
  REQUIRE(h.add(1000) == Status::kOk);
  REQUIRE(h.append(1000, 11) == Status::kOk);
  check();
  int appended = 0;
  for (int round = 0; round < 60; ++round) {
    INFO("round " << round);
    for (SeqId id : live()) {
      const int n = 1 + static_cast<int>(rng() % 6);
      const Status s = h.append(id, n, round % 3 == 0 ? Kv::kEngineWrites : Kv::kPass);
      REQUIRE((s == Status::kOk || s == Status::kCapacityExceeded));
      appended += s == Status::kOk;
      check();
    }
    std::vector<SeqId> batch = live();
    std::vector<float> qs(batch.size());
    for (float& v : qs) v = q();
    REQUIRE(h.step(batch, qs) == Status::kOk);
    check();
    switch (round) {
      case 8:
        REQUIRE(h.fork(1000, 7) == Status::kOk);
        break;
      case 14:
        REQUIRE(h.add(42) == Status::kOk);
        break;
      case 20:
        REQUIRE(h.truncate(1000, h.ref.seqs.at(1000).length() / 2 + 1) == Status::kOk);
        break;
      case 26:
        REQUIRE(h.remove(7) == Status::kOk);
        break;
      case 30:
        REQUIRE(h.fork(42, 7) == Status::kOk);
        break;
      case 36:
        REQUIRE(h.truncate(7, 9) == Status::kOk);
        break;
      case 44:
        REQUIRE(h.remove(1000) == Status::kOk);
        REQUIRE(h.add(1000) == Status::kOk);
        break;
      case 50:
        REQUIRE(h.truncate(42, 0) == Status::kOk);
        break;
      default:
        break;
    }
    check();
  }
  CHECK(appended > 100);
}

lsa::CacheConfig pressure_config(RecallMode mode, const std::string& mirror) {
  lsa::CacheConfig c = small_config();
  c.max_sequences = 4;
  c.policy.kmax_pages = 4;
  c.num_slots = 24;
  c.recall_mode = mode;
  c.mirror_path = mirror;
  return c;
}

}  // namespace

TEST_CASE("invariant 1: every appended token's bytes stay retrievable through refreshes, evictions, "
          "forks, truncates and other sequences' arrival and removal",
          "[cpu][invariant]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  const bool file = GENERATE(false, true);
  TempDir dir;
  INFO(mode_name(mode, file));
  Harness h(pressure_config(mode, file ? dir.file("mirror.bin") : ""), 11);
  run_lifecycle(h, [&] { h.check_all(); });
  const lsa::Stats s = h.cache.stats();
  INFO(lsa::testing::to_text(s));
  CHECK(s.evictions > 0);
  CHECK(s.recalled_pages > 0);
  CHECK(s.sealed_pages > 0);
  // Everything removed: nothing left behind.
  for (SeqId id : std::vector<SeqId>{1000, 7, 42}) {
    if (h.cache.contains(id)) REQUIRE(h.remove(id) == Status::kOk);
  }
  CHECK(h.cache.stats().reserve_slots_used == 0);
  CHECK(h.cache.stats().mirror_pages == 0);
}

TEST_CASE("invariant 1: bytes survive when every page but the forced ones has been evicted",
          "[cpu][invariant]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  const bool file = GENERATE(false, true);
  TempDir dir;
  INFO(mode_name(mode, file));
  lsa::CacheConfig c = pressure_config(mode, file ? dir.file("mirror.bin") : "");
  Harness h(c, 3);
  // Sequence 1 grows to 60 pages a few tokens at a time; sequence 2 churns the reserve.
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.add(2) == Status::kOk);
  for (int i = 0; i < 80; ++i) {
    REQUIRE(h.append(1, 3) == Status::kOk);
    REQUIRE(h.append(2, 2) == Status::kOk);
    REQUIRE(h.step({1, 2}, i % 2 ? 1.0f : -1.0f) == Status::kOk);
    h.check_state();
  }
  int evicted = 0;
  for (int64_t p = 0; p < h.ref.num_pages(h.ref.seqs.at(1).length()); ++p) evicted += h.cache.slot_of(1, p) < 0;
  CHECK(evicted > 20);
  h.check_bytes();
}

TEST_CASE("invariant 3: sink, recent and tail pages are always in the view", "[cpu][invariant]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  INFO(mode_name(mode, false));
  lsa::CacheConfig c = small_config();
  c.page_chunks = 2;
  c.chunk_tokens = 2;
  c.policy.sink_chunks = 3;    // pages 0 and 1
  c.policy.recent_chunks = 5;  // the last 5 chunks: 3 or 4 pages
  c.policy.kmax_pages = 10;
  c.num_slots = c.max_sequences * c.policy.kmax_pages;
  c.recall_mode = mode;
  Harness h(c, 5);
  // Only chunks of page 8 ever score above the threshold.
  h.key_fn = [](SeqId, int64_t chunk) { return chunk / 2 == 8 ? 1.0f : 0.0f; };
  REQUIRE(h.add(3) == Status::kOk);
  REQUIRE(h.append(3, 60) == Status::kOk);  // 15 pages
  for (int i = 0; i < 40; ++i) {
    REQUIRE(h.step({3}, 1.0f) == Status::kOk);
    // Expected set once the refresh serves: sink pages, page 8, recent pages and tail.
    const int64_t len = h.ref.seqs.at(3).length();
    const int64_t chunks = (len + 1) / 2;
    std::vector<int32_t> want = {0, 1, 8};
    for (int64_t p = (chunks - 5) / 2; p <= (len - 1) / 4; ++p) {
      if (std::find(want.begin(), want.end(), p) == want.end()) want.push_back(static_cast<int32_t>(p));
    }
    std::sort(want.begin(), want.end());
    auto res = h.cache.resident_pages(3);
    std::vector<int32_t> got(res.begin(), res.end());
    for (int32_t p : want) {
      if (p == 8) continue;  // chosen, not forced
      INFO("step " << i << " length " << len << " resident " << lsa::testing::to_text(got));
      CHECK(std::find(got.begin(), got.end(), p) != got.end());
    }
    if (mode == RecallMode::kSync) {
      INFO("step " << i << " length " << len);
      CHECK(got == want);
    }
    REQUIRE(h.append(3, 1 + i % 3) == Status::kOk);
  }
  // A query that keeps no chunk: the view is exactly the forced pages.
  for (int i = 0; i < 3; ++i) REQUIRE(h.step({3}, 0.0f) == Status::kOk);
  const int64_t len = h.ref.seqs.at(3).length();
  const int64_t chunks = (len + 1) / 2;
  std::vector<int32_t> want = {0, 1};
  for (int64_t p = (chunks - 5) / 2; p <= (len - 1) / 4; ++p) want.push_back(static_cast<int32_t>(p));
  auto res = h.cache.resident_pages(3);
  CHECK(std::vector<int32_t>(res.begin(), res.end()) == want);
}

TEST_CASE("invariant 4: listed slots hold exactly their page's bytes and are shared only by forks",
          "[cpu][invariant]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  INFO(mode_name(mode, false));
  lsa::CacheConfig c = pressure_config(mode, "");
  c.num_slots = 32;
  Harness h(c, 21);
  // Fork chains: 1 -> 2 -> 3, each continuing differently; every step's view is checked
  // (bytes of every listed slot, one owner per slot unless the page is shared).
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 18) == Status::kOk);
  REQUIRE(h.step({1}, 1.0f) == Status::kOk);
  REQUIRE(h.fork(1, 2) == Status::kOk);
  REQUIRE(h.append(2, 5) == Status::kOk);
  REQUIRE(h.fork(2, 3) == Status::kOk);
  std::mt19937_64 rng(4);
  int shared_listed = 0;
  for (int i = 0; i < 120; ++i) {
    for (SeqId id : {1, 2, 3}) {
      // Async: while a recall is in flight, its set and the current one are both pinned.
      const Status s = h.append(id, 1 + static_cast<int>(rng() % 3));
      REQUIRE((s == Status::kOk || (s == Status::kCapacityExceeded && mode == RecallMode::kAsync)));
    }
    std::vector<SeqId> batch = {3, 1, 2};
    std::shuffle(batch.begin(), batch.end(), rng);
    std::vector<float> qs = {float(int(rng() % 5) - 2), float(int(rng() % 5) - 2), float(int(rng() % 5) - 2)};
    REQUIRE(h.step(batch, qs) == Status::kOk);
    // Count slots listed by more than one sequence (fork-shared pages).
    std::vector<int32_t> all(h.views.indices.begin(), h.views.indices.begin() + h.views.indptr[3]);
    std::sort(all.begin(), all.end());
    shared_listed += static_cast<int>(all.size() - (std::unique(all.begin(), all.end()) - all.begin()));
    h.check_state();
  }
  CHECK(shared_listed > 0);
  h.check_bytes();
}

namespace {

// One 1 MiB token per page; a refresh recalls ten pages at once, so the worker is busy for a while
// and the last queued copies land well after step() returns.
lsa::CacheConfig slow_recall_config() {
  lsa::CacheConfig c;
  c.num_layers = 1;
  c.bytes_per_token_per_layer = int64_t{1} << 20;
  c.chunk_tokens = 1;
  c.page_chunks = 1;
  c.max_sequences = 3;
  c.max_tokens = 64;
  c.policy.interval = 1;
  c.policy.spread_phase = false;
  c.policy.sink_chunks = 1;
  c.policy.recent_chunks = 0;
  c.policy.kmax_pages = 12;  // page 0, the tail, and ten chosen pages
  c.num_slots = 48;
  c.recall_mode = RecallMode::kAsync;
  return c;
}

// Sequence 1 (and its fork 2 when `fork`) with 24 pages; pages 1..10 are evicted to the mirror and
// the last step started recalling all ten of them for sequence 1.
void start_ten_recalls(Harness& h, bool fork) {
  h.check_resident_bytes = false;
  // q = +1 selects pages 1..10, q = -1 pages 11..20.
  h.key_fn = [](SeqId, int64_t c) { return c >= 1 && c <= 10 ? 1.0f : c >= 11 && c <= 20 ? -1.0f : 0.0f; };
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 24) == Status::kOk);
  if (fork) REQUIRE(h.fork(1, 2) == Status::kOk);
  const std::vector<SeqId> batch = fork ? std::vector<SeqId>{1, 2} : std::vector<SeqId>{1};
  for (int i = 0; i < 2; ++i) REQUIRE(h.step(batch, -1.0f) == Status::kOk);  // {0, 11..20, 23}
  // A third sequence takes the 24 free slots and evicts the cached pages 1..10, then leaves.
  REQUIRE(h.add(3) == Status::kOk);
  REQUIRE(h.append(3, 34) == Status::kOk);
  REQUIRE(h.remove(3) == Status::kOk);
  for (int64_t p = 1; p <= 10; ++p) REQUIRE(h.cache.slot_of(1, p) == -1);
  const int64_t recalled = h.cache.stats().recalled_pages;
  std::vector<float> q(batch.size(), 1.0f);
  REQUIRE(h.step_unchecked(batch, q) == Status::kOk);
  REQUIRE(h.cache.stats().recalled_pages == recalled + 10);
}

}  // namespace

TEST_CASE("invariant 4 (async): a page being recalled for one sequence is not listed for a sequence "
          "sharing it before its copy finished",
          "[cpu][invariant][async]") {
  Harness h(slow_recall_config(), 8);
  // 1 recalls pages 1..10; 2 shares them and finds them with slots already (copies queued).
  start_ten_recalls(h, /*fork=*/true);
  bool listed = false;
  for (int i = 0; i < 200000 && !listed; ++i) {
    const std::vector<float> q = {1.0f, 1.0f};
    REQUIRE(h.step_unchecked(std::vector<SeqId>{2, 1}, q) == Status::kOk);
    const int32_t* row = h.views.block_table.data();  // row 0: sequence 2
    for (int64_t p = 10; p >= 1; --p) {  // the last queued copy first
      if (row[p] < 0) continue;
      listed = true;
      const std::string m = h.page_mismatch(h.ref.seqs.at(2), p, row[p]);
      INFO("step " << i << " after the refresh; sequence 2 lists page " << p);
      CHECK(m == "");
    }
    h.check_view(std::vector<SeqId>{2, 1});
    std::this_thread::yield();
  }
  CHECK(listed);
  h.check_all();
}

TEST_CASE("invariant 1 (async): read_token of a page whose recall is in flight returns its bytes",
          "[cpu][invariant][async]") {
  Harness h(slow_recall_config(), 9);
  start_ten_recalls(h, /*fork=*/false);
  // Page 10's copy is queued last: read it while it is (most likely) still in flight.
  std::vector<std::byte> buf(size_t{1} << 20);
  REQUIRE(h.cache.read_token(1, 10, 0, buf.data()) == Status::kOk);
  const bool same = buf == h.ref.seqs.at(1).tokens[10];
  CHECK(same);
  h.check_bytes();
}

TEST_CASE("invariant 5: eviction never takes a page of any live sequence's resident set",
          "[cpu][invariant]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  INFO(mode_name(mode, false));
  lsa::CacheConfig c = pressure_config(mode, "");
  c.num_slots = 16;  // the minimum: 4 sequences * kmax 4
  Harness h(c, 77);
  std::mt19937_64 rng(5);
  for (SeqId id : {10, 20, 30, 40}) {
    REQUIRE(h.add(id) == Status::kOk);
    REQUIRE(h.append(id, 12) == Status::kOk);
  }
  int refused_appends = 0;
  for (int i = 0; i < 300; ++i) {
    std::vector<SeqId> batch = {10, 20, 30, 40};
    std::shuffle(batch.begin(), batch.end(), rng);
    batch.resize(1 + rng() % 4);
    std::vector<float> qs(batch.size());
    for (float& v : qs) v = float(int(rng() % 7) - 3);
    REQUIRE(h.step(batch, qs) == Status::kOk);
    h.check_state();  // every resident page of every live sequence has a slot with its bytes
    const SeqId id = batch[0];
    const int32_t n = 1 + static_cast<int>(rng() % 4);
    Status s = h.append(id, n);
    // Async: while recalls are in flight two sets are pinned; an engine steps until they land.
    for (int t = 0; t < 1000 && s == Status::kCapacityExceeded && mode == RecallMode::kAsync; ++t) {
      std::this_thread::yield();
      REQUIRE(h.step(batch, qs) == Status::kOk);
      s = h.append(id, n);
    }
    REQUIRE((s == Status::kOk || s == Status::kCapacityExceeded));
    refused_appends += s == Status::kCapacityExceeded;
    h.check_state();
  }
  const lsa::Stats s = h.cache.stats();
  INFO(lsa::testing::to_text(s) << " refused appends " << refused_appends);
  CHECK(s.evictions > 50);
  h.check_bytes();
}

TEST_CASE("invariant 5: a refresh the reserve cannot hold is refused page by page, counted, and "
          "forced pages stay",
          "[cpu][invariant]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  INFO(mode_name(mode, false));
  lsa::CacheConfig c = small_config();
  c.max_sequences = 2;
  c.policy.kmax_pages = 8;
  c.policy.recent_chunks = 2;
  c.num_slots = 16;
  c.recall_mode = mode;
  Harness h(c, 2);
  // Chunks of even pages score 1: a refresh wants every even page.
  h.key_fn = [](SeqId, int64_t chunk) { return (chunk / 2) % 2 == 0 ? 1.0f : 0.0f; };
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 64) == Status::kOk);  // 16 pages: the whole reserve
  for (int i = 0; i < 2; ++i) REQUIRE(h.step({1}, -1.0f) == Status::kOk);  // forced pages 0, 15 only
  REQUIRE(h.add(2) == Status::kOk);
  // 14 unwritten (so forced and pinned) pages: 2 + 14 = 16 slots, none evictable.
  REQUIRE(h.append(2, 4 * 14, Kv::kEngineWrites) == Status::kOk);
  REQUIRE(h.cache.stats().capacity_refusals == 0);
  REQUIRE(h.step({1}, 1.0f) == Status::kOk);  // wants 6 even pages (budget 8 - 2): no slot for any
  for (int i = 0; i < 4; ++i) REQUIRE(h.step({1}, 1.0f) == Status::kOk);
  const lsa::Stats s = h.cache.stats();
  CHECK(s.capacity_refusals >= 6);
  auto res = h.cache.resident_pages(1);
  CHECK(std::vector<int32_t>(res.begin(), res.end()) == std::vector<int32_t>{0, 15});
  h.check_all();
  // Room again: the next refresh gets what it asks for.
  REQUIRE(h.remove(2) == Status::kOk);
  REQUIRE(h.step_until({1}, 1.0f, [&] { return h.cache.resident_pages(1).size() == 8; }));
  res = h.cache.resident_pages(1);
  CHECK(std::vector<int32_t>(res.begin(), res.end()) == std::vector<int32_t>{0, 2, 4, 6, 8, 10, 12, 15});
  h.check_all();
}

TEST_CASE("invariant 7: every failing call leaves the cache exactly as it was", "[cpu][invariant][errors]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  INFO(mode_name(mode, false));
  lsa::CacheConfig c = small_config();
  c.max_sequences = 3;
  c.max_tokens = 80;
  c.policy.kmax_pages = 4;
  c.num_slots = 12;
  c.recall_mode = mode;
  Harness h(c, 12);
  REQUIRE(h.add(5) == Status::kOk);
  REQUIRE(h.append(5, 30) == Status::kOk);
  REQUIRE(h.add(6) == Status::kOk);
  REQUIRE(h.append(6, 7) == Status::kOk);
  for (int i = 0; i < 5; ++i) REQUIRE(h.step({5, 6}, i % 2 ? 1.0f : -1.0f) == Status::kOk);
  // Let async recalls land and swap in (5 is due again afterwards: interval 1; 6 fits kmax).
  h.settle(5);
  const lsa::testing::Snapshot before = h.snapshot({99});
  auto unchanged = [&](const char* what) {
    INFO(what);
    const std::string d = before.diff(h.snapshot({99}));
    CHECK(d == "");
  };
  std::vector<lsa::TokenSlot> out(64);
  std::vector<float> keys(64, 0.5f);
  const auto* kb = reinterpret_cast<const std::byte*>(keys.data());
  std::vector<std::byte> kv(64 * h.token_bytes());

  CHECK(h.cache.add(5) == Status::kDuplicateSequence);
  unchanged("add duplicate");
  CHECK(h.cache.append(77, 1, {}, out) == Status::kUnknownSequence);
  unchanged("append unknown");
  CHECK(h.cache.append(5, -1, {}, out) == Status::kInvalidArgument);
  unchanged("append negative");
  CHECK(h.cache.append(5, 51, {kb, 26}, out, kv.data()) == Status::kOutOfRange);
  unchanged("append past max_tokens");
  CHECK(h.cache.append(5, 4, {kb, 3}, out, kv.data()) == Status::kInvalidArgument);
  unchanged("append wrong key rows");
  CHECK(h.cache.append(5, 4, {nullptr, 2}, out, kv.data()) == Status::kInvalidArgument);
  unchanged("append null keys");
  CHECK(h.cache.append(5, 4, {kb, 2}, std::span<lsa::TokenSlot>(out.data(), 3), kv.data()) == Status::kBufferTooSmall);
  unchanged("append small out");
  keys[1] = std::numeric_limits<float>::quiet_NaN();
  CHECK(h.cache.append(5, 4, {kb, 2}, out, kv.data()) == Status::kNonFiniteInput);
  unchanged("append NaN key");
  keys[1] = std::numeric_limits<float>::infinity();
  CHECK(h.cache.append(5, 4, {kb, 2}, out, kv.data()) == Status::kNonFiniteInput);
  unchanged("append Inf key");
  keys[1] = 0.5f;
  // KV the engine will write needs a slot per page (lsa-copied KV would stream to the mirror).
  CHECK(h.cache.append(6, 40, {kb, 20}, out) == Status::kCapacityExceeded);
  unchanged("append engine-written prefill larger than the free slots");
  CHECK(h.cache.commit(77) == Status::kUnknownSequence);
  unchanged("commit unknown");
  CHECK(h.cache.truncate(77, 0) == Status::kUnknownSequence);
  CHECK(h.cache.truncate(5, -1) == Status::kOutOfRange);
  CHECK(h.cache.truncate(5, 31) == Status::kOutOfRange);
  unchanged("truncate out of range");
  CHECK(h.cache.fork(77, 8) == Status::kUnknownSequence);
  CHECK(h.cache.fork(5, 6) == Status::kDuplicateSequence);
  unchanged("fork unknown / duplicate");
  REQUIRE(h.add(7) == Status::kOk);
  const lsa::testing::Snapshot with7 = h.snapshot();
  CHECK(h.cache.add(8) == Status::kTooManySequences);
  CHECK(h.cache.fork(5, 8) == Status::kTooManySequences);
  CHECK(with7.diff(h.snapshot()) == "");
  REQUIRE(h.remove(7) == Status::kOk);
  CHECK(h.cache.remove(7) == Status::kUnknownSequence);
  unchanged("remove twice");
  std::vector<std::byte> tok(8);
  CHECK(h.cache.read_token(5, 30, 0, tok.data()) == Status::kOutOfRange);
  CHECK(h.cache.read_token(5, 0, 2, tok.data()) == Status::kOutOfRange);
  CHECK(h.cache.read_token(77, 0, 0, tok.data()) == Status::kUnknownSequence);
  unchanged("read_token out of range");

  // Failing steps (both sequences are due: interval 1).
  REQUIRE(h.cache.refresh_due(5));
  const float good = 1.0f, nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = -std::numeric_limits<float>::infinity();
  const float two[2] = {1.0f, 2.0f};
  std::vector<lsa::Query> q = {{std::span(&good, 1), {}}, {std::span(&good, 1), {}}};
  const SeqId b56[2] = {5, 6}, b55[2] = {5, 5}, b57[2] = {5, 77};
  lsa::ViewBuffers vb = h.views.buffers();
  CHECK(h.cache.step(b55, q, vb) == Status::kDuplicateSequence);
  CHECK(h.cache.step(b57, q, vb) == Status::kUnknownSequence);
  CHECK(h.cache.step(b56, std::span(q.data(), 1), vb) == Status::kInvalidArgument);
  CHECK(h.cache.step(b56, {}, vb) == Status::kInvalidArgument);
  unchanged("step bad batch / missing queries");
  q[0].q = std::span(&nan, 1);
  CHECK(h.cache.step(b56, q, vb) == Status::kNonFiniteInput);
  q[0].q = std::span(&inf, 1);
  CHECK(h.cache.step(b56, q, vb) == Status::kNonFiniteInput);
  q[0].q = std::span(two, 2);
  CHECK(h.cache.step(b56, q, vb) == Status::kInvalidArgument);
  q[0].q = {};
  CHECK(h.cache.step(b56, q, vb) == Status::kInvalidArgument);
  q[0].q = std::span(&good, 1);
  unchanged("step bad queries");
  lsa::ViewBuffers small = vb;
  small.indices_capacity = 1;
  CHECK(h.cache.step(b56, q, small) == Status::kBufferTooSmall);
  small = vb;
  small.slot_list_width = 1;
  CHECK(h.cache.step(b56, q, small) == Status::kBufferTooSmall);
  small = vb;
  small.block_table_width = 2;
  CHECK(h.cache.step(b56, q, small) == Status::kBufferTooSmall);
  small = vb;
  small.indices = nullptr;
  CHECK(h.cache.step(b56, q, small) == Status::kInvalidArgument);
  unchanged("step view buffers too small / partial");
  CHECK(h.cache.refresh_due(5));
  // And the cache still works.
  REQUIRE(h.step({5, 6}, 1.0f) == Status::kOk);
  h.check_all();
}

TEST_CASE("invariant 8: per-sequence state is keyed by seq_id and released exactly once",
          "[cpu][invariant]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  const bool file = GENERATE(false, true);
  TempDir dir;
  INFO(mode_name(mode, file));
  Harness h(pressure_config(mode, file ? dir.file("m.bin") : ""), 31);
  const std::vector<SeqId> ids = {-3, 1LL << 40, 0};
  for (SeqId id : ids) {
    REQUIRE(h.add(id) == Status::kOk);
    REQUIRE(h.append(id, 10) == Status::kOk);
  }
  REQUIRE(h.fork(0, 99) == Status::kOk);
  for (int i = 0; i < 20; ++i) {
    std::vector<SeqId> batch = {0, 99, -3, 1LL << 40};
    REQUIRE(h.step(batch, i % 3 - 1.0f) == Status::kOk);
    for (SeqId id : batch) REQUIRE(h.append(id, 1) == Status::kOk);
  }
  h.check_all();
  // Removing the fork parent keeps the child's shared pages.
  REQUIRE(h.remove(0) == Status::kOk);
  CHECK(h.cache.remove(0) == Status::kUnknownSequence);
  h.check_all();
  // A re-added id starts empty.
  REQUIRE(h.add(0) == Status::kOk);
  CHECK(h.cache.length(0) == 0);
  CHECK(h.cache.resident_pages(0).empty());
  h.check_all();
  for (SeqId id : {SeqId{0}, SeqId{99}, SeqId{-3}, SeqId{1LL << 40}}) {
    REQUIRE(h.remove(id) == Status::kOk);
    CHECK(h.cache.remove(id) == Status::kUnknownSequence);
  }
  const lsa::Stats s = h.cache.stats();
  INFO(lsa::testing::to_text(s));
  CHECK(s.live_sequences == 0);
  CHECK(s.total_pages == 0);
  CHECK(s.resident_pages == 0);
  CHECK(s.reserve_slots_used == 0);
  CHECK(s.mirror_pages == 0);
  // The reserve is whole again: one sequence can take every slot (unwritten pages stay pinned).
  REQUIRE(h.add(5) == Status::kOk);
  REQUIRE(h.append(5, static_cast<int32_t>(h.config.num_slots * h.config.page_tokens()), Kv::kEngineWrites) ==
          Status::kOk);
  CHECK(h.cache.stats().reserve_slots_used == h.config.num_slots);
  CHECK(h.cache.store().available_slots() == 0);
  h.check_all();
}
