// The per-step device path in a CUDA graph: DevicePageTable::upload, build_view and
// write_slot_mapping captured once per table parity, replayed across refreshes that change the
// resident sets; every replay's views must equal the host views of SparseKVCache::step and every
// slot mapping the slot append returned. Also: replays queued back to back with no host wait (the
// staging buffers are refilled only after the replay that read them), and replays after the batch
// shrank below the size the graphs were captured for. Results are read through events on the
// graphs' stream, never a device-wide synchronization.
#include <cuda_runtime.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <set>
#include <vector>

#include "lsa/cuda/cuda_store.hpp"
#include "lsa/cuda/device_page_table.hpp"
#include "lsa/cuda/view_builder.hpp"
#include "support/cache_harness.hpp"
#include "support/cuda_store_access.hpp"
#include "support/gpu.hpp"

namespace {

using lsa::RecallMode;
using lsa::SeqId;
using lsa::Status;
using lsa::cuda::CudaStore;
using lsa::cuda::CudaStoreOptions;
using lsa::cuda::DevicePageTable;
using lsa::cuda::testing::DeviceArray;

constexpr int32_t kBatch = 4;
constexpr int32_t kMaxPages = 128;

// The harness's small cache (4-token pages, refresh every step) for kBatch sequences of up to
// kMaxPages pages, with a reserve three slots above its minimum.
lsa::CacheConfig graph_config(RecallMode mode) {
  lsa::CacheConfig c = lsa::testing::small_config();
  c.max_sequences = kBatch;
  c.max_tokens = kMaxPages * c.page_tokens();
  c.recall_mode = mode;
  c.num_slots = kBatch * c.policy.kmax_pages + 3;
  return c;
}

// Device buffers of all three view formats, shaped like a host ViewStorage.
struct DeviceViews {
  explicit DeviceViews(const lsa::ViewStorage& host)
      : indptr(host.indptr.size()),
        indices(host.indices.size()),
        last_page_len(host.last_page_len.size()),
        slot_lists(host.slot_lists.size()),
        block_table(host.block_table.size()),
        slot_list_width(static_cast<int32_t>(host.slot_lists.size() / host.last_page_len.size())),
        block_table_width(
            static_cast<int32_t>(host.block_table.size() / host.last_page_len.size())) {}
  lsa::ViewBuffers buffers() {
    return {indptr.get(),        indices.get(),    static_cast<int64_t>(indices.size()),
            last_page_len.get(), slot_lists.get(), slot_list_width,
            block_table.get(),   block_table_width};
  }
  // Every buffer equals the host's, read after the work queued on `stream`.
  void require_equal(const lsa::ViewStorage& host, cudaStream_t stream) const {
    REQUIRE(indptr.download(stream) == host.indptr);
    REQUIRE(indices.download(stream) == host.indices);
    REQUIRE(last_page_len.download(stream) == host.last_page_len);
    REQUIRE(slot_lists.download(stream) == host.slot_lists);
    REQUIRE(block_table.download(stream) == host.block_table);
  }
  DeviceArray<int32_t> indptr, indices, last_page_len, slot_lists, block_table;
  int32_t slot_list_width, block_table_width;
};

void run_graph_replays(RecallMode mode) {
  const lsa::CacheConfig config = graph_config(mode);
  const lsa::Chunker chunker(config.chunk_tokens, config.page_chunks);
  cudaStream_t stream = nullptr;
  LSA_CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  {
    lsa::testing::BasicHarness<CudaStore> h(config, 5, CudaStoreOptions{0, stream});
    const std::vector<SeqId> ids = {10, 20, 30, 40};
    for (const SeqId id : ids) {
      REQUIRE(h.add(id) == Status::kOk);
      REQUIRE(h.append_in_pieces(id, 30 + 7 * static_cast<int32_t>(id % 3), 6) == Status::kOk);
    }
    DevicePageTable table(kBatch, config.policy.kmax_pages, kMaxPages);
    DeviceViews device(h.views);
    DeviceArray<int32_t> status(1);
    DeviceArray<int64_t> mapping(kBatch);

    // Capture the step path once per parity.
    cudaGraphExec_t graphs[2] = {nullptr, nullptr};
    for (int parity = 0; parity < 2; ++parity) {
      cudaGraph_t graph = nullptr;
      LSA_CUDA_REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      const lsa::cuda::DeviceBatchTable t = table.table(parity, kBatch);
      LSA_CUDA_OK(table.upload(parity, stream));
      LSA_CUDA_OK(lsa::cuda::build_view(t, chunker, device.buffers(), status.get(), stream));
      LSA_CUDA_OK(lsa::cuda::write_slot_mapping(t, chunker, mapping.get(), stream));
      LSA_CUDA_REQUIRE(cudaStreamEndCapture(stream, &graph));
      LSA_CUDA_REQUIRE(cudaGraphInstantiate(&graphs[parity], graph, 0));
      LSA_CUDA_REQUIRE(cudaGraphDestroy(graph));
    }

    std::mt19937 rng(17);
    std::set<std::vector<int32_t>> sets_seen;
    for (int step = 0; step < 300; ++step) {
      INFO("step " << step);
      std::vector<lsa::TokenSlot> appended(ids.size());
      for (size_t b = 0; b < ids.size(); ++b) {
        REQUIRE(h.append(ids[b], 1) == Status::kOk);
        const int64_t t = h.cache.length(ids[b]) - 1;
        appended[b] = {h.cache.slot_of(ids[b], chunker.page_of_token(t)),
                       chunker.offset_in_page(t)};
      }
      std::vector<float> q(ids.size());
      for (float& v : q) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
      REQUIRE(h.step(ids, q) == Status::kOk);
      for (const SeqId id : ids) {
        auto res = h.cache.resident_pages(id);
        sets_seen.emplace(res.begin(), res.end());
      }
      REQUIRE(table.write(h.cache, ids) == Status::kOk);
      LSA_CUDA_REQUIRE(cudaGraphLaunch(graphs[table.parity()], stream));
      REQUIRE(status.download(stream)[0] == static_cast<int32_t>(Status::kOk));
      device.require_equal(h.views, stream);
      const std::vector<int64_t> got = mapping.download(stream);
      for (size_t b = 0; b < ids.size(); ++b) {
        REQUIRE(got[b] == int64_t{appended[b].slot} * chunker.page_tokens() + appended[b].offset);
      }
    }
    REQUIRE(sets_seen.size() > 20);  // the replays saw the resident sets change many times
    for (cudaGraphExec_t g : graphs) LSA_CUDA_REQUIRE(cudaGraphExecDestroy(g));
    h.check_all();
  }
  LSA_CUDA_REQUIRE(cudaStreamDestroy(stream));
}

// Keeps the device busy for about `cycles` clock ticks: queued replays then pile up behind it.
__global__ void spin_kernel(long long cycles) {
  const long long start = clock64();
  while (clock64() - start < cycles) {
  }
}

// Appends `a` ([na]) then `b` ([nb]) as row *counter of `log` ([capacity][na + nb]) and counts the
// row: a graph replayed many times leaves one row per replay. One block.
__global__ void log_kernel(const int32_t* a, int32_t na, const int32_t* b, int32_t nb, int32_t* log,
                           int32_t* counter, int32_t capacity) {
  const int32_t row = *counter;
  if (row < capacity) {
    int32_t* out = log + int64_t{row} * (na + nb);
    for (int32_t i = static_cast<int32_t>(threadIdx.x); i < na + nb; i += blockDim.x) {
      out[i] = i < na ? a[i] : b[i - na];
    }
  }
  __syncthreads();
  if (threadIdx.x == 0) *counter = row + 1;
}

// Replays queued back to back: the host steps, writes the table and launches the next replay while
// earlier ones still wait behind a spinning kernel; it never waits for the stream, so only the
// event each replay records tells DevicePageTable::write when a staging buffer is free again.
void run_replays_in_flight(RecallMode mode) {
  constexpr int kSteps = 160;
  const lsa::CacheConfig config = graph_config(mode);
  cudaStream_t stream = nullptr;
  LSA_CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  {
    lsa::testing::BasicHarness<CudaStore> h(config, 9, CudaStoreOptions{0, stream});
    const lsa::Chunker chunker(config.chunk_tokens, config.page_chunks);
    const std::vector<SeqId> ids = {10, 20, 30, 40};
    for (const SeqId id : ids) {
      REQUIRE(h.add(id) == Status::kOk);
      REQUIRE(h.append_in_pieces(id, 40 + 5 * static_cast<int32_t>(id % 4), 6) == Status::kOk);
    }
    DevicePageTable table(kBatch, config.policy.kmax_pages, kMaxPages);
    DeviceViews device(h.views);
    DeviceArray<int32_t> status(1);
    const auto table_size = static_cast<int32_t>(h.views.block_table.size());
    const int32_t row = table_size + 1;
    DeviceArray<int32_t> log(static_cast<size_t>(kSteps) * row);
    DeviceArray<int32_t> counter(std::vector<int32_t>{0});
    LSA_CUDA_REQUIRE(cudaDeviceSynchronize());  // the counter's upload ran on the legacy stream

    cudaGraphExec_t graphs[2] = {nullptr, nullptr};
    for (int parity = 0; parity < 2; ++parity) {
      cudaGraph_t graph = nullptr;
      LSA_CUDA_REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      spin_kernel<<<1, 1, 0, stream>>>(2000000);  // about 1 ms: far longer than a host step
      LSA_CUDA_OK(table.upload(parity, stream));
      LSA_CUDA_OK(lsa::cuda::build_view(table.table(parity, kBatch), chunker, device.buffers(),
                                        status.get(), stream));
      log_kernel<<<1, 256, 0, stream>>>(device.block_table.get(), table_size, status.get(), 1,
                                        log.get(), counter.get(), kSteps);
      LSA_CUDA_REQUIRE(cudaStreamEndCapture(stream, &graph));
      LSA_CUDA_REQUIRE(cudaGraphInstantiate(&graphs[parity], graph, 0));
      LSA_CUDA_REQUIRE(cudaGraphDestroy(graph));
    }

    std::mt19937 rng(3);
    std::vector<std::vector<int32_t>> expected;
    int busy = 0;  // launches that found earlier replays still queued
    for (int step = 0; step < kSteps; ++step) {
      INFO("step " << step);
      for (const SeqId id : ids) REQUIRE(h.append(id, 1) == Status::kOk);
      std::vector<float> q(ids.size());
      for (float& v : q) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
      REQUIRE(h.step_unchecked(ids, q) == Status::kOk);  // no read-back: nothing waits
      expected.push_back(h.views.block_table);
      expected.back().push_back(static_cast<int32_t>(Status::kOk));
      REQUIRE(table.write(h.cache, ids) == Status::kOk);
      const cudaError_t queued = cudaStreamQuery(stream);
      busy += queued == cudaErrorNotReady;
      if (queued != cudaErrorNotReady) LSA_CUDA_REQUIRE(queued);
      LSA_CUDA_REQUIRE(cudaGraphLaunch(graphs[table.parity()], stream));
    }
    const std::vector<int32_t> got = log.download(stream);
    REQUIRE(counter.download(stream)[0] == kSteps);
    for (int step = 0; step < kSteps; ++step) {
      INFO("replay " << step);
      const std::vector<int32_t> replay(got.begin() + int64_t{step} * row,
                                        got.begin() + int64_t{step + 1} * row);
      REQUIRE(replay == expected[static_cast<size_t>(step)]);
    }
    // Replays were in flight: launches found the stream busy, and write() waited on the events of
    // replays two steps back (stalls) instead of refilling a staging buffer they still read.
    INFO("busy launches " << busy << ", table stalls " << table.stalls());
    REQUIRE(busy > kSteps / 2);
    REQUIRE(table.stalls() > 0);
    for (cudaGraphExec_t g : graphs) LSA_CUDA_REQUIRE(cudaGraphExecDestroy(g));
    REQUIRE(lsa::cuda::ok(h.cache.store().cuda_error()));
  }
  LSA_CUDA_REQUIRE(cudaStreamDestroy(stream));
}

}  // namespace

