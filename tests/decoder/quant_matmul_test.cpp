// Products with weights in their stored types (ops/quant_matmul.hpp) against dequantize-then-
// multiply in double, for every type, both ways of computing them (direct and tiled), odd sizes,
// and every SIMD target the CPU supports.
#include "ops/quant_matmul.hpp"

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "each_target.hpp"
#include "error.hpp"
#include "gguf.hpp"
#include "ops/targets.hpp"
#include "ops/weight_matrix.hpp"
#include "quant.hpp"
#include "thread_pool.hpp"

namespace {

using lsa_decode::GgmlType;
using lsa_decode::WeightMatrix;
using lsa_decode_test::for_each_target;

constexpr GgmlType kTypes[] = {GgmlType::kF32, GgmlType::kF16, GgmlType::kQ4_0, GgmlType::kQ4_1,
                               GgmlType::kQ8_0};

std::string type_name(GgmlType t) { return lsa_decode::ggml_type_name(static_cast<uint32_t>(t)); }

void put_half(std::byte* p, uint16_t h) {
  p[0] = static_cast<std::byte>(h & 0xff);
  p[1] = static_cast<std::byte>(h >> 8);
}

// A finite half of either sign with a biased exponent in [lo, hi] (0 gives subnormals).
uint16_t random_half(std::mt19937_64& rng, int lo, int hi) {
  const auto exponent = static_cast<uint16_t>(lo + static_cast<int>(rng() % (hi - lo + 1)));
  return static_cast<uint16_t>((rng() & 0x8000) | (exponent << 10) | (rng() & 0x3ff));
}

// rows x cols weights of `type`: random quants, finite scales of weight-like size (Q4_1 mins
// about 8 scales), one block in 16 with a subnormal scale; F16/F32 values about 2^-6..2^2.
std::vector<std::byte> random_weights(GgmlType type, int64_t rows, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::byte> w(static_cast<size_t>(rows * lsa_decode::row_bytes(type, cols)));
  for (auto& b : w) b = static_cast<std::byte>(rng() & 0xff);
  const int64_t stride = lsa_decode::block_bytes(type);
  const int64_t count = static_cast<int64_t>(w.size()) / stride;
  for (int64_t i = 0; i < count; ++i) {
    std::byte* p = w.data() + i * stride;
    switch (type) {
      case GgmlType::kF32: {
        const float v = std::ldexp(static_cast<float>(rng() % 2001) / 1000.0f - 1.0f,
                                   -static_cast<int>(rng() % 7));
        std::memcpy(p, &v, sizeof v);
        break;
      }
      case GgmlType::kF16:
        put_half(p, random_half(rng, 9, 17));
        break;
      case GgmlType::kQ4_1:
        put_half(p + 2, random_half(rng, 6, 12));
        [[fallthrough]];
      case GgmlType::kQ4_0:
      case GgmlType::kQ8_0:
        put_half(p, i % 16 == 5 ? random_half(rng, 0, 0) : random_half(rng, 3, 9));
        break;
    }
  }
  return w;
}

std::vector<float> random_activations(int64_t n, int64_t cols, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n * cols));
  for (float& v : x) v = normal(rng);
  return x;
}

// The reference: every row dequantized by quant.hpp (tested against the format definitions in
// quant_test.cpp), products summed in double. `scale` gets sum |x * w| per output, the size of
// the rounding error an f32 dot product may make.
std::vector<double> reference_product(const WeightMatrix& w, const std::vector<float>& x, int64_t n,
                                      std::vector<double>& scale) {
  std::vector<double> y(static_cast<size_t>(n * w.rows()));
  scale.assign(y.size(), 0.0);
  std::vector<float> row(static_cast<size_t>(w.cols()));
  for (int64_t o = 0; o < w.rows(); ++o) {
    lsa_decode::dequantize(w.type(), w.row(o), row.data(), w.cols());
    for (int64_t i = 0; i < n; ++i) {
      double s = 0.0, a = 0.0;
      for (int64_t k = 0; k < w.cols(); ++k) {
        const double p =
            double(x[static_cast<size_t>(i * w.cols() + k)]) * row[static_cast<size_t>(k)];
        s += p;
        a += std::abs(p);
      }
      y[static_cast<size_t>(i * w.rows() + o)] = s;
      scale[static_cast<size_t>(i * w.rows() + o)] = a;
    }
  }
  return y;
}

