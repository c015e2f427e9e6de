// A Llama-family transformer (SmolLM2 and the like) read from GGUF, weight matrices kept in their
// stored types (ops/weight_matrix.hpp), with a dense prefill and a decode step whose attention
// reads only the KV pages it is given.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "ops/weight_matrix.hpp"
#include "thread_pool.hpp"

namespace lsa_decode {

class GgufFile;

/// Shapes and constants from the GGUF metadata (llama.*).
struct ModelConfig {
  int32_t num_layers = 0;
  int32_t d_model = 0;
  int32_t num_heads = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
  int32_t ffn_dim = 0;
  int32_t vocab_size = 0;
  int64_t context_length = 0;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;

  /// Floats of one token's K and V in one layer: [K: kv_heads][head_dim] then [V: ...].
  int64_t kv_floats() const { return int64_t{2} * num_kv_heads * head_dim; }
};

/// How K and V are stored for attention: fp32 (the default and the reference) or IEEE f16, half
/// the bytes, rounded to nearest even when written and widened to fp32 when read.
enum class KvType { kF32, kF16 };

/// Bytes of one stored K or V element.
constexpr int64_t kv_element_bytes(KvType type) { return type == KvType::kF16 ? 2 : 4; }

/// One KV page as the decode step reads it: `base` is [num_layers][page_tokens][kv_floats]
/// elements of the KvType, and the first `num_tokens` tokens are valid.
struct KvPage {
  const std::byte* base = nullptr;
  int32_t num_tokens = 0;
};

/// Where one decode step's attention went, summed over the query heads of each layer: per layer,
/// the probability mass on each page given to LlamaModel::decode (in that order) and on the token
/// itself. Each layer's entries add up to num_heads.
struct AttentionMass {
  int32_t num_layers = 0;
  int32_t num_pages = 0;
  std::vector<float> pages;  ///< [num_layers][num_pages]
  std::vector<float> self;   ///< [num_layers]

  /// Mass of layer `layer` on the i-th page given to decode.
  float page(int32_t layer, int32_t i) const {
    return pages[static_cast<size_t>(layer) * static_cast<size_t>(num_pages) + static_cast<size_t>(i)];
  }
};

/// What one token's forward pass produces besides its logits.
struct TokenState {
  std::vector<float> kv;     ///< [num_layers][kv_floats]: K (after rope) and V of this token
  std::vector<float> key;    ///< [num_layers][kv_heads][head_dim]: K, the index key lsa summarizes
  std::vector<float> query;  ///< [num_layers][num_heads][head_dim]: Q after rope, the index query
  std::vector<float> hidden;  ///< [taps][d_model]: ForwardTaps::hidden_layers (empty without)
};

/// Optional extra outputs of a forward pass: the features a learned indexer reads and, in a
/// prefill, the attention its training labels come from.
struct ForwardTaps {
  /// TokenState::hidden gets, per listed layer l (0 <= l <= num_layers, in list order), the
  /// residual stream entering block l; l = num_layers is the stream after the last block.
  std::vector<int32_t> hidden_layers;
  /// Prefill only: when > 0, on_chunk_mass is called after each layer's attention with
  /// mass[i * num_chunks + c], the attention of position i on the keys of chunk c (chunk_tokens
  /// tokens each, the last one partial) summed over the layer's heads; chunks past i hold 0.
  int32_t chunk_tokens = 0;
  std::function<void(int32_t layer, std::span<const float> mass, int64_t num_chunks)>
      on_chunk_mass;
};

class LlamaModel {
 public:
  /// Reads and checks the architecture ("llama"), the shapes and every tensor; throws DecodeError
  /// naming the key or tensor that is missing or of the wrong shape.
  LlamaModel(const GgufFile& file, int num_threads);

  const ModelConfig& config() const { return config_; }
  ThreadPool& pool() const { return pool_; }

  /// Called with a position and the logits of the token after it (vocab_size floats).
  using LogitsFn = std::function<void(int64_t, std::span<const float>)>;

  /// Dense causal forward of tokens [0, n) from an empty context. Fills states[i] for every token
  /// and calls `on_logits` for each position in `logit_positions`, in order (computed in blocks,
  /// so asking for every position costs a matrix product, not one per token).
  /// `progress(layers_done, num_layers)` is called after each layer when given. Attention reads K
  /// and V as `kv` stores them (states keep them in fp32, unrounded).
  void prefill(std::span<const int32_t> tokens, std::vector<TokenState>& states,
               std::span<const int64_t> logit_positions, const LogitsFn& on_logits,
               const std::function<void(int, int)>& progress = {},
               const ForwardTaps* taps = nullptr, KvType kv = KvType::kF32) const;

  /// One token at position `pos` attending to the tokens of `pages` (in the order given, stored
  /// as `kv`) and to itself. Fills `state` and `logits` (vocab_size floats), `mass` when it is
  /// given, and state.hidden for the taps' hidden_layers. With f16 KV, state.kv holds this
  /// token's K and V already rounded to f16, as its own attention read them.
  void decode(int32_t token, int64_t pos, std::span<const KvPage> pages, int64_t page_tokens,
              KvType kv, TokenState& state, std::vector<float>& logits,
              AttentionMass* mass = nullptr, const ForwardTaps* taps = nullptr) const;

  /// A decode step's attention (page_attention.hpp) runs in parallel over runs of pages, one run
  /// per `tokens` of context, at most kMaxRuns (default 512: a context under 1,024 tokens is one
  /// run, as is any context with tokens <= 0). The runs depend only on the context, never on the
  /// thread count, so the logits do not either; a different run length changes the summation
  /// order.
  void set_attention_run_tokens(int64_t tokens) { attention_run_tokens_ = tokens; }

 private:
  struct Layer {
    std::vector<float> attn_norm, ffn_norm;
    WeightMatrix wq, wk, wv, wo, w_gate, w_up, w_down;
  };
  void output_logits(const float* x, float* logits) const;
  // Throws DecodeError on a tap layer outside [0, num_layers] or a negative chunk size.
  void check_taps(const ForwardTaps* taps) const;
  // The output projection: output.weight, or token_embd when the file ties them.
  const WeightMatrix& output() const { return output_.empty() ? token_embd_ : output_; }

  ModelConfig config_;
  WeightMatrix token_embd_;  // [vocab][d_model], also the output projection when tied
  WeightMatrix output_;      // [vocab][d_model] when the file has output.weight, else empty
  std::vector<float> output_norm_;
  std::vector<Layer> layers_;
  mutable ThreadPool pool_;
  int64_t attention_run_tokens_ = 512;
};

}  // namespace lsa_decode
