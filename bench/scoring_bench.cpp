// Scoring throughput of the index scorers on one core.
//
// Floors for lightning scoring with H heads and head_dim D: H * D FMAs (2 * H * D flops) per chunk.
// An AVX2 core with two 256-bit FMA pipes retires 16 fp32 FMAs (32 flops) per cycle, so H=64, D=128
// (8192 FMAs) needs >= 512 cycles per chunk: 160 ns at 3.2 GHz; H=128 twice that. The keys are
// 132 B per chunk (D fp8 bytes + fp32 scale): at 160 ns that is under 1 GB/s, far below memory
// bandwidth, so scoring is compute-bound and ns_per_chunk compares directly with the FMA floor.
//
// Run: cmake --build build --target lsa_bench && ./build/bench/lsa_bench --benchmark_filter=Scor
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "lsa/fp8.hpp"
#include "lsa/scorers.hpp"

namespace {

// Random finite fp8 rows (D codes + fp32 scale per layer), as an engine would append them.
std::vector<std::byte> fp8_rows(int64_t num_chunks, int32_t layers, int32_t dim,
                                std::mt19937& rng) {
  const int64_t vector_bytes = dim + 4;
  std::vector<std::byte> rows(static_cast<size_t>(num_chunks * layers * vector_bytes));
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  const float scale = 1.0f / 64.0f;
  for (int64_t v = 0; v < num_chunks * layers; ++v) {
    std::byte* out = rows.data() + v * vector_bytes;
    for (int32_t d = 0; d < dim; ++d) out[d] = std::byte{lsa::encode_fp8_e4m3(gauss(rng) / scale)};
    std::memcpy(out + dim, &scale, sizeof(float));
  }
  return rows;
}

std::vector<float> random_floats(int64_t n, std::mt19937& rng, float sigma) {
  std::normal_distribution<float> gauss(0.0f, sigma);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = gauss(rng);
  return v;
}

// Reports time per chunk (seconds, printed with an SI prefix: "180n" is 180 ns) and key bytes
// read per second.
void set_counters(benchmark::State& state, int64_t num_chunks, int64_t row_bytes) {
  state.counters["per_chunk"] = benchmark::Counter(
      static_cast<double>(num_chunks),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.SetBytesProcessed(state.iterations() * num_chunks * row_bytes);
  state.SetItemsProcessed(state.iterations() * num_chunks);
}

// Args: heads, chunks. One indexer layer, D=128, fp8 keys.
void BM_ScoreLightningFp8(benchmark::State& state) {
  const auto heads = static_cast<int32_t>(state.range(0));
  const int64_t chunks = state.range(1);
  lsa::ScorerConfig config;
  config.num_layers = 1;
  config.num_heads = heads;
  config.head_dim = 128;
  config.key_format = lsa::KeyFormat::kFp8E4M3;
  const lsa::LightningScorer scorer(config, /*chunk_tokens=*/4);
  std::mt19937 rng(1);
  const std::vector<std::byte> rows = fp8_rows(chunks, 1, 128, rng);
  lsa::LightningScorer::Index index;
  scorer.append(index, {rows.data(), chunks});
  const std::vector<float> q = random_floats(int64_t{heads} * 128, rng, 1.0f);
  const std::vector<float> w = random_floats(heads, rng, 1.0f / heads);
  std::vector<float> out(static_cast<size_t>(chunks));
  for (auto _ : state) {
    scorer.score(index, {q, w}, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, chunks, scorer.row_bytes());
}
BENCHMARK(BM_ScoreLightningFp8)
    ->ArgNames({"heads", "chunks"})
    ->Args({64, 32768})
    ->Args({64, 262144})
    ->Args({128, 32768})
    ->Args({128, 262144})
    ->Unit(benchmark::kMillisecond);

// Args: chunks. Quest bounds of a typical small model: 9 query heads on 3 key heads, D=64.
void BM_ScoreBound(benchmark::State& state) {
  const int64_t chunks = state.range(0);
  constexpr int32_t kChunkTokens = 4;
  lsa::ScorerConfig config;
  config.num_layers = 1;
  config.num_heads = 9;
  config.num_key_heads = 3;
  config.head_dim = 64;
  config.key_format = lsa::KeyFormat::kBF16;
  const lsa::BoundScorer scorer(config, kChunkTokens);
  std::mt19937 rng(2);
  // Token keys, appended in prefill-sized pieces.
  constexpr int64_t kPiece = 4096;
  const int64_t values_per_token = 3 * 64;
  std::vector<uint16_t> piece(static_cast<size_t>(kPiece * values_per_token));
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  lsa::BoundScorer::Index index;
  for (int64_t t = 0; t < chunks * kChunkTokens; t += kPiece) {
    for (uint16_t& v : piece) v = lsa::float_to_bf16(gauss(rng));
    scorer.append(index, {reinterpret_cast<const std::byte*>(piece.data()), kPiece});
  }
  const std::vector<float> q = random_floats(9 * 64, rng, 1.0f);
  std::vector<float> out(static_cast<size_t>(scorer.num_chunks(index)));
  for (auto _ : state) {
    scorer.score(index, {q, {}}, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  // Bytes read per chunk: the max and min bounds of 3 key heads, bf16 like the keys.
  set_counters(state, chunks, 3 * 2 * 64 * static_cast<int64_t>(sizeof(uint16_t)));
}
BENCHMARK(BM_ScoreBound)
    ->ArgNames({"chunks"})
    ->Arg(1024)    // 0.75 MiB of bounds: in cache
    ->Arg(16384)   // 12 MiB of bounds: in L3
    ->Arg(262144)  // 192 MiB of bounds: from memory
    ->Unit(benchmark::kMillisecond);

}  // namespace
