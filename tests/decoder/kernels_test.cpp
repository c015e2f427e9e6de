// The fp32 kernels (kernels.hpp) against double-precision references on every SIMD target the
// CPU supports, at lengths that end in partial vectors.
#include "kernels.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "each_target.hpp"
#include "thread_pool.hpp"

namespace {

using lsa_decode_test::for_each_target;

std::vector<float> normal_floats(size_t n, uint64_t seed, float sigma = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

}  // namespace

TEST_CASE("fp32 products match the double reference on every target", "[decoder][kernels]") {
  for_each_target([](const std::string&) {
    lsa_decode::ThreadPool pool(2);
    uint64_t seed = 0;
    for (const int64_t n : {1, 2, 3, 5, 17}) {
      for (const int64_t d_in : {1, 15, 37, 64, 576}) {
        for (const int64_t d_out : {1, 7, 70}) {
          INFO("n " << n << " d_in " << d_in << " d_out " << d_out);
          // Strided operands, as attention reads them from KV pages.
          const int64_t ldx = d_in + 3, ldw = d_in + 5, ldy = d_out + 2;
          const std::vector<float> x = normal_floats(static_cast<size_t>(n * ldx), ++seed);
          const std::vector<float> w = normal_floats(static_cast<size_t>(d_out * ldw), ++seed);
          std::vector<float> y(static_cast<size_t>(n * ldy), 7.0f);
          lsa_decode::matmul(pool, x.data(), n, d_in, ldx, w.data(), d_out, ldw, y.data(), ldy);
          std::vector<float> rows(static_cast<size_t>(n * ldy), 7.0f);
          std::vector<float> packed_x(static_cast<size_t>(n * d_in));
          for (int64_t i = 0; i < n; ++i)
            for (int64_t k = 0; k < d_in; ++k) packed_x[i * d_in + k] = x[i * ldx + k];
          lsa_decode::matmul_rows(packed_x.data(), n, d_in, w.data(), d_out, ldw, rows.data(), ldy);
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t o = 0; o < d_out; ++o) {
              double s = 0.0, a = 0.0;
              for (int64_t k = 0; k < d_in; ++k) {
                s += double(x[i * ldx + k]) * w[o * ldw + k];
                a += std::abs(double(x[i * ldx + k]) * w[o * ldw + k]);
              }
              REQUIRE(std::abs(y[i * ldy + o] - s) <= 1e-5 * a + 1e-30);
              REQUIRE(rows[i * ldy + o] == y[i * ldy + o]);
            }
            for (int64_t o = d_out; o < ldy; ++o) REQUIRE(y[i * ldy + o] == 7.0f);  // untouched
          }
        }
      }
    }
  });
}

TEST_CASE("fp32 nn products match the double reference on every target", "[decoder][kernels]") {
  for_each_target([](const std::string&) {
    uint64_t seed = 50;
    for (const int64_t n : {1, 3, 5}) {
      for (const int64_t k : {1, 16, 70}) {
        for (const int64_t m : {1, 17, 64, 100}) {
          INFO("n " << n << " k " << k << " m " << m);
          const int64_t ldx = k + 1, ldb = m + 3, ldy = m + 2;
          const std::vector<float> x = normal_floats(static_cast<size_t>(n * ldx), ++seed);
          const std::vector<float> b = normal_floats(static_cast<size_t>(k * ldb), ++seed);
          std::vector<float> y(static_cast<size_t>(n * ldy), 7.0f), acc = y;
          lsa_decode::matmul_nn(x.data(), n, k, ldx, b.data(), m, ldb, y.data(), ldy);
          lsa_decode::matmul_nn_add(x.data(), n, k, ldx, b.data(), m, ldb, acc.data(), ldy);  // 7 + x b
          for (int64_t i = 0; i < n; ++i) {
            for (int64_t j = 0; j < m; ++j) {
              double s = 0.0, a = 0.0;
              for (int64_t kk = 0; kk < k; ++kk) {
                s += double(x[i * ldx + kk]) * b[kk * ldb + j];
                a += std::abs(double(x[i * ldx + kk]) * b[kk * ldb + j]);
              }
              REQUIRE(std::abs(y[i * ldy + j] - s) <= 1e-5 * a + 1e-30);
              REQUIRE(std::abs(acc[i * ldy + j] - (7.0 + s)) <= 1e-5 * (a + 7.0));
            }
            for (int64_t j = m; j < ldy; ++j) REQUIRE(y[i * ldy + j] == 7.0f);
            for (int64_t j = m; j < ldy; ++j) REQUIRE(acc[i * ldy + j] == 7.0f);
          }
        }
      }
    }
  });
}

