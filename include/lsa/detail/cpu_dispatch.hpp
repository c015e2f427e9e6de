// Run-time choice between the AVX-512, AVX2/FMA/F16C and portable kernels.
//
// Consumers compile lsa headers without -march flags; the x86 kernels carry their own
// __attribute__((target(...))) and run only when the CPU reports the features.
#pragma once

#include <atomic>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__)) && \
    !defined(LSA_NO_SIMD) && !defined(__CUDACC__)
#define LSA_X86_SIMD 1
#include <cpuid.h>
#include <immintrin.h>
/// Function attribute enabling the instructions the x86 kernels use.
#define LSA_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
/// The same for the AVX-512 kernels (which also use AVX2 instructions for their tails).
#define LSA_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#else
#define LSA_X86_SIMD 0
#endif

namespace lsa::detail {

/// True when this CPU can run the AVX2 + FMA + F16C kernels (checked once per process).
inline bool cpu_has_avx2_fma_f16c() noexcept {
#if LSA_X86_SIMD
  // CPUID directly: __builtin_cpu_supports knows no "f16c" in some compilers (clang 14).
  static const bool supported = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
    const bool fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    const bool f16c = (c >> 29) & 1;
    if (!(fma && osxsave && avx && f16c)) return false;
    // The OS must save the YMM registers (XCR0 bits 1 and 2).
    unsigned xcr0_lo = 0, xcr0_hi = 0;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 6u) != 6u) return false;
    if (__get_cpuid_max(0, nullptr) < 7) return false;
    __cpuid_count(7, 0, a, b, c, d);
    return ((b >> 5) & 1) != 0;  // AVX2
  }();
  return supported;
#else
  return false;
#endif
}

/// True when this CPU can also run AVX-512F kernels with the OS saving the ZMM state.
inline bool cpu_has_avx512f() noexcept {
#if LSA_X86_SIMD
  static const bool supported = [] {
    if (!cpu_has_avx2_fma_f16c()) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    __cpuid_count(7, 0, a, b, c, d);
    if (((b >> 16) & 1) == 0) return false;  // AVX512F
    unsigned xcr0_lo = 0, xcr0_hi = 0;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    return (xcr0_lo & 0xE6u) == 0xE6u;  // YMM, opmask, ZMM_Hi256 and Hi16_ZMM state
  }();
  return supported;
#else
  return false;
#endif
}

/// Process-wide switch that makes every scorer use the portable kernels (tests cover both paths
/// on one machine with it; also a way to rule the SIMD kernels out when debugging).
inline std::atomic<bool>& force_portable_kernels() noexcept {
  static std::atomic<bool> forced{false};
  return forced;
}

/// Process-wide switch that keeps scorers at the AVX2 kernels on AVX-512 machines (tests).
inline std::atomic<bool>& forbid_avx512_kernels() noexcept {
  static std::atomic<bool> forbidden{false};
  return forbidden;
}

/// True when scorers should run the AVX2 kernels now.
inline bool use_simd_kernels() noexcept {
  return cpu_has_avx2_fma_f16c() && !force_portable_kernels().load(std::memory_order_relaxed);
}

/// True when scorers that have AVX-512 kernels should run them now.
inline bool use_avx512_kernels() noexcept {
  return use_simd_kernels() && cpu_has_avx512f() &&
         !forbid_avx512_kernels().load(std::memory_order_relaxed);
}

}  // namespace lsa::detail
