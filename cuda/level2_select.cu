// Level-2 selection on the device: one thread block of 1024 threads per sequence.
//
// The candidates of a sequence are the chunks of its resident pages (up to thousands of pages of
// 16 chunks), read from the logits in global memory. A block finds the k-th best rank key by a
// radix select over four 8-bit digits (four passes over the candidates), then gathers the chosen
// chunks in chunk order with one more pass and puts them best first with a stable block radix sort
// (ties keep chunk order). The first pass also keeps the keys of the leading candidates in shared
// memory (as many as the device allows, 40K on sm_90), so later passes read only the rest again
// from global memory (by then in L2).
#include <cuda_runtime.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cub/block/block_radix_sort.cuh>
#include <cub/block/block_scan.cuh>

#include "detail/batch_rows.cuh"
#include "detail/common.cuh"
#include "lsa/cuda/level2.hpp"
#include "lsa/status.hpp"

namespace lsa::cuda {
namespace detail {
namespace {

constexpr int kLevel2Threads = 1024;
constexpr int kRoundItems = 8;  // contiguous candidates per thread per pass round
constexpr int64_t kRoundSize = int64_t{kLevel2Threads} * kRoundItems;
constexpr int kDigitBits = 8;
constexpr int kBins = 1 << kDigitBits;
constexpr int kLevels = 32 / kDigitBits;
constexpr int32_t kStatusOk = static_cast<int32_t>(Status::kOk);
constexpr int32_t kStatusInvalid = static_cast<int32_t>(Status::kInvalidArgument);
static_assert(kBins <= kLevel2Threads && kRoundSize < (1 << 16), "one bin per thread; packed scan");

struct Level2Args {
  DeviceBatchTable table;
  const float* logits;
  int64_t logits_stride;
  int32_t chunk_tokens;
  int32_t page_chunks;
  int32_t k;
  int32_t* out;
  int32_t* status;
  int64_t
      cached;  // leading candidates whose keys the shared cache holds (a multiple of kRoundSize)
};

// One sequence's candidates: number i is chunk i % page_chunks of resident page i / page_chunks;
// it counts only below num_chunks and with a logit that is not NaN.
struct Candidates {
  const float* logits;
  const int32_t* pages;
  const int32_t* slots;
  int64_t count;  // resident pages * page_chunks
  int64_t num_chunks;
  int32_t page_chunks;

  // Rank keys of candidates [first, first + kRoundItems); kUnrankedKey where there is none.
  __device__ void load(int64_t first, uint32_t (&keys)[kRoundItems]) const {
    int64_t j = first / page_chunks;
    int32_t in_page = static_cast<int32_t>(first - j * page_chunks);
#pragma unroll
    for (int e = 0; e < kRoundItems; ++e) {
      uint32_t key = kUnrankedKey;
      if (first + e < count) {
        const int64_t chunk = int64_t{__ldg(pages + j)} * page_chunks + in_page;
        if (chunk < num_chunks) {
          const float logit = __ldg(logits + chunk);
          if (!isnan(logit)) key = rank_key(logit);
        }
      }
      keys[e] = key;
      if (++in_page == page_chunks) {
        in_page = 0;
        ++j;
      }
    }
  }

