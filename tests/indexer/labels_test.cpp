// The indexer's training labels on a tiny random model against a brute-force reference: golden
// chunks and lookahead positives recomputed from double-precision attention with a plain sort.
#include <algorithm>
#include <catch2/catch.hpp>
#include <numeric>
#include <set>
#include <vector>

#include "error.hpp"
#include "lookahead_labels.hpp"
#include "support/reference_attention.hpp"
#include "support/tiny_llama.hpp"

namespace {

namespace ld = lsa_decode;
namespace li = lsa_indexer;

// The kept chunks of one row: sort by mass (descending, lower chunk first on ties), keep adding
// until the kept mass reaches top_p of the total.
std::set<int32_t> top_p_reference(const std::vector<double>& row, double top_p) {
  std::vector<int32_t> order(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) {
    return row[a] != row[b] ? row[a] > row[b] : a < b;
  });
  const double total = std::accumulate(row.begin(), row.end(), 0.0);
  std::set<int32_t> kept;
  double held = 0.0;
  for (const int32_t c : order) {
    if (held >= top_p * total) break;
    kept.insert(c);
    held += row[c];
  }
  return kept;
}

}  // namespace

TEST_CASE("indexer labels: golden chunks and positives match a brute-force reference",
          "[indexer][labels]") {
  const tiny_llama::Model tiny;
  const ld::ModelConfig& mc = tiny.model.config();
  for (const int64_t n : {40, 97}) {
    for (const int32_t min_layers : {1, 2, 3}) {
      li::LabelConfig config;
      config.chunk_tokens = 4;
      config.top_p = 0.6;
      config.min_layers = min_layers;
      config.lookahead = 16;
      const std::vector<int64_t> refreshes = {1, 9, 20, 33, n - 20, n - 1};
      li::LookaheadLabeler labeler(n, config, refreshes);
      ld::ForwardTaps taps;
      taps.chunk_tokens = config.chunk_tokens;
      taps.on_chunk_mass = [&](int32_t, std::span<const float> m, int64_t) { labeler.add_layer(m); };
      const std::vector<int32_t> ids = tiny_llama::tokens(n, mc.vocab_size, 3);
      std::vector<ld::TokenState> states;
      tiny.model.prefill(ids, states, {}, [](int64_t, std::span<const float>) {}, {}, &taps);

      // Reference: per position, the layers keeping each chunk.
      const int64_t chunks = (n + 3) / 4;
      std::vector<int32_t> keeping(static_cast<size_t>(n * chunks), 0);
      std::vector<std::vector<double>> mass;
      for (int32_t l = 0; l < mc.num_layers; ++l) {
        mass.push_back(reference_attention::chunk_mass(mc, states, l, config.chunk_tokens));
        for (int64_t i = 0; i < n; ++i) {
          const std::vector<double> row(mass.back().begin() + i * chunks,
                                        mass.back().begin() + i * chunks + i / 4 + 1);
          for (const int32_t c : top_p_reference(row, config.top_p)) ++keeping[static_cast<size_t>(i * chunks + c)];
        }
      }
      for (int64_t i = 0; i < n; ++i) {
        std::vector<int32_t> golden;
        for (int32_t c = 0; c < chunks; ++c) {
          if (keeping[static_cast<size_t>(i * chunks + c)] >= min_layers) golden.push_back(c);
        }
        INFO("n " << n << " min_layers " << min_layers << " position " << i);
        CHECK(labeler.golden(i) == golden);
      }
      const std::vector<li::RefreshLabels> labels = labeler.labels();
      REQUIRE(labels.size() == refreshes.size());
      for (size_t r = 0; r < refreshes.size(); ++r) {
        const int64_t t = refreshes[r];
        const li::RefreshLabels& got = labels[r];
        INFO("n " << n << " min_layers " << min_layers << " refresh at " << t);
        CHECK(got.position == t);
        CHECK(got.num_candidates == t / 4);
        std::vector<int32_t> positives, next;
        for (int32_t c = 0; c < t / 4; ++c) {
          bool golden_somewhere = false;
          double future = 0.0;
          for (int64_t i = t; i < std::min(t + config.lookahead, n); ++i) {
            golden_somewhere |= keeping[static_cast<size_t>(i * chunks + c)] >= min_layers;
            for (const auto& layer : mass) future += layer[static_cast<size_t>(i * chunks + c)];
          }
          if (golden_somewhere) positives.push_back(c);
          if (keeping[static_cast<size_t>(t * chunks + c)] >= min_layers) next.push_back(c);
          CHECK(got.future_mass[static_cast<size_t>(c)] == Approx(future).margin(1e-4));
          CHECK((got.window_layers[static_cast<size_t>(c)] >= min_layers) == golden_somewhere);
          CHECK(got.next_layers[static_cast<size_t>(c)] == keeping[static_cast<size_t>(t * chunks + c)]);
        }
        CHECK(got.positives == positives);
        CHECK(got.next_positives == next);
      }
    }
  }
}

TEST_CASE("indexer labels: bad configurations and shapes are refused", "[indexer][labels]") {
  li::LabelConfig c;
  CHECK_THROWS_AS(li::LookaheadLabeler(100, c, {0}), ld::DecodeError);
  CHECK_THROWS_AS(li::LookaheadLabeler(100, c, {100}), ld::DecodeError);
  c.top_p = 0.0;
  CHECK_THROWS_AS(li::LookaheadLabeler(100, c, {50}), ld::DecodeError);
  c = {};
  c.min_layers = 0;
  CHECK_THROWS_AS(li::LookaheadLabeler(100, c, {50}), ld::DecodeError);
  c = {};
  li::LookaheadLabeler ok(100, c, {50});
  CHECK_THROWS_AS(ok.add_layer(std::vector<float>(10)), ld::DecodeError);
}
