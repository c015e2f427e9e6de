// Dequantization of the ggml types lsa-decode reads: F32, F16, Q4_0, Q4_1, Q8_0.
#pragma once

#include <cstddef>
#include <cstdint>

#include "gguf.hpp"

namespace lsa_decode {

/// Elements per quantization block (1 for F32/F16, 32 for Q4_0/Q4_1/Q8_0).
int64_t block_elements(GgmlType type);
/// Bytes per block (4, 2, 18, 20, 34).
int64_t block_bytes(GgmlType type);
/// Bytes of n elements; n must be a multiple of block_elements(type).
int64_t row_bytes(GgmlType type, int64_t n);

/// Writes n floats decoded from `src` (n a multiple of block_elements(type)), exactly as ggml
/// defines each format (F16 via IEEE half; Q4_0: d * (q - 8); Q4_1: d * q + m; Q8_0: d * q, with
/// d and m stored as halves, low nibbles are elements 0..15 of a block, high nibbles 16..31).
void dequantize(GgmlType type, const std::byte* src, float* dst, int64_t n);

/// IEEE binary16 -> float, exact for every bit pattern (subnormals, inf, NaN).
float half_to_float(uint16_t h);

}  // namespace lsa_decode