TEST_CASE("step graph: captured once, replayed across refreshes, views equal the host's (sync)",
          "[gpu][graph]") {
  LSA_REQUIRE_GPU();
  run_graph_replays(RecallMode::kSync);
}

TEST_CASE("step graph: captured once, replayed across refreshes, views equal the host's (async)",
          "[gpu][graph]") {
  LSA_REQUIRE_GPU();
  run_graph_replays(RecallMode::kAsync);
}

TEST_CASE("device page table: bad sizes throw, oversized batches are refused and change nothing",
          "[gpu][graph][errors]") {
  LSA_REQUIRE_GPU();
  REQUIRE_THROWS_WITH(DevicePageTable(0, 4, 4), Catch::Contains("max_batch"));
  const lsa::CacheConfig config = graph_config(RecallMode::kSync);
  lsa::testing::BasicHarness<CudaStore> h(config, 3);
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.add(2) == Status::kOk);
  REQUIRE(h.append(1, 40) == Status::kOk);
  DevicePageTable small(1, config.policy.kmax_pages, kMaxPages);
  const std::vector<SeqId> two = {1, 2};
  REQUIRE(small.write(h.cache, two) == Status::kBufferTooSmall);
  const std::vector<SeqId> unknown = {9};
  REQUIRE(small.write(h.cache, unknown) == Status::kUnknownSequence);
  DevicePageTable short_rows(2, config.policy.kmax_pages, 2);
  REQUIRE(short_rows.write(h.cache, two) == Status::kBufferTooSmall);  // 40 tokens = 10 pages > 2
  REQUIRE(small.parity() == 0);
  REQUIRE(small.num_batch() == 0);
}

