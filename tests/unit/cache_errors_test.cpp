// Every documented error: the status, and that the cache is exactly as it was before the call.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <string>
#include <vector>

#include "lsa/error.hpp"
#include "support/cache_harness.hpp"

namespace {

using lsa::RecallMode;
using lsa::SeqId;
using lsa::Status;
using lsa::testing::Harness;
using lsa::testing::small_config;
using lsa::testing::Snapshot;
using Kv = Harness::Kv;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// Two sequences with history, refreshed, everything written: a failing call must change nothing.
struct Fixture {
  explicit Fixture(RecallMode mode = RecallMode::kSync, int32_t max_sequences = 3) : h(config(mode, max_sequences), 5) {
    h.key_fn = [](SeqId, int64_t) { return 1.0f; };  // q = 1 keeps every chunk: sets of kmax
    REQUIRE(h.add(10) == Status::kOk);
    REQUIRE(h.append(10, 30) == Status::kOk);  // 8 pages > kmax 4: refreshes
    REQUIRE(h.add(20) == Status::kOk);
    REQUIRE(h.append(20, 9) == Status::kOk);   // 3 pages: fits
    for (int i = 0; i < 4; ++i) REQUIRE(h.step({10, 20}, 1.0f) == Status::kOk);
    h.settle(10);
    before = h.snapshot({30, 40});
  }
  static lsa::CacheConfig config(RecallMode mode, int32_t max_sequences) {
    lsa::CacheConfig c = small_config();
    c.max_sequences = max_sequences;
    c.max_tokens = 64;
    c.policy.kmax_pages = 4;
    c.num_slots = 4 * max_sequences + 4;
    c.recall_mode = mode;
    return c;
  }
  // The cache is exactly as it was after construction.
  void unchanged() const { CHECK(before.diff(h.snapshot({30, 40})) == ""); }

  Harness h;
  Snapshot before;
  std::vector<lsa::TokenSlot> out = std::vector<lsa::TokenSlot>(64);
  std::vector<float> keys = std::vector<float>(64, 0.25f);
  std::vector<std::byte> kv = std::vector<std::byte>(64 * 2 * 8);
  const std::byte* key_rows() const { return reinterpret_cast<const std::byte*>(keys.data()); }
};

}  // namespace

TEST_CASE("errors: every per-sequence call on an unknown id says kUnknownSequence and changes nothing",
          "[cpu][errors]") {
  Fixture f;
  auto& c = f.h.cache;
  std::byte tok[8];
  CHECK(c.append(30, 1, {}, f.out) == Status::kUnknownSequence);
  CHECK(c.commit(30) == Status::kUnknownSequence);
  CHECK(c.truncate(30, 0) == Status::kUnknownSequence);
  CHECK(c.fork(30, 40) == Status::kUnknownSequence);
  CHECK(c.remove(30) == Status::kUnknownSequence);
  CHECK(c.read_token(30, 0, 0, tok) == Status::kUnknownSequence);
  const SeqId batch[2] = {10, 30};
  const float q = 1.0f;
  const std::vector<lsa::Query> queries(2, lsa::Query{std::span(&q, 1), {}});
  CHECK(c.step(batch, queries, f.h.views.buffers()) == Status::kUnknownSequence);
  CHECK_FALSE(c.contains(30));
  CHECK_FALSE(c.refresh_due(30));
  CHECK(c.length(30) == 0);
  CHECK(c.resident_pages(30).empty());
  CHECK(c.slot_of(30, 0) == -1);
  f.unchanged();
}

TEST_CASE("errors: duplicate ids (add, fork onto a live id, an id twice in one batch)", "[cpu][errors]") {
  Fixture f;
  auto& c = f.h.cache;
  CHECK(c.add(10) == Status::kDuplicateSequence);
  CHECK(c.fork(10, 20) == Status::kDuplicateSequence);
  CHECK(c.fork(10, 10) == Status::kDuplicateSequence);
  const float q = 1.0f;
  const std::vector<lsa::Query> queries(3, lsa::Query{std::span(&q, 1), {}});
  const SeqId twice[3] = {10, 20, 10};
  CHECK(c.step(twice, queries, f.h.views.buffers()) == Status::kDuplicateSequence);
  f.unchanged();
}

