// A tiny Llama-family model with random F32 weights, built in memory as a GGUF file: fast enough
// for the sanitizer builds, shaped like the real one (grouped-query attention, RMS norms, rope).
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "gguf.hpp"
#include "model.hpp"
#include "support/gguf_builder.hpp"

namespace tiny_llama {

/// Shapes of the tiny model.
struct Shape {
  int32_t layers = 3;
  int32_t d_model = 32;
  int32_t heads = 4;
  int32_t kv_heads = 2;
  int32_t ffn = 48;
  int32_t vocab = 64;
  int32_t context = 4096;
};

/// The GGUF bytes of a tiny model with seeded random weights (uniform in [-scale, scale]).
inline gguf_builder::Bytes gguf_bytes(const Shape& s = {}, uint64_t seed = 1, float scale = 0.4f) {
  using namespace gguf_builder;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-scale, scale);
  auto tensor = [&](std::string name, std::vector<uint64_t> dims, float bias = 0.0f) {
    uint64_t n = 1;
    for (const uint64_t d : dims) n *= d;
    std::vector<float> v(n);
    for (float& x : v) x = bias + u(rng);
    return TensorSpec{std::move(name), 0 /* F32 */, std::move(dims), f32_bytes(v), std::nullopt};
  };
  const auto d = static_cast<uint64_t>(s.d_model);
  const uint64_t head_dim = d / static_cast<uint64_t>(s.heads);
  const uint64_t kv_dim = head_dim * static_cast<uint64_t>(s.kv_heads);
  FileSpec spec;
  spec.kvs = {kv_str("general.architecture", "llama"),
              kv_int("llama.block_count", kU32, s.layers),
              kv_int("llama.embedding_length", kU32, s.d_model),
              kv_int("llama.attention.head_count", kU32, s.heads),
              kv_int("llama.attention.head_count_kv", kU32, s.kv_heads),
              kv_int("llama.feed_forward_length", kU32, s.ffn),
              kv_int("llama.context_length", kU32, s.context),
              kv("llama.attention.layer_norm_rms_epsilon", kF32, f32_payload(1e-5f)),
              kv("llama.rope.freq_base", kF32, f32_payload(10000.0f))};
  spec.tensors.push_back(tensor("token_embd.weight", {d, static_cast<uint64_t>(s.vocab)}));
  spec.tensors.push_back(tensor("output_norm.weight", {d}, 1.0f));
  for (int32_t l = 0; l < s.layers; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    spec.tensors.push_back(tensor(p + "attn_norm.weight", {d}, 1.0f));
    spec.tensors.push_back(tensor(p + "attn_q.weight", {d, d}));
    spec.tensors.push_back(tensor(p + "attn_k.weight", {d, kv_dim}));
    spec.tensors.push_back(tensor(p + "attn_v.weight", {d, kv_dim}));
    spec.tensors.push_back(tensor(p + "attn_output.weight", {d, d}));
    spec.tensors.push_back(tensor(p + "ffn_norm.weight", {d}, 1.0f));
    spec.tensors.push_back(tensor(p + "ffn_gate.weight", {d, static_cast<uint64_t>(s.ffn)}));
    spec.tensors.push_back(tensor(p + "ffn_up.weight", {d, static_cast<uint64_t>(s.ffn)}));
    spec.tensors.push_back(tensor(p + "ffn_down.weight", {static_cast<uint64_t>(s.ffn), d}));
  }
  return build(spec).bytes;
}

/// A tiny model and the bytes it was read from.
struct Model {
  explicit Model(const Shape& s = {}, uint64_t seed = 1, int threads = 2)
      : bytes(gguf_bytes(s, seed)),
        file(lsa_decode::GgufFile::parse(bytes, "tiny-llama")),
        model(file, threads) {}
  gguf_builder::Bytes bytes;
  lsa_decode::GgufFile file;
  lsa_decode::LlamaModel model;
};

/// `n` seeded token ids of the tiny vocabulary.
inline std::vector<int32_t> tokens(int64_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> id(0, vocab - 1);
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int32_t& t : out) t = id(rng);
  return out;
}

}  // namespace tiny_llama
