// CudaStore: device reserve, pinned mirror, copy jobs on a side stream ordered by events.
#include <cuda_runtime.h>

#include <string>

#include "detail/common.cuh"
#include "detail/device_guard.cuh"
#include "detail/page_gather.cuh"
#include "lsa/cuda/cuda_store.hpp"
#include "lsa/error.hpp"

namespace lsa::cuda {
namespace {

constexpr size_t kEventRing = 1024;  // copy jobs whose end events exist at once (CopyJobs waits)

// Mirror arenas: pinned, mapped (the gather kernel reads them), usable from any device.
void* allocate_pinned(size_t bytes) noexcept {
  void* p = nullptr;
  if (cudaHostAlloc(&p, bytes, cudaHostAllocPortable | cudaHostAllocMapped) != cudaSuccess) {
    (void)cudaGetLastError();
    return nullptr;
  }
  return p;
}
void free_pinned(void* p) noexcept { (void)cudaFreeHost(p); }

// `e` as an int; a failure is also taken off the thread's last-error slot, so that a later
// cudaGetLastError (after someone's kernel launch) does not report it.
int cleared(cudaError_t e) noexcept {
  if (e != cudaSuccess) (void)cudaGetLastError();
  return static_cast<int>(e);
}
int cleared(int e) noexcept { return cleared(static_cast<cudaError_t>(e)); }

void check_construction(cudaError_t e, const char* what) {
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    throw Error(std::string("CudaStore: ") + what + " failed: " + cudaGetErrorString(e));
  }
}

const CacheConfig& checked_for_device(const CacheConfig& config) {
  if (!config.mirror_path.empty()) {
    throw Error(
        "mirror_path must be empty for cuda::CudaStore (its mirror is pinned host memory), got '" +
        config.mirror_path + "'");
  }
  return config;
}

using detail::DeviceGuard;

}  // namespace

CudaStore::Engine::Engine(RecallCopy recall_copy, int64_t page_bytes, int32_t num_slots)
    : events(kEventRing, nullptr), recall_copy_(recall_copy), page_bytes_(page_bytes) {
  dsts_.reserve(static_cast<size_t>(num_slots));
  srcs_.reserve(static_cast<size_t>(num_slots));
  sizes_.reserve(static_cast<size_t>(num_slots));
}

int CudaStore::Engine::issue(std::span<const lsa::detail::BatchCopy> copies) noexcept {
  if (const int e = fence_error; e != cudaSuccess) {
    fence_error = cudaSuccess;
    return e;  // the batch would not wait for the kernels that read its slots' old pages
  }
  dsts_.clear();
  srcs_.clear();
  sizes_.clear();
  for (const lsa::detail::BatchCopy& c : copies) {
    dsts_.push_back(c.dst);  // capacities: num_slots, like the batch
    srcs_.push_back(c.src);
    sizes_.push_back(static_cast<size_t>(page_bytes_));
  }
  if (recall_copy_ == RecallCopy::kGatherKernel) {
    return cleared(
        cuda::detail::gather_pages(srcs_.data(), dsts_.data(), copies.size(), page_bytes_, stream));
  }
  cudaMemcpyAttributes attributes{};
  attributes.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
  attributes.flags = cudaMemcpyFlagPreferOverlapWithCompute;
  size_t attribute_index = 0;
  return cleared(cudaMemcpyBatchAsync(dsts_.data(), srcs_.data(), sizes_.data(), copies.size(),
                                      &attributes, &attribute_index, 1, stream));
}

int CudaStore::Engine::record(uint64_t job) noexcept {
  return cleared(cudaEventRecord(event(job), stream));
}

lsa::detail::JobResult CudaStore::Engine::query(uint64_t job) const noexcept {
  const cudaError_t e = cudaEventQuery(event(job));
  if (e == cudaErrorNotReady) return {false, 0};
  return {true, cleared(e)};  // an error ends the job failed: waiting would never end
}

int CudaStore::Engine::wait(uint64_t job) const noexcept {
  return cleared(cudaEventSynchronize(event(job)));
}

