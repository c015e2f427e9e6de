// The four index scorers against plain double-precision references written out in this file.
//
// Tolerances: a float dot product of D terms is within about D * 2^-24 of the sum of its absolute
// terms, so each reference also returns that magnitude and scores must agree within 1e-5 of it
// (relative 1e-5 of the computation's scale; a sigmoid output additionally scaled by s * (1 - s)).
#include "lsa/scorers.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "lsa/detail/cpu_dispatch.hpp"
#include "lsa/error.hpp"
#include "lsa/fp8.hpp"
#include "lsa/scorer_concept.hpp"

namespace {

using lsa::Ensemble;
using lsa::KeyFormat;
using lsa::KeyRows;
using lsa::Query;
using lsa::ScorerConfig;
using lsa::Status;

constexpr double kRelTol = 1e-5;

// splitmix64: a fixed-seed generator fast enough to fill millions of keys per test.
class Rng {
 public:
  using result_type = uint64_t;
  explicit Rng(uint64_t seed) : state_(seed) {}
  static constexpr result_type min() { return 0; }
  static constexpr result_type max() { return ~result_type{0}; }
  result_type operator()() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [-scale, scale).
  float uniform(float scale = 1.0f) {
    return scale * (static_cast<float>((*this)() >> 40) * 0x1p-23f - 1.0f);
  }

