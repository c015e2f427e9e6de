// Device bound, centroid and embedding scoring against the host scorers, on the host indexes
// uploaded byte for byte, and their page statistics.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "lsa/cuda/page_stats.hpp"
#include "lsa/cuda/summary_scorers.hpp"
#include "lsa/detail/page_ranking.hpp"
#include "lsa/fp8.hpp"
#include "lsa/scorers/bound_scorer.hpp"
#include "lsa/scorers/centroid_scorer.hpp"
#include "lsa/scorers/embedding_scorer.hpp"
#include "support/gpu.hpp"
#include "support/page_stats_check.hpp"

namespace {

using lsa::cuda::testing::DeviceArray;

enum class Kind { kBound, kCentroid, kEmbedding };

constexpr int32_t kPageChunks = 16;
constexpr int32_t kChunkTokens = 4;

const char* kind_name(Kind k) {
  return k == Kind::kBound ? "bound" : k == Kind::kCentroid ? "centroid" : "embedding";
}

// One sequence's host index (the one its kind uses), its query and the host scores.
struct Problem {
  Kind kind;
  lsa::ScorerConfig config;
  int32_t chunk_tokens;
  lsa::detail::TokenSummaries summaries;
  lsa::EmbeddingScorer::Index embeddings;
  std::vector<float> q;
  std::vector<float> expected;
};

// `num_rows` rows of `values_per_row` N(0, 1) values in the config's key format; every seventh
// row starting at row 3 is zero when `zero_rows` (zero-norm embeddings).
std::vector<std::byte> random_rows(const lsa::ScorerConfig& c, int64_t num_rows,
                                   int64_t values_per_row, bool zero_rows, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t value_bytes = c.key_format == lsa::KeyFormat::kBF16 ? 2 : 4;
  std::vector<std::byte> bytes(static_cast<size_t>(num_rows * values_per_row * value_bytes));
  for (int64_t r = 0; r < num_rows; ++r) {
    for (int64_t i = 0; i < values_per_row; ++i) {
      const float x = zero_rows && r % 7 == 3 ? 0.0f : normal(rng);
      std::byte* at = bytes.data() + (r * values_per_row + i) * value_bytes;
      if (value_bytes == 2) {
        const uint16_t bits = lsa::float_to_bf16(x);
        std::memcpy(at, &bits, 2);
      } else {
        std::memcpy(at, &x, 4);
      }
    }
  }
  return bytes;
}

// Appends rows in two calls split at a random row, as an engine appending over time would.
template <class Scorer, class Index>
void append_in_two(const Scorer& scorer, Index& index, const std::vector<std::byte>& rows,
                   int64_t num_rows, std::mt19937& rng) {
  const int64_t split = std::uniform_int_distribution<int64_t>(0, num_rows)(rng);
  const std::byte* data = rows.data();
  REQUIRE(scorer.check_keys({data, num_rows}) == lsa::Status::kOk);
  scorer.append(index, {data, split});
  scorer.append(index, {data + split * scorer.row_bytes(), num_rows - split});
}

// A random history of `num_chunks` chunks (the last one of a token kind partly filled) and query.
Problem make_problem(Kind kind, const lsa::ScorerConfig& config, int64_t num_chunks,
                     uint32_t seed) {
  std::mt19937 rng(seed);
  Problem p{kind, config, kChunkTokens, {}, {}, {}, {}};
  const int64_t heads = kind == Kind::kEmbedding ? 1 : config.num_heads;
  p.q.resize(static_cast<size_t>(int64_t{config.num_layers} * heads * config.head_dim));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float q_scale = 1.0f / std::sqrt(static_cast<float>(config.head_dim));
  for (float& x : p.q) x = normal(rng) * q_scale;
  const lsa::Query query{p.q, {}};
  p.expected.resize(static_cast<size_t>(num_chunks));
  if (kind == Kind::kEmbedding) {
    const lsa::EmbeddingScorer scorer(config, p.chunk_tokens);
    const int64_t values_per_row = int64_t{config.num_layers} * config.head_dim;
    append_in_two(scorer, p.embeddings, random_rows(config, num_chunks, values_per_row, true, rng),
                  num_chunks, rng);
    REQUIRE(scorer.num_chunks(p.embeddings) == num_chunks);
    REQUIRE(scorer.check_query(query) == lsa::Status::kOk);
    scorer.score(p.embeddings, query, p.expected);
    return p;
  }
  const int64_t last = std::uniform_int_distribution<int64_t>(1, p.chunk_tokens)(rng);
  const int64_t num_tokens = (num_chunks - 1) * p.chunk_tokens + last;
  const int64_t values_per_row =
      int64_t{config.num_layers} * config.num_key_heads * config.head_dim;
  const std::vector<std::byte> rows = random_rows(config, num_tokens, values_per_row, false, rng);
  auto build = [&](const auto& scorer) {
    append_in_two(scorer, p.summaries, rows, num_tokens, rng);
    REQUIRE(scorer.num_chunks(p.summaries) == num_chunks);
    REQUIRE(scorer.check_query(query) == lsa::Status::kOk);
    scorer.score(p.summaries, query, p.expected);
  };
  if (kind == Kind::kBound) {
    build(lsa::BoundScorer(config, p.chunk_tokens));
  } else {
    build(lsa::CentroidScorer(config, p.chunk_tokens));
  }
  return p;
}

struct DeviceResult {
  std::vector<float> scores;
  std::vector<int32_t> kept;
  std::vector<float> mass;
};

// Uploads the host index as it is and runs the kind's launcher with page statistics.
DeviceResult device_scores(const Problem& p, float threshold) {
  const int64_t n = static_cast<int64_t>(p.expected.size());
  DeviceArray<float> q(p.q);
  DeviceArray<float> scores(static_cast<size_t>(n));
  const int64_t pages = lsa::cuda::num_stat_pages(n, kPageChunks);
  DeviceArray<int32_t> kept(static_cast<size_t>(pages));
  DeviceArray<float> mass(static_cast<size_t>(pages));
  scores.fill_bytes(0xFF);  // NaN: every chunk must be written
  kept.fill_bytes(0xFF);
  mass.fill_bytes(0xFF);
  const lsa::cuda::PageStats stats{threshold, kPageChunks, kept.get(), mass.get()};
  DeviceArray<float> values(p.summaries.values);
  DeviceArray<uint16_t> bf16_values(p.summaries.bf16_values);
  DeviceArray<std::byte> rows(p.embeddings.rows.bytes);
  DeviceArray<float> norms(p.embeddings.norms);
  const lsa::cuda::TokenSummaryInput summaries{
      p.config.key_format == lsa::KeyFormat::kBF16 && p.kind == Kind::kBound
          ? static_cast<const void*>(bf16_values.get())
          : static_cast<const void*>(values.get()),
      p.summaries.num_tokens, p.chunk_tokens, q.get()};
  switch (p.kind) {
    case Kind::kBound:
      LSA_CUDA_OK(lsa::cuda::bound_score(p.config, summaries, scores.get(), stats, nullptr));
      break;
    case Kind::kCentroid:
      LSA_CUDA_OK(lsa::cuda::centroid_score(p.config, summaries, scores.get(), stats, nullptr));
      break;
    case Kind::kEmbedding: {
      const lsa::cuda::EmbeddingInput input{rows.get(), norms.get(), n, q.get()};
      LSA_CUDA_OK(lsa::cuda::embedding_score(p.config, input, scores.get(), stats, nullptr));
      break;
    }
  }
  LSA_CUDA_REQUIRE(cudaDeviceSynchronize());
  return {scores.download(), kept.download(), mass.download()};
}

// Scores within 1e-5 relative + 1e-5 absolute of the host's (the device repeats the AVX2 host
// kernels' rounding; the portable host kernels round without FMA); page statistics exactly what
// the host policy computes from the device scores. Returns the largest error.
float check_case(Kind kind, const lsa::ScorerConfig& config, int64_t num_chunks, uint32_t seed) {
  const Problem p = make_problem(kind, config, num_chunks, seed);
  std::vector<float> sorted = p.expected;
  std::nth_element(sorted.begin(), sorted.begin() + num_chunks / 2, sorted.end());
  const float threshold = sorted[static_cast<size_t>(num_chunks / 2)];  // about half kept
  const DeviceResult got = device_scores(p, threshold);
  float max_error = 0.0f;
  int64_t first_bad = -1;
  for (int64_t c = 0; c < num_chunks && first_bad < 0; ++c) {
    const float error = std::fabs(got.scores[c] - p.expected[c]);
    if (!(error <= 1e-5f * std::fabs(p.expected[c]) + 1e-5f)) first_bad = c;  // NaN fails too
    max_error = std::max(max_error, error);
  }
  if (first_bad >= 0) {
    INFO(kind_name(kind) << " L=" << config.num_layers << " H=" << config.num_heads
                         << " K=" << config.num_key_heads << " D=" << config.head_dim
                         << " format=" << static_cast<int>(config.key_format) << " ensemble="
                         << static_cast<int>(config.ensemble) << " cosine=" << config.cosine
                         << " chunks=" << num_chunks << " chunk " << first_bad << ": device "
                         << got.scores[first_bad] << " host " << p.expected[first_bad]);
    FAIL("device score outside 1e-5 relative + 1e-5 absolute of the host score");
  }

  lsa::cuda::testing::require_page_stats_match_host(got.scores, threshold, false, kPageChunks,
                                                    got.kept, got.mass);
  return max_error;
}

lsa::ScorerConfig make_config(int32_t layers, int32_t heads, int32_t key_heads, int32_t head_dim,
                              lsa::KeyFormat format, lsa::Ensemble ensemble, bool cosine = false) {
  lsa::ScorerConfig c;
  c.num_layers = layers;
  c.num_heads = heads;
  c.num_key_heads = key_heads;
  c.head_dim = head_dim;
  c.key_format = format;
  c.ensemble = ensemble;
  c.cosine = cosine;
  return c;
}

constexpr int64_t kSizes[] = {1, kPageChunks - 1, kPageChunks, kPageChunks + 1, 3001};
constexpr lsa::KeyFormat kFormats[] = {lsa::KeyFormat::kF32, lsa::KeyFormat::kBF16};
constexpr lsa::Ensemble kEnsembles[] = {lsa::Ensemble::kMax, lsa::Ensemble::kMean};

// Every size, format and ensemble for a token kind, over shapes with GQA groups of 4, 2 and an odd
// 5, head dims with and without a tail past a multiple of 8.
void check_token_kind(Kind kind) {
  struct Shape {
    int32_t layers, heads, key_heads, head_dim;
  };
  const Shape shapes[] = {{3, 8, 2, 40}, {1, 6, 3, 128}, {2, 5, 1, 7}};
  uint32_t seed = kind == Kind::kBound ? 1000 : 2000;
  float worst = 0.0f;
  for (const Shape& s : shapes) {
    for (const lsa::KeyFormat format : kFormats) {
      for (const lsa::Ensemble ensemble : kEnsembles) {
        const lsa::ScorerConfig c =
            make_config(s.layers, s.heads, s.key_heads, s.head_dim, format, ensemble);
        for (const int64_t n : kSizes) worst = std::max(worst, check_case(kind, c, n, seed++));
      }
    }
  }
  std::printf("%s: max |score - host| = %.3g\n", kind_name(kind), static_cast<double>(worst));
}

}  // namespace

