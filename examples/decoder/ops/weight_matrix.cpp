#include "ops/weight_matrix.hpp"

#include <fmt/format.h>

#include <cstring>

#include "error.hpp"
#include "quant.hpp"

namespace lsa_decode {

WeightMatrix::WeightMatrix(std::string_view name, GgmlType type, int64_t rows, int64_t cols,
                           const std::byte* bytes, int64_t num_bytes)
    : type_(type), rows_(rows), cols_(cols) {
  switch (type) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ8_0:
      break;
    default:
      throw DecodeError(fmt::format(
          "weight '{}' has type {}; lsa-decode multiplies F32, F16, Q4_0, Q4_1 and Q8_0 weights",
          name, ggml_type_name(static_cast<uint32_t>(type))));
  }
  if (rows < 0 || cols < 0 || cols % block_elements(type) != 0) {
    throw DecodeError(
        fmt::format("weight '{}' ({}): {} x {} is not rows of whole {}-element blocks", name,
                    ggml_type_name(static_cast<uint32_t>(type)), rows, cols, block_elements(type)));
  }
  row_bytes_ = lsa_decode::row_bytes(type, cols);
  if (num_bytes != rows * row_bytes_) {
    throw DecodeError(fmt::format("weight '{}' ({}): {} bytes for {} x {}, expected {}", name,
                                  ggml_type_name(static_cast<uint32_t>(type)), num_bytes, rows,
                                  cols, rows * row_bytes_));
  }
  data_.resize(static_cast<size_t>(num_bytes));
  if (num_bytes > 0) std::memcpy(data_.data(), bytes, data_.size());
}

WeightMatrix WeightMatrix::from_tensor(const GgufTensor& t) {
  if (t.dims.size() != 2) {
    throw DecodeError(
        fmt::format("weight '{}' has {} dims; a matrix has 2", t.name, t.dims.size()));
  }
  return WeightMatrix(t.name, t.type, t.dims[1], t.dims[0], t.data, t.num_bytes);
}

void WeightMatrix::dequantize_row(int64_t r, float* out) const {
  dequantize(type_, row(r), out, cols_);
}

}  // namespace lsa_decode
