// Cost of the learned indexer per decode step, amortized: one key row per completed chunk
// (chunk_tokens decode steps), one query plus one LightningScorer pass over the history per
// refresh (interval steps). Compare `per_step` with the model's own decode step (docs/indexer.md:
// SmolLM2-135M, d=576, 8 heads of 64, interval 64; the shipped file's chunks are 4 tokens, 16 is
// lsa-decode's default for the other scorers).
//
// Floor with 4-token chunks: key 64 x 576 MACs / 4 steps + query 520 x 576 MACs / 64 steps +
// scoring 8 x 64 MACs per chunk / 64 steps, about 9.2K + 4.7K + 8.2K (at 4K tokens, 1,024 chunks)
// MACs per step against the model's 107M.
//
// Run: ./build/bench/lsa_bench --benchmark_filter=LearnedIndexer
#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include "lsa/key_encoding.hpp"
#include "lsa/learned_indexer.hpp"
#include "lsa/scorers.hpp"

namespace {

std::vector<float> gaussian(int64_t n, std::mt19937& rng, float sigma) {
  std::normal_distribution<float> g(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = g(rng);
  return v;
}

// Args: history tokens, chunk tokens. SmolLM2-135M's shape; fp8 rows.
void BM_LearnedIndexerPerStep(benchmark::State& state) {
  constexpr int32_t kFeatures = 576, kHeads = 8, kDim = 64, kInterval = 64;
  const int64_t tokens = state.range(0);
  const auto chunk_tokens = static_cast<int32_t>(state.range(1));
  const int64_t chunks = tokens / chunk_tokens;
  std::mt19937 rng(3);
  const std::vector<float> kn = gaussian(kFeatures, rng, 1.0f), kp = gaussian(kDim * kFeatures, rng, 0.04f),
                           qn = gaussian(kFeatures, rng, 1.0f),
                           qp = gaussian(kHeads * kDim * kFeatures, rng, 0.04f),
                           hp = gaussian(kHeads * kFeatures, rng, 0.04f), hb = gaussian(kHeads, rng, 0.1f);
  const lsa::LearnedIndexer ix({kFeatures, kHeads, kDim, 1e-5f}, {kn, kp, qn, qp, hp, hb, 0.0f});
  const lsa::LightningScorer scorer(ix.scorer_config(lsa::KeyFormat::kFp8E4M3), chunk_tokens);
  lsa::LightningScorer::Index index;
  const std::vector<float> state_vec = gaussian(kFeatures, rng, 1.0f);
  std::vector<std::byte> row(static_cast<size_t>(lsa::encoded_key_bytes(lsa::KeyFormat::kFp8E4M3, kDim)));
  for (int64_t c = 0; c < chunks; ++c) {
    (void)ix.key_row(state_vec, lsa::KeyFormat::kFp8E4M3, row);
    scorer.append(index, {row.data(), 1});
  }
  std::vector<float> q(kHeads * kDim), w(kHeads), scores(static_cast<size_t>(chunks));
  std::vector<double> pool(kFeatures);
  std::vector<float> pooled(kFeatures);
  int64_t step = 0;
  for (auto _ : state) {
    // Every step: the state joins its chunk's pool.
    for (int32_t e = 0; e < kFeatures; ++e) pool[static_cast<size_t>(e)] += state_vec[static_cast<size_t>(e)];
    if (++step % chunk_tokens == 0) {
      for (int32_t e = 0; e < kFeatures; ++e)
        pooled[static_cast<size_t>(e)] =
            static_cast<float>(pool[static_cast<size_t>(e)] / chunk_tokens);
      (void)ix.key_row(pooled, lsa::KeyFormat::kFp8E4M3, row);
      benchmark::DoNotOptimize(row.data());
      std::fill(pool.begin(), pool.end(), 0.0);
    }
    if (step % kInterval == 0) {
      (void)ix.query(state_vec, q, w);
      scorer.score(index, {q, w}, scores);
      benchmark::DoNotOptimize(scores.data());
    }
  }
  state.counters["per_step"] = benchmark::Counter(
      static_cast<double>(state.iterations()), benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_LearnedIndexerPerStep)
    ->ArgNames({"tokens", "chunk"})
    ->Args({4096, 4})
    ->Args({8192, 4})
    ->Args({131072, 4})
    ->Args({8192, 16})
    ->Args({131072, 16})
    ->Iterations(64 * 200);

}  // namespace
