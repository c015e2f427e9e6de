#include "npy_writer.hpp"

#include <fmt/format.h>

#include <bit>

#include "error.hpp"

namespace lsa_indexer {
namespace {

using lsa_decode::DecodeError;

static_assert(std::endian::native == std::endian::little, "the .npy files are written as '<'");

// The header is padded to a fixed size, so the final shape can be written over the first one.
constexpr size_t kHeaderBytes = 256;

const char* descr(NpyType type) {
  switch (type) {
    case NpyType::kF32:
      return "<f4";
    case NpyType::kI32:
      return "<i4";
    case NpyType::kI64:
      return "<i8";
    case NpyType::kU8:
      return "|u1";
  }
  return "?";
}

}  // namespace

NpyWriter::NpyWriter(std::string path, NpyType type, std::vector<int64_t> row_shape)
    : path_(std::move(path)), type_(type), row_shape_(std::move(row_shape)) {
  for (const int64_t d : row_shape_) {
    if (d < 1) throw DecodeError(fmt::format("{}: row dimensions must be >= 1", path_));
    row_elements_ *= d;
  }
  file_ = std::fopen(path_.c_str(), "wb");
  if (file_ == nullptr) throw DecodeError(fmt::format("cannot create '{}'", path_));
  const std::string h = header();
  if (std::fwrite(h.data(), 1, h.size(), file_) != h.size()) {
    throw DecodeError(fmt::format("cannot write '{}'", path_));
  }
}

NpyWriter::~NpyWriter() {
  if (file_ == nullptr) return;
  try {
    finish();
  } catch (const DecodeError&) {
  }
}

std::string NpyWriter::header() const {
  std::string shape = fmt::format("{}", rows_);
  for (const int64_t d : row_shape_) shape += fmt::format(", {}", d);
  if (row_shape_.empty()) shape += ",";
  std::string dict =
      fmt::format("{{'descr': '{}', 'fortran_order': False, 'shape': ({}), }}", descr(type_), shape);
  // Magic, version 1.0, little-endian u16 header length, then the dict padded with spaces and a
  // newline to kHeaderBytes in all.
  const size_t len = kHeaderBytes - 10;
  if (dict.size() + 1 > len) throw DecodeError(fmt::format("{}: shape too long", path_));
  dict.append(len - dict.size() - 1, ' ');
  dict += '\n';
  std::string h = "\x93NUMPY";
  h += '\x01';
  h += '\x00';
  h += static_cast<char>(len & 0xff);
  h += static_cast<char>(len >> 8);
  return h + dict;
}

void NpyWriter::write(const void* data, size_t element_bytes, size_t count, NpyType type) {
  if (file_ == nullptr) throw DecodeError(fmt::format("{}: appended after finish()", path_));
  if (type != type_ || count % static_cast<size_t>(row_elements_) != 0) {
    throw DecodeError(fmt::format("{}: appends whole rows of {} {} values (got {} {})", path_,
                                  row_elements_, descr(type_), count, descr(type)));
  }
  if (std::fwrite(data, element_bytes, count, file_) != count) {
    throw DecodeError(fmt::format("cannot write '{}'", path_));
  }
  rows_ += static_cast<int64_t>(count) / row_elements_;
}

void NpyWriter::append(std::span<const float> v) { write(v.data(), 4, v.size(), NpyType::kF32); }
void NpyWriter::append(std::span<const int32_t> v) { write(v.data(), 4, v.size(), NpyType::kI32); }
void NpyWriter::append(std::span<const int64_t> v) { write(v.data(), 8, v.size(), NpyType::kI64); }
void NpyWriter::append(std::span<const uint8_t> v) { write(v.data(), 1, v.size(), NpyType::kU8); }

void NpyWriter::finish() {
  if (file_ == nullptr) return;
  std::FILE* f = file_;
  file_ = nullptr;
  const std::string h = header();
  const bool ok = std::fseek(f, 0, SEEK_SET) == 0 && std::fwrite(h.data(), 1, h.size(), f) == h.size();
  if (std::fclose(f) != 0 || !ok) throw DecodeError(fmt::format("cannot write '{}'", path_));
}

}  // namespace lsa_indexer
