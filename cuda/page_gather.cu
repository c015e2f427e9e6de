// The gather kernel of CudaStore's RecallCopy::kGatherKernel: one kernel moves a batch of pages.
#include <algorithm>

#include "detail/page_gather.cuh"

namespace lsa::cuda::detail {
namespace {

// Pages per launch: the descriptor lists travel as kernel parameters (8 KiB here; sm_70+ with
// CUDA 12.1+ takes up to 32 KiB of parameters).
constexpr int kPagesPerLaunch = 512;
constexpr int kThreads = 256;
constexpr int kBlocksPerPage = 8;  // several blocks per page keep enough loads in flight on the bus

struct PageList {
  const std::byte* src[kPagesPerLaunch];
  std::byte* dst[kPagesPerLaunch];
};

// Block (page, part) copies its part of page `page`, in 16-byte words when every page allows it.
__global__ void __launch_bounds__(kThreads)
    gather_kernel(const __grid_constant__ PageList list, int64_t page_bytes, bool vectorized) {
  const int page = static_cast<int>(blockIdx.x);
  const std::byte* src = list.src[page];
  std::byte* dst = list.dst[page];
  const int64_t stride = int64_t{kThreads} * gridDim.y;
  const int64_t first = int64_t{blockIdx.y} * kThreads + threadIdx.x;
  if (vectorized) {
    const auto* s = reinterpret_cast<const int4*>(src);
    auto* d = reinterpret_cast<int4*>(dst);
    for (int64_t i = first; i < page_bytes / 16; i += stride) d[i] = s[i];
  } else {
    for (int64_t i = first; i < page_bytes; i += stride) dst[i] = src[i];
  }
}

}  // namespace

cudaError_t gather_pages(const void* const* srcs, void* const* dsts, size_t count,
                         int64_t page_bytes, cudaStream_t stream) noexcept {
  bool vectorized = page_bytes % 16 == 0;
  for (size_t i = 0; i < count; ++i) {
    vectorized = vectorized && reinterpret_cast<uintptr_t>(srcs[i]) % 16 == 0 &&
                 reinterpret_cast<uintptr_t>(dsts[i]) % 16 == 0;
  }
  PageList list{};
  for (size_t at = 0; at < count; at += kPagesPerLaunch) {
    const size_t n = std::min<size_t>(kPagesPerLaunch, count - at);
    for (size_t i = 0; i < n; ++i) {
      list.src[i] = static_cast<const std::byte*>(srcs[at + i]);
      list.dst[i] = static_cast<std::byte*>(dsts[at + i]);
    }
    gather_kernel<<<dim3(static_cast<unsigned>(n), kBlocksPerPage), kThreads, 0, stream>>>(
        list, page_bytes, vectorized);
    if (const cudaError_t e = cudaGetLastError(); e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

}  // namespace lsa::cuda::detail
