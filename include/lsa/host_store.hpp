// Host KV store: mirror + reserve + page records + slot allocation/LRU eviction + recall copies.
#pragma once

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "lsa/cache_config.hpp"
#include "lsa/detail/mirror.hpp"
#include "lsa/detail/recall_worker.hpp"
#include "lsa/detail/slot_lru.hpp"
#include "lsa/error.hpp"
#include "lsa/status.hpp"

namespace lsa {

/// Index of a page record in the store; shared prefixes share records.
using PageId = int32_t;

/// Byte and event counters kept by a store.
struct StoreCounters {
  int64_t recalled_pages = 0;  ///< pages copied mirror -> reserve
  int64_t sealed_pages = 0;    ///< pages copied reserve -> mirror
  int64_t evictions = 0;       ///< slots taken from a page that was not resident in any set
};

/// Host backend store: plain memory reserve, in-memory or file-backed mirror, optional worker thread.
class HostStore {
 public:
  /// Allocates the reserve and opens the mirror; throws lsa::Error when either fails.
  explicit HostStore(const CacheConfig& config)
      : page_bytes_(config.page_bytes()),
        num_slots_(config.num_slots),
        mirror_(page_bytes_, config.mirror_path),
        lru_(config.num_slots) {
    if (mirror_.open_errno() != 0) {
      throw Error("mirror_path '" + config.mirror_path +
                  "' must be a writable file path: " + std::strerror(mirror_.open_errno()));
    }
    try {
      reserve_.reset(new (std::align_val_t{64}) std::byte[static_cast<size_t>(page_bytes_ * num_slots_)]);
    } catch (const std::bad_alloc&) {
      throw Error("num_slots * page bytes (" + std::to_string(page_bytes_ * num_slots_) +
                  " B) could not be allocated for the reserve");
    }
    slot_page_.assign(static_cast<size_t>(num_slots_), -1);
    slot_job_.assign(static_cast<size_t>(num_slots_), 0);
    free_slots_.reserve(static_cast<size_t>(num_slots_));
    for (int32_t s = num_slots_ - 1; s >= 0; --s) free_slots_.push_back(s);
    if (config.recall_mode == RecallMode::kAsync) {
      worker_ = std::make_unique<detail::RecallWorker>(mirror_, page_bytes_);
    }
  }

  /// Bytes of one page (all layers contiguous).
  int64_t page_bytes() const noexcept { return page_bytes_; }
  /// Slots in the reserve.
  int32_t num_slots() const noexcept { return num_slots_; }
  /// Start of the reserve: slot s is at reserve() + s * page_bytes().
  std::byte* reserve() noexcept { return reserve_.get(); }
  /// Memory of one slot.
  std::byte* slot_data(int32_t slot) noexcept { return reserve_.get() + int64_t{slot} * page_bytes_; }
  /// Memory of one slot.
  const std::byte* slot_data(int32_t slot) const noexcept {
    return reserve_.get() + int64_t{slot} * page_bytes_;
  }
  /// True when copies run on a worker thread.
  bool async() const noexcept { return worker_ != nullptr; }
  /// Event counters.
  const StoreCounters& counters() const noexcept { return counters_; }
  /// Mirror cells in use.
  int64_t mirror_pages() const noexcept { return mirror_.used(); }

  /// A new unsealed page with one reference and no slot; -1 when memory runs out.
  PageId create_page() noexcept {
    if (!free_ids_.empty()) {
      const PageId id = free_ids_.back();
      free_ids_.pop_back();
      pages_[id] = Record{};
      return id;
    }
    try {
      pages_.emplace_back();
    } catch (const std::bad_alloc&) {
      return -1;
    }
    return static_cast<PageId>(pages_.size() - 1);
  }

  /// Reserves bookkeeping so that `pages` more page records need no allocation.
  Status reserve_pages(int64_t pages) noexcept {
    try {
      pages_.reserve(pages_.size() + static_cast<size_t>(pages));
      free_ids_.reserve(pages_.capacity());
    } catch (const std::bad_alloc&) {
      return Status::kOutOfMemory;
    }
    return mirror_.reserve(static_cast<int64_t>(pages_.capacity()));
  }

  /// Adds a reference (a forked sequence sharing the page).
  void retain(PageId id) noexcept { ++pages_[id].refs; }

  /// Drops a reference; the last one frees the slot and the mirror cell.
  void release(PageId id) noexcept {
    Record& r = pages_[id];
    if (--r.refs > 0) return;
    if (r.slot >= 0) free_slot(r.slot);
    if (r.cell >= 0) mirror_.release(r.cell);
    r = Record{};
    free_ids_.push_back(id);
  }

  /// References to a page.
  int32_t refs(PageId id) const noexcept { return pages_[id].refs; }
  /// Slot of a page, -1 when not in the reserve.
  int32_t slot_of(PageId id) const noexcept { return pages_[id].slot; }
  /// True when the mirror holds the page.
  bool sealed(PageId id) const noexcept { return pages_[id].cell >= 0; }
  /// Page held by a slot, -1 when free.
  PageId page_in_slot(int32_t slot) const noexcept { return slot_page_[slot]; }

  /// Marks a page as needed by one more resident set (never evicted while pinned).
  void pin(PageId id) noexcept {
    Record& r = pages_[id];
    if (r.pins++ == 0 && r.slot >= 0) lru_.remove(r.slot);
  }

