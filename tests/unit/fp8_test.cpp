// fp8 e4m3 and bf16 conversions against formulas written out here, independently of lsa's tables.
#include "lsa/fp8.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "lsa/detail/cpu_dispatch.hpp"
#include "lsa/detail/key_decode.hpp"

namespace {

// OCP E4M3FN by its definition: (-1)^s * 2^(e-7) * (1 + m/8), subnormals 2^-6 * m/8, NaN at
// exponent 15 with mantissa 7.
double e4m3_formula(int code) {
  const int s = (code >> 7) & 1;
  const int e = (code >> 3) & 0xF;
  const int m = code & 0x7;
  if (e == 0xF && m == 0x7) return std::numeric_limits<double>::quiet_NaN();
  const double magnitude = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -magnitude : magnitude;
}

// bfloat16 by its definition: 1 sign, 8 exponent (bias 127), 7 mantissa bits.
double bf16_formula(uint16_t bits) {
  const int s = bits >> 15;
  const int e = (bits >> 7) & 0xFF;
  const int m = bits & 0x7F;
  double magnitude;
  if (e == 0xFF) {
    magnitude =
        m == 0 ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
  } else {
    magnitude = e == 0 ? std::ldexp(m / 128.0, -126) : std::ldexp(1.0 + m / 128.0, e - 127);
  }
  return s ? -magnitude : magnitude;
}

bool same_value(float got, double want) {
  if (std::isnan(want)) return std::isnan(got);
  return static_cast<double>(got) == want && std::signbit(got) == std::signbit(want);
}

}  // namespace

TEST_CASE("fp8 e4m3 decodes every code exactly", "[cpu][fp8]") {
  for (int code = 0; code < 256; ++code) {
    INFO("code " << code);
    const double want = e4m3_formula(code);
    CHECK(same_value(lsa::decode_fp8_e4m3(static_cast<uint8_t>(code)), want));
    CHECK(same_value(lsa::kFp8E4M3Table[static_cast<size_t>(code)], want));
  }
  // Spot values from the OCP spec.
  CHECK(lsa::decode_fp8_e4m3(0x7E) == 448.0f);
  CHECK(lsa::decode_fp8_e4m3(0xFE) == -448.0f);
  CHECK(lsa::decode_fp8_e4m3(0x01) == std::ldexp(1.0f, -9));
  CHECK(lsa::decode_fp8_e4m3(0x08) == std::ldexp(1.0f, -6));
  CHECK(lsa::decode_fp8_e4m3(0x38) == 1.0f);
  CHECK(std::signbit(lsa::decode_fp8_e4m3(0x80)));
  static_assert(lsa::decode_fp8_e4m3(0x38) == 1.0f, "the table is usable at compile time");
}

TEST_CASE("fp8 e4m3 NaN codes are exactly 0x7F and 0xFF", "[cpu][fp8]") {
  for (int code = 0; code < 256; ++code) {
    INFO("code " << code);
    const bool nan = code == 0x7F || code == 0xFF;
    CHECK(lsa::is_nan_fp8_e4m3(static_cast<uint8_t>(code)) == nan);
    CHECK(std::isnan(lsa::decode_fp8_e4m3(static_cast<uint8_t>(code))) == nan);
  }
}

TEST_CASE("fp8 e4m3 encoder round-trips every finite code", "[cpu][fp8]") {
  for (int code = 0; code < 256; ++code) {
    if (code == 0x7F || code == 0xFF) continue;
    INFO("code " << code);
    CHECK(int{lsa::encode_fp8_e4m3(static_cast<float>(e4m3_formula(code)))} == code);
  }
  static_assert(lsa::encode_fp8_e4m3(1.0f) == 0x38, "the encoder is usable at compile time");
}

TEST_CASE("fp8 e4m3 encoder rounds to nearest, ties to even", "[cpu][fp8]") {
  for (int sign = 0; sign < 2; ++sign) {
    for (int code = 0; code < 0x7E; ++code) {
      const int lo = code | (sign << 7);
      const int hi = (code + 1) | (sign << 7);
      const double a = e4m3_formula(lo);
      const double b = e4m3_formula(hi);
      // Midpoints of neighbours need at most 5 significant bits: exact in float.
      const float mid = static_cast<float>((a + b) / 2);
      REQUIRE(static_cast<double>(mid) == (a + b) / 2);
      INFO("between codes " << lo << " and " << hi);
      const int even = (lo & 1) == 0 ? lo : hi;
      CHECK(int{lsa::encode_fp8_e4m3(mid)} == even);
      const float toward_a = std::nextafter(mid, static_cast<float>(a));
      const float toward_b = std::nextafter(mid, static_cast<float>(b));
      CHECK(int{lsa::encode_fp8_e4m3(toward_a)} == lo);
      CHECK(int{lsa::encode_fp8_e4m3(toward_b)} == hi);
    }
  }
  // Half the smallest subnormal ties to +-0; anything above it rounds up.
  CHECK(int{lsa::encode_fp8_e4m3(std::ldexp(1.0f, -10))} == 0x00);
  CHECK(int{lsa::encode_fp8_e4m3(-std::ldexp(1.0f, -10))} == 0x80);
  CHECK(int{lsa::encode_fp8_e4m3(std::nextafter(std::ldexp(1.0f, -10), 1.0f))} == 0x01);
  CHECK(int{lsa::encode_fp8_e4m3(std::numeric_limits<float>::denorm_min())} == 0x00);
  CHECK(int{lsa::encode_fp8_e4m3(0.0f)} == 0x00);
  CHECK(int{lsa::encode_fp8_e4m3(-0.0f)} == 0x80);
}