TEST_CASE("errors: too many sequences (add and fork)", "[cpu][errors]") {
  Fixture f(RecallMode::kSync, /*max_sequences=*/2);
  CHECK(f.h.cache.add(30) == Status::kTooManySequences);
  CHECK(f.h.cache.fork(10, 30) == Status::kTooManySequences);
  f.unchanged();
  REQUIRE(f.h.remove(20) == Status::kOk);
  CHECK(f.h.add(30) == Status::kOk);  // room again
}

TEST_CASE("errors: append past max_tokens, negative count, short out buffer, wrong key rows",
          "[cpu][errors]") {
  Fixture f;
  auto& c = f.h.cache;
  // Sequence 10 has 30 tokens of max 64.
  CHECK(c.append(10, 35, {f.key_rows(), 17}, f.out, f.kv.data()) == Status::kOutOfRange);
  CHECK(c.append(10, -1, {}, f.out) == Status::kInvalidArgument);
  CHECK(c.append(10, 4, {f.key_rows(), 2}, std::span(f.out.data(), 3), f.kv.data()) == Status::kBufferTooSmall);
  CHECK(c.append(10, 4, {f.key_rows(), 1}, f.out, f.kv.data()) == Status::kInvalidArgument);   // 2 chunks complete
  CHECK(c.append(10, 4, {f.key_rows(), 3}, f.out, f.kv.data()) == Status::kInvalidArgument);
  CHECK(c.append(10, 1, {f.key_rows(), 1}, f.out, f.kv.data()) == Status::kInvalidArgument);   // completes none
  CHECK(c.append(10, 4, {nullptr, 2}, f.out, f.kv.data()) == Status::kInvalidArgument);
  f.unchanged();
  // Exactly up to max_tokens is fine.
  CHECK(f.h.append(10, 34) == Status::kOk);
  CHECK(c.length(10) == 64);
  CHECK(c.append(10, 1, {f.key_rows(), 0}, f.out, f.kv.data()) == Status::kOutOfRange);
}

TEST_CASE("errors: truncate out of range", "[cpu][errors]") {
  Fixture f;
  CHECK(f.h.cache.truncate(10, -1) == Status::kOutOfRange);
  CHECK(f.h.cache.truncate(10, 31) == Status::kOutOfRange);
  CHECK(f.h.cache.truncate(20, 10) == Status::kOutOfRange);
  f.unchanged();
  CHECK(f.h.truncate(10, 30) == Status::kOk);  // no-op
  f.unchanged();
}

TEST_CASE("errors: read_token out of range", "[cpu][errors]") {
  Fixture f;
  std::byte tok[8];
  CHECK(f.h.cache.read_token(10, -1, 0, tok) == Status::kOutOfRange);
  CHECK(f.h.cache.read_token(10, 30, 0, tok) == Status::kOutOfRange);
  CHECK(f.h.cache.read_token(10, 0, -1, tok) == Status::kOutOfRange);
  CHECK(f.h.cache.read_token(10, 0, 2, tok) == Status::kOutOfRange);
  f.unchanged();
}

