// DevicePageTable: pinned staging copies, device tables, and the kernel that moves one to the
// other.
#include <cuda_runtime.h>

#include <cub/block/block_reduce.cuh>
#include <string>

#include "detail/common.cuh"
#include "detail/device_guard.cuh"
#include "lsa/cuda/device_page_table.hpp"
#include "lsa/error.hpp"

namespace lsa::cuda {
namespace {

constexpr int kScatterThreads = 256;

// Byte offsets of one parity's arrays (each 256-byte aligned). Staging: num_batch, num_tokens,
// counts [max_batch], pages and slots [max_batch][max_resident]. Device table: num_batch,
// num_tokens, offsets [max_batch + 1], packed pages [max_batch * max_resident], page_slots
// [max_batch][max_pages].
struct Layout {
  size_t num_batch, num_tokens, counts_or_offsets, pages, slots, bytes;
};

class Carver {
 public:
  size_t take(size_t bytes) {
    const size_t here = at_;
    at_ += detail::align_up(bytes);
    return here;
  }
  size_t used() const { return at_; }

 private:
  size_t at_ = 0;
};

Layout staging_layout(int64_t max_batch, int64_t max_resident) {
  Carver c;
  Layout l{};
  l.num_batch = c.take(sizeof(int32_t));
  l.num_tokens = c.take(sizeof(int64_t) * max_batch);
  l.counts_or_offsets = c.take(sizeof(int32_t) * max_batch);
  l.pages = c.take(sizeof(int32_t) * max_batch * max_resident);
  l.slots = c.take(sizeof(int32_t) * max_batch * max_resident);
  l.bytes = c.used();
  return l;
}

Layout table_layout(int64_t max_batch, int64_t max_resident, int64_t max_pages) {
  Carver c;
  Layout l{};
  l.num_batch = c.take(sizeof(int32_t));  // kernels that read the table follow it (d_num_batch)
  l.num_tokens = c.take(sizeof(int64_t) * max_batch);
  l.counts_or_offsets = c.take(sizeof(int32_t) * (max_batch + 1));
  l.pages = c.take(sizeof(int32_t) * max_batch * max_resident);
  l.slots = c.take(sizeof(int32_t) * max_batch * max_pages);
  l.bytes = c.used();
  return l;
}

struct ScatterArgs {
  const std::byte* staging;  // mapped pinned memory
  std::byte* table;
  Layout staging_layout;
  Layout table_layout;
  int64_t max_resident;
  int64_t max_pages;
};

// Block b packs row b: its offset is the sum of the counts before it (read by all threads at
// once: each read crosses the bus), then it copies the row's length and resident pages and
// scatters their slots into its page_slots row; entries of pages that are not resident are left as
// they were (no kernel reads them).
__global__ void __launch_bounds__(kScatterThreads) scatter_kernel(ScatterArgs a) {
  using Reduce = cub::BlockReduce<int64_t, kScatterThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  __shared__ int64_t row_begin;
  const auto* s = a.staging;
  const int32_t num_batch = *reinterpret_cast<const int32_t*>(s + a.staging_layout.num_batch);
  const int b = static_cast<int>(blockIdx.x);
  if (b == 0 && threadIdx.x == 0) {
    *reinterpret_cast<int32_t*>(a.table + a.table_layout.num_batch) = num_batch;
  }
  if (b >= num_batch) return;
  const auto* counts = reinterpret_cast<const int32_t*>(s + a.staging_layout.counts_or_offsets);
  int64_t before = 0;
  for (int r = static_cast<int>(threadIdx.x); r < b; r += kScatterThreads) before += counts[r];
  before = Reduce(reduce).Sum(before);
  if (threadIdx.x == 0) row_begin = before;
  __syncthreads();
  const int64_t begin = row_begin;
  const int32_t count = counts[b];
  const auto* s_pages =
      reinterpret_cast<const int32_t*>(s + a.staging_layout.pages) + b * a.max_resident;
  const auto* s_slots =
      reinterpret_cast<const int32_t*>(s + a.staging_layout.slots) + b * a.max_resident;
  auto* t_tokens = reinterpret_cast<int64_t*>(a.table + a.table_layout.num_tokens);
  auto* t_offsets = reinterpret_cast<int32_t*>(a.table + a.table_layout.counts_or_offsets);
  auto* t_pages = reinterpret_cast<int32_t*>(a.table + a.table_layout.pages) + begin;
  int32_t* t_row = reinterpret_cast<int32_t*>(a.table + a.table_layout.slots) + b * a.max_pages;
  if (threadIdx.x == 0) {
    t_tokens[b] = reinterpret_cast<const int64_t*>(s + a.staging_layout.num_tokens)[b];
    t_offsets[b] = static_cast<int32_t>(begin);
    if (b == num_batch - 1) t_offsets[b + 1] = static_cast<int32_t>(begin + count);
  }
  for (int32_t i = static_cast<int32_t>(threadIdx.x); i < count; i += kScatterThreads) {
    const int32_t p = s_pages[i];
    t_pages[i] = p;
    if (p >= 0 && p < a.max_pages) t_row[p] = s_slots[i];  // write() checked; a guard costs nothing
  }
}

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(std::string("DevicePageTable: ") + what + " failed: " + cudaGetErrorString(e));
  }
}

}  // namespace

