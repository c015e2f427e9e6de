#include "dump_writer.hpp"

#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "error.hpp"

namespace lsa_indexer {
namespace {

using lsa_decode::DecodeError;

std::unique_ptr<NpyWriter> array(const std::string& dir, const char* name, NpyType type,
                                 std::vector<int64_t> row_shape = {}) {
  return std::make_unique<NpyWriter>(dir + "/" + name + ".npy", type, std::move(row_shape));
}

void write_whole(const std::string& dir, const char* name, std::span<const int64_t> values) {
  NpyWriter w(dir + "/" + name + ".npy", NpyType::kI64, {});
  w.append(values);
  w.finish();
}

}  // namespace

DumpWriter::DumpWriter(const std::string& dir, int32_t num_taps, int32_t d_model)
    : dir_(dir), feature_floats_(int64_t{num_taps} * d_model) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) throw DecodeError(fmt::format("cannot create the dump directory '{}': {}", dir, ec.message()));
  chunk_features_ = array(dir, "chunk_features", NpyType::kF32, {num_taps, d_model});
  query_features_ = array(dir, "query_features", NpyType::kF32, {num_taps, d_model});
  refresh_doc_ = array(dir, "refresh_doc", NpyType::kI32);
  refresh_position_ = array(dir, "refresh_position", NpyType::kI64);
  refresh_kind_ = array(dir, "refresh_kind", NpyType::kU8);
  future_mass_ = array(dir, "future_mass", NpyType::kF32);
  bound_scores_ = array(dir, "bound_scores", NpyType::kF32);
  window_layers_ = array(dir, "window_layers", NpyType::kU8);
  next_layers_ = array(dir, "next_layers", NpyType::kU8);
  positives_ = array(dir, "positives", NpyType::kI32);
  next_positives_ = array(dir, "next_positives", NpyType::kI32);
}

void DumpWriter::begin_doc(int64_t num_tokens, DocKind kind) {
  doc_tokens_.push_back(num_tokens);
  doc_kind_.push_back(static_cast<uint8_t>(kind));
  chunk_offsets_.push_back(chunk_offsets_.back());
}

void DumpWriter::add_chunks(std::span<const float> features) {
  if (doc_tokens_.empty()) throw DecodeError("dump: chunks before the first document");
  chunk_features_->append(features);
  chunk_offsets_.back() += static_cast<int64_t>(features.size()) / feature_floats_;
}

void DumpWriter::add_refresh(const RefreshLabels& labels, RefreshKind kind,
                             std::span<const float> query, std::span<const float> bound_scores) {
  if (doc_tokens_.empty()) throw DecodeError("dump: a refresh before the first document");
  const int64_t doc_chunks = chunk_offsets_.back() - chunk_offsets_[chunk_offsets_.size() - 2];
  if (labels.num_candidates > doc_chunks ||
      static_cast<int64_t>(bound_scores.size()) != labels.num_candidates ||
      static_cast<int64_t>(query.size()) != feature_floats_) {
    throw DecodeError(fmt::format(
        "dump: refresh at {} has {} candidates, {} bound scores and {} query floats for a "
        "document of {} chunks and features of {} floats",
        labels.position, labels.num_candidates, bound_scores.size(), query.size(), doc_chunks,
        feature_floats_));
  }
  const int32_t doc = static_cast<int32_t>(num_docs() - 1);
  refresh_doc_->append(std::span<const int32_t>(&doc, 1));
  refresh_position_->append(std::span<const int64_t>(&labels.position, 1));
  const auto k = static_cast<uint8_t>(kind);
  refresh_kind_->append(std::span<const uint8_t>(&k, 1));
  query_features_->append(query);
  future_mass_->append(labels.future_mass);
  bound_scores_->append(bound_scores);
  window_layers_->append(labels.window_layers);
  next_layers_->append(labels.next_layers);
  positives_->append(labels.positives);
  next_positives_->append(labels.next_positives);
  candidate_offsets_.push_back(candidate_offsets_.back() + labels.num_candidates);
  positive_offsets_.push_back(positive_offsets_.back() +
                              static_cast<int64_t>(labels.positives.size()));
  next_positive_offsets_.push_back(next_positive_offsets_.back() +
                                   static_cast<int64_t>(labels.next_positives.size()));
}

void DumpWriter::finish(const std::string& meta_json) {
  for (NpyWriter* w : {chunk_features_.get(), query_features_.get(), refresh_doc_.get(),
                       refresh_position_.get(), refresh_kind_.get(), future_mass_.get(),
                       bound_scores_.get(), window_layers_.get(), next_layers_.get(),
                       positives_.get(), next_positives_.get()}) {
    w->finish();
  }
  write_whole(dir_, "doc_tokens", doc_tokens_);
  write_whole(dir_, "doc_chunk_offsets", chunk_offsets_);
  write_whole(dir_, "candidate_offsets", candidate_offsets_);
  write_whole(dir_, "positive_offsets", positive_offsets_);
  write_whole(dir_, "next_positive_offsets", next_positive_offsets_);
  NpyWriter kinds(dir_ + "/doc_kind.npy", NpyType::kU8, {});
  kinds.append(doc_kind_);
  kinds.finish();
  std::ofstream meta(dir_ + "/meta.json", std::ios::binary);
  meta << meta_json;
  if (!meta) throw DecodeError(fmt::format("cannot write '{}/meta.json'", dir_));
}

}  // namespace lsa_indexer