// f32 products with f32 sums: relative to sum |x * w|, a few units of 1e-6 at these lengths.
constexpr double kTolerance = 2e-5;

void check_close(const std::vector<float>& got, const std::vector<double>& want,
                 const std::vector<double>& scale, const char* what) {
  INFO(what);
  REQUIRE(got.size() == want.size());
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::abs(double(got[i]) - want[i]);
    if (!(err <= kTolerance * scale[i] + 1e-30) && ++bad <= 5) {
      FAIL_CHECK("output " << i << ": got " << got[i] << ", want " << want[i] << " (sum |x w| "
                           << scale[i] << ")");
    }
  }
  CHECK(bad == 0);
}

std::vector<int64_t> widths(GgmlType type) {
  // d_in: one block, two, SmolLM2's d_model and ffn_dim; F16/F32 rows need no whole blocks, so
  // also lengths that end in a partial vector.
  if (type == GgmlType::kF32 || type == GgmlType::kF16) return {1, 32, 37, 64, 576, 1536};
  return {32, 64, 576, 1536};
}

}  // namespace

TEST_CASE("quantized products match the double reference on every target", "[decoder][quant]") {
  for_each_target([](const std::string&) {
    uint64_t seed = 1;
    for (const GgmlType type : kTypes) {
      INFO("type " << type_name(type));
      for (const int64_t cols : widths(type)) {
        // Rows: one, fewer than a group of 4, and more than a 64-row tile that are not a
        // multiple of either.
        for (const int64_t rows : {int64_t{1}, int64_t{7}, int64_t{133}}) {
          INFO("rows " << rows << " cols " << cols);
          const std::vector<std::byte> bytes = random_weights(type, rows, cols, ++seed);
          const WeightMatrix w("test.weight", type, rows, cols, bytes.data(),
                               static_cast<int64_t>(bytes.size()));
          for (const int64_t n : {int64_t{1}, int64_t{3}, int64_t{17}}) {
            INFO("n " << n);
            const std::vector<float> x = random_activations(n, cols, ++seed);
            std::vector<double> scale;
            const std::vector<double> want = reference_product(w, x, n, scale);
            std::vector<float> direct(want.size(), NAN), tiled(want.size(), NAN);
            lsa_decode::matmul_direct(x.data(), n, w, 0, rows, direct.data(), rows);
            lsa_decode::matmul_tiled(x.data(), n, w, 0, rows, tiled.data(), rows);
            check_close(direct, want, scale, "direct");
            check_close(tiled, want, scale, "tiled");
          }
        }
      }
    }
  });
}

TEST_CASE("quantized products give the same bits for any thread count and split",
          "[decoder][quant][threads]") {
  const int64_t rows = 150, cols = 576;
  for (const GgmlType type : kTypes) {
    INFO("type " << type_name(type));
    const std::vector<std::byte> bytes = random_weights(type, rows, cols, 99);
    const WeightMatrix w("test.weight", type, rows, cols, bytes.data(),
                         static_cast<int64_t>(bytes.size()));
    for (const int64_t n : {int64_t{1}, int64_t{5}}) {
      INFO("n " << n);
      const std::vector<float> x = random_activations(n, cols, 100 + n);
      // The same outputs computed in two uneven pieces on this thread ...
      std::vector<float> pieces(static_cast<size_t>(n * rows));
      for (const auto& [b, e] : {std::pair<int64_t, int64_t>{0, 37}, {37, rows}}) {
        if (n <= lsa_decode::kDirectMaxRows) {
          lsa_decode::matmul_direct(x.data(), n, w, b, e, pieces.data(), rows);
        } else {
          lsa_decode::matmul_tiled(x.data(), n, w, b, e, pieces.data(), rows);
        }
      }
      // ... and by the pool.
      for (const int threads : {1, 2, 3}) {
        INFO("threads " << threads);
        lsa_decode::ThreadPool pool(threads);
        std::vector<float> y(pieces.size(), NAN);
        lsa_decode::matmul(pool, x.data(), n, w, y.data());
        CHECK(y == pieces);
      }
    }
  }
}

