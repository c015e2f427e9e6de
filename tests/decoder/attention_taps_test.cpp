// The forward pass's taps on a tiny random model: chunk attention of the prefill and page
// attention of the decode step against attention recomputed in double precision, and the hidden
// states against each other.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "error.hpp"
#include "model.hpp"
#include "support/reference_attention.hpp"
#include "support/tiny_llama.hpp"

namespace {

namespace ld = lsa_decode;

}  // namespace

TEST_CASE("model taps: prefill chunk attention matches a double-precision recomputation",
          "[decoder][taps]") {
  const tiny_llama::Model tiny;
  const ld::ModelConfig& mc = tiny.model.config();
  for (const int64_t n : {1, 7, 70, 131}) {
    const std::vector<int32_t> ids = tiny_llama::tokens(n, mc.vocab_size, static_cast<uint32_t>(n));
    for (const int32_t chunk : {1, 4, 16}) {
      ld::ForwardTaps taps;
      taps.chunk_tokens = chunk;
      std::vector<std::vector<float>> layers;
      taps.on_chunk_mass = [&](int32_t l, std::span<const float> mass, int64_t num_chunks) {
        CHECK(l == static_cast<int32_t>(layers.size()));
        CHECK(num_chunks == (n + chunk - 1) / chunk);
        layers.emplace_back(mass.begin(), mass.end());
      };
      std::vector<ld::TokenState> states;
      tiny.model.prefill(ids, states, {}, [](int64_t, std::span<const float>) {}, {}, &taps);
      REQUIRE(static_cast<int32_t>(layers.size()) == mc.num_layers);
      for (int32_t l = 0; l < mc.num_layers; ++l) {
        const std::vector<double> want = reference_attention::chunk_mass(mc, states, l, chunk);
        REQUIRE(layers[static_cast<size_t>(l)].size() == want.size());
        double worst = 0.0;
        for (size_t i = 0; i < want.size(); ++i) {
          worst = std::max(worst, std::abs(want[i] - layers[static_cast<size_t>(l)][i]));
        }
        INFO("n " << n << " chunk " << chunk << " layer " << l);
        CHECK(worst < 2e-5);
      }
    }
  }
}

TEST_CASE("model taps: decode page attention and hidden states agree with the prefill",
          "[decoder][taps]") {
  const tiny_llama::Model tiny;
  const ld::ModelConfig& mc = tiny.model.config();
  const int64_t n = 53, page_tokens = 4;
  const std::vector<int32_t> ids = tiny_llama::tokens(n, mc.vocab_size, 9);
  ld::ForwardTaps taps;
  taps.hidden_layers = {0, 2, mc.num_layers, 2};
  std::vector<ld::TokenState> states;
  tiny.model.prefill(ids, states, {}, [](int64_t, std::span<const float>) {}, {}, &taps);
  // Layer 0's entering stream is the token's embedding; a layer listed twice is copied twice.
  const int64_t d = mc.d_model;
  for (const ld::TokenState& s : states) {
    REQUIRE(static_cast<int64_t>(s.hidden.size()) == 4 * d);
    for (int64_t e = 0; e < d; ++e) CHECK(s.hidden[static_cast<size_t>(d + e)] == s.hidden[static_cast<size_t>(3 * d + e)]);
  }

  // Decode the last token over pages holding the first n - 1 tokens' KV.
  const int64_t kvf = mc.kv_floats();
  const int64_t pages = (n - 1 + page_tokens - 1) / page_tokens;
  std::vector<float> kv(static_cast<size_t>(pages * mc.num_layers * page_tokens * kvf), 0.0f);
  std::vector<ld::KvPage> view;
  for (int64_t p = 0; p < pages; ++p) {
    float* base = kv.data() + p * mc.num_layers * page_tokens * kvf;
    const int64_t first = p * page_tokens, count = std::min(page_tokens, n - 1 - first);
    for (int64_t t = 0; t < count; ++t) {
      for (int32_t l = 0; l < mc.num_layers; ++l) {
        std::copy_n(states[static_cast<size_t>(first + t)].kv.data() + l * kvf, kvf,
                    base + (l * page_tokens + t) * kvf);
      }
    }
    view.push_back({reinterpret_cast<const std::byte*>(base), static_cast<int32_t>(count)});
  }
  ld::TokenState state;
  std::vector<float> logits;
  ld::AttentionMass mass;
  tiny.model.decode(ids.back(), n - 1, view, page_tokens, ld::KvType::kF32, state, logits, &mass,
                    &taps);
  const ld::TokenState& last = states.back();
  for (size_t e = 0; e < last.hidden.size(); ++e) CHECK(state.hidden[e] == Approx(last.hidden[e]).margin(1e-4));
  REQUIRE(mass.num_layers == mc.num_layers);
  REQUIRE(mass.num_pages == pages);
  for (int32_t l = 0; l < mc.num_layers; ++l) {
    const std::vector<double> want = reference_attention::chunk_mass(mc, states, l, page_tokens);
    const int64_t chunks = (n + page_tokens - 1) / page_tokens;
    const double* row = want.data() + (n - 1) * chunks;
    double total = mass.self[static_cast<size_t>(l)];
    for (int32_t p = 0; p < pages; ++p) {
      // The decoded token's own page also holds the token itself.
      const double self = p == (n - 1) / page_tokens ? mass.self[static_cast<size_t>(l)] : 0.0;
      CHECK(mass.page(l, p) + self == Approx(row[p]).margin(2e-5));
      total += mass.page(l, p);
    }
    CHECK(total == Approx(mc.num_heads).epsilon(1e-5));
  }

  ld::ForwardTaps bad;
  bad.hidden_layers = {mc.num_layers + 1};
  CHECK_THROWS_AS(tiny.model.decode(ids.back(), n - 1, view, page_tokens, ld::KvType::kF32, state,
                                    logits, nullptr, &bad),
                  ld::DecodeError);
  bad.hidden_layers = {};
  bad.chunk_tokens = 4;  // no callback
  CHECK_THROWS_AS(tiny.model.prefill(ids, states, {}, [](int64_t, std::span<const float>) {}, {}, &bad),
                  ld::DecodeError);
}
