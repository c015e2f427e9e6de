// Combining the per-layer scores of several indexer layers into one chunk score.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "lsa/scorer_config.hpp"

namespace lsa::detail {

/// Logistic function; saturates to exactly 0 or 1 for large |x| instead of producing NaN.
inline float sigmoid(float x) noexcept { return 1.0f / (1.0f + std::exp(-x)); }

/// Folds one layer's scores into the running chunk scores; the first layer initializes them.
inline void fold_layer(Ensemble ensemble, bool first_layer, const float* layer, float* acc,
                       int64_t n) noexcept {
  if (first_layer) {
    std::copy(layer, layer + n, acc);
  } else if (ensemble == Ensemble::kMax) {
    for (int64_t i = 0; i < n; ++i) acc[i] = std::max(acc[i], layer[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) acc[i] += layer[i];
  }
}

/// Turns folded scores into ensemble scores: kMean divides the sums by the layer count.
inline void finish_ensemble(Ensemble ensemble, int32_t num_layers, float* acc, int64_t n) noexcept {
  if (ensemble != Ensemble::kMean || num_layers == 1) return;
  const float layers = static_cast<float>(num_layers);
  for (int64_t i = 0; i < n; ++i) acc[i] /= layers;
}

}  // namespace lsa::detail
