// Hooks into the test binary's global operator new (tests/unit/allocation_hooks.cpp): count this
// thread's heap allocations, or make large ones fail as under a memory limit.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lsa::testing {

namespace detail {
int64_t allocations_so_far() noexcept;
void set_counting(bool on) noexcept;
void set_allocation_limit(std::size_t max_bytes) noexcept;  // 0: no limit
}  // namespace detail

/// Counts heap allocations made by this thread while alive.
class CountAllocations {
 public:
  CountAllocations() : start_(detail::allocations_so_far()) { detail::set_counting(true); }
  ~CountAllocations() { detail::set_counting(false); }
  CountAllocations(const CountAllocations&) = delete;
  CountAllocations& operator=(const CountAllocations&) = delete;
  int64_t count() const { return detail::allocations_so_far() - start_; }

 private:
  int64_t start_;
};

/// While alive, a single allocation of more than `max_bytes` by this thread throws std::bad_alloc,
/// as it would under a memory limit (without touching the process's rlimits, which sanitizers
/// need room beyond).
class LimitAllocations {
 public:
  explicit LimitAllocations(std::size_t max_bytes) { detail::set_allocation_limit(max_bytes); }
  ~LimitAllocations() { detail::set_allocation_limit(0); }
  LimitAllocations(const LimitAllocations&) = delete;
  LimitAllocations& operator=(const LimitAllocations&) = delete;
};

}  // namespace lsa::testing
