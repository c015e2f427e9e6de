#include "model.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "error.hpp"
#include "gguf.hpp"
#include "kernels.hpp"
#include "ops/quant_matmul.hpp"
#include "page_attention.hpp"
#include "quant.hpp"

namespace lsa_decode {
namespace {

int32_t positive_int(const GgufFile& f, const char* key) {
  const int64_t v = f.get_int(key);
  if (v < 1 || v > (int64_t{1} << 30)) {
    throw DecodeError(fmt::format("{}: metadata '{}' must be in [1, 2^30] (got {})", f.name(), key, v));
  }
  return static_cast<int32_t>(v);
}

// A tensor of dims {cols, rows} (ggml order), checked against the shape this model needs.
const GgufTensor& checked(const GgufFile& f, const std::string& name, int64_t cols, int64_t rows) {
  const GgufTensor& t = f.tensor(name);
  const std::vector<int64_t> want = rows == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{cols, rows};
  if (t.dims != want) {
    throw DecodeError(fmt::format("{}: tensor '{}' has dims {} but this model needs {}", f.name(), name,
                                  t.dims, want));
  }
  return t;
}

// A vector (norm weights) dequantized to floats.
std::vector<float> load_vector(const GgufFile& f, const std::string& name, int64_t size) {
  const GgufTensor& t = checked(f, name, size, 1);
  std::vector<float> out(static_cast<size_t>(size));
  dequantize(t.type, t.data, out.data(), size);
  return out;
}

// x[0, n) rounded to f16 values in place (what an f16 KV page will hold).
void round_to_f16(float* x, int64_t n) {
  std::vector<hwy::float16_t> h(static_cast<size_t>(n));
  to_f16(x, h.data(), n);
  from_f16(h.data(), x, n);
}

// A weight matrix of `rows` outputs by `cols` inputs, kept in its stored type.
WeightMatrix load_matrix(const GgufFile& f, const std::string& name, int64_t cols, int64_t rows) {
  return WeightMatrix::from_tensor(checked(f, name, cols, rows));
}

}  // namespace

LlamaModel::LlamaModel(const GgufFile& f, int num_threads) : pool_(num_threads) {
  const std::string arch = f.get_string("general.architecture");
  if (arch != "llama") {
    throw DecodeError(fmt::format("{}: general.architecture is '{}'; lsa-decode runs 'llama' models",
                                  f.name(), arch));
  }
  ModelConfig& c = config_;
  c.num_layers = positive_int(f, "llama.block_count");
  c.d_model = positive_int(f, "llama.embedding_length");
  c.num_heads = positive_int(f, "llama.attention.head_count");
  c.num_kv_heads = f.has("llama.attention.head_count_kv")
                       ? positive_int(f, "llama.attention.head_count_kv")
                       : c.num_heads;
  c.ffn_dim = positive_int(f, "llama.feed_forward_length");
  c.context_length = positive_int(f, "llama.context_length");
  if (f.has("llama.rope.freq_base")) c.rope_theta = static_cast<float>(f.get_float("llama.rope.freq_base"));
  c.rms_eps = static_cast<float>(f.get_float("llama.attention.layer_norm_rms_epsilon"));
  if (c.d_model % c.num_heads != 0 || c.num_heads % c.num_kv_heads != 0) {
    throw DecodeError(fmt::format(
        "{}: llama.embedding_length {} must divide into llama.attention.head_count {} heads, and "
        "those into head_count_kv {} groups",
        f.name(), c.d_model, c.num_heads, c.num_kv_heads));
  }
  c.head_dim = c.d_model / c.num_heads;
  if (c.head_dim % 2 != 0) throw DecodeError(fmt::format("{}: head dim {} must be even", f.name(), c.head_dim));
  if (f.has("llama.rope.dimension_count") && f.get_int("llama.rope.dimension_count") != c.head_dim) {
    throw DecodeError(fmt::format("{}: llama.rope.dimension_count {} != head dim {} (partial rope is "
                                  "not supported)",
                                  f.name(), f.get_int("llama.rope.dimension_count"), c.head_dim));
  }
  if (!(c.rms_eps > 0.0f) || !(c.rope_theta > 0.0f)) {
    throw DecodeError(fmt::format("{}: rope theta and rms epsilon must be positive", f.name()));
  }
  const GgufTensor& embd = f.tensor("token_embd.weight");
  if (embd.dims.size() != 2 || embd.dims[0] != c.d_model) {
    throw DecodeError(fmt::format("{}: tensor 'token_embd.weight' has dims {}, expected {{{}, vocab}}",
                                  f.name(), embd.dims, c.d_model));
  }
  c.vocab_size = static_cast<int32_t>(embd.dims[1]);
  token_embd_ = load_matrix(f, "token_embd.weight", c.d_model, c.vocab_size);
  if (f.find_tensor("output.weight") != nullptr)
    output_ = load_matrix(f, "output.weight", c.d_model, c.vocab_size);
  output_norm_ = load_vector(f, "output_norm.weight", c.d_model);
  const int64_t q_dim = int64_t{c.num_heads} * c.head_dim, kv_dim = int64_t{c.num_kv_heads} * c.head_dim;
  layers_.resize(static_cast<size_t>(c.num_layers));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const std::string p = fmt::format("blk.{}.", l);
    Layer& L = layers_[l];
    L.attn_norm = load_vector(f, p + "attn_norm.weight", c.d_model);
    L.wq = load_matrix(f, p + "attn_q.weight", c.d_model, q_dim);
    L.wk = load_matrix(f, p + "attn_k.weight", c.d_model, kv_dim);
    L.wv = load_matrix(f, p + "attn_v.weight", c.d_model, kv_dim);
    L.wo = load_matrix(f, p + "attn_output.weight", q_dim, c.d_model);
    L.ffn_norm = load_vector(f, p + "ffn_norm.weight", c.d_model);
    L.w_gate = load_matrix(f, p + "ffn_gate.weight", c.d_model, c.ffn_dim);
    L.w_up = load_matrix(f, p + "ffn_up.weight", c.d_model, c.ffn_dim);
    L.w_down = load_matrix(f, p + "ffn_down.weight", c.ffn_dim, c.d_model);
  }
}

