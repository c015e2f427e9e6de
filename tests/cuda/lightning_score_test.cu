// Device lightning scoring against the host LightningScorer, and its fused page statistics.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "lsa/cuda/lightning.hpp"
#include "lsa/cuda/page_stats.hpp"
#include "lsa/detail/page_ranking.hpp"
#include "lsa/fp8.hpp"
#include "lsa/scorers/lightning_scorer.hpp"
#include "support/gpu.hpp"
#include "support/page_stats_check.hpp"

namespace {

using lsa::cuda::LightningMath;
using lsa::cuda::testing::DeviceArray;

struct Problem {
  lsa::ScorerConfig config;
  lsa::detail::ChunkRows rows;
  std::vector<float> q;
  std::vector<float> weights;
};

// Keys near N(0,1) in fp8 with scales of either sign, so relu(scale * q.k) sees both; weights
// sized so logits are O(1) and the offset centres the scores on 0.5 (threshold decisions vary).
std::vector<float> host_scores(const Problem& p) {
  const lsa::LightningScorer scorer(p.config, 4);
  std::vector<float> out(static_cast<size_t>(p.rows.num_rows));
  scorer.score(p.rows, lsa::Query{p.q, p.weights}, out);
  return out;
}

Problem make_problem(lsa::ScorerConfig config, int64_t num_chunks, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  Problem p;
  p.config = config;
  const int64_t d = config.head_dim;
  const int64_t vector_bytes = d + 4;
  const int64_t row_bytes = vector_bytes * config.num_layers;
  p.rows.bytes.resize(static_cast<size_t>(num_chunks * row_bytes));
  p.rows.num_rows = num_chunks;
  for (int64_t c = 0; c < num_chunks; ++c) {
    for (int32_t l = 0; l < config.num_layers; ++l) {
      std::byte* v = p.rows.bytes.data() + c * row_bytes + l * vector_bytes;
      for (int64_t i = 0; i < d; ++i)
        v[i] = static_cast<std::byte>(lsa::encode_fp8_e4m3(2.0f * normal(rng)));
      const float scale = (uniform(rng) < 0.2f ? -1.0f : 1.0f) * (0.02f + 0.05f * uniform(rng));
      std::memcpy(v + d, &scale, 4);
    }
  }
  const int64_t heads = int64_t{config.num_layers} * config.num_heads;
  p.q.resize(static_cast<size_t>(heads * d));
  for (float& x : p.q) x = normal(rng) / std::sqrt(static_cast<float>(d)) * 3.0f;
  p.weights.resize(static_cast<size_t>(heads));
  for (float& w : p.weights) w = 40.0f * uniform(rng) / static_cast<float>(config.num_heads);
  // Centre: the median logit of the first chunks (at offset 0) moves to config.logit_offset.
  Problem probe = p;
  probe.config.logit_offset = 0.0f;
  probe.rows.num_rows = std::min<int64_t>(num_chunks, 256);
  std::vector<float> logits = host_scores(probe);
  for (float& s : logits) s = std::log(s / (1.0f - s));
  std::nth_element(logits.begin(), logits.begin() + logits.size() / 2, logits.end());
  if (std::isfinite(logits[logits.size() / 2])) p.config.logit_offset -= logits[logits.size() / 2];
  return p;
}
struct DeviceResult {
  std::vector<float> scores;
  std::vector<int32_t> kept;
  std::vector<float> mass;
};

DeviceResult device_scores(const Problem& p, LightningMath math, int32_t page_chunks,
                           float threshold) {
  const int64_t n = p.rows.num_rows;
  DeviceArray<std::byte> rows(p.rows.bytes);
  DeviceArray<float> q(p.q);
  DeviceArray<float> w(p.weights);
  DeviceArray<float> scores(static_cast<size_t>(n));
  const int64_t pages = lsa::cuda::num_stat_pages(n, page_chunks);
  DeviceArray<int32_t> kept(static_cast<size_t>(pages));
  DeviceArray<float> mass(static_cast<size_t>(pages));
  scores.fill_bytes(0xFF);  // NaN: every chunk must be written
  kept.fill_bytes(0xFF);
  mass.fill_bytes(0xFF);
  const lsa::cuda::LightningInput input{rows.get(), n, q.get(), w.get()};
  const lsa::cuda::PageStats stats{threshold, page_chunks, kept.get(), mass.get()};
  size_t bytes = 0;
  LSA_CUDA_OK(lsa::cuda::lightning_score(nullptr, bytes, p.config, input, scores.get(), stats, math,
                                         nullptr));
  DeviceArray<std::byte> workspace(bytes);
  LSA_CUDA_OK(lsa::cuda::lightning_score(workspace.get(), bytes, p.config, input, scores.get(),
                                         stats, math, nullptr));
  LSA_CUDA_REQUIRE(cudaDeviceSynchronize());
  return {scores.download(), kept.download(), mass.download()};
}

const char* math_name(LightningMath m) {
  switch (m) {
    case LightningMath::kAuto:
      return "auto";
    case LightningMath::kCudaCore:
      return "cuda-core";
    case LightningMath::kTensorSplit:
      return "tensor-split";
    case LightningMath::kTensorFast:
      return "tensor-fast";
  }
  return "?";
}

// Scores within `tolerance` of the host's; page statistics exactly what the host policy computes
// from the device scores (same threshold compare, same chunk-order fp32 sums).
void check_case(const lsa::ScorerConfig& config, int64_t num_chunks, LightningMath math,
                int32_t page_chunks, uint32_t seed) {
  const Problem p = make_problem(config, num_chunks, seed);
  const std::vector<float> expected = host_scores(p);
  const float threshold = 0.5f;
  const DeviceResult got = device_scores(p, math, page_chunks, threshold);
  const bool exact_math = math != LightningMath::kTensorFast;
  const float tolerance = exact_math ? 2e-5f : 3e-3f;
  float max_error = 0.0f;
  int64_t worst = 0;
  for (int64_t c = 0; c < num_chunks; ++c) {
    const float e = std::fabs(got.scores[c] - expected[c]);
    if (!(e <= max_error)) {
      max_error = std::isnan(e) ? INFINITY : e;
      worst = c;
    }
  }
  std::printf("lightning %-12s L=%d H=%3d D=%3d %s chunks=%-7lld max |score - host| = %.3g\n",
              math_name(math), config.num_layers, config.num_heads, config.head_dim,
              config.ensemble == lsa::Ensemble::kMax ? "max " : "mean",
              static_cast<long long>(num_chunks), static_cast<double>(max_error));
  INFO(math_name(math) << " L=" << config.num_layers << " H=" << config.num_heads
                       << " D=" << config.head_dim << " chunks=" << num_chunks << " worst chunk "
                       << worst << ": device " << got.scores[worst] << " host " << expected[worst]);
  REQUIRE(max_error <= tolerance);

  lsa::cuda::testing::require_page_stats_match_host(got.scores, threshold, true, page_chunks,
                                                    got.kept, got.mass);
}

lsa::ScorerConfig lightning_config(int32_t layers, int32_t heads, int32_t head_dim,
                                   lsa::Ensemble ensemble, float offset) {
  lsa::ScorerConfig c;
  c.num_layers = layers;
  c.num_heads = heads;
  c.head_dim = head_dim;
  c.key_format = lsa::KeyFormat::kFp8E4M3;
  c.ensemble = ensemble;
  c.logit_offset = offset;
  return c;
}

}  // namespace