CudaStore::CudaStore(const CacheConfig& config, const CudaStoreOptions& options)
    : lsa::detail::SlotBook(checked_for_device(config).num_slots),
      page_bytes_(config.page_bytes()),
      layer_bytes_(config.bytes_per_page_per_layer()),
      token_bytes_(config.bytes_per_token_per_layer),
      num_layers_(config.num_layers),
      async_(config.recall_mode == RecallMode::kAsync),
      device_(options.device),
      compute_(options.compute_stream),
      // Pinned host memory, no file; no digests yet (the host store checks them on every read).
      mirror_(page_bytes_,
              lsa::detail::MirrorOptions{
                  .path = {},
                  .overwrite = false,
                  .digests = false,
                  .arenas = lsa::detail::ArenaAllocator{&allocate_pinned, &free_pinned}}),
      engine_(options.recall_copy, page_bytes_, config.num_slots),
      jobs_(engine_, config.num_slots) {
  int count = 0;
  check_construction(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (options.device < 0 || options.device >= count) {
    throw Error("CudaStoreOptions.device must be in [0, " + std::to_string(count) + "), got " +
                std::to_string(options.device));
  }
  DeviceGuard guard(device_);
  try {
    check_construction(cudaStreamCreateWithFlags(&engine_.stream, cudaStreamNonBlocking),
                       "copy stream creation");
    check_construction(cudaEventCreateWithFlags(&fence_, cudaEventDisableTiming), "event creation");
    for (Event& e : engine_.events) {
      check_construction(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event creation");
    }
    void* reserve = nullptr;
    check_construction(cudaMalloc(&reserve, static_cast<size_t>(page_bytes_ * num_slots())),
                       ("cudaMalloc of the reserve (num_slots * page bytes = " +
                        std::to_string(page_bytes_ * num_slots()) + " B)")
                           .c_str());
    d_reserve_ = static_cast<std::byte*>(reserve);
  } catch (...) {
    free_device_resources();  // the destructor does not run for a constructor that throws
    throw;
  }
}

CudaStore::~CudaStore() { free_device_resources(); }

void CudaStore::free_device_resources() noexcept {
  DeviceGuard guard(device_);
  if (engine_.stream != nullptr) (void)cudaStreamSynchronize(engine_.stream);
  if (d_reserve_ != nullptr) {
    (void)cudaStreamSynchronize(compute_);  // queued KV writes may still target the reserve
    (void)cudaFree(d_reserve_);
    d_reserve_ = nullptr;
  }
  for (Event& e : engine_.events) {
    if (e != nullptr) (void)cudaEventDestroy(e);
    e = nullptr;
  }
  if (fence_ != nullptr) (void)cudaEventDestroy(fence_);
  fence_ = nullptr;
  if (engine_.stream != nullptr) (void)cudaStreamDestroy(engine_.stream);
  engine_.stream = nullptr;
}

bool CudaStore::note(int error) const noexcept { return jobs_.note(cleared(error)); }

Status CudaStore::reserve_pages(int64_t pages) noexcept {
  if (Status s = reserve_records(pages); s != Status::kOk) return s;
  return mirror_.reserve(record_capacity());
}

void CudaStore::release(PageId id) noexcept {
  if (const int64_t cell = release_record(id); cell >= 0) mirror_.release(cell);
}

int CudaStore::fence_copy_stream() noexcept {
  const int e = cleared(cudaEventRecord(fence_, compute_));
  return e != cudaSuccess ? e : cleared(cudaStreamWaitEvent(engine_.stream, fence_, 0));
}

void CudaStore::wait_on_device(uint64_t job) noexcept {
  if (!jobs_.done(job)) (void)note(cudaStreamWaitEvent(compute_, engine_.event(job), 0));
}

void CudaStore::wait_copies(uint64_t job) noexcept {
  if (job > jobs_.submitted()) submit_recalls();
  jobs_.wait(job);
}

int32_t CudaStore::take_slot(PageId id) noexcept {
  const int32_t slot = take_slot_for(id).slot;
  if (jobs_.slot_job(slot) > jobs_.submitted()) submit_recalls();
  // The slot's write-back (or a recall of a page dropped meanwhile) may still read or write it:
  // the engine's next writes into the slot wait for that job on the device.
  wait_on_device(jobs_.slot_job(slot));
  jobs_.clear_slot(slot);
  return slot;
}

Status CudaStore::seal(PageId id) noexcept {
  if (sealed(id)) return Status::kOk;
  DeviceGuard guard(device_);
  const int64_t cell = mirror_.allocate();
  if (cell < 0) return Status::kOutOfMemory;
  submit_recalls();  // job numbers follow queue order
  const int32_t slot = slot_of(id);
  int issued = fence_copy_stream();
  if (issued == cudaSuccess) {
    issued = cleared(cudaMemcpyAsync(const_cast<std::byte*>(mirror_.memory(cell)), slot_data(slot),
                                     static_cast<size_t>(page_bytes_), cudaMemcpyDeviceToHost,
                                     engine_.stream));
  }
  const uint64_t job = jobs_.close_own(issued);
  if (job == 0) {
    mirror_.release(cell);
    return Status::kDeviceError;
  }
  jobs_.touch_slot(slot, job);
  mark_sealed(id, cell);
  return Status::kOk;
}

void CudaStore::unseal(PageId id) noexcept {
  // The write-back may still read the slot that the engine is about to overwrite.
  wait_on_device(jobs_.slot_job(slot_of(id)));
  if (const int64_t cell = mark_unsealed(id); cell >= 0) mirror_.release(cell);
}

Status CudaStore::recall_sync(PageId id) noexcept {
  recall_async(id, nullptr);
  return jobs_.status();
}

void CudaStore::recall_async(PageId id, lsa::detail::RecallTicket* ticket) noexcept {
  DeviceGuard guard(device_);
  // Recalls may overwrite slots that queued kernels read: the batch waits for them (its issue
  // fails when that wait could not be queued).
  if (jobs_.batch().empty()) engine_.fence_error = fence_copy_stream();
  const int32_t slot = take_slot(id);
  jobs_.add({mirror_.memory(cell_of(id)), slot_data(slot), slot, ticket});
  count_recall();
}

void CudaStore::submit_recalls() noexcept {
  if (jobs_.batch().empty()) return;
  DeviceGuard guard(device_);
  bool compute_waits = !async_;
  for (const lsa::detail::BatchCopy& c : jobs_.batch()) {
    compute_waits |= c.ticket == nullptr;  // recall_sync: the caller lists the page at once
  }
  // A job that fails marks its slots failed (the cache never lists them, and gives them up) and
  // its tickets' recalls failed.
  const uint64_t job = jobs_.submit();
  if (job != 0 && compute_waits) (void)note(cudaStreamWaitEvent(compute_, engine_.event(job), 0));
}
void CudaStore::write_tokens(int32_t slot, int32_t first, int32_t num_tokens,
                             const std::byte* src) noexcept {
  DeviceGuard guard(device_);
  const int64_t src_token_bytes = int64_t{num_layers_} * token_bytes_;
  for (int32_t layer = 0; layer < num_layers_; ++layer) {
    (void)note(
        cudaMemcpy2DAsync(slot_data(slot) + layer * layer_bytes_ + int64_t{first} * token_bytes_,
                          static_cast<size_t>(token_bytes_), src + layer * token_bytes_,
                          static_cast<size_t>(src_token_bytes), static_cast<size_t>(token_bytes_),
                          static_cast<size_t>(num_tokens), cudaMemcpyDefault, compute_));
  }
}

void CudaStore::write_page(int32_t slot, const std::byte* src) noexcept {
  DeviceGuard guard(device_);
  (void)note(cudaMemcpyAsync(slot_data(slot), src, static_cast<size_t>(page_bytes_),
                             cudaMemcpyDefault, compute_));
}

void CudaStore::copy_slot(int32_t to, int32_t from) noexcept {
  DeviceGuard guard(device_);
  (void)note(cudaMemcpyAsync(slot_data(to), slot_data(from), static_cast<size_t>(page_bytes_),
                             cudaMemcpyDeviceToDevice, compute_));
}

Status CudaStore::read_bytes(PageId id, int64_t offset, std::byte* dst,
                             int64_t bytes) const noexcept {
  DeviceGuard guard(device_);
  const int32_t slot = slot_of(id);
  // An unsealed page lives only in its slot; a sealed one is read from the mirror while a recall
  // may still be copying into its slot, or when that recall failed.
  if (slot >= 0 && (!sealed(id) || (slot_ready(slot) && !slot_failed(slot)))) {
    const std::byte* from = d_reserve_ + int64_t{slot} * page_bytes_ + offset;
    if (!note(cudaMemcpyAsync(dst, from, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost,
                              compute_)) ||
        !note(cudaStreamSynchronize(compute_))) {
      return Status::kDeviceError;
    }
    return Status::kOk;
  }
  // The mirror copy is there once the copy stream has drained (write-backs run there).
  if (!note(cudaStreamSynchronize(engine_.stream))) return Status::kDeviceError;
  return mirror_.read(cell_of(id), offset, dst, bytes);
}

}  // namespace lsa::cuda
