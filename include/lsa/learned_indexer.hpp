// A learned lightning indexer for models without one of their own: the projections from the
// model's residual stream to LightningScorer's key rows and queries (docs/indexer.md). Weights come
// from the trainer's indexer file; an engine loads them with its own GGUF reader and passes views.
//
//   key side, once per complete chunk:  k = key_proj * rms_norm(mean of the chunk's states)
//   query side, at a refresh, from the state of the token before it:
//     u = rms_norm(h), q = query_proj * u  ([num_heads][head_dim]), w = head_proj * u + head_bias
//   LightningScorer then scores sigmoid(sum_h w_h relu(q_h . k) + logit_offset).
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "lsa/error.hpp"
#include "lsa/key_encoding.hpp"
#include "lsa/scorer_config.hpp"
#include "lsa/status.hpp"

namespace lsa {

/// Shape of a learned indexer.
struct LearnedIndexerShape {
  int32_t feature_dim = 0;  ///< width of the states it reads (the model's d_model)
  int32_t num_heads = 8;    ///< H
  int32_t head_dim = 64;    ///< D
  float norm_eps = 1e-5f;   ///< RMS norm epsilon
};

/// The indexer's weights, row-major f32 views (they must outlive the LearnedIndexer).
struct LearnedIndexerWeights {
  std::span<const float> key_norm;    ///< [feature_dim]
  std::span<const float> key_proj;    ///< [head_dim][feature_dim]
  std::span<const float> query_norm;  ///< [feature_dim]
  std::span<const float> query_proj;  ///< [num_heads * head_dim][feature_dim]
  std::span<const float> head_proj;   ///< [num_heads][feature_dim]
  std::span<const float> head_bias;   ///< [num_heads]
  float logit_offset = 0.0f;          ///< added to every logit before the sigmoid
};

/// Computes key rows and queries for LightningScorer from the model's states.
class LearnedIndexer {
 public:
  /// Throws lsa::Error naming the field when a shape is not positive, a view has the wrong size,
  /// or a weight is not finite.
  LearnedIndexer(const LearnedIndexerShape& shape, const LearnedIndexerWeights& weights)
      : shape_(shape), w_(weights) {
    auto positive = [](int32_t v, const char* field) {
      if (v < 1) throw Error(std::string(field) + " must be >= 1 (got " + std::to_string(v) + ")");
    };
    positive(shape.feature_dim, "indexer.feature_dim");
    positive(shape.num_heads, "indexer.num_heads");
    positive(shape.head_dim, "indexer.head_dim");
    if (shape.feature_dim > kMaxFeatures || shape.head_dim > kMaxHeadDim) {
      throw Error("indexer.feature_dim must be <= " + std::to_string(kMaxFeatures) +
                  " and indexer.head_dim <= " + std::to_string(kMaxHeadDim) + " (got " +
                  std::to_string(shape.feature_dim) + " and " + std::to_string(shape.head_dim) +
                  ")");
    }
    if (!(shape.norm_eps > 0.0f) || !std::isfinite(shape.norm_eps)) {
      throw Error("indexer.norm_eps must be positive and finite (got " +
                  std::to_string(shape.norm_eps) + ")");
    }
    const int64_t d = shape.feature_dim, h = shape.num_heads, dh = shape.head_dim;
    check(weights.key_norm, d, "indexer.key_norm");
    check(weights.key_proj, dh * d, "indexer.key_proj");
    check(weights.query_norm, d, "indexer.query_norm");
    check(weights.query_proj, h * dh * d, "indexer.query_proj");
    check(weights.head_proj, h * d, "indexer.head_proj");
    check(weights.head_bias, h, "indexer.head_bias");
    if (!std::isfinite(weights.logit_offset)) throw Error("indexer.logit_offset must be finite");
  }

  /// The shape.
  const LearnedIndexerShape& shape() const noexcept { return shape_; }

  /// The LightningScorer configuration of this indexer's rows and queries (one indexer layer,
  /// one key shared by the heads, its logit offset), keys in `format`.
  ScorerConfig scorer_config(KeyFormat format) const noexcept {
    ScorerConfig c;
    c.num_layers = 1;
    c.num_heads = shape_.num_heads;
    c.num_key_heads = 1;
    c.head_dim = shape_.head_dim;
    c.key_format = format;
    c.ensemble = Ensemble::kMax;
    c.logit_offset = w_.logit_offset;
    return c;
  }

