// Bookkeeping every KV store shares: page records, slot ownership, pins, LRU eviction order.
#pragma once

#include <cstdint>
#include <new>
#include <vector>

#include "lsa/detail/slot_lru.hpp"
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

namespace detail {

/// Which page owns which reserve slot, which pages are pinned by resident sets, which mirror cell
/// holds each sealed page, and the least-recently-released order of evictable slots. Moves no
/// bytes: a store derives from it and adds the memory (reserve, mirror, copies).
class SlotBook {
 public:
  /// Bookkeeping for `num_slots` reserve slots, all free.
  explicit SlotBook(int32_t num_slots) : num_slots_(num_slots), lru_(num_slots) {
    slot_page_.assign(static_cast<size_t>(num_slots_), -1);
    free_slots_.reserve(static_cast<size_t>(num_slots_));
    for (int32_t s = num_slots_ - 1; s >= 0; --s) free_slots_.push_back(s);
  }

  /// Slots in the reserve.
  int32_t num_slots() const noexcept { return num_slots_; }
  /// Event counters.
  const StoreCounters& counters() const noexcept { return counters_; }

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

  /// Adds a reference (a forked sequence sharing the page).
  void retain(PageId id) noexcept { ++pages_[id].refs; }

  /// References to a page.
  int32_t refs(PageId id) const noexcept { return pages_[id].refs; }
  /// Slot of a page, -1 when not in the reserve.
  int32_t slot_of(PageId id) const noexcept { return pages_[id].slot; }
  /// True when the mirror holds the page.
  bool sealed(PageId id) const noexcept { return pages_[id].cell >= 0; }
  /// Mirror cell of a sealed page, -1 otherwise.
  int64_t cell_of(PageId id) const noexcept { return pages_[id].cell; }
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

  /// Takes a page's slot back without saving it (a failed recall; the mirror still has it).
  /// Precondition: no copy into the slot is in flight.
  void drop_slot(PageId id) noexcept { free_slot(pages_[id].slot); }

  /// Counts one page copied mirror -> reserve.
  void count_recall() noexcept { ++counters_.recalled_pages; }

 protected:
  /// Reserves records so that `pages` more create_page calls need no allocation.
  Status reserve_records(int64_t pages) noexcept {
    try {
      pages_.reserve(pages_.size() + static_cast<size_t>(pages));
      free_ids_.reserve(pages_.capacity());
    } catch (const std::bad_alloc&) {
      return Status::kOutOfMemory;
    }
    return Status::kOk;
  }

  /// Record capacity (an upper bound of live pages, hence of mirror cells needed).
  int64_t record_capacity() const noexcept { return static_cast<int64_t>(pages_.capacity()); }

  /// What take_slot_for did: the slot, and whether a page was evicted from it.
  struct SlotGrant {
    int32_t slot;
    bool evicted;
  };

  /// Gives `id` a slot, evicting the least recently used unpinned page if none is free. The store
  /// must make the slot's previous bytes safe to overwrite. Precondition: available_slots() > 0.
  SlotGrant take_slot_for(PageId id) noexcept {
    SlotGrant grant{-1, false};
    if (!free_slots_.empty()) {
      grant.slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      grant = {lru_.pop_front(), true};
      pages_[slot_page_[grant.slot]].slot = -1;
      ++counters_.evictions;
    }
    slot_page_[grant.slot] = id;
    pages_[id].slot = grant.slot;
    if (pages_[id].pins == 0 && pages_[id].cell >= 0) lru_.push_back(grant.slot);
    return grant;
  }

  /// Drops a reference; the last one frees the slot and returns the mirror cell to give back
  /// (-1 when the page was not sealed or is still referenced).
  int64_t release_record(PageId id) noexcept {
    Record& r = pages_[id];
    if (--r.refs > 0) return -1;
    if (r.slot >= 0) free_slot(r.slot);
    const int64_t cell = r.cell;
    r = Record{};
    free_ids_.push_back(id);
    return cell;
  }

  /// Records that the mirror now holds the page in `cell`; an unpinned page with a slot becomes
  /// evictable (a page sealed straight from the engine's KV has none).
  void mark_sealed(PageId id, int64_t cell) noexcept {
    Record& r = pages_[id];
    r.cell = cell;
    ++counters_.sealed_pages;
    if (r.pins == 0 && r.slot >= 0) lru_.push_back(r.slot);
  }

  /// Forgets the mirror cell of a page that becomes writable again; returns the cell (-1: none).
  int64_t mark_unsealed(PageId id) noexcept {
    Record& r = pages_[id];
    const int64_t cell = r.cell;
    if (cell < 0) return -1;
    r.cell = -1;
    if (r.slot >= 0) lru_.remove(r.slot);
    return cell;
  }

 private:
  struct Record {
    int32_t refs = 1;
    int32_t pins = 0;
    int32_t slot = -1;
    int64_t cell = -1;
  };

  void free_slot(int32_t slot) noexcept {
    lru_.remove(slot);
    pages_[slot_page_[slot]].slot = -1;
    slot_page_[slot] = -1;
    free_slots_.push_back(slot);
  }

  int32_t num_slots_;
  SlotLru lru_;
  std::vector<PageId> slot_page_;
  std::vector<int32_t> free_slots_;
  std::vector<Record> pages_;
  std::vector<PageId> free_ids_;
  StoreCounters counters_;
};

}  // namespace detail
}  // namespace lsa
