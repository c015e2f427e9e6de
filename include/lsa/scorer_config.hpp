// Shapes and knobs of the memory indexer (the chunk scorer).
#pragma once

#include <cstdint>

namespace lsa {

/// Storage format of index keys handed to lsa.
enum class KeyFormat : uint8_t {
  kF32,      ///< head_dim floats per row
  kBF16,     ///< head_dim bfloat16 values per row
  kFp8E4M3,  ///< head_dim fp8 e4m3 bytes followed by one fp32 scale (132 B at D=128): k = fp8 * scale
};

/// How the per-layer scores of several indexer layers become one chunk score.
enum class Ensemble : uint8_t { kMax, kMean };

/// Shape of queries and keys the scorer reads; every scorer validates the fields it uses.
struct ScorerConfig {
  int32_t num_layers = 1;     ///< indexer layers ensembled per chunk
  int32_t num_heads = 64;     ///< query heads per layer
  int32_t num_key_heads = 1;  ///< key heads per layer; query head h reads key head h / (num_heads / num_key_heads)
  int32_t head_dim = 128;     ///< D
  KeyFormat key_format = KeyFormat::kFp8E4M3;  ///< format of the key rows given to append
  Ensemble ensemble = Ensemble::kMax;          ///< layer ensembling
  float logit_offset = 0.0f;  ///< lightning: score = sigmoid(logit + logit_offset)
  bool cosine = false;        ///< embedding: cosine similarity instead of dot product
};

}  // namespace lsa
