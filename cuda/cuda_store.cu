// CudaStore: device reserve, pinned mirror, copy jobs on a side stream ordered by events.
#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "detail/common.cuh"
#include "detail/page_gather.cuh"
#include "lsa/cuda/cuda_store.hpp"
#include "lsa/error.hpp"

namespace lsa::cuda {
namespace {

constexpr size_t kEventRing = 1024;  // copy jobs whose events are kept (older ones are done)

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

// Restores the calling thread's device when a call leaves.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device) noexcept {
    (void)cudaGetDevice(&previous_);
    if (previous_ != device) (void)cudaSetDevice(device);
  }
  ~DeviceGuard() { (void)cudaSetDevice(previous_); }
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int previous_ = 0;
};

}  // namespace

CudaStore::CudaStore(const CacheConfig& config, const CudaStoreOptions& options)
    : lsa::detail::SlotBook(checked_for_device(config).num_slots),
      page_bytes_(config.page_bytes()),
      layer_bytes_(config.bytes_per_page_per_layer()),
      token_bytes_(config.bytes_per_token_per_layer),
      num_layers_(config.num_layers),
      async_(config.recall_mode == RecallMode::kAsync),
      recall_copy_(options.recall_copy),
      device_(options.device),
      compute_(options.compute_stream),
      // Pinned host memory, no file; no digests yet (the host store checks them on every read).
      mirror_(page_bytes_, lsa::detail::MirrorOptions{.path = {},
                                                      .overwrite = false,
                                                      .digests = false,
                                                      .arenas = lsa::detail::ArenaAllocator{
                                                          &allocate_pinned, &free_pinned}}) {
  int count = 0;
  check_construction(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (options.device < 0 || options.device >= count) {
    throw Error("CudaStoreOptions.device must be in [0, " + std::to_string(count) + "), got " +
                std::to_string(options.device));
  }
  DeviceGuard guard(device_);
  try {
    check_construction(cudaStreamCreateWithFlags(&copy_, cudaStreamNonBlocking),
                       "copy stream creation");
    check_construction(cudaEventCreateWithFlags(&fence_, cudaEventDisableTiming), "event creation");
    events_.assign(kEventRing, nullptr);
    for (Event& e : events_) {
      check_construction(cudaEventCreateWithFlags(&e, cudaEventDisableTiming), "event creation");
    }
    void* reserve = nullptr;
    check_construction(cudaMalloc(&reserve, static_cast<size_t>(page_bytes_ * num_slots())),
                       ("cudaMalloc of the reserve (num_slots * page bytes = " +
                        std::to_string(page_bytes_ * num_slots()) + " B)")
                           .c_str());
    d_reserve_ = static_cast<std::byte*>(reserve);
    slot_job_.assign(static_cast<size_t>(num_slots()), 0);
    slot_failed_.assign(static_cast<size_t>(num_slots()), 0);
    batch_.reserve(static_cast<size_t>(num_slots()));
    batch_dsts_.reserve(static_cast<size_t>(num_slots()));
    batch_srcs_.reserve(static_cast<size_t>(num_slots()));
    batch_sizes_.reserve(static_cast<size_t>(num_slots()));
  } catch (...) {
    free_device_resources();  // the destructor does not run for a constructor that throws
    throw;
  }
}

CudaStore::~CudaStore() { free_device_resources(); }

void CudaStore::free_device_resources() noexcept {
  DeviceGuard guard(device_);
  if (copy_ != nullptr) (void)cudaStreamSynchronize(copy_);
  if (d_reserve_ != nullptr) {
    (void)cudaStreamSynchronize(compute_);  // queued KV writes may still target the reserve
    (void)cudaFree(d_reserve_);
    d_reserve_ = nullptr;
  }
  for (Event& e : events_) {
    if (e != nullptr) (void)cudaEventDestroy(e);
    e = nullptr;
  }
  if (fence_ != nullptr) (void)cudaEventDestroy(fence_);
  fence_ = nullptr;
  if (copy_ != nullptr) (void)cudaStreamDestroy(copy_);
  copy_ = nullptr;
}

bool CudaStore::note(int error) const noexcept {
  if (error == cudaSuccess) return true;
  if (error_ == cudaSuccess) error_ = error;
  (void)cudaGetLastError();
  return false;
}

Status CudaStore::reserve_pages(int64_t pages) noexcept {
  if (Status s = reserve_records(pages); s != Status::kOk) return s;
  return mirror_.reserve(record_capacity());
}

void CudaStore::release(PageId id) noexcept {
  if (const int64_t cell = release_record(id); cell >= 0) mirror_.release(cell);
}

bool CudaStore::fence_copy_stream() noexcept {
  return note(cudaEventRecord(fence_, compute_)) && note(cudaStreamWaitEvent(copy_, fence_, 0));
}

uint64_t CudaStore::record_job() noexcept {
  const uint64_t job = submitted_ + 1;
  // The ring slot's previous job must be done before its event is reused (rare: 1024 jobs ahead).
  if (job > kEventRing && !copies_done(job - kEventRing)) {
    (void)note(cudaEventSynchronize(job_event(job - kEventRing)));
    completed_ = std::max(completed_, job - kEventRing);
  }
  if (!note(cudaEventRecord(job_event(job), copy_))) return 0;
  submitted_ = job;
  return job;
}

bool CudaStore::copies_done(uint64_t job) const noexcept {
  if (job <= completed_) return true;
  if (job > submitted_) return false;  // still in the open batch
  const cudaError_t e = cudaEventQuery(job_event(job));
  if (e == cudaErrorNotReady) return false;
  (void)note(e);  // an error counts as done: waiting would never end; cuda_error() reports it
  completed_ = job;
  return true;
}

void CudaStore::wait_copies(uint64_t job) noexcept {
  if (job > submitted_) submit_recalls();
  if (job <= completed_) return;
  (void)note(cudaEventSynchronize(job_event(job)));
  completed_ = std::max(completed_, job);
}

int32_t CudaStore::take_slot(PageId id) noexcept {
  const int32_t slot = take_slot_for(id).slot;
  const uint64_t job = slot_job_[slot];
  if (job > submitted_) submit_recalls();
  // The slot's write-back (or a recall of a page dropped meanwhile) may still read or write it:
  // the engine's next writes into the slot wait for that job on the device.
  if (!copies_done(job)) (void)note(cudaStreamWaitEvent(compute_, job_event(job), 0));
  slot_failed_[slot] = 0;
  return slot;
}

Status CudaStore::seal(PageId id) noexcept {
  if (sealed(id)) return Status::kOk;
  DeviceGuard guard(device_);
  const int64_t cell = mirror_.allocate();
  if (cell < 0) return Status::kOutOfMemory;
  if (!batch_.empty()) submit_recalls();
  const int32_t slot = slot_of(id);
  uint64_t job = 0;
  if (fence_copy_stream() &&
      note(cudaMemcpyAsync(const_cast<std::byte*>(mirror_.memory(cell)), slot_data(slot),
                           static_cast<size_t>(page_bytes_), cudaMemcpyDeviceToHost, copy_))) {
    job = record_job();
  }
  if (job == 0) {
    mirror_.release(cell);
    return Status::kDeviceError;
  }
  slot_job_[slot] = job;
  mark_sealed(id, cell);
  return Status::kOk;
}

void CudaStore::unseal(PageId id) noexcept {
  // The write-back may still read the slot that the engine is about to overwrite.
  const int32_t slot = slot_of(id);
  if (!copies_done(slot_job_[slot]))
    (void)note(cudaStreamWaitEvent(compute_, job_event(slot_job_[slot]), 0));
  if (const int64_t cell = mark_unsealed(id); cell >= 0) mirror_.release(cell);
}

Status CudaStore::recall_sync(PageId id) noexcept {
  recall_async(id, nullptr);
  return error_ == cudaSuccess ? Status::kOk : Status::kDeviceError;
}

void CudaStore::recall_async(PageId id, lsa::detail::RecallTicket* ticket) noexcept {
  DeviceGuard guard(device_);
  if (batch_.empty()) (void)fence_copy_stream();  // recalls may overwrite slots queued kernels read
  const int32_t slot = take_slot(id);
  batch_.push_back({mirror_.memory(cell_of(id)), slot_data(slot), ticket});  // capacity: num_slots
  slot_job_[slot] = submitted_ + 1;  // the job this batch becomes
  count_recall();
}

void CudaStore::submit_recalls() noexcept {
  if (batch_.empty()) return;
  DeviceGuard guard(device_);
  batch_dsts_.clear();
  batch_srcs_.clear();
  batch_sizes_.clear();
  for (const PendingCopy& c : batch_) {
    batch_dsts_.push_back(c.dst);  // capacities: num_slots, like the batch
    batch_srcs_.push_back(c.src);
    batch_sizes_.push_back(static_cast<size_t>(page_bytes_));
  }
  bool issued;
  if (recall_copy_ == RecallCopy::kGatherKernel) {
    issued = note(cuda::detail::gather_pages(batch_srcs_.data(), batch_dsts_.data(), batch_.size(),
                                             page_bytes_, copy_));
  } else {
    cudaMemcpyAttributes attributes{};
    attributes.srcAccessOrder = cudaMemcpySrcAccessOrderStream;
    attributes.flags = cudaMemcpyFlagPreferOverlapWithCompute;
    size_t attribute_index = 0;
    issued = note(cudaMemcpyBatchAsync(batch_dsts_.data(), batch_srcs_.data(), batch_sizes_.data(),
                                       batch_.size(), &attributes, &attribute_index, 1, copy_));
  }
  const uint64_t job = issued ? record_job() : 0;
  bool compute_waits = !async_;
  for (const PendingCopy& c : batch_) {
    compute_waits |= c.ticket == nullptr;  // recall_sync: the caller lists the page at once
    if (c.ticket == nullptr) continue;
    if (job == 0) c.ticket->failed.fetch_add(1, std::memory_order_relaxed);
    c.ticket->remaining.fetch_sub(1, std::memory_order_release);  // handed to the device
  }
  if (job == 0) {
    // Nothing was queued: the slots keep their old job numbers' meaning as "done", and hold no
    // page (the cache never lists them, and gives them up).
    for (const PendingCopy& c : batch_) {
      const auto slot = static_cast<size_t>((c.dst - d_reserve_) / page_bytes_);
      slot_job_[slot] = completed_;
      slot_failed_[slot] = 1;
    }
  } else if (compute_waits) {
    (void)note(cudaStreamWaitEvent(compute_, job_event(job), 0));
  }
  batch_.clear();
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
  if (!note(cudaStreamSynchronize(copy_))) return Status::kDeviceError;
  return mirror_.read(cell_of(id), offset, dst, bytes);
}

}  // namespace lsa::cuda
