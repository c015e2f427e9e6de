// Bound, centroid and embedding scoring on the device (with the page statistics a refresh reads)
// at 128K and 1M tokens: device time per call from CUDA events, and the bytes a call must move
// per second.
//
// Shapes: bound and centroid as Quest runs them on a Llama-3-8B-like layer (32 query heads,
// 8 key heads, head_dim 128, 16-token chunks); embedding with 1024-dim embeddings of 64-token
// chunks scored by cosine. Index values are random: the time does not depend on them.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "bench_cuda.hpp"
#include "lsa/cuda/page_stats.hpp"
#include "lsa/cuda/summary_scorers.hpp"
#include "lsa/fp8.hpp"

namespace {

using lsa::bench::has_device;

enum Kind { kBound = 0, kCentroid = 1, kEmbedding = 2 };

constexpr int32_t kPageChunks = 16;

// Uniform values in [-1, 1) from a xorshift stream (fast enough for 512 MiB of index).
float next_value(uint64_t& state) {
  state ^= state << 13, state ^= state >> 7, state ^= state << 17;
  return static_cast<float>(state >> 40) * 0x1p-23f - 1.0f;
}

// One sequence's index, query, scores and page statistics on the device.
struct Setup {
  Setup(Kind kind, int64_t num_tokens, lsa::KeyFormat format) : kind(kind) {
    config.key_format = format;
    config.num_layers = 1;
    if (kind == kEmbedding) {
      config.num_heads = 1;
      config.num_key_heads = 1;
      config.head_dim = 1024;
      config.cosine = true;
      chunk_tokens = 64;
    } else {
      config.num_heads = 32;
      config.num_key_heads = 8;
      config.head_dim = 128;
      chunk_tokens = 16;
    }
    chunks = num_tokens / chunk_tokens;
    pages = lsa::cuda::num_stat_pages(chunks, kPageChunks);
    // Bound keeps [max, min] per dim (bf16 bits for bf16 keys); centroid float sums.
    const int64_t values_per_dim = kind == kBound ? 2 : 1;
    const bool bf16 = format == lsa::KeyFormat::kBF16 && kind != kCentroid;
    const int64_t values =
        chunks * config.num_layers * config.num_key_heads * values_per_dim * config.head_dim;
    std::vector<std::byte> index(static_cast<size_t>(values * (bf16 ? 2 : 4)));
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (int64_t i = 0; i < values; ++i) {
      const float x = next_value(state);
      if (bf16) {
        const uint16_t bits = lsa::float_to_bf16(x);
        std::memcpy(&index[static_cast<size_t>(2 * i)], &bits, 2);
      } else {
        std::memcpy(&index[static_cast<size_t>(4 * i)], &x, 4);
      }
    }
    std::vector<float> q(static_cast<size_t>(config.num_layers) * config.num_heads *
                         config.head_dim);
    for (float& x : q) x = next_value(state);
    std::vector<float> norms(static_cast<size_t>(chunks) * config.num_layers, 18.0f);
    index_bytes = index.size();
    query_bytes = q.size() * 4;
    norm_bytes = kind == kEmbedding ? norms.size() * 4 : 0;
    BENCH_CUDA(cudaMalloc(&d_index, index.size()));
    BENCH_CUDA(cudaMemcpy(d_index, index.data(), index.size(), cudaMemcpyHostToDevice));
    BENCH_CUDA(cudaMalloc(&d_q, q.size() * 4));
    BENCH_CUDA(cudaMemcpy(d_q, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
    BENCH_CUDA(cudaMalloc(&d_norms, norms.size() * 4));
    BENCH_CUDA(cudaMemcpy(d_norms, norms.data(), norms.size() * 4, cudaMemcpyHostToDevice));
    BENCH_CUDA(cudaMalloc(&d_scores, static_cast<size_t>(chunks) * 4));
    BENCH_CUDA(cudaMalloc(&d_kept, static_cast<size_t>(pages) * 4));
    BENCH_CUDA(cudaStreamCreate(&stream));
    stats = {0.0f, kPageChunks, d_kept, nullptr};
  }
  ~Setup() {
    cudaStreamDestroy(stream);
    for (void* p : {d_index, static_cast<void*>(d_q), static_cast<void*>(d_norms),
                    static_cast<void*>(d_scores), static_cast<void*>(d_kept)}) {
      cudaFree(p);
    }
  }

  void score() {
    switch (kind) {
      case kBound:
        BENCH_CUDA(lsa::cuda::bound_score(
            config, {d_index, chunks * chunk_tokens, chunk_tokens, d_q}, d_scores, stats, stream));
        break;
      case kCentroid:
        BENCH_CUDA(lsa::cuda::centroid_score(
            config, {d_index, chunks * chunk_tokens, chunk_tokens, d_q}, d_scores, stats, stream));
        break;
      case kEmbedding:
        BENCH_CUDA(lsa::cuda::embedding_score(
            config, {static_cast<const std::byte*>(d_index), d_norms, chunks, d_q}, d_scores, stats,
            stream));
        break;
    }
  }
  // The fewest bytes a call moves: index, norms and query read, scores and page counts written.
  double bytes() const {
    return static_cast<double>(index_bytes + norm_bytes + query_bytes) +
           static_cast<double>(chunks) * 4 + static_cast<double>(pages) * 4;
  }

  Kind kind;
  lsa::ScorerConfig config;
  int32_t chunk_tokens = 16;
  int64_t chunks = 0;
  int64_t pages = 0;
  size_t index_bytes = 0;
  size_t query_bytes = 0;
  size_t norm_bytes = 0;
  void* d_index = nullptr;
  float* d_q = nullptr;
  float* d_norms = nullptr;
  float* d_scores = nullptr;
  int32_t* d_kept = nullptr;
  cudaStream_t stream = nullptr;
  lsa::cuda::PageStats stats;
};

// args: scorer, tokens, key format
void BM_SummaryScore(benchmark::State& state) {
  if (!has_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  Setup s(static_cast<Kind>(state.range(0)), state.range(1),
          static_cast<lsa::KeyFormat>(state.range(2)));
  s.score();  // warm-up
  BENCH_CUDA(cudaStreamSynchronize(s.stream));
  lsa::bench::DeviceTimer timer(s.stream);
  double total_s = 0.0;
  for (auto _ : state) {
    const double seconds = timer.seconds_per_call(20, [&] { s.score(); });
    state.SetIterationTime(seconds);
    total_s += seconds;
  }
  const double mean_s = total_s / static_cast<double>(state.iterations());
  state.counters["chunks"] = static_cast<double>(s.chunks);
  state.counters["MB"] = s.bytes() / 1e6;
  state.counters["GBps"] = s.bytes() / mean_s / 1e9;
}

void summary_args(benchmark::internal::Benchmark* b) {
  const auto f32 = static_cast<int64_t>(lsa::KeyFormat::kF32);
  const auto bf16 = static_cast<int64_t>(lsa::KeyFormat::kBF16);
  for (const int64_t tokens : {int64_t{1} << 17, int64_t{1} << 20}) {
    b->Args({kBound, tokens, f32});
    b->Args({kBound, tokens, bf16});
    b->Args({kCentroid, tokens, f32});  // sums are floats whatever the key format
    b->Args({kEmbedding, tokens, f32});
    b->Args({kEmbedding, tokens, bf16});
  }
  b->ArgNames({"scorer", "tokens", "format"});
}

BENCHMARK(BM_SummaryScore)
    ->Apply(summary_args)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.1);

}  // namespace
