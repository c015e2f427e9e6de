// The per-step attention view (CSR, padded slot lists, block table) built on the device.
#pragma once

#include <cstdint>

#include "lsa/chunker.hpp"
#include "lsa/cuda/cuda_error.hpp"
#include "lsa/view.hpp"

namespace lsa::cuda {

/// Device state of the sequences of one batch, in batch order (all device memory).
struct DeviceBatchTable {
  int32_t num_batch = 0;  ///< sequences in the batch; with d_num_batch, the most it may hold
                          ///< (launches are sized for it: fixed when captured in a graph)
  const int32_t* d_resident_offsets = nullptr;  ///< [num_batch + 1]: sequence b's resident pages
                                                ///< are d_resident_pages[offsets[b], offsets[b+1])
  const int32_t* d_resident_pages = nullptr;  ///< ascending logical pages of each sequence
  const int32_t* d_page_slots = nullptr;      ///< [num_batch][page_slots_stride]: logical page ->
  int64_t page_slots_stride = 0;              ///< reserve slot (read for resident pages only)
  const int64_t* d_num_tokens = nullptr;      ///< [num_batch] history lengths
  const int32_t* d_num_batch = nullptr;  ///< optional [1]: the step's sequences (<= num_batch),
                                         ///< read on the device; rows past it are left as they were
};

/// Writes the view of the batch into `view` (whose pointers are device memory), byte-identical to
/// what SparseKVCache::step writes for the same resident sets and slots: every entry up to each
/// buffer's capacity, padding -1; a format whose pointers are null is skipped.
///
/// *d_status receives an lsa::Status value: kOk; kBufferTooSmall (a buffer cannot hold the view,
/// the checks of SparseKVCache::step; nothing else is written); kInvalidArgument (a row whose
/// offsets decrease, or a resident page outside [0, num_pages) or past page_slots_stride; nothing
/// else is written). Two kernels (the checks, then the writes), no allocation, no
/// synchronization: capturable in a CUDA graph and replayed as the table changes.
/// Returns kInvalidValue when the CSR pointers are only partly set or other pointers are missing.
[[nodiscard]] CudaError build_view(const DeviceBatchTable& table, Chunker chunker,
                                   const ViewBuffers& view, int32_t* d_status,
                                   Stream stream) noexcept;

/// Writes, per sequence of the batch, where the KV of its newest token goes as a flat token index
/// into the reserve: d_slot_mapping[b] = slot * page_tokens + offset (the slot_mapping tensor of
/// vLLM-style KV-write kernels), or -1 for an empty history. The tail page is always resident, so
/// its slot is in the table. One kernel, capturable. kInvalidValue on missing pointers.
[[nodiscard]] CudaError write_slot_mapping(const DeviceBatchTable& table, Chunker chunker,
                                           int64_t* d_slot_mapping, Stream stream) noexcept;

}  // namespace lsa::cuda
