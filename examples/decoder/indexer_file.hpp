// The learned indexer's file (GGUF, architecture "lsa-indexer"; docs/indexer.md): read, checked
// against the model it is used with, and held as an lsa::LearnedIndexer with its taps.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <lsa/learned_indexer.hpp>

namespace lsa_decode {

class GgufFile;
struct ModelConfig;

/// A loaded indexer: its weights, the projections over them, and where it reads the model.
class IndexerFile {
 public:
  /// Reads `path`; throws DecodeError naming the key, tensor or shape that is missing or wrong.
  static std::shared_ptr<const IndexerFile> load(const std::string& path);
  /// The same from a parsed GGUF file (its tensors are copied).
  static std::shared_ptr<const IndexerFile> from(const GgufFile& file);

  /// Throws DecodeError when the indexer was made for another model shape or chunk size.
  void check_fits(const ModelConfig& model, int32_t chunk_tokens) const;

  const lsa::LearnedIndexer& indexer() const { return *indexer_; }
  int32_t query_tap() const { return query_tap_; }  ///< layer whose entering state the query reads
  int32_t key_tap() const { return key_tap_; }      ///< layer whose entering state keys pool
  int32_t chunk_tokens() const { return chunk_tokens_; }
  int32_t model_layers() const { return model_layers_; }
  const std::string& description() const { return description_; }
  const std::string& name() const { return name_; }

  /// Further f32 tensors of the file by name (e.g. test vectors), empty when absent.
  const std::vector<float>& extra(const std::string& tensor) const;

 private:
  IndexerFile() = default;
  std::string name_, description_;
  std::vector<float> key_norm_, key_proj_, query_norm_, query_proj_, head_proj_, head_bias_;
  std::vector<std::pair<std::string, std::vector<float>>> extra_;
  int32_t query_tap_ = 0, key_tap_ = 0, chunk_tokens_ = 0, model_layers_ = 0;
  std::unique_ptr<lsa::LearnedIndexer> indexer_;
};

}  // namespace lsa_decode
