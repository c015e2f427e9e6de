// Refresh on the device (lightning scoring with fused page statistics, then page selection) at
// 128K / 512K / 1M tokens, against the HBM floor measured in the same binary.
//
// Time per refresh comes from CUDA events around a batch of refreshes (manual time), so it is
// device time; `graph` replays one captured refresh (no launch gaps between the kernels). The floor
// is the bytes a refresh must move (keys read once, scores and page statistics written once) over
// the bandwidth of a 1 GiB device-to-device cudaMemcpy counted as bytes read plus bytes written.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>
#include <cstdint>

#include "bench_cuda.hpp"
#include "lsa/cuda/lightning.hpp"
#include "lsa/cuda/page_selection.hpp"
#include "lsa/fp8.hpp"
#include "lsa/policy_config.hpp"

namespace {

using lsa::bench::copy_bandwidth;
using lsa::bench::has_device;

// One sequence's refresh inputs and outputs on the device.
struct Refresh {
  Refresh(int64_t num_tokens, int32_t heads, lsa::cuda::LightningMath math) : math(math) {
    config.num_heads = heads;
    chunks = num_tokens / 4;
    std::mt19937 rng(42);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    // Keys ~ N(0, 1) in fp8 (codes drawn from a table, generation is the slow part), scale 0.05;
    // logits ~ 2.2 +- 3.2 / sqrt(H): the offset keeps about 15-25% of the chunks, as a trained
    // indexer might.
    std::vector<uint8_t> codes(4096);
    for (uint8_t& code : codes) code = lsa::encode_fp8_e4m3(normal(rng));
    std::vector<std::byte> rows(static_cast<size_t>(chunks) * 132);
    uint64_t state = 0x9E3779B97F4A7C15ull;
    for (int64_t c = 0; c < chunks; ++c) {
      for (int i = 0; i < 128; ++i) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        rows[c * 132 + i] = static_cast<std::byte>(codes[state % codes.size()]);
      }
      const float scale = 0.05f;
      std::memcpy(&rows[c * 132 + 128], &scale, 4);
    }
    std::vector<float> q(static_cast<size_t>(heads) * 128);
    for (float& x : q) x = normal(rng) * 0.3f;
    std::vector<float> w(static_cast<size_t>(heads), 32.0f / static_cast<float>(heads));
    config.logit_offset = -2.5f;
    pages = chunks / 16;
    BENCH_CUDA(cudaMalloc(&d_rows, rows.size()));
    BENCH_CUDA(cudaMemcpy(d_rows, rows.data(), rows.size(), cudaMemcpyHostToDevice));
    BENCH_CUDA(cudaMalloc(&d_q, q.size() * 4));
    BENCH_CUDA(cudaMemcpy(d_q, q.data(), q.size() * 4, cudaMemcpyHostToDevice));
    BENCH_CUDA(cudaMalloc(&d_w, w.size() * 4));
    BENCH_CUDA(cudaMemcpy(d_w, w.data(), w.size() * 4, cudaMemcpyHostToDevice));
    BENCH_CUDA(cudaMalloc(&d_scores, chunks * 4));
    BENCH_CUDA(cudaMalloc(&d_kept, pages * 4));
    BENCH_CUDA(cudaMalloc(&d_mass, pages * 4));
    BENCH_CUDA(cudaMalloc(&d_pages, 4 * lsa::cuda::max_selected_pages(policy, chunker, chunks * 4, pages)));
    BENCH_CUDA(cudaMalloc(&d_count, 4));
    BENCH_CUDA(cudaStreamCreate(&stream));
    input = {reinterpret_cast<const std::byte*>(d_rows), chunks, d_q, d_w};
    stats = {policy.threshold, 16, d_kept, nullptr};
    select.d_kept = d_kept;
    select.num_scored_chunks = chunks;
    select.num_tokens = chunks * 4;
    select.first_uncommitted_page = pages;
    BENCH_CUDA(lsa::cuda::lightning_score(nullptr, score_bytes, config, input, d_scores, stats, math, stream));
    BENCH_CUDA(lsa::cuda::select_pages(nullptr, select_bytes, policy, chunker, select, d_pages, d_count, stream));
    BENCH_CUDA(cudaMalloc(&d_score_ws, score_bytes));
    BENCH_CUDA(cudaMalloc(&d_select_ws, select_bytes));
  }
  ~Refresh() {
    cudaStreamDestroy(stream);
    for (void* p : {d_rows, static_cast<void*>(d_q), static_cast<void*>(d_w), static_cast<void*>(d_scores),
                    static_cast<void*>(d_kept), static_cast<void*>(d_mass), static_cast<void*>(d_pages),
                    static_cast<void*>(d_count), d_score_ws, d_select_ws}) {
      cudaFree(p);
    }
  }

