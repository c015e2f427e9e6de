// Index key vectors in their stored formats: sizes, finite checks and decoding to float.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "lsa/detail/cpu_dispatch.hpp"
#include "lsa/fp8.hpp"
#include "lsa/scorer_concept.hpp"
#include "lsa/scorer_config.hpp"
#include "lsa/status.hpp"

namespace lsa::detail {

/// Bytes of one key vector of `head_dim` values (fp8 adds its fp32 scale).
constexpr int64_t key_vector_bytes(KeyFormat format, int64_t head_dim) noexcept {
  switch (format) {
    case KeyFormat::kF32:
      return 4 * head_dim;
    case KeyFormat::kBF16:
      return 2 * head_dim;
    case KeyFormat::kFp8E4M3:
      return head_dim + 4;
  }
  return 0;
}

/// The fp32 scale stored after the `head_dim` fp8 bytes of a vector (little-endian, unaligned).
inline float fp8_scale(const std::byte* vector, int64_t head_dim) noexcept {
  float scale;
  std::memcpy(&scale, vector + head_dim, sizeof(float));
  return scale;
}

/// True when a float bit pattern is NaN or infinite.
constexpr bool non_finite_f32_bits(uint32_t bits) noexcept {
  return (bits & 0x7F800000u) == 0x7F800000u;
}

/// kNonFiniteInput when any of `num_vectors` contiguous vectors holds NaN/Inf (fp8: a NaN code or a
/// non-finite scale); kInvalidArgument for a negative count or missing data.
inline Status check_key_vectors(KeyFormat format, const std::byte* data, int64_t num_vectors,
                                int64_t head_dim) noexcept {
  if (num_vectors < 0 || (num_vectors > 0 && data == nullptr)) return Status::kInvalidArgument;
  const int64_t vector_bytes = key_vector_bytes(format, head_dim);
  // Flags are OR-ed without early exit so the loops vectorize; rows are checked once, at append.
  bool bad = false;
  switch (format) {
    case KeyFormat::kF32: {
      const int64_t n = num_vectors * head_dim;
      for (int64_t i = 0; i < n; ++i) {
        uint32_t bits;
        std::memcpy(&bits, data + 4 * i, 4);
        bad |= non_finite_f32_bits(bits);
      }
      break;
    }
    case KeyFormat::kBF16: {
      const int64_t n = num_vectors * head_dim;
      for (int64_t i = 0; i < n; ++i) {
        uint16_t bits;
        std::memcpy(&bits, data + 2 * i, 2);
        bad |= (bits & 0x7F80u) == 0x7F80u;
      }
      break;
    }
    case KeyFormat::kFp8E4M3:
      for (int64_t v = 0; v < num_vectors; ++v) {
        const std::byte* vector = data + v * vector_bytes;
        for (int64_t d = 0; d < head_dim; ++d) {
          bad |= is_nan_fp8_e4m3(static_cast<uint8_t>(vector[d]));
        }
        uint32_t scale_bits;
        std::memcpy(&scale_bits, vector + head_dim, 4);
        bad |= non_finite_f32_bits(scale_bits);
      }
      break;
    default:
      return Status::kInvalidArgument;
  }
  return bad ? Status::kNonFiniteInput : Status::kOk;
}

/// Reads element `d` of an f32 or bf16 vector (the token-summary scorers' formats).
template <KeyFormat kFormat>
inline float key_element(const std::byte* vector, int64_t d) noexcept {
  static_assert(kFormat == KeyFormat::kF32 || kFormat == KeyFormat::kBF16,
                "key_element reads unscaled formats only");
  if constexpr (kFormat == KeyFormat::kF32) {
    float x;
    std::memcpy(&x, vector + 4 * d, 4);
    return x;
  } else {
    uint16_t bits;
    std::memcpy(&bits, vector + 2 * d, 2);
    return bf16_to_float(bits);
  }
}

/// Decodes one vector to floats (fp8: the unscaled code values; the scale is applied by the
/// caller).
inline void decode_vector_generic(KeyFormat format, const std::byte* src, int64_t head_dim,
                                  float* dst) noexcept {
  switch (format) {
    case KeyFormat::kF32:
      std::memcpy(dst, src, static_cast<size_t>(4 * head_dim));
      break;
    case KeyFormat::kBF16:
      for (int64_t d = 0; d < head_dim; ++d) dst[d] = key_element<KeyFormat::kBF16>(src, d);
      break;
    case KeyFormat::kFp8E4M3:
      for (int64_t d = 0; d < head_dim; ++d) {
        dst[d] = kFp8E4M3Table[static_cast<uint8_t>(src[d])];
      }
      break;
  }
}

#if LSA_X86_SIMD
/// decode_vector_generic with AVX2/F16C: bit manipulation instead of a table walk.
LSA_TARGET_AVX2 inline void decode_vector_avx2(KeyFormat format, const std::byte* src,
                                               int64_t head_dim, float* dst) noexcept {
  int64_t d = 0;
  if (format == KeyFormat::kFp8E4M3) {
    // An e4m3 code moved into fp16 bit positions (exponent bias 15 instead of 7) is the value
    // times 2^-8, subnormals included. The F16C conversion is exact and yields normal floats, so
    // unlike a float-denormal trick it survives MXCSR.DAZ (fp8_test checks this); the
    // power-of-two rescale is exact too. Moving the bits: sign-extend the byte to 16 bits and shift
    // left by 7; the magnitude lands in bits 7..13, copies of the sign in bits 14 and 15, and
    // clearing bit 14 leaves the fp16 pattern.
    const __m256 rescale = _mm256_set1_ps(256.0f);
    const __m256i clear_bit14 = _mm256_set1_epi16(static_cast<int16_t>(0xBFFF));
    for (; d + 16 <= head_dim; d += 16) {
      const __m256i codes =
          _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + d)));
      const __m256i half = _mm256_and_si256(_mm256_slli_epi16(codes, 7), clear_bit14);
      _mm256_storeu_ps(dst + d,
                       _mm256_mul_ps(_mm256_cvtph_ps(_mm256_castsi256_si128(half)), rescale));
      _mm256_storeu_ps(dst + d + 8,
                       _mm256_mul_ps(_mm256_cvtph_ps(_mm256_extracti128_si256(half, 1)), rescale));
    }
    for (; d < head_dim; ++d) dst[d] = kFp8E4M3Table[static_cast<uint8_t>(src[d])];
  } else if (format == KeyFormat::kBF16) {
    for (; d + 8 <= head_dim; d += 8) {
      const __m256i wide =
          _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 2 * d)));
      _mm256_storeu_ps(dst + d, _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16)));
    }
    for (; d < head_dim; ++d) dst[d] = key_element<KeyFormat::kBF16>(src, d);
  } else {
    std::memcpy(dst, src, static_cast<size_t>(4 * head_dim));
  }
}
#endif

