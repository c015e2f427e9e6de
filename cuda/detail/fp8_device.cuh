// fp8 e4m3 on the device: exact conversion of packed codes to fp16 by bit moves (any sm).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

namespace lsa::cuda::detail {

/// Four e4m3 codes (little-endian bytes of `x`) as two fp16 pairs, each value scaled by 2^-8:
/// `lo` holds bytes 0 (low half) and 1, `hi` bytes 2 and 3. An e4m3 code moved into the fp16 bit
/// positions is its value times 2^-8 (exponent bias 15 instead of 7), subnormals included, so the
/// conversion is exact and needs no cvt.e4m3 instruction (sm_80 has none). NaN codes (0x7F, 0xFF)
/// become finite values; keys are checked for them before they reach the device.
__device__ __forceinline__ void e4m3x4_to_half2x2_scaled(uint32_t x, uint32_t& lo, uint32_t& hi) {
  const uint32_t a = __byte_perm(x, 0u, 0x1404);  // [0, b0, 0, b1]: each code in a high byte
  const uint32_t b = __byte_perm(x, 0u, 0x3424);  // [0, b2, 0, b3]
  lo = (a & 0x80008000u) | ((a >> 1) & 0x3F803F80u);
  hi = (b & 0x80008000u) | ((b >> 1) & 0x3F803F80u);
}

/// Exact float values of four e4m3 codes (byte i of `x` into v[i]).
__device__ __forceinline__ void e4m3x4_to_float4(uint32_t x, float (&v)[4]) {
  uint32_t lo, hi;
  e4m3x4_to_half2x2_scaled(x, lo, hi);
  const float2 f01 = __half22float2(*reinterpret_cast<const __half2*>(&lo));
  const float2 f23 = __half22float2(*reinterpret_cast<const __half2*>(&hi));
  v[0] = f01.x * 256.0f;  // exact: a power of two, and the value stays a normal float
  v[1] = f01.y * 256.0f;
  v[2] = f23.x * 256.0f;
  v[3] = f23.y * 256.0f;
}

}  // namespace lsa::cuda::detail
