// Top-k chunk selection (Selection::kTopK) on the device, reduced to the page statistics that
// select_pages ranks.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lsa/cuda/cuda_error.hpp"
#include "lsa/cuda/page_stats.hpp"

namespace lsa::cuda {

/// Keeps the `k` best of `num_chunks` device scores under the host policy's order (score
/// descending, ties to the lower chunk index, -0 equal to +0; every chunk when k >= num_chunks) and
/// writes their per-page counts (and score mass, in chunk order) to `stats` (its threshold is not
/// read). Feed the result to select_pages with a kTopK policy: the pages equal the host policy's.
///
/// CUB-style workspace (a query with d_workspace null sets workspace_bytes); a stable radix sort
/// of (rank key, chunk) pairs, so about 16 bytes per chunk. No allocation, no synchronization.
/// kInvalidValue: k < 1, num_chunks < 0 or >= 2^31, missing pointers, page_chunks < 1, a workspace
/// that is too small.
[[nodiscard]] CudaError top_k_page_stats(void* d_workspace, size_t& workspace_bytes,
                                         const float* d_scores, int64_t num_chunks, int64_t k,
                                         const PageStats& stats, Stream stream) noexcept;

}  // namespace lsa::cuda
