// Device KV store: reserve slots in GPU memory, pinned host mirror, recalls on a side stream.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lsa/cache_config.hpp"
#include "lsa/cuda/cuda_error.hpp"
#include "lsa/detail/copy_jobs.hpp"
#include "lsa/detail/mirror.hpp"
#include "lsa/detail/recall_worker.hpp"
#include "lsa/detail/slot_book.hpp"
#include "lsa/status.hpp"

// cudaEvent_t is `struct CUevent_st*`; naming the struct keeps this header free of CUDA headers.
struct CUevent_st;

namespace lsa::cuda {

/// A CUDA event (the same type as cudaEvent_t).
using Event = CUevent_st*;

/// How a batch of recalled pages (pinned mirror -> device reserve) is copied; both move the same
/// bytes, bench/cuda measures which is faster on a machine.
enum class RecallCopy : uint8_t {
  kMemcpyBatch,   ///< one cudaMemcpyBatchAsync call per batch (copy engines)
  kGatherKernel,  ///< one kernel reading the mapped pinned mirror over the bus (SMs)
};

/// Device-side settings of a CudaStore (the rest comes from the CacheConfig).
struct CudaStoreOptions {
  int device = 0;  ///< CUDA device that holds the reserve
  Stream compute_stream =
      nullptr;  ///< the engine's stream: its KV writes and attention reads of
                ///< reserve slots run there (nullptr: the legacy default stream)
  RecallCopy recall_copy = RecallCopy::kMemcpyBatch;  ///< how recalls are copied
};

/// The device backend of SparseKVCache (`SparseKVCache<C, S, P, cuda::CudaStore>`, constructed with
/// a CudaStoreOptions after the CacheConfig). The reserve is one device allocation of num_slots
/// pages; the mirror is pinned host memory in 64 MiB arenas allocated as it grows. Copies run on a
/// private copy stream ordered against the engine's compute stream with events, never by blocking:
///  - a recall waits (on the device) for the compute work queued before it, so a slot is never
///    overwritten while a queued attention kernel may read its old page;
///  - RecallMode::kSync: the compute stream waits for the step's recalls, so the step's view may
///    list them at once; kAsync: the cache swaps the new set in once an event says its copies are
///    done, and the compute stream never waits for them;
///  - sealing copies a page to the mirror after the compute work queued before the seal (the
///    engine's KV writes), and a slot is reused for new KV only after its write-back.
/// Calls that read bytes back to the host (read_bytes, read_page) and wait_copies block; they serve
/// lifecycle calls and tests, never a step. All calls come from one engine thread.
class CudaStore : public lsa::detail::SlotBook {
 public:
  /// Allocates the reserve, the copy stream and its events on options.device; throws lsa::Error
  /// naming the field when the config asks for what this store cannot do (a file mirror) or a
  /// CUDA call fails (no device, out of device memory).
  CudaStore(const CacheConfig& config, const CudaStoreOptions& options = {});
  /// Waits for the copies in flight, then frees everything.
  ~CudaStore();
  CudaStore(const CudaStore&) = delete;
  CudaStore& operator=(const CudaStore&) = delete;

  /// Bytes of one page (all layers contiguous).
  int64_t page_bytes() const noexcept { return page_bytes_; }
  /// Device address of the reserve: slot s is at reserve() + s * page_bytes().
  std::byte* reserve() noexcept { return d_reserve_; }
  /// Device address of one slot.
  std::byte* slot_data(int32_t slot) noexcept { return d_reserve_ + int64_t{slot} * page_bytes_; }
  /// Device address of one slot.
  const std::byte* slot_data(int32_t slot) const noexcept {
    return d_reserve_ + int64_t{slot} * page_bytes_;
  }
  /// True in RecallMode::kAsync.
  bool async() const noexcept { return async_; }
  /// Mirror cells in use.
  int64_t mirror_pages() const noexcept { return mirror_.used(); }
  /// The engine's stream this store orders its copies against.
  Stream compute_stream() const noexcept { return compute_; }
  /// The private stream recalls and write-backs run on.
  Stream copy_stream() const noexcept { return engine_.stream; }
  /// The first CUDA error a call met (kSuccess when none); calls that return void record theirs.
  /// It stays: a failed copy leaves reserve bytes undefined, and most CUDA errors of queued work
  /// are sticky to the context anyway (rebuild the cache, and the CUDA context, to go on).
  CudaError cuda_error() const noexcept { return static_cast<CudaError>(jobs_.error()); }
  /// kDeviceError once any CUDA call or copy has failed (cuda_error() says which), else kOk;
  /// SparseKVCache's step and append return it before they change anything.
  Status status() const noexcept { return jobs_.status(); }