  void score() {
    BENCH_CUDA(lsa::cuda::lightning_score(d_score_ws, score_bytes, config, input, d_scores, stats, math, stream));
  }
  void choose() {
    BENCH_CUDA(lsa::cuda::select_pages(d_select_ws, select_bytes, policy, chunker, select, d_pages, d_count, stream));
  }
  // The fewest bytes a refresh moves: keys and query read, scores and page counts written.
  double bytes() const {
    return static_cast<double>(chunks) * (132 + 4) + static_cast<double>(pages) * 4 +
           static_cast<double>(config.num_heads) * 129 * 4;
  }

  lsa::ScorerConfig config;
  lsa::PolicyConfig policy;
  lsa::Chunker chunker{4, 16};
  lsa::cuda::LightningMath math;
  int64_t chunks = 0;
  int64_t pages = 0;
  void* d_rows = nullptr;
  float* d_q = nullptr;
  float* d_w = nullptr;
  float* d_scores = nullptr;
  int32_t* d_kept = nullptr;
  float* d_mass = nullptr;
  int32_t* d_pages = nullptr;
  int32_t* d_count = nullptr;
  void* d_score_ws = nullptr;
  void* d_select_ws = nullptr;
  size_t score_bytes = 0;
  size_t select_bytes = 0;
  cudaStream_t stream = nullptr;
  lsa::cuda::LightningInput input;
  lsa::cuda::PageStats stats;
  lsa::cuda::PageSelectionInput select;
};

// What one benchmark iteration runs: the whole refresh, or one of its halves.
enum Part {
  kRefresh = 0,     // lightning_score (fused page counts) + select_pages (kCountSort)
  kScoreOnly = 1,   // lightning_score alone
  kSelectOnly = 2,  // select_pages alone, default policy (kCountSort)
  kSelectMass = 3,  // select_pages alone, PageScore::kScoreMass (kBlock: radix select + sort)
  kSelectSort = 4,  // select_pages alone, default policy on the kDeviceSort path
};

