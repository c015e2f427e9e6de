// End-to-end refresh (LightningScorer fp8 keys H=64 D=128 + selection + sync recall of the pages
// that changed) at 128K and 1M tokens, and the dense-attention comparison point: reading the whole
// context's KV once vs reading only the resident pages.
//
// Per context length (arg 0 = tokens), kmax = 1/8 of the pages (256 at 128K, 2048 at 1M; at
// kmax 2048 a 128K history fits and never refreshes), sink 1 / recent 2048 chunks, chunk 4,
// page 16 chunks, 64 B of KV per token, 1 layer (4 KiB pages). Two caches are built once per
// length and kept for every benchmark of that length:
//  A: LightningScorer, interval 1 (every step refreshes), reserve 2 * kmax slots, so pages that
//     leave a set soon lose their slot and a new set's pages are real mirror -> reserve copies
//     (8 queries in turn: their sets together far exceed the kmax spare slots);
//  B: a given-score scorer, one refresh then none (interval 2^30), for the plain decode step.
// Reads marked cold follow a 64 MiB sweep of another buffer (the last-level cache is 32 MiB).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_scorer.hpp"
#include "bench_util.hpp"
#include "lsa/cache_config.hpp"
#include "lsa/chunker.hpp"
#include "lsa/detail/page_ranking.hpp"
#include "lsa/host_store.hpp"
#include "lsa/lookahead_policy.hpp"
#include "lsa/scorers/lightning_scorer.hpp"
#include "lsa/sparse_kv_cache.hpp"
#include "lsa/view.hpp"

