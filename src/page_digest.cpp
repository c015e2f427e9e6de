// lsa::detail::page_digest: XXH3 64-bit, inlined from xxhash.h (no link dependency), with a
// run-time choice between this file's baseline build (SSE2 on x86-64) and page_digest_avx2.cpp.
#include "lsa/detail/page_digest.hpp"

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "lsa/detail/cpu_dispatch.hpp"

namespace lsa::detail {

#if LSA_X86_SIMD && defined(LSA_PAGE_DIGEST_AVX2)
uint64_t page_digest_avx2(const std::byte* data, int64_t bytes) noexcept;  // page_digest_avx2.cpp
#endif

uint64_t page_digest(const std::byte* data, int64_t bytes) noexcept {
#if LSA_X86_SIMD && defined(LSA_PAGE_DIGEST_AVX2)
  // XXH3 is one function of the bytes whatever the vector width: both paths give the same digest.
  if (cpu_has_avx2_fma_f16c()) return page_digest_avx2(data, bytes);
#endif
  return XXH3_64bits(data, static_cast<size_t>(bytes));
}

}  // namespace lsa::detail