TEST_CASE("fp8 e4m3 encoder saturates to 448 and maps NaN to 0x7F", "[cpu][fp8]") {
  const float inf = std::numeric_limits<float>::infinity();
  for (const float x : {448.0f, 448.5f, 463.9f, 464.0f, 480.0f, 1.0e6f, 3.0e38f, inf}) {
    INFO("x = " << x);
    CHECK(int{lsa::encode_fp8_e4m3(x)} == 0x7E);
    CHECK(int{lsa::encode_fp8_e4m3(-x)} == 0xFE);
  }
  // Just below 448 the nearest code is still 448 or 416.
  CHECK(int{lsa::encode_fp8_e4m3(447.0f)} == 0x7E);
  CHECK(int{lsa::encode_fp8_e4m3(432.0f)} == 0x7E);  // tie between 416 (0x7D) and 448: even
  CHECK(int{lsa::encode_fp8_e4m3(431.0f)} == 0x7D);
  CHECK(int{lsa::encode_fp8_e4m3(std::numeric_limits<float>::quiet_NaN())} == 0x7F);
  CHECK(int{lsa::encode_fp8_e4m3(-std::numeric_limits<float>::quiet_NaN())} == 0x7F);
}

TEST_CASE("bf16 decodes every pattern exactly and the encoder round-trips", "[cpu][fp8][bf16]") {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    const auto b = static_cast<uint16_t>(bits);
    const double want = bf16_formula(b);
    if (!same_value(lsa::bf16_to_float(b), want)) FAIL("bf16 pattern " << bits);
    if (!std::isnan(want) && lsa::float_to_bf16(static_cast<float>(want)) != b) {
      FAIL("bf16 round trip " << bits);
    }
  }
}

TEST_CASE("bf16 encoder rounds to nearest, ties to even, keeps NaN", "[cpu][fp8][bf16]") {
  auto from_bits = [](uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  };
  CHECK(lsa::float_to_bf16(from_bits(0x3F808000u)) == 0x3F80);  // tie, 0x3F80 even
  CHECK(lsa::float_to_bf16(from_bits(0x3F818000u)) == 0x3F82);  // tie, 0x3F82 even
  CHECK(lsa::float_to_bf16(from_bits(0x3F808001u)) == 0x3F81);  // above the tie
  CHECK(lsa::float_to_bf16(from_bits(0x3F807FFFu)) == 0x3F80);  // below the tie
  CHECK(lsa::float_to_bf16(from_bits(0xBF808000u)) == 0xBF80);
  CHECK(lsa::float_to_bf16(std::numeric_limits<float>::max()) == 0x7F80);  // rounds to infinity
  const uint16_t nan = lsa::float_to_bf16(std::numeric_limits<float>::quiet_NaN());
  CHECK(std::isnan(lsa::bf16_to_float(nan)));
  // A NaN whose payload sits only in the low 16 bits must not become infinity.
  CHECK(std::isnan(lsa::bf16_to_float(lsa::float_to_bf16(from_bits(0x7F800001u)))));
}

TEST_CASE("key vector decoding matches the formula on every code, portable and SIMD",
          "[cpu][fp8][decode]") {
  // A vector of every finite code (254 of them, an odd tail for the 16-wide loop) plus a scale.
  std::vector<std::byte> vector;
  for (int code = 0; code < 256; ++code) {
    if (code != 0x7F && code != 0xFF) vector.push_back(static_cast<std::byte>(code));
  }
  const int64_t dim = static_cast<int64_t>(vector.size());
  const float scale = 0.375f;
  vector.resize(vector.size() + 4);
  std::memcpy(vector.data() + dim, &scale, 4);

  auto check = [&](bool use_simd) {
    std::vector<float> out(static_cast<size_t>(dim));
    float got_scale = 0;
    lsa::detail::decode_vectors(lsa::KeyFormat::kFp8E4M3, vector.data(), dim + 4, 1, dim,
                                out.data(), &got_scale, use_simd);
    CHECK(got_scale == scale);
    for (int64_t d = 0; d < dim; ++d) {
      const int code = static_cast<int>(vector[static_cast<size_t>(d)]);
      if (!same_value(out[static_cast<size_t>(d)], e4m3_formula(code))) {
        FAIL("code " << code << " decoded as " << out[static_cast<size_t>(d)]);
      }
    }
  };
  check(false);
  if (lsa::detail::cpu_has_avx2_fma_f16c()) {
    check(true);
#if LSA_X86_SIMD
    // Engines may run with denormals-are-zero; subnormal fp8 codes must still decode exactly.
    const unsigned csr = _mm_getcsr();
    _mm_setcsr(csr | 0x8040u);  // DAZ | FTZ
    check(true);
    _mm_setcsr(csr);
#endif
  }
}

TEST_CASE("bf16 key vector decoding matches the formula, portable and SIMD",
          "[cpu][bf16][decode]") {
  std::vector<uint16_t> bits;
  for (uint32_t b = 0; b < 65536; b += 97) {
    if (!std::isnan(bf16_formula(static_cast<uint16_t>(b))))
      bits.push_back(static_cast<uint16_t>(b));
  }
  const int64_t dim = static_cast<int64_t>(bits.size());
  auto check = [&](bool use_simd) {
    std::vector<float> out(bits.size());
    float scale = 0;
    lsa::detail::decode_vectors(lsa::KeyFormat::kBF16,
                                reinterpret_cast<const std::byte*>(bits.data()), 2 * dim, 1, dim,
                                out.data(), &scale, use_simd);
    CHECK(scale == 1.0f);
    for (size_t d = 0; d < bits.size(); ++d) {
      if (!same_value(out[d], bf16_formula(bits[d]))) FAIL("bf16 pattern " << bits[d]);
    }
  };
  check(false);
  if (lsa::detail::cpu_has_avx2_fma_f16c()) check(true);
}