TEST_CASE("errors: queries of the wrong shape, missing or miscounted, and oversized batches",
          "[cpu][errors]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  Fixture f(mode, 3);
  auto& c = f.h.cache;
  REQUIRE(c.refresh_due(10));
  const float one = 1.0f, two[2] = {1.0f, 2.0f};
  std::vector<lsa::Query> q = {{std::span(two, 2), {}}, {}};
  const SeqId batch[2] = {10, 20};
  CHECK(c.step(batch, q, f.h.views.buffers()) == Status::kInvalidArgument);  // 2 values, scorer wants 1
  q[0] = {};
  CHECK(c.step(batch, q, f.h.views.buffers()) == Status::kInvalidArgument);  // due, empty query
  CHECK(c.step(batch, {}, f.h.views.buffers()) == Status::kInvalidArgument);  // due, no queries
  q[0] = {std::span(&one, 1), {}};
  CHECK(c.step(batch, std::span(q.data(), 1), f.h.views.buffers()) == Status::kInvalidArgument);
  const SeqId four[4] = {10, 20, 10, 20};
  CHECK(c.step(four, {}, f.h.views.buffers()) == Status::kInvalidArgument);  // > max_sequences
  f.unchanged();
  CHECK(c.refresh_due(10));
  // A sequence that is not due needs no query at all.
  const SeqId only20[1] = {20};
  CHECK(c.step(only20, {}, f.h.views.buffers()) == Status::kOk);
}

TEST_CASE("errors: NaN/Inf in queries or keys are refused and leave no trace in later selections",
          "[cpu][errors]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  lsa::CacheConfig c = small_config();
  c.max_sequences = 1;
  c.policy.kmax_pages = 4;
  c.num_slots = 8;
  c.recall_mode = mode;
  c.policy.page_score = lsa::PageScore::kScoreMass;
  // Page p's chunks have key p (q = +1 prefers late pages, threshold 0.5).
  auto keys = [](SeqId, int64_t chunk) { return static_cast<float>(chunk / 2); };
  Harness bad(c, 1), good(c, 1);
  bad.key_fn = keys;
  good.key_fn = keys;
  for (Harness* h : {&bad, &good}) {
    REQUIRE(h->add(1) == Status::kOk);
    REQUIRE(h->append(1, 24) == Status::kOk);
  }
  const Snapshot before = bad.snapshot();
  // Keys: NaN, +Inf, -Inf in the middle of an append.
  std::vector<lsa::TokenSlot> out(8);
  std::vector<std::byte> kv(8 * bad.token_bytes());
  for (float badkey : {kNaN, kInf, -kInf}) {
    const float rows[4] = {6.0f, badkey, 7.0f, 7.0f};
    CHECK(bad.cache.append(1, 8, {reinterpret_cast<const std::byte*>(rows), 4}, out, kv.data()) ==
          Status::kNonFiniteInput);
    CHECK(before.diff(bad.snapshot()) == "");
  }
  // Queries: NaN, +Inf, -Inf.
  REQUIRE(bad.cache.refresh_due(1));
  for (float badq : {kNaN, kInf, -kInf}) {
    const lsa::Query q{std::span(&badq, 1), {}};
    const SeqId id = 1;
    CHECK(bad.cache.step(std::span(&id, 1), std::span(&q, 1), bad.views.buffers()) == Status::kNonFiniteInput);
    CHECK(before.diff(bad.snapshot()) == "");
  }
  // Afterwards both caches behave identically, and select what the clean keys say.
  for (Harness* h : {&bad, &good}) {
    REQUIRE(h->append(1, 8) == Status::kOk);
    REQUIRE(h->step({1}, 1.0f) == Status::kOk);
    h->settle(1);
  }
  auto rb = bad.cache.resident_pages(1), rg = good.cache.resident_pages(1);
  CHECK(std::vector<int32_t>(rb.begin(), rb.end()) == std::vector<int32_t>(rg.begin(), rg.end()));
  // 8 pages, forced {0, 7}, budget 2: the best unforced pages are 6 and 5.
  CHECK(std::vector<int32_t>(rb.begin(), rb.end()) == std::vector<int32_t>{0, 5, 6, 7});
  CHECK(bad.cache.stats().refreshes == good.cache.stats().refreshes);
  bad.check_all();
}

