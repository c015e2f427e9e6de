// DeviceLightningScorer against the host LightningScorer: the same scores through appends in
// pieces, forks (copy on write) and truncation; and a whole cache with the device scorer and the
// device store against the host cache: identical views step after step across refreshes.
#include <cuda_runtime.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "lsa/cuda/cuda_store.hpp"
#include "lsa/cuda/device_lightning_scorer.hpp"
#include "lsa/fp8.hpp"
#include "lsa/sparse_kv_cache.hpp"
#include "support/gpu.hpp"

namespace {

using lsa::cuda::DeviceLightningScorer;
using lsa::cuda::LightningMath;

// Random fp8 rows: N(0, 2) codes, scales of both signs.
std::vector<std::byte> random_rows(const lsa::ScorerConfig& c, int64_t rows, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_real_distribution<float> uniform(0.0f, 1.0f);
  const int64_t d = c.head_dim;
  std::vector<std::byte> bytes(static_cast<size_t>(rows * c.num_layers * (d + 4)));
  for (int64_t v = 0; v < rows * c.num_layers; ++v) {
    std::byte* p = bytes.data() + v * (d + 4);
    for (int64_t i = 0; i < d; ++i)
      p[i] = static_cast<std::byte>(lsa::encode_fp8_e4m3(2.0f * normal(rng)));
    const float scale = (uniform(rng) < 0.2f ? -1.0f : 1.0f) * (0.02f + 0.05f * uniform(rng));
    std::memcpy(p + d, &scale, 4);
  }
  return bytes;
}

// Host and device indexes of one sequence, fed the same rows.
struct Pair {
  lsa::LightningScorer::Index host;
  DeviceLightningScorer::Index device;
};

void require_same_scores(const lsa::LightningScorer& host, const DeviceLightningScorer& device,
                         const Pair& pair, const lsa::Query& query, float tolerance) {
  REQUIRE(device.num_chunks(pair.device) == host.num_chunks(pair.host));
  const auto n = static_cast<size_t>(host.num_chunks(pair.host));
  std::vector<float> want(n), got(n, -1.0f);
  host.score(pair.host, query, want);
  device.score(pair.device, query, got);
  REQUIRE(lsa::cuda::ok(device.cuda_error()));
  for (size_t c = 0; c < n; ++c) {
    INFO("chunk " << c << " of " << n << ": host " << want[c] << " device " << got[c]);
    REQUIRE(std::fabs(got[c] - want[c]) <= tolerance);
  }
}

}  // namespace

TEST_CASE("device lightning scorer: the host scores through appends, forks and truncation",
          "[gpu][device_scorer]") {
  LSA_REQUIRE_GPU();
  for (const LightningMath math : {LightningMath::kCudaCore, LightningMath::kAuto}) {
    for (const int32_t layers : {1, 2}) {
      lsa::ScorerConfig c;
      c.num_layers = layers;
      c.num_heads = 64;
      c.head_dim = 128;
      c.ensemble = layers == 2 ? lsa::Ensemble::kMean : lsa::Ensemble::kMax;
      c.logit_offset = -1.0f;
      constexpr int32_t kChunkTokens = 4;
      const lsa::LightningScorer host(c, kChunkTokens);
      const DeviceLightningScorer device(c, kChunkTokens, math);
      std::mt19937 rng(31 + layers);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      std::vector<float> q(static_cast<size_t>(layers * c.num_heads * c.head_dim));
      std::vector<float> w(static_cast<size_t>(layers * c.num_heads));
      for (float& x : q) x = normal(rng) * 0.3f;
      for (float& x : w) x = std::fabs(normal(rng)) * 0.5f;
      const lsa::Query query{q, w};
      const float tolerance =
          2e-5f;  // the bound tests/cuda/lightning_score_test.cu holds the kernel to

      Pair a;
      auto append = [&](Pair& p, int64_t rows) {
        const std::vector<std::byte> bytes = random_rows(c, rows, rng);
        const lsa::KeyRows kr{bytes.data(), rows};
        REQUIRE(host.check_keys(kr) == lsa::Status::kOk);
        host.append(p.host, kr);
        device.append(p.device, kr);
      };
      // Edge sizes around a page of 16 chunks, then a large history grown in pieces.
      for (const int64_t rows : {1, 14, 1, 1, 1, 5000, 3}) {
        append(a, rows);
        require_same_scores(host, device, a, query, tolerance);
      }
      Pair b = a;  // a fork: shares the device rows
      append(b, 7);
      append(a, 2);  // both appended past the shared rows: copy on write kept them apart
      require_same_scores(host, device, a, query, tolerance);
      require_same_scores(host, device, b, query, tolerance);
      host.truncate(a.host, 4 * 1000 + 3);
      device.truncate(a.device, 4 * 1000 + 3);
      require_same_scores(host, device, a, query, tolerance);
      append(a, 9);  // overwrites rows past the cut (b still holds its own)
      require_same_scores(host, device, a, query, tolerance);
      require_same_scores(host, device, b, query, tolerance);
    }
  }
}

TEST_CASE("device lightning scorer: bad shapes throw naming the field",
          "[gpu][device_scorer][errors]") {
  LSA_REQUIRE_GPU();
  lsa::ScorerConfig c;
  c.key_format = lsa::KeyFormat::kBF16;
  REQUIRE_THROWS_WITH(DeviceLightningScorer(c, 4), Catch::Contains("scorer.key_format"));
  c.key_format = lsa::KeyFormat::kFp8E4M3;
  c.num_heads = 256;
  REQUIRE_THROWS_WITH(DeviceLightningScorer(c, 4), Catch::Contains("scorer.num_heads"));
  c.num_heads = 64;
  c.head_dim = 30;
  REQUIRE_THROWS_WITH(DeviceLightningScorer(c, 4), Catch::Contains("scorer.head_dim"));
}

