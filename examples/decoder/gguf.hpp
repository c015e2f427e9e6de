// GGUF (v2/v3) model files: header, metadata and tensor directory, validated as they are read.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace lsa_decode {

/// ggml tensor element types (the numbering of the GGUF format).
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ8_0 = 8,
};

/// Name of a ggml type id as the format spells it ("F32", "Q4_1", "Q6_K", ...; "type 77" when
/// unknown).
std::string ggml_type_name(uint32_t type);

/// One metadata value: an integer (any GGUF integer type, or bool), a float (f32/f64), a string,
/// or an array of one of those.
struct GgufValue {
  using Array = std::vector<GgufValue>;
  std::variant<int64_t, double, bool, std::string, Array> value;
  uint32_t gguf_type = 0;  ///< the GGUF value type id it was stored as
};

/// One tensor of the file. dims[0] is the fastest-varying dimension (ggml "ne").
struct GgufTensor {
  std::string name;
  GgmlType type = GgmlType::kF32;
  std::vector<int64_t> dims;
  uint64_t offset = 0;               ///< from the start of the data section
  const std::byte* data = nullptr;   ///< inside the file's bytes
  int64_t num_bytes = 0;

  /// Elements in the tensor.
  int64_t num_elements() const;
};

/// A parsed GGUF file. open() maps the file read-only; parse() reads bytes already in memory
/// (they must outlive the object). Both throw DecodeError naming what is wrong: bad magic,
/// unsupported version, counts or lengths beyond the file, unknown value types, duplicate keys or
/// tensor names, misaligned or out-of-bounds tensor data, tensor types other than F32, F16, Q4_0,
/// Q4_1, Q8_0 (named, e.g. "tensor 'blk.0.ffn_up.weight' has type Q6_K, which lsa-decode does not
/// support"), or dims that do not divide into whole quantization blocks.
class GgufFile {
 public:
  static GgufFile open(const std::string& path);
  static GgufFile parse(std::span<const std::byte> bytes, std::string name = "<memory>");

  GgufFile(GgufFile&&) noexcept;
  GgufFile& operator=(GgufFile&&) noexcept;
  ~GgufFile();

  uint32_t version() const { return version_; }
  const std::string& name() const { return name_; }

  /// Metadata lookups; the typed getters throw DecodeError naming the key when it is missing or
  /// of another type (get_int accepts every integer type and bool; get_float f32, f64).
  bool has(std::string_view key) const;
  const GgufValue& value(std::string_view key) const;
  int64_t get_int(std::string_view key) const;
  double get_float(std::string_view key) const;
  bool get_bool(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  std::vector<std::string> get_string_array(std::string_view key) const;
  std::vector<int64_t> get_int_array(std::string_view key) const;
  std::vector<double> get_float_array(std::string_view key) const;

  /// Tensors in file order; tensor() throws DecodeError naming a missing tensor.
  const std::vector<GgufTensor>& tensors() const { return tensors_; }
  const GgufTensor* find_tensor(std::string_view name) const;
  const GgufTensor& tensor(std::string_view name) const;

 private:
  GgufFile() = default;
  struct Mapping;
  std::unique_ptr<Mapping> mapping_;  // set by open()
  std::string name_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue, std::less<>> metadata_;
  std::vector<GgufTensor> tensors_;
};

}  // namespace lsa_decode
