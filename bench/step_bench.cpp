// SparseKVCache::step on the decode path (no refresh due): batch 1..64, every sequence ~8K tokens
// (129 pages) with a sparse resident set of kmax = 64 pages. views=1: all three view formats
// written into a ViewStorage allocated once; views=0: no host view (a device-built view);
// views=2: no host view plus the batch table a device publish fills (detail::fill_batch_table).
//
// Counters: ns_per_seq (wall clock per step / batch), view_bytes_per_seq (bytes the step writes
// per sequence), resident_per_seq / pages_per_seq (the sets are sparse), refreshes_in_loop (0).
#include <benchmark/benchmark.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "bench_scorer.hpp"
#include "bench_util.hpp"
#include "lsa/cache_config.hpp"
#include "lsa/chunker.hpp"
#include "lsa/detail/batch_table_fill.hpp"
#include "lsa/host_store.hpp"
#include "lsa/lookahead_policy.hpp"
#include "lsa/sparse_kv_cache.hpp"
#include "lsa/view.hpp"

namespace {

using Cache = lsa::SparseKVCache<lsa::Chunker, lsa::bench::GivenScoreScorer, lsa::LookaheadPolicy,
                                 lsa::HostStore>;

constexpr int32_t kChunkTokens = 4;
constexpr int32_t kPageChunks = 16;
constexpr int64_t kPageTokens = int64_t{kChunkTokens} * kPageChunks;  // 64
constexpr int64_t kSeqTokens = 8192 + 37;                             // 129 pages, partial tail
constexpr int64_t kSeqPages = (kSeqTokens + kPageTokens - 1) / kPageTokens;
constexpr int64_t kSeqChunks = kSeqTokens / kChunkTokens;
constexpr int32_t kKmaxPages = 64;
constexpr int64_t kBytesPerToken = 16;  // the step never touches KV bytes; keep setup small

lsa::CacheConfig make_config(int32_t batch) {
  lsa::CacheConfig c;
  c.num_layers = 1;
  c.bytes_per_token_per_layer = kBytesPerToken;
  c.chunk_tokens = kChunkTokens;
  c.page_chunks = kPageChunks;
  c.max_sequences = batch;
  // Appended pages stay resident until the first refresh: room for every page of every sequence.
  c.num_slots = batch * static_cast<int32_t>(kSeqPages + 1);
  c.max_tokens = kSeqTokens;
  c.policy.interval = 1 << 30;  // after the first refresh none is due for 2^30 steps
  c.policy.spread_phase = false;
  c.policy.kmax_pages = kKmaxPages;
  c.policy.sink_chunks = 1;
  c.policy.recent_chunks = 128;  // 8 pages
  return c;
}

void BM_Step(benchmark::State& state) {
  const auto batch = static_cast<int32_t>(state.range(0));
  Cache cache(make_config(batch));

  // Sequences: scores with ~10% of chunks above 0.5, different per sequence.
  std::vector<std::byte> kv(static_cast<size_t>(kSeqTokens * kBytesPerToken), std::byte{7});
  std::vector<lsa::TokenSlot> where(static_cast<size_t>(kSeqTokens));
  std::vector<float> keys(static_cast<size_t>(kSeqChunks));
  std::vector<lsa::SeqId> ids;
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int32_t b = 0; b < batch; ++b) {
    const lsa::SeqId id = 1000 + b;
    ids.push_back(id);
    for (float& k : keys) k = u(rng) < 0.10f ? 0.5f + 0.5f * u(rng) : 0.5f * u(rng);
    if (cache.add(id) != lsa::Status::kOk ||
        cache.append(id, static_cast<int32_t>(kSeqTokens),
                     {reinterpret_cast<const std::byte*>(keys.data()), kSeqChunks}, where,
                     kv.data()) != lsa::Status::kOk) {
      state.SkipWithError("setup: add/append failed");
      return;
    }
  }

