// Copies whole pages between arbitrary addresses with one kernel (mapped pinned memory included).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

namespace lsa::cuda::detail {

/// Queues on `stream` the copy of `count` pages of `page_bytes` bytes from srcs[i] to dsts[i], as
/// kernels whose threads read the sources directly: host sources must be mapped pinned memory
/// (cudaHostAllocMapped; with unified addressing its host address is its device address). The
/// pointer lists are read on the host (passed as kernel parameters), not kept.
cudaError_t gather_pages(const void* const* srcs, void* const* dsts, size_t count,
                         int64_t page_bytes, cudaStream_t stream) noexcept;

}  // namespace lsa::cuda::detail