// args: tokens, heads, math, part, graph
void BM_Refresh(benchmark::State& state) {
  if (!has_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const double bandwidth = copy_bandwidth();
  const auto math = static_cast<lsa::cuda::LightningMath>(state.range(2));
  const auto part = static_cast<Part>(state.range(3));
  const bool graph = state.range(4) != 0;
  Refresh r(state.range(0), static_cast<int32_t>(state.range(1)), math);
  if (part == kSelectMass) {
    r.policy.page_score = lsa::PageScore::kScoreMass;
    r.stats.d_mass = r.d_mass;
    r.select.d_mass = r.d_mass;
  }
  if (part == kSelectSort) r.select.path = lsa::cuda::SelectionPath::kDeviceSort;
  if (part == kSelectMass || part == kSelectSort) {
    // The workspace depends on the path: size it again.
    cudaFree(r.d_select_ws);
    BENCH_CUDA(lsa::cuda::select_pages(nullptr, r.select_bytes, r.policy, r.chunker, r.select, r.d_pages,
                                       r.d_count, r.stream));
    BENCH_CUDA(cudaMalloc(&r.d_select_ws, r.select_bytes));
  }
  const bool select_only = part >= kSelectOnly;
  auto once = [&] {
    if (!select_only) r.score();
    if (part != kScoreOnly) r.choose();
  };
  r.score();  // the page statistics selection reads
  once();     // warm-up
  BENCH_CUDA(cudaStreamSynchronize(r.stream));
  cudaGraphExec_t exec = nullptr;
  if (graph) {
    cudaGraph_t g;
    BENCH_CUDA(cudaStreamBeginCapture(r.stream, cudaStreamCaptureModeThreadLocal));
    once();
    BENCH_CUDA(cudaStreamEndCapture(r.stream, &g));
    BENCH_CUDA(cudaGraphInstantiate(&exec, g, 0));
    BENCH_CUDA(cudaGraphDestroy(g));
  }
  lsa::bench::DeviceTimer timer(r.stream);
  double total_s = 0.0;
  for (auto _ : state) {
    const double seconds = timer.seconds_per_call(20, [&] {
      if (graph) {
        BENCH_CUDA(cudaGraphLaunch(exec, r.stream));
      } else {
        once();
      }
    });
    state.SetIterationTime(seconds);
    total_s += seconds;
  }
  const double mean_s = total_s / static_cast<double>(state.iterations());
  int32_t count = 0;
  BENCH_CUDA(cudaMemcpy(&count, r.d_count, 4, cudaMemcpyDeviceToHost));
  if (exec != nullptr) BENCH_CUDA(cudaGraphExecDestroy(exec));
  const double floor_s = r.bytes() / bandwidth;
  state.counters["chunks"] = static_cast<double>(r.chunks);
  state.counters["MB"] = r.bytes() / 1e6;
  state.counters["floor_us"] = floor_s * 1e6;
  state.counters["x_floor"] = mean_s / floor_s;  // the goal is <= 2
  state.counters["pct_floor"] = 100.0 * floor_s / mean_s;
  state.counters["GBps"] = r.bytes() / mean_s / 1e9;
  state.counters["pages_out"] = count;
  if (part == kRefresh || part == kSelectOnly) {
    // Kept chunks, so a reader can see that selection had real work.
    std::vector<int32_t> kept(static_cast<size_t>(r.pages));
    BENCH_CUDA(cudaMemcpy(kept.data(), r.d_kept, kept.size() * 4, cudaMemcpyDeviceToHost));
    double total = 0;
    for (const int32_t k : kept) total += k;
    state.counters["kept_frac"] = total / static_cast<double>(r.chunks);
  }
}

void refresh_args(benchmark::internal::Benchmark* b) {
  using M = lsa::cuda::LightningMath;
  for (const int64_t tokens : {int64_t{1} << 17, int64_t{1} << 19, int64_t{1} << 20}) {
    for (const int64_t heads : {64, 128}) {
      for (const M math : {M::kTensorSplit, M::kTensorFast}) {
        b->Args({tokens, heads, static_cast<int64_t>(math), kRefresh, 1});
      }
    }
  }
  // Launched one by one on the stream instead of as a graph.
  b->Args({int64_t{1} << 20, 64, static_cast<int64_t>(M::kTensorSplit), kRefresh, 0});
  // Where the time goes at 1M tokens, and the CUDA-core reference.
  for (const int64_t heads : {64, 128}) {
    for (const M math : {M::kTensorSplit, M::kTensorFast, M::kCudaCore}) {
      b->Args({int64_t{1} << 20, heads, static_cast<int64_t>(math), kScoreOnly, 1});
    }
  }
  for (const Part part : {kSelectOnly, kSelectMass, kSelectSort}) {
    b->Args({int64_t{1} << 20, 64, static_cast<int64_t>(M::kTensorSplit), part, 1});
  }
  b->ArgNames({"tokens", "H", "math", "part", "graph"});
}

BENCHMARK(BM_Refresh)->Apply(refresh_args)->UseManualTime()->Unit(benchmark::kMicrosecond)->MinTime(0.1);

}  // namespace

BENCHMARK_MAIN();