  lsa::ViewStorage storage(batch, kKmaxPages, static_cast<int32_t>(kSeqPages));
  // views = 0: no host view at all (the device backend builds views on the GPU from its table).
  const bool host_views = state.range(1) == 1;
  const lsa::ViewBuffers view = host_views ? storage.buffers() : lsa::ViewBuffers{};
  // The one refresh: every sequence is due at its first step.
  const float one = 1.0f;
  const std::vector<lsa::Query> queries(static_cast<size_t>(batch),
                                        lsa::Query{std::span<const float>(&one, 1), {}});
  if (cache.step(ids, queries, storage.buffers()) != lsa::Status::kOk) {
    state.SkipWithError("setup: refresh step failed");
    return;
  }
  for (const lsa::SeqId id : ids) {
    if (cache.refresh_due(id)) {
      state.SkipWithError("setup: a refresh is still due");
      return;
    }
  }
  const lsa::Stats before = cache.stats();

  // views = 2: no host view, plus the host half of the device publish (the batch table that
  // cuda::DevicePageTable::write fills; here into plain memory).
  const bool fill_table = state.range(1) == 2;
  std::vector<int64_t> table_tokens(static_cast<size_t>(batch));
  std::vector<int32_t> table_counts(static_cast<size_t>(batch));
  std::vector<int32_t> table_pages(static_cast<size_t>(batch) * kKmaxPages);
  std::vector<int32_t> table_slots(table_pages.size());
  std::vector<lsa::SeqId> table_ids(static_cast<size_t>(batch));
  std::vector<uint64_t> table_versions(static_cast<size_t>(batch));
  const lsa::detail::BatchTableRows rows{table_tokens.data(), table_counts.data(),
                                         table_pages.data(),  table_slots.data(),
                                         table_ids.data(),    table_versions.data(),
                                         kKmaxPages,          kSeqPages};
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    if (cache.step(ids, {}, view) != lsa::Status::kOk ||
        (fill_table && lsa::detail::fill_batch_table(cache, ids, rows) != lsa::Status::kOk)) {
      state.SkipWithError("step failed");
      break;
    }
    benchmark::ClobberMemory();
  }
  const double ns_per_seq = timer.ns_per_item(state, batch);

  const lsa::Stats after = cache.stats();
  const double resident = static_cast<double>(after.resident_pages) / batch;
  state.counters["ns_per_seq"] = ns_per_seq;
  state.counters["resident_per_seq"] = resident;
  state.counters["pages_per_seq"] = static_cast<double>(after.total_pages) / batch;
  state.counters["refreshes_in_loop"] = static_cast<double>(after.refreshes - before.refreshes);
  // CSR (indices + indptr + last_page_len) + a slot-list row + a block-table row.
  state.counters["view_bytes_per_seq"] =
      host_views ? 4.0 * (resident + 2.0) + 4.0 * kKmaxPages + 4.0 * static_cast<double>(kSeqPages)
                 : 0.0;
  if (after.refreshes != before.refreshes) state.SkipWithError("a refresh ran in the timed loop");
  if (after.resident_pages > int64_t{batch} * kKmaxPages) state.SkipWithError("set above kmax");
}
BENCHMARK(BM_Step)
    ->ArgsProduct({benchmark::CreateRange(1, 64, 2), {1, 0, 2}})
    ->ArgNames({"batch", "views"})
    ->Unit(benchmark::kNanosecond);

// Floor: writing the same view bytes with memset/fill (no lookups): what a step cannot beat.
void BM_StepFloor_WriteViewBytes(benchmark::State& state) {
  const auto batch = static_cast<int32_t>(state.range(0));
  lsa::ViewStorage storage(batch, kKmaxPages, static_cast<int32_t>(kSeqPages));
  const lsa::ViewBuffers v = storage.buffers();
  lsa::bench::LoopTimer timer;
  for (auto _ : state) {
    std::memset(v.indices, 0x11, static_cast<size_t>(v.indices_capacity) * sizeof(int32_t));
    std::memset(v.indptr, 0x11, static_cast<size_t>(batch + 1) * sizeof(int32_t));
    std::memset(v.last_page_len, 0x11, static_cast<size_t>(batch) * sizeof(int32_t));
    std::memset(v.slot_lists, 0x11,
                static_cast<size_t>(batch) * v.slot_list_width * sizeof(int32_t));
    std::memset(v.block_table, 0x11,
                static_cast<size_t>(batch) * v.block_table_width * sizeof(int32_t));
    benchmark::ClobberMemory();
  }
  state.counters["ns_per_seq"] = timer.ns_per_item(state, batch);
}
BENCHMARK(BM_StepFloor_WriteViewBytes)->Arg(1)->Arg(64)->Unit(benchmark::kNanosecond);

}  // namespace