namespace {

using LightningCache =
    lsa::SparseKVCache<lsa::Chunker, lsa::LightningScorer, lsa::LookaheadPolicy, lsa::HostStore>;
using GivenCache = lsa::SparseKVCache<lsa::Chunker, lsa::bench::GivenScoreScorer,
                                      lsa::LookaheadPolicy, lsa::HostStore>;

constexpr int32_t kChunkTokens = 4;
constexpr int32_t kPageChunks = 16;
constexpr int64_t kPageTokens = int64_t{kChunkTokens} * kPageChunks;
constexpr int64_t kBytesPerToken = 64;  // 1 layer
constexpr int64_t kPageBytes = kPageTokens * kBytesPerToken;
constexpr int32_t kHeads = 64;
constexpr int32_t kHeadDim = 128;
constexpr int kNumQueries = 8;
constexpr lsa::SeqId kSeq = 7;
constexpr size_t kFlushBytes = size_t{64} << 20;

uint64_t next_random(uint64_t& x) {
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

lsa::ScorerConfig lightning_config(float logit_offset) {
  lsa::ScorerConfig s;
  s.num_layers = 1;
  s.num_heads = kHeads;
  s.num_key_heads = 1;
  s.head_dim = kHeadDim;
  s.key_format = lsa::KeyFormat::kFp8E4M3;
  s.logit_offset = logit_offset;
  return s;
}

lsa::CacheConfig cache_config(int64_t num_tokens, int32_t kmax, int32_t slots, int32_t interval) {
  lsa::CacheConfig c;
  c.num_layers = 1;
  c.bytes_per_token_per_layer = kBytesPerToken;
  c.chunk_tokens = kChunkTokens;
  c.page_chunks = kPageChunks;
  c.num_slots = slots;
  c.max_sequences = 1;
  c.max_tokens = num_tokens;
  c.recall_mode = lsa::RecallMode::kSync;
  c.policy.interval = interval;
  c.policy.spread_phase = false;
  c.policy.kmax_pages = kmax;
  c.policy.sink_chunks = 1;
  c.policy.recent_chunks = 2048;
  return c;
}

/// Everything built once per context length.
struct Fixture {
  int64_t num_tokens = 0;
  int64_t num_chunks = 0;
  int64_t num_pages = 0;
  int32_t kmax = 0;
  float logit_offset = 0.0f;
  std::vector<std::byte> rows;                    // [chunks][132] fp8 keys + scale
  std::vector<std::vector<float>> q, w;           // kNumQueries queries
  std::unique_ptr<LightningCache> refresh_cache;  // A
  std::unique_ptr<lsa::ViewStorage> refresh_view;
  int64_t next_query = 1;
  std::unique_ptr<GivenCache> step_cache;  // B
  std::unique_ptr<lsa::ViewStorage> step_view;
  lsa::LightningScorer scorer{lightning_config(0.0f), kChunkTokens};  // standalone, for the parts
  lsa::LightningScorer::Index index;
  std::unique_ptr<lsa::bench::AlignedBytes> dense;  // num_tokens * 64 B: the full context's KV
  std::unique_ptr<lsa::bench::AlignedBytes> flush;  // swept to push everything out of the LLC
  std::string error;

  lsa::Query query(int64_t i) const {
    return {std::span<const float>(q[i % kNumQueries]), std::span<const float>(w[i % kNumQueries])};
  }
  void flush_caches() const {
    benchmark::DoNotOptimize(lsa::bench::read_stream(flush->get(), flush->size));
  }
};

// Random fp8 keys (no NaN codes), and queries; the logit offset is set so
// that about 10% of chunks score above 0.5, the reference system's operating point.
void make_workload(Fixture& f) {
  const lsa::LightningScorer probe(lightning_config(0.0f), kChunkTokens);
  const int64_t row_bytes = probe.row_bytes();  // 132
  f.rows.resize(static_cast<size_t>(f.num_chunks * row_bytes));
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (int64_t c = 0; c < f.num_chunks; ++c) {
    std::byte* row = f.rows.data() + c * row_bytes;
    for (int d = 0; d < kHeadDim; d += 8) {
      uint64_t bits = next_random(x) & 0xBFBFBFBFBFBFBFBFull;  // |value| < 2: no NaN code 0x7F
      std::memcpy(row + d, &bits, 8);
    }
    // One scale for all: which chunks win then depends on the query's direction, not on the key.
    const float scale = 0.0125f;
    std::memcpy(row + kHeadDim, &scale, 4);
  }
  std::mt19937 rng(3);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // Head weights shared and every head's query of norm sqrt(D): the logit distribution (and so
  // the kept fraction under one offset) is the same for every query; only which chunks win moves.
  f.q.assign(kNumQueries, std::vector<float>(size_t{kHeads} * kHeadDim));
  f.w.assign(kNumQueries, std::vector<float>(kHeads));
  for (float& v : f.w[0]) v = normal(rng) / 8.0f;
  for (int i = 0; i < kNumQueries; ++i) {
    f.w[i] = f.w[0];
    for (int h = 0; h < kHeads; ++h) {
      float* head = f.q[i].data() + size_t{kHeadDim} * h;
      double norm = 0.0;
      for (int d = 0; d < kHeadDim; ++d) {
        head[d] = normal(rng);
        norm += double{head[d]} * head[d];
      }
      const auto scale = static_cast<float>(std::sqrt(kHeadDim / norm));
      for (int d = 0; d < kHeadDim; ++d) head[d] *= scale;
    }
  }
  // Calibrate on up to 16K chunks with query 0: offset = -logit(90th percentile).
  lsa::LightningScorer::Index sample;
  const int64_t n = std::min<int64_t>(f.num_chunks, 16384);
  probe.append(sample, {f.rows.data(), n});
  std::vector<float> scores(static_cast<size_t>(n));
  probe.score(sample, f.query(0), scores);
  std::nth_element(scores.begin(), scores.begin() + n * 9 / 10, scores.end());
  const double p90 = scores[static_cast<size_t>(n * 9 / 10)];
  f.logit_offset = static_cast<float>(-std::log(p90 / (1.0 - p90)));
}

std::unique_ptr<Fixture> build(int64_t num_tokens) {
  auto f = std::make_unique<Fixture>();
  f->num_tokens = num_tokens;
  f->num_chunks = num_tokens / kChunkTokens;
  f->num_pages = (num_tokens + kPageTokens - 1) / kPageTokens;
  f->kmax = static_cast<int32_t>(f->num_pages / 8);
  make_workload(*f);
  const auto fail = [&](const std::string& what) {
    f->error = what;
    return std::move(f);
  };

  // A: appended in rounds of kmax pages, a refresh after each (pinned pages stay <= 2 * kmax).
  {
    lsa::CacheConfig c = cache_config(num_tokens, f->kmax, 2 * f->kmax, /*interval=*/1);
    c.scorer = lightning_config(f->logit_offset);
    f->refresh_cache = std::make_unique<LightningCache>(c);
    f->refresh_view =
        std::make_unique<lsa::ViewStorage>(1, f->kmax, static_cast<int32_t>(f->num_pages));
    LightningCache& cache = *f->refresh_cache;
    if (cache.add(kSeq) != lsa::Status::kOk) return fail("A: add");
    const int64_t round_tokens = int64_t{f->kmax} * kPageTokens;
    std::vector<std::byte> kv(static_cast<size_t>(round_tokens * kBytesPerToken), std::byte{3});
    std::vector<lsa::TokenSlot> where(static_cast<size_t>(round_tokens));
    const int64_t row_bytes = f->scorer.row_bytes();
    const lsa::SeqId ids[1] = {kSeq};
    for (int64_t t = 0; t < num_tokens; t += round_tokens) {
      const int64_t n = std::min(round_tokens, num_tokens - t);
      const int64_t first_chunk = t / kChunkTokens;
      const int64_t chunks = (t + n) / kChunkTokens - first_chunk;
      if (cache.append(kSeq, static_cast<int32_t>(n),
                       {f->rows.data() + first_chunk * row_bytes, chunks}, where,
                       kv.data()) != lsa::Status::kOk) {
        return fail("A: append");
      }
      const lsa::Query qs[1] = {f->query(0)};
      if (cache.step(ids, qs, f->refresh_view->buffers()) != lsa::Status::kOk)
        return fail("A: step");
    }
  }
  // B: every page fits the reserve during the single append; one refresh leaves kmax resident.
  {
    lsa::CacheConfig c = cache_config(num_tokens, f->kmax, static_cast<int32_t>(f->num_pages) + 1,
                                      /*interval=*/1 << 30);
    f->step_cache = std::make_unique<GivenCache>(c);
    f->step_view =
        std::make_unique<lsa::ViewStorage>(1, f->kmax, static_cast<int32_t>(f->num_pages));
    GivenCache& cache = *f->step_cache;
    std::vector<float> keys(static_cast<size_t>(f->num_chunks));
    std::mt19937 rng(11);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (float& k : keys) k = u(rng) < 0.10f ? 0.5f + 0.5f * u(rng) : 0.5f * u(rng);
    std::vector<std::byte> kv(static_cast<size_t>(num_tokens * kBytesPerToken), std::byte{5});
    std::vector<lsa::TokenSlot> where(static_cast<size_t>(num_tokens));
    if (cache.add(kSeq) != lsa::Status::kOk ||
        cache.append(kSeq, static_cast<int32_t>(num_tokens),
                     {reinterpret_cast<const std::byte*>(keys.data()), f->num_chunks}, where,
                     kv.data()) != lsa::Status::kOk) {
      return fail("B: add/append");
    }
    const float one = 1.0f;
    const lsa::Query qs[1] = {{std::span<const float>(&one, 1), {}}};
    const lsa::SeqId ids[1] = {kSeq};
    if (cache.step(ids, qs, f->step_view->buffers()) != lsa::Status::kOk) return fail("B: step");
    if (cache.refresh_due(kSeq)) return fail("B: refresh still due");
  }
  f->scorer.append(f->index, {f->rows.data(), f->num_chunks});
  f->dense =
      std::make_unique<lsa::bench::AlignedBytes>(static_cast<size_t>(num_tokens * kBytesPerToken));
  f->flush = std::make_unique<lsa::bench::AlignedBytes>(kFlushBytes);
  return f;
}

Fixture* fixture(benchmark::State& state) {
  static std::map<int64_t, std::unique_ptr<Fixture>> fixtures;
  const int64_t num_tokens = state.range(0);
  auto& f = fixtures[num_tokens];
  if (!f) f = build(num_tokens);
  if (!f->error.empty()) {
    state.SkipWithError(("setup failed: " + f->error).c_str());
    return nullptr;
  }
  return f.get();
}

// One refresh step: score every chunk, select, recall the changed pages (sync), write the view.
void BM_Refresh(benchmark::State& state) {
  Fixture* f = fixture(state);
  if (f == nullptr) return;
  LightningCache& cache = *f->refresh_cache;
  const lsa::ViewBuffers view = f->refresh_view->buffers();
  const lsa::SeqId ids[1] = {kSeq};
  const lsa::Stats before = cache.stats();
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    const lsa::Query qs[1] = {f->query(f->next_query++)};  // a new query: the set changes
    if (cache.step(ids, qs, view) != lsa::Status::kOk) {
      state.SkipWithError("refresh step failed");
      break;
    }
  }
  const double ns = timer.ns_per_item(state, 1.0);
  const lsa::Stats after = cache.stats();
  const double refreshes = static_cast<double>(after.refreshes - before.refreshes);
  const double recalled = static_cast<double>(after.recalled_pages - before.recalled_pages);
  state.counters["ms_per_refresh"] = ns / 1e6;
  state.counters["refreshes"] = refreshes;
  state.counters["recalled_pages_per_refresh"] = refreshes > 0 ? recalled / refreshes : 0.0;
  state.counters["recalled_MiB_per_refresh"] =
      refreshes > 0 ? recalled * kPageBytes / refreshes / (1 << 20) : 0.0;
  state.counters["resident_pages"] = static_cast<double>(after.resident_pages);
  state.counters["total_pages"] = static_cast<double>(after.total_pages);
  state.counters["capacity_refusals"] =
      static_cast<double>(after.capacity_refusals - before.capacity_refusals);
  if (refreshes != static_cast<double>(state.iterations())) {
    state.SkipWithError("not every timed step refreshed");
  }
}

// The parts of a refresh, alone: scoring every chunk, and selection from those scores.
void BM_RefreshPart_Score(benchmark::State& state) {
  Fixture* f = fixture(state);
  if (f == nullptr) return;
  const lsa::LightningScorer scorer(lightning_config(f->logit_offset), kChunkTokens);
  std::vector<float> scores(static_cast<size_t>(f->num_chunks));
  int64_t i = 0;
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    scorer.score(f->index, f->query(i++), scores);
    benchmark::DoNotOptimize(scores.data());
  }
  const double ns = timer.ns_per_item(state, 1.0);
  double kept = 0.0;  // mean over the queries
  for (int j = 0; j < kNumQueries; ++j) {
    scorer.score(f->index, f->query(j), scores);
    kept += static_cast<double>(
                std::count_if(scores.begin(), scores.end(), [](float s) { return s > 0.5f; })) /
            kNumQueries;
  }
  state.counters["ms_per_score"] = ns / 1e6;
  state.counters["ns_per_chunk"] = ns / static_cast<double>(f->num_chunks);
  state.counters["GMAC_per_s"] = static_cast<double>(f->num_chunks) * kHeads * kHeadDim / ns;
  state.counters["kept_fraction"] = kept / static_cast<double>(f->num_chunks);
}

