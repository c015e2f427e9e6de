// Dequantization of F32, F16, Q4_0, Q4_1 and Q8_0 rows, bit-exact with ggml's reference decoders.
#include "quant.hpp"

#include <fmt/format.h>

#include <bit>
#include <cstring>

#include "error.hpp"

namespace lsa_decode {

// F32 rows are copied as they are stored, and the file stores them little-endian.
static_assert(std::endian::native == std::endian::little, "lsa-decode needs a little-endian host");

namespace {

constexpr int64_t kQuantBlock = 32;  // elements per Q4_0 / Q4_1 / Q8_0 block

[[noreturn]] void throw_unsupported(GgmlType type) {
  throw DecodeError(fmt::format("ggml type {} is not supported by lsa-decode",
                                ggml_type_name(static_cast<uint32_t>(type))));
}

uint8_t byte_at(const std::byte* p, int64_t i) { return std::to_integer<uint8_t>(p[i]); }

float half_at(const std::byte* p, int64_t i) {
  return half_to_float(static_cast<uint16_t>(byte_at(p, i) | (byte_at(p, i + 1) << 8)));
}

// Each product below is exact in float (an 11-bit half times a <= 8-bit integer), so a compiler
// contracting d * q + m into an FMA cannot change a result.

void dequantize_q4_0(const std::byte* src, float* dst, int64_t num_blocks) {
  for (int64_t b = 0; b < num_blocks; ++b, src += 18, dst += kQuantBlock) {
    const float d = half_at(src, 0);
    for (int j = 0; j < 16; ++j) {
      const uint8_t q = byte_at(src, 2 + j);
      dst[j] = d * static_cast<float>(static_cast<int>(q & 0x0f) - 8);
      dst[j + 16] = d * static_cast<float>(static_cast<int>(q >> 4) - 8);
    }
  }
}

void dequantize_q4_1(const std::byte* src, float* dst, int64_t num_blocks) {
  for (int64_t b = 0; b < num_blocks; ++b, src += 20, dst += kQuantBlock) {
    const float d = half_at(src, 0);
    const float m = half_at(src, 2);
    for (int j = 0; j < 16; ++j) {
      const uint8_t q = byte_at(src, 4 + j);
      dst[j] = d * static_cast<float>(q & 0x0f) + m;
      dst[j + 16] = d * static_cast<float>(q >> 4) + m;
    }
  }
}

void dequantize_q8_0(const std::byte* src, float* dst, int64_t num_blocks) {
  for (int64_t b = 0; b < num_blocks; ++b, src += 34, dst += kQuantBlock) {
    const float d = half_at(src, 0);
    for (int j = 0; j < 32; ++j) {
      dst[j] = d * static_cast<float>(static_cast<int8_t>(byte_at(src, 2 + j)));
    }
  }
}

}  // namespace

int64_t block_elements(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
      return 1;
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ8_0:
      return kQuantBlock;
  }
  throw_unsupported(type);
}

int64_t block_bytes(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return 4;
    case GgmlType::kF16:
      return 2;
    case GgmlType::kQ4_0:
      return 18;
    case GgmlType::kQ4_1:
      return 20;
    case GgmlType::kQ8_0:
      return 34;
  }
  throw_unsupported(type);
}

int64_t row_bytes(GgmlType type, int64_t n) {
  const int64_t per_block = block_elements(type);
  if (n < 0 || n % per_block != 0) {
    throw DecodeError(
        fmt::format("{} elements of type {} are not a whole number of {}-element blocks", n,
                    ggml_type_name(static_cast<uint32_t>(type)), per_block));
  }
  return n / per_block * block_bytes(type);
}

void dequantize(GgmlType type, const std::byte* src, float* dst, int64_t n) {
  const int64_t num_blocks = row_bytes(type, n) / block_bytes(type);  // validates type and n
  switch (type) {
    case GgmlType::kF32:
      if (n > 0) std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case GgmlType::kF16:
      for (int64_t i = 0; i < n; ++i) dst[i] = half_at(src, 2 * i);
      return;
    case GgmlType::kQ4_0:
      dequantize_q4_0(src, dst, num_blocks);
      return;
    case GgmlType::kQ4_1:
      dequantize_q4_1(src, dst, num_blocks);
      return;
    case GgmlType::kQ8_0:
      dequantize_q8_0(src, dst, num_blocks);
      return;
  }
  throw_unsupported(type);
}

float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits = 0;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, or NaN with its payload kept
  } else if (exponent != 0) {
    bits = sign | ((exponent + (127 - 15)) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal half (mantissa * 2^-24) is a normal float: shift the leading 1 into the implicit
    // bit, lowering the exponent from that of 2^-14 once per shift.
    uint32_t float_exponent = 127 - 14;
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --float_exponent;
    }
    bits = sign | (float_exponent << 23) | ((mantissa & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

}  // namespace lsa_decode