TEST_CASE("step graph: replays queued with no host wait read whole tables (sync)",
          "[gpu][graph]") {
  LSA_REQUIRE_GPU();
  run_replays_in_flight(RecallMode::kSync);
}

TEST_CASE("step graph: replays queued with no host wait read whole tables (async)",
          "[gpu][graph]") {
  LSA_REQUIRE_GPU();
  run_replays_in_flight(RecallMode::kAsync);
}

TEST_CASE("step graph: after the batch shrinks a replay serves only the sequences written",
          "[gpu][graph]") {
  LSA_REQUIRE_GPU();
  const lsa::CacheConfig config = graph_config(RecallMode::kSync);
  const lsa::Chunker chunker(config.chunk_tokens, config.page_chunks);
  cudaStream_t stream = nullptr;
  LSA_CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  {
    lsa::testing::BasicHarness<CudaStore> h(config, 6, CudaStoreOptions{0, stream});
    std::vector<SeqId> ids = {10, 20, 30, 40};
    for (const SeqId id : ids) {
      REQUIRE(h.add(id) == Status::kOk);
      REQUIRE(h.append_in_pieces(id, 33 + 6 * static_cast<int32_t>(id % 4), 6) == Status::kOk);
    }
    DevicePageTable table(kBatch, config.policy.kmax_pages, kMaxPages);
    DeviceViews device(h.views);
    DeviceArray<int32_t> status(1);
    DeviceArray<int64_t> mapping(kBatch);
    cudaGraphExec_t graphs[2] = {nullptr, nullptr};
    for (int parity = 0; parity < 2; ++parity) {  // captured for the largest batch
      cudaGraph_t graph = nullptr;
      LSA_CUDA_REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
      const lsa::cuda::DeviceBatchTable t = table.table(parity, kBatch);
      LSA_CUDA_OK(table.upload(parity, stream));
      LSA_CUDA_OK(lsa::cuda::build_view(t, chunker, device.buffers(), status.get(), stream));
      LSA_CUDA_OK(lsa::cuda::write_slot_mapping(t, chunker, mapping.get(), stream));
      LSA_CUDA_REQUIRE(cudaStreamEndCapture(stream, &graph));
      LSA_CUDA_REQUIRE(cudaGraphInstantiate(&graphs[parity], graph, 0));
      LSA_CUDA_REQUIRE(cudaGraphDestroy(graph));
    }
    std::mt19937 rng(8);
    for (int step = 0; step < 90; ++step) {
      INFO("step " << step << ", batch " << ids.size());
      if (step == 30 || step == 60) {  // a request finishes: the batch shrinks, no re-capture
        REQUIRE(h.remove(ids.back()) == Status::kOk);
        ids.pop_back();
      }
      std::vector<lsa::TokenSlot> appended(ids.size());
      for (size_t b = 0; b < ids.size(); ++b) {
        REQUIRE(h.append(ids[b], 1) == Status::kOk);
        const int64_t t = h.cache.length(ids[b]) - 1;
        appended[b] = {h.cache.slot_of(ids[b], chunker.page_of_token(t)),
                       chunker.offset_in_page(t)};
      }
      std::vector<float> q(ids.size());
      for (float& v : q) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
      REQUIRE(h.step(ids, q) == Status::kOk);
      REQUIRE(table.write(h.cache, ids) == Status::kOk);
      LSA_CUDA_REQUIRE(cudaGraphLaunch(graphs[table.parity()], stream));
      REQUIRE(status.download(stream)[0] == static_cast<int32_t>(Status::kOk));
      // Rows past the batch keep what the last larger batch wrote, on both sides.
      device.require_equal(h.views, stream);
      const std::vector<int64_t> got = mapping.download(stream);
      for (size_t b = 0; b < ids.size(); ++b) {
        REQUIRE(got[b] == int64_t{appended[b].slot} * chunker.page_tokens() + appended[b].offset);
      }
    }
    for (cudaGraphExec_t g : graphs) LSA_CUDA_REQUIRE(cudaGraphExecDestroy(g));
    h.check_all();
  }
  LSA_CUDA_REQUIRE(cudaStreamDestroy(stream));
}