TEST_CASE("lightning_score matches LightningScorer at the page boundaries", "[gpu][lightning]") {
  LSA_REQUIRE_GPU();
  std::printf("device: %s\n", lsa::cuda::testing::device_name().c_str());
  const int32_t page = 16;
  uint32_t seed = 1;
  for (const LightningMath math :
       {LightningMath::kCudaCore, LightningMath::kTensorSplit, LightningMath::kTensorFast}) {
    for (const int64_t n : {int64_t{1}, int64_t{page - 1}, int64_t{page}, int64_t{page + 1},
                            int64_t{127}, int64_t{128}, int64_t{129}, int64_t{3001}}) {
      check_case(lightning_config(1, 64, 128, lsa::Ensemble::kMax, 0.1f), n, math, page, seed++);
    }
  }
}

TEST_CASE("lightning_score matches LightningScorer across heads layers and ensembles",
          "[gpu][lightning]") {
  LSA_REQUIRE_GPU();
  uint32_t seed = 100;
  for (const LightningMath math :
       {LightningMath::kCudaCore, LightningMath::kTensorSplit, LightningMath::kTensorFast}) {
    check_case(lightning_config(1, 128, 128, lsa::Ensemble::kMax, -1.0f), 2000, math, 16, seed++);
    check_case(lightning_config(1, 1, 128, lsa::Ensemble::kMax, 0.0f), 777, math, 8, seed++);
    check_case(lightning_config(1, 48, 128, lsa::Ensemble::kMean, -0.3f), 1500, math, 12, seed++);
    check_case(lightning_config(3, 64, 128, lsa::Ensemble::kMax, -0.5f), 1000, math, 32, seed++);
    check_case(lightning_config(2, 80, 128, lsa::Ensemble::kMean, -0.5f), 1000, math, 128, seed++);
    check_case(lightning_config(4, 16, 128, lsa::Ensemble::kMean, -0.2f), 513, math, 256, seed++);
  }
  // Shapes only the CUDA-core kernel takes; the tensor math says so.
  check_case(lightning_config(2, 32, 64, lsa::Ensemble::kMax, -0.5f), 999, LightningMath::kCudaCore,
             16, seed++);
  check_case(lightning_config(1, 7, 36, lsa::Ensemble::kMean, 0.0f), 99, LightningMath::kAuto, 3,
             seed++);
  size_t bytes = 0;
  float* none = nullptr;
  REQUIRE(lsa::cuda::lightning_score(
              nullptr, bytes, lightning_config(1, 64, 64, lsa::Ensemble::kMax, 0.0f), {}, none, {},
              LightningMath::kTensorSplit, nullptr) == lsa::cuda::CudaError::kNotSupported);
  REQUIRE(lsa::cuda::lightning_score(
              nullptr, bytes, lightning_config(1, 129, 128, lsa::Ensemble::kMax, 0.0f), {}, none,
              {}, LightningMath::kAuto, nullptr) == lsa::cuda::CudaError::kInvalidValue);
}

