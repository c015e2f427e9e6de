// The batch's resident sets and page slots on the device, double-buffered, for device-built views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "lsa/cuda/cuda_error.hpp"
#include "lsa/cuda/view_builder.hpp"
#include "lsa/status.hpp"
#include "lsa/types.hpp"

struct CUevent_st;

namespace lsa::cuda {

/// Publishes what a SparseKVCache step decided (resident pages, their slots, lengths) to the device
/// so that views, Level-2 selections and slot mappings are built there, in a CUDA graph if wanted.
///
/// Two buffers alternate. Per step the host writes the next buffer's pinned staging copy
/// (O(resident pages), no CUDA call unless that buffer's previous upload has not run yet), then
/// `upload` queues one kernel that reads the staging copy over the bus and scatters it into the
/// device table of the same parity. A step's kernels read the table of its own parity, so a table
/// is never read while it is being written, and `upload` plus the kernels after it can be captured
/// once per parity and replayed as the sets change (table(parity) pointers never move).
class DevicePageTable {
 public:
  /// Room for batches of up to `max_batch` sequences, each with up to `max_resident` resident pages
  /// and `max_pages` logical pages, on `device`; throws lsa::Error on a bad size or a failed
  /// allocation.
  DevicePageTable(int32_t max_batch, int32_t max_resident, int32_t max_pages, int device = 0);
  /// Waits for uploads in flight, then frees the buffers.
  ~DevicePageTable();
  DevicePageTable(const DevicePageTable&) = delete;
  DevicePageTable& operator=(const DevicePageTable&) = delete;

  /// Writes the state of `batch` (after cache.step) into the next buffer's staging copy and makes
  /// it the current parity. kUnknownSequence, or kBufferTooSmall when the batch, a resident set or
  /// a history exceeds the sizes given at construction (nothing changes then); kDeviceError when
  /// waiting for that buffer's previous upload failed.
  template <class CacheT>
  [[nodiscard]] Status write(const CacheT& cache, std::span<const SeqId> batch) noexcept {
    if (static_cast<int64_t>(batch.size()) > max_batch_) return Status::kBufferTooSmall;
    const int next = parity_ ^ 1;
    for (const SeqId id : batch) {
      if (!cache.contains(id)) return Status::kUnknownSequence;
      const int64_t pages = (cache.length(id) + page_tokens(cache) - 1) / page_tokens(cache);
      if (static_cast<int64_t>(cache.resident_pages(id).size()) > max_resident_ ||
          pages > max_pages_) {
        return Status::kBufferTooSmall;
      }
    }
    if (!staging_free(next)) return Status::kDeviceError;
    Staging s = staging(next);
    *s.num_batch = static_cast<int32_t>(batch.size());
    int32_t nnz = 0;
    for (size_t b = 0; b < batch.size(); ++b) {
      s.num_tokens[b] = cache.length(batch[b]);
      s.offsets[b] = nnz;
      for (const int32_t p : cache.resident_pages(batch[b])) {
        s.pages[nnz] = p;
        s.slots[nnz] = cache.slot_of(batch[b], p);
        ++nnz;
      }
    }
    s.offsets[batch.size()] = nnz;
    parity_ = next;
    num_batch_ = static_cast<int32_t>(batch.size());
    return Status::kOk;
  }

  /// Parity of the buffer the last write filled (0 before any write).
  int parity() const noexcept { return parity_; }
  /// Sequences of the last write.
  int32_t num_batch() const noexcept { return num_batch_; }

  /// Queues on `stream` the kernel that moves staging buffer `parity` into device table `parity`,
  /// then an event that write() checks before it reuses the staging buffer. Capturable.
  [[nodiscard]] CudaError upload(int parity, Stream stream) noexcept;

  /// The device table of `parity` for a batch of `num_batch` rows (pointers fixed for the table's
  /// lifetime; page_slots_stride is max_pages).
  DeviceBatchTable table(int parity, int32_t num_batch) const noexcept;

  /// Times write() had to wait for an upload of two steps before (the device was behind).
  int64_t stalls() const noexcept { return stalls_; }

 private:
  struct Staging {
    int32_t* num_batch;   // [1]
    int64_t* num_tokens;  // [max_batch]
    int32_t* offsets;     // [max_batch + 1]
    int32_t* pages;       // [max_batch * max_resident] resident pages, batch order
    int32_t* slots;       // same shape: their slots
  };
  template <class CacheT>
  static int64_t page_tokens(const CacheT& cache) noexcept {
    return int64_t{cache.config().chunk_tokens} * cache.config().page_chunks;
  }
  Staging staging(int parity) const noexcept;
  bool staging_free(int parity) noexcept;  // waits for the upload that last read it
  void free_all() noexcept;

  int32_t max_batch_, max_resident_, max_pages_;
  int device_;
  int parity_ = 0;
  int32_t num_batch_ = 0;
  int64_t stalls_ = 0;
  size_t staging_bytes_ = 0;        // one parity's staging bytes
  size_t table_bytes_ = 0;          // one parity's device table bytes
  std::byte* h_staging_ = nullptr;  // [2][staging_bytes_], pinned and mapped
  std::byte* d_tables_ = nullptr;   // [2][table_bytes_]
  CUevent_st* uploaded_[2] = {nullptr, nullptr};
};

}  // namespace lsa::cuda
