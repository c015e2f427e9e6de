// Construction-time shape rules and per-call query checks shared by the scorers.
#pragma once

#include <cmath>
#include <cstdint>
#include <span>
#include <string>

#include "lsa/error.hpp"
#include "lsa/scorer_config.hpp"
#include "lsa/status.hpp"

namespace lsa::detail {

/// Throws lsa::Error "<field> must <rule> for the <scorer> scorer (got <value>)" unless `ok`.
template <class T>
void require(bool ok, const char* field, const char* rule, const char* scorer, T got) {
  if (!ok) {
    throw Error(std::string(field) + " must " + rule + " for the " + scorer + " scorer (got " +
                std::to_string(got) + ")");
  }
}

/// Rules every scorer shares: positive shapes, known enum values, key heads dividing query heads.
inline void check_common_config(const ScorerConfig& c, int32_t chunk_tokens, const char* scorer) {
  require(chunk_tokens >= 1, "chunk_tokens", "be >= 1", scorer, chunk_tokens);
  require(c.num_layers >= 1, "scorer.num_layers", "be >= 1", scorer, c.num_layers);
  require(c.num_heads >= 1, "scorer.num_heads", "be >= 1", scorer, c.num_heads);
  require(c.num_key_heads >= 1, "scorer.num_key_heads", "be >= 1", scorer, c.num_key_heads);
  require(c.num_heads % c.num_key_heads == 0, "scorer.num_key_heads",
          ("divide scorer.num_heads (" + std::to_string(c.num_heads) + ")").c_str(), scorer,
          c.num_key_heads);
  require(c.head_dim >= 1, "scorer.head_dim", "be >= 1", scorer, c.head_dim);
  const int format = static_cast<int>(c.key_format);
  require(format <= static_cast<int>(KeyFormat::kFp8E4M3), "scorer.key_format",
          "be kF32, kBF16 or kFp8E4M3", scorer, format);
  const int ensemble = static_cast<int>(c.ensemble);
  require(ensemble <= static_cast<int>(Ensemble::kMean), "scorer.ensemble", "be kMax or kMean",
          scorer, ensemble);
}

/// True when every value is finite.
inline bool all_finite(std::span<const float> values) noexcept {
  bool finite = true;
  for (const float v : values) finite &= std::isfinite(v);
  return finite;
}

/// kInvalidArgument unless `values` has `size` entries, kNonFiniteInput on NaN/Inf, else kOk.
inline Status check_floats(std::span<const float> values, int64_t size) noexcept {
  if (static_cast<int64_t>(values.size()) != size) return Status::kInvalidArgument;
  return all_finite(values) ? Status::kOk : Status::kNonFiniteInput;
}

}  // namespace lsa::detail
