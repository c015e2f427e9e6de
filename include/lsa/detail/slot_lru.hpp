// Intrusive LRU list of evictable reserve slots: O(1) insert, remove and pop-oldest.
#pragma once

#include <cstdint>
#include <vector>

namespace lsa::detail {

/// Slots whose page may be evicted, oldest (least recently released from a resident set) first.
class SlotLru {
 public:
  /// A list over slots [0, num_slots), initially empty.
  explicit SlotLru(int32_t num_slots)
      : prev_(static_cast<size_t>(num_slots), -1),
        next_(static_cast<size_t>(num_slots), -1),
        linked_(static_cast<size_t>(num_slots), 0) {}

  /// Slots in the list.
  int32_t size() const noexcept { return size_; }
  /// True when `slot` is in the list.
  bool contains(int32_t slot) const noexcept { return linked_[slot] != 0; }

  /// Appends `slot` as the most recent.
  void push_back(int32_t slot) noexcept {
    prev_[slot] = tail_;
    next_[slot] = -1;
    if (tail_ >= 0)
      next_[tail_] = slot;
    else
      head_ = slot;
    tail_ = slot;
    linked_[slot] = 1;
    ++size_;
  }

  /// Unlinks `slot` (no-op when absent).
  void remove(int32_t slot) noexcept {
    if (!linked_[slot]) return;
    if (prev_[slot] >= 0)
      next_[prev_[slot]] = next_[slot];
    else
      head_ = next_[slot];
    if (next_[slot] >= 0)
      prev_[next_[slot]] = prev_[slot];
    else
      tail_ = prev_[slot];
    linked_[slot] = 0;
    --size_;
  }

  /// Unlinks and returns the oldest slot; -1 when empty.
  int32_t pop_front() noexcept {
    const int32_t slot = head_;
    if (slot >= 0) remove(slot);
    return slot;
  }

 private:
  std::vector<int32_t> prev_, next_;
  std::vector<uint8_t> linked_;
  int32_t head_ = -1, tail_ = -1, size_ = 0;
};

}  // namespace lsa::detail
