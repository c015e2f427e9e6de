// Writes a batch's resident pages, their slots and the history lengths into fixed-stride rows: the
// host half of a device-built view (cuda::DevicePageTable), kept CUDA-free so that it is tested and
// measured on any CPU.
#pragma once

#include <algorithm>
#include <cstdint>
#include <span>

#include "lsa/status.hpp"
#include "lsa/types.hpp"

namespace lsa::detail {

/// Rows of one batch table buffer, row b at b * max_resident, and what each row last held.
struct BatchTableRows {
  int64_t* num_tokens;     ///< [max_batch] history lengths
  int32_t* counts;         ///< [max_batch] resident pages of each row
  int32_t* pages;          ///< [max_batch][max_resident] resident logical pages, ascending
  int32_t* slots;          ///< same shape: their reserve slots
  SeqId* row_ids;          ///< [max_batch] the sequence each row was last written for
  uint64_t* row_versions;  ///< [max_batch] its resident_version then (0: never written)
  int64_t max_resident;    ///< room per row
  int64_t max_pages;       ///< longest history, in pages, a row may have
};

/// Brings `rows` up to date for `batch` after cache.step: every row gets its sequence's length,
/// and only rows whose sequence or resident_version changed since they were last written get
/// their pages and slots again (two lookups per unchanged row). kUnknownSequence, or
/// kBufferTooSmall when a resident set or a history does not fit; rows written before the failure
/// are correct for what they record.
template <class CacheT>
Status fill_batch_table(const CacheT& cache, std::span<const SeqId> batch,
                        const BatchTableRows& rows) noexcept {
  const int64_t page_tokens = int64_t{cache.config().chunk_tokens} * cache.config().page_chunks;
  for (size_t b = 0; b < batch.size(); ++b) {
    const SeqId id = batch[b];
    const uint64_t version = cache.resident_version(id);
    if (version == 0) return Status::kUnknownSequence;
    const int64_t length = cache.length(id);
    if ((length + page_tokens - 1) / page_tokens > rows.max_pages) return Status::kBufferTooSmall;
    rows.num_tokens[b] = length;
    if (rows.row_ids[b] == id && rows.row_versions[b] == version) continue;
    const int64_t at = static_cast<int64_t>(b) * rows.max_resident;
    const int64_t n =
        cache.resident_slots(id, std::span<int32_t>(rows.slots + at, rows.max_resident));
    if (n < 0) return Status::kBufferTooSmall;
    const std::span<const int32_t> resident = cache.resident_pages(id);
    std::copy(resident.begin(), resident.end(), rows.pages + at);
    rows.counts[b] = static_cast<int32_t>(n);
    rows.row_ids[b] = id;
    rows.row_versions[b] = version;
  }
  return Status::kOk;
}

}  // namespace lsa::detail