void BM_RefreshPart_Select(benchmark::State& state) {
  Fixture* f = fixture(state);
  if (f == nullptr) return;
  const lsa::LightningScorer scorer(lightning_config(f->logit_offset), kChunkTokens);
  std::vector<float> scores(static_cast<size_t>(f->num_chunks));
  scorer.score(f->index, f->query(1), scores);
  const lsa::CacheConfig c = cache_config(f->num_tokens, f->kmax, 2 * f->kmax, 1);
  const lsa::LookaheadPolicy policy(c.policy, lsa::Chunker(kChunkTokens, kPageChunks));
  lsa::detail::SelectionScratch scratch;
  lsa::SelectionInput in;
  in.scores = scores;
  in.num_tokens = f->num_tokens;
  in.first_uncommitted_page = f->num_pages;
  const std::span<const int32_t> resident = f->refresh_cache->resident_pages(kSeq);
  in.resident_pages = resident;
  std::vector<int32_t> out;
  policy.select(in, scratch, out);
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    policy.select(in, scratch, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["us_per_select"] = timer.ns_per_item(state, 1.0) / 1e3;
  state.counters["selected"] = static_cast<double>(out.size());
}

// The per-step decode path at this length (no refresh due): view of kmax pages, all formats.
void BM_StepNoRefresh(benchmark::State& state) {
  Fixture* f = fixture(state);
  if (f == nullptr) return;
  GivenCache& cache = *f->step_cache;
  const lsa::ViewBuffers view = f->step_view->buffers();
  const lsa::SeqId ids[1] = {kSeq};
  const int64_t refreshes = cache.stats().refreshes;
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    if (cache.step(ids, {}, view) != lsa::Status::kOk) {
      state.SkipWithError("step failed");
      break;
    }
    benchmark::ClobberMemory();
  }
  state.counters["us_per_step"] = timer.ns_per_item(state, 1.0) / 1e3;
  state.counters["resident_pages"] = static_cast<double>(cache.resident_pages(kSeq).size());
  if (cache.stats().refreshes != refreshes) state.SkipWithError("a refresh ran in the timed loop");
}