  // Reserve position of candidate i.
  __device__ int32_t position(int64_t i) const {
    const int64_t j = i / page_chunks;
    return slots[pages[j]] * page_chunks + static_cast<int32_t>(i - j * page_chunks);
  }
};

template <int kItems>
struct Level2Smem {
  using Scan = cub::BlockScan<int32_t, kLevel2Threads>;
  using Sort = cub::BlockRadixSort<uint32_t, kLevel2Threads, kItems, int32_t>;
  typename Scan::TempStorage scan;
  int32_t hist[kBins];
  int32_t digit;
  int32_t need;
  union {
    typename Sort::TempStorage sort;
    struct {
      uint32_t keys[kLevel2Threads * kItems];
      int32_t positions[kLevel2Threads * kItems];
    } chosen;
  } u;
};

// This thread's keys of the pass round starting at `base`: from the shared cache when the round is
// cached (the first pass, `fill`, writes them there), else from global memory.
__device__ __forceinline__ void round_keys(const Candidates& c, uint32_t* cache, int64_t cached,
                                           int64_t base, bool fill, uint32_t (&keys)[kRoundItems]) {
  const int64_t first = base + int64_t{threadIdx.x} * kRoundItems;
  uint4* mine = reinterpret_cast<uint4*>(cache + first);
  if (base < cached && !fill) {
    const uint4 lo = mine[0];
    const uint4 hi = mine[1];
    keys[0] = lo.x, keys[1] = lo.y, keys[2] = lo.z, keys[3] = lo.w;
    keys[4] = hi.x, keys[5] = hi.y, keys[6] = hi.z, keys[7] = hi.w;
    return;
  }
  c.load(first, keys);
  if (base < cached) {
    mine[0] = make_uint4(keys[0], keys[1], keys[2], keys[3]);
    mine[1] = make_uint4(keys[4], keys[5], keys[6], keys[7]);
  }
}
static_assert(kRoundItems == 8, "round_keys moves two uint4 per thread");

// Sequence b's candidates, and whether its resident set can be read (the rules of
// lsa::detail::level2_row_valid); every thread of the block gets the same answer.
__device__ bool read_row(const Level2Args& a, int b, Candidates& c) {
  const DeviceBatchTable& t = a.table;
  const int32_t begin = t.d_resident_offsets[b];
  const int32_t end = t.d_resident_offsets[b + 1];
  const int64_t num_tokens = t.d_num_tokens[b];
  const int64_t page_tokens = int64_t{a.chunk_tokens} * a.page_chunks;
  bool bad = begin < 0 || end < begin || num_tokens < 0;
  const int64_t num_chunks = bad ? 0 : (num_tokens + a.chunk_tokens - 1) / a.chunk_tokens;
  const int64_t num_pages = bad ? 0 : (num_tokens + page_tokens - 1) / page_tokens;
  bad = bad || num_chunks > a.logits_stride;
  const int32_t count = bad ? 0 : end - begin;
  const int32_t* pages = t.d_resident_pages + (bad ? 0 : begin);
  const int32_t* slots = t.d_page_slots + int64_t{b} * t.page_slots_stride;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += kLevel2Threads) {
    const int32_t p = pages[i];
    bool ok = p >= 0 && p < num_pages && p < t.page_slots_stride && (i == 0 || pages[i - 1] < p);
    if (ok) {
      const int32_t slot = slots[p];
      ok = slot >= 0 && int64_t{slot} * a.page_chunks + a.page_chunks - 1 <= INT32_MAX;
    }
    bad = bad || !ok;
  }
  c = {a.logits + int64_t{b} * a.logits_stride, pages,      slots,
       int64_t{count} * a.page_chunks,          num_chunks, a.page_chunks};
  return __syncthreads_or(bad ? 1 : 0) == 0;
}

// Writes the k best candidates' positions best first, then -1, to out[0, k).
template <int kItems>
__device__ void select_row(Level2Smem<kItems>& sm, uint32_t* cache, int64_t cached,
                           const Candidates& c, int32_t k, int32_t* out) {
  using Scan = typename Level2Smem<kItems>::Scan;
  using Sort = typename Level2Smem<kItems>::Sort;
  const int tid = static_cast<int>(threadIdx.x);

  // The chosen set: every candidate key below `below`, then the first `taken` candidates (in chunk
  // order) whose key is `equal`.
  uint64_t below = uint64_t{1} << 32;
  uint32_t equal = 0;
  int32_t taken = 0;
  int32_t num_chosen = k;
  uint32_t prefix = 0;
  int32_t need = k;
  for (int level = 0; level < kLevels; ++level) {
    const int shift = 32 - kDigitBits * (level + 1);
    const uint32_t high_mask = level == 0 ? 0u : ~0u << (shift + kDigitBits);
    if (tid < kBins) sm.hist[tid] = 0;
    __syncthreads();
    for (int64_t base = 0; base < c.count; base += kRoundSize) {
      uint32_t keys[kRoundItems];
      round_keys(c, cache, cached, base, level == 0, keys);
#pragma unroll
      for (int e = 0; e < kRoundItems; ++e) {
        const bool counted = keys[e] != kUnrankedKey && (keys[e] & high_mask) == prefix;
        warp_histogram_add(sm.hist, counted, (keys[e] >> shift) & (kBins - 1));
      }
    }
    __syncthreads();
    const int32_t h = tid < kBins ? sm.hist[tid] : 0;
    int32_t before;
    int32_t total;
    Scan(sm.scan).ExclusiveSum(h, before, total);
    if (level == 0 && total <= k) {  // every candidate is chosen
      num_chosen = total;
      break;
    }
    if (tid < kBins && before < need && need <= before + h) {
      sm.digit = tid;
      sm.need = need - before;
    }
    __syncthreads();
    const auto digit = static_cast<uint32_t>(sm.digit);
    const int32_t bucket = sm.hist[digit];
    need = sm.need;
    prefix |= digit << shift;
    __syncthreads();
    if (need == bucket) {  // the whole bucket is chosen
      below = uint64_t{prefix} + (uint64_t{1} << shift);
      break;
    }
    if (level == kLevels - 1) {
      below = prefix;
      equal = prefix;
      taken = need;
    }
  }
  __syncthreads();

  // Gather in chunk order: one packed scan per round counts keys below the cut (low 16 bits) and
  // keys equal to it (high 16 bits).
  int32_t below_total = 0;
  int32_t equal_total = 0;
  for (int64_t base = 0; base < c.count; base += kRoundSize) {
    uint32_t keys[kRoundItems];
    round_keys(c, cache, cached, base, false, keys);
    int32_t mine = 0;
#pragma unroll
    for (int e = 0; e < kRoundItems; ++e) {
      const bool lt = keys[e] != kUnrankedKey && keys[e] < below;
      const bool eq = taken > 0 && keys[e] == equal;
      mine += lt ? 1 : eq ? 1 << 16 : 0;
    }
    int32_t before;
    int32_t round;
    Scan(sm.scan).ExclusiveSum(mine, before, round);
    int32_t below_before = below_total + (before & 0xFFFF);
    int32_t equal_before = equal_total + (before >> 16);
#pragma unroll
    for (int e = 0; e < kRoundItems; ++e) {
      const bool lt = keys[e] != kUnrankedKey && keys[e] < below;
      const bool eq = taken > 0 && keys[e] == equal;
      if (lt || (eq && equal_before < taken)) {
        const int32_t at = below_before + min(equal_before, taken);
        sm.u.chosen.keys[at] = keys[e];
        sm.u.chosen.positions[at] = c.position(base + int64_t{tid} * kRoundItems + e);
      }
      below_before += lt ? 1 : 0;
      equal_before += eq ? 1 : 0;
    }
    below_total += round & 0xFFFF;
    equal_total += round >> 16;
    __syncthreads();  // the scan storage is reused
  }

  uint32_t keys[kItems];
  int32_t positions[kItems];
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const int at = tid * kItems + j;
    keys[j] = at < num_chosen ? sm.u.chosen.keys[at] : kUnrankedKey;
    positions[j] = at < num_chosen ? sm.u.chosen.positions[at] : -1;
  }
  __syncthreads();
  Sort(sm.u.sort).SortBlockedToStriped(keys, positions);  // stable: ties keep chunk order
#pragma unroll
  for (int j = 0; j < kItems; ++j) {
    const int at = j * kLevel2Threads + tid;
    if (at < k) out[at] = positions[j];
  }
}

template <int kItems>
__global__ void __launch_bounds__(kLevel2Threads, 1) level2_select_kernel(Level2Args a) {
  __shared__ Level2Smem<kItems> sm;
  extern __shared__ uint4 level2_cache[];
  const int tid = static_cast<int>(threadIdx.x);
  const int b = static_cast<int>(blockIdx.x);
  bool invalid = false;
  if (b < batch_rows(a.table)) {  // an empty batch launches one block, which only writes the status
    int32_t* out = a.out + int64_t{b} * a.k;
    Candidates c;
    invalid = !read_row(a, b, c);
    if (invalid) {
      for (int i = tid; i < a.k; i += kLevel2Threads) out[i] = -1;
    } else {
      select_row(sm, reinterpret_cast<uint32_t*>(level2_cache), a.cached, c, a.k, out);
    }
  }
  if (a.status == nullptr || tid != 0) return;
  if (invalid) {
    *a.status = kStatusInvalid;
  } else if (b == 0) {
    atomicCAS(a.status, -1, kStatusOk);  // an invalid row of another block may have written
  }
}

template <int kItems>
CudaError launch_level2(const Level2Args& args, unsigned blocks, Stream stream) noexcept {
  DeviceInfo info;
  LSA_CUDA_TRY(current_device_info(info));
  cudaFuncAttributes attributes{};
  LSA_CUDA_TRY(cudaFuncGetAttributes(&attributes, level2_select_kernel<kItems>));
  // The cache takes whole rounds of whatever shared memory the device leaves next to the rest.
  const int64_t room =
      int64_t{info.max_smem_optin} - static_cast<int64_t>(attributes.sharedSizeBytes);
  const int64_t cached = std::max<int64_t>(room, 0) / 4 / kRoundSize * kRoundSize;
  const auto cache_bytes = static_cast<int>(cached * 4);
  LSA_CUDA_TRY(cudaFuncSetAttribute(level2_select_kernel<kItems>,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, cache_bytes));
  Level2Args a = args;
  a.cached = cached;
  level2_select_kernel<kItems>
      <<<blocks, kLevel2Threads, static_cast<size_t>(cache_bytes), stream>>>(a);
  return launch_error();
}

}  // namespace
}  // namespace detail