void LlamaModel::output_logits(const float* x, float* logits) const {
  std::vector<float> h(static_cast<size_t>(config_.d_model));
  rms_norm(x, output_norm_.data(), config_.d_model, config_.rms_eps, h.data());
  matmul(pool_, h.data(), 1, output(), logits);
}

void LlamaModel::check_taps(const ForwardTaps* taps) const {
  if (taps == nullptr) return;
  for (const int32_t l : taps->hidden_layers) {
    if (l < 0 || l > config_.num_layers) {
      throw DecodeError(fmt::format("hidden-state tap at layer {} is outside [0, {}]", l,
                                    config_.num_layers));
    }
  }
  if (taps->chunk_tokens < 0 || (taps->chunk_tokens > 0 && !taps->on_chunk_mass)) {
    throw DecodeError(fmt::format("chunk attention taps need chunk tokens >= 1 and a callback (got {})",
                                  taps->chunk_tokens));
  }
}

void LlamaModel::prefill(std::span<const int32_t> tokens, std::vector<TokenState>& states,
                         std::span<const int64_t> logit_positions, const LogitsFn& on_logits,
                         const std::function<void(int, int)>& progress, const ForwardTaps* taps,
                         KvType kv) const {
  const ModelConfig& c = config_;
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t d = c.d_model, hd = c.head_dim, H = c.num_heads, KV = c.num_kv_heads;
  const int64_t q_dim = H * hd, kv_dim = KV * hd, group = H / KV;
  for (int32_t t : tokens) {
    if (t < 0 || t >= c.vocab_size) throw DecodeError(fmt::format("token id {} is outside the vocabulary", t));
  }
  for (int64_t p : logit_positions) {
    if (p < 0 || p >= n) throw DecodeError(fmt::format("logit position {} is outside [0, {})", p, n));
  }
  check_taps(taps);
  const std::span<const int32_t> hidden_layers =
      taps != nullptr ? std::span<const int32_t>(taps->hidden_layers) : std::span<const int32_t>{};
  const int64_t num_taps = static_cast<int64_t>(hidden_layers.size());
  // Hidden states entering block l (l == num_layers: after the last block) into every tap of l.
  auto tap_hidden = [&](const float* xs, int32_t l) {
    for (int64_t t = 0; t < num_taps; ++t) {
      if (hidden_layers[t] != l) continue;
      for (int64_t i = 0; i < n; ++i) std::copy_n(xs + i * d, d, states[i].hidden.data() + t * d);
    }
  };
  // Chunk attention: per query head of the current KV group, [n][num_chunks] mass (each head is
  // written by one job at a time), summed into `chunk_mass` after the layer.
  const int64_t chunk_tokens = taps != nullptr ? taps->chunk_tokens : 0;
  const int64_t num_chunks = chunk_tokens > 0 ? (n + chunk_tokens - 1) / chunk_tokens : 0;
  std::vector<float> head_chunk_mass(static_cast<size_t>(H / KV * n * num_chunks));
  std::vector<float> chunk_mass(static_cast<size_t>(n * num_chunks));
  std::vector<float> x(n * d), h(n * d), q(n * q_dim), k(n * kv_dim), v(n * kv_dim), att(n * q_dim);
  std::vector<float> tmp(n * d), gate(n * c.ffn_dim), up(n * c.ffn_dim);
  for (int64_t i = 0; i < n; ++i) {
    token_embd_.dequantize_row(tokens[i], x.data() + i * d);
  }
  states.resize(static_cast<size_t>(n));
  for (TokenState& s : states) {
    s.kv.resize(c.num_layers * c.kv_floats());
    s.key.resize(c.num_layers * kv_dim);
    s.query.resize(c.num_layers * q_dim);
    s.hidden.resize(static_cast<size_t>(num_taps * d));
  }
  constexpr int64_t kBlock = 64;  // queries per attention block
  std::vector<float> kt(hd * n), vh(n * hd);  // one KV head: K transposed, V
  std::vector<hwy::float16_t> kt16(kv == KvType::kF16 ? kt.size() : 0), vh16(kt16.size());
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[l];
    tap_hidden(x.data(), l);
    std::fill(chunk_mass.begin(), chunk_mass.end(), 0.0f);
    for (int64_t i = 0; i < n; ++i) rms_norm(x.data() + i * d, L.attn_norm.data(), d, c.rms_eps, h.data() + i * d);
    matmul(pool_, h.data(), n, L.wq, q.data());
    matmul(pool_, h.data(), n, L.wk, k.data());
    matmul(pool_, h.data(), n, L.wv, v.data());
    for (int64_t i = 0; i < n; ++i) {
      rope(q.data() + i * q_dim, H, hd, i, c.rope_theta);
      rope(k.data() + i * kv_dim, KV, hd, i, c.rope_theta);
      TokenState& s = states[i];
      std::copy_n(k.data() + i * kv_dim, kv_dim, s.kv.data() + l * c.kv_floats());
      std::copy_n(v.data() + i * kv_dim, kv_dim, s.kv.data() + l * c.kv_floats() + kv_dim);
      std::copy_n(k.data() + i * kv_dim, kv_dim, s.key.data() + l * kv_dim);
      std::copy_n(q.data() + i * q_dim, q_dim, s.query.data() + l * q_dim);
    }
    // Causal attention in blocks of queries: S = Q K^T, softmax, O = P V; the (head, block) pairs
    // are spread over the pool's threads.
    for (int64_t g = 0; g < KV; ++g) {
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t e = 0; e < hd; ++e) kt[e * n + i] = k[i * kv_dim + g * hd + e];
        std::copy_n(v.data() + i * kv_dim + g * hd, hd, vh.data() + i * hd);
      }
      const int64_t blocks = (n + kBlock - 1) / kBlock;
      // The head's K and V as attention reads them: T = float or hwy::float16_t.
      auto attend = [&]<class T>(const T* kt_g, const T* vh_g) {
        pool_.parallel_for(group * blocks, 1, [&](int64_t begin, int64_t end) {
          std::vector<float> scores(static_cast<size_t>(kBlock * n));
          for (int64_t job = begin; job < end; ++job) {
            const int64_t hh = g * group + job / blocks, i0 = job % blocks * kBlock;
            const int64_t rows = std::min(kBlock, n - i0), keys = i0 + rows;
            const float* qb = q.data() + i0 * q_dim + hh * hd;
            matmul_nn(qb, rows, hd, q_dim, kt_g, keys, n, scores.data(), keys);
            for (int64_t r = 0; r < rows; ++r) {
              float* row = scores.data() + r * keys;
              const int64_t valid = i0 + r + 1;
              for (int64_t j = 0; j < valid; ++j) row[j] *= scale;
              softmax(row, valid);
              std::fill(row + valid, row + keys, 0.0f);
              if (num_chunks > 0) {
                float* out = head_chunk_mass.data() + ((job / blocks) * n + i0 + r) * num_chunks;
                for (int64_t j = 0; j < valid; ++j) out[j / chunk_tokens] += row[j];
              }
            }
            matmul_nn(scores.data(), rows, keys, keys, vh_g, hd, hd,
                      att.data() + i0 * q_dim + hh * hd, q_dim);
          }
        });
      };
      if (kv == KvType::kF16) {
        to_f16(kt.data(), kt16.data(), hd * n);
        to_f16(vh.data(), vh16.data(), n * hd);
        attend(kt16.data(), vh16.data());
      } else {
        attend(kt.data(), vh.data());
      }
      for (size_t at = 0; at < head_chunk_mass.size(); at += chunk_mass.size()) {
        for (size_t i = 0; i < chunk_mass.size(); ++i) chunk_mass[i] += head_chunk_mass[at + i];
      }
      std::fill(head_chunk_mass.begin(), head_chunk_mass.end(), 0.0f);
    }
    if (num_chunks > 0) taps->on_chunk_mass(l, chunk_mass, num_chunks);
    matmul(pool_, att.data(), n, L.wo, tmp.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += tmp[i];
    for (int64_t i = 0; i < n; ++i) rms_norm(x.data() + i * d, L.ffn_norm.data(), d, c.rms_eps, h.data() + i * d);
    matmul(pool_, h.data(), n, L.w_gate, gate.data());
    matmul(pool_, h.data(), n, L.w_up, up.data());
    silu_mul(gate.data(), up.data(), n * c.ffn_dim);
    matmul(pool_, gate.data(), n, L.w_down, tmp.data());
    for (int64_t i = 0; i < n * d; ++i) x[i] += tmp[i];
    if (progress) progress(l + 1, c.num_layers);
  }
  tap_hidden(x.data(), c.num_layers);
  // Output projection in blocks of positions: one matrix product per block.
  constexpr int64_t kLogitRows = 32;
  std::vector<float> normed(kLogitRows * d), block(kLogitRows * c.vocab_size);
  for (size_t j0 = 0; j0 < logit_positions.size(); j0 += kLogitRows) {
    const auto rows = static_cast<int64_t>(std::min<size_t>(kLogitRows, logit_positions.size() - j0));
    for (int64_t r = 0; r < rows; ++r) {
      rms_norm(x.data() + logit_positions[j0 + r] * d, output_norm_.data(), d, c.rms_eps, normed.data() + r * d);
    }
    matmul(pool_, normed.data(), rows, output(), block.data());
    for (int64_t r = 0; r < rows; ++r) {
      on_logits(logit_positions[j0 + r], std::span<const float>(block.data() + r * c.vocab_size, c.vocab_size));
    }
  }
}