 private:
  uint64_t state_;
};

// ---------------------------------------------------------------------------------------------
// Reference decoding, by the format definitions.

double fp8_value(uint8_t code) {
  const int e = (code >> 3) & 0xF;
  const int m = code & 0x7;
  const double magnitude = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return (code & 0x80) ? -magnitude : magnitude;
}

double bf16_value(uint16_t bits) {
  const uint32_t u = uint32_t{bits} << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

int64_t vector_bytes(KeyFormat f, int64_t dim) {
  return f == KeyFormat::kF32 ? 4 * dim : f == KeyFormat::kBF16 ? 2 * dim : dim + 4;
}

// One stored key vector as doubles (fp8: code value times its scale).
std::vector<double> read_vector(KeyFormat f, const std::byte* src, int64_t dim) {
  std::vector<double> v(static_cast<size_t>(dim));
  if (f == KeyFormat::kFp8E4M3) {
    float scale;
    std::memcpy(&scale, src + dim, 4);
    for (int64_t d = 0; d < dim; ++d) v[d] = fp8_value(static_cast<uint8_t>(src[d])) * scale;
  } else if (f == KeyFormat::kBF16) {
    for (int64_t d = 0; d < dim; ++d) {
      uint16_t b;
      std::memcpy(&b, src + 2 * d, 2);
      v[d] = bf16_value(b);
    }
  } else {
    for (int64_t d = 0; d < dim; ++d) {
      float x;
      std::memcpy(&x, src + 4 * d, 4);
      v[d] = x;
    }
  }
  return v;
}

// Writes one random key vector. fp8 uses every finite code; `zero` writes an all-zero vector.
void write_vector(KeyFormat f, int64_t dim, Rng& rng, std::byte* dst, bool zero = false) {
  if (f == KeyFormat::kFp8E4M3) {
    for (int64_t d = 0; d < dim; ++d) {
      uint8_t c;
      do c = static_cast<uint8_t>(rng());
      while (lsa::is_nan_fp8_e4m3(c));
      dst[d] = static_cast<std::byte>(zero ? 0 : c);
    }
    // Codes reach 448; keep k around unit size, scales differing per vector (some negative).
    const float scale = (0.4f + rng.uniform(0.6f)) / 64.0f;
    std::memcpy(dst + dim, &scale, 4);
  } else if (f == KeyFormat::kBF16) {
    for (int64_t d = 0; d < dim; ++d) {
      const uint16_t b = lsa::float_to_bf16(zero ? 0.0f : rng.uniform());
      std::memcpy(dst + 2 * d, &b, 2);
    }
  } else {
    for (int64_t d = 0; d < dim; ++d) {
      const float x = zero ? 0.0f : rng.uniform();
      std::memcpy(dst + 4 * d, &x, 4);
    }
  }
}

// `num_rows` rows of `vectors_per_row` random vectors each.
std::vector<std::byte> random_rows(KeyFormat f, int64_t num_rows, int64_t vectors_per_row,
                                   int64_t dim, Rng& rng, double zero_fraction = 0.0) {
  const int64_t vb = vector_bytes(f, dim);
  std::vector<std::byte> rows(static_cast<size_t>(num_rows * vectors_per_row * vb));
  std::bernoulli_distribution zero(zero_fraction);
  for (int64_t v = 0; v < num_rows * vectors_per_row; ++v) {
    write_vector(f, dim, rng, rows.data() + v * vb, zero(rng));
  }
  return rows;
}

std::vector<float> random_floats(int64_t n, Rng& rng, float scale = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform(scale);
  return v;
}

// A reference score and how far a float implementation may be from it.
struct Expected {
  double value;
  double tol;
};

// Folds per-layer references the way the ensemble does (max: error of the worst layer).
Expected ensemble(Ensemble e, const std::vector<Expected>& layers) {
  if (e == Ensemble::kMax) {
    Expected out{-std::numeric_limits<double>::infinity(), 0.0};
    for (const Expected& l : layers) {
      out.value = std::max(out.value, l.value);
      out.tol = std::max(out.tol, l.tol);
    }
    return out;
  }
  Expected out{0.0, 0.0};
  for (const Expected& l : layers) {
    out.value += l.value / static_cast<double>(layers.size());
    out.tol += l.tol / static_cast<double>(layers.size());
  }
  return out;
}

// Compares all scores, reporting the first few mismatches.
template <class ExpectedFn>
void check_scores(std::span<const float> got, int64_t num_chunks, ExpectedFn expected,
                  const std::string& what) {
  int failures = 0;
  std::ostringstream report;
  for (int64_t c = 0; c < num_chunks; ++c) {
    const Expected want = expected(c);
    const double err = std::abs(double{got[c]} - want.value);
    if (!(err <= want.tol)) {  // also catches NaN
      if (failures++ < 5) {
        report << "  chunk " << c << ": got " << got[c] << ", want " << want.value << " +- "
               << want.tol << "\n";
      }
    }
  }
  INFO(what << "\n" << report.str());
  CHECK(failures == 0);
}

std::string describe(const ScorerConfig& c, int64_t n) {
  std::ostringstream s;
  s << "L=" << c.num_layers << " H=" << c.num_heads << " KH=" << c.num_key_heads
    << " D=" << c.head_dim << " format=" << static_cast<int>(c.key_format)
    << " ensemble=" << (c.ensemble == Ensemble::kMax ? "max" : "mean") << " cosine=" << c.cosine
    << " simd=" << lsa::detail::use_simd_kernels() << " avx512=" << lsa::detail::use_avx512_kernels()
    << " n=" << n;
  return s.str();
}

// Runs `body` with each kernel family the CPU has: AVX-512, AVX2 and the portable kernels.
template <class Body>
void for_each_kernel_path(Body body) {
  struct Restore {
    ~Restore() {
      lsa::detail::force_portable_kernels() = false;
      lsa::detail::forbid_avx512_kernels() = false;
    }
  } restore;
  enum class Path { kAvx512, kAvx2, kPortable };
  for (const Path path : {Path::kAvx512, Path::kAvx2, Path::kPortable}) {
    if (path == Path::kAvx512 && !lsa::detail::cpu_has_avx512f()) continue;
    if (path == Path::kAvx2 && !lsa::detail::cpu_has_avx2_fma_f16c()) continue;
    lsa::detail::force_portable_kernels() = path == Path::kPortable;
    lsa::detail::forbid_avx512_kernels() = path != Path::kAvx512;
    body();
  }
}

// Appends rows in random-sized pieces (so chunk summaries are built across calls).
template <class Scorer>
void append_in_pieces(const Scorer& s, typename Scorer::Index& index, const std::byte* rows,
                      int64_t num_rows, Rng& rng) {
  std::uniform_int_distribution<int64_t> piece(1, 37);
  for (int64_t r = 0; r < num_rows;) {
    const int64_t n = std::min(piece(rng), num_rows - r);
    const KeyRows part{rows + r * s.row_bytes(), n};
    REQUIRE(s.check_keys(part) == Status::kOk);
    s.append(index, part);
    r += n;
  }
}

// ---------------------------------------------------------------------------------------------
// References.

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// Lightning score of one chunk row.
Expected lightning_ref(const ScorerConfig& c, const std::byte* row, const std::vector<float>& q,
                       const std::vector<float>& w) {
  const int64_t vb = vector_bytes(c.key_format, c.head_dim);
  std::vector<Expected> layers;
  for (int l = 0; l < c.num_layers; ++l) {
    const std::vector<double> k = read_vector(c.key_format, row + l * vb, c.head_dim);
    double logit = c.logit_offset;
    double magnitude = std::abs(c.logit_offset);
    for (int h = 0; h < c.num_heads; ++h) {
      double dot = 0.0, abs_dot = 0.0;
      for (int d = 0; d < c.head_dim; ++d) {
        const double term = double{q[(l * c.num_heads + h) * c.head_dim + d]} * k[d];
        dot += term;
        abs_dot += std::abs(term);
      }
      const double weight = w[l * c.num_heads + h];
      logit += weight * std::max(dot, 0.0);
      magnitude += std::abs(weight) * abs_dot;
    }
    const double s = sigmoid(logit);
    layers.push_back({s, kRelTol * s * (1.0 - s) * magnitude + 1e-6 * s});
  }
  return ensemble(c.ensemble, layers);
}

// Bound (kBound = true) or centroid score of a chunk made of the given token rows.
Expected token_ref(const ScorerConfig& c, const std::vector<const std::byte*>& tokens,
                   const std::vector<float>& q, bool bound) {
  const int64_t vb = vector_bytes(c.key_format, c.head_dim);
  const int group = c.num_heads / c.num_key_heads;
  std::vector<Expected> layers;
  for (int l = 0; l < c.num_layers; ++l) {
    Expected layer{-std::numeric_limits<double>::infinity(), 0.0};
    for (int g = 0; g < c.num_key_heads; ++g) {
      const int64_t offset = (int64_t{l} * c.num_key_heads + g) * vb;
      std::vector<double> hi(c.head_dim, -std::numeric_limits<double>::infinity());
      std::vector<double> lo(c.head_dim, std::numeric_limits<double>::infinity());
      std::vector<double> sum(c.head_dim, 0.0), abs_sum(c.head_dim, 0.0);
      for (const std::byte* t : tokens) {
        const std::vector<double> k = read_vector(c.key_format, t + offset, c.head_dim);
        for (int d = 0; d < c.head_dim; ++d) {
          hi[d] = std::max(hi[d], k[d]);
          lo[d] = std::min(lo[d], k[d]);
          sum[d] += k[d];
          abs_sum[d] += std::abs(k[d]);
        }
      }
      for (int h = g * group; h < (g + 1) * group; ++h) {
        double value = 0.0, magnitude = 0.0;
        for (int d = 0; d < c.head_dim; ++d) {
          const double qd = q[(l * c.num_heads + h) * c.head_dim + d];
          if (bound) {
            const double term = std::max(qd * hi[d], qd * lo[d]);
            value += term;
            magnitude += std::abs(term);
          } else {
            value += qd * sum[d] / static_cast<double>(tokens.size());
            magnitude += std::abs(qd) * abs_sum[d] / static_cast<double>(tokens.size());
          }
        }
        layer.value = std::max(layer.value, value);
        layer.tol = std::max(layer.tol, kRelTol * magnitude);
      }
    }
    layers.push_back(layer);
  }
  return ensemble(c.ensemble, layers);
}

// Embedding score of one chunk row.
Expected embedding_ref(const ScorerConfig& c, const std::byte* row, const std::vector<float>& q) {
  const int64_t vb = vector_bytes(c.key_format, c.head_dim);
  std::vector<Expected> layers;
  for (int l = 0; l < c.num_layers; ++l) {
    const std::vector<double> e = read_vector(c.key_format, row + l * vb, c.head_dim);
    double dot = 0.0, magnitude = 0.0, qq = 0.0, ee = 0.0;
    for (int d = 0; d < c.head_dim; ++d) {
      const double qd = q[l * c.head_dim + d];
      dot += qd * e[d];
      magnitude += std::abs(qd * e[d]);
      qq += qd * qd;
      ee += e[d] * e[d];
    }
    if (c.cosine) {
      const double norms = std::sqrt(qq) * std::sqrt(ee);
      layers.push_back(norms > 0 ? Expected{dot / norms, kRelTol * magnitude / norms}
                                 : Expected{0.0, 0.0});
    } else {
      layers.push_back({dot, kRelTol * magnitude});
    }
  }
  return ensemble(c.ensemble, layers);
}

// Token rows of chunk c in a history of n tokens.
std::vector<const std::byte*> chunk_tokens_of(const std::vector<std::byte>& rows, int64_t row_bytes,
                                              int64_t c, int64_t n, int32_t chunk_tokens) {
  std::vector<const std::byte*> out;
  for (int64_t t = c * chunk_tokens; t < std::min<int64_t>(n, (c + 1) * chunk_tokens); ++t) {
    out.push_back(rows.data() + t * row_bytes);
  }
  return out;
}

ScorerConfig make_config(int layers, int heads, int key_heads, int dim, KeyFormat f, Ensemble e) {
  ScorerConfig c;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_key_heads = key_heads;
  c.head_dim = dim;
  c.key_format = f;
  c.ensemble = e;
  return c;
}

constexpr KeyFormat kAllFormats[] = {KeyFormat::kF32, KeyFormat::kBF16, KeyFormat::kFp8E4M3};
constexpr KeyFormat kFloatFormats[] = {KeyFormat::kF32, KeyFormat::kBF16};
constexpr Ensemble kEnsembles[] = {Ensemble::kMax, Ensemble::kMean};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Scores against the references.

TEST_CASE("lightning scores match the double reference", "[cpu][scorers][lightning]") {
  static_assert(lsa::LightningScorer::kGranularity == lsa::KeyGranularity::kChunk);
  static_assert(lsa::LightningScorer::kProbabilities);
  constexpr int32_t kChunkTokens = 4;
  // Chunk counts around the 4-row micro-kernel and the 32-row tile, and a few hundred.
  const int64_t checkpoints[] = {1, 3, 4, 5, 31, 32, 33, 300};
  struct Shape {
    int heads, dim;
  };
  // The brief's H x D grid, plus: 17 heads (a 16-wide and an 8-wide head block), 44 and 56 heads
  // (AVX-512 32-head passes followed by 16- and 8-wide AVX2 blocks, some lanes padding), 136 x 128
  // (too big for the transposed query: the dot-product kernel), D=20 (masked tails), D=1024
  // (4-row tiles).
  std::vector<Shape> shapes;
  for (int h : {1, 3, 64, 128}) {
    for (int d : {8, 128}) shapes.push_back({h, d});
  }
  shapes.push_back({17, 20});
  shapes.push_back({44, 20});
  shapes.push_back({56, 128});
  shapes.push_back({136, 128});
  shapes.push_back({2, 1024});
  uint32_t seed = 1;
  for (const Shape& shape : shapes) {
    for (const KeyFormat f : kAllFormats) {
      for (const Ensemble e : kEnsembles) {
        for (const int layers : {1, 3}) {
          // Big shapes with (1 layer, max) and (3 layers, mean) only, to bound the test time.
          if (shape.heads >= 64 && shape.dim >= 128 && (layers == 1) != (e == Ensemble::kMax)) {
            continue;
          }
          ScorerConfig c = make_config(layers, shape.heads, 1, shape.dim, f, e);
          c.logit_offset = -0.25f;
          const lsa::LightningScorer s(c, kChunkTokens);
          REQUIRE(s.row_bytes() == layers * vector_bytes(f, shape.dim));
          Rng rng(seed++);
          const int64_t total = checkpoints[std::size(checkpoints) - 1];
          const std::vector<std::byte> rows = random_rows(f, total, layers, shape.dim, rng);
          const std::vector<float> q =
              random_floats(int64_t{layers} * shape.heads * shape.dim, rng);
          const std::vector<float> w =
              random_floats(int64_t{layers} * shape.heads, rng, 2.0f / shape.heads);
          const Query query{q, w};
          REQUIRE(s.check_query(query) == Status::kOk);
          std::vector<Expected> want;
          for (int64_t r = 0; r < total; ++r) {
            want.push_back(lightning_ref(c, rows.data() + r * s.row_bytes(), q, w));
          }
          for_each_kernel_path([&] {
            lsa::LightningScorer::Index index;
            int64_t have = 0;
            for (const int64_t n : checkpoints) {
              append_in_pieces(s, index, rows.data() + have * s.row_bytes(), n - have, rng);
              have = n;
              REQUIRE(s.num_chunks(index) == n);
              std::vector<float> out(static_cast<size_t>(n) + 1, -7.0f);
              s.score(index, query, out);
              CHECK(out[n] == -7.0f);  // nothing written past num_chunks
              check_scores(
                  out, n, [&](int64_t i) { return want[i]; }, describe(c, n));
            }
          });
        }
      }
    }
  }
}

TEST_CASE("bound and centroid scores match the double reference",
          "[cpu][scorers][bound][centroid]") {
  static_assert(lsa::BoundScorer::kGranularity == lsa::KeyGranularity::kToken);
  static_assert(!lsa::BoundScorer::kProbabilities);
  static_assert(lsa::CentroidScorer::kGranularity == lsa::KeyGranularity::kToken);
  static_assert(!lsa::CentroidScorer::kProbabilities);
  constexpr int32_t kChunkTokens = 8;
  // Token counts: 1, chunk - 1, chunk, chunk + 1, a few chunks, a few hundred chunks (past the
  // 64-chunk scoring blocks).
  const int64_t checkpoints[] = {1, 7, 8, 9, 43, 300 * kChunkTokens + 5};
  struct Shape {
    int heads, key_heads;
  };
  const Shape shapes[] = {{1, 1}, {3, 1}, {3, 3}, {64, 8}, {128, 2}, {9, 3}};
  uint32_t seed = 100;
  for (const bool bound : {true, false}) {
    for (const Shape& shape : shapes) {
      for (const int dim : {8, 20, 128}) {  // 20: masked tails
        for (const KeyFormat f : kFloatFormats) {
          for (const Ensemble e : kEnsembles) {
            for (const int layers : {1, 3}) {
              // Bounding the test time: one layer only with max (a mean of one layer is the same
              // code path), the big shapes only with D=128, f32 and (1, max) or (3, mean).
              if (layers == 1 && e == Ensemble::kMean) continue;
              if (shape.heads >= 64 &&
                  (dim != 128 || f == KeyFormat::kBF16 || (layers == 1) != (e == Ensemble::kMax))) {
                continue;
              }
              const ScorerConfig c = make_config(layers, shape.heads, shape.key_heads, dim, f, e);
              const lsa::BoundScorer bound_scorer(c, kChunkTokens);
              const lsa::CentroidScorer centroid_scorer(c, kChunkTokens);
              const int64_t row_bytes =
                  bound ? bound_scorer.row_bytes() : centroid_scorer.row_bytes();
              REQUIRE(row_bytes == int64_t{layers} * shape.key_heads * vector_bytes(f, dim));
              Rng rng(seed++);
              const int64_t total = checkpoints[std::size(checkpoints) - 1];
              const std::vector<std::byte> rows =
                  random_rows(f, total, int64_t{layers} * shape.key_heads, dim, rng);
              const std::vector<float> q = random_floats(int64_t{layers} * shape.heads * dim, rng);
              // Bound and centroid ignore weights: pass garbage to prove it.
              const std::vector<float> w(3, std::numeric_limits<float>::quiet_NaN());
              const Query query{q, w};
              // References per checkpoint, shared by both kernel paths.
              std::vector<std::vector<Expected>> want;
              for (const int64_t n : checkpoints) {
                want.emplace_back();
                for (int64_t i = 0; i < (n + kChunkTokens - 1) / kChunkTokens; ++i) {
                  want.back().push_back(
                      token_ref(c, chunk_tokens_of(rows, row_bytes, i, n, kChunkTokens), q, bound));
                }
              }
              auto run = [&](const auto& s) {
                REQUIRE(s.check_query(query) == Status::kOk);
                for_each_kernel_path([&] {
                  size_t checkpoint = 0;
                  typename std::decay_t<decltype(s)>::Index index;
                  int64_t have = 0;
                  for (const int64_t n : checkpoints) {
                    append_in_pieces(s, index, rows.data() + have * row_bytes, n - have, rng);
                    have = n;
                    const int64_t chunks = (n + kChunkTokens - 1) / kChunkTokens;
                    REQUIRE(s.num_chunks(index) == chunks);
                    std::vector<float> out(static_cast<size_t>(chunks) + 1, -7.0f);
                    s.score(index, query, out);
                    CHECK(out[chunks] == -7.0f);
                    const std::vector<Expected>& expected = want[checkpoint++];
                    check_scores(
                        out, chunks, [&](int64_t i) { return expected[i]; },
                        std::string(bound ? "bound " : "centroid ") + describe(c, n));
                  }
                });
              };
              if (bound) {
                run(bound_scorer);
              } else {
                run(centroid_scorer);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("embedding scores match the double reference", "[cpu][scorers][embedding]") {
  static_assert(lsa::EmbeddingScorer::kGranularity == lsa::KeyGranularity::kChunk);
  static_assert(!lsa::EmbeddingScorer::kProbabilities);
  constexpr int32_t kChunkTokens = 8;
  const int64_t checkpoints[] = {1, 3, 4, 5, 31, 32, 33, 300};
  uint32_t seed = 200;
  for (const int dim : {8, 20, 128}) {
    for (const KeyFormat f : kFloatFormats) {
      for (const Ensemble e : kEnsembles) {
        for (const int layers : {1, 3}) {
          for (const bool cosine : {false, true}) {
            ScorerConfig c = make_config(layers, 1, 1, dim, f, e);
            c.cosine = cosine;
            const lsa::EmbeddingScorer s(c, kChunkTokens);
            REQUIRE(s.row_bytes() == layers * vector_bytes(f, dim));
            Rng rng(seed++);
            const int64_t total = checkpoints[std::size(checkpoints) - 1];
            // Some all-zero embeddings: cosine must score them 0.
            const std::vector<std::byte> rows = random_rows(f, total, layers, dim, rng, 0.05);
            std::vector<float> q = random_floats(int64_t{layers} * dim, rng);
            if (layers == 3) std::fill(q.begin() + dim, q.begin() + 2 * dim, 0.0f);  // zero query
            const Query query{q, {}};
            REQUIRE(s.check_query(query) == Status::kOk);
            std::vector<Expected> want;
            for (int64_t r = 0; r < total; ++r) {
              want.push_back(embedding_ref(c, rows.data() + r * s.row_bytes(), q));
            }
            for_each_kernel_path([&] {
              lsa::EmbeddingScorer::Index index;
              int64_t have = 0;
              for (const int64_t n : checkpoints) {
                append_in_pieces(s, index, rows.data() + have * s.row_bytes(), n - have, rng);
                have = n;
                REQUIRE(s.num_chunks(index) == n);
                std::vector<float> out(static_cast<size_t>(n) + 1, -7.0f);
                s.score(index, query, out);
                CHECK(out[n] == -7.0f);
                check_scores(
                    out, n, [&](int64_t i) { return want[i]; }, describe(c, n));
              }
            });
          }
        }
      }
    }
  }
}

TEST_CASE("lightning saturates instead of producing NaN when products overflow",
          "[cpu][scorers][lightning]") {
  // Finite keys and queries whose products overflow float: q . k = +inf, so with positive weights
  // every score is exactly 1. Odd head counts exercise the unpaired-head lanes of both AVX2
  // kernels (137 x 128 is too big for the transposed query).
  for (const int heads : {3, 137}) {
    const ScorerConfig c = make_config(1, heads, 1, 128, KeyFormat::kF32, Ensemble::kMax);
    const lsa::LightningScorer s(c, 4);
    const std::vector<float> key(128 * 5, 1e30f);
    const std::vector<float> q(static_cast<size_t>(heads) * 128, 1e30f), w(heads, 1.0f);
    REQUIRE(s.check_keys({reinterpret_cast<const std::byte*>(key.data()), 5}) == Status::kOk);
    lsa::LightningScorer::Index index;
    s.append(index, {reinterpret_cast<const std::byte*>(key.data()), 5});
    for_each_kernel_path([&] {
      std::vector<float> out(5);
      s.score(index, {q, w}, out);
      INFO("heads " << heads << " simd " << lsa::detail::use_simd_kernels() << " avx512 "
                    << lsa::detail::use_avx512_kernels());
      for (const float x : out) CHECK(x == 1.0f);
    });
  }
}

TEST_CASE("scoring an empty index writes nothing", "[cpu][scorers]") {
  const ScorerConfig c = make_config(1, 2, 1, 8, KeyFormat::kF32, Ensemble::kMax);
  const std::vector<float> q(16, 1.0f), w(2, 1.0f);
  float out = -7.0f;
  const lsa::LightningScorer lightning(c, 4);
  lightning.score({}, {q, w}, std::span(&out, 1));
  const lsa::BoundScorer bound(c, 4);
  bound.score({}, {q, w}, std::span(&out, 1));
  const lsa::CentroidScorer centroid(c, 4);
  centroid.score({}, {q, w}, std::span(&out, 1));
  ScorerConfig e = make_config(1, 1, 1, 8, KeyFormat::kF32, Ensemble::kMax);
  const lsa::EmbeddingScorer embedding(e, 4);
  embedding.score({}, {std::span(q).first(8), {}}, std::span(&out, 1));
  CHECK(out == -7.0f);
  CHECK(lightning.num_chunks({}) == 0);
  CHECK(bound.num_chunks({}) == 0);
}

// ---------------------------------------------------------------------------------------------
// Truncation and forks.

TEST_CASE("chunk scorers truncate to the complete chunks and keep scoring right",
          "[cpu][scorers][truncate][lightning][embedding]") {
  constexpr int32_t kChunkTokens = 4;
  const ScorerConfig lc = make_config(2, 5, 1, 24, KeyFormat::kFp8E4M3, Ensemble::kMean);
  const ScorerConfig ec = make_config(2, 1, 1, 24, KeyFormat::kBF16, Ensemble::kMax);
  const lsa::LightningScorer lightning(lc, kChunkTokens);
  ScorerConfig ec_cos = ec;
  ec_cos.cosine = true;
  const lsa::EmbeddingScorer embedding(ec_cos, kChunkTokens);
  Rng rng(7);
  const std::vector<float> lq = random_floats(2 * 5 * 24, rng), lw = random_floats(10, rng);
  const std::vector<float> eq = random_floats(2 * 24, rng);

  auto run = [&](const auto& s, const ScorerConfig& c, const Query& query, auto ref) {
    std::vector<std::byte> rows = random_rows(c.key_format, 50, c.num_layers, c.head_dim, rng);
    typename std::decay_t<decltype(s)>::Index index;
    s.append(index, {rows.data(), 50});
    auto check = [&](int64_t expect_chunks, const std::string& what) {
      REQUIRE(s.num_chunks(index) == expect_chunks);
      std::vector<float> out(static_cast<size_t>(expect_chunks));
      s.score(index, query, out);
      check_scores(
          out, expect_chunks, [&](int64_t i) { return ref(rows.data() + i * s.row_bytes()); },
          what);
    };
    // (tokens kept, chunks expected): floor(n / chunk_tokens), never more than there are.
    const std::pair<int64_t, int64_t> cuts[] = {
        {1000, 50}, {203, 50}, {199, 49}, {121, 30}, {120, 30}};
    for (const auto& [tokens, chunks] : cuts) {
      s.truncate(index, tokens);
      check(chunks, "after truncate to " + std::to_string(tokens) + " tokens");
    }
    // New rows after the cut replace the forgotten ones.
    std::vector<std::byte> more = random_rows(c.key_format, 7, c.num_layers, c.head_dim, rng);
    rows.resize(static_cast<size_t>(30 * s.row_bytes()));
    rows.insert(rows.end(), more.begin(), more.end());
    s.append(index, {more.data(), 7});
    check(37, "after re-append");
    s.truncate(index, 3);
    check(0, "after truncate to 3 tokens");
    s.truncate(index, 0);
    check(0, "after truncate to 0 tokens");
  };
  for_each_kernel_path([&] {
    run(lightning, lc, Query{lq, lw},
        [&](const std::byte* row) { return lightning_ref(lc, row, lq, lw); });
    run(embedding, ec_cos, Query{eq, {}},
        [&](const std::byte* row) { return embedding_ref(ec_cos, row, eq); });
  });
}

TEST_CASE("token scorers truncate at chunk boundaries exactly and inside chunks conservatively",
          "[cpu][scorers][truncate][bound][centroid]") {
  constexpr int32_t kT = 8;
  for (const KeyFormat f : kFloatFormats) {
    const ScorerConfig c = make_config(2, 6, 2, 16, f, Ensemble::kMax);
    const lsa::BoundScorer bound(c, kT);
    const lsa::CentroidScorer centroid(c, kT);
    const int64_t row_bytes = bound.row_bytes();
    Rng rng(11);
    const std::vector<float> q = random_floats(2 * 6 * 16, rng);
    const Query query{q, {}};
    // 100 tokens: 13 chunks, the last with 4 tokens.
    const std::vector<std::byte> old_rows = random_rows(f, 100, 4, 16, rng);
    const std::vector<std::byte> new_rows = random_rows(f, 10, 4, 16, rng);

    for_each_kernel_path([&] {
      // Cut at a chunk boundary: exact for both scorers.
      lsa::BoundScorer::Index b;
      lsa::CentroidScorer::Index m;
      bound.append(b, {old_rows.data(), 100});
      centroid.append(m, {old_rows.data(), 100});
      bound.truncate(b, 100);   // no-op
      bound.truncate(b, 1000);  // no-op
      REQUIRE(bound.num_chunks(b) == 13);
      bound.truncate(b, 64);
      centroid.truncate(m, 64);
      REQUIRE(bound.num_chunks(b) == 8);
      REQUIRE(centroid.num_chunks(m) == 8);
      std::vector<float> out(8);
      bound.score(b, query, out);
      check_scores(
          out, 8,
          [&](int64_t i) {
            return token_ref(c, chunk_tokens_of(old_rows, row_bytes, i, 64, kT), q, true);
          },
          "bound, cut at 64");
      centroid.score(m, query, out);
      check_scores(
          out, 8,
          [&](int64_t i) {
            return token_ref(c, chunk_tokens_of(old_rows, row_bytes, i, 64, kT), q, false);
          },
          "centroid, cut at 64");

      // Cut inside chunk 7 (tokens 56..60 survive of 56..63), then 10 new tokens: 61..70.
      lsa::BoundScorer::Index b2;
      lsa::CentroidScorer::Index m2;
      bound.append(b2, {old_rows.data(), 100});
      centroid.append(m2, {old_rows.data(), 100});
      bound.truncate(b2, 61);
      centroid.truncate(m2, 61);
      REQUIRE(bound.num_chunks(b2) == 8);
      bound.append(b2, {new_rows.data(), 10});
      centroid.append(m2, {new_rows.data(), 10});
      REQUIRE(bound.num_chunks(b2) == 9);
      REQUIRE(centroid.num_chunks(m2) == 9);
      // The history the engine now has: old tokens 0..60, then the new ones.
      std::vector<std::byte> now(old_rows.begin(), old_rows.begin() + 61 * row_bytes);
      now.insert(now.end(), new_rows.begin(), new_rows.end());
      auto exact = [&](int64_t i, bool is_bound) {
        return token_ref(c, chunk_tokens_of(now, row_bytes, i, 71, kT), q, is_bound);
      };
      std::vector<float> got(9);
      bound.score(b2, query, got);
      // Untouched chunks and the chunk after the cut are exact: nothing of old tokens 64..99.
      check_scores(
          std::span<const float>(got).first(7), 7, [&](int64_t i) { return exact(i, true); },
          "bound, chunks before the cut");
      check_scores(
          std::span<const float>(got).subspan(8), 1, [&](int64_t) { return exact(8, true); },
          "bound, chunk after the cut");
      // The cut chunk: at least the exact bound of its surviving + new tokens, at most the bound
      // of everything it ever held.
      const Expected tight = exact(7, true);
      CHECK(got[7] >= tight.value - tight.tol);
      std::vector<const std::byte*> ever = chunk_tokens_of(old_rows, row_bytes, 7, 100, kT);
      for (int t = 0; t < 3; ++t) ever.push_back(new_rows.data() + t * row_bytes);
      const Expected loose = token_ref(c, ever, q, true);
      CHECK(got[7] <= loose.value + loose.tol);

      // Centroid: chunk 7 keeps the mean of its 8 old tokens with weight 5, then averages in
      // 3 new tokens (the documented approximation); other chunks exact.
      centroid.score(m2, query, got);
      check_scores(
          std::span<const float>(got).first(7), 7, [&](int64_t i) { return exact(i, false); },
          "centroid, chunks before the cut");
      check_scores(
          std::span<const float>(got).subspan(8), 1, [&](int64_t) { return exact(8, false); },
          "centroid, chunk after the cut");
      std::vector<const std::byte*> weighted;
      for (int rep = 0; rep < 5; ++rep) {
        // 5/8 of each old token's weight: repeat the 8 old tokens 5 times and each new one 8 times.
        for (const std::byte* t : chunk_tokens_of(old_rows, row_bytes, 7, 100, kT))
          weighted.push_back(t);
      }
      for (int t = 0; t < 3; ++t) {
        for (int rep = 0; rep < 8; ++rep) weighted.push_back(new_rows.data() + t * row_bytes);
      }
      check_scores(
          std::span<const float>(got).subspan(7, 1), 1,
          [&](int64_t) { return token_ref(c, weighted, q, false); }, "centroid, cut chunk");

      // Truncating everything and starting over is exact.
      bound.truncate(b2, 0);
      centroid.truncate(m2, 0);
      REQUIRE(bound.num_chunks(b2) == 0);
      bound.append(b2, {new_rows.data(), 10});
      bound.score(b2, query, got);
      check_scores(
          got, 2,
          [&](int64_t i) {
            return token_ref(c, chunk_tokens_of(new_rows, row_bytes, i, 10, kT), q, true);
          },
          "bound, restarted");
    });
  }
}

TEST_CASE("index copies are independent (forks)", "[cpu][scorers][fork]") {
  constexpr int32_t kT = 4;
  Rng rng(21);
  const ScorerConfig lc = make_config(1, 8, 1, 16, KeyFormat::kFp8E4M3, Ensemble::kMax);
  const lsa::LightningScorer lightning(lc, kT);
  const std::vector<float> lq = random_floats(8 * 16, rng), lw = random_floats(8, rng);
  const std::vector<std::byte> base = random_rows(lc.key_format, 10, 1, 16, rng);
  const std::vector<std::byte> extra = random_rows(lc.key_format, 5, 1, 16, rng);

  lsa::LightningScorer::Index parent;
  lightning.append(parent, {base.data(), 10});
  lsa::LightningScorer::Index child = parent;
  lightning.append(child, {extra.data(), 5});
  lightning.truncate(parent, 6 * kT);
  REQUIRE(lightning.num_chunks(parent) == 6);
  REQUIRE(lightning.num_chunks(child) == 15);
  std::vector<std::byte> child_rows = base;
  child_rows.insert(child_rows.end(), extra.begin(), extra.end());
  std::vector<float> out(15);
  lightning.score(child, {lq, lw}, out);
  check_scores(
      out, 15,
      [&](int64_t i) {
        return lightning_ref(lc, child_rows.data() + i * lightning.row_bytes(), lq, lw);
      },
      "lightning child");
  lightning.score(parent, {lq, lw}, out);
  check_scores(
      out, 6,
      [&](int64_t i) { return lightning_ref(lc, base.data() + i * lightning.row_bytes(), lq, lw); },
      "lightning parent");

  // Bound: the child continues the parent's partial chunk; the parent must not see it.
  const ScorerConfig bc = make_config(1, 4, 2, 8, KeyFormat::kF32, Ensemble::kMean);
  const lsa::BoundScorer bound(bc, kT);
  const std::vector<float> bq = random_floats(4 * 8, rng);
  const std::vector<std::byte> tokens = random_rows(bc.key_format, 9, 2, 8, rng);
  lsa::BoundScorer::Index bparent;
  bound.append(bparent, {tokens.data(), 6});
  lsa::BoundScorer::Index bchild = bparent;
  bound.append(bchild, {tokens.data() + 6 * bound.row_bytes(), 3});
  REQUIRE(bound.num_chunks(bparent) == 2);
  REQUIRE(bound.num_chunks(bchild) == 3);
  bound.score(bparent, {bq, {}}, out);
  check_scores(
      out, 2,
      [&](int64_t i) {
        return token_ref(bc, chunk_tokens_of(tokens, bound.row_bytes(), i, 6, kT), bq, true);
      },
      "bound parent");
  bound.score(bchild, {bq, {}}, out);
  check_scores(
      out, 3,
      [&](int64_t i) {
        return token_ref(bc, chunk_tokens_of(tokens, bound.row_bytes(), i, 9, kT), bq, true);
      },
      "bound child");

  // Embedding with cosine: norms travel with the copy.
  ScorerConfig ec = make_config(1, 1, 1, 8, KeyFormat::kF32, Ensemble::kMax);
  ec.cosine = true;
  const lsa::EmbeddingScorer embedding(ec, kT);
  const std::vector<float> eq = random_floats(8, rng);
  const std::vector<std::byte> emb = random_rows(ec.key_format, 6, 1, 8, rng);
  lsa::EmbeddingScorer::Index eparent;
  embedding.append(eparent, {emb.data(), 4});
  lsa::EmbeddingScorer::Index echild = eparent;
  embedding.truncate(eparent, 2 * kT);
  embedding.append(echild, {emb.data() + 4 * embedding.row_bytes(), 2});
  embedding.score(echild, {eq, {}}, out);
  check_scores(
      out, 6,
      [&](int64_t i) { return embedding_ref(ec, emb.data() + i * embedding.row_bytes(), eq); },
      "embedding child");
  REQUIRE(embedding.num_chunks(eparent) == 2);
}

// ---------------------------------------------------------------------------------------------
// Input checks.

TEST_CASE("check_keys rejects non-finite keys, NaN fp8 codes and NaN scales",
          "[cpu][scorers][checks]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  Rng rng(5);

  SECTION("lightning fp8") {
    const ScorerConfig c = make_config(2, 4, 1, 16, KeyFormat::kFp8E4M3, Ensemble::kMax);
    const lsa::LightningScorer s(c, 4);
    std::vector<std::byte> rows = random_rows(c.key_format, 3, 2, 16, rng);
    CHECK(s.check_keys({rows.data(), 3}) == Status::kOk);
    CHECK(s.check_keys({nullptr, 0}) == Status::kOk);
    CHECK(s.check_keys({nullptr, 1}) == Status::kInvalidArgument);
    CHECK(s.check_keys({rows.data(), -1}) == Status::kInvalidArgument);
    for (const uint8_t code : {uint8_t{0x7F}, uint8_t{0xFF}}) {
      std::vector<std::byte> bad = rows;
      bad[2 * 20 + 5] = std::byte{code};  // row 1, layer 0, dim 5
      CHECK(s.check_keys({bad.data(), 3}) == Status::kNonFiniteInput);
    }
    for (const float scale : {nan, inf, -inf}) {
      std::vector<std::byte> bad = rows;
      std::memcpy(bad.data() + 2 * 20 + 20 + 16, &scale, 4);  // row 1, layer 1, scale
      CHECK(s.check_keys({bad.data(), 3}) == Status::kNonFiniteInput);
    }
    // The last byte of the last row is checked too.
    std::vector<std::byte> bad = rows;
    std::memcpy(bad.data() + bad.size() - 4, &nan, 4);
    CHECK(s.check_keys({bad.data(), 3}) == Status::kNonFiniteInput);
    CHECK(s.check_keys({bad.data(), 2}) == Status::kOk);
  }
  SECTION("f32 and bf16 keys") {
    for (const KeyFormat f : kFloatFormats) {
      const ScorerConfig c = make_config(1, 2, 2, 8, f, Ensemble::kMax);
      const lsa::BoundScorer bound(c, 4);
      const lsa::CentroidScorer centroid(c, 4);
      ScorerConfig ec = make_config(2, 1, 1, 8, f, Ensemble::kMax);
      const lsa::EmbeddingScorer embedding(ec, 4);
      ScorerConfig lc = make_config(2, 3, 1, 8, f, Ensemble::kMax);
      const lsa::LightningScorer lightning(lc, 4);
      std::vector<std::byte> rows = random_rows(f, 4, 2, 8, rng);  // 4 rows of 2 vectors each
      for (const float x : {nan, inf, -inf}) {
        std::vector<std::byte> bad = rows;
        const int64_t at = 3 * 2 * 8 + 8 + 7;  // last row, second vector, last element
        if (f == KeyFormat::kF32) {
          std::memcpy(bad.data() + 4 * at, &x, 4);
        } else {
          const uint16_t b = lsa::float_to_bf16(x);
          std::memcpy(bad.data() + 2 * at, &b, 2);
        }
        CHECK(bound.check_keys({rows.data(), 4}) == Status::kOk);
        CHECK(bound.check_keys({bad.data(), 4}) == Status::kNonFiniteInput);
        CHECK(centroid.check_keys({bad.data(), 4}) == Status::kNonFiniteInput);
        CHECK(embedding.check_keys({bad.data(), 4}) == Status::kNonFiniteInput);
        CHECK(lightning.check_keys({bad.data(), 4}) == Status::kNonFiniteInput);
        CHECK(bound.check_keys({bad.data(), 3}) == Status::kOk);
      }
    }
  }
}

TEST_CASE("check_query rejects wrong sizes and non-finite values", "[cpu][scorers][checks]") {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const ScorerConfig c = make_config(2, 4, 2, 8, KeyFormat::kF32, Ensemble::kMax);
  std::vector<float> q(2 * 4 * 8, 0.5f), w(2 * 4, 0.5f);

  const lsa::LightningScorer lightning(make_config(2, 4, 1, 8, KeyFormat::kF32, Ensemble::kMax), 4);
  CHECK(lightning.check_query({q, w}) == Status::kOk);
  CHECK(lightning.check_query({std::span(q).first(q.size() - 1), w}) == Status::kInvalidArgument);
  std::vector<float> longer(q.size() + 1, 0.5f);
  CHECK(lightning.check_query({longer, w}) == Status::kInvalidArgument);
  CHECK(lightning.check_query({q, {}}) == Status::kInvalidArgument);  // weights are required
  CHECK(lightning.check_query({q, std::span(w).first(7)}) == Status::kInvalidArgument);
  for (const float x : {nan, inf}) {
    std::vector<float> bad_q = q, bad_w = w;
    bad_q.back() = x;
    bad_w.back() = x;
    CHECK(lightning.check_query({bad_q, w}) == Status::kNonFiniteInput);
    CHECK(lightning.check_query({q, bad_w}) == Status::kNonFiniteInput);
  }

  const lsa::BoundScorer bound(c, 4);
  const lsa::CentroidScorer centroid(c, 4);
  for (const auto* s : {static_cast<const void*>(&bound), static_cast<const void*>(&centroid)}) {
    auto check = [&](Query query) {
      return s == &bound ? bound.check_query(query) : centroid.check_query(query);
    };
    CHECK(check({q, {}}) == Status::kOk);
    CHECK(check({q, w}) == Status::kOk);  // weights ignored
    CHECK(check({std::span(q).first(8), {}}) == Status::kInvalidArgument);
    std::vector<float> bad_q = q;
    bad_q[3] = nan;
    CHECK(check({bad_q, {}}) == Status::kNonFiniteInput);
  }

  const lsa::EmbeddingScorer embedding(make_config(2, 1, 1, 8, KeyFormat::kF32, Ensemble::kMax), 4);
  std::vector<float> eq(16, 1.0f);
  CHECK(embedding.check_query({eq, {}}) == Status::kOk);
  CHECK(embedding.check_query({q, {}}) == Status::kInvalidArgument);
  eq[0] = -inf;
  CHECK(embedding.check_query({eq, {}}) == Status::kNonFiniteInput);
}

TEST_CASE("scorers reject shapes they cannot serve, naming the field", "[cpu][scorers][config]") {
  using Catch::Matchers::Contains;
  const ScorerConfig ok = make_config(1, 4, 1, 8, KeyFormat::kFp8E4M3, Ensemble::kMax);
  CHECK_NOTHROW(lsa::LightningScorer(ok, 4));
  CHECK_THROWS_WITH(lsa::LightningScorer(ok, 0), Contains("chunk_tokens"));
  ScorerConfig c = ok;
  c.num_key_heads = 2;
  CHECK_THROWS_WITH(lsa::LightningScorer(c, 4), Contains("scorer.num_key_heads"));
  c = ok;
  c.num_layers = 0;
  CHECK_THROWS_AS(lsa::LightningScorer(c, 4), lsa::Error);
  c = ok;
  c.num_heads = 0;
  CHECK_THROWS_WITH(lsa::LightningScorer(c, 4), Contains("scorer.num_heads"));
  c = ok;
  c.head_dim = 0;
  CHECK_THROWS_WITH(lsa::LightningScorer(c, 4), Contains("scorer.head_dim"));
  c = ok;
  c.head_dim = 1025;
  CHECK_THROWS_WITH(lsa::LightningScorer(c, 4), Contains("scorer.head_dim"));
  c = ok;
  c.logit_offset = std::numeric_limits<float>::infinity();
  CHECK_THROWS_WITH(lsa::LightningScorer(c, 4), Contains("scorer.logit_offset"));
  c = ok;
  c.key_format = static_cast<KeyFormat>(7);
  CHECK_THROWS_WITH(lsa::LightningScorer(c, 4), Contains("scorer.key_format"));
  c = ok;
  c.ensemble = static_cast<Ensemble>(9);
  CHECK_THROWS_WITH(lsa::LightningScorer(c, 4), Contains("scorer.ensemble"));

  // Bound and centroid: no fp8, key heads must divide query heads.
  ScorerConfig t = make_config(1, 6, 3, 8, KeyFormat::kF32, Ensemble::kMax);
  CHECK_NOTHROW(lsa::BoundScorer(t, 4));
  CHECK_NOTHROW(lsa::CentroidScorer(t, 4));
  t.key_format = KeyFormat::kFp8E4M3;
  CHECK_THROWS_WITH(lsa::BoundScorer(t, 4), Contains("scorer.key_format"));
  CHECK_THROWS_WITH(lsa::CentroidScorer(t, 4), Contains("scorer.key_format"));
  t.key_format = KeyFormat::kBF16;
  t.num_key_heads = 4;
  CHECK_THROWS_WITH(lsa::BoundScorer(t, 4), Contains("scorer.num_key_heads"));
  CHECK_THROWS_WITH(lsa::CentroidScorer(t, 4), Contains("scorer.num_key_heads"));
  t.num_key_heads = 0;
  CHECK_THROWS_AS(lsa::BoundScorer(t, 4), lsa::Error);

  // Embedding: one head, no fp8.
  ScorerConfig e = make_config(2, 1, 1, 8, KeyFormat::kBF16, Ensemble::kMean);
  CHECK_NOTHROW(lsa::EmbeddingScorer(e, 4));
  e.num_heads = 2;
  CHECK_THROWS_WITH(lsa::EmbeddingScorer(e, 4), Contains("scorer.num_heads"));
  e.num_heads = 1;
  e.key_format = KeyFormat::kFp8E4M3;
  CHECK_THROWS_WITH(lsa::EmbeddingScorer(e, 4), Contains("scorer.key_format"));
}
