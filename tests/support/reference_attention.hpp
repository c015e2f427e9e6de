// Attention recomputed in double precision from the queries and keys a forward pass recorded
// (TokenState::query / key, after rope): the reference the attention taps are checked against.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "model.hpp"

namespace reference_attention {

/// Layer `layer`'s causal attention of every position on every chunk of `chunk_tokens` tokens,
/// summed over the query heads: out[i * num_chunks + c].
inline std::vector<double> chunk_mass(const lsa_decode::ModelConfig& m,
                                      const std::vector<lsa_decode::TokenState>& states,
                                      int32_t layer, int64_t chunk_tokens) {
  const auto n = static_cast<int64_t>(states.size());
  const int64_t chunks = (n + chunk_tokens - 1) / chunk_tokens;
  const int64_t hd = m.head_dim, q_dim = int64_t{m.num_heads} * hd,
                kv_dim = int64_t{m.num_kv_heads} * hd, group = m.num_heads / m.num_kv_heads;
  std::vector<double> out(static_cast<size_t>(n * chunks), 0.0), p;
  for (int64_t i = 0; i < n; ++i) {
    const float* q = states[static_cast<size_t>(i)].query.data() + layer * q_dim;
    for (int64_t h = 0; h < m.num_heads; ++h) {
      p.assign(static_cast<size_t>(i + 1), 0.0);
      double top = -INFINITY;
      for (int64_t j = 0; j <= i; ++j) {
        const float* k = states[static_cast<size_t>(j)].key.data() + layer * kv_dim + h / group * hd;
        double dot = 0.0;
        for (int64_t e = 0; e < hd; ++e) dot += double{q[h * hd + e]} * k[e];
        p[static_cast<size_t>(j)] = dot / std::sqrt(static_cast<double>(hd));
        top = std::max(top, p[static_cast<size_t>(j)]);
      }
      double sum = 0.0;
      for (double& x : p) sum += (x = std::exp(x - top));
      for (int64_t j = 0; j <= i; ++j) {
        out[static_cast<size_t>(i * chunks + j / chunk_tokens)] += p[static_cast<size_t>(j)] / sum;
      }
    }
  }
  return out;
}

}  // namespace reference_attention