TEST_CASE("errors: the reserve cannot take the pages a call must make resident (kCapacityExceeded)",
          "[cpu][errors][capacity]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  lsa::CacheConfig c = small_config();
  c.max_sequences = 3;
  c.policy.kmax_pages = 4;
  c.num_slots = 12;
  c.recall_mode = mode;
  Harness h(c, 3);
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append_in_pieces(1, 62, 16) == Status::kOk);  // 16 pages, the last partial
  REQUIRE(h.step({1}, 0.0f) == Status::kOk);               // nothing kept: forced {0, 15}
  h.settle(1, 0.0f);
  REQUIRE(h.add(2) == Status::kOk);
  // A prefill larger than the free + evictable slots, with KV the engine writes itself: each page
  // needs a slot until it is written. (With lsa-copied KV the pages that do not join the set
  // stream to the mirror instead: capacity_test.cpp.)
  const int32_t avail = h.cache.store().available_slots();
  Snapshot before = h.snapshot({3});
  {
    std::vector<lsa::TokenSlot> out(4 * (avail + 1));
    std::vector<float> keys(2 * (avail + 1), 0.0f);
    CHECK(h.cache.append(2, 4 * (avail + 1), {reinterpret_cast<const std::byte*>(keys.data()), 2 * (avail + 1)},
                         out) == Status::kCapacityExceeded);
    CHECK(before.diff(h.snapshot({3})) == "");
  }
  // Exactly the available slots, unwritten (pinned): fine, and now nothing is left.
  REQUIRE(h.append(2, 4 * avail, Kv::kEngineWrites) == Status::kOk);
  REQUIRE(h.cache.store().available_slots() == 0);
  before = h.snapshot({3});
  // fork needs a slot for its private copy of the partial tail page.
  CHECK(h.cache.fork(1, 3) == Status::kCapacityExceeded);
  CHECK(before.diff(h.snapshot({3})) == "");
  // truncate into pages without slots needs slots for them: to 16 tokens the history fits kmax
  // and pages 1-3 join page 0, while dropping pages 14 and 15 frees only two slots.
  CHECK(h.cache.truncate(1, 16) == Status::kCapacityExceeded);
  CHECK(before.diff(h.snapshot({3})) == "");
  // A decode append of engine-written KV that opens two pages (62 -> 70 tokens): only page 14,
  // which leaves the recent window, gives a slot back (page 15 waits for its KV), so the call is
  // refused. (With lsa-copied KV page 15 is sealed first and gives its slot back too.)
  {
    std::vector<lsa::TokenSlot> out(8);
    const std::vector<float> keys(4, 0.0f);
    CHECK(h.cache.append(1, 8, {reinterpret_cast<const std::byte*>(keys.data()), 4}, out) ==
          Status::kCapacityExceeded);
    CHECK(before.diff(h.snapshot({3})) == "");
  }
  h.check_all();
  // One page (62 -> 65 tokens) fits: it takes the slot of page 14, which left the recent window.
  REQUIRE(h.append(1, 3) == Status::kOk);
  CHECK(h.cache.slot_of(1, 14) == -1);
  CHECK(std::vector<int32_t>(h.cache.resident_pages(1).begin(), h.cache.resident_pages(1).end()) ==
        std::vector<int32_t>{0, 15, 16});
  h.check_all();
  // Room again: everything works.
  REQUIRE(h.commit(2) == Status::kOk);
  REQUIRE(h.remove(2) == Status::kOk);
  CHECK(h.fork(1, 3) == Status::kOk);
  CHECK(h.truncate(1, 16) == Status::kOk);
  h.check_all();
}

