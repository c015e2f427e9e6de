// Invariant 6: a step with no refresh due makes no heap allocation (the global operator new of the
// test binary counts, tests/unit/allocation_hooks.cpp).
#include <sys/resource.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdint>
#include <new>
#include <vector>

#include "support/allocation_hooks.hpp"
#include "support/cache_harness.hpp"

using lsa::testing::CountAllocations;

TEST_CASE("allocation counter sees allocations only while counting", "[cpu][invariant][alloc]") {
  CountAllocations counter;
  auto* v = new std::vector<int>(100);
  const int64_t n = counter.count();
  delete v;
  CHECK(n == 2);  // the vector object and its buffer
}

TEST_CASE("invariant 6: step() with no refresh due makes zero heap allocations (batch 1, 8, 64)",
          "[cpu][invariant][alloc]") {
  const lsa::RecallMode mode = GENERATE(lsa::RecallMode::kSync, lsa::RecallMode::kAsync);
  const int batch_size = GENERATE(1, 8, 64);
  INFO((mode == lsa::RecallMode::kSync ? "sync" : "async") << ", batch " << batch_size);
  lsa::CacheConfig c;
  c.num_layers = 2;
  c.bytes_per_token_per_layer = 16;
  c.chunk_tokens = 4;
  c.page_chunks = 4;  // 16-token pages
  c.max_sequences = 64;
  c.max_tokens = 16 * 64;
  c.policy.interval = 1000;
  c.policy.spread_phase = false;
  c.policy.sink_chunks = 1;
  c.policy.recent_chunks = 4;
  c.policy.kmax_pages = 8;
  c.num_slots = 64 * 24;
  c.recall_mode = mode;
  lsa::testing::TestCache cache(c);
  // Sequences of 20 pages (do not fit kmax 8) with lsa-copied KV and one key per chunk.
  const int32_t tokens = 16 * 20 + 5;
  std::vector<std::byte> kv(static_cast<size_t>(tokens) * 2 * 16, std::byte{7});
  std::vector<float> keys(tokens / 4);
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = static_cast<float>(i % 7) / 7.0f;
  std::vector<lsa::TokenSlot> out(tokens);
  std::vector<lsa::SeqId> batch;
  for (int b = 0; b < batch_size; ++b) {
    const lsa::SeqId id = 1000 + 17 * b;  // ids far from rows
    batch.push_back(id);
    REQUIRE(cache.add(id) == lsa::Status::kOk);
    REQUIRE(cache.append(id, tokens, {reinterpret_cast<const std::byte*>(keys.data()), tokens / 4}, out,
                         kv.data()) == lsa::Status::kOk);
  }
  const float one = 1.0f;
  std::vector<lsa::Query> queries(batch.size(), lsa::Query{std::span(&one, 1), {}});
  lsa::ViewStorage views(64, 32, 64);  // allocated before anything is counted
  const lsa::ViewBuffers buffers = views.buffers();
  // Warm up: every sequence refreshes once (allowed to allocate), then async sets swap in.
  REQUIRE(cache.step(batch, queries, buffers) == lsa::Status::kOk);
  for (lsa::SeqId id : batch) REQUIRE_FALSE(cache.refresh_due(id));
  REQUIRE(cache.stats().refreshes == batch_size);
  // Counted steps: no refresh is due; in async mode the chosen pages were cached (no copy), so the
  // new sets swap in during the first counted step.
  int64_t allocations = 0;
  for (int i = 0; i < 50; ++i) {
    {
      CountAllocations counter;
      const lsa::Status s = cache.step(batch, queries, buffers);
      allocations += counter.count();
      REQUIRE(s == lsa::Status::kOk);
    }
    // Also without queries and in a different batch order.
    std::reverse(batch.begin(), batch.end());
    {
      CountAllocations counter;
      const lsa::Status s = cache.step(batch, {}, buffers);
      allocations += counter.count();
      REQUIRE(s == lsa::Status::kOk);
    }
  }
  CHECK(allocations == 0);
  CHECK(cache.stats().refreshes == batch_size);  // none of the counted steps refreshed
  // The view is complete: every sequence lists its resident set.
  for (size_t b = 0; b < batch.size(); ++b) {
    CHECK(views.indptr[b + 1] - views.indptr[b] == static_cast<int32_t>(cache.resident_pages(batch[b]).size()));
  }
}