TEST_CASE("lightning_score matches LightningScorer at 1M tokens (262144 chunks)",
          "[gpu][lightning][large]") {
  LSA_REQUIRE_GPU();
  check_case(lightning_config(1, 64, 128, lsa::Ensemble::kMax, -0.5f), 262144, LightningMath::kAuto,
             16, 7);
  check_case(lightning_config(1, 64, 128, lsa::Ensemble::kMax, -0.5f), 262144,
             LightningMath::kTensorFast, 16, 8);
}

TEST_CASE("lightning_score: the largest tensor-core plans (5 and 6 layers) score or refuse",
          "[gpu][lightning]") {
  LSA_REQUIRE_GPU();
  cudaDeviceProp prop{};
  LSA_CUDA_REQUIRE(cudaGetDeviceProperties(&prop, 0));
  uint32_t seed = 500;
  for (const int32_t layers : {5, 6}) {
    for (const int32_t heads : {64, 128}) {
      const lsa::ScorerConfig config =
          lightning_config(layers, heads, 128, lsa::Ensemble::kMax, -0.5f);
      for (const LightningMath math : {LightningMath::kTensorSplit, LightningMath::kTensorFast}) {
        INFO(math_name(math) << " L=" << layers << " H=" << heads << " on "
                             << lsa::cuda::testing::device_name());
        size_t bytes = 0;
        float* none = nullptr;
        const lsa::cuda::CudaError query =
            lsa::cuda::lightning_score(nullptr, bytes, config, {}, none, {}, math, nullptr);
        // sm_90 opts into 227 KiB of shared memory per block: every plan up to 6 layers fits.
        if (prop.major >= 9) REQUIRE(query == lsa::cuda::CudaError::kSuccess);
        if (query == lsa::cuda::CudaError::kNotSupported) {
          // Refused up front (the workspace query), and kAuto falls back to the CUDA cores.
          REQUIRE(lsa::cuda::resolve_lightning_math(config, LightningMath::kAuto) ==
                  LightningMath::kCudaCore);
          check_case(config, 700, LightningMath::kAuto, 16, seed++);
          continue;
        }
        REQUIRE(query == lsa::cuda::CudaError::kSuccess);
        check_case(config, 1000, math, 16, seed++);  // NaN fails: max_error becomes infinite
      }
    }
  }
}