TEST_CASE("errors: view buffers with too little capacity say kBufferTooSmall and consume no refresh",
          "[cpu][errors]") {
  const RecallMode mode = GENERATE(RecallMode::kSync, RecallMode::kAsync);
  Fixture f(mode, 3);
  auto& c = f.h.cache;
  REQUIRE(c.refresh_due(10));
  const float one = 1.0f;
  const std::vector<lsa::Query> q(2, lsa::Query{std::span(&one, 1), {}});
  const SeqId batch[2] = {10, 20};
  const lsa::ViewBuffers full = f.h.views.buffers();
  // Sequence 10 lists up to 4 pages, 20 lists 3; 10 has 8 logical pages.
  lsa::ViewBuffers v = full;
  v.indices_capacity = 5;
  CHECK(c.step(batch, q, v) == Status::kBufferTooSmall);
  v = full;
  v.slot_list_width = 3;
  CHECK(c.step(batch, q, v) == Status::kBufferTooSmall);
  v = full;
  v.block_table_width = 7;
  CHECK(c.step(batch, q, v) == Status::kBufferTooSmall);
  // Only one format requested, too small.
  v = lsa::ViewBuffers{};
  v.block_table = full.block_table;
  v.block_table_width = 7;
  CHECK(c.step(batch, q, v) == Status::kBufferTooSmall);
  v = lsa::ViewBuffers{};
  v.slot_lists = full.slot_lists;
  v.slot_list_width = 2;
  CHECK(c.step(batch, q, v) == Status::kBufferTooSmall);
  // Partial CSR pointers.
  v = full;
  v.last_page_len = nullptr;
  CHECK(c.step(batch, q, v) == Status::kInvalidArgument);
  f.unchanged();
  CHECK(c.refresh_due(10));
  // Exactly enough is fine: every entry up to capacity written, padding -1.
  v = full;
  v.indices_capacity = 7;
  v.slot_list_width = 4;
  v.block_table_width = 8;
  std::fill(f.h.views.indices.begin(), f.h.views.indices.end(), 12345);
  std::fill(f.h.views.slot_lists.begin(), f.h.views.slot_lists.end(), 12345);
  std::fill(f.h.views.block_table.begin(), f.h.views.block_table.end(), 12345);
  REQUIRE(c.step(batch, q, v) == Status::kOk);
  for (int64_t i = 0; i < 7; ++i) CHECK(f.h.views.indices[i] != 12345);
  for (int64_t i = f.h.views.indptr[2]; i < 7; ++i) CHECK(f.h.views.indices[i] == -1);
  CHECK(f.h.views.indices[7] == 12345);  // past the stated capacity: untouched
  for (int64_t i = 0; i < 2 * 4; ++i) CHECK(f.h.views.slot_lists[i] != 12345);
  for (int64_t i = 0; i < 2 * 8; ++i) CHECK(f.h.views.block_table[i] != 12345);
}

TEST_CASE("errors: a mirror file that cannot be created throws lsa::Error naming mirror_path",
          "[cpu][errors][config]") {
  lsa::CacheConfig c = small_config();
  c.mirror_path = "/nonexistent-lsa-dir/sub/mirror.bin";
  try {
    lsa::testing::TestCache cache(c);
    FAIL("constructed with an unwritable mirror_path");
  } catch (const lsa::Error& e) {
    INFO(e.what());
    CHECK(std::string(e.what()).find("mirror_path") != std::string::npos);
    CHECK(std::string(e.what()).find("/nonexistent-lsa-dir/sub/mirror.bin") != std::string::npos);
  }
  c.mirror_path = std::filesystem::temp_directory_path().string();  // a directory
  CHECK_THROWS_AS(lsa::testing::TestCache(c), lsa::Error);
}

TEST_CASE("errors: when the file mirror cannot be written, commit says kIoError and nothing is lost",
          "[cpu][errors][io]") {
  // /dev/full accepts the open and fails every write with ENOSPC.
  const int fd = ::open("/dev/full", O_RDWR);
  if (fd < 0) {
    WARN("LSA_TEST_SKIPPED: no writable /dev/full here");
    return;
  }
  ::close(fd);
  lsa::CacheConfig c = small_config();
  c.max_sequences = 1;
  c.policy.kmax_pages = 4;
  c.num_slots = 64;
  c.mirror_path = "/dev/full";
  Harness h(c, 8);
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 30) == Status::kOk);  // lsa-copied: sealing fails quietly, pages stay
  const Snapshot before = h.snapshot();
  CHECK(h.commit(1) == Status::kIoError);
  CHECK(h.append(1, 2) == Status::kIoError);  // commits (seals) first: refused, unchanged
  CHECK(h.truncate(1, 3) == Status::kIoError);
  CHECK(before.diff(h.snapshot()) == "");
  for (int i = 0; i < 6; ++i) REQUIRE(h.step({1}, i % 2 ? 1.0f : -1.0f) == Status::kOk);
  CHECK(h.cache.stats().sealed_pages == 0);
  CHECK(h.cache.stats().mirror_pages == 0);
  h.check_bytes();  // every token still readable byte-exact from its slot
}

