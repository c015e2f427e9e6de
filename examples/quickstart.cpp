// Quickstart: a minimal engine loop over lsa with synthetic KV and a synthetic lightning indexer.
//
// One request prefills 16K tokens, then decodes 512. A few "needle" chunks have index keys that
// point where the decode queries look; the lookahead policy keeps their pages resident while the
// rest of the history waits in the mirror. Prints the resident fraction and stats as it goes.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "lsa/lsa.hpp"

namespace {

constexpr int kHeads = 4;
constexpr int kDim = 32;
constexpr int kRowBytes = kDim + 4;  // fp8 e4m3 key + fp32 scale

// One lightning index key row: `dir` scaled to `norm`, or random noise.
void make_key(std::mt19937& rng, const std::vector<float>& dir, bool needle, std::byte* row) {
  std::normal_distribution<float> noise(0.0f, 1.0f / std::sqrt(float(kDim)));
  const float scale = 1.0f / 64.0f;
  for (int d = 0; d < kDim; ++d) {
    const float k = needle ? dir[d] : noise(rng);
    row[d] = std::byte{lsa::encode_fp8_e4m3(k / scale)};
  }
  std::memcpy(row + kDim, &scale, sizeof(float));
}

}  // namespace

int main() {
  lsa::CacheConfig config;
  config.num_layers = 4;
  config.bytes_per_token_per_layer = 2 * 8 * 2;  // K and V, 8 dims, 2 bytes each
  config.chunk_tokens = 4;
  config.page_chunks = 16;  // 64-token pages
  config.max_sequences = 1;
  config.policy.kmax_pages = 32;
  config.policy.recent_chunks = 64;
  config.policy.interval = 64;
  config.num_slots = 48;
  config.scorer.num_heads = kHeads;
  config.scorer.head_dim = kDim;
  config.scorer.logit_offset = -2.0f;

  lsa::SparseKVCache<> cache(config);  // lightning scorer, lookahead policy, host store
  const lsa::SeqId seq = 7;
  if (!lsa::ok(cache.add(seq))) return 1;

  std::mt19937 rng(2026);
  std::vector<float> dir(kDim);
  std::normal_distribution<float> gauss(0.0f, 1.0f);
  float norm = 0;
  for (float& v : dir) norm += (v = gauss(rng)) * v;
  for (float& v : dir) v /= std::sqrt(norm);

  // Prefill in pieces: append returns where each token's KV goes; here lsa copies it for us.
  constexpr int kPrompt = 16384, kPiece = 512;
  std::vector<lsa::TokenSlot> where(kPiece);
  std::vector<std::byte> kv(size_t(kPiece) * config.num_layers * config.bytes_per_token_per_layer);
  std::vector<std::byte> keys(size_t(kPiece / config.chunk_tokens) * kRowBytes);
  int needles = 0;
  std::vector<int64_t> needle_pages;
  for (int t = 0; t < kPrompt; t += kPiece) {
    for (auto& b : kv) b = std::byte(rng());
    const int chunks = kPiece / config.chunk_tokens;
    for (int c = 0; c < chunks; ++c) {
      const int64_t chunk = t / config.chunk_tokens + c;
      const bool needle = chunk % 997 == 500;  // 4 needle chunks in the prompt
      if (needle) needle_pages.push_back(chunk / config.page_chunks);
      needles += needle;
      make_key(rng, dir, needle, keys.data() + size_t(c) * kRowBytes);
    }
    lsa::Status s = cache.append(seq, kPiece, {keys.data(), chunks}, where, kv.data());
    if (!lsa::ok(s)) return fmt::print(stderr, "append: {}\n", lsa::to_string(s)), 1;
  }
  fmt::print("prefilled {} tokens, {} needle chunks, {} pages\n", kPrompt, needles,
             cache.stats().total_pages);

  // Decode: the query of every head looks along `dir`.
  std::vector<float> q(size_t(kHeads) * kDim), w(kHeads, 1.0f / kHeads);
  for (int h = 0; h < kHeads; ++h)
    for (int d = 0; d < kDim; ++d) q[size_t(h) * kDim + d] = 4.0f * dir[d];
  const lsa::Query query{q, w};
  lsa::ViewStorage view(/*max_batch=*/1, /*max_pages_per_seq=*/64, /*max_logical_pages=*/512);
  std::vector<std::byte> token_kv(size_t(config.num_layers) * config.bytes_per_token_per_layer);
  std::vector<std::byte> key(kRowBytes);
  for (int step = 0; step < 512; ++step) {
    for (auto& b : token_kv) b = std::byte(rng());
    const int64_t len = cache.length(seq);
    const int64_t completed = (len + 1) / config.chunk_tokens - len / config.chunk_tokens;
    make_key(rng, dir, false, key.data());
    lsa::Status s = cache.append(seq, 1, {key.data(), completed}, std::span(where.data(), 1),
                                 token_kv.data());
    if (!lsa::ok(s)) return fmt::print(stderr, "append: {}\n", lsa::to_string(s)), 1;
    const bool refresh = cache.refresh_due(seq);
    s = cache.step(std::span(&seq, 1), std::span(&query, 1), view.buffers());
    if (!lsa::ok(s)) return fmt::print(stderr, "step: {}\n", lsa::to_string(s)), 1;
    // The engine's attention kernel would now read view.indices[indptr[0]..indptr[1]) slots.
    if (refresh) {
      const lsa::Stats st = cache.stats();
      int found = 0;
      for (int64_t page : needle_pages) {
        found += std::ranges::binary_search(cache.resident_pages(seq), static_cast<int32_t>(page));
      }
      fmt::print(
          "step {:3}: refresh, {:2} of {} pages in the view ({:.1f}%), needle pages resident "
          "{}/{}, recalled {} pages so far\n",
          step, view.indptr[1], st.total_pages, 100.0 * st.resident_fraction, found,
          needle_pages.size(), st.recalled_pages);
    }
  }
  const lsa::Stats st = cache.stats();
  fmt::print(
      "done: {} tokens, resident {:.1f}% of pages, refreshes {}, recalled {} B, evictions {}, "
      "sealed pages {}, capacity refusals {}\n",
      cache.length(seq), 100.0 * st.resident_fraction, st.refreshes, st.recalled_bytes,
      st.evictions, st.sealed_pages, st.capacity_refusals);
  return 0;
}
