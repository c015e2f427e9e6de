// Page selection on the device: LookaheadPolicy::select for threshold selection, two ways.
//
// kBlock: one block of 1024 threads holds the candidate pages' rank keys in shared memory, finds
// the kmax-th best by a three-digit radix select (11, 11, 10 bits, like the host's rank_cut),
// compacts the chosen pages in page order and sorts at most 4096 of them with a stable block radix
// sort: best first, ties to the lower page. kDeviceSort: cub::DeviceRadixSort of every candidate,
// then one block walks the sorted list (this path also applies max_recall_pages).
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

#include "detail/common.cuh"
#include "lsa/cuda/page_selection.hpp"
#include "lsa/cuda/page_stats.hpp"
#include "lsa/lookahead_policy.hpp"

namespace lsa::cuda {
namespace detail {
namespace {

constexpr int kSelectThreads = 1024;
constexpr int kSortItems = 4;
constexpr int kSortCapacity = kSelectThreads * kSortItems;
constexpr int kBins = 2048;
constexpr int kKeyThreads = 256;

// Everything a selection kernel needs, worked out on the host from the policy and the lengths.
struct SelectPlan {
  int64_t num_pages = 0;     // pages of the history
  int64_t sink_count = 0;    // forced pages [0, sink_count)
  int64_t suffix_begin = 0;  // forced pages [suffix_begin, num_pages)
  int64_t forced_count = 0;
  int64_t first = 0;         // candidate pages are [first, first + span)
  int64_t span = 0;
  int64_t budget = 0;        // pages kmax leaves for chosen ones
  int64_t stat_pages = 0;    // pages with statistics; later pages have no kept chunk
  int64_t max_recall = 0;    // 0: no cap
  int32_t page_chunks = 0;   // largest kept-chunk count
  bool score_mass = false;
  float hysteresis = 0.0f;
  const int32_t* kept = nullptr;
  const float* mass = nullptr;
  const int32_t* resident = nullptr;
  int64_t num_resident = 0;
  int32_t* out = nullptr;
  int32_t* num_out = nullptr;
};

__device__ bool is_resident(const SelectPlan& p, int64_t page) {
  int64_t lo = 0;
  int64_t hi = p.num_resident;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (p.resident[mid] < page) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo < p.num_resident && p.resident[lo] == page;
}

// The page score of LookaheadPolicy::select (score_pages, then hysteresis) as a rank key;
// kUnrankedKey when the page is no candidate (score -inf or NaN).
__device__ uint32_t page_key(const SelectPlan& p, int64_t page) {
  const int32_t count = page < p.stat_pages ? p.kept[page] : 0;
  float score = count == 0 ? -INFINITY : (p.score_mass ? p.mass[page] : static_cast<float>(count));
  if (p.hysteresis > 0.0f && score > -INFINITY && is_resident(p, page)) score += p.hysteresis;
  return score > -INFINITY ? rank_key(score) : kUnrankedKey;
}

// Forced pages, ascending: sink then the recent/tail/uncommitted suffix.
__device__ void write_forced(const SelectPlan& p, int tid, int threads) {
  for (int64_t i = tid; i < p.forced_count; i += threads) {
    p.out[i] = static_cast<int32_t>(i < p.sink_count ? i : p.suffix_begin + (i - p.sink_count));
  }
}

__global__ void all_pages_kernel(int64_t num_pages, int32_t* out, int32_t* num_out) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (i < num_pages) out[i] = static_cast<int32_t>(i);
  if (i == 0) *num_out = static_cast<int32_t>(num_pages);
}

// ---- kBlock ------------------------------------------------------------------------------------

using BlockScan = cub::BlockScan<int32_t, kSelectThreads>;
using BlockSort = cub::BlockRadixSort<uint32_t, kSelectThreads, kSortItems, int32_t>;

struct BlockSmem {
  typename BlockScan::TempStorage scan;
  int32_t hist[kBins];
  union {
    typename BlockSort::TempStorage sort;
    struct {
      uint32_t keys[kSortCapacity];
      int32_t ids[kSortCapacity];
    } chosen;
  } u;
  int32_t digit;
  int32_t need;
};

constexpr size_t kBlockSmemBytes = (sizeof(BlockSmem) + 15) / 16 * 16;

__global__ void __launch_bounds__(kSelectThreads, 1) select_block_kernel(SelectPlan p) {
  extern __shared__ uint4 select_smem[];
  BlockSmem& sm = *reinterpret_cast<BlockSmem*>(select_smem);
  uint32_t* keys = reinterpret_cast<uint32_t*>(reinterpret_cast<uint8_t*>(select_smem) + kBlockSmemBytes);
  const int tid = static_cast<int>(threadIdx.x);
  write_forced(p, tid, kSelectThreads);

  int32_t candidates = 0;
  for (int64_t i = tid; i < p.span; i += kSelectThreads) {
    const uint32_t key = page_key(p, p.first + i);
    keys[i] = key;
    candidates += key != kUnrankedKey ? 1 : 0;
  }
  int32_t unused;
  int32_t total;
  BlockScan(sm.scan).ExclusiveSum(candidates, unused, total);
  __syncthreads();
  const int32_t k = static_cast<int32_t>(min(p.budget, int64_t{total}));
  if (k == 0) {
    if (tid == 0) *p.num_out = static_cast<int32_t>(p.forced_count);
    return;
  }

  // The chosen set: every key < below, then the first `taken` keys equal to `equal` (page order).
  uint64_t below = kUnrankedKey;  // k == total: every candidate
  uint32_t equal = 0;
  int32_t taken = 0;
  if (k < total) {
    constexpr int kShift[3] = {21, 10, 0};
    uint32_t prefix = 0;
    int32_t need = k;
    for (int level = 0; level < 3; ++level) {
      const int shift = kShift[level];
      const uint32_t high_mask = level == 0 ? 0u : ~((1u << (kShift[level - 1])) - 1u);
      const uint32_t digit_mask = level == 2 ? 1023u : 2047u;
      for (int b = tid; b < kBins; b += kSelectThreads) sm.hist[b] = 0;
      __syncthreads();
      for (int64_t base = 0; base < p.span; base += kSelectThreads) {
        const int64_t i = base + tid;
        const uint32_t key = i < p.span ? keys[i] : kUnrankedKey;
        const bool counted = i < p.span && (key & high_mask) == prefix;
        warp_histogram_add(sm.hist, counted, (key >> shift) & digit_mask);
      }
      __syncthreads();
      const int32_t h0 = sm.hist[2 * tid];
      const int32_t h1 = sm.hist[2 * tid + 1];
      int32_t before;
      BlockScan(sm.scan).ExclusiveSum(h0 + h1, before);
      if (before < need && need <= before + h0) {
        sm.digit = 2 * tid;
        sm.need = need - before;
      } else if (before + h0 < need && need <= before + h0 + h1) {
        sm.digit = 2 * tid + 1;
        sm.need = need - before - h0;
      }
      __syncthreads();
      const uint32_t d = static_cast<uint32_t>(sm.digit);
      need = sm.need;
      const int32_t bucket = sm.hist[d];
      prefix |= d << shift;
      __syncthreads();
      if (need == bucket) {
        below = uint64_t{prefix} + (uint64_t{1} << shift);
        break;
      }
      if (level == 2) {
        below = prefix;
        equal = prefix;
        taken = need;
      }
    }
  }

  // Compact the chosen pages in page order: one packed scan per round counts keys below the cut
  // (low 16 bits) and keys equal to it (high 16 bits).
  int32_t below_total = 0;
  int32_t equal_total = 0;
  for (int64_t base = 0; base < p.span; base += kSelectThreads) {
    const int64_t i = base + tid;
    const uint32_t key = i < p.span ? keys[i] : kUnrankedKey;
    const bool lt = i < p.span && key < below;
    const bool eq = i < p.span && taken > 0 && key == equal;
    int32_t before;
    int32_t round;
    BlockScan(sm.scan).ExclusiveSum((lt ? 1 : 0) | (eq ? 1 << 16 : 0), before, round);
    const int32_t lt_before = below_total + (before & 0xFFFF);
    const int32_t eq_before = equal_total + (before >> 16);
    if (lt || (eq && eq_before < taken)) {
      const int32_t at = lt_before + min(eq_before, taken);
      sm.u.chosen.keys[at] = key;
      sm.u.chosen.ids[at] = static_cast<int32_t>(i);
    }
    below_total += round & 0xFFFF;
    equal_total += round >> 16;
    __syncthreads();
  }

  uint32_t sort_keys[kSortItems];
  int32_t sort_ids[kSortItems];
  for (int j = 0; j < kSortItems; ++j) {
    const int at = tid * kSortItems + j;
    sort_keys[j] = at < k ? sm.u.chosen.keys[at] : kUnrankedKey;
    sort_ids[j] = at < k ? sm.u.chosen.ids[at] : INT_MAX;
  }
  __syncthreads();
  BlockSort(sm.u.sort).Sort(sort_keys, sort_ids);  // stable: equal keys keep page order
  for (int j = 0; j < kSortItems; ++j) {
    const int at = tid * kSortItems + j;
    if (at < k) p.out[p.forced_count + at] = static_cast<int32_t>(p.first + sort_ids[j]);
  }
  if (tid == 0) *p.num_out = static_cast<int32_t>(p.forced_count + k);
}

// ---- kCountSort ---------------------------------------------------------------------------------

constexpr int kCountThreads = 512;
constexpr int kCountItems = 16;  // pages per thread per round, contiguous (page order = thread order)
constexpr int64_t kCountRound = int64_t{kCountThreads} * kCountItems;
constexpr int kMaxCountValue = 64;
constexpr int kCountSortItems = 8;
constexpr int kCountSortCapacity = kCountThreads * kCountSortItems;  // chosen pages, at most

using CountScan = cub::BlockScan<int32_t, kCountThreads>;
using CountSort = cub::BlockRadixSort<uint32_t, kCountThreads, kCountSortItems, int32_t>;

// The 16 kept-chunk counts (bytes) of round r owned by this thread, from shared memory.
__device__ __forceinline__ void round_counts(const uint8_t* counts, int64_t round, int tid,
                                             int (&c)[kCountItems]) {
  const uint4 w = reinterpret_cast<const uint4*>(counts)[round * kCountThreads + tid];
  const uint32_t words[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
  for (int i = 0; i < kCountItems; ++i) c[i] = static_cast<int>((words[i / 4] >> (8 * (i % 4))) & 0xFFu);
}

// Page scores that are kept-chunk counts (integers 1..page_chunks) need no 32-bit radix select:
// a histogram of the counts gives the count c* of the kmax-th best page; one packed scan per round
// compacts, in page order, every page with count > c* and the first `need` pages with count c*;
// a stable block radix sort on (page_chunks - count), 7 bits, puts them best first with ties in
// page order.
__global__ void __launch_bounds__(kCountThreads, 1) select_counts_kernel(SelectPlan p) {
  __shared__ typename CountScan::TempStorage scan;
  __shared__ int32_t hist[kMaxCountValue + 1];  // pages per count value
  __shared__ int32_t plan_k;                    // pages chosen
  __shared__ int32_t plan_cut;                  // count of the worst chosen page (c*)
  __shared__ int32_t plan_need;                 // pages with count c* that are chosen
  __shared__ union {
    typename CountSort::TempStorage sort;
    struct {
      uint32_t keys[kCountSortCapacity];
      int32_t ids[kCountSortCapacity];
    } chosen;
  } u;
  extern __shared__ uint4 count_smem[];
  uint8_t* counts = reinterpret_cast<uint8_t*>(count_smem);  // [rounds * kCountRound]
  const int tid = static_cast<int>(threadIdx.x);
  write_forced(p, tid, kCountThreads);
  for (int v = tid; v <= kMaxCountValue; v += kCountThreads) hist[v] = 0;
  const int64_t rounds = (p.span + kCountRound - 1) / kCountRound;
#pragma unroll 8
  for (int64_t i = tid; i < rounds * kCountRound; i += kCountThreads) {
    const int64_t page = p.first + i;
    counts[i] = static_cast<uint8_t>(
        i < p.span && page < p.stat_pages ? min(max(p.kept[page], 0), p.page_chunks) : 0);
  }
  __syncthreads();

  int c[kCountItems];
  for (int64_t r = 0; r < rounds; ++r) {
    round_counts(counts, r, tid, c);
#pragma unroll
    for (int i = 0; i < kCountItems; ++i) {
      if (c[i] > 0) atomicAdd(&hist[c[i]], 1);
    }
  }
  __syncthreads();
  if (tid == 0) {
    int32_t candidates = 0;
    for (int v = 1; v <= p.page_chunks; ++v) candidates += hist[v];
    const int32_t k = static_cast<int32_t>(min(p.budget, int64_t{candidates}));
    int32_t above = 0;  // pages with a count above v
    int v = p.page_chunks;
    for (; v > 1 && above + hist[v] < k; --v) above += hist[v];
    plan_k = k;
    plan_cut = v;
    plan_need = k - above;
  }
  __syncthreads();
  const int32_t k = plan_k;
  const int cut = plan_cut;
  const int32_t need = plan_need;
  if (k == 0) {
    if (tid == 0) *p.num_out = static_cast<int32_t>(p.forced_count);
    return;
  }

  int32_t above_total = 0;  // chosen pages with count > cut in earlier rounds
  int32_t cut_total = 0;    // pages with count == cut in earlier rounds
  for (int64_t r = 0; r < rounds; ++r) {
    round_counts(counts, r, tid, c);
    int32_t mine = 0;
#pragma unroll
    for (int i = 0; i < kCountItems; ++i) mine += c[i] > cut ? 1 : c[i] == cut ? 1 << 16 : 0;
    int32_t before;
    int32_t round;
    CountScan(scan).ExclusiveSum(mine, before, round);
    int32_t above_before = above_total + (before & 0xFFFF);
    int32_t cut_before = cut_total + (before >> 16);
#pragma unroll
    for (int i = 0; i < kCountItems; ++i) {
      const bool gt = c[i] > cut;
      const bool eq = c[i] == cut;
      if (gt || (eq && cut_before < need)) {
        const int32_t at = above_before + min(cut_before, need);
        u.chosen.keys[at] = static_cast<uint32_t>(p.page_chunks - c[i]);
        u.chosen.ids[at] = static_cast<int32_t>(r * kCountRound + int64_t{tid} * kCountItems + i);
      }
      above_before += gt ? 1 : 0;
      cut_before += eq ? 1 : 0;
    }
    above_total += round & 0xFFFF;
    cut_total += round >> 16;
    __syncthreads();  // the scan storage is reused
  }

  uint32_t keys[kCountSortItems];
  int32_t ids[kCountSortItems];
#pragma unroll
  for (int j = 0; j < kCountSortItems; ++j) {
    const int at = tid * kCountSortItems + j;
    keys[j] = at < k ? u.chosen.keys[at] : 0xFFu;
    ids[j] = at < k ? u.chosen.ids[at] : INT_MAX;
  }
  __syncthreads();
  CountSort(u.sort).Sort(keys, ids, 0, 8);  // stable: equal counts keep page order
#pragma unroll
  for (int j = 0; j < kCountSortItems; ++j) {
    const int at = tid * kCountSortItems + j;
    if (at < k) p.out[p.forced_count + at] = static_cast<int32_t>(p.first + ids[j]);
  }
  if (tid == 0) *p.num_out = static_cast<int32_t>(p.forced_count + k);
}

size_t count_smem_bytes(int64_t span) {
  return static_cast<size_t>((span + kCountRound - 1) / kCountRound * kCountRound);
}

// ---- kDeviceSort -------------------------------------------------------------------------------

__global__ void page_keys_kernel(SelectPlan p, uint32_t* keys, int32_t* ids) {
  const int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
  if (i >= p.span) return;
  keys[i] = page_key(p, p.first + i);
  ids[i] = static_cast<int32_t>(i);
}

// Walks the sorted candidates best first, as the host's loop over rank_best does: a page that is
// not resident is taken only while fewer than max_recall of them were taken; stop at the budget.
__global__ void __launch_bounds__(kSelectThreads, 1) take_sorted_kernel(SelectPlan p,
                                                                         const uint32_t* keys,
                                                                         const int32_t* ids) {
  __shared__ typename BlockScan::TempStorage scan;
  const int tid = static_cast<int>(threadIdx.x);
  write_forced(p, tid, kSelectThreads);
  int64_t taken_total = 0;
  int64_t recall_total = 0;
  for (int64_t base = 0; base < p.span && taken_total < p.budget; base += kSelectThreads) {
    const int64_t i = base + tid;
    const bool candidate = i < p.span && keys[i] != kUnrankedKey;
    const int64_t page = candidate ? p.first + ids[i] : -1;
    bool eligible = candidate;
    int32_t recall_round = 0;
    if (p.max_recall > 0) {
      const bool recall = candidate && !is_resident(p, page);
      int32_t recall_before;
      BlockScan(scan).ExclusiveSum(recall ? 1 : 0, recall_before, recall_round);
      __syncthreads();
      eligible = candidate && (!recall || recall_total + recall_before < p.max_recall);
    }
    int32_t before;
    int32_t round;
    BlockScan(scan).ExclusiveSum(eligible ? 1 : 0, before, round);
    __syncthreads();
    const int64_t at = taken_total + before;
    if (eligible && at < p.budget) p.out[p.forced_count + at] = static_cast<int32_t>(page);
    taken_total += round;
    recall_total += recall_round;
    if (__syncthreads_count(candidate ? 1 : 0) < kSelectThreads) break;  // candidates sort first
  }
  if (tid == 0) *p.num_out = static_cast<int32_t>(p.forced_count + min(taken_total, p.budget));
}

int64_t max_block_span(const DeviceInfo& info) {
  return std::max<int64_t>(0, (int64_t{info.max_smem_optin} - int64_t{kBlockSmemBytes}) / 4);
}

}  // namespace
}  // namespace detail

int64_t max_selected_pages(const PolicyConfig& policy, Chunker chunker, int64_t num_tokens,
                           int64_t first_uncommitted_page) noexcept {
  const LookaheadPolicy host(policy, chunker);
  const ForcedPages f = host.forced(num_tokens, first_uncommitted_page);
  if (host.fits(num_tokens)) return f.num_pages;
  return std::max<int64_t>(policy.kmax_pages, f.count());
}

CudaError select_pages(void* d_workspace, size_t& workspace_bytes, const PolicyConfig& policy,
                       Chunker chunker, const PageSelectionInput& input, int32_t* d_pages,
                       int32_t* d_num_pages, Stream stream) noexcept {
  using namespace detail;
  // Threshold and top-k selection differ only in how the page statistics were made
  // (compute_page_stats / top_k_page_stats); top-p has no device statistics.
  if (policy.selection == Selection::kTopP) return CudaError::kNotSupported;
  if (policy.page_score != PageScore::kKeptChunks && policy.page_score != PageScore::kScoreMass) {
    return CudaError::kInvalidValue;
  }
  if (input.num_tokens < 0 || input.num_scored_chunks < 0 || input.num_resident < 0 ||
      chunker.chunk_tokens() < 1 || chunker.page_chunks() < 1) {
    return CudaError::kInvalidValue;
  }
  const LookaheadPolicy host(policy, chunker);
  const bool fits = host.fits(input.num_tokens);
  const ForcedPages f = host.forced(input.num_tokens, input.first_uncommitted_page);
  SelectPlan plan;
  plan.num_pages = f.num_pages;
  plan.sink_count = std::min(f.sink_end, f.suffix_begin);
  plan.suffix_begin = f.suffix_begin;
  plan.forced_count = f.count();
  plan.first = f.sink_end;
  plan.span = std::max<int64_t>(0, f.suffix_begin - f.sink_end);
  plan.budget = std::max<int64_t>(0, policy.kmax_pages - f.count());
  plan.stat_pages = num_stat_pages(input.num_scored_chunks, chunker.page_chunks());
  plan.max_recall = policy.max_recall_pages;
  plan.page_chunks = chunker.page_chunks();
  plan.score_mass = policy.page_score == PageScore::kScoreMass;
  plan.hysteresis = policy.hysteresis;
  plan.kept = input.d_kept;
  plan.mass = input.d_mass;
  plan.resident = input.d_resident_pages;
  plan.num_resident = input.num_resident;
  plan.out = d_pages;
  plan.num_out = d_num_pages;

  DeviceInfo info;
  LSA_CUDA_TRY(current_device_info(info));
  const bool block_applies = policy.max_recall_pages == 0 && plan.budget <= kSortCapacity &&
                             plan.span <= max_block_span(info);
  const bool counts_apply =
      !plan.score_mass && policy.hysteresis == 0.0f && policy.max_recall_pages == 0 &&
      chunker.page_chunks() <= kMaxCountValue && plan.budget <= kCountSortCapacity &&
      count_smem_bytes(plan.span) + 40 * 1024 <= static_cast<size_t>(info.max_smem_optin);
  SelectionPath path = input.path;
  if (path == SelectionPath::kAuto) {
    path = counts_apply    ? SelectionPath::kCountSort
           : block_applies ? SelectionPath::kBlock
                           : SelectionPath::kDeviceSort;
  }
  if ((path == SelectionPath::kBlock && !block_applies) ||
      (path == SelectionPath::kCountSort && !counts_apply)) {
    return CudaError::kNotSupported;
  }
  const bool ranks = !fits && plan.span > 0 && plan.budget > 0;

  WorkspaceCarver carver(d_workspace);
  uint32_t* keys_in = nullptr;
  uint32_t* keys_out = nullptr;
  int32_t* ids_in = nullptr;
  int32_t* ids_out = nullptr;
  void* sort_temp = nullptr;
  size_t sort_temp_bytes = 0;
  if (path == SelectionPath::kDeviceSort && ranks) {
    const auto n = static_cast<size_t>(plan.span);
    keys_in = carver.take<uint32_t>(n);
    keys_out = carver.take<uint32_t>(n);
    ids_in = carver.take<int32_t>(n);
    ids_out = carver.take<int32_t>(n);
    LSA_CUDA_TRY(cub::DeviceRadixSort::SortPairs(nullptr, sort_temp_bytes, keys_in, keys_out, ids_in,
                                                 ids_out, plan.span, 0, 32, stream));
    sort_temp = carver.take<std::byte>(sort_temp_bytes);
  }
  if (d_workspace == nullptr) {
    workspace_bytes = std::max<size_t>(carver.used(), 1);  // never 0: a non-null pointer runs
    return CudaError::kSuccess;
  }
  if (workspace_bytes < carver.used() || d_pages == nullptr || d_num_pages == nullptr) {
    return CudaError::kInvalidValue;
  }
  if (fits) {
    const int64_t n = std::max<int64_t>(f.num_pages, 1);
    all_pages_kernel<<<static_cast<unsigned>((n + kKeyThreads - 1) / kKeyThreads), kKeyThreads, 0,
                       stream>>>(f.num_pages, d_pages, d_num_pages);
    return launch_error();
  }
  if (ranks && ((plan.stat_pages > plan.first && input.d_kept == nullptr) ||
                (plan.score_mass && plan.stat_pages > plan.first && input.d_mass == nullptr) ||
                ((policy.hysteresis > 0.0f || policy.max_recall_pages > 0) &&
                 input.num_resident > 0 && input.d_resident_pages == nullptr))) {
    return CudaError::kInvalidValue;
  }
  if (path == SelectionPath::kCountSort && ranks) {
    const size_t smem = count_smem_bytes(plan.span);
    LSA_CUDA_TRY(cudaFuncSetAttribute(select_counts_kernel,
                                      cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)));
    select_counts_kernel<<<1, kCountThreads, smem, stream>>>(plan);
    return launch_error();
  }
  if (path == SelectionPath::kBlock || !ranks) {
    const int64_t span = ranks ? plan.span : 0;
    if (!ranks) plan.span = 0;
    const size_t smem = kBlockSmemBytes + static_cast<size_t>(span) * 4;
    LSA_CUDA_TRY(cudaFuncSetAttribute(select_block_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)));
    select_block_kernel<<<1, kSelectThreads, smem, stream>>>(plan);
    return launch_error();
  }
  page_keys_kernel<<<static_cast<unsigned>((plan.span + kKeyThreads - 1) / kKeyThreads), kKeyThreads,
                     0, stream>>>(plan, keys_in, ids_in);
  LSA_CUDA_TRY(cudaGetLastError());
  LSA_CUDA_TRY(cub::DeviceRadixSort::SortPairs(sort_temp, sort_temp_bytes, keys_in, keys_out, ids_in,
                                               ids_out, plan.span, 0, 32, stream));
  take_sorted_kernel<<<1, kSelectThreads, 0, stream>>>(plan, keys_out, ids_out);
  return launch_error();
}

}  // namespace lsa::cuda