TEST_CASE("bound_score matches BoundScorer", "[gpu][summary]") {
  LSA_REQUIRE_GPU();
  std::printf("device: %s\n", lsa::cuda::testing::device_name().c_str());
  check_token_kind(Kind::kBound);
}

TEST_CASE("centroid_score matches CentroidScorer", "[gpu][summary]") {
  LSA_REQUIRE_GPU();
  check_token_kind(Kind::kCentroid);
}

TEST_CASE("embedding_score matches EmbeddingScorer by dot and cosine", "[gpu][summary]") {
  LSA_REQUIRE_GPU();
  const int32_t shapes[][2] = {{3, 100}, {1, 1024}, {2, 8}};  // layers, head_dim
  uint32_t seed = 3000;
  float worst = 0.0f;
  for (const auto& s : shapes) {
    for (const lsa::KeyFormat format : kFormats) {
      for (const lsa::Ensemble ensemble : kEnsembles) {
        for (const bool cosine : {false, true}) {
          const lsa::ScorerConfig c = make_config(s[0], 1, 1, s[1], format, ensemble, cosine);
          for (const int64_t n : kSizes) {
            worst = std::max(worst, check_case(Kind::kEmbedding, c, n, seed++));
          }
        }
      }
    }
  }
  std::printf("embedding: max |score - host| = %.3g\n", static_cast<double>(worst));
}

