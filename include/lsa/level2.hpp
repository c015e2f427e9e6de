// Level 2 (DeepSeek-style models): the model's top-k chunks, confined to the resident pages, as
// reserve positions for a sparse attention kernel. Host reference of lsa::cuda::level2_select.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <new>
#include <span>
#include <vector>

#include "lsa/chunker.hpp"
#include "lsa/status.hpp"

namespace lsa {

/// The sequences of one batch in host memory: lsa::cuda::DeviceBatchTable's arrays as spans.
struct HostBatchTable {
  std::span<const int32_t> resident_offsets;  ///< [num_batch + 1]: sequence b's resident pages are
                                              ///< resident_pages[offsets[b], offsets[b+1])
  std::span<const int32_t> resident_pages;    ///< strictly ascending logical pages of each sequence
  std::span<const int32_t> page_slots;        ///< [num_batch][page_slots_stride]: logical page ->
  int64_t page_slots_stride = 0;              ///< reserve slot (read for resident pages only)
  std::span<const int64_t> num_tokens;        ///< [num_batch] history lengths (num_batch = size)
};

namespace detail {

/// A chunk that may be chosen: its logit, logical index and reserve position.
struct Level2Candidate {
  float logit;
  int64_t chunk;
  int32_t position;
};

/// The selection order: higher logit first, ties to the lower logical chunk (-0 ties with +0).
inline bool level2_better(const Level2Candidate& a, const Level2Candidate& b) noexcept {
  return a.logit > b.logit || (a.logit == b.logit && a.chunk < b.chunk);
}

/// True when the resident set can be read: pages strictly ascending inside the history and the
/// page table, each with a slot whose reserve positions fit int32, and a logit for every chunk.
inline bool level2_row_valid(int64_t num_logits, int64_t num_tokens,
                             std::span<const int32_t> resident_pages,
                             std::span<const int32_t> page_slots, Chunker chunker) noexcept {
  if (num_tokens < 0 || chunker.num_chunks(num_tokens) > num_logits) return false;
  const int64_t num_pages = chunker.num_pages(num_tokens);
  const int64_t page_chunks = chunker.page_chunks();
  int64_t previous = -1;
  for (const int32_t page : resident_pages) {
    if (page <= previous || page >= num_pages || page >= std::ssize(page_slots)) return false;
    const int32_t slot = page_slots[static_cast<size_t>(page)];
    if (slot < 0 || int64_t{slot} * page_chunks + page_chunks - 1 > INT32_MAX) return false;
    previous = page;
  }
  return true;
}

/// Selects one row into `out` given a readable resident set; `candidates` is reused scratch.
/// Throws std::bad_alloc.
inline void level2_select_row(std::span<const float> chunk_logits, int64_t num_tokens,
                              std::span<const int32_t> resident_pages,
                              std::span<const int32_t> page_slots, Chunker chunker,
                              std::span<int32_t> out, std::vector<Level2Candidate>& candidates) {
  const int32_t page_chunks = chunker.page_chunks();
  const int64_t num_chunks = chunker.num_chunks(num_tokens);
  candidates.clear();
  candidates.reserve(resident_pages.size() * static_cast<size_t>(page_chunks));
  for (const int32_t page : resident_pages) {
    const int32_t first_position = page_slots[static_cast<size_t>(page)] * page_chunks;
    for (int32_t i = 0; i < page_chunks; ++i) {
      const int64_t chunk = int64_t{page} * page_chunks + i;
      if (chunk >= num_chunks) break;
      const float logit = chunk_logits[static_cast<size_t>(chunk)];
      if (!std::isnan(logit)) candidates.push_back({logit, chunk, first_position + i});
    }
  }
  const size_t taken = std::min(candidates.size(), out.size());
  std::partial_sort(candidates.begin(), candidates.begin() + static_cast<std::ptrdiff_t>(taken),
                    candidates.end(), level2_better);
  for (size_t i = 0; i < out.size(); ++i) out[i] = i < taken ? candidates[i].position : -1;
}

}  // namespace detail

/// One sequence's level-2 selection into `out` (k = out.size()): the k chunks with the best
/// logits among the chunks below chunker.num_chunks(num_tokens) of the resident pages, best first
/// (ties to the lower logical chunk; NaN logits are never chosen), each written as its reserve
/// position `page_slots[page] * page_chunks + chunk_in_page`, then -1 up to k. chunk_logits is
/// indexed by logical chunk and holds at least num_chunks(num_tokens) logits.
///
/// kInvalidArgument: out is empty or chunker sizes < 1 (nothing written), or the resident set
/// cannot be read (see HostBatchTable; out is all -1). kOutOfMemory: the candidate list could not
/// be allocated (nothing written).
[[nodiscard]] inline Status level2_select(std::span<const float> chunk_logits, int64_t num_tokens,
                                          std::span<const int32_t> resident_pages,
                                          std::span<const int32_t> page_slots, Chunker chunker,
                                          std::span<int32_t> out) noexcept {
  if (out.empty() || chunker.chunk_tokens() < 1 || chunker.page_chunks() < 1) {
    return Status::kInvalidArgument;
  }
  if (!detail::level2_row_valid(std::ssize(chunk_logits), num_tokens, resident_pages, page_slots,
                                chunker)) {
    std::fill(out.begin(), out.end(), -1);
    return Status::kInvalidArgument;
  }
  try {
    std::vector<detail::Level2Candidate> candidates;
    detail::level2_select_row(chunk_logits, num_tokens, resident_pages, page_slots, chunker, out,
                              candidates);
  } catch (const std::bad_alloc&) {
    return Status::kOutOfMemory;
  }
  return Status::kOk;
}

/// The level-2 selection of every sequence of a batch: row b of `out` ([num_batch][k]) is
/// level2_select of row b of `logits` ([num_batch][logits_stride]) over sequence b's resident
/// pages; lsa::cuda::level2_select writes the same bytes.
///
/// kInvalidArgument: k < 1, chunker sizes < 1, or spans that do not match the shapes (nothing
/// written); or a sequence whose resident set cannot be read: offsets outside resident_pages or
/// decreasing, num_tokens < 0, num_chunks(num_tokens) > logits_stride, pages not strictly ascending
/// or outside [0, num_pages(num_tokens)) or past page_slots_stride, a negative slot or one whose
/// positions overflow int32 (that row is all -1, the others are written). kBufferTooSmall: out
/// holds fewer than num_batch * k entries (nothing written). kOutOfMemory: the candidate list could
/// not be allocated (the rows before are written).
[[nodiscard]] inline Status level2_select(const HostBatchTable& table,
                                          std::span<const float> logits, int64_t logits_stride,
                                          Chunker chunker, int32_t k,
                                          std::span<int32_t> out) noexcept {
  const int64_t num_batch = std::ssize(table.num_tokens);
  // `rows` rows of `stride` entries fit in `size` entries; by division, so no product overflows.
  const auto fits = [num_batch](int64_t size, int64_t stride) {
    return stride == 0 || num_batch <= size / stride;
  };
  if (k < 1 || logits_stride < 0 || table.page_slots_stride < 0 || chunker.chunk_tokens() < 1 ||
      chunker.page_chunks() < 1 || std::ssize(table.resident_offsets) != num_batch + 1 ||
      !fits(std::ssize(table.page_slots), table.page_slots_stride) ||
      !fits(std::ssize(logits), logits_stride)) {
    return Status::kInvalidArgument;
  }
  if (!fits(std::ssize(out), k)) return Status::kBufferTooSmall;
  Status result = Status::kOk;
  std::vector<detail::Level2Candidate> candidates;
  for (int64_t b = 0; b < num_batch; ++b) {
    const std::span<int32_t> row = out.subspan(static_cast<size_t>(b * k), static_cast<size_t>(k));
    const int32_t begin = table.resident_offsets[static_cast<size_t>(b)];
    const int32_t end = table.resident_offsets[static_cast<size_t>(b + 1)];
    const bool offsets_ok = begin >= 0 && end >= begin && end <= std::ssize(table.resident_pages);
    const std::span<const int32_t> pages =
        offsets_ok ? table.resident_pages.subspan(static_cast<size_t>(begin),
                                                  static_cast<size_t>(end - begin))
                   : std::span<const int32_t>{};
    const std::span<const float> row_logits =
        logits.subspan(static_cast<size_t>(b * logits_stride), static_cast<size_t>(logits_stride));
    const std::span<const int32_t> row_slots =
        table.page_slots.subspan(static_cast<size_t>(b * table.page_slots_stride),
                                 static_cast<size_t>(table.page_slots_stride));
    const int64_t num_tokens = table.num_tokens[static_cast<size_t>(b)];
    if (!offsets_ok ||
        !detail::level2_row_valid(logits_stride, num_tokens, pages, row_slots, chunker)) {
      std::fill(row.begin(), row.end(), -1);
      result = Status::kInvalidArgument;
      continue;
    }
    try {
      detail::level2_select_row(row_logits, num_tokens, pages, row_slots, chunker, row, candidates);
    } catch (const std::bad_alloc&) {
      return Status::kOutOfMemory;
    }
  }
  return result;
}

}  // namespace lsa
