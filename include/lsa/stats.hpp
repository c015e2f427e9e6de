// Counters an engine reads to see what the cache is doing.
#pragma once

#include <cstdint>

namespace lsa {

/// Snapshot of a cache's state and event counters since construction.
struct Stats {
  int64_t live_sequences = 0;     ///< sequences added and not removed
  int64_t total_pages = 0;        ///< logical pages of all live sequences
  int64_t resident_pages = 0;     ///< pages in live sequences' resident sets (shared pages once per set)
  double resident_fraction = 0;   ///< resident_pages / total_pages (1 when empty)
  int64_t reserve_slots_used = 0; ///< reserve slots holding a page
  int64_t mirror_pages = 0;       ///< mirror cells in use
  int64_t refreshes = 0;          ///< refreshes that scored and selected
  int64_t recalled_pages = 0;     ///< pages copied mirror -> reserve
  int64_t recalled_bytes = 0;     ///< bytes copied mirror -> reserve
  int64_t sealed_pages = 0;       ///< pages copied reserve -> mirror
  int64_t evictions = 0;          ///< reserve slots reclaimed from unpinned pages
  int64_t capacity_refusals = 0;  ///< selected pages not made resident because the reserve was full
  int64_t recall_errors = 0;      ///< recalls that failed (I/O, bad digest); page not listed
  int64_t corrupt_recalls = 0;    ///< of those, recalls whose bytes did not match the digest
};

}  // namespace lsa