// Sum of the resident pages' KV, found through the step's CSR view (what sparse attention reads).
uint64_t read_resident(const Fixture& f) {
  const GivenCache& cache = *f.step_cache;
  const lsa::ViewStorage& v = *f.step_view;
  uint64_t acc = 0;
  for (int32_t i = v.indptr[0]; i < v.indptr[1]; ++i) {
    acc ^= lsa::bench::read_stream(cache.store().slot_data(v.indices[i]), kPageBytes);
  }
  return acc;
}

void BM_KVRead_Resident(benchmark::State& state) {
  Fixture* f = fixture(state);
  if (f == nullptr) return;
  const int64_t pages = f->step_view->indptr[1] - f->step_view->indptr[0];
  double ns = 0.0;
  for (auto _ : state) {
    state.PauseTiming();
    f->flush_caches();
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(read_resident(*f));
    ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  const double per = ns / static_cast<double>(state.iterations());
  state.counters["us_per_read"] = per / 1e3;
  state.counters["MiB"] = static_cast<double>(pages * kPageBytes) / (1 << 20);
  state.counters["GB_per_s"] = static_cast<double>(pages * kPageBytes) / per;
}

void BM_KVRead_Dense(benchmark::State& state) {
  Fixture* f = fixture(state);
  if (f == nullptr) return;
  double ns = 0.0;
  for (auto _ : state) {
    state.PauseTiming();
    f->flush_caches();
    state.ResumeTiming();
    const auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(lsa::bench::read_stream(f->dense->get(), f->dense->size));
    ns += std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
  }
  const double per = ns / static_cast<double>(state.iterations());
  state.counters["us_per_read"] = per / 1e3;
  state.counters["MiB"] = static_cast<double>(f->dense->size) / (1 << 20);
  state.counters["GB_per_s"] = static_cast<double>(f->dense->size) / per;
}

// Bandwidth floors of this machine: a 64 MiB memcpy (recall copies) and a 64 MiB read.
void BM_Memcpy64MiB(benchmark::State& state) {
  static lsa::bench::AlignedBytes src(size_t{64} << 20), dst(size_t{64} << 20);
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    std::memcpy(dst.get(), src.get(), src.size);
    benchmark::ClobberMemory();
  }
  const double ns = timer.ns_per_item(state, 1.0);
  state.counters["GB_per_s"] = static_cast<double>(src.size) / ns;  // bytes copied per ns = GB/s
  state.counters["ms_per_copy"] = ns / 1e6;
}
BENCHMARK(BM_Memcpy64MiB)->Unit(benchmark::kMillisecond)->MinTime(0.5);