namespace {

// Async, file mirror, sequence 1 of 12 four-token pages through a reserve of 6 slots (plus 4
// per other sequence allowed); kmax 4 with only the tail page forced. Query 1 wants pages 1-3,
// query -1 pages 0 and 4-10 (ties to the lower page: 0, 4, 5). Starts serving {1, 2, 3, 11}.
struct AsyncFileFixture {
  explicit AsyncFileFixture(int32_t max_sequences = 1)
      : h(config(dir.file("mirror.bin"), max_sequences), 7,
          lsa::HostStoreOptions{[this](lsa::MirrorIo op, int64_t) {
            return op == lsa::MirrorIo::kWrite && fail_writes;
          }}) {
    h.key_fn = [](SeqId, int64_t chunk) {
      const int64_t p = chunk / 2;
      return p >= 1 && p <= 3 ? 1.0f : -1.0f;
    };
    REQUIRE(h.add(1) == Status::kOk);
    REQUIRE(h.append_in_pieces(1, 48, 4) == Status::kOk);
    REQUIRE(h.step({1}, 1.0f) == Status::kOk);
    h.settle(1);
    REQUIRE(resident() == std::vector<int32_t>{1, 2, 3, 11});
  }
  static lsa::CacheConfig config(const std::string& mirror, int32_t max_sequences) {
    lsa::CacheConfig c = small_config();  // 4-token pages of 2-token chunks, interval 1
    c.max_sequences = max_sequences;
    c.max_tokens = 64;
    c.policy.sink_chunks = 0;
    c.policy.recent_chunks = 1;
    c.policy.kmax_pages = 4;
    c.num_slots = 6 + 4 * (max_sequences - 1);
    c.recall_mode = RecallMode::kAsync;
    c.mirror_path = mirror;
    return c;
  }
  std::vector<int32_t> resident() const {
    const auto r = h.cache.resident_pages(1);
    return {r.begin(), r.end()};
  }
  // Refreshes toward query -1 (with 6 slots pages 0 and 4 are recalled, 5 refused for want of
  // slots) and waits until those copies have finished; the set in flight swaps in at the next step.
  void refresh_and_wait() {
    REQUIRE(h.step({1}, -1.0f) == Status::kOk);
    REQUIRE(h.cache.slot_of(1, 0) >= 0);
    REQUIRE(h.cache.slot_of(1, 4) >= 0);
    auto& store = h.cache.store();
    uint64_t last = 0;
    for (int64_t p : {0, 4, 5}) {
      if (h.cache.slot_of(1, p) >= 0) last = std::max(last, store.slot_job(h.cache.slot_of(1, p)));
    }
    store.wait_copies(last);
  }
  // The file behind the cache loses its contents (another process truncates it).
  void truncate_file() const { REQUIRE(::truncate(dir.file("mirror.bin").c_str(), 0) == 0); }

  lsa::testing::TempDir dir;
  bool fail_writes = false;  // the mirror's disk is full
  Harness h;
};

}  // namespace

