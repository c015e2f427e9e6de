// Exact fp8 e4m3 (OCP E4M3FN) and bfloat16 conversions used by index keys.
//
// E4M3FN: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities; 0x7F and 0xFF are NaN;
// largest finite magnitude 448 (0x7E); subnormals m * 2^-9 when the exponent field is 0.
#pragma once

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <limits>

namespace lsa {

namespace detail {

// Built with exact power-of-two arithmetic, so every entry is the correctly decoded value.
constexpr std::array<float, 256> make_fp8_e4m3_table() noexcept {
  std::array<float, 256> table{};
  for (int code = 0; code < 256; ++code) {
    const int exponent = (code >> 3) & 0xF;
    const int mantissa = code & 0x7;
    float magnitude;
    if (exponent == 0xF && mantissa == 0x7) {
      magnitude = std::numeric_limits<float>::quiet_NaN();
    } else if (exponent == 0) {
      magnitude = static_cast<float>(mantissa) / 512.0f;
    } else {
      magnitude = static_cast<float>(8 + mantissa) / 512.0f;  // (1 + m/8) * 2^(1-7)
      for (int e = 1; e < exponent; ++e) magnitude *= 2.0f;
    }
    table[static_cast<size_t>(code)] = (code & 0x80) != 0 ? -magnitude : magnitude;
  }
  return table;
}

// Round-half-to-even of a non-negative float below 2^23 (exact: the float holds the fraction).
constexpr float round_half_even(float x) noexcept {
  const float whole = static_cast<float>(static_cast<int32_t>(x));
  const float fraction = x - whole;
  if (fraction > 0.5f) return whole + 1.0f;
  if (fraction < 0.5f) return whole;
  return (static_cast<int32_t>(whole) & 1) != 0 ? whole + 1.0f : whole;
}

}  // namespace detail

/// Decoded value of every fp8 e4m3 code, indexed by the code (NaN for 0x7F and 0xFF).
inline constexpr std::array<float, 256> kFp8E4M3Table = detail::make_fp8_e4m3_table();

/// Largest finite fp8 e4m3 magnitude.
inline constexpr float kFp8E4M3Max = 448.0f;

/// True for the two NaN codes (0x7F, 0xFF); every other code is finite.
constexpr bool is_nan_fp8_e4m3(uint8_t code) noexcept { return (code & 0x7F) == 0x7F; }

/// Exact value of an fp8 e4m3 code.
constexpr float decode_fp8_e4m3(uint8_t code) noexcept { return kFp8E4M3Table[code]; }

/// Nearest fp8 e4m3 code (ties to even); magnitudes >= 448 and infinities saturate to +-448,
/// NaN becomes 0x7F.
constexpr uint8_t encode_fp8_e4m3(float x) noexcept {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  const uint8_t sign = static_cast<uint8_t>((bits >> 24) & 0x80);
  const uint32_t abs_bits = bits & 0x7FFFFFFFu;
  if (abs_bits > 0x7F800000u) return 0x7F;
  const float a = std::bit_cast<float>(abs_bits);
  if (a >= kFp8E4M3Max) return sign | 0x7E;
  if (a < 0.015625f) {
    // Subnormal range (below 2^-6): the code is the rounded count of 2^-9 steps; a count of 8 is
    // code 0x08, the smallest normal, so rounding up across the boundary needs no special case.
    return sign | static_cast<uint8_t>(detail::round_half_even(a * 512.0f));
  }
  // Normal: rebias the exponent (127 -> 7) and round the 23-bit mantissa to 3 bits, ties to even;
  // a mantissa carry correctly bumps the exponent. a < 448 keeps the result <= 0x7E.
  const uint32_t rebased = abs_bits - (uint32_t{127 - 7} << 23);
  const uint32_t rounded = (rebased + 0x7FFFFu + ((rebased >> 20) & 1u)) >> 20;
  return sign | static_cast<uint8_t>(rounded);
}

/// Exact float value of a bfloat16 bit pattern.
constexpr float bf16_to_float(uint16_t bits) noexcept {
  return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16);
}

/// Nearest bfloat16 (ties to even; overflow becomes infinity); NaN stays a quiet NaN.
constexpr uint16_t float_to_bf16(float x) noexcept {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((bits >> 16) | 0x0040u);
  return static_cast<uint16_t>((bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16);
}

}  // namespace lsa
