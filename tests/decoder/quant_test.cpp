// Dequantization: half_to_float for all 65536 patterns and each block format against a naive
// element-by-element reference on seeded random blocks.
#include "quant.hpp"

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "error.hpp"
#include "gguf.hpp"

namespace {

using lsa_decode::DecodeError;
using lsa_decode::GgmlType;
using Bytes = std::vector<std::byte>;

// binary16 by its definition: (-1)^s * 2^(e-15) * 1.m, or 2^-14 * 0.m when e == 0.
float reference_half(uint16_t h) {
  const bool negative = (h & 0x8000) != 0;
  const int e = (h >> 10) & 0x1f;
  const int m = h & 0x3ff;
  double magnitude = 0;
  if (e == 0x1f) {
    magnitude =
        m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else if (e == 0) {
    magnitude = std::ldexp(static_cast<double>(m), -24);
  } else {
    magnitude = std::ldexp(static_cast<double>(1024 + m), e - 25);
  }
  return static_cast<float>(negative ? -magnitude : magnitude);
}

// Equal bit patterns, or both NaN.
bool same_float(float a, float b) {
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b);
  return std::bit_cast<uint32_t>(a) == std::bit_cast<uint32_t>(b);
}

uint8_t byte_at(const Bytes& b, size_t i) { return std::to_integer<uint8_t>(b[i]); }
float half_at(const Bytes& b, size_t i) {
  return reference_half(static_cast<uint16_t>(byte_at(b, i) | (byte_at(b, i + 1) << 8)));
}

// Element i of a row, decoded on its own from the block that holds it.
float reference_element(GgmlType type, const Bytes& row, size_t i) {
  const size_t block = i / 32;
  const size_t j = i % 32;
  // Element j < 16 is the low nibble of quant byte j, element j >= 16 the high nibble of j - 16.
  const auto nibble = [&](size_t quants_at) {
    const uint8_t byte = byte_at(row, quants_at + j % 16);
    return j < 16 ? byte & 0x0f : byte >> 4;
  };
  switch (type) {
    case GgmlType::kF32: {
      float v;
      std::memcpy(&v, row.data() + 4 * i, 4);
      return v;
    }
    case GgmlType::kF16:
      return half_at(row, 2 * i);
    case GgmlType::kQ4_0: {
      const size_t at = block * 18;
      return half_at(row, at) * static_cast<float>(nibble(at + 2) - 8);
    }
    case GgmlType::kQ4_1: {
      const size_t at = block * 20;
      return half_at(row, at) * static_cast<float>(nibble(at + 4)) + half_at(row, at + 2);
    }
    case GgmlType::kQ8_0: {
      const size_t at = block * 34;
      return half_at(row, at) * static_cast<float>(static_cast<int8_t>(byte_at(row, at + 2 + j)));
    }
  }
  return 0;
}

}  // namespace

TEST_CASE("half_to_float is exact for all 65536 patterns", "[decoder][quant]") {
  int num_mismatches = 0;
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float got = lsa_decode::half_to_float(static_cast<uint16_t>(h));
    const float want = reference_half(static_cast<uint16_t>(h));
    if (!same_float(got, want) || std::signbit(got) != std::signbit(want)) {
      if (++num_mismatches <= 10) {
        FAIL_CHECK("half 0x" << std::hex << h << ": got " << got << ", want " << want);
      }
    }
  }
  CHECK(num_mismatches == 0);
  CHECK(lsa_decode::half_to_float(0x3c00) == 1.0f);
  CHECK(lsa_decode::half_to_float(0xc000) == -2.0f);
  CHECK(lsa_decode::half_to_float(0x7bff) == 65504.0f);
  CHECK(lsa_decode::half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(lsa_decode::half_to_float(0x03ff) == std::ldexp(1023.0f, -24));
  CHECK(lsa_decode::half_to_float(0x0400) == std::ldexp(1.0f, -14));
  CHECK(std::bit_cast<uint32_t>(lsa_decode::half_to_float(0x8000)) == 0x80000000u);
  CHECK(lsa_decode::half_to_float(0x7c00) == std::numeric_limits<float>::infinity());
  CHECK(lsa_decode::half_to_float(0xfc00) == -std::numeric_limits<float>::infinity());
  CHECK(std::isnan(lsa_decode::half_to_float(0x7e00)));
  CHECK(std::isnan(lsa_decode::half_to_float(0x7c01)));  // signalling pattern stays NaN
}

