// Smoke test of a downstream build: the umbrella header compiles and the library links and runs.
#include <lsa/lsa.hpp>

#include <cstdio>
#include <exception>

int main() {
  // TODO(packaging): once SparseKVCache lands, construct an lsa::SparseKVCache<> from this config,
  // add a sequence, append a few tokens and call step.
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
  std::printf("lsa_consumer: ok\n");
  return 0;
}
