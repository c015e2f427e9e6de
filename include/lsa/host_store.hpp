// Host KV store: plain memory reserve, in-memory or file-backed mirror, optional copy worker.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "lsa/cache_config.hpp"
#include "lsa/detail/mirror.hpp"
#include "lsa/detail/recall_worker.hpp"
#include "lsa/detail/slot_book.hpp"
#include "lsa/error.hpp"
#include "lsa/status.hpp"

namespace lsa {

/// Which way a file mirror's bytes move.
enum class MirrorIo : uint8_t {
  kRead,   ///< mirror -> reserve or caller (a recall, read_token)
  kWrite,  ///< reserve or caller -> mirror (sealing a page)
};

/// Optional settings of a HostStore (`SparseKVCache<C, S, P, HostStore>(config, options)`).
struct HostStoreOptions {
  /// Asked before each read or write of a file-backed mirror page, always on the engine thread
  /// (for an async recall, when it is queued): true makes that I/O fail as a failing disk would
  /// (kIoError). Tests inject mirror faults with it; empty: never.
  std::function<bool(MirrorIo op, int64_t cell)> fail_io;
};

/// Host backend store: plain memory reserve, in-memory or file-backed mirror, optional worker
/// thread. The bookkeeping (records, slots, pins, eviction order) is detail::SlotBook's; this class
/// moves the bytes. Every page in the mirror carries a digest (XXH3) taken when it was sealed; a
/// read back that does not match it fails with kCorrupt. Every store SparseKVCache takes has the
/// members below.
class HostStore : public detail::SlotBook {
 public:
  /// Allocates the reserve and opens the mirror; throws lsa::Error when either fails.
  explicit HostStore(const CacheConfig& config, HostStoreOptions options = {})
      : detail::SlotBook(config.num_slots),
        page_bytes_(config.page_bytes()),
        layer_bytes_(config.bytes_per_page_per_layer()),
        token_bytes_(config.bytes_per_token_per_layer),
        num_layers_(config.num_layers),
        page_tokens_(static_cast<int32_t>(config.page_tokens())),
        fail_io_(std::move(options.fail_io)),
        mirror_(page_bytes_, detail::MirrorOptions{.path = config.mirror_path,
                                                   .overwrite = config.mirror_overwrite,
                                                   .digests = true}) {
    if (!mirror_.open_error().empty()) {
      throw Error("mirror_path '" + config.mirror_path + "' " + mirror_.open_error());
    }
    try {
      reserve_.reset(new (std::align_val_t{64})
                         std::byte[static_cast<size_t>(page_bytes_ * num_slots())]);
    } catch (const std::bad_alloc&) {
      throw Error("num_slots * page bytes (" + std::to_string(page_bytes_ * num_slots()) +
                  " B) could not be allocated for the reserve");
    }
    slot_job_.assign(static_cast<size_t>(num_slots()), 0);
    slot_failed_.reset(new std::atomic<uint8_t>[static_cast<size_t>(num_slots())]);
    for (int32_t s = 0; s < num_slots(); ++s) slot_failed_[s].store(0, std::memory_order_relaxed);
    if (config.recall_mode == RecallMode::kAsync) {
      worker_ = std::make_unique<detail::RecallWorker>(mirror_, page_bytes_);
    }
  }

  /// Bytes of one page (all layers contiguous).
  int64_t page_bytes() const noexcept { return page_bytes_; }
  /// Start of the reserve: slot s is at reserve() + s * page_bytes().
  std::byte* reserve() noexcept { return reserve_.get(); }
  /// Memory of one slot.
  std::byte* slot_data(int32_t slot) noexcept {
    return reserve_.get() + int64_t{slot} * page_bytes_;
  }
  /// Memory of one slot.
  const std::byte* slot_data(int32_t slot) const noexcept {
    return reserve_.get() + int64_t{slot} * page_bytes_;
  }
  /// True when copies run on a worker thread.
  bool async() const noexcept { return worker_ != nullptr; }
  /// Mirror cells in use.
  int64_t mirror_pages() const noexcept { return mirror_.used(); }

  /// Reserves bookkeeping so that `pages` more page records need no allocation.
  Status reserve_pages(int64_t pages) noexcept {
    if (Status s = reserve_records(pages); s != Status::kOk) return s;
    return mirror_.reserve(record_capacity());
  }

  /// Drops a reference; the last one frees the slot and the mirror cell.
  void release(PageId id) noexcept {
    if (const int64_t cell = release_record(id); cell >= 0) mirror_.release(cell);
  }

