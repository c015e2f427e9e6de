// top_k_page_stats: rank keys, a stable CUB radix sort of (key, chunk), the first k chunks marked,
// then the page statistics of the marked chunks.
#include <cuda_runtime.h>

#include <cstdint>
#include <cub/device/device_radix_sort.cuh>

#include "detail/common.cuh"
#include "lsa/cuda/chunk_selection.hpp"

namespace lsa::cuda {
namespace detail {
namespace {

constexpr int kThreads = 256;

__global__ void rank_keys_kernel(const float* __restrict__ scores, int32_t n,
                                 uint32_t* __restrict__ keys, int32_t* __restrict__ chunks) {
  // 64-bit: for n near 2^31 the last block's indices pass INT32_MAX (and would wrap negative).
  const int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (c >= n) return;
  keys[c] = rank_key(scores[c]);
  chunks[c] = static_cast<int32_t>(c);
}

// kept[c] = 1 for the first k chunks of the sorted order (all chunks when `all`).
__global__ void mark_kernel(const int32_t* __restrict__ sorted, int32_t n, int32_t k, bool all,
                            uint8_t* __restrict__ kept) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (i >= n) return;
  if (all) {
    kept[i] = 1;
  } else if (i < k) {
    kept[sorted[i]] = 1;
  }
}

// Per page: the marked chunks and their score mass.
__global__ void kept_page_stats_kernel(const uint8_t* __restrict__ kept,
                                       const float* __restrict__ scores, int64_t n,
                                       int64_t num_pages, int32_t page_chunks,
                                       int32_t* __restrict__ count_out,
                                       float* __restrict__ mass_out) {
  const int64_t page = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (page >= num_pages) return;
  int32_t count;
  float sum;
  kept_page_stats(
      scores, n, page, page_chunks, [&](int64_t c) { return kept[c] != 0; }, count, sum);
  count_out[page] = count;
  if (mass_out != nullptr) mass_out[page] = sum;
}

unsigned blocks_for(int64_t n) { return static_cast<unsigned>((n + kThreads - 1) / kThreads); }

}  // namespace
}  // namespace detail

CudaError top_k_page_stats(void* d_workspace, size_t& workspace_bytes, const float* d_scores,
                           int64_t num_chunks, int64_t k, const PageStats& stats,
                           Stream stream) noexcept {
  using namespace detail;
  if (k < 1 || num_chunks < 0 || num_chunks >= (int64_t{1} << 31) || stats.page_chunks < 1 ||
      (num_chunks > 0 && (d_scores == nullptr || stats.d_kept == nullptr))) {
    return CudaError::kInvalidValue;
  }
  const auto n = static_cast<int32_t>(num_chunks);
  const bool all = k >= num_chunks;
  size_t sort_bytes = 0;
  LSA_CUDA_TRY(cub::DeviceRadixSort::SortPairs(
      nullptr, sort_bytes, static_cast<const uint32_t*>(nullptr), static_cast<uint32_t*>(nullptr),
      static_cast<const int32_t*>(nullptr), static_cast<int32_t*>(nullptr), n, 0, 32, stream));
  WorkspaceCarver carver(d_workspace);
  uint32_t* keys = carver.take<uint32_t>(static_cast<size_t>(n));
  uint32_t* keys_sorted = carver.take<uint32_t>(static_cast<size_t>(n));
  int32_t* chunks = carver.take<int32_t>(static_cast<size_t>(n));
  int32_t* chunks_sorted = carver.take<int32_t>(static_cast<size_t>(n));
  uint8_t* kept = carver.take<uint8_t>(static_cast<size_t>(n));
  void* sort_storage = carver.take<std::byte>(sort_bytes);
  if (d_workspace == nullptr) {
    workspace_bytes = std::max<size_t>(carver.used(), 1);
    return CudaError::kSuccess;
  }
  if (workspace_bytes < carver.used()) return CudaError::kInvalidValue;
  if (n == 0) return CudaError::kSuccess;
  if (!all) {
    rank_keys_kernel<<<blocks_for(n), kThreads, 0, stream>>>(d_scores, n, keys, chunks);
    LSA_CUDA_TRY(cudaGetLastError());
    // Stable: equal keys keep ascending chunk order, which is the host's tie rule.
    LSA_CUDA_TRY(cub::DeviceRadixSort::SortPairs(sort_storage, sort_bytes, keys, keys_sorted,
                                                 chunks, chunks_sorted, n, 0, 32, stream));
    LSA_CUDA_TRY(cudaMemsetAsync(kept, 0, static_cast<size_t>(n), stream));
  }
  mark_kernel<<<blocks_for(n), kThreads, 0, stream>>>(chunks_sorted, n,
                                                      static_cast<int32_t>(all ? n : k), all, kept);
  LSA_CUDA_TRY(cudaGetLastError());
  const int64_t pages = num_stat_pages(num_chunks, stats.page_chunks);
  kept_page_stats_kernel<<<blocks_for(pages), kThreads, 0, stream>>>(
      kept, d_scores, num_chunks, pages, stats.page_chunks, stats.d_kept, stats.d_mass);
  return launch_error();
}

}  // namespace lsa::cuda
