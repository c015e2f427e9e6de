// The device store and the per-step device path:
//  - BM_Recall: a batch of pages recalled mirror -> reserve by CudaStore (batched memcpy or the
//    gather kernel), against one plain pinned cudaMemcpyAsync of the same bytes in the same
//    iteration; `vs_memcpy` is the ratio of throughputs (goal >= 0.8).
//  - BM_StepHost: host time of a decode step on the device store for batch 1..64 (no refresh due):
//    SparseKVCache::step writing host views, and step without host views + DevicePageTable::write
//    + the step graph's launch (the views are built on the device); no synchronization inside the
//    timed part (goal <= 2 us for the whole batch).
//  - BM_StepGraph: device time of the step graph (table upload, build_view, write_slot_mapping),
//    replayed, against the same kernels launched one by one.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <vector>

#include "bench_cuda.hpp"
#include "bench_scorer.hpp"
#include "lsa/cuda/cuda_store.hpp"
#include "lsa/cuda/device_page_table.hpp"
#include "lsa/cuda/view_builder.hpp"
#include "lsa/sparse_kv_cache.hpp"

namespace {

using lsa::bench::has_device;
using lsa::cuda::CudaStore;
using lsa::cuda::RecallCopy;
using Clock = std::chrono::steady_clock;
using Cache =
    lsa::SparseKVCache<lsa::Chunker, lsa::bench::GivenScoreScorer, lsa::LookaheadPolicy, CudaStore>;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// args: page KiB, pages per batch, copy path
void BM_Recall(benchmark::State& state) {
  if (!has_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const int64_t page_bytes = state.range(0) * 1024;
  const auto pages = static_cast<int32_t>(state.range(1));
  const auto copy = static_cast<RecallCopy>(state.range(2));
  lsa::CacheConfig config;
  config.chunk_tokens = 4;
  config.page_chunks = 16;
  config.bytes_per_token_per_layer = page_bytes / config.page_tokens();
  config.num_slots = 2 * pages;
  cudaStream_t stream;
  BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  {
    CudaStore store(config, {0, stream, copy});
    if (store.reserve_pages(pages) != lsa::Status::kOk) state.SkipWithError("reserve_pages");
    std::vector<lsa::PageId> ids;
    for (int32_t i = 0; i < pages; ++i) {
      ids.push_back(store.create_page());
      store.take_slot(ids.back());
      if (store.seal(ids.back()) != lsa::Status::kOk) state.SkipWithError("seal");
    }
    BENCH_CUDA(cudaStreamSynchronize(store.copy_stream()));
    // The baseline: the same bytes in one copy from one pinned buffer.
    void* h_src = nullptr;
    void* d_dst = nullptr;
    const size_t bytes = static_cast<size_t>(page_bytes) * pages;
    BENCH_CUDA(cudaHostAlloc(&h_src, bytes, cudaHostAllocDefault));
    BENCH_CUDA(cudaMalloc(&d_dst, bytes));
    lsa::detail::RecallTicket ticket;
    double recall_s = 0.0, memcpy_s = 0.0;
    for (auto _ : state) {
      auto start = Clock::now();
      BENCH_CUDA(cudaMemcpyAsync(d_dst, h_src, bytes, cudaMemcpyHostToDevice, stream));
      BENCH_CUDA(cudaStreamSynchronize(stream));
      memcpy_s += seconds_since(start);

      for (const lsa::PageId id : ids) store.drop_slot(id);
      start = Clock::now();
      for (const lsa::PageId id : ids) {
        ticket.remaining.fetch_add(1);
        store.recall_async(id, &ticket);
      }
      store.submit_recalls();
      store.wait_copies(store.slot_job(store.slot_of(ids.back())));
      const double s = seconds_since(start);
      recall_s += s;
      state.SetIterationTime(s);
    }
    BENCH_CUDA(static_cast<cudaError_t>(store.cuda_error()));
    BENCH_CUDA(cudaFreeHost(h_src));
    BENCH_CUDA(cudaFree(d_dst));
    const double total_bytes = static_cast<double>(bytes) * static_cast<double>(state.iterations());
    state.counters["recall_GBps"] = total_bytes / recall_s / 1e9;
    state.counters["memcpy_GBps"] = total_bytes / memcpy_s / 1e9;
    state.counters["vs_memcpy"] = memcpy_s / recall_s;  // throughput ratio, goal >= 0.8
  }
  BENCH_CUDA(cudaStreamDestroy(stream));
}

void recall_args(benchmark::internal::Benchmark* b) {
  for (const RecallCopy copy : {RecallCopy::kMemcpyBatch, RecallCopy::kGatherKernel}) {
    for (const int64_t kib : {64, 1024, 2304}) {  // 2304 KiB: 64 tokens x 61 layers x 576 B (MLA)
      for (const int64_t pages : {16, 256}) b->Args({kib, pages, static_cast<int64_t>(copy)});
    }
  }
  b->ArgNames({"page_KiB", "pages", "copy"});
}
BENCHMARK(BM_Recall)->Apply(recall_args)->UseManualTime()->Unit(benchmark::kMicrosecond);

constexpr int32_t kKmaxPages = 64;
constexpr int64_t kSeqTokens = 8192 + 37;  // 129 pages of 64 tokens, partial tail

// A device-store cache with `batch` sequences of kSeqTokens past their one refresh, its device
// table, and the step graph captured per parity.
struct StepSetup {
  explicit StepSetup(int32_t batch) : batch(batch), table(batch, kKmaxPages, 160) {
    BENCH_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    lsa::CacheConfig c;
    c.bytes_per_token_per_layer = 16;
    c.chunk_tokens = 4;
    c.page_chunks = 16;
    c.max_sequences = batch;
    c.num_slots = batch * 131;
    c.max_tokens = kSeqTokens;
    c.policy.interval = 1 << 30;
    c.policy.spread_phase = false;
    c.policy.kmax_pages = kKmaxPages;
    c.policy.sink_chunks = 1;
    c.policy.recent_chunks = 128;
    cache = std::make_unique<Cache>(c, lsa::cuda::CudaStoreOptions{0, stream});
    const int64_t chunks = kSeqTokens / c.chunk_tokens;
    std::vector<std::byte> kv(static_cast<size_t>(kSeqTokens * c.bytes_per_token_per_layer));
    std::vector<lsa::TokenSlot> where(static_cast<size_t>(kSeqTokens));
    std::vector<float> keys(static_cast<size_t>(chunks));
    std::mt19937 rng(42);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (int32_t b = 0; b < batch; ++b) {
      ids.push_back(1000 + b);
      for (float& k : keys) k = u(rng) < 0.10f ? 0.5f + 0.5f * u(rng) : 0.5f * u(rng);
      ok = ok && cache->add(ids.back()) == lsa::Status::kOk &&
           cache->append(ids.back(), static_cast<int32_t>(kSeqTokens),
                         {reinterpret_cast<const std::byte*>(keys.data()), chunks}, where,
                         kv.data()) == lsa::Status::kOk;
    }
    const float one = 1.0f;
    const std::vector<lsa::Query> queries(static_cast<size_t>(batch),
                                          lsa::Query{std::span<const float>(&one, 1), {}});
    ok = ok && cache->step(ids, queries, host.buffers()) == lsa::Status::kOk;
    BENCH_CUDA(cudaMalloc(&d_views, view_bytes()));
    BENCH_CUDA(cudaMalloc(&d_status, sizeof(int32_t)));
    BENCH_CUDA(cudaMalloc(&d_mapping, sizeof(int64_t) * batch));
    for (int parity = 0; parity < 2; ++parity) {
      cudaGraph_t graph;
      BENCH_CUDA(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      launch_step_kernels(parity);
      BENCH_CUDA(cudaStreamEndCapture(stream, &graph));
      BENCH_CUDA(cudaGraphInstantiate(&graphs[parity], graph, 0));
      BENCH_CUDA(cudaGraphDestroy(graph));
    }
  }
  ~StepSetup() {
    (void)cudaStreamSynchronize(stream);
    for (cudaGraphExec_t g : graphs) (void)cudaGraphExecDestroy(g);
    (void)cudaFree(d_views);
    (void)cudaFree(d_status);
    (void)cudaFree(d_mapping);
    cache.reset();
    (void)cudaStreamDestroy(stream);
  }

  size_t view_bytes() const { return sizeof(int32_t) * (2 * batch + 1 + 3 * batch * 160); }
  lsa::ViewBuffers device_views() const {
    auto* base = static_cast<int32_t*>(d_views);
    const int64_t rows = int64_t{batch} * 160;
    // indptr [batch + 1], indices [rows], last_page_len [batch], slot lists and block table [rows]
    return {base,
            base + batch + 1,
            rows,
            base + batch + 1 + rows,
            base + 2 * batch + 1 + rows,
            160,
            base + 2 * batch + 1 + 2 * rows,
            160};
  }
  void launch_step_kernels(int parity) {
    const lsa::cuda::DeviceBatchTable t = table.table(parity, batch);
    const lsa::Chunker chunker(4, 16);
    BENCH_CUDA(static_cast<cudaError_t>(table.upload(parity, stream)));
    BENCH_CUDA(static_cast<cudaError_t>(
        lsa::cuda::build_view(t, chunker, device_views(), d_status, stream)));
    BENCH_CUDA(
        static_cast<cudaError_t>(lsa::cuda::write_slot_mapping(t, chunker, d_mapping, stream)));
  }

  int32_t batch;
  cudaStream_t stream = nullptr;
  std::unique_ptr<Cache> cache;
  std::vector<lsa::SeqId> ids;
  lsa::ViewStorage host{batch, kKmaxPages, 160};
  lsa::cuda::DevicePageTable table;
  void* d_views = nullptr;
  int32_t* d_status = nullptr;
  int64_t* d_mapping = nullptr;
  cudaGraphExec_t graphs[2] = {nullptr, nullptr};
  bool ok = true;
};

// args: batch, with device publish (0: step only)
void BM_StepHost(benchmark::State& state) {
  if (!has_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  const bool publish = state.range(1) != 0;
  StepSetup s(static_cast<int32_t>(state.range(0)));
  if (!s.ok) {
    state.SkipWithError("setup failed");
    return;
  }
  // With the device publish the views come from the device table: the step writes no host view.
  const lsa::ViewBuffers view = publish ? lsa::ViewBuffers{} : s.host.buffers();
  double host_s = 0.0;
  int64_t steps = 0;
  for (auto _ : state) {
    const auto start = Clock::now();
    if (s.cache->step(s.ids, {}, view) != lsa::Status::kOk) state.SkipWithError("step failed");
    if (publish) {
      if (s.table.write(*s.cache, s.ids) != lsa::Status::kOk)
        state.SkipWithError("table write failed");
      BENCH_CUDA(cudaGraphLaunch(s.graphs[s.table.parity()], s.stream));
    }
    const double t = seconds_since(start);
    host_s += t;
    ++steps;
    state.SetIterationTime(t);
    // Keep the device from falling behind by more than the two table buffers allow (not timed).
    if (publish && steps % 2 == 0) BENCH_CUDA(cudaStreamSynchronize(s.stream));
  }
  state.counters["us_per_step"] = host_s / static_cast<double>(steps) * 1e6;
  state.counters["ns_per_seq"] = host_s / static_cast<double>(steps) / s.batch * 1e9;
  state.counters["table_stalls"] = static_cast<double>(s.table.stalls());
}
BENCHMARK(BM_StepHost)
    ->ArgsProduct({{1, 4, 16, 64}, {0, 1}})
    ->ArgNames({"batch", "publish"})
    ->UseManualTime()
    ->Unit(benchmark::kNanosecond);

// args: batch, graph (0: the same kernels launched one by one)
void BM_StepGraph(benchmark::State& state) {
  if (!has_device()) {
    state.SkipWithError("no CUDA device");
    return;
  }
  StepSetup s(static_cast<int32_t>(state.range(0)));
  if (!s.ok || s.table.write(*s.cache, s.ids) != lsa::Status::kOk) {
    state.SkipWithError("setup failed");
    return;
  }
  const bool graph = state.range(1) != 0;
  lsa::bench::DeviceTimer timer(s.stream);
  for (auto _ : state) {
    state.SetIterationTime(timer.seconds_per_call(100, [&] {
      if (graph) {
        BENCH_CUDA(cudaGraphLaunch(s.graphs[s.table.parity()], s.stream));
      } else {
        s.launch_step_kernels(s.table.parity());
      }
    }));
  }
}
BENCHMARK(BM_StepGraph)
    ->ArgsProduct({{1, 16, 64}, {1, 0}})
    ->ArgNames({"batch", "graph"})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