TEST_CASE("summary scorers cover histories longer than one grid", "[gpu][summary][large]") {
  LSA_REQUIRE_GPU();
  // 4096 blocks of 32 chunks is one grid pass; these take a second pass.
  const int64_t n = 4096 * 32 + 1001;
  const auto f32 = lsa::KeyFormat::kF32;
  check_case(Kind::kBound, make_config(1, 4, 2, 16, lsa::KeyFormat::kBF16, lsa::Ensemble::kMax), n,
             1);
  check_case(Kind::kCentroid, make_config(2, 2, 1, 12, f32, lsa::Ensemble::kMean), n, 2);
  check_case(Kind::kEmbedding, make_config(1, 1, 1, 32, f32, lsa::Ensemble::kMax, true), n, 3);
}

TEST_CASE("summary scorers reject bad arguments with kInvalidValue", "[gpu][summary]") {
  LSA_REQUIRE_GPU();
  using lsa::cuda::CudaError;
  DeviceArray<float> buffer(1024);
  buffer.fill_bytes(0);
  float* d = buffer.get();
  const auto f32 = lsa::KeyFormat::kF32;
  const lsa::ScorerConfig good = make_config(2, 4, 2, 8, f32, lsa::Ensemble::kMax);
  const lsa::cuda::TokenSummaryInput input{d, 5, 4, d};
  const lsa::cuda::PageStats none{};
  // The valid call first, so that each rejection below is the one rule it breaks.
  LSA_CUDA_OK(lsa::cuda::bound_score(good, input, d + 512, none, nullptr));
  LSA_CUDA_OK(lsa::cuda::centroid_score(good, input, d + 512, none, nullptr));
  LSA_CUDA_REQUIRE(cudaDeviceSynchronize());

  auto token_rejects = [&](const lsa::ScorerConfig& c, const lsa::cuda::TokenSummaryInput& in,
                           float* scores, const lsa::cuda::PageStats& stats) {
    REQUIRE(lsa::cuda::bound_score(c, in, scores, stats, nullptr) == CudaError::kInvalidValue);
    REQUIRE(lsa::cuda::centroid_score(c, in, scores, stats, nullptr) == CudaError::kInvalidValue);
  };
  lsa::ScorerConfig c = good;
  c.key_format = lsa::KeyFormat::kFp8E4M3;
  token_rejects(c, input, d, none);
  c = good;
  c.num_key_heads = 3;  // does not divide num_heads
  token_rejects(c, input, d, none);
  c = good;
  c.num_layers = 0;
  token_rejects(c, input, d, none);
  c = good;
  c.head_dim = 0;
  token_rejects(c, input, d, none);
  c = good;
  c.ensemble = static_cast<lsa::Ensemble>(7);
  token_rejects(c, input, d, none);
  token_rejects(good, {d, 5, 0, d}, d, none);        // chunk_tokens
  token_rejects(good, {d, -1, 4, d}, d, none);       // num_tokens
  token_rejects(good, {nullptr, 5, 4, d}, d, none);  // values
  token_rejects(good, {d, 5, 4, nullptr}, d, none);  // query
  token_rejects(good, input, nullptr, none);         // scores
  const auto* odd = reinterpret_cast<const float*>(reinterpret_cast<const std::byte*>(d) + 2);
  token_rejects(good, {odd, 5, 4, d}, d, none);
  token_rejects(good, {d, 5, 4, odd}, d, none);
  token_rejects(good, input, d, {0.5f, 0, reinterpret_cast<int32_t*>(d), nullptr});  // page_chunks
  token_rejects(good, input, d, {0.5f, 16, nullptr, d});  // mass without kept

  const lsa::ScorerConfig embed = make_config(2, 1, 1, 8, f32, lsa::Ensemble::kMean, true);
  const auto* rows = reinterpret_cast<const std::byte*>(d);
  const lsa::cuda::EmbeddingInput good_input{rows, d, 3, d};
  LSA_CUDA_OK(lsa::cuda::embedding_score(embed, good_input, d + 512, none, nullptr));
  LSA_CUDA_REQUIRE(cudaDeviceSynchronize());
  auto embedding_rejects = [&](const lsa::ScorerConfig& ec, const lsa::cuda::EmbeddingInput& in) {
    REQUIRE(lsa::cuda::embedding_score(ec, in, d + 512, none, nullptr) == CudaError::kInvalidValue);
  };
  c = embed;
  c.num_heads = 2;
  c.num_key_heads = 2;
  embedding_rejects(c, good_input);
  c = embed;
  c.head_dim = 1025;
  embedding_rejects(c, good_input);
  c = embed;
  c.num_layers = lsa::cuda::kMaxCosineLayers + 1;
  embedding_rejects(c, good_input);
  c = embed;
  c.key_format = lsa::KeyFormat::kFp8E4M3;
  embedding_rejects(c, good_input);
  embedding_rejects(embed, {rows, nullptr, 3, d});  // norms, needed for cosine
  embedding_rejects(embed, {rows, d, -1, d});
  embedding_rejects(embed, {nullptr, d, 3, d});
  embedding_rejects(embed, {rows + 2, d, 3, d});  // f32 rows aligned to 4
  REQUIRE(lsa::cuda::embedding_score(embed, good_input, nullptr, none, nullptr) ==
          CudaError::kInvalidValue);
  c = embed;
  c.cosine = false;  // norms are not read
  LSA_CUDA_OK(lsa::cuda::embedding_score(c, {rows, nullptr, 3, d}, d + 512, none, nullptr));
  LSA_CUDA_REQUIRE(cudaDeviceSynchronize());
}