  /// Undoes one pin; an unpinned sealed page becomes the most recent eviction candidate.
  void unpin(PageId id) noexcept {
    Record& r = pages_[id];
    if (--r.pins == 0 && r.slot >= 0 && r.cell >= 0) lru_.push_back(r.slot);
  }

  /// Pins on a page.
  int32_t pins(PageId id) const noexcept { return pages_[id].pins; }

  /// Slots that take_slot can hand out now (free ones and evictable ones).
  int32_t available_slots() const noexcept {
    return static_cast<int32_t>(free_slots_.size()) + lru_.size();
  }

  /// Gives `id` a slot, evicting the least recently used unpinned page if none is free.
  /// Precondition: available_slots() > 0 and the page has no slot.
  int32_t take_slot(PageId id) noexcept {
    int32_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = lru_.pop_front();
      wait_copies(slot_job_[slot]);  // a page dropped from a set in flight may still be copying
      pages_[slot_page_[slot]].slot = -1;
      ++counters_.evictions;
    }
    slot_page_[slot] = id;
    slot_job_[slot] = 0;
    pages_[id].slot = slot;
    if (pages_[id].pins == 0 && pages_[id].cell >= 0) lru_.push_back(slot);
    return slot;
  }

  /// Copies a page's slot into the mirror (it becomes sealed and immutable).
  Status seal(PageId id) noexcept {
    Record& r = pages_[id];
    if (r.cell >= 0) return Status::kOk;
    const int64_t cell = mirror_.allocate();
    if (cell < 0) return Status::kOutOfMemory;
    if (Status s = mirror_.write(cell, slot_data(r.slot)); s != Status::kOk) {
      mirror_.release(cell);
      return s;
    }
    r.cell = cell;
    ++counters_.sealed_pages;
    if (r.pins == 0) lru_.push_back(r.slot);
    return Status::kOk;
  }

  /// Forgets the mirror copy of a page that becomes writable again (a truncated tail).
  /// Precondition: the page is resident and has a single reference.
  void unseal(PageId id) noexcept {
    Record& r = pages_[id];
    if (r.cell < 0) return;
    mirror_.release(r.cell);
    r.cell = -1;
    lru_.remove(r.slot);
  }

  /// Gives a sealed page a slot and copies it from the mirror now.
  Status recall_sync(PageId id) noexcept {
    const int32_t slot = take_slot(id);
    if (Status s = mirror_.read(pages_[id].cell, slot_data(slot)); s != Status::kOk) {
      drop_slot(id);
      return s;
    }
    ++counters_.recalled_pages;
    return Status::kOk;
  }

  /// Gives a sealed, pinned page a slot and queues its copy; `ticket->remaining` must count it.
  void recall_async(PageId id, detail::RecallTicket* ticket) {
    const int32_t slot = take_slot(id);
    const int64_t cell = pages_[id].cell;
    slot_job_[slot] = worker_->submit({mirror_.memory(cell), cell, slot_data(slot), ticket});
    ++counters_.recalled_pages;
  }

  /// Async: worker job that fills `slot` (0: none); the slot's bytes are there once copies_done(it).
  uint64_t slot_job(int32_t slot) const noexcept { return slot_job_[slot]; }
  /// True when worker jobs up to `job` have finished (always without a worker).
  bool copies_done(uint64_t job) const noexcept { return worker_ == nullptr || worker_->completed() >= job; }
  /// False while an async recall is still copying into `slot`.
  bool slot_ready(int32_t slot) const noexcept { return copies_done(slot_job_[slot]); }
  /// Blocks until worker jobs up to `job` have finished (lifecycle calls only).
  void wait_copies(uint64_t job) const noexcept {
    if (worker_ != nullptr) worker_->wait_for(job);
  }

  /// Takes a page's slot back without saving it (a failed recall; the mirror still has it).
  void drop_slot(PageId id) noexcept {
    free_slot(pages_[id].slot);
  }

  /// Copies page bytes (from its slot or the mirror) into `dst`; for tests and forks.
  Status read_page(PageId id, std::byte* dst) const noexcept {
    const Record& r = pages_[id];
    if (r.slot >= 0 && slot_ready(r.slot)) {  // a slot still being recalled into: use the mirror
      std::memcpy(dst, slot_data(r.slot), static_cast<size_t>(page_bytes_));
      return Status::kOk;
    }
    return mirror_.read(r.cell, dst);
  }

 private:
  struct Record {
    int32_t refs = 1;
    int32_t pins = 0;
    int32_t slot = -1;
    int64_t cell = -1;
  };
  struct AlignedDelete {
    void operator()(std::byte* p) const noexcept { ::operator delete[](p, std::align_val_t{64}); }
  };

  void free_slot(int32_t slot) noexcept {
    lru_.remove(slot);
    pages_[slot_page_[slot]].slot = -1;
    slot_page_[slot] = -1;
    free_slots_.push_back(slot);
  }

  int64_t page_bytes_;
  int32_t num_slots_;
  detail::Mirror mirror_;
  detail::SlotLru lru_;
  std::unique_ptr<std::byte[], AlignedDelete> reserve_;
  std::vector<PageId> slot_page_;
  std::vector<uint64_t> slot_job_;  // async: worker job filling each slot (see slot_job)
  std::vector<int32_t> free_slots_;
  std::vector<Record> pages_;
  std::vector<PageId> free_ids_;
  StoreCounters counters_;
  std::unique_ptr<detail::RecallWorker> worker_;  // last: joined before the mirror goes away
};

}  // namespace lsa
