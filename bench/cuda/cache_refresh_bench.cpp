// A refreshing decode step of a whole SparseKVCache, one sequence of 128K or 1M tokens (lightning
// keys, H=64, D=128; 64-token pages, kmax = 1/8 of the pages): the host backend (LightningScorer +
// HostStore) against the device backend (DeviceLightningScorer + CudaStore), host wall time per
// step, every step a refresh with a new query. The device step includes scoring on the device,
// copying the scores back, selection on the host and queueing the recalls.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "bench_cuda.hpp"
#include "lsa/cuda/cuda_store.hpp"
#include "lsa/cuda/device_lightning_scorer.hpp"
#include "lsa/fp8.hpp"
#include "lsa/sparse_kv_cache.hpp"

namespace {

using lsa::bench::has_device;
using HostCache = lsa::SparseKVCache<>;
using DeviceCache = lsa::SparseKVCache<lsa::Chunker, lsa::cuda::DeviceLightningScorer,
                                       lsa::LookaheadPolicy, lsa::cuda::CudaStore>;

lsa::CacheConfig refresh_config(int64_t tokens) {
  lsa::CacheConfig c;
  c.num_layers = 1;
  c.bytes_per_token_per_layer = 16;  // the KV bytes are not what this measures
  c.chunk_tokens = 4;
  c.page_chunks = 16;
  c.max_tokens = tokens;
  c.policy.kmax_pages = static_cast<int32_t>(tokens / 64 / 8);
  c.num_slots = c.policy.kmax_pages + 1024 + 64;  // kmax + a prefill piece + headroom
  c.scorer.num_heads = 64;
  c.scorer.head_dim = 128;
  c.scorer.logit_offset = -3.4f;  // with the keys and weights below: about 16% of chunks kept
  c.policy.interval = 1;
  c.policy.spread_phase = false;
  c.policy.recent_chunks = 512;
  return c;
}

// Fills `cache` with one sequence of `tokens` tokens in 64K-token pieces (fp8 keys from a table).
template <class Cache>
bool fill(Cache& cache, int64_t tokens) {
  const lsa::CacheConfig& c = cache.config();
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<uint8_t> codes(4096);
  for (uint8_t& code : codes) code = lsa::encode_fp8_e4m3(normal(rng));
  const int64_t piece = 1 << 16;
  const int64_t row = c.scorer.head_dim + 4;
  std::vector<std::byte> keys(static_cast<size_t>(piece / c.chunk_tokens * row));
  std::vector<std::byte> kv(static_cast<size_t>(piece * c.bytes_per_token_per_layer));
  std::vector<lsa::TokenSlot> where(static_cast<size_t>(piece));
  if (cache.add(1) != lsa::Status::kOk) return false;
  for (int64_t done = 0; done < tokens; done += piece) {
    const int64_t rows = piece / c.chunk_tokens;
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t i = 0; i < c.scorer.head_dim; ++i)
        keys[r * row + i] = std::byte{codes[rng() % 4096]};
      const float scale = 0.05f;
      std::memcpy(keys.data() + r * row + c.scorer.head_dim, &scale, 4);
    }
    if (cache.append(1, static_cast<int32_t>(piece), {keys.data(), rows}, where, kv.data()) !=
        lsa::Status::kOk) {
      return false;
    }
  }
  return true;
}

// args: tokens, device (0: host backend)
void BM_RefreshStep(benchmark::State& state) {
  const int64_t tokens = state.range(0);
  const bool on_device = state.range(1) != 0;
  if (on_device && !has_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const lsa::CacheConfig config = refresh_config(tokens);
  std::unique_ptr<HostCache> host;
  std::unique_ptr<DeviceCache> device;
  bool ok;
  if (on_device) {
    device = std::make_unique<DeviceCache>(config);
    ok = fill(*device, tokens);
  } else {
    host = std::make_unique<HostCache>(config);
    ok = fill(*host, tokens);
  }
  if (!ok) {
    state.SkipWithError("setup failed");
    return;
  }
  lsa::ViewStorage view(1, config.policy.kmax_pages, static_cast<int32_t>(tokens / 64 + 1));
  std::mt19937 rng(8);
  std::normal_distribution<float> normal(0.0f, 0.1f);
  std::vector<float> q(64 * 128), w(64, 2.0f);
  const lsa::SeqId id = 1;
  int64_t steps = 0;
  double seconds = 0.0;
  for (auto _ : state) {
    state.PauseTiming();
    for (float& x : q) x = normal(rng);
    const lsa::Query query{q, w};
    state.ResumeTiming();
    const auto start = std::chrono::steady_clock::now();
    const lsa::Status s = on_device ? device->step({&id, 1}, {&query, 1}, view.buffers())
                                    : host->step({&id, 1}, {&query, 1}, view.buffers());
    seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    ++steps;
    if (s != lsa::Status::kOk) state.SkipWithError("step failed");
  }
  const lsa::Stats stats = on_device ? device->stats() : host->stats();
  state.counters["ms_per_refresh"] = seconds / static_cast<double>(steps) * 1e3;
  state.counters["recalled_per_refresh"] =
      static_cast<double>(stats.recalled_pages) /
      static_cast<double>(std::max<int64_t>(stats.refreshes, 1));
  state.counters["resident"] = static_cast<double>(stats.resident_pages);
}
BENCHMARK(BM_RefreshStep)
    ->ArgsProduct({{int64_t{1} << 17, int64_t{1} << 20}, {0, 1}})
    ->ArgNames({"tokens", "device"})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(20);

}  // namespace
