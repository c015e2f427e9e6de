// Level-2 selection on the device (lsa::cuda::level2_select): per-step top-k of a model indexer's
// chunk logits over each sequence's resident pages, batch 1..64, k 512 and 2048.
//
// Each sequence has a 4096-page history of 16 one-token chunks per page (65536 tokens) and
// `resident` of those pages resident (2048 by default: 32768 candidates, which the block's
// shared-memory key cache holds on sm_90; 4096 pages do not fit and are partly read again each
// pass). Time per call comes from CUDA events around 20 calls (manual time), so it is device time.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <vector>

#include "bench_cuda.hpp"
#include "lsa/cuda/level2.hpp"

namespace {

using lsa::bench::has_device;

template <class T>
T* upload(const std::vector<T>& host) {
  T* d = nullptr;
  BENCH_CUDA(cudaMalloc(&d, std::max<size_t>(host.size(), 1) * sizeof(T)));
  BENCH_CUDA(cudaMemcpy(d, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return d;
}

constexpr int64_t kHistoryPages = 4096;
constexpr lsa::Chunker kChunker(1, 16);

// The device table and logits of `batch` sequences with `resident` random resident pages each.
struct Level2Batch {
  Level2Batch(int32_t batch, int64_t resident, int32_t k) : k(k) {
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    const int64_t chunks = kHistoryPages * kChunker.page_chunks();
    std::vector<int32_t> offsets{0};
    std::vector<int32_t> pages;
    std::vector<int32_t> slots(static_cast<size_t>(batch * kHistoryPages));
    std::vector<int64_t> tokens(static_cast<size_t>(batch), chunks * kChunker.chunk_tokens());
    std::vector<float> logits(static_cast<size_t>(batch * chunks));
    std::vector<int32_t> all(kHistoryPages);
    for (int32_t b = 0; b < batch; ++b) {
      std::iota(all.begin(), all.end(), 0);
      std::shuffle(all.begin(), all.end(), rng);
      std::sort(all.begin(), all.begin() + resident);
      pages.insert(pages.end(), all.begin(), all.begin() + resident);
      offsets.push_back(static_cast<int32_t>(pages.size()));
      std::shuffle(all.begin(), all.end(), rng);
      std::copy(all.begin(), all.end(), slots.begin() + b * kHistoryPages);
    }
    for (float& x : logits) x = normal(rng);
    d_offsets = upload(offsets);
    d_pages = upload(pages);
    d_slots = upload(slots);
    d_tokens = upload(tokens);
    d_logits = upload(logits);
    BENCH_CUDA(cudaMalloc(&d_out, static_cast<size_t>(batch) * k * sizeof(int32_t)));
    BENCH_CUDA(cudaMalloc(&d_status, sizeof(int32_t)));
    BENCH_CUDA(cudaStreamCreate(&stream));
    table = {batch, d_offsets, d_pages, d_slots, kHistoryPages, d_tokens};
    logits_stride = chunks;
  }
  ~Level2Batch() {
    cudaStreamDestroy(stream);
    for (void* p :
         {static_cast<void*>(d_offsets), static_cast<void*>(d_pages), static_cast<void*>(d_slots),
          static_cast<void*>(d_tokens), static_cast<void*>(d_logits), static_cast<void*>(d_out),
          static_cast<void*>(d_status)}) {
      cudaFree(p);
    }
  }

  void run() {
    BENCH_CUDA(lsa::cuda::level2_select(table, d_logits, logits_stride, kChunker, k, d_out,
                                        d_status, stream));
  }

  int32_t k;
  int32_t* d_offsets = nullptr;
  int32_t* d_pages = nullptr;
  int32_t* d_slots = nullptr;
  int64_t* d_tokens = nullptr;
  float* d_logits = nullptr;
  int32_t* d_out = nullptr;
  int32_t* d_status = nullptr;
  int64_t logits_stride = 0;
  cudaStream_t stream = nullptr;
  lsa::cuda::DeviceBatchTable table;
};

// args: batch, k, resident pages
void BM_Level2Select(benchmark::State& state) {
  if (!has_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const auto batch = static_cast<int32_t>(state.range(0));
  const auto k = static_cast<int32_t>(state.range(1));
  const int64_t resident = state.range(2);
  Level2Batch l2(batch, resident, k);
  l2.run();  // warm-up
  BENCH_CUDA(cudaStreamSynchronize(l2.stream));
  int32_t status = -1;
  BENCH_CUDA(cudaMemcpy(&status, l2.d_status, sizeof(status), cudaMemcpyDeviceToHost));
  if (status != 0) {
    state.SkipWithError("level2_select reported an invalid table");
    return;
  }
  lsa::bench::DeviceTimer timer(l2.stream);
  for (auto _ : state) state.SetIterationTime(timer.seconds_per_call(20, [&] { l2.run(); }));
  const double candidates = static_cast<double>(batch) * resident * kChunker.page_chunks();
  state.counters["candidates"] = candidates;
  state.counters["Gcand_per_s"] = benchmark::Counter(
      candidates * static_cast<double>(state.iterations()) * 1e-9, benchmark::Counter::kIsRate);
}

void level2_args(benchmark::internal::Benchmark* b) {
  for (const int64_t k : {512, 2048}) {
    for (const int64_t batch : {1, 8, 32, 64}) b->Args({batch, k, 2048});
  }
  // Past the shared-memory key cache: every resident page of the history.
  for (const int64_t batch : {1, 64}) b->Args({batch, 2048, kHistoryPages});
  b->ArgNames({"batch", "k", "resident"});
}

BENCHMARK(BM_Level2Select)
    ->Apply(level2_args)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond)
    ->MinTime(0.1);

}  // namespace