DevicePageTable::DevicePageTable(int32_t max_batch, int32_t max_resident, int32_t max_pages,
                                 int device)
    : max_batch_(max_batch), max_resident_(max_resident), max_pages_(max_pages), device_(device) {
  if (max_batch < 1 || max_resident < 1 || max_pages < 1) {
    throw Error("DevicePageTable: max_batch, max_resident and max_pages must be >= 1, got " +
                std::to_string(max_batch) + ", " + std::to_string(max_resident) + ", " +
                std::to_string(max_pages));
  }
  staging_bytes_ = staging_layout(max_batch, max_resident).bytes;
  table_bytes_ = table_layout(max_batch, max_resident, max_pages).bytes;
  int previous = 0;
  (void)cudaGetDevice(&previous);
  try {
    check(cudaSetDevice(device_), "cudaSetDevice");
    void* pinned = nullptr;
    check(cudaHostAlloc(&pinned, 2 * staging_bytes_, cudaHostAllocMapped | cudaHostAllocPortable),
          "cudaHostAlloc of the staging buffers");
    h_staging_ = static_cast<std::byte*>(pinned);
    void* tables = nullptr;
    check(cudaMalloc(&tables, 2 * table_bytes_), "cudaMalloc of the tables");
    d_tables_ = static_cast<std::byte*>(tables);
    check(cudaMemset(d_tables_, 0xFF, 2 * table_bytes_), "cudaMemset of the tables");
    for (CUevent_st*& e : uploaded_)
      check(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event creation");
    for (int p = 0; p < 2; ++p) *staging(p).num_batch = 0;
    row_ids_.assign(2 * static_cast<size_t>(max_batch), 0);
    row_versions_.assign(2 * static_cast<size_t>(max_batch), 0);
  } catch (...) {
    free_all();
    (void)cudaSetDevice(previous);
    throw;
  }
  (void)cudaSetDevice(previous);
}

DevicePageTable::~DevicePageTable() { free_all(); }

void DevicePageTable::free_all() noexcept {
  for (CUevent_st*& e : uploaded_) {
    if (e != nullptr) {
      (void)cudaEventSynchronize(e);
      (void)cudaEventDestroy(e);
    }
    e = nullptr;
  }
  if (d_tables_ != nullptr) (void)cudaFree(d_tables_);
  if (h_staging_ != nullptr) (void)cudaFreeHost(h_staging_);
  d_tables_ = nullptr;
  h_staging_ = nullptr;
}

DevicePageTable::Staging DevicePageTable::staging(int parity) const noexcept {
  const Layout l = staging_layout(max_batch_, max_resident_);
  std::byte* base = h_staging_ + parity * staging_bytes_;
  return {reinterpret_cast<int32_t*>(base + l.num_batch),
          reinterpret_cast<int64_t*>(base + l.num_tokens),
          reinterpret_cast<int32_t*>(base + l.counts_or_offsets),
          reinterpret_cast<int32_t*>(base + l.pages), reinterpret_cast<int32_t*>(base + l.slots)};
}

bool DevicePageTable::staging_free(int parity) noexcept {
  const cudaError_t e = cudaEventQuery(uploaded_[parity]);
  if (e == cudaSuccess) return true;
  if (e != cudaErrorNotReady) {
    (void)cudaGetLastError();
    return false;
  }
  ++stalls_;
  if (cudaEventSynchronize(uploaded_[parity]) == cudaSuccess) return true;
  (void)cudaGetLastError();
  return false;
}

CudaError DevicePageTable::upload(int parity, Stream stream) noexcept {
  if (parity != 0 && parity != 1) return CudaError::kInvalidValue;
  ScatterArgs args{h_staging_ + parity * staging_bytes_,
                   d_tables_ + parity * table_bytes_,
                   staging_layout(max_batch_, max_resident_),
                   table_layout(max_batch_, max_resident_, max_pages_),
                   max_resident_,
                   max_pages_};
  const detail::DeviceGuard guard(device_);
  // Inside a capture a plain record would be captured as a graph-internal dependency: replays
  // would never record the event, and write() would query a captured event. An external record
  // node records it at every replay, so write() waits for the replay that last read the staging.
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  LSA_CUDA_TRY(cudaStreamIsCapturing(stream, &capture));
  scatter_kernel<<<static_cast<unsigned>(max_batch_), kScatterThreads, 0, stream>>>(args);
  LSA_CUDA_TRY(cudaGetLastError());
  if (capture == cudaStreamCaptureStatusActive) {
    LSA_CUDA_TRY(cudaEventRecordWithFlags(uploaded_[parity], stream, cudaEventRecordExternal));
  } else {
    LSA_CUDA_TRY(cudaEventRecord(uploaded_[parity], stream));
  }
  return CudaError::kSuccess;
}

DeviceBatchTable DevicePageTable::table(int parity, int32_t num_batch) const noexcept {
  const Layout l = table_layout(max_batch_, max_resident_, max_pages_);
  const std::byte* base = d_tables_ + (parity & 1) * table_bytes_;
  DeviceBatchTable t;
  t.num_batch = num_batch;
  t.d_resident_offsets = reinterpret_cast<const int32_t*>(base + l.counts_or_offsets);
  t.d_resident_pages = reinterpret_cast<const int32_t*>(base + l.pages);
  t.d_page_slots = reinterpret_cast<const int32_t*>(base + l.slots);
  t.page_slots_stride = max_pages_;
  t.d_num_tokens = reinterpret_cast<const int64_t*>(base + l.num_tokens);
  t.d_num_batch = reinterpret_cast<const int32_t*>(base + l.num_batch);
  return t;
}

}  // namespace lsa::cuda