TEST_CASE("dequantize_rows is dequantize bit for bit on every target", "[decoder][quant]") {
  for_each_target([](const std::string&) {
    for (const GgmlType type : kTypes) {
      INFO("type " << type_name(type));
      const int64_t rows = 5, cols = type == GgmlType::kF16 || type == GgmlType::kF32 ? 83 : 96;
      // Raw random bytes: scales and F16 weights of every pattern, subnormal, inf and NaN too.
      std::mt19937_64 rng(7);
      std::vector<std::byte> bytes(static_cast<size_t>(rows * lsa_decode::row_bytes(type, cols)));
      for (auto& b : bytes) b = static_cast<std::byte>(rng() & 0xff);
      const WeightMatrix w("test.weight", type, rows, cols, bytes.data(),
                           static_cast<int64_t>(bytes.size()));
      std::vector<float> got(static_cast<size_t>(rows * cols)), want(got.size());
      lsa_decode::dequantize_rows(w, 0, rows, got.data());
      lsa_decode::dequantize(type, bytes.data(), want.data(), rows * cols);
      for (size_t i = 0; i < got.size(); ++i) {
        INFO("element " << i);
        if (std::isnan(want[i])) {
          REQUIRE(std::isnan(got[i]));
        } else {
          REQUIRE(std::memcmp(&got[i], &want[i], sizeof(float)) == 0);
        }
      }
      // And one row alone, as the embedding lookup reads it.
      std::vector<float> row(static_cast<size_t>(cols));
      w.dequantize_row(3, row.data());
      CHECK(std::memcmp(row.data(), want.data() + 3 * cols, row.size() * sizeof(float)) == 0);
    }
  });
}

TEST_CASE("weight matrices refuse types and shapes they cannot multiply", "[decoder][quant]") {
  const std::vector<std::byte> bytes(1024);
  CHECK_THROWS_WITH(
      WeightMatrix("blk.3.ffn_up.weight", static_cast<GgmlType>(14), 2, 32, bytes.data(), 1024),
      Catch::Contains("blk.3.ffn_up.weight") && Catch::Contains("Q6_K"));
  CHECK_THROWS_WITH(WeightMatrix("blk.0.attn_q.weight", GgmlType::kQ4_1, 2, 40, bytes.data(), 50),
                    Catch::Contains("blk.0.attn_q.weight") && Catch::Contains("Q4_1") &&
                        Catch::Contains("whole 32-element blocks"));
  CHECK_THROWS_WITH(WeightMatrix("output.weight", GgmlType::kQ8_0, 2, 32, bytes.data(), 70),
                    Catch::Contains("output.weight") && Catch::Contains("expected 68"));
  lsa_decode::GgufTensor vector_tensor;
  vector_tensor.name = "output_norm.weight";
  vector_tensor.dims = {576};
  CHECK_THROWS_WITH(WeightMatrix::from_tensor(vector_tensor),
                    Catch::Contains("output_norm.weight") && Catch::Contains("1 dims"));
  lsa_decode::GgufTensor t;
  t.name = "token_embd.weight";
  t.type = GgmlType::kQ8_0;
  t.dims = {64, 3};
  t.data = bytes.data();
  t.num_bytes = 3 * 68;
  const WeightMatrix w = WeightMatrix::from_tensor(t);
  CHECK(w.rows() == 3);
  CHECK(w.cols() == 64);
  CHECK(w.row_bytes() == 68);
}

TEST_CASE("kernel targets can be listed and pinned", "[decoder][quant]") {
  const auto targets = lsa_decode::available_targets();
  REQUIRE(!targets.empty());
  CHECK(targets.back().name == "SCALAR");  // the portable path is always there
  CHECK(lsa_decode::active_target() == targets.front().name);
  lsa_decode::use_target(targets.back());
  CHECK(lsa_decode::active_target() == "SCALAR");
  lsa_decode::use_best_target();
  CHECK(lsa_decode::active_target() == targets.front().name);
  CHECK_THROWS_WITH(lsa_decode::use_target({int64_t{1} << 40, "NOPE"}), Catch::Contains("NOPE"));

  ::setenv("LSA_DECODE_TARGET", "scalar", 1);
  lsa_decode::use_target_from_env();
  CHECK(lsa_decode::active_target() == "SCALAR");
  ::setenv("LSA_DECODE_TARGET", "avx9000", 1);
  CHECK_THROWS_WITH(lsa_decode::use_target_from_env(),
                    Catch::Contains("avx9000") && Catch::Contains("SCALAR"));
  ::unsetenv("LSA_DECODE_TARGET");
  lsa_decode::use_best_target();
  lsa_decode::use_target_from_env();  // unset: nothing changes
  CHECK(lsa_decode::active_target() == targets.front().name);
}