/// Decodes vectors src + i * src_stride (bytes) into dst + i * head_dim for i < num_vectors and
/// stores fp8 scales (1 for other formats) in scales[i].
inline void decode_vectors(KeyFormat format, const std::byte* src, int64_t src_stride,
                           int64_t num_vectors, int64_t head_dim, float* dst, float* scales,
                           bool use_simd) noexcept {
  for (int64_t i = 0; i < num_vectors; ++i) {
    const std::byte* vector = src + i * src_stride;
#if LSA_X86_SIMD
    if (use_simd) {
      decode_vector_avx2(format, vector, head_dim, dst + i * head_dim);
    } else {
      decode_vector_generic(format, vector, head_dim, dst + i * head_dim);
    }
#else
    (void)use_simd;
    decode_vector_generic(format, vector, head_dim, dst + i * head_dim);
#endif
    scales[i] = format == KeyFormat::kFp8E4M3 ? fp8_scale(vector, head_dim) : 1.0f;
  }
}

/// Key rows as handed to append: `num_rows` rows of `vectors_per_row` contiguous key vectors.
inline Status check_key_rows(KeyRows rows, KeyFormat format, int64_t vectors_per_row,
                             int64_t head_dim) noexcept {
  if (rows.num_rows < 0) return Status::kInvalidArgument;
  return check_key_vectors(format, rows.data, rows.num_rows * vectors_per_row, head_dim);
}

}  // namespace lsa::detail
