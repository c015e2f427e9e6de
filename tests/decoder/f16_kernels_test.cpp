// The f16 KV kernels (kernels.hpp) on every SIMD target the CPU supports: rounding to binary16
// against its definition, and the attention products over f16 operands against a plain reference
// (operands widened to float, sums in double) at odd head dims, lengths and partial vectors.
#include <hwy/base.h>

#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "each_target.hpp"
#include "kernels.hpp"
#include "ops/f16.hpp"

namespace {

using lsa_decode_test::for_each_target;

// The f16 value with these bits, as a double (the definition: sign, 5-bit exponent, 10-bit
// fraction), independent of ops/f16.hpp.
double f16_value(uint16_t h) {
  const int exp = (h >> 10) & 0x1F, frac = h & 0x3FF;
  const double sign = (h & 0x8000) != 0 ? -1.0 : 1.0;
  if (exp == 31) return frac == 0 ? sign * INFINITY : NAN;
  if (exp == 0) return sign * std::ldexp(frac, -24);
  return sign * std::ldexp(1024 + frac, exp - 25);
}

uint16_t bits(hwy::float16_t h) { return std::bit_cast<uint16_t>(h); }

std::vector<hwy::float16_t> to_f16(const std::vector<float>& v) {
  std::vector<hwy::float16_t> h(v.size());
  lsa_decode::to_f16(v.data(), h.data(), static_cast<int64_t>(v.size()));
  return h;
}

// n f16 values of sigma-scaled normal draws.
std::vector<hwy::float16_t> normal_f16(size_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return to_f16(v);
}

std::vector<float> normal_floats(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

double widened(hwy::float16_t h) { return f16_value(bits(h)); }

}  // namespace

TEST_CASE("f16 widening is exact for every f16 value", "[decoder][kernels]") {
  std::vector<hwy::float16_t> all(65536);
  for (uint32_t h = 0; h < 65536; ++h)
    all[h] = std::bit_cast<hwy::float16_t>(static_cast<uint16_t>(h));
  std::vector<float> out(all.size());
  lsa_decode::from_f16(all.data(), out.data(), static_cast<int64_t>(all.size()));
  for (uint32_t h = 0; h < 65536; ++h) {
    INFO("bits " << h);
    const double want = f16_value(static_cast<uint16_t>(h));
    if (std::isnan(want)) {
      REQUIRE(std::isnan(out[h]));
    } else {
      REQUIRE(double(out[h]) == want);
    }
  }
}

TEST_CASE("f32 to f16 rounds to nearest even, the same on every target", "[decoder][kernels]") {
  std::vector<float> x = normal_floats(20000, 7);
  std::mt19937 rng(8);
  for (int i = 0; i < 20000; ++i) x.push_back(std::bit_cast<float>(static_cast<uint32_t>(rng())));
  for (float& v : std::span(x).subspan(0, 5000)) v *= 1e-5f;  // subnormal f16 range
  // Edges: ties (1 + 2^-11 lies halfway between 1 and 1 + 2^-10), the largest finite value and
  // what rounds past it, the smallest subnormal and half of it, zeros, infinities.
  for (const float e : {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, 65519.0f, 65520.0f, 1e9f,
                        0x1p-24f, 0x1p-25f, 0x1.8p-25f, 0x1p-26f, 0x1.4p-24f, 0.0f, -0.0f,
                        std::numeric_limits<float>::infinity(), 6.1e-5f, 2048.5f, 2049.0f}) {
    x.push_back(e);
    x.push_back(-e);
  }
  for_each_target([&](const std::string&) {
    const std::vector<hwy::float16_t> h = to_f16(x);
    for (size_t i = 0; i < x.size(); ++i) {
      INFO("x " << x[i] << " bits " << std::bit_cast<uint32_t>(x[i]) << " -> " << bits(h[i]));
      REQUIRE(bits(h[i]) == bits(lsa_decode::f16_nearest_even(x[i])));
      if (std::isnan(x[i])) {
        REQUIRE(std::isnan(widened(h[i])));
        continue;
      }
      const double v = x[i], got = widened(h[i]);
      if (std::abs(v) >= 65520.0) {  // 65504 + half an ulp and beyond: infinity
        REQUIRE(got == (v > 0 ? INFINITY : -INFINITY));
        continue;
      }
      REQUIRE(std::signbit(got) == std::signbit(v));
      // No f16 value is nearer; on a tie the fraction is even.
      const uint16_t b = bits(h[i]);
      for (const int step : {-1, 1}) {
        const uint16_t mag = b & 0x7FFF;
        if ((step < 0 && mag == 0) || (step > 0 && mag >= 0x7BFF)) continue;
        const double other = f16_value(static_cast<uint16_t>((b & 0x8000) | (mag + step)));
        REQUIRE(std::abs(v - got) <= std::abs(v - other));
        if (std::abs(v - got) == std::abs(v - other)) REQUIRE((b & 1) == 0);
      }
    }
  });
}

TEST_CASE("f16 products match the double reference on every target", "[decoder][kernels]") {
  for_each_target([](const std::string&) {
    uint64_t seed = 300;
    // Q K^T over a page: n query rows, d_in = head dim, d_out = tokens of the page.
    for (const int64_t n : {1, 3, 5}) {
      for (const int64_t d_in : {1, 15, 37, 64, 65}) {
        for (const int64_t d_out : {1, 7, 16, 70}) {
          INFO("rows: n " << n << " d_in " << d_in << " d_out " << d_out);
          const int64_t ldw = 2 * d_in + 3, ldy = d_out + 2;  // K rows inside [K | V] rows
          const std::vector<float> x = normal_floats(static_cast<size_t>(n * d_in), ++seed);
          const std::vector<hwy::float16_t> w =
              normal_f16(static_cast<size_t>(d_out * ldw), ++seed);
          std::vector<float> y(static_cast<size_t>(n * ldy), 7.0f);
          lsa_decode::matmul_rows(x.data(), n, d_in, w.data(), d_out, ldw, y.data(), ldy);
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t o = 0; o < d_out; ++o) {
              double s = 0.0, a = 0.0;
              for (int64_t k = 0; k < d_in; ++k) {
                s += double(x[i * d_in + k]) * widened(w[o * ldw + k]);
                a += std::abs(double(x[i * d_in + k]) * widened(w[o * ldw + k]));
              }
              REQUIRE(std::abs(y[i * ldy + o] - s) <= 1e-5 * a + 1e-30);
            }
            for (int64_t o = d_out; o < ldy; ++o) REQUIRE(y[i * ldy + o] == 7.0f);  // untouched
          }
        }
      }
    }
    // P V over a page: n query rows, k = tokens of the page (a partial one too), m = head dim.
    for (const int64_t n : {1, 3, 7}) {
      for (const int64_t k : {1, 5, 16, 70}) {
        for (const int64_t m : {1, 17, 64, 65, 100}) {
          INFO("nn: n " << n << " k " << k << " m " << m);
          const int64_t ldx = k + 1, ldb = 2 * m + 3, ldy = m + 2;
          const std::vector<float> x = normal_floats(static_cast<size_t>(n * ldx), ++seed);
          const std::vector<hwy::float16_t> b = normal_f16(static_cast<size_t>(k * ldb), ++seed);
          std::vector<float> y(static_cast<size_t>(n * ldy), 7.0f);
          lsa_decode::matmul_nn(x.data(), n, k, ldx, b.data(), m, ldb, y.data(), ldy);
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < m; ++j) {
              double s = 0.0, a = 0.0;
              for (int64_t kk = 0; kk < k; ++kk) {
                s += double(x[i * ldx + kk]) * widened(b[kk * ldb + j]);
                a += std::abs(double(x[i * ldx + kk]) * widened(b[kk * ldb + j]));
              }
              REQUIRE(std::abs(y[i * ldy + j] - s) <= 1e-5 * a + 1e-30);
            }
            for (int64_t j = m; j < ldy; ++j) REQUIRE(y[i * ldy + j] == 7.0f);
          }
        }
      }
    }
  });
}