CudaError level2_select(const DeviceBatchTable& table, const float* d_logits, int64_t logits_stride,
                        Chunker chunker, int32_t k, int32_t* d_out, int32_t* d_status,
                        Stream stream) noexcept {
  using namespace detail;
  if (k < 1 || table.num_batch < 0 || logits_stride < 0 || table.page_slots_stride < 0 ||
      chunker.chunk_tokens() < 1 || chunker.page_chunks() < 1) {
    return CudaError::kInvalidValue;
  }
  if (table.num_batch > 0 &&
      (table.d_resident_offsets == nullptr || table.d_resident_pages == nullptr ||
       table.d_page_slots == nullptr || table.d_num_tokens == nullptr || d_logits == nullptr ||
       d_out == nullptr)) {
    return CudaError::kInvalidValue;
  }
  if (k > kLevel2MaxK) return CudaError::kNotSupported;
  if (d_status != nullptr) {
    // Unknown (-1) until a block writes, so that an invalid row is never overwritten by kOk.
    LSA_CUDA_TRY(cudaMemsetAsync(d_status, 0xFF, sizeof(int32_t), stream));
  }
  const Level2Args args{
      table,    d_logits, logits_stride, chunker.chunk_tokens(), chunker.page_chunks(), k, d_out,
      d_status, 0};
  const auto blocks = static_cast<unsigned>(std::max(table.num_batch, 1));
  if (k <= kLevel2Threads) return launch_level2<1>(args, blocks, stream);
  if (k <= 2 * kLevel2Threads) return launch_level2<2>(args, blocks, stream);
  static_assert(kLevel2MaxK == 4 * kLevel2Threads, "the largest k is what the 4-item sort holds");
  return launch_level2<4>(args, blocks, stream);
}

}  // namespace lsa::cuda