namespace {

// While alive, writes past `bytes` in any file of this process fail with EFBIG (a full disk, as
// far as the file mirror can tell); SIGXFSZ is ignored meanwhile.
class FileSizeLimit {
 public:
  explicit FileSizeLimit(rlim_t bytes) {
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved_) == 0);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit limit = saved_;
    limit.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &limit) == 0);
  }
  ~FileSizeLimit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }
  FileSizeLimit(const FileSizeLimit&) = delete;
  FileSizeLimit& operator=(const FileSizeLimit&) = delete;

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
};

}  // namespace

TEST_CASE(
    "invariant 6 (async): the step that swaps in a finished set allocates nothing, even when "
    "more pages leave it than any call before",
    "[cpu][invariant][alloc][async]") {
  // A commit whose sealing fails (the mirror's disk is full) returns before the sets are brought
  // back to policy: the pages it committed stay in the set in flight, and leave it at the swap.
  lsa::testing::TempDir dir;
  lsa::CacheConfig c = lsa::testing::small_config();  // 4-token pages, sink 1 chunk, recent 2
  c.max_sequences = 1;
  c.max_tokens = 4096;
  c.policy.interval = 1000;  // one refresh, then none during the test
  c.policy.kmax_pages = 24;
  c.num_slots = 200;
  c.recall_mode = lsa::RecallMode::kAsync;
  c.mirror_path = dir.file("mirror.bin");
  lsa::testing::Harness h(c, 3);
  using Kv = lsa::testing::Harness::Kv;
  h.key_fn = [](lsa::SeqId, int64_t chunk) {
    return chunk / 2 == 5 || chunk / 2 == 6 ? 1.0f : -1.0f;
  };
  REQUIRE(h.add(1) == lsa::Status::kOk);
  REQUIRE(h.append(1, 4 * 40) == lsa::Status::kOk);  // 40 pages sealed, every one cached in a slot
  // The refresh picks pages 5 and 6 besides the forced ones; their slots hold them already, so
  // the set in flight is complete at once but swaps in only at the next step.
  REQUIRE(h.step({1}, 1.0f) == lsa::Status::kOk);
  // 20 engine-written pages join both sets (forced while unwritten); committing them fails to
  // seal: they are no longer forced, and leave the set at the swap.
  REQUIRE(h.append(1, 4 * 20, Kv::kEngineWrites) == lsa::Status::kOk);
  {
    FileSizeLimit full(static_cast<rlim_t>(40 * c.page_bytes()));
    REQUIRE(h.cache.commit(1) == lsa::Status::kIoError);
  }
  REQUIRE(h.cache.resident_pages(1).size() == 21);  // 0 and the 20 new pages
  const float one = 1.0f;
  const std::vector<lsa::Query> queries = {lsa::Query{std::span(&one, 1), {}}};
  const std::vector<lsa::SeqId> batch = {1};
  const lsa::ViewBuffers buffers = h.views.buffers();
  int64_t allocations = 0;
  lsa::Status s;
  {
    CountAllocations counter;
    s = h.cache.step(batch, queries, buffers);
    allocations = counter.count();
  }
  REQUIRE(s == lsa::Status::kOk);
  CHECK(allocations == 0);
  const auto res = h.cache.resident_pages(1);
  CHECK(std::vector<int32_t>(res.begin(), res.end()) == std::vector<int32_t>{0, 5, 6, 59});
  CHECK(h.cache.stats().refreshes == 1);
  REQUIRE(h.commit(1) == lsa::Status::kOk);  // the disk has room again
  h.check_all();
}