  /// Reserves bookkeeping so that `pages` more page records need no allocation.
  Status reserve_pages(int64_t pages) noexcept;
  /// Drops a reference; the last one frees the slot and the mirror cell.
  void release(PageId id) noexcept;
  /// Gives `id` a slot (evicting the least recently used unpinned page); work the engine then
  /// queues on the compute stream runs after the slot's earlier copies.
  int32_t take_slot(PageId id) noexcept;

  /// Queues the write-back of a page's slot to the mirror (it becomes sealed and immutable).
  Status seal(PageId id) noexcept;
  /// Forgets the mirror copy of a page that becomes writable again (a truncated tail).
  void unseal(PageId id) noexcept;
  /// Gives a sealed page a slot and queues its copy; compute work queued after the next
  /// submit_recalls() sees the bytes.
  Status recall_sync(PageId id) noexcept;
  /// Gives a sealed, pinned page a slot and queues its copy in the open batch.
  void recall_async(PageId id, lsa::detail::RecallTicket* ticket) noexcept;
  /// Issues the open batch of recalls as one copy job (kSync: the compute stream waits for it).
  void submit_recalls() noexcept;

  /// Copy job that last touched `slot` (0: none).
  uint64_t slot_job(int32_t slot) const noexcept { return jobs_.slot_job(slot); }
  /// True when copy jobs up to `job` have ended on the device, done or failed (event queries, no
  /// wait); a failed job marks its slots failed and the store's status kDeviceError.
  bool copies_done(uint64_t job) const noexcept { return jobs_.done(job); }
  /// False while a copy into or out of `slot` may still run.
  bool slot_ready(int32_t slot) const noexcept { return copies_done(jobs_.slot_job(slot)); }
  /// True when the last recall into `slot` failed (not queued, or its job ended with a CUDA
  /// error): its bytes are not the page's. Cleared when the slot changes hands.
  bool slot_failed(int32_t slot) const noexcept { return jobs_.slot_failed(slot); }
  /// Blocks until copy jobs up to `job` have finished (lifecycle calls only).
  void wait_copies(uint64_t job) noexcept;

  /// Queues the KV of `num_tokens` tokens into `slot` from token offset `first` on the compute
  /// stream: `src` ([num_tokens][num_layers][bytes_per_token_per_layer]) is device or host memory.
  void write_tokens(int32_t slot, int32_t first, int32_t num_tokens, const std::byte* src) noexcept;
  /// Queues a whole page from host memory `src` into `slot` on the compute stream.
  void write_page(int32_t slot, const std::byte* src) noexcept;
  /// Queues a device copy of slot `from` into slot `to` on the compute stream.
  void copy_slot(int32_t to, int32_t from) noexcept;
  /// Copies a page's bytes (slot or mirror) into host memory `dst`; blocks.
  Status read_page(PageId id, std::byte* dst) const noexcept {
    return read_bytes(id, 0, dst, page_bytes_);
  }
  /// Copies `bytes` bytes at `offset` of a page into host memory `dst`, after the compute work
  /// queued so far (from the slot) or the write-back (from the mirror); blocks.
  Status read_bytes(PageId id, int64_t offset, std::byte* dst, int64_t bytes) const noexcept;

 private:
  // The CopyEngine of jobs_ (lsa/detail/copy_jobs.hpp): the copy stream and a ring of events.
  class Engine {
   public:
    Engine(RecallCopy recall_copy, int64_t page_bytes, int32_t num_slots);
    int issue(std::span<const lsa::detail::BatchCopy> copies) noexcept;
    int record(uint64_t job) noexcept;
    lsa::detail::JobResult query(uint64_t job) const noexcept;
    int wait(uint64_t job) const noexcept;
    uint64_t ring_size() const noexcept { return events.size(); }
    Event event(uint64_t job) const noexcept { return events[job % events.size()]; }

    Stream stream = nullptr;  // the copy stream
    int fence_error = 0;      // the open batch's fence failed: its issue fails with this
    std::vector<Event> events;  // ring: job j's end is events[j % size]

   private:
    RecallCopy recall_copy_;
    int64_t page_bytes_;
    std::vector<void*> dsts_;  // a batch's copy arguments (capacity num_slots: no allocation)
    std::vector<const void*> srcs_;
    std::vector<size_t> sizes_;
  };

  void free_device_resources() noexcept;
  int fence_copy_stream() noexcept;     // copy stream waits for the compute work queued so far
  bool note(int error) const noexcept;  // keeps the first error; true when `error` is success
  void wait_on_device(uint64_t job) noexcept;  // compute stream waits for `job` unless it ended

  int64_t page_bytes_;
  int64_t layer_bytes_;
  int64_t token_bytes_;
  int32_t num_layers_;
  bool async_;
  int device_;
  Stream compute_ = nullptr;
  Event fence_ = nullptr;
  std::byte* d_reserve_ = nullptr;
  lsa::detail::Mirror mirror_;
  Engine engine_;
  lsa::detail::CopyJobs<Engine> jobs_;  // job numbers, completion, failed slots and tickets
};

}  // namespace lsa::cuda