TEST_CASE("block sizes match the ggml formats", "[decoder][quant]") {
  CHECK(lsa_decode::block_elements(GgmlType::kF32) == 1);
  CHECK(lsa_decode::block_elements(GgmlType::kF16) == 1);
  CHECK(lsa_decode::block_elements(GgmlType::kQ4_0) == 32);
  CHECK(lsa_decode::block_elements(GgmlType::kQ4_1) == 32);
  CHECK(lsa_decode::block_elements(GgmlType::kQ8_0) == 32);
  CHECK(lsa_decode::block_bytes(GgmlType::kF32) == 4);
  CHECK(lsa_decode::block_bytes(GgmlType::kF16) == 2);
  CHECK(lsa_decode::block_bytes(GgmlType::kQ4_0) == 18);
  CHECK(lsa_decode::block_bytes(GgmlType::kQ4_1) == 20);
  CHECK(lsa_decode::block_bytes(GgmlType::kQ8_0) == 34);
  CHECK(lsa_decode::row_bytes(GgmlType::kQ4_1, 576) == 360);
  CHECK(lsa_decode::row_bytes(GgmlType::kQ8_0, 576) == 612);
  CHECK(lsa_decode::row_bytes(GgmlType::kF16, 3) == 6);
  CHECK(lsa_decode::row_bytes(GgmlType::kQ4_0, 0) == 0);
  CHECK_THROWS_WITH(lsa_decode::row_bytes(GgmlType::kQ4_0, 33),
                    Catch::Contains("33 elements of type Q4_0 are not a whole number"));
  CHECK_THROWS_AS(lsa_decode::row_bytes(GgmlType::kQ8_0, -32), DecodeError);
  CHECK_THROWS_WITH(lsa_decode::block_bytes(static_cast<GgmlType>(14)),
                    Catch::Contains("ggml type Q6_K is not supported"));
  float out[32];
  const std::byte in[34] = {};
  CHECK_THROWS_AS(lsa_decode::dequantize(GgmlType::kQ8_0, in, out, 31), DecodeError);
  CHECK_THROWS_AS(lsa_decode::dequantize(static_cast<GgmlType>(12), in, out, 32), DecodeError);
}

TEST_CASE("dequantize matches a naive reference on random blocks", "[decoder][quant]") {
  std::mt19937_64 rng(42);
  for (GgmlType type :
       {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ4_0, GgmlType::kQ4_1, GgmlType::kQ8_0}) {
    INFO("type " << lsa_decode::ggml_type_name(static_cast<uint32_t>(type)));
    for (int64_t num_blocks : {int64_t{1}, int64_t{3}, int64_t{257}, int64_t(1 + rng() % 64)}) {
      const int64_t n = num_blocks * 32;
      Bytes row(static_cast<size_t>(lsa_decode::row_bytes(type, n)));
      for (auto& b : row) b = static_cast<std::byte>(rng() & 0xff);
      // Mostly finite scales; every fourth block keeps its raw (possibly inf/NaN) ones.
      const int64_t stride = lsa_decode::block_bytes(type);
      if (stride > 4) {
        for (int64_t blk = 0; blk < num_blocks; ++blk) {
          if (blk % 4 == 3) continue;
          for (int64_t h = 0; h < (type == GgmlType::kQ4_1 ? 2 : 1); ++h) {
            row[static_cast<size_t>(blk * stride + 2 * h + 1)] &= std::byte{0xbb};
          }
        }
      }
      std::vector<float> got(static_cast<size_t>(n) + 1, 12345.0f);
      lsa_decode::dequantize(type, row.data(), got.data(), n);
      CHECK(got.back() == 12345.0f);  // nothing written past n
      int num_mismatches = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float want = reference_element(type, row, static_cast<size_t>(i));
        if (!same_float(got[static_cast<size_t>(i)], want) && ++num_mismatches <= 5) {
          FAIL_CHECK("element " << i << ": got " << got[static_cast<size_t>(i)] << ", want "
                                << want);
        }
      }
      CHECK(num_mismatches == 0);
    }
  }
}

TEST_CASE("dequantize decodes hand-made blocks", "[decoder][quant]") {
  // Q4_0: d = 0.5 (0x3800); byte j holds q = j (low) and 15 - j (high).
  Bytes q4_0(18);
  q4_0[1] = std::byte{0x38};
  for (int j = 0; j < 16; ++j) q4_0[2 + j] = static_cast<std::byte>(j | ((15 - j) << 4));
  float out[32];
  lsa_decode::dequantize(GgmlType::kQ4_0, q4_0.data(), out, 32);
  for (int j = 0; j < 16; ++j) {
    CHECK(out[j] == 0.5f * static_cast<float>(j - 8));
    CHECK(out[j + 16] == 0.5f * static_cast<float>(7 - j));
  }
  // Q4_1: d = 2 (0x4000), m = -1 (0xbc00); all quants 0x5a -> low 10, high 5.
  Bytes q4_1(20, std::byte{0x5a});
  q4_1[0] = std::byte{0x00};
  q4_1[1] = std::byte{0x40};
  q4_1[2] = std::byte{0x00};
  q4_1[3] = std::byte{0xbc};
  lsa_decode::dequantize(GgmlType::kQ4_1, q4_1.data(), out, 32);
  for (int j = 0; j < 16; ++j) {
    CHECK(out[j] == 19.0f);
    CHECK(out[j + 16] == 9.0f);
  }
  // Q8_0: d = 0.25 (0x3400), quants -128..-97.
  Bytes q8_0(34);
  q8_0[1] = std::byte{0x34};
  for (int j = 0; j < 32; ++j) q8_0[2 + j] = static_cast<std::byte>(static_cast<uint8_t>(-128 + j));
  lsa_decode::dequantize(GgmlType::kQ8_0, q8_0.data(), out, 32);
  for (int j = 0; j < 32; ++j) CHECK(out[j] == 0.25f * static_cast<float>(-128 + j));
}
