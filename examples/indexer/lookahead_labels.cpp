#include "lookahead_labels.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "error.hpp"

namespace lsa_indexer {
namespace {

using lsa_decode::DecodeError;

// Appends to `order` the chunks of `row` by descending mass (ties to the lower chunk) until they
// hold top_p of the total; returns how many.
size_t rank_top_p(std::span<const float> row, double top_p, std::vector<int32_t>& order) {
  order.resize(row.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return row[a] > row[b]; });
  double total = 0.0;
  for (const float m : row) total += m;
  double held = 0.0;
  size_t kept = 0;
  while (kept < order.size() && held < top_p * total) held += row[order[kept++]];
  return kept;
}

}  // namespace

LookaheadLabeler::LookaheadLabeler(int64_t num_tokens, const LabelConfig& config,
                                   std::vector<int64_t> refresh_positions)
    : num_tokens_(num_tokens), config_(config), refreshes_(std::move(refresh_positions)) {
  if (config.chunk_tokens < 1 || config.lookahead < 1 || config.min_layers < 1 ||
      config.min_layers > 255 || !(config.top_p > 0.0 && config.top_p <= 1.0) || num_tokens < 1) {
    throw DecodeError(fmt::format(
        "labels need chunk tokens, lookahead and tokens >= 1, min layers in [1, 255] and top-p "
        "in (0, 1] (got {}, {}, {}, {}, {})",
        config.chunk_tokens, config.lookahead, num_tokens, config.min_layers, config.top_p));
  }
  num_chunks_ = (num_tokens + config.chunk_tokens - 1) / config.chunk_tokens;
  for (const int64_t t : refreshes_) {
    if (t < 1 || t >= num_tokens) {
      throw DecodeError(
          fmt::format("refresh position {} is outside [1, {}) (the document's tokens)", t, num_tokens));
    }
    future_.emplace_back(static_cast<size_t>(t / config.chunk_tokens), 0.0f);
  }
  kept_.assign(static_cast<size_t>(num_tokens * num_chunks_), 0);
}

void LookaheadLabeler::add_layer(std::span<const float> mass) {
  if (static_cast<int64_t>(mass.size()) != num_tokens_ * num_chunks_) {
    throw DecodeError(fmt::format("a layer's chunk attention must hold {} x {} values (got {})",
                                  num_tokens_, num_chunks_, mass.size()));
  }
  for (int64_t i = 0; i < num_tokens_; ++i) {
    // Position i sees the chunks up to its own.
    const std::span<const float> row = mass.subspan(static_cast<size_t>(i * num_chunks_),
                                                    static_cast<size_t>(i / config_.chunk_tokens + 1));
    const size_t kept = rank_top_p(row, config_.top_p, order_);
    uint8_t* counts = kept_.data() + i * num_chunks_;
    for (size_t k = 0; k < kept; ++k) ++counts[order_[k]];
  }
  for (size_t r = 0; r < refreshes_.size(); ++r) {
    std::vector<float>& future = future_[r];
    for (int64_t i = refreshes_[r]; i < window_end(refreshes_[r]); ++i) {
      const float* row = mass.data() + i * num_chunks_;
      for (size_t c = 0; c < future.size(); ++c) future[c] += row[c];
    }
  }
}

std::vector<int32_t> LookaheadLabeler::golden(int64_t i) const {
  std::vector<int32_t> out;
  const uint8_t* counts = kept_.data() + i * num_chunks_;
  for (int64_t c = 0; c < num_chunks_; ++c) {
    if (counts[c] >= config_.min_layers) out.push_back(static_cast<int32_t>(c));
  }
  return out;
}

std::vector<RefreshLabels> LookaheadLabeler::labels() const {
  std::vector<RefreshLabels> out;
  for (size_t r = 0; r < refreshes_.size(); ++r) {
    RefreshLabels l;
    l.position = refreshes_[r];
    l.num_candidates = static_cast<int64_t>(future_[r].size());
    l.future_mass = future_[r];
    const auto n = static_cast<size_t>(l.num_candidates);
    l.window_layers.assign(n, 0);
    l.next_layers.assign(kept_.begin() + l.position * num_chunks_,
                         kept_.begin() + l.position * num_chunks_ + l.num_candidates);
    for (int64_t i = l.position; i < window_end(l.position); ++i) {
      const uint8_t* counts = kept_.data() + i * num_chunks_;
      for (size_t c = 0; c < n; ++c) l.window_layers[c] = std::max(l.window_layers[c], counts[c]);
    }
    for (size_t c = 0; c < n; ++c) {
      if (l.window_layers[c] >= config_.min_layers) l.positives.push_back(static_cast<int32_t>(c));
      if (l.next_layers[c] >= config_.min_layers) l.next_positives.push_back(static_cast<int32_t>(c));
    }
    out.push_back(std::move(l));
  }
  return out;
}

}  // namespace lsa_indexer
