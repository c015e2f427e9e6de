// Digest of a sealed page: kept with the page in the mirror (and any slower tier) and checked
// whenever the page is read back, so a page that changed behind the cache is never returned.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lsa::detail {

/// XXH3 64-bit of `bytes` bytes (xxHash from libxxhash-dev, compiled into the lsa library with the
/// fastest code path this CPU runs: AVX2 when present, else SSE2).
uint64_t page_digest(const std::byte* data, int64_t bytes) noexcept;

}  // namespace lsa::detail