  /// Gives `id` a slot, evicting the least recently used unpinned page if none is free.
  /// Precondition: available_slots() > 0 and the page has no slot.
  int32_t take_slot(PageId id) noexcept {
    const SlotGrant grant = take_slot_for(id);
    // A page dropped from a set in flight may still be copying into the slot.
    if (grant.evicted) wait_copies(slot_job_[grant.slot]);
    slot_job_[grant.slot] = 0;
    slot_failed_[grant.slot].store(0, std::memory_order_relaxed);
    return grant.slot;
  }

  /// Copies a page's slot into the mirror (it becomes sealed and immutable).
  Status seal(PageId id) noexcept {
    if (sealed(id)) return Status::kOk;
    return seal_from(id, slot_data(slot_of(id)));
  }

  /// Writes page `id` as it is once `kv` ([page_tokens - first][num_layers][token bytes], as
  /// append's kv) fills its tokens [first, page_tokens) into a new mirror cell (*cell), without
  /// sealing the page yet: tokens before `first` come from its slot (first > 0 needs one; a page
  /// without a slot is written from `kv` alone: a prefill's middle page, straight to the mirror).
  /// commit_seal seals the page with that cell, cancel_seal gives the cell back. Lets a call write
  /// what may fail before it changes anything.
  Status stage_seal(PageId id, int32_t first, const std::byte* kv, int64_t* cell) noexcept {
    if (staging_ == nullptr) {
      staging_.reset(new (std::nothrow) std::byte[static_cast<size_t>(page_bytes_)]);
      if (staging_ == nullptr) return Status::kOutOfMemory;
    }
    if (first > 0)
      std::memcpy(staging_.get(), slot_data(slot_of(id)), static_cast<size_t>(page_bytes_));
    transpose_tokens(staging_.get(), first, page_tokens_ - first, kv);
    *cell = mirror_.allocate();
    if (*cell < 0) return Status::kOutOfMemory;
    Status s = injected_fault(MirrorIo::kWrite, *cell);
    if (s == Status::kOk) s = mirror_.write(*cell, staging_.get());
    if (s != Status::kOk) {
      mirror_.release(*cell);
      *cell = -1;
    }
    return s;
  }
  /// Seals `id` with the cell stage_seal wrote.
  void commit_seal(PageId id, int64_t cell) noexcept { mark_sealed(id, cell); }
  /// Gives back a cell stage_seal wrote (the call that staged it failed).
  void cancel_seal(int64_t cell) noexcept { mirror_.release(cell); }

  /// Forgets the mirror copy of a page that becomes writable again (a truncated tail).
  /// Precondition: the page is resident and has a single reference.
  void unseal(PageId id) noexcept {
    if (const int64_t cell = mark_unsealed(id); cell >= 0) mirror_.release(cell);
  }

  /// Gives a sealed page a slot and copies it from the mirror now, checking its digest.
  Status recall_sync(PageId id) noexcept {
    const int32_t slot = take_slot(id);
    Status s = injected_fault(MirrorIo::kRead, cell_of(id));
    if (s == Status::kOk) s = mirror_.read(cell_of(id), slot_data(slot));
    if (s != Status::kOk) {
      drop_slot(id);
      return s;
    }
    count_recall();
    return Status::kOk;
  }

  /// Gives a sealed, pinned page a slot and queues its copy; `ticket->remaining` must count it.
  void recall_async(PageId id, detail::RecallTicket* ticket) {
    const int32_t slot = take_slot(id);
    const int64_t cell = cell_of(id);
    detail::RecallJob job{mirror_.memory(cell), cell, slot_data(slot), ticket, &slot_failed_[slot]};
    job.check = mirror_.digests();
    job.digest = mirror_.digest(cell);
    job.fail = injected_fault(MirrorIo::kRead, cell) != Status::kOk;
    slot_job_[slot] = worker_->submit(job);
    count_recall();
  }

  /// Starts the copies recall_async queued (the worker starts each one as it is queued).
  void submit_recalls() noexcept {}

  /// Async: worker job that fills `slot` (0: none); the slot's bytes are there once
  /// copies_done(it).
  uint64_t slot_job(int32_t slot) const noexcept { return slot_job_[slot]; }
  /// True when worker jobs up to `job` have finished (always without a worker).
  bool copies_done(uint64_t job) const noexcept {
    return worker_ == nullptr || worker_->completed() >= job;
  }
  /// False while an async recall is still copying into `slot`.
  bool slot_ready(int32_t slot) const noexcept { return copies_done(slot_job_[slot]); }
  /// True when the last copy into `slot` failed (I/O or digest): its bytes are not the page's.
  /// Meaningful once slot_ready(slot); cleared when the slot changes hands.
  bool slot_failed(int32_t slot) const noexcept {
    return slot_failed_[slot].load(std::memory_order_relaxed) != 0;
  }
  /// Blocks until worker jobs up to `job` have finished (lifecycle calls only).
  void wait_copies(uint64_t job) const noexcept {
    if (worker_ != nullptr) worker_->wait_for(job);
  }

