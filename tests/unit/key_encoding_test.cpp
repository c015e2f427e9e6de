// encode_key_vector (f32, bf16, fp8 e4m3 with scale) and LearnedIndexer's projections and checks.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lsa/key_encoding.hpp"
#include "lsa/learned_indexer.hpp"

TEST_CASE("key encoding: f32 copies, bf16 rounds, fp8 scales to the largest magnitude", "[keys]") {
  std::mt19937 rng(4);
  std::normal_distribution<float> n(0.0f, 3.0f);
  for (const int64_t dim : {1, 7, 64, 128}) {
    std::vector<float> v(static_cast<size_t>(dim));
    for (float& x : v) x = n(rng);
    std::vector<std::byte> f32(static_cast<size_t>(lsa::encoded_key_bytes(lsa::KeyFormat::kF32, dim)));
    REQUIRE(lsa::encode_key_vector(v, lsa::KeyFormat::kF32, f32) == lsa::Status::kOk);
    CHECK(std::memcmp(f32.data(), v.data(), f32.size()) == 0);

    std::vector<std::byte> bf16(static_cast<size_t>(2 * dim));
    REQUIRE(lsa::encode_key_vector(v, lsa::KeyFormat::kBF16, bf16) == lsa::Status::kOk);
    for (int64_t i = 0; i < dim; ++i) {
      uint16_t bits;
      std::memcpy(&bits, bf16.data() + 2 * i, 2);
      CHECK(bits == lsa::float_to_bf16(v[static_cast<size_t>(i)]));
    }

    std::vector<std::byte> fp8(static_cast<size_t>(dim + 4));
    REQUIRE(lsa::encode_key_vector(v, lsa::KeyFormat::kFp8E4M3, fp8) == lsa::Status::kOk);
    float scale;
    std::memcpy(&scale, fp8.data() + dim, 4);
    float amax = 0.0f;
    for (const float x : v) amax = std::max(amax, std::abs(x));
    CHECK(scale == amax / lsa::kFp8E4M3Max);
    for (int64_t i = 0; i < dim; ++i) {
      const float x = v[static_cast<size_t>(i)];
      const float back = lsa::decode_fp8_e4m3(static_cast<uint8_t>(fp8[static_cast<size_t>(i)])) * scale;
      // e4m3 keeps 3 mantissa bits: half an ulp is 1/16 relative for normals; subnormals of the
      // scaled range are 2^-9 * scale apart.
      CHECK(std::abs(back - x) <= std::max(std::abs(x) / 16.0f, scale * 0x1.0p-10f) * 1.0001f);
    }
  }
  std::vector<std::byte> out(8);
  const std::vector<float> zeros(4, 0.0f);
  REQUIRE(lsa::encode_key_vector(zeros, lsa::KeyFormat::kFp8E4M3, out) == lsa::Status::kOk);
  float scale;
  std::memcpy(&scale, out.data() + 4, 4);
  CHECK(scale == 1.0f);
  const std::vector<std::byte> before = out;
  const std::vector<float> bad = {1.0f, NAN, 2.0f, 3.0f};
  CHECK(lsa::encode_key_vector(bad, lsa::KeyFormat::kFp8E4M3, out) == lsa::Status::kNonFiniteInput);
  CHECK(out == before);
  CHECK(lsa::encode_key_vector(zeros, lsa::KeyFormat::kFp8E4M3, std::span(out).first(7)) ==
        lsa::Status::kInvalidArgument);
  CHECK(lsa::encode_key_vector(zeros, static_cast<lsa::KeyFormat>(9), out) ==
        lsa::Status::kInvalidArgument);
}

TEST_CASE("learned indexer: projections against a plain double computation", "[keys]") {
  const int d = 12, h = 3, dh = 5;
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  auto fill = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = u(rng);
    return v;
  };
  const std::vector<float> kn = fill(d), kp = fill(dh * d), qn = fill(d), qp = fill(h * dh * d),
                           hp = fill(h * d), hb = fill(h);
  const lsa::LearnedIndexer ix({d, h, dh, 1e-5f}, {kn, kp, qn, qp, hp, hb, 0.25f});
  const std::vector<float> x = fill(d);
  auto normed = [&](const std::vector<float>& weight) {
    double ss = 0.0;
    for (const float v : x) ss += double{v} * v;
    const double inv = 1.0 / std::sqrt(ss / d + 1e-5);
    std::vector<double> out(d);
    for (int i = 0; i < d; ++i) out[i] = x[i] * inv * weight[i];
    return out;
  };
  std::vector<float> k(dh), q(h * dh), w(h);
  REQUIRE(ix.key(x, k) == lsa::Status::kOk);
  REQUIRE(ix.query(x, q, w) == lsa::Status::kOk);
  const std::vector<double> ku = normed(kn), qu = normed(qn);
  for (int r = 0; r < dh; ++r) {
    double want = 0.0;
    for (int i = 0; i < d; ++i) want += kp[r * d + i] * ku[i];
    CHECK(k[r] == Approx(want).margin(1e-6));
  }
  for (int r = 0; r < h * dh; ++r) {
    double want = 0.0;
    for (int i = 0; i < d; ++i) want += qp[r * d + i] * qu[i];
    CHECK(q[r] == Approx(want).margin(1e-6));
  }
  for (int r = 0; r < h; ++r) {
    double want = hb[r];
    for (int i = 0; i < d; ++i) want += hp[r * d + i] * qu[i];
    CHECK(w[r] == Approx(want).margin(1e-6));
  }
  const lsa::ScorerConfig c = ix.scorer_config(lsa::KeyFormat::kFp8E4M3);
  CHECK(c.num_layers == 1);
  CHECK(c.num_heads == h);
  CHECK(c.head_dim == dh);
  CHECK(c.logit_offset == 0.25f);
  // Bad sizes and non-finite input are statuses; bad weights are configuration errors.
  std::vector<float> short_k(dh - 1);
  CHECK(ix.key(x, short_k) == lsa::Status::kInvalidArgument);
  std::vector<float> nan_x = x;
  nan_x[3] = NAN;
  CHECK(ix.query(nan_x, q, w) == lsa::Status::kNonFiniteInput);
  CHECK_THROWS_WITH(lsa::LearnedIndexer({d, h, dh, 1e-5f}, {kn, kp, qn, qp, hp, std::span(hb).first(2), 0.0f}),
                    Catch::Contains("indexer.head_bias must hold 3 floats"));
  CHECK_THROWS_WITH(lsa::LearnedIndexer({0, h, dh, 1e-5f}, {kn, kp, qn, qp, hp, hb, 0.0f}),
                    Catch::Contains("indexer.feature_dim must be >= 1"));
  CHECK_THROWS_WITH(lsa::LearnedIndexer({d, h, dh, 1e-5f}, {kn, kp, qn, qp, hp, hb, INFINITY}),
                    Catch::Contains("indexer.logit_offset"));
}
