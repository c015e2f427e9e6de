// The batch's resident sets and page slots on the device, double-buffered, for device-built views.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "lsa/cuda/cuda_error.hpp"
#include "lsa/cuda/view_builder.hpp"
#include "lsa/detail/batch_table_fill.hpp"
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
  /// it the current parity (detail::fill_batch_table: two lookups per sequence, plus its pages and
  /// slots when its resident set changed). Needs the cache's resident_version, length,
  /// resident_slots, resident_pages and config. Returns kUnknownSequence, or kBufferTooSmall when
  /// the batch, a resident set or a history exceeds the sizes given at construction (the current
  /// parity stays then); kDeviceError when waiting for that buffer's previous upload failed.
  template <class CacheT>
  [[nodiscard]] Status write(const CacheT& cache, std::span<const SeqId> batch) noexcept {
    if (static_cast<int64_t>(batch.size()) > max_batch_) return Status::kBufferTooSmall;
    const int next = parity_ ^ 1;
    if (!staging_free(next)) return Status::kDeviceError;
    // Into the next staging buffer; it becomes visible only when parity_ flips below.
    const Staging s = staging(next);
    const size_t memo = static_cast<size_t>(next) * static_cast<size_t>(max_batch_);
    if (Status st = lsa::detail::fill_batch_table(
            cache, batch,
            {s.num_tokens, s.counts, s.pages, s.slots, row_ids_.data() + memo,
             row_versions_.data() + memo, max_resident_, max_pages_});
        st != Status::kOk) {
      return st;
    }
    *s.num_batch = static_cast<int32_t>(batch.size());
    parity_ = next;
    num_batch_ = static_cast<int32_t>(batch.size());
    return Status::kOk;
  }

  /// Parity of the buffer the last write filled (0 before any write).
  int parity() const noexcept { return parity_; }
  /// Sequences of the last write.
  int32_t num_batch() const noexcept { return num_batch_; }

  /// Queues on `stream` the kernel that moves staging buffer `parity` into device table `parity`,
  /// then an event that write() checks before it reuses the staging buffer. Capturable: inside a
  /// capture the event is an external record node, so every replay records it.
  [[nodiscard]] CudaError upload(int parity, Stream stream) noexcept;

  /// The device table of `parity` (pointers fixed for the table's lifetime; page_slots_stride is
  /// max_pages). `num_batch` sizes the launches that read it; they serve the rows of the batch the
  /// last upload of this parity published (d_num_batch), so a graph captured with max_batch
  /// follows any smaller batch without re-capture.
  DeviceBatchTable table(int parity, int32_t num_batch) const noexcept;

  /// Times write() had to wait for an upload of two steps before (the device was behind).
  int64_t stalls() const noexcept { return stalls_; }

 private:
  struct Staging {
    int32_t* num_batch;   // [1]
    int64_t* num_tokens;  // [max_batch]
    int32_t* counts;      // [max_batch] resident pages per row
    int32_t* pages;       // [max_batch][max_resident] resident pages, row b at b * max_resident
    int32_t* slots;       // same shape: their slots
  };
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
  std::vector<SeqId> row_ids_;          // [2][max_batch]: what each staging row was written for
  std::vector<uint64_t> row_versions_;  // [2][max_batch]: its resident_version (0: never)
};

}  // namespace lsa::cuda
