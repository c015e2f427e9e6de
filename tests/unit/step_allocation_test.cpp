// Invariant 6: a step with no refresh due makes no heap allocation. This file replaces the global
// operator new/delete for the whole test binary; they count only while a thread has counting on.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include "support/cache_harness.hpp"

namespace {

std::atomic<int64_t> g_allocations{0};
thread_local bool t_counting = false;

void* allocate(std::size_t n) {
  if (t_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}

void* allocate_aligned(std::size_t n, std::align_val_t align) {
  if (t_counting) g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(align);
  void* p = nullptr;
  if (::posix_memalign(&p, a < sizeof(void*) ? sizeof(void*) : a, n == 0 ? 1 : n) == 0) return p;
  throw std::bad_alloc();
}

// Counts heap allocations made by this thread while alive.
class CountAllocations {
 public:
  CountAllocations() : start_(g_allocations.load()) { t_counting = true; }
  ~CountAllocations() { t_counting = false; }
  int64_t count() const { return g_allocations.load() - start_; }

 private:
  int64_t start_;
};

}  // namespace

// GCC sees free() of memory from operator new once these are inlined; here that is the point.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif

void* operator new(std::size_t n) { return allocate(n); }
void* operator new[](std::size_t n) { return allocate(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new(std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new[](std::size_t n, std::align_val_t a) { return allocate_aligned(n, a); }
void* operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate_aligned(n, a);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept {
  try {
    return allocate_aligned(n, a);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

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