TEST_CASE("softmax, running exp sums, silu, dot and axpy match the double reference on every target",
          "[decoder][kernels]") {
  for_each_target([](const std::string&) {
    uint64_t seed = 90;
    for (const int64_t n : {1, 5, 16, 33, 1000, 5003}) {
      INFO("n " << n);
      std::vector<float> x = normal_floats(static_cast<size_t>(n), ++seed, 4.0f);
      x[0] = -200.0f;  // far below the max: exp underflows to 0
      const std::vector<float> orig = x;
      const double log_norm = lsa_decode::softmax(x.data(), n);
      double mx = -INFINITY, sum = 0.0;
      for (float v : orig) mx = std::max(mx, double(v));
      for (float v : orig) sum += std::exp(double(v) - mx);
      CHECK(log_norm == Approx(std::log(sum) + mx).epsilon(1e-6));
      double total = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const double want = std::exp(double(orig[i]) - mx) / sum;
        REQUIRE(std::abs(x[i] - want) <= 1e-6 * want + 1e-12);
        total += x[i];
      }
      CHECK(total == Approx(1.0).epsilon(1e-5));

      // One step of a running softmax: from a running maximum below the row's and above it.
      for (const float start : {-INFINITY, float(mx) + 3.0f}) {
        INFO("running max " << start);
        std::vector<float> e = orig;
        float running = start;
        const float got = lsa_decode::exp_sum(e.data(), n, &running);
        const double top = std::max(mx, double(start));
        CHECK(running == float(top));
        double want_sum = 0.0;
        for (int64_t i = 0; i < n; ++i) {
          const double want = std::exp(double(orig[i]) - top);
          REQUIRE(std::abs(e[i] - want) <= 1e-6 * want + 1e-12);  // absolute: the sum is at least exp(-3)
          want_sum += want;
        }
        CHECK(got == Approx(want_sum).epsilon(1e-5));
      }

      std::vector<float> gate = normal_floats(static_cast<size_t>(n), ++seed, 6.0f);
      gate[0] = -150.0f;  // exp(-gate) overflows float
      if (n > 1) gate[1] = 95.0f;
      const std::vector<float> up = normal_floats(static_cast<size_t>(n), ++seed);
      const std::vector<float> g0 = gate;
      lsa_decode::silu_mul(gate.data(), up.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        const double want = double(g0[i]) / (1.0 + std::exp(-double(g0[i]))) * up[i];
        REQUIRE(std::abs(gate[i] - want) <= 1e-6 * std::abs(want) + 1e-30);
      }

      const std::vector<float> a = normal_floats(static_cast<size_t>(n), ++seed);
      double d = 0.0, da = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        d += double(a[i]) * up[i];
        da += std::abs(double(a[i]) * up[i]);
      }
      CHECK(std::abs(lsa_decode::dot(a.data(), up.data(), n) - d) <= 1e-5 * da);
      std::vector<float> yv = a;
      lsa_decode::axpy(0.75f, up.data(), yv.data(), n);
      for (int64_t i = 0; i < n; ++i) {
        REQUIRE(std::abs(yv[i] - (double(a[i]) + 0.75 * up[i])) <=
                1e-6 * (std::abs(a[i]) + std::abs(up[i])));
      }
    }
  });
}
