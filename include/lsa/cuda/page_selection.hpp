// The lookahead policy's page selection (threshold selection, page density, kmax) on the device.
#pragma once

#include <cstddef>
#include <cstdint>

#include "lsa/chunker.hpp"
#include "lsa/cuda/cuda_error.hpp"
#include "lsa/policy_config.hpp"

namespace lsa::cuda {

/// Which implementation ranks the candidate pages; all give identical output.
enum class SelectionPath : uint8_t {
  kAuto,        ///< the first of kCountSort, kBlock, kDeviceSort that applies
  kCountSort,   ///< one thread block, histogram of kept-chunk counts then a 7-bit block sort of
                ///< the chosen pages: PageScore::kKeptChunks, no hysteresis, no max_recall_pages
                ///< cap, page_chunks <= 64, a budget <= 4096 pages (the defaults)
  kBlock,       ///< one thread block: radix select of the kmax best, then a block sort of those;
                ///< needs no max_recall_pages cap, a budget <= 4096 pages and the candidate keys
                ///< in shared memory (about 45K pages on sm_90, 29K on sm_80)
  kDeviceSort,  ///< cub::DeviceRadixSort of all candidates, then one block takes the best
};

/// Device inputs of one sequence's refresh selection: what lsa::SelectionInput holds, with the
/// chunk scores already reduced to PageStats (compute_page_stats or lightning_score's epilogue).
struct PageSelectionInput {
  const int32_t* d_kept = nullptr;           ///< [num_stat_pages(num_scored_chunks)] kept chunks
  const float* d_mass = nullptr;             ///< same shape, kept score mass (PageScore::kScoreMass)
  int64_t num_scored_chunks = 0;             ///< chunks with a score; later pages have none kept
  int64_t num_tokens = 0;                    ///< history length
  int64_t first_uncommitted_page = 0;        ///< pages from here on are forced (not in the mirror)
  const int32_t* d_resident_pages = nullptr;  ///< current resident set, ascending (may be null when
  int64_t num_resident = 0;                   ///< hysteresis == 0 and max_recall_pages == 0)
  SelectionPath path = SelectionPath::kAuto;  ///< implementation (tests pin one)
};

/// Most pages select_pages writes for these inputs: every page when the history fits kmax, else
/// the forced pages plus what kmax leaves for chosen ones.
int64_t max_selected_pages(const PolicyConfig& policy, Chunker chunker, int64_t num_tokens,
                           int64_t first_uncommitted_page) noexcept;

/// LookaheadPolicy(policy, chunker).select(...) for Selection::kThreshold (statistics from
/// compute_page_stats or lightning_score) and Selection::kTopK (top_k_page_stats), on the device: writes the
/// new resident set to d_pages (forced pages ascending, then the chosen pages best first, ties to
/// the lower page) and its length to *d_num_pages; identical to the host policy for the same page
/// statistics. d_pages must hold max_selected_pages(...) entries.
///
/// CUB-style workspace (see lightning_score); the size depends on the inputs and the path. No
/// allocation, no synchronization. kInvalidValue: missing pointers, a workspace that is too small;
/// kNotSupported: Selection::kTopP, or a path that does not apply.
[[nodiscard]] CudaError select_pages(void* d_workspace, size_t& workspace_bytes,
                                     const PolicyConfig& policy, Chunker chunker,
                                     const PageSelectionInput& input, int32_t* d_pages,
                                     int32_t* d_num_pages, Stream stream) noexcept;

}  // namespace lsa::cuda