TEST_CASE("errors (async): after a recall fails, step sizes the view by the set it really lists",
          "[cpu][errors][async]") {
  // The set in flight ({0, 4, 11}) fails to copy, so the step keeps serving the 4-page set: view
  // buffers of 3 entries are too small for it, and nothing past their capacity is written.
  AsyncFileFixture f;
  f.truncate_file();
  f.refresh_and_wait();
  constexpr int32_t kPoison = 0x5A5A5A5A;
  constexpr int64_t kCapacity = 3;
  std::vector<int32_t> indptr(2, kPoison), last(1, kPoison), table(12, kPoison);
  std::vector<int32_t> indices(kCapacity + 8, kPoison), lists(kCapacity + 8, kPoison);
  const lsa::ViewBuffers small{indptr.data(), indices.data(), kCapacity,    last.data(),
                               lists.data(),  kCapacity,      table.data(), 12};
  const std::vector<SeqId> batch = {1};
  CHECK(f.h.cache.step(batch, {}, small) == Status::kBufferTooSmall);
  for (int64_t i = kCapacity; i < kCapacity + 8; ++i) {
    CHECK(indices[i] == kPoison);
    CHECK(lists[i] == kPoison);
  }
  lsa::ViewBuffers csr_only{indptr.data(), indices.data(), kCapacity, last.data()};
  CHECK(f.h.cache.step(batch, {}, csr_only) == Status::kBufferTooSmall);
  lsa::ViewBuffers lists_only;
  lists_only.slot_lists = lists.data();
  lists_only.slot_list_width = kCapacity;
  CHECK(f.h.cache.step(batch, {}, lists_only) == Status::kBufferTooSmall);
  for (int64_t i = kCapacity; i < kCapacity + 8; ++i) {
    CHECK(indices[i] == kPoison);
    CHECK(lists[i] == kPoison);
  }
  CHECK(f.resident() == std::vector<int32_t>{1, 2, 3, 11});
  // With room for 4 the step lists the set that keeps serving, and counts the failed copies.
  REQUIRE(f.h.step_unchecked({1}, 1.0f) == Status::kOk);
  CHECK(f.resident() == std::vector<int32_t>{1, 2, 3, 11});
  CHECK(f.h.views.indptr[1] == 4);
  CHECK(f.h.cache.stats().recall_errors == 2);
}

TEST_CASE(
    "invariant 7 (async): a failed truncate leaves the resident set as it was (the finished "
    "set in flight is not swapped in first)",
    "[cpu][invariant][errors][async]") {
  AsyncFileFixture f;
  f.refresh_and_wait();  // {0, 4, 11} is complete and waits for the next step
  f.truncate_file();     // page 7, which the truncated history forces, cannot be read back
  std::vector<int32_t> slots;
  for (int32_t p : f.resident()) slots.push_back(f.h.cache.slot_of(1, p));
  CHECK(f.h.cache.truncate(1, 30) != Status::kOk);
  CHECK(f.h.cache.length(1) == 48);
  CHECK(f.resident() == std::vector<int32_t>{1, 2, 3, 11});
  std::vector<int32_t> after;
  for (int32_t p : f.resident()) after.push_back(f.h.cache.slot_of(1, p));
  CHECK(after == slots);
}

TEST_CASE(
    "invariant 7 (async): a failed fork leaves the parent's sets as they were (its finished "
    "set in flight is not swapped in first)",
    "[cpu][invariant][errors][async]") {
  AsyncFileFixture f(2);
  f.refresh_and_wait();  // {0, 4, 5, 11} is complete and waits for the next step
  // Written by the engine and not yet committed: the fork commits it, and sealing fails. (Page 11
  // leaves both sets: no longer the tail.)
  REQUIRE(f.h.append(1, 4, Harness::Kv::kEngineWrites) == Status::kOk);
  const std::vector<int32_t> resident = f.resident();
  REQUIRE(resident == std::vector<int32_t>{1, 2, 3, 12});
  f.fail_writes = true;
  CHECK(f.h.fork(1, 2) == Status::kIoError);
  CHECK_FALSE(f.h.cache.contains(2));
  CHECK(f.resident() == resident);
  f.fail_writes = false;
  // The set in flight swaps in at the next step, and the fork then works.
  REQUIRE(f.h.step({1}, -1.0f) == Status::kOk);
  CHECK(f.resident() == std::vector<int32_t>{0, 4, 5, 12});
  REQUIRE(f.h.fork(1, 2) == Status::kOk);
  f.h.check_all();
}
