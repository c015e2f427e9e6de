// Scalar f32 -> IEEE binary16 rounding, the same on every target: what a KV page written in f16
// holds (ties to even, overflow to infinity, NaN kept). The widening back is quant.hpp's
// half_to_float.
#pragma once

#include <hwy/base.h>

#include <bit>
#include <cstdint>

namespace lsa_decode {

/// `f` rounded to the nearest binary16 value, ties to even.
inline hwy::float16_t f16_nearest_even(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const auto sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t abs = x & 0x7FFFFFFFu;
  uint16_t h;
  if (abs > 0x7F800000u) {
    h = static_cast<uint16_t>(0x7E00u | ((abs >> 13) & 0x3FFu));  // NaN stays NaN (quiet)
  } else if (abs >= 0x477FF000u) {
    h = 0x7C00u;  // at or past 65520 (65504 + half an ulp), and infinity: infinity
  } else if (abs < 0x38800000u) {
    // Below 2^-14: subnormal or zero. Adding 0.5 in float puts the rounded 10-bit fraction in the
    // low mantissa bits, with the CPU's own ties-to-even.
    const float r = std::bit_cast<float>(abs) + 0.5f;
    h = static_cast<uint16_t>(std::bit_cast<uint32_t>(r) - 0x3F000000u);
  } else {
    const uint32_t odd = (abs >> 13) & 1u;
    h = static_cast<uint16_t>((abs + 0xC8000FFFu + odd) >> 13);  // rebias 127 -> 15, round
  }
  return std::bit_cast<hwy::float16_t>(static_cast<uint16_t>(sign | h));
}

}  // namespace lsa_decode
