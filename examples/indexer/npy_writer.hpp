// Streams one array into a NumPy .npy file (format version 1.0), rows appended as they come: the
// dump's arrays are read by numpy.load without custom code. Written here because the format is a
// short header plus raw little-endian data, and no Debian-packaged C++ library writes it.
#pragma once

#include <cstdint>
#include <cstdio>
#include <span>
#include <string>
#include <vector>

namespace lsa_indexer {

/// Element types of the arrays the dump writes.
enum class NpyType { kF32, kI32, kI64, kU8 };

/// An .npy file whose first dimension grows with every append; finish() writes the final shape.
class NpyWriter {
 public:
  /// Creates `path` for an array of `type` whose rows have shape `row_shape` (empty: scalars).
  /// Throws DecodeError when the file cannot be created.
  NpyWriter(std::string path, NpyType type, std::vector<int64_t> row_shape);
  ~NpyWriter();
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;

  /// Appends whole rows: the element count must be a multiple of the row size.
  void append(std::span<const float> values);
  void append(std::span<const int32_t> values);
  void append(std::span<const int64_t> values);
  void append(std::span<const uint8_t> values);

  /// Rows appended so far.
  int64_t rows() const { return rows_; }

  /// Writes the header with the final shape and closes the file; throws DecodeError on an I/O
  /// error. Called by the destructor when not called before (errors then go unreported).
  void finish();

 private:
  void write(const void* data, size_t element_bytes, size_t count, NpyType type);
  std::string header() const;

  std::string path_;
  NpyType type_;
  std::vector<int64_t> row_shape_;
  int64_t row_elements_ = 1;
  int64_t rows_ = 0;
  std::FILE* file_ = nullptr;
};

}  // namespace lsa_indexer
