#include "indexer_file.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "error.hpp"
#include "gguf.hpp"
#include "model.hpp"
#include "quant.hpp"

namespace lsa_decode {
namespace {

constexpr const char* kArch = "lsa-indexer";

int32_t positive_key(const GgufFile& f, const std::string& key, int64_t hi = int64_t{1} << 20) {
  const int64_t v = f.get_int(std::string(kArch) + "." + key);
  if (v < 1 || v > hi) {
    throw DecodeError(
        fmt::format("{}: {}.{} must be in [1, {}] (got {})", f.name(), kArch, key, hi, v));
  }
  return static_cast<int32_t>(v);
}

// An F32 tensor of exactly `dims` (ggml order: the row length first).
std::vector<float> f32_tensor(const GgufFile& f, const std::string& name, std::vector<int64_t> dims) {
  const GgufTensor& t = f.tensor(name);
  if (t.type != GgmlType::kF32 || t.dims != dims) {
    throw DecodeError(fmt::format("{}: tensor '{}' must be F32 with dims {} (got {} with dims {})",
                                  f.name(), name, dims, ggml_type_name(static_cast<uint32_t>(t.type)), t.dims));
  }
  std::vector<float> out(static_cast<size_t>(t.num_elements()));
  dequantize(t.type, t.data, out.data(), t.num_elements());
  return out;
}

}  // namespace

std::shared_ptr<const IndexerFile> IndexerFile::load(const std::string& path) {
  return from(GgufFile::open(path));
}

std::shared_ptr<const IndexerFile> IndexerFile::from(const GgufFile& f) {
  if (const std::string arch = f.get_string("general.architecture"); arch != kArch) {
    throw DecodeError(fmt::format("{}: general.architecture is '{}', not an lsa indexer ('{}')",
                                  f.name(), arch, kArch));
  }
  if (const int64_t v = f.get_int(std::string(kArch) + ".version"); v != 1) {
    throw DecodeError(fmt::format("{}: indexer file version {} (this reader reads version 1)", f.name(), v));
  }
  std::shared_ptr<IndexerFile> out(new IndexerFile());
  out->name_ = f.name();
  lsa::LearnedIndexerShape shape;
  shape.feature_dim = positive_key(f, "feature_dim", lsa::LearnedIndexer::kMaxFeatures);
  shape.num_heads = positive_key(f, "head_count", 4096);
  shape.head_dim = positive_key(f, "head_dim", lsa::LearnedIndexer::kMaxHeadDim);
  shape.norm_eps = static_cast<float>(f.get_float(std::string(kArch) + ".norm_eps"));
  out->model_layers_ = positive_key(f, "model_layers");
  out->query_tap_ = static_cast<int32_t>(f.get_int(std::string(kArch) + ".query_tap"));
  out->key_tap_ = static_cast<int32_t>(f.get_int(std::string(kArch) + ".key_tap"));
  for (const int32_t tap : {out->query_tap_, out->key_tap_}) {
    if (tap < 0 || tap > out->model_layers_) {
      throw DecodeError(fmt::format("{}: tap layer {} is outside [0, {}] (the model's layers)",
                                    f.name(), tap, out->model_layers_));
    }
  }
  out->chunk_tokens_ = positive_key(f, "chunk_tokens", 4096);
  out->description_ = f.get_string(std::string(kArch) + ".description");
  const int64_t d = shape.feature_dim, h = shape.num_heads, dh = shape.head_dim;
  out->key_norm_ = f32_tensor(f, "key_norm", {d});
  out->key_proj_ = f32_tensor(f, "key_proj", {d, dh});
  out->query_norm_ = f32_tensor(f, "query_norm", {d});
  out->query_proj_ = f32_tensor(f, "query_proj", {d, h * dh});
  out->head_proj_ = f32_tensor(f, "head_proj", {d, h});
  out->head_bias_ = f32_tensor(f, "head_bias", {h});
  for (const GgufTensor& t : f.tensors()) {
    if (t.name.rfind("test.", 0) != 0) continue;
    out->extra_.emplace_back(t.name, f32_tensor(f, t.name, t.dims));
  }
  lsa::LearnedIndexerWeights w;
  w.key_norm = out->key_norm_;
  w.key_proj = out->key_proj_;
  w.query_norm = out->query_norm_;
  w.query_proj = out->query_proj_;
  w.head_proj = out->head_proj_;
  w.head_bias = out->head_bias_;
  w.logit_offset = static_cast<float>(f.get_float(std::string(kArch) + ".logit_offset"));
  try {
    out->indexer_ = std::make_unique<lsa::LearnedIndexer>(shape, w);
  } catch (const lsa::Error& e) {
    throw DecodeError(fmt::format("{}: {}", f.name(), e.what()));
  }
  return out;
}

void IndexerFile::check_fits(const ModelConfig& model, int32_t chunk_tokens) const {
  if (indexer_->shape().feature_dim != model.d_model || model_layers_ != model.num_layers) {
    throw DecodeError(fmt::format(
        "{}: the indexer reads states of width {} from a model of {} layers; this model has width "
        "{} and {} layers",
        name_, indexer_->shape().feature_dim, model_layers_, model.d_model, model.num_layers));
  }
  if (chunk_tokens != chunk_tokens_) {
    throw DecodeError(fmt::format("{}: the indexer was trained on chunks of {} tokens, not {}",
                                  name_, chunk_tokens_, chunk_tokens));
  }
}

const std::vector<float>& IndexerFile::extra(const std::string& tensor) const {
  static const std::vector<float> kNone;
  for (const auto& [name, values] : extra_) {
    if (name == tensor) return values;
  }
  return kNone;
}

}  // namespace lsa_decode