  /// Writes the KV of `num_tokens` consecutive tokens into `slot` from token offset `first`:
  /// `src` is [num_tokens][num_layers][bytes_per_token_per_layer].
  void write_tokens(int32_t slot, int32_t first, int32_t num_tokens,
                    const std::byte* src) noexcept {
    transpose_tokens(slot_data(slot), first, num_tokens, src);
  }

  /// Copies a whole page of bytes (page_bytes()) into `slot`.
  void write_page(int32_t slot, const std::byte* src) noexcept {
    std::memcpy(slot_data(slot), src, static_cast<size_t>(page_bytes_));
  }

  /// Copies slot `from` into slot `to` (a forked sequence's private tail).
  void copy_slot(int32_t to, int32_t from) noexcept {
    std::memcpy(slot_data(to), slot_data(from), static_cast<size_t>(page_bytes_));
  }

  /// Copies page bytes (from its slot or the mirror) into `dst`; for tests and forks.
  Status read_page(PageId id, std::byte* dst) const noexcept {
    return read_bytes(id, 0, dst, page_bytes_);
  }

  /// Copies `bytes` bytes at `offset` of a page into `dst`: from its slot, or from the mirror
  /// (checked against the page's digest) while a recall is still copying into the slot or when
  /// that copy failed.
  Status read_bytes(PageId id, int64_t offset, std::byte* dst, int64_t bytes) const noexcept {
    const int32_t slot = slot_of(id);
    if (slot >= 0 && slot_ready(slot) && !slot_failed(slot)) {
      std::memcpy(dst, slot_data(slot) + offset, static_cast<size_t>(bytes));
      return Status::kOk;
    }
    if (Status s = injected_fault(MirrorIo::kRead, cell_of(id)); s != Status::kOk) return s;
    return mirror_.read(cell_of(id), offset, dst, bytes);
  }

 private:
  struct AlignedDelete {
    void operator()(std::byte* p) const noexcept { ::operator delete[](p, std::align_val_t{64}); }
  };

  // kIoError when the fault hook fails this file mirror I/O.
  Status injected_fault(MirrorIo op, int64_t cell) const noexcept {
    return fail_io_ && mirror_.file_backed() && fail_io_(op, cell) ? Status::kIoError : Status::kOk;
  }

  Status seal_from(PageId id, const std::byte* src) noexcept {
    const int64_t cell = mirror_.allocate();
    if (cell < 0) return Status::kOutOfMemory;
    Status s = injected_fault(MirrorIo::kWrite, cell);
    if (s == Status::kOk) s = mirror_.write(cell, src);
    if (s != Status::kOk) {
      mirror_.release(cell);
      return s;
    }
    mark_sealed(id, cell);
    return Status::kOk;
  }

  // Token-major KV ([num_tokens][num_layers][token bytes]) into page layout at token `first`.
  void transpose_tokens(std::byte* page, int32_t first, int32_t num_tokens,
                        const std::byte* src) const noexcept {
    for (int32_t i = 0; i < num_tokens; ++i) {
      for (int32_t layer = 0; layer < num_layers_; ++layer) {
        std::memcpy(page + layer * layer_bytes_ + int64_t{first + i} * token_bytes_,
                    src + (int64_t{i} * num_layers_ + layer) * token_bytes_,
                    static_cast<size_t>(token_bytes_));
      }
    }
  }

  int64_t page_bytes_;
  int64_t layer_bytes_;
  int64_t token_bytes_;
  int32_t num_layers_;
  int32_t page_tokens_;
  std::function<bool(MirrorIo, int64_t)> fail_io_;
  detail::Mirror mirror_;
  std::unique_ptr<std::byte[], AlignedDelete> reserve_;
  std::unique_ptr<std::byte[]> staging_;  // stage_seal's page in page layout
  std::vector<uint64_t> slot_job_;  // async: worker job filling each slot (see slot_job)
  std::unique_ptr<std::atomic<uint8_t>[]> slot_failed_;  // see slot_failed; set by the worker
  std::unique_ptr<detail::RecallWorker> worker_;  // last: joined before the mirror goes away
};

}  // namespace lsa
