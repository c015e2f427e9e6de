// Smoke test of a downstream build: the umbrella header compiles, the library links, and a
// SparseKVCache<> decodes a few steps with lsa's defaults. With an installed CUDA backend the
// device cache's headers compile with the plain C++ compiler and its code links; it runs a few
// steps when a GPU is present.
#include <lsa/lsa.hpp>
#if defined(LSA_CONSUMER_CUDA)
#include <lsa/cuda/cuda.hpp>
#endif

#include <cstddef>
#include <cstdio>
#include <exception>
#include <vector>

#if defined(LSA_CONSUMER_CUDA)
// The device backend: 0 when it ran (or no GPU is present, which construction reports), 1 on error.
int device_cache_smoke(const lsa::CacheConfig& config) {
  using DeviceCache = lsa::SparseKVCache<lsa::Chunker, lsa::cuda::DeviceLightningScorer,
                                         lsa::LookaheadPolicy, lsa::cuda::CudaStore>;
  static_assert(lsa::KVStore<lsa::cuda::CudaStore>);
  try {
    DeviceCache cache(config);
    const lsa::SeqId batch[1] = {3};
    if (cache.add(batch[0]) != lsa::Status::kOk) return 1;
    lsa::ViewStorage view(1, config.policy.kmax_pages, 64);
    return cache.step(batch, {}, view.buffers()) == lsa::Status::kOk ? 0 : 1;
  } catch (const lsa::Error& e) {
    std::printf("lsa_consumer: device cache not constructed (%s)\n", e.what());
    return 0;
  }
}
#endif

int main() {
  lsa::CacheConfig config;
  config.num_layers = 2;
  config.bytes_per_token_per_layer = 64;
  config.chunk_tokens = 4;
  config.page_chunks = 4;
  config.max_sequences = 2;
  config.max_tokens = 1024;
  config.policy.sink_chunks = 1;
  config.policy.recent_chunks = 4;
  config.policy.kmax_pages = 8;
  config.num_slots = 16;
  try {
    lsa::validate(config);
  } catch (const lsa::Error& e) {
    std::fprintf(stderr, "lsa_consumer: valid config rejected: %s\n", e.what());
    return 1;
  }

  // Exceptions thrown inside the static library must reach the consumer as lsa::Error.
  lsa::CacheConfig bad = config;
  bad.num_slots = 0;
  bool threw = false;
  try {
    lsa::validate(bad);
  } catch (const lsa::Error&) {
    threw = true;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lsa_consumer: expected lsa::Error, got: %s\n", e.what());
    return 1;
  }
  if (!threw) {
    std::fprintf(stderr, "lsa_consumer: invalid config accepted\n");
    return 1;
  }

  const auto name = lsa::to_string(lsa::Status::kOk);
  if (name != "ok") {
    std::fprintf(stderr, "lsa_consumer: to_string(kOk) is '%.*s'\n", static_cast<int>(name.size()), name.data());
    return 1;
  }
  // A short engine loop: prefill 256 tokens, then decode 64 steps, one token each.
  lsa::SparseKVCache<> cache(config);
  lsa::ViewStorage view(1, config.policy.kmax_pages,
                        static_cast<int32_t>(config.max_tokens / config.page_tokens()));
  const int64_t key_bytes = lsa::LightningScorer(config.scorer, config.chunk_tokens).row_bytes();
  const int64_t token_bytes = int64_t{config.num_layers} * config.bytes_per_token_per_layer;
  const lsa::SeqId id = 7;
  if (cache.add(id) != lsa::Status::kOk) return 1;
  auto append = [&](int32_t n) {
    const int64_t rows = (cache.length(id) + n) / config.chunk_tokens - cache.length(id) / config.chunk_tokens;
    std::vector<std::byte> keys(static_cast<size_t>(rows * key_bytes), std::byte{0});
    std::vector<std::byte> kv(static_cast<size_t>(n * token_bytes), std::byte{1});
    std::vector<lsa::TokenSlot> where(static_cast<size_t>(n));
    return cache.append(id, n, {keys.data(), rows}, where, kv.data());
  };
  if (lsa::Status s = append(256); s != lsa::Status::kOk) {
    std::fprintf(stderr, "lsa_consumer: prefill: %s\n", lsa::to_string(s).data());
    return 1;
  }
  const size_t heads = static_cast<size_t>(config.scorer.num_layers) * config.scorer.num_heads;
  std::vector<float> q(heads * static_cast<size_t>(config.scorer.head_dim), 0.5f);
  std::vector<float> w(heads, 1.0f);
  const lsa::Query query{q, w};
  for (int t = 0; t < 64; ++t) {
    const lsa::SeqId batch[1] = {id};
    const lsa::Query queries[1] = {query};
    if (lsa::Status s = cache.step(batch, queries, view.buffers()); s != lsa::Status::kOk) {
      std::fprintf(stderr, "lsa_consumer: step %d: %s\n", t, lsa::to_string(s).data());
      return 1;
    }
    if (append(1) != lsa::Status::kOk) return 1;
  }
  const lsa::Stats stats = cache.stats();
  if (stats.refreshes == 0 || stats.total_pages != 20 || view.indptr[1] > config.policy.kmax_pages) {
    std::fprintf(stderr, "lsa_consumer: unexpected stats (refreshes %lld, pages %lld)\n",
                 static_cast<long long>(stats.refreshes), static_cast<long long>(stats.total_pages));
    return 1;
  }
#if defined(LSA_CONSUMER_CUDA)
  if (device_cache_smoke(config) != 0) {
    std::fprintf(stderr, "lsa_consumer: the device cache failed\n");
    return 1;
  }
#endif
  std::printf("lsa_consumer: ok (%lld of %lld pages resident)\n",
              static_cast<long long>(stats.resident_pages), static_cast<long long>(stats.total_pages));
  return 0;
}
