// A weight matrix kept in the type its GGUF file stores it in (F32, F16, Q4_0, Q4_1 or Q8_0):
// products read its blocks directly (ops/quant_matmul.hpp) instead of an fp32 copy.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "gguf.hpp"

namespace lsa_decode {

/// rows x cols weights, row-major; each row is cols / block_elements(type) blocks in the ggml
/// layout of `type` (quant.hpp).
class WeightMatrix {
 public:
  WeightMatrix() = default;
  /// Copies `rows` rows of `cols` elements stored as `type`; `bytes` must hold exactly that.
  /// Throws DecodeError naming `name` and the type when the type has no product here, or when
  /// cols is not a whole number of blocks.
  WeightMatrix(std::string_view name, GgmlType type, int64_t rows, int64_t cols,
               const std::byte* bytes, int64_t num_bytes);
  /// The tensor as a matrix of dims {cols, rows} (ggml order); see the constructor for errors.
  static WeightMatrix from_tensor(const GgufTensor& tensor);

  GgmlType type() const { return type_; }
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  bool empty() const { return rows_ == 0; }
  /// Bytes of one row.
  int64_t row_bytes() const { return row_bytes_; }
  /// The blocks of row r.
  const std::byte* row(int64_t r) const { return data_.data() + r * row_bytes_; }

  /// Writes row r as cols floats, exactly as quant.hpp's dequantize defines it.
  void dequantize_row(int64_t r, float* out) const;

 private:
  GgmlType type_ = GgmlType::kF32;
  int64_t rows_ = 0, cols_ = 0, row_bytes_ = 0;
  std::vector<std::byte> data_;
};

}  // namespace lsa_decode