  /// The key of a chunk from its pooled state (the mean of its tokens' states): [head_dim]
  /// floats. kInvalidArgument on wrong sizes, kNonFiniteInput on NaN/Inf input.
  [[nodiscard]] Status key(std::span<const float> pooled, std::span<float> out) const noexcept {
    if (static_cast<int64_t>(pooled.size()) != shape_.feature_dim ||
        static_cast<int64_t>(out.size()) != shape_.head_dim) {
      return Status::kInvalidArgument;
    }
    float u[kMaxFeatures];
    if (!normalize(pooled, w_.key_norm, u)) return Status::kNonFiniteInput;
    project(w_.key_proj, u, shape_.head_dim, out.data());
    return Status::kOk;
  }

  /// The key of a chunk as one LightningScorer row in `format`
  /// (encoded_key_bytes(format, head_dim) bytes).
  [[nodiscard]] Status key_row(std::span<const float> pooled, KeyFormat format,
                               std::span<std::byte> out) const noexcept {
    float k[kMaxHeadDim];
    if (const Status s = key(pooled, std::span<float>(k, static_cast<size_t>(shape_.head_dim)));
        s != Status::kOk) {
      return s;
    }
    return encode_key_vector(std::span<const float>(k, static_cast<size_t>(shape_.head_dim)),
                             format, out);
  }

  /// The query ([num_heads][head_dim]) and head weights ([num_heads]) of a refresh from the state
  /// of the token before it. kInvalidArgument on wrong sizes, kNonFiniteInput on NaN/Inf input.
  [[nodiscard]] Status query(std::span<const float> state, std::span<float> q,
                             std::span<float> weights) const noexcept {
    const int64_t h = shape_.num_heads;
    if (static_cast<int64_t>(state.size()) != shape_.feature_dim ||
        static_cast<int64_t>(q.size()) != h * shape_.head_dim ||
        static_cast<int64_t>(weights.size()) != h) {
      return Status::kInvalidArgument;
    }
    float u[kMaxFeatures];
    if (!normalize(state, w_.query_norm, u)) return Status::kNonFiniteInput;
    project(w_.query_proj, u, h * shape_.head_dim, q.data());
    project(w_.head_proj, u, h, weights.data());
    for (int64_t i = 0; i < h; ++i) weights[static_cast<size_t>(i)] += w_.head_bias[static_cast<size_t>(i)];
    return Status::kOk;
  }

  /// Largest feature_dim the per-call buffers hold.
  static constexpr int32_t kMaxFeatures = 16384;
  /// Largest head_dim key_row encodes.
  static constexpr int32_t kMaxHeadDim = 1024;

 private:
  static void check(std::span<const float> v, int64_t want, const char* field) {
    if (static_cast<int64_t>(v.size()) != want) {
      throw Error(std::string(field) + " must hold " + std::to_string(want) + " floats (got " +
                  std::to_string(v.size()) + ")");
    }
    for (const float x : v) {
      if (!std::isfinite(x)) throw Error(std::string(field) + " must be finite (found NaN/Inf)");
    }
  }

  // u = x / rms(x) * weight, accumulated in double; false on a non-finite input.
  bool normalize(std::span<const float> x, std::span<const float> weight, float* u) const noexcept {
    double squares = 0.0;
    for (const float v : x) {
      if (!std::isfinite(v)) return false;
      squares += double{v} * v;
    }
    const auto inv = static_cast<float>(
        1.0 / std::sqrt(squares / static_cast<double>(x.size()) + double{shape_.norm_eps}));
    for (size_t i = 0; i < x.size(); ++i) u[i] = x[i] * inv * weight[i];
    return true;
  }

  // out[r] = sum_i m[r][i] * u[i] for r < rows, accumulated in double.
  void project(std::span<const float> m, const float* u, int64_t rows, float* out) const noexcept {
    const int64_t d = shape_.feature_dim;
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = m.data() + r * d;
      double sum = 0.0;
      for (int64_t i = 0; i < d; ++i) sum += double{row[i]} * u[i];
      out[r] = static_cast<float>(sum);
    }
  }

  LearnedIndexerShape shape_;
  LearnedIndexerWeights w_;
};

}  // namespace lsa