TEST_CASE("f16 products equal fp32 products of the widened operands", "[decoder][kernels]") {
  // The same accumulation order as the fp32 kernels: the f16 path differs from the reference only
  // by the rounding of K and V, not by how it sums.
  for_each_target([](const std::string&) {
    const int64_t n = 3, d = 64, tokens = 37;
    const std::vector<float> q = normal_floats(static_cast<size_t>(n * d), 1);
    const std::vector<hwy::float16_t> kv = normal_f16(static_cast<size_t>(tokens * d), 2);
    std::vector<float> wide(kv.size());
    lsa_decode::from_f16(kv.data(), wide.data(), static_cast<int64_t>(kv.size()));
    std::vector<float> a(static_cast<size_t>(n * tokens)), b(a.size());
    lsa_decode::matmul_rows(q.data(), n, d, kv.data(), tokens, d, a.data(), tokens);
    lsa_decode::matmul_rows(q.data(), n, d, wide.data(), tokens, d, b.data(), tokens);
    CHECK(a == b);
    std::vector<float> c(static_cast<size_t>(n * d)), e(c.size());
    lsa_decode::matmul_nn(a.data(), n, tokens, tokens, kv.data(), d, d, c.data(), d);
    lsa_decode::matmul_nn(a.data(), n, tokens, tokens, wide.data(), d, d, e.data(), d);
    CHECK(c == e);
    lsa_decode::matmul_nn_add(a.data(), n, tokens, tokens, kv.data(), d, d, c.data(), d);
    lsa_decode::matmul_nn_add(a.data(), n, tokens, tokens, wide.data(), d, d, e.data(), d);
    CHECK(c == e);
  });
}
