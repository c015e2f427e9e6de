// Encoding index key vectors into the formats scorers read (KeyFormat), for engines that compute
// keys in float: f32 as is, bf16 rounded, fp8 e4m3 with a per-vector fp32 scale.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "lsa/detail/key_decode.hpp"
#include "lsa/fp8.hpp"
#include "lsa/scorer_config.hpp"
#include "lsa/status.hpp"

namespace lsa {

/// Bytes of one key vector of `head_dim` values in `format` (fp8: head_dim codes + fp32 scale).
constexpr int64_t encoded_key_bytes(KeyFormat format, int64_t head_dim) noexcept {
  return detail::key_vector_bytes(format, head_dim);
}

/// The fp8 scale of a vector whose largest magnitude is `amax`: amax / 448, so the largest value
/// lands on the largest finite code (1 for an all-zero vector).
inline float fp8_e4m3_scale(float amax) noexcept { return amax > 0.0f ? amax / kFp8E4M3Max : 1.0f; }

/// Writes `values` into `out` (encoded_key_bytes(format, values.size()) bytes) in `format`: f32
/// copied, bf16 rounded to nearest even, fp8 e4m3 as code(value / scale) followed by the scale
/// (fp8_e4m3_scale of the largest magnitude). kInvalidArgument when `out` has the wrong size,
/// kNonFiniteInput on NaN/Inf values (nothing written then).
[[nodiscard]] inline Status encode_key_vector(std::span<const float> values, KeyFormat format,
                                              std::span<std::byte> out) noexcept {
  const auto n = static_cast<int64_t>(values.size());
  if (static_cast<int64_t>(out.size()) != detail::key_vector_bytes(format, n) ||
      (format != KeyFormat::kF32 && format != KeyFormat::kBF16 && format != KeyFormat::kFp8E4M3)) {
    return Status::kInvalidArgument;
  }
  float amax = 0.0f;
  for (const float v : values) {
    if (!std::isfinite(v)) return Status::kNonFiniteInput;
    amax = std::max(amax, std::abs(v));
  }
  switch (format) {
    case KeyFormat::kF32:
      std::memcpy(out.data(), values.data(), values.size() * sizeof(float));
      break;
    case KeyFormat::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t bits = float_to_bf16(values[static_cast<size_t>(i)]);
        std::memcpy(out.data() + 2 * i, &bits, 2);
      }
      break;
    case KeyFormat::kFp8E4M3: {
      const float scale = fp8_e4m3_scale(amax);
      for (int64_t i = 0; i < n; ++i) {
        out[static_cast<size_t>(i)] =
            static_cast<std::byte>(encode_fp8_e4m3(values[static_cast<size_t>(i)] / scale));
      }
      std::memcpy(out.data() + n, &scale, sizeof(scale));
      break;
    }
  }
  return Status::kOk;
}

}  // namespace lsa