// One run, one ratio: a decode step of LSA (plain step + cold read of the resident KV, plus a
// refresh every 64 steps, the default interval) against a cold read of the whole context's KV.
// The dense side has no host work at all, so the ratio is conservative for LSA.
void BM_LsaVsDense(benchmark::State& state) {
  Fixture* f = fixture(state);
  if (f == nullptr) return;
  // Refresh cost: median of 3 refresh steps on cache A.
  std::vector<double> refresh_ns;
  const lsa::SeqId ids[1] = {kSeq};
  for (int i = 0; i < 3; ++i) {
    const lsa::Query qs[1] = {f->query(f->next_query++)};
    const auto t0 = std::chrono::steady_clock::now();
    if (f->refresh_cache->step(ids, qs, f->refresh_view->buffers()) != lsa::Status::kOk) {
      state.SkipWithError("refresh failed");
      return;
    }
    refresh_ns.push_back(
        std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(refresh_ns.begin(), refresh_ns.end());
  const lsa::ViewBuffers view = f->step_view->buffers();
  double dense_ns = 0.0, read_ns = 0.0, step_ns = 0.0;
  for (auto _ : state) {
    f->flush_caches();
    auto t0 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(lsa::bench::read_stream(f->dense->get(), f->dense->size));
    auto t1 = std::chrono::steady_clock::now();
    dense_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    f->flush_caches();
    t0 = std::chrono::steady_clock::now();
    if (f->step_cache->step(ids, {}, view) != lsa::Status::kOk) {
      state.SkipWithError("step failed");
      break;
    }
    t1 = std::chrono::steady_clock::now();
    benchmark::DoNotOptimize(read_resident(*f));
    const auto t2 = std::chrono::steady_clock::now();
    step_ns += std::chrono::duration<double, std::nano>(t1 - t0).count();
    read_ns += std::chrono::duration<double, std::nano>(t2 - t1).count();
  }
  const double it = static_cast<double>(state.iterations());
  const double dense = dense_ns / it, step = step_ns / it, read = read_ns / it;
  const double refresh = refresh_ns[1];
  const double lsa_step = step + read + refresh / 64.0;
  state.counters["dense_read_us"] = dense / 1e3;
  state.counters["lsa_step_cold_us"] = step / 1e3;  // right after the sweep: records from DRAM
  state.counters["lsa_resident_read_us"] = read / 1e3;
  state.counters["lsa_refresh_ms"] = refresh / 1e6;
  state.counters["lsa_amortized_us"] = lsa_step / 1e3;
  state.counters["dense_over_lsa"] = dense / lsa_step;
  state.counters["dense_over_lsa_no_refresh"] = dense / (step + read);
  state.counters["kv_bytes_ratio"] =
      static_cast<double>(f->dense->size) /
      static_cast<double>((f->step_view->indptr[1] - f->step_view->indptr[0]) * kPageBytes);
}

#define LSA_REFRESH_SIZES ->Arg(int64_t{1} << 17)->Arg(int64_t{1} << 20)
BENCHMARK(BM_Refresh) LSA_REFRESH_SIZES->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RefreshPart_Score) LSA_REFRESH_SIZES->Unit(benchmark::kMillisecond);
BENCHMARK(BM_RefreshPart_Select) LSA_REFRESH_SIZES->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_StepNoRefresh) LSA_REFRESH_SIZES->Unit(benchmark::kMicrosecond);
// Cold reads sweep 64 MiB before each timed read: fixed iteration counts keep the run short.
BENCHMARK(BM_KVRead_Resident) LSA_REFRESH_SIZES->Unit(benchmark::kMicrosecond)->Iterations(40);
BENCHMARK(BM_KVRead_Dense) LSA_REFRESH_SIZES->Unit(benchmark::kMicrosecond)->Iterations(40);
BENCHMARK(BM_LsaVsDense) LSA_REFRESH_SIZES->Unit(benchmark::kMicrosecond)->Iterations(20);

}  // namespace
