// The KVStore concept: what SparseKVCache asks of the memory behind it (host or device).
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>

#include "lsa/detail/recall_worker.hpp"
#include "lsa/detail/slot_book.hpp"
#include "lsa/status.hpp"

namespace lsa {

/// A store owns the reserve (fast tier), the mirror (slow tier) and the copies between them; the
/// page bookkeeping comes from detail::SlotBook. Constructed as `S(const CacheConfig&,
/// options...)`. HostStore is the reference; cuda::CudaStore keeps the reserve in device memory.
/// Optional: `stage_seal(id, first, kv, &cell)`, `commit_seal(id, cell)` and `cancel_seal(cell)`
/// (see HostStore) write a page from append's KV into the mirror before the call commits. A store
/// that has them lets a prefill of any length through a reserve of kmax_pages (middle pages go
/// straight to the mirror) and lets a decode append at the minimum reserve seal the tail page it
/// completes before the next page needs that slot; without them a prefill needs a slot per page.
/// Optional: `status()` (noexcept, a Status) for a store whose failures are sticky (a device
/// store): once it is not kOk, step, append, commit, truncate and fork return it unchanged.
template <class S>
concept KVStore = std::derived_from<S, detail::SlotBook> &&
    requires(S& s, const S& cs, PageId id, int32_t slot, uint64_t job, std::byte* dst,
             const std::byte* src, int64_t n, detail::RecallTicket* ticket) {
  // Bytes of one page, all layers contiguous.
  { cs.page_bytes() }
  noexcept->std::same_as<int64_t>;
  // Address of a slot in the reserve (device memory for a device store).
  { s.slot_data(slot) }
  noexcept->std::same_as<std::byte*>;
  // True when recalls complete off the calling thread (the new set swaps in later).
  { cs.async() }
  noexcept->std::same_as<bool>;
  // Mirror cells in use.
  { cs.mirror_pages() }
  noexcept->std::same_as<int64_t>;
  // Room for n more page records (and mirror cells) without allocating.
  { s.reserve_pages(n) }
  noexcept->std::same_as<Status>;
  // Drops a reference; the last frees slot and mirror cell.
  { s.release(id) }
  noexcept->std::same_as<void>;
  // A slot for a page (evicting the least recently used unpinned page); safe to overwrite.
  { s.take_slot(id) }
  noexcept->std::same_as<int32_t>;
  // Copies a page's slot to the mirror; unseal forgets that copy (a truncated tail).
  { s.seal(id) }
  noexcept->std::same_as<Status>;
  { s.unseal(id) }
  noexcept->std::same_as<void>;
  // Recalls a sealed page into a new slot: visible to the next view (sync) or once its copy
  // job completes (async; the ticket counts it and submit_recalls starts the queued copies).
  { s.recall_sync(id) }
  noexcept->std::same_as<Status>;
  { s.recall_async(id, ticket) } -> std::same_as<void>;
  { s.submit_recalls() }
  noexcept->std::same_as<void>;
  // Copy jobs: the last one touching a slot, whether jobs up to one are done, waiting for them.
  { cs.slot_job(slot) }
  noexcept->std::same_as<uint64_t>;
  { cs.copies_done(job) }
  noexcept->std::same_as<bool>;
  { cs.slot_ready(slot) }
  noexcept->std::same_as<bool>;
  // True when the last copy into a slot failed: its bytes are not the page's (never listed).
  { cs.slot_failed(slot) }
  noexcept->std::same_as<bool>;
  { s.wait_copies(job) }
  noexcept->std::same_as<void>;
  // Byte movement the cache does on the engine's behalf (host memory sources and targets).
  { s.write_tokens(slot, slot, slot, src) }
  noexcept->std::same_as<void>;
  { s.write_page(slot, src) }
  noexcept->std::same_as<void>;
  { s.copy_slot(slot, slot) }
  noexcept->std::same_as<void>;
  { cs.read_page(id, dst) }
  noexcept->std::same_as<Status>;
  { cs.read_bytes(id, n, dst, n) }
  noexcept->std::same_as<Status>;
};

}  // namespace lsa
