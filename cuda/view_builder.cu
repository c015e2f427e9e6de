// The per-step view (CSR, -1 padded slot lists, block table) written by one kernel.
//
// First a kernel checks every resident page of the batch (one block per sequence) and marks the
// status invalid when one is out of range. Then one block per sequence: every block checks the
// buffer sizes of the whole batch (a batch is at most a few hundred sequences, so this costs less
// than another launch) and reads the first kernel's verdict, so either all blocks write or none
// does; block b then finds its CSR offset by summing the counts of the sequences before it.
#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>

#include <cstdint>

#include "detail/batch_rows.cuh"
#include "detail/common.cuh"
#include "lsa/cuda/view_builder.hpp"
#include "lsa/status.hpp"

namespace lsa::cuda {
namespace detail {
namespace {

constexpr int kViewThreads = 256;

struct ViewArgs {
  DeviceBatchTable table;
  int64_t page_tokens;
  ViewBuffers view;
  int32_t* status;
  int32_t status_ok;
  int32_t status_too_small;
  int32_t status_invalid;
};

struct Check {
  int64_t nnz;     // resident pages of the whole batch
  int64_t before;  // resident pages of the sequences before this block's
  int32_t bad;     // 1: a buffer is too small
};

struct CheckSum {
  __device__ Check operator()(const Check& a, const Check& b) const {
    return {a.nnz + b.nnz, a.before + b.before, a.bad | b.bad};
  }
};

// Row b's resident pages: offsets that do not decrease, pages in [0, num_pages) and inside the
// page_slots row. A bad row sets *status to `invalid` (every writer writes the same value).
__global__ void __launch_bounds__(kViewThreads)
    check_rows_kernel(DeviceBatchTable t, int64_t page_tokens, int32_t* status, int32_t invalid) {
  const int b = static_cast<int>(blockIdx.x);
  if (b >= batch_rows(t)) return;
  const int32_t begin = t.d_resident_offsets[b];
  const int32_t count = t.d_resident_offsets[b + 1] - begin;
  if (count < 0) {
    if (threadIdx.x == 0) *status = invalid;
    return;
  }
  const int64_t num_pages = (t.d_num_tokens[b] + page_tokens - 1) / page_tokens;
  for (int i = static_cast<int>(threadIdx.x); i < count; i += kViewThreads) {
    const int32_t p = t.d_resident_pages[begin + i];
    if (p < 0 || p >= num_pages || p >= t.page_slots_stride) *status = invalid;
  }
}

__global__ void __launch_bounds__(kViewThreads) build_view_kernel(ViewArgs a) {
  using Reduce = cub::BlockReduce<Check, kViewThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  __shared__ Check total;
  const DeviceBatchTable& t = a.table;
  const ViewBuffers& v = a.view;
  const int tid = static_cast<int>(threadIdx.x);
  const int b = static_cast<int>(blockIdx.x);
  const bool csr = v.indptr != nullptr;
  const int32_t rows = batch_rows(t);
  // check_rows_kernel's verdict, read before any block of this kernel writes the status.
  const bool invalid = *a.status == a.status_invalid;

  Check mine{0, 0, 0};
  for (int r = tid; r < rows; r += kViewThreads) {
    const int64_t count = t.d_resident_offsets[r + 1] - t.d_resident_offsets[r];
    const int64_t pages = (t.d_num_tokens[r] + a.page_tokens - 1) / a.page_tokens;
    mine.nnz += count;
    mine.before += r < b ? count : 0;
    if (v.block_table != nullptr && pages > v.block_table_width) mine.bad = 1;
    if (v.slot_lists != nullptr && count > v.slot_list_width) mine.bad = 1;
  }
  const Check sum = Reduce(reduce).Reduce(mine, CheckSum());
  if (tid == 0) {
    total = sum;
    if (csr && sum.nnz > v.indices_capacity) total.bad = 1;
  }
  __syncthreads();
  if (total.bad != 0) {
    if (b == 0 && tid == 0) *a.status = a.status_too_small;
    return;
  }
  if (invalid) return;

  if (b < rows) {
    const int32_t begin = t.d_resident_offsets[b];
    const int32_t count = t.d_resident_offsets[b + 1] - begin;
    const int32_t* pages = t.d_resident_pages + begin;
    const int32_t* slots = t.d_page_slots + b * t.page_slots_stride;
    const int64_t num_tokens = t.d_num_tokens[b];
    const int64_t num_pages = (num_tokens + a.page_tokens - 1) / a.page_tokens;
    for (int i = tid; i < count; i += kViewThreads) {
      const int32_t slot = slots[pages[i]];  // in range: check_rows_kernel
      if (csr) v.indices[total.before + i] = slot;
      if (v.slot_lists != nullptr) v.slot_lists[int64_t{b} * v.slot_list_width + i] = slot;
    }
    if (v.slot_lists != nullptr) {
      for (int i = count + tid; i < v.slot_list_width; i += kViewThreads) {
        v.slot_lists[int64_t{b} * v.slot_list_width + i] = -1;
      }
    }
    if (v.block_table != nullptr) {
      int32_t* row = v.block_table + int64_t{b} * v.block_table_width;
      for (int i = tid; i < v.block_table_width; i += kViewThreads) row[i] = -1;
      __syncthreads();  // the -1 fill lands before the resident entries (same block)
      for (int i = tid; i < count; i += kViewThreads) row[pages[i]] = slots[pages[i]];
    }
    if (csr && tid == 0) {
      v.indptr[b] = static_cast<int32_t>(total.before);
      v.last_page_len[b] =
          num_tokens == 0 ? 0 : static_cast<int32_t>(num_tokens - (num_pages - 1) * a.page_tokens);
    }
  }
  if (csr) {
    const int64_t stride = int64_t{gridDim.x} * kViewThreads;
    for (int64_t i = total.nnz + int64_t{b} * kViewThreads + tid; i < v.indices_capacity; i += stride) {
      v.indices[i] = -1;
    }
    if (b == 0 && tid == 0) v.indptr[rows] = static_cast<int32_t>(total.nnz);
  }
  if (b == 0 && tid == 0) *a.status = a.status_ok;  // still -1: every block read it as such
}

__global__ void slot_mapping_kernel(DeviceBatchTable t, int64_t page_tokens, int64_t* out) {
  const int b = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (b >= batch_rows(t)) return;
  const int64_t n = t.d_num_tokens[b];
  if (n == 0) {
    out[b] = -1;
    return;
  }
  const int64_t page = (n - 1) / page_tokens;
  const int32_t slot = page < t.page_slots_stride ? t.d_page_slots[b * t.page_slots_stride + page] : -1;
  out[b] = slot < 0 ? -1 : int64_t{slot} * page_tokens + (n - 1) % page_tokens;
}

}  // namespace
}  // namespace detail

CudaError write_slot_mapping(const DeviceBatchTable& table, Chunker chunker, int64_t* d_slot_mapping,
                             Stream stream) noexcept {
  if (table.num_batch < 0 || (table.num_batch > 0 && (d_slot_mapping == nullptr ||
                                                      table.d_num_tokens == nullptr ||
                                                      table.d_page_slots == nullptr))) {
    return CudaError::kInvalidValue;
  }
  if (table.num_batch == 0) return CudaError::kSuccess;
  constexpr int kThreads = 128;
  detail::slot_mapping_kernel<<<static_cast<unsigned>((table.num_batch + kThreads - 1) / kThreads),
                                kThreads, 0, stream>>>(table, chunker.page_tokens(), d_slot_mapping);
  return detail::launch_error();
}

CudaError build_view(const DeviceBatchTable& table, Chunker chunker, const ViewBuffers& view,
                     int32_t* d_status, Stream stream) noexcept {
  using namespace detail;
  const bool any_csr = view.indptr != nullptr || view.indices != nullptr || view.last_page_len != nullptr;
  const bool csr = view.indptr != nullptr && view.indices != nullptr && view.last_page_len != nullptr;
  if ((any_csr && !csr) || d_status == nullptr || table.num_batch < 0 || chunker.chunk_tokens() < 1 ||
      chunker.page_chunks() < 1 || view.indices_capacity < 0 || view.slot_list_width < 0 ||
      view.block_table_width < 0) {
    return CudaError::kInvalidValue;
  }
  if (table.num_batch > 0 &&
      (table.d_resident_offsets == nullptr || table.d_num_tokens == nullptr ||
       table.d_resident_pages == nullptr || table.d_page_slots == nullptr)) {
    return CudaError::kInvalidValue;
  }
  ViewArgs args{table,
                chunker.page_tokens(),
                view,
                d_status,
                static_cast<int32_t>(Status::kOk),
                static_cast<int32_t>(Status::kBufferTooSmall),
                static_cast<int32_t>(Status::kInvalidArgument)};
  // The status starts unknown (-1); the checks mark it invalid, the writes then read it.
  LSA_CUDA_TRY(cudaMemsetAsync(d_status, 0xFF, sizeof(int32_t), stream));
  if (table.num_batch > 0) {
    check_rows_kernel<<<static_cast<unsigned>(table.num_batch), kViewThreads, 0, stream>>>(
        table, chunker.page_tokens(), d_status, args.status_invalid);
    if (const CudaError e = launch_error(); e != CudaError::kSuccess) return e;
  }
  const int blocks = table.num_batch > 0 ? table.num_batch : 1;
  build_view_kernel<<<static_cast<unsigned>(blocks), kViewThreads, 0, stream>>>(args);
  return launch_error();
}

}  // namespace lsa::cuda