void LlamaModel::decode(int32_t token, int64_t pos, std::span<const KvPage> pages,
                        int64_t page_tokens, KvType kv, TokenState& state,
                        std::vector<float>& logits, AttentionMass* mass,
                        const ForwardTaps* taps) const {
  const ModelConfig& c = config_;
  if (token < 0 || token >= c.vocab_size) throw DecodeError(fmt::format("token id {} is outside the vocabulary", token));
  const int64_t d = c.d_model, hd = c.head_dim, H = c.num_heads, KV = c.num_kv_heads;
  const int64_t q_dim = H * hd, kv_dim = KV * hd, kvf = c.kv_floats();
  std::vector<float> x(d), h(d), att(q_dim), tmp(d), gate(c.ffn_dim), up(c.ffn_dim);
  token_embd_.dequantize_row(token, x.data());
  state.kv.resize(c.num_layers * kvf);
  state.key.resize(c.num_layers * kv_dim);
  state.query.resize(c.num_layers * q_dim);
  check_taps(taps);
  const std::span<const int32_t> hidden_layers =
      taps != nullptr ? std::span<const int32_t>(taps->hidden_layers) : std::span<const int32_t>{};
  state.hidden.resize(hidden_layers.size() * static_cast<size_t>(d));
  auto tap_hidden = [&](int32_t l) {
    for (size_t t = 0; t < hidden_layers.size(); ++t) {
      if (hidden_layers[t] == l) std::copy_n(x.data(), d, state.hidden.data() + t * d);
    }
  };
  const auto num_pages = static_cast<int64_t>(pages.size());
  const PageRuns runs = cut_into_runs(pages, attention_run_tokens_);
  PageAttentionScratch scratch;
  std::vector<float> layer_mass(mass != nullptr ? static_cast<size_t>(num_pages + 1) : 0);
  if (mass != nullptr) {
    mass->num_layers = c.num_layers;
    mass->num_pages = static_cast<int32_t>(num_pages);
    mass->pages.assign(static_cast<size_t>(c.num_layers * num_pages), 0.0f);
    mass->self.assign(static_cast<size_t>(c.num_layers), 0.0f);
  }
  for (int32_t l = 0; l < c.num_layers; ++l) {
    const Layer& L = layers_[l];
    tap_hidden(l);
    float* q = state.query.data() + l * q_dim;
    float* k = state.kv.data() + l * kvf;
    float* v = k + kv_dim;
    rms_norm(x.data(), L.attn_norm.data(), d, c.rms_eps, h.data());
    matmul(pool_, h.data(), 1, L.wq, q);
    matmul(pool_, h.data(), 1, L.wk, k);
    matmul(pool_, h.data(), 1, L.wv, v);
    rope(q, H, hd, pos, c.rope_theta);
    rope(k, KV, hd, pos, c.rope_theta);
    std::copy_n(k, kv_dim, state.key.data() + l * kv_dim);
    if (kv == KvType::kF16) round_to_f16(k, 2 * kv_dim);  // K then V, as the page will hold them
    const PageAttentionShape shape{H, KV, hd, kvf, l * page_tokens * kvf};
    float* layer_mass_out = mass != nullptr ? layer_mass.data() : nullptr;
    std::fill(layer_mass.begin(), layer_mass.end(), 0.0f);
    if (kv == KvType::kF16) {
      attend_pages<hwy::float16_t>(pool_, pages, runs, shape, q, k, att.data(), layer_mass_out, scratch);
    } else {
      attend_pages<float>(pool_, pages, runs, shape, q, k, att.data(), layer_mass_out, scratch);
    }
    if (mass != nullptr) {
      std::copy_n(layer_mass.data(), num_pages, mass->pages.data() + l * num_pages);
      mass->self[l] = layer_mass[static_cast<size_t>(num_pages)];
    }
    matmul(pool_, att.data(), 1, L.wo, tmp.data());
    for (int64_t i = 0; i < d; ++i) x[i] += tmp[i];
    rms_norm(x.data(), L.ffn_norm.data(), d, c.rms_eps, h.data());
    matmul(pool_, h.data(), 1, L.w_gate, gate.data());
    matmul(pool_, h.data(), 1, L.w_up, up.data());
    silu_mul(gate.data(), up.data(), c.ffn_dim);
    matmul(pool_, gate.data(), 1, L.w_down, tmp.data());
    for (int64_t i = 0; i < d; ++i) x[i] += tmp[i];
  }
  tap_hidden(c.num_layers);
  logits.resize(static_cast<size_t>(c.vocab_size));
  output_logits(x.data(), logits.data());
}

}  // namespace lsa_decode
