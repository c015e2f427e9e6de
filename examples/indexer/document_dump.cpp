#include "document_dump.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <map>

#include <lsa/lsa.hpp>

#include "error.hpp"
#include "model.hpp"
#include "session.hpp"

namespace lsa_indexer {

std::vector<std::pair<int64_t, RefreshKind>> refresh_positions(
    int64_t num_tokens, std::span<const SpecialRefresh> special, const DumpConfig& config) {
  std::map<int64_t, RefreshKind> at;
  const int64_t stride = std::max<int32_t>(1, config.refresh_stride);
  for (int64_t t = (config.min_history + stride - 1) / stride * stride; t < num_tokens; t += stride) {
    if (t >= 1) at.emplace(t, RefreshKind::kRegular);
  }
  for (const SpecialRefresh& s : special) {
    if (s.position >= 1 && s.position < num_tokens) at[s.position] = s.kind;
  }
  return {at.begin(), at.end()};
}

DocumentStats dump_document(const lsa_decode::LlamaModel& model, std::span<const int32_t> tokens,
                            DocKind kind, std::span<const SpecialRefresh> special,
                            const DumpConfig& config, DumpWriter& writer) {
  const lsa_decode::ModelConfig& mc = model.config();
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t ct = config.labels.chunk_tokens;
  const auto refreshes = refresh_positions(n, special, config);
  std::vector<int64_t> positions;
  for (const auto& [t, k] : refreshes) positions.push_back(t);
  LookaheadLabeler labeler(n, config.labels, positions);

  lsa_decode::ForwardTaps taps;
  taps.hidden_layers = config.taps;
  taps.chunk_tokens = static_cast<int32_t>(ct);
  taps.on_chunk_mass = [&](int32_t, std::span<const float> mass, int64_t) { labeler.add_layer(mass); };
  std::vector<lsa_decode::TokenState> states;
  model.prefill(tokens, states, {}, [](int64_t, std::span<const float>) {}, {}, &taps);

  // Chunk features: the mean of each complete chunk's tapped states.
  const int64_t features = static_cast<int64_t>(config.taps.size()) * mc.d_model;
  const int64_t complete = n / ct;
  std::vector<float> chunks(static_cast<size_t>(complete * features), 0.0f);
  for (int64_t c = 0; c < complete; ++c) {
    float* out = chunks.data() + c * features;
    for (int64_t i = c * ct; i < (c + 1) * ct; ++i) {
      const std::vector<float>& h = states[static_cast<size_t>(i)].hidden;
      for (int64_t e = 0; e < features; ++e) out[e] += h[static_cast<size_t>(e)];
    }
    for (int64_t e = 0; e < features; ++e) out[e] /= static_cast<float>(ct);
  }
  writer.begin_doc(n, kind);
  writer.add_chunks(chunks);

  // The bound scorer's scores at each refresh, with the query of the token before it (what
  // lsa-iN does), over the tokens before it.
  lsa_decode::CacheOptions options;
  options.chunk_tokens = static_cast<int32_t>(ct);
  options.max_tokens = n;
  const lsa::ScorerConfig scorer_config = lsa_decode::make_cache_config(mc, options).scorer;
  const lsa::BoundScorer bound(scorer_config, static_cast<int32_t>(ct));
  lsa::BoundScorer::Index index;
  int64_t indexed = 0;
  std::vector<float> scores;
  DocumentStats stats;
  const std::vector<RefreshLabels> labels = labeler.labels();
  for (size_t r = 0; r < refreshes.size(); ++r) {
    const RefreshLabels& l = labels[r];
    for (; indexed < l.position; ++indexed) {
      const std::vector<float>& key = states[static_cast<size_t>(indexed)].key;
      bound.append(index, {reinterpret_cast<const std::byte*>(key.data()), 1});
    }
    const lsa_decode::TokenState& before = states[static_cast<size_t>(l.position - 1)];
    const lsa::Query query{before.query, {}};
    if (bound.check_query(query) != lsa::Status::kOk) {
      throw lsa_decode::DecodeError(fmt::format("bound scorer refused the query at {}", l.position));
    }
    scores.resize(static_cast<size_t>(bound.num_chunks(index)));
    bound.score(index, query, scores);
    writer.add_refresh(l, refreshes[r].second, before.hidden,
                       std::span<const float>(scores).first(static_cast<size_t>(l.num_candidates)));
    ++stats.refreshes;
    stats.positives += static_cast<int64_t>(l.positives.size());
    stats.candidates += l.num_candidates;
  }
  return stats;
}

}  // namespace lsa_indexer