TEST_CASE("lightning_score: the largest tensor-core plan replays from a CUDA graph as keys change",
          "[gpu][lightning][graph]") {
  LSA_REQUIRE_GPU();
  // The most layers the split plan takes at H = 128 on this device (6 on sm_90, fewer on sm_80).
  lsa::ScorerConfig config;
  for (int32_t layers = 6; layers >= 1; --layers) {
    config = lightning_config(layers, 128, 128, lsa::Ensemble::kMax, -0.5f);
    size_t probe_bytes = 0;
    float* none = nullptr;
    if (lsa::cuda::lightning_score(nullptr, probe_bytes, config, {}, none, {},
                                   LightningMath::kTensorSplit,
                                   nullptr) == lsa::cuda::CudaError::kSuccess) {
      break;
    }
  }
  INFO("L=" << config.num_layers << " H=128 on " << lsa::cuda::testing::device_name());
  constexpr int64_t kChunks = 3000;
  const Problem first = make_problem(config, kChunks, 900);
  DeviceArray<std::byte> rows(first.rows.bytes);
  DeviceArray<float> q(first.q);
  DeviceArray<float> w(first.weights);
  DeviceArray<float> scores(static_cast<size_t>(kChunks));
  cudaStream_t stream = nullptr;
  LSA_CUDA_REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  const lsa::cuda::LightningInput input{rows.get(), kChunks, q.get(), w.get()};
  size_t bytes = 0;
  LSA_CUDA_OK(lsa::cuda::lightning_score(nullptr, bytes, first.config, input, scores.get(), {},
                                         LightningMath::kTensorSplit, stream));
  DeviceArray<std::byte> workspace(bytes);
  cudaGraph_t graph = nullptr;
  cudaGraphExec_t exec = nullptr;
  LSA_CUDA_REQUIRE(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
  LSA_CUDA_OK(lsa::cuda::lightning_score(workspace.get(), bytes, first.config, input, scores.get(),
                                         {}, LightningMath::kTensorSplit, stream));
  LSA_CUDA_REQUIRE(cudaStreamEndCapture(stream, &graph));
  LSA_CUDA_REQUIRE(cudaGraphInstantiate(&exec, graph, 0));
  for (uint32_t rep = 0; rep < 3; ++rep) {
    INFO("replay " << rep);
    Problem p = make_problem(config, kChunks, 900 + rep);
    p.config = first.config;  // what the graph was captured with (the offset included)
    rows.upload(p.rows.bytes);  // same sizes: the captured pointers stay valid
    q.upload(p.q);
    w.upload(p.weights);
    scores.fill_bytes(0xFF);
    // The copies and the poison above ran on the legacy stream, which `stream` does not wait for.
    LSA_CUDA_REQUIRE(cudaDeviceSynchronize());
    LSA_CUDA_REQUIRE(cudaGraphLaunch(exec, stream));
    const std::vector<float> got = scores.download(stream);
    const std::vector<float> expected = host_scores(p);
    float max_error = 0.0f;
    for (int64_t c = 0; c < kChunks; ++c) {
      const float e = std::fabs(got[c] - expected[c]);
      max_error = std::isnan(e) ? INFINITY : std::max(max_error, e);
    }
    REQUIRE(max_error <= 2e-5f);
  }
  LSA_CUDA_REQUIRE(cudaGraphExecDestroy(exec));
  LSA_CUDA_REQUIRE(cudaGraphDestroy(graph));
  LSA_CUDA_REQUIRE(cudaStreamDestroy(stream));
}