TEST_CASE("device scorer + device store give the host cache's views across refreshes",
          "[gpu][device_scorer][parity]") {
  LSA_REQUIRE_GPU();
  lsa::CacheConfig config;
  config.num_layers = 2;
  config.bytes_per_token_per_layer = 16;
  config.chunk_tokens = 4;
  config.page_chunks = 4;
  config.max_sequences = 3;
  config.max_tokens = 1 << 14;
  config.scorer.num_layers = 1;
  config.scorer.num_heads = 8;
  config.scorer.head_dim = 32;
  config.scorer.logit_offset = -10.0f;
  config.policy.interval = 2;
  config.policy.spread_phase = true;
  config.policy.sink_chunks = 1;
  config.policy.recent_chunks = 8;
  config.policy.kmax_pages = 8;
  config.num_slots = config.max_sequences * config.policy.kmax_pages + 8;
  lsa::SparseKVCache<> host(config);
  lsa::SparseKVCache<lsa::Chunker, DeviceLightningScorer, lsa::LookaheadPolicy,
                     lsa::cuda::CudaStore>
      device(config);

  // Keys whose dot with q = +1 is +20 / 8 per head ("positive" chunks) or negative (relu 0): scores
  // are sigmoid(10) or sigmoid(-10), far from the 0.5 threshold, so both backends keep the same
  // chunks; the query's sign flips which chunks those are, so the sets change at every refresh.
  const int32_t d = config.scorer.head_dim;
  auto key_row = [&](bool positive) {
    std::vector<std::byte> row(static_cast<size_t>(d + 4));
    for (int32_t i = 0; i < d; ++i)
      row[i] = static_cast<std::byte>(lsa::encode_fp8_e4m3(positive ? 1.0f : -1.0f));
    const float scale = 20.0f / (8.0f * static_cast<float>(d)) * 8.0f;  // w = 1/8 per head
    std::memcpy(row.data() + d, &scale, 4);
    return row;
  };
  std::mt19937 rng(9);
  const std::vector<lsa::SeqId> ids = {5, 6, 7};
  std::vector<int64_t> length(ids.size(), 0);
  auto append = [&](size_t b, int32_t n) {
    std::vector<std::byte> kv(
        static_cast<size_t>(n * config.num_layers * config.bytes_per_token_per_layer));
    for (std::byte& x : kv) x = static_cast<std::byte>(rng());
    std::vector<std::byte> keys;
    const int64_t rows = (length[b] + n) / 4 - length[b] / 4;
    for (int64_t r = 0; r < rows; ++r) {
      const std::vector<std::byte> row =
          key_row(std::uniform_int_distribution<int>(0, 3)(rng) == 0);
      keys.insert(keys.end(), row.begin(), row.end());
    }
    std::vector<lsa::TokenSlot> out_h(static_cast<size_t>(n)), out_d(static_cast<size_t>(n));
    REQUIRE(host.append(ids[b], n, {keys.data(), rows}, out_h, kv.data()) == lsa::Status::kOk);
    REQUIRE(device.append(ids[b], n, {keys.data(), rows}, out_d, kv.data()) == lsa::Status::kOk);
    length[b] += n;
  };
  for (size_t b = 0; b < ids.size(); ++b) {
    REQUIRE(host.add(ids[b]) == lsa::Status::kOk);
    REQUIRE(device.add(ids[b]) == lsa::Status::kOk);
    for (int piece = 0; piece < 12; ++piece) append(b, 37);
  }
  lsa::ViewStorage vh(3, config.policy.kmax_pages + 4, 1 << 12),
      vd(3, config.policy.kmax_pages + 4, 1 << 12);
  std::vector<float> q(static_cast<size_t>(config.scorer.num_heads * d));
  std::vector<float> w(static_cast<size_t>(config.scorer.num_heads), 1.0f / 8.0f);
  int64_t refreshes = 0;
  for (int step = 0; step < 200; ++step) {
    INFO("step " << step);
    std::fill(q.begin(), q.end(), step % 4 < 2 ? 1.0f : -1.0f);
    const std::vector<lsa::Query> queries(ids.size(), lsa::Query{q, w});
    REQUIRE(host.step(ids, queries, vh.buffers()) == lsa::Status::kOk);
    REQUIRE(device.step(ids, queries, vd.buffers()) == lsa::Status::kOk);
    REQUIRE(vh.indptr == vd.indptr);
    REQUIRE(vh.indices == vd.indices);
    REQUIRE(vh.last_page_len == vd.last_page_len);
    REQUIRE(vh.slot_lists == vd.slot_lists);
    REQUIRE(vh.block_table == vd.block_table);
    for (size_t b = 0; b < ids.size(); ++b) append(b, 1);
    refreshes = device.stats().refreshes;
  }
  REQUIRE(refreshes > 100);
  REQUIRE(device.stats().recalled_pages > 50);
  REQUIRE(device.stats().recalled_pages == host.stats().recalled_pages);
  // Every token's KV reads back the same from both.
  std::vector<std::byte> a(static_cast<size_t>(config.bytes_per_token_per_layer)), b2(a.size());
  for (size_t b = 0; b < ids.size(); ++b) {
    for (int64_t t = 0; t < length[b]; t += 5) {
      for (int32_t l = 0; l < config.num_layers; ++l) {
        REQUIRE(host.read_token(ids[b], t, l, a.data()) == lsa::Status::kOk);
        REQUIRE(device.read_token(ids[b], t, l, b2.data()) == lsa::Status::kOk);
        REQUIRE(a == b2);
      }
    }
  }
  REQUIRE(lsa::cuda::ok(device.store().cuda_error()));
}
