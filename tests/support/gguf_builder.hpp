// Writes GGUF files in memory for tests: every metadata type, tensors at chosen offsets, and the
// offsets of count fields (so a fuzz test can aim at them). Shared by the decoder's, the eval's
// and the indexer's tests (tiny models, indexer files).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "gguf.hpp"
#include "quant.hpp"

namespace gguf_builder {

using lsa_decode::GgmlType;
using Bytes = std::vector<std::byte>;

// GGUF metadata value type ids.
enum : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// Little-endian byte sink. It remembers where it wrote u64 counts and lengths, so the fuzz test
// can aim huge values at them.
class Sink {
 public:
  Sink& u8(uint8_t v) { return le(v, 1); }
  Sink& u16(uint16_t v) { return le(v, 2); }
  Sink& u32(uint32_t v) { return le(v, 4); }
  Sink& u64(uint64_t v) { return le(v, 8); }
  Sink& count(uint64_t v) {
    count_fields.push_back(bytes.size());
    return u64(v);
  }
  Sink& f32(float v) { return u32(std::bit_cast<uint32_t>(v)); }
  Sink& f64(double v) { return u64(std::bit_cast<uint64_t>(v)); }
  Sink& str(std::string_view s) {
    count(s.size());
    for (char c : s) u8(static_cast<uint8_t>(c));
    return *this;
  }
  Sink& append(const Sink& other) {
    for (size_t at : other.count_fields) count_fields.push_back(bytes.size() + at);
    bytes.insert(bytes.end(), other.bytes.begin(), other.bytes.end());
    return *this;
  }
  Sink& pad_to(uint64_t alignment) {
    while (bytes.size() % alignment != 0) u8(0);
    return *this;
  }

  Bytes bytes;
  std::vector<size_t> count_fields;

 private:
  Sink& le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<std::byte>((v >> (8 * i)) & 0xff));
    return *this;
  }
};

inline void put_u32(Bytes& b, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) b.at(at + i) = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}
inline void put_u64(Bytes& b, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) b.at(at + i) = static_cast<std::byte>((v >> (8 * i)) & 0xff);
}

// Value payloads (without the type id), as they appear inside arrays.
inline Sink int_payload(uint32_t type, int64_t v) {
  Sink s;
  switch (type) {
    case kU8:
    case kI8:
    case kBool:
      return s.u8(static_cast<uint8_t>(v));
    case kU16:
    case kI16:
      return s.u16(static_cast<uint16_t>(v));
    case kU32:
    case kI32:
      return s.u32(static_cast<uint32_t>(v));
    default:
      return s.u64(static_cast<uint64_t>(v));
  }
}
inline Sink str_payload(std::string_view v) { return Sink().str(v); }
inline Sink f32_payload(float v) { return Sink().f32(v); }
inline Sink array_payload(uint32_t element_type, const std::vector<Sink>& elements) {
  Sink s;
  s.u32(element_type).count(elements.size());
  for (const Sink& e : elements) s.append(e);
  return s;
}

// A metadata entry: its key and its encoded value (type id, then payload).
struct Kv {
  std::string key;
  Sink value;
};
inline Kv kv(std::string key, uint32_t type, const Sink& payload) {
  Sink v;
  v.u32(type).append(payload);
  return {std::move(key), std::move(v)};
}
inline Kv kv_int(std::string key, uint32_t type, int64_t v) {
  return kv(std::move(key), type, int_payload(type, v));
}
inline Kv kv_str(std::string key, std::string_view v) {
  return kv(std::move(key), kString, str_payload(v));
}

struct TensorSpec {
  std::string name;
  uint32_t type = 0;
  std::vector<uint64_t> dims;
  Bytes data;
  std::optional<uint64_t> offset;  // default: the next aligned offset after the previous tensor
};

struct FileSpec {
  uint32_t version = 3;
  uint64_t alignment = 32;  // used to lay the file out; add general.alignment to kvs yourself
  std::vector<Kv> kvs;
  std::vector<TensorSpec> tensors;
};

struct Built {
  Bytes bytes;
  std::vector<size_t> count_fields;   // offsets of the u64 counts, lengths and dims
  std::vector<size_t> offset_fields;  // offsets of each tensor's data-offset field
  size_t data_start = 0;
};

inline uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

inline Built build(const FileSpec& spec) {
  Sink s;
  s.u32(0x46554747u).u32(spec.version).count(spec.tensors.size()).count(spec.kvs.size());
  for (const Kv& e : spec.kvs) s.str(e.key).append(e.value);

  std::vector<uint64_t> offsets;
  uint64_t next = 0;
  for (const TensorSpec& t : spec.tensors) {
    offsets.push_back(t.offset.value_or(align_up(next, spec.alignment)));
    next = offsets.back() + t.data.size();
  }
  Built built;
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    const TensorSpec& t = spec.tensors[i];
    s.str(t.name).u32(static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) s.count(d);
    s.u32(t.type);
    built.offset_fields.push_back(s.bytes.size());
    s.u64(offsets[i]);
  }
  if (!spec.tensors.empty()) s.pad_to(spec.alignment);
  built.data_start = s.bytes.size();
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    const Bytes& data = spec.tensors[i].data;
    const size_t at = built.data_start + offsets[i];
    if (s.bytes.size() < at + data.size()) s.bytes.resize(at + data.size());
    std::copy(data.begin(), data.end(), s.bytes.begin() + static_cast<std::ptrdiff_t>(at));
  }
  built.bytes = std::move(s.bytes);
  built.count_fields = std::move(s.count_fields);
  return built;
}

inline Bytes random_bytes(size_t n, std::mt19937_64& rng) {
  Bytes b(n);
  for (auto& x : b) x = static_cast<std::byte>(rng() & 0xff);
  return b;
}

// Quantized data with finite scales (exponent below 31) so every element decodes to a number.
inline Bytes random_tensor_data(GgmlType type, int64_t n, std::mt19937_64& rng) {
  Bytes b = random_bytes(static_cast<size_t>(lsa_decode::row_bytes(type, n)), rng);
  const int64_t stride = lsa_decode::block_bytes(type);
  const int num_halves = type == GgmlType::kQ4_1 ? 2 : 1;
  if (type == GgmlType::kQ4_0 || type == GgmlType::kQ4_1 || type == GgmlType::kQ8_0) {
    for (size_t at = 0; at < b.size(); at += static_cast<size_t>(stride)) {
      for (int h = 0; h < num_halves; ++h) b[at + 2 * h + 1] &= std::byte{0xbb};
    }
  }
  return b;
}

inline Bytes f32_bytes(const std::vector<float>& values) {
  Sink s;
  for (float v : values) s.f32(v);
  return s.bytes;
}

}  // namespace gguf_builder
