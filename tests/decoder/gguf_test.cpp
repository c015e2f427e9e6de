// GGUF reader: round trips through an in-memory writer, every malformed case named in the error,
// a seeded mutation fuzz that may only ever throw DecodeError, and the real SmolLM2 file.
#include "gguf.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "error.hpp"
#include "quant.hpp"
#include "support/gguf_builder.hpp"

#ifndef LSA_MODELS_DIR
#define LSA_MODELS_DIR ""
#endif

namespace {

using namespace gguf_builder;
using lsa_decode::DecodeError;
using lsa_decode::GgmlType;
using lsa_decode::GgufFile;
using lsa_decode::GgufTensor;
using lsa_decode::GgufValue;
using Bytes = std::vector<std::byte>;

constexpr uint64_t kHuge = uint64_t{1} << 60;

const std::vector<float> kF32Values = {0.0f,  -0.0f, 1.0f,   -2.5f, 3.25e-20f, 1e30f,
                                       7.0f,  -8.0f, 0.125f, 9.0f,  10.0f,     11.0f,
                                       12.0f, 13.0f, 14.0f,  -15.0f};

// A valid file with every metadata type and a tensor of each supported type.
FileSpec sample_spec(uint32_t version = 3, uint64_t alignment = 32) {
  std::mt19937_64 rng(1234);
  FileSpec spec;
  spec.version = version;
  spec.alignment = alignment;
  spec.kvs.push_back(kv_str("general.architecture", "llama"));
  spec.kvs.push_back(kv_str("general.name", "tiny test"));
  if (alignment != 32) spec.kvs.push_back(kv_int("general.alignment", kU32, int64_t(alignment)));
  spec.kvs.push_back(kv_int("test.u8", kU8, 200));
  spec.kvs.push_back(kv_int("test.i8", kI8, -100));
  spec.kvs.push_back(kv_int("test.u16", kU16, 60000));
  spec.kvs.push_back(kv_int("test.i16", kI16, -30000));
  spec.kvs.push_back(kv_int("test.u32", kU32, 4000000000));
  spec.kvs.push_back(kv_int("test.i32", kI32, -2000000000));
  spec.kvs.push_back(kv_int("test.u64", kU64, (int64_t{1} << 40) + 7));
  spec.kvs.push_back(kv_int("test.i64", kI64, -(int64_t{1} << 50)));
  spec.kvs.push_back(kv("test.f32", kF32, f32_payload(1.5f)));
  spec.kvs.push_back(kv("test.f64", kF64, Sink().f64(-2.25e100)));
  spec.kvs.push_back(kv_int("test.bool", kBool, 1));
  spec.kvs.push_back(
      kv("test.strings", kArray,
         array_payload(kString, {str_payload("a"), str_payload("bc"), str_payload(""),
                                 str_payload("<|im_start|>"), str_payload("\xc4\xa0hello")})));
  spec.kvs.push_back(
      kv("test.ints", kArray,
         array_payload(kI32, {int_payload(kI32, 1), int_payload(kI32, -2), int_payload(kI32, 3)})));
  spec.kvs.push_back(
      kv("test.floats", kArray, array_payload(kF32, {f32_payload(0.5f), f32_payload(-1.25f)})));
  spec.kvs.push_back(kv("test.bools", kArray,
                        array_payload(kBool, {int_payload(kBool, 1), int_payload(kBool, 0)})));
  spec.kvs.push_back(kv("test.empty", kArray, array_payload(kU32, {})));
  spec.kvs.push_back(
      kv("test.nested", kArray,
         array_payload(kArray, {array_payload(kU16, {int_payload(kU16, 1), int_payload(kU16, 2)}),
                                array_payload(kU16, {int_payload(kU16, 3)})})));

  spec.tensors.push_back({"f32", 0, {8, 2}, f32_bytes(kF32Values), {}});
  spec.tensors.push_back({"f16", 1, {32}, random_tensor_data(GgmlType::kF16, 32, rng), {}});
  spec.tensors.push_back(
      {"blk.0.q4_0", 2, {64, 2}, random_tensor_data(GgmlType::kQ4_0, 128, rng), {}});
  spec.tensors.push_back(
      {"blk.0.q4_1", 3, {32, 1, 2}, random_tensor_data(GgmlType::kQ4_1, 64, rng), {}});
  spec.tensors.push_back({"q8_0", 8, {64}, random_tensor_data(GgmlType::kQ8_0, 64, rng), {}});
  return spec;
}

// A file with one tensor of the given shape and type and no metadata.
FileSpec one_tensor_spec(uint32_t type, std::vector<uint64_t> dims, size_t data_bytes = 64) {
  FileSpec spec;
  spec.tensors.push_back({"t", type, std::move(dims), Bytes(data_bytes), {}});
  return spec;
}

// The DecodeError message of parsing `bytes`; fails the test when parsing succeeds.
std::string parse_error(const Bytes& bytes) {
  try {
    GgufFile::parse(bytes, "bad.gguf");
  } catch (const DecodeError& e) {
    const std::string message = e.what();
    CHECK_THAT(message, Catch::StartsWith("bad.gguf: "));
    return message;
  }
  FAIL("parse accepted a malformed file");
  return {};
}
std::string parse_error(const FileSpec& spec) { return parse_error(build(spec).bytes); }

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const DecodeError& e) {
    return e.what();
  }
  FAIL("no DecodeError thrown");
  return {};
}

using Catch::Contains;

void check_sample(const GgufFile& f, uint32_t version, uint64_t alignment) {
  CHECK(f.version() == version);
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_string("general.name") == "tiny test");
  CHECK(f.get_int("test.u8") == 200);
  CHECK(f.get_int("test.i8") == -100);
  CHECK(f.get_int("test.u16") == 60000);
  CHECK(f.get_int("test.i16") == -30000);
  CHECK(f.get_int("test.u32") == 4000000000);
  CHECK(f.get_int("test.i32") == -2000000000);
  CHECK(f.get_int("test.u64") == (int64_t{1} << 40) + 7);
  CHECK(f.get_int("test.i64") == -(int64_t{1} << 50));
  CHECK(f.get_float("test.f32") == 1.5);
  CHECK(f.get_float("test.f64") == -2.25e100);
  CHECK(f.get_bool("test.bool"));
  CHECK(f.get_int("test.bool") == 1);
  CHECK(f.value("test.u16").gguf_type == kU16);
  CHECK(f.value("test.strings").gguf_type == kArray);
  CHECK(f.get_string_array("test.strings") ==
        std::vector<std::string>{"a", "bc", "", "<|im_start|>", "\xc4\xa0hello"});
  CHECK(f.get_int_array("test.ints") == std::vector<int64_t>{1, -2, 3});
  CHECK(f.get_float_array("test.floats") == std::vector<double>{0.5, -1.25});
  CHECK(f.get_int_array("test.bools") == std::vector<int64_t>{1, 0});
  CHECK(f.get_int_array("test.empty").empty());
  CHECK(f.get_string_array("test.empty").empty());
  const auto& nested = std::get<GgufValue::Array>(f.value("test.nested").value);
  REQUIRE(nested.size() == 2);
  CHECK(std::get<GgufValue::Array>(nested[0].value).size() == 2);
  CHECK(std::get<int64_t>(std::get<GgufValue::Array>(nested[1].value)[0].value) == 3);
  CHECK(f.has("test.u8"));
  CHECK_FALSE(f.has("test.missing"));

  const FileSpec spec = sample_spec(version, alignment);
  REQUIRE(f.tensors().size() == spec.tensors.size());
  for (size_t i = 0; i < spec.tensors.size(); ++i) {
    const GgufTensor& t = f.tensors()[i];
    const TensorSpec& want = spec.tensors[i];
    INFO(want.name);
    CHECK(t.name == want.name);
    CHECK(static_cast<uint32_t>(t.type) == want.type);
    CHECK(t.dims == std::vector<int64_t>(want.dims.begin(), want.dims.end()));
    CHECK(t.num_bytes == static_cast<int64_t>(want.data.size()));
    CHECK(t.offset % 32 == 0);
    REQUIRE(t.data != nullptr);
    CHECK(std::memcmp(t.data, want.data.data(), want.data.size()) == 0);
    CHECK(&f.tensor(want.name) == &t);
    CHECK(f.find_tensor(want.name) == &t);
  }
  CHECK(f.tensors()[0].num_elements() == 16);
  CHECK(f.tensors()[3].num_elements() == 64);
  std::vector<float> values(16);
  lsa_decode::dequantize(GgmlType::kF32, f.tensor("f32").data, values.data(), 16);
  for (size_t i = 0; i < values.size(); ++i) {
    CHECK(std::bit_cast<uint32_t>(values[i]) == std::bit_cast<uint32_t>(kF32Values[i]));
  }
  CHECK(f.find_tensor("nope") == nullptr);
}

}  // namespace

TEST_CASE("ggml_type_name names the format's types", "[decoder][gguf]") {
  CHECK(lsa_decode::ggml_type_name(0) == "F32");
  CHECK(lsa_decode::ggml_type_name(1) == "F16");
  CHECK(lsa_decode::ggml_type_name(2) == "Q4_0");
  CHECK(lsa_decode::ggml_type_name(3) == "Q4_1");
  CHECK(lsa_decode::ggml_type_name(8) == "Q8_0");
  CHECK(lsa_decode::ggml_type_name(12) == "Q4_K");
  CHECK(lsa_decode::ggml_type_name(14) == "Q6_K");
  CHECK(lsa_decode::ggml_type_name(30) == "BF16");
  CHECK(lsa_decode::ggml_type_name(77) == "type 77");
}

TEST_CASE("GGUF v2 and v3 files round-trip", "[decoder][gguf]") {
  for (uint32_t version : {2u, 3u}) {
    for (uint64_t alignment : {32u, 64u}) {
      INFO("version " << version << ", alignment " << alignment);
      const Built built = build(sample_spec(version, alignment));
      CHECK(built.data_start % alignment == 0);
      const GgufFile f = GgufFile::parse(built.bytes, "sample.gguf");
      CHECK(f.name() == "sample.gguf");
      check_sample(f, version, alignment);
      for (const GgufTensor& t : f.tensors()) {
        CHECK(t.data == built.bytes.data() + built.data_start + t.offset);
      }
    }
  }
}

TEST_CASE("GGUF metadata getters check types and name the key", "[decoder][gguf]") {
  const Built built = build(sample_spec());
  const GgufFile f = GgufFile::parse(built.bytes, "sample.gguf");
  CHECK_THAT(error_of([&] { f.get_int("nope"); }),
             Contains("sample.gguf: metadata key 'nope' is missing"));
  CHECK_THAT(error_of([&] { f.value("nope"); }), Contains("'nope' is missing"));
  CHECK_THAT(error_of([&] { f.get_string("test.u32"); }),
             Contains("metadata key 'test.u32' has type u32, expected a string"));
  CHECK_THAT(error_of([&] { f.get_int("general.name"); }),
             Contains("'general.name' has type string, expected an integer"));
  CHECK_THAT(error_of([&] { f.get_float("test.i32"); }), Contains("expected a float"));
  CHECK_THAT(error_of([&] { f.get_bool("test.u8"); }), Contains("expected a bool"));
  CHECK_THAT(error_of([&] { f.get_string_array("test.ints"); }),
             Contains("'test.ints' has an array of i32, expected an array of strings"));
  CHECK_THAT(error_of([&] { f.get_int_array("test.floats"); }),
             Contains("expected an array of integers"));
  CHECK_THAT(error_of([&] { f.get_float_array("test.strings"); }),
             Contains("expected an array of floats"));
  CHECK_THAT(error_of([&] { f.get_int_array("test.u8"); }), Contains("has type u8"));
  CHECK_THAT(error_of([&] { f.get_int_array("test.nested"); }), Contains("has an array of array"));
  CHECK_THAT(error_of([&] { f.tensor("nope.weight"); }),
             Contains("sample.gguf: tensor 'nope.weight' is missing"));
}

TEST_CASE("GgufFile::open maps a file and names the path on failure", "[decoder][gguf]") {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path();
  const fs::path path = dir / ("lsa_gguf_test_" + std::to_string(::getpid()) + ".gguf");
  const Built built = build(sample_spec());
  {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(built.bytes.data()),
              static_cast<std::streamsize>(built.bytes.size()));
  }
  {
    GgufFile opened = GgufFile::open(path.string());
    CHECK(opened.name() == path.string());
    GgufFile moved = std::move(opened);  // the mapping moves with it; data stays valid
    check_sample(moved, 3, 32);
    GgufFile assigned = GgufFile::parse(built.bytes);
    CHECK(assigned.name() == "<memory>");
    assigned = std::move(moved);
    check_sample(assigned, 3, 32);
  }
  { std::ofstream truncate(path, std::ios::binary | std::ios::trunc); }
  CHECK_THAT(error_of([&] { GgufFile::open(path.string()); }),
             Contains(path.string() + ": file too small to be GGUF (0 bytes)"));
  fs::remove(path);

  const std::string missing = (dir / "lsa_gguf_no_such_dir" / "model.gguf").string();
  CHECK_THAT(error_of([&] { GgufFile::open(missing); }),
             Contains(missing + ": cannot open: No such file or directory"));
  CHECK_THAT(error_of([&] { GgufFile::open(dir.string()); }), Contains("not a regular file"));
}

TEST_CASE("GGUF header errors are named", "[decoder][gguf]") {
  const Bytes good = build(sample_spec()).bytes;

  Bytes b = good;
  std::memcpy(b.data(), "GGML", 4);
  CHECK_THAT(parse_error(b), Contains("not a GGUF file: magic is 'GGML', expected 'GGUF'") &&
                                 Contains("(at byte 0)"));
  b = good;
  b[0] = std::byte{0x01};
  CHECK_THAT(parse_error(b), Contains("magic is '\\x01GUF'"));
  CHECK_THAT(parse_error(Bytes(good.begin(), good.begin() + 3)), Contains("too small"));
  CHECK_THAT(parse_error(Bytes{}), Contains("too small"));

  for (uint32_t version : {0u, 1u, 4u, 77u}) {
    b = good;
    put_u32(b, 4, version);
    CHECK_THAT(parse_error(b), Contains(fmt::format("GGUF version {} is not supported", version)));
  }
  b = good;
  put_u32(b, 4, 0x03000000u);
  CHECK_THAT(parse_error(b), Contains("big-endian"));

  CHECK_THAT(parse_error(Bytes(good.begin(), good.begin() + 12)),
             Contains("file truncated: tensor count needs 8 bytes but only 4 remain"));
  b = good;
  put_u64(b, 8, kHuge);
  CHECK_THAT(parse_error(b),
             Contains("tensor count 1152921504606846976 is impossible") && Contains("(at byte 8)"));
  b = good;
  put_u64(b, 16, kHuge);
  CHECK_THAT(parse_error(b),
             Contains("metadata key/value count 1152921504606846976 is impossible"));
  b = good;
  put_u64(b, 16, ~uint64_t{0});
  CHECK_THAT(parse_error(b), Contains("metadata key/value count"));
}

TEST_CASE("GGUF metadata errors are named", "[decoder][gguf]") {
  const auto with_kvs = [](std::vector<Kv> kvs) {
    FileSpec spec;
    spec.kvs = std::move(kvs);
    return spec;
  };
  // Key length: first field after the 24-byte header.
  Bytes b = build(with_kvs({kv_str("general.name", "x")})).bytes;
  put_u64(b, 24, kHuge);
  CHECK_THAT(parse_error(b),
             Contains("key of a metadata entry is 1152921504606846976 bytes long") &&
                 Contains("(at byte 24)"));
  put_u64(b, 24, 100);
  CHECK_THAT(parse_error(b), Contains("file truncated: key of a metadata entry needs 100 bytes"));
  CHECK_THAT(parse_error(with_kvs({kv_str("", "x")})),
             Contains("metadata entry 0 has an empty key"));

  // String value length: after header, key (8 + 1 bytes) and type (4 bytes).
  b = build(with_kvs({kv_str("k", "value")})).bytes;
  put_u64(b, 24 + 9 + 4, kHuge);
  CHECK_THAT(parse_error(b), Contains("file truncated: value of metadata key 'k' needs "
                                      "1152921504606846976 bytes") &&
                                 Contains("(at byte 37)"));

  // Array element count: after header, key, type and element type.
  b = build(with_kvs({kv("a", kArray, array_payload(kU32, {int_payload(kU32, 1)}))})).bytes;
  put_u64(b, 24 + 9 + 4 + 4, kHuge);
  CHECK_THAT(parse_error(b), Contains("array 'a' claims 1152921504606846976 elements of type u32"));
  put_u64(b, 24 + 9 + 4 + 4, 2);
  CHECK_THAT(parse_error(b), Contains("array 'a' claims 2 elements"));
  b = build(with_kvs({kv("s", kArray, array_payload(kString, {str_payload("x")}))})).bytes;
  put_u64(b, 24 + 9 + 4 + 4, ~uint64_t{0});
  CHECK_THAT(parse_error(b), Contains("array 's' claims 18446744073709551615 elements"));
  {
    // More elements than any real file has, all present: rejected by the element limit.
    Sink big;
    big.u32(kU8).u64((uint64_t{1} << 24) + 1);
    big.bytes.resize(big.bytes.size() + (size_t{1} << 24) + 1);
    CHECK_THAT(parse_error(with_kvs({kv("big", kArray, big)})),
               Contains("array 'big' claims 16777217 elements, more than the limit of 16777216"));
  }

  CHECK_THAT(parse_error(with_kvs({kv("k", 13, int_payload(kU32, 0))})),
             Contains("metadata key 'k' has unknown value type 13"));
  CHECK_THAT(parse_error(with_kvs({kv("k", 0xffffffffu, int_payload(kU32, 0))})),
             Contains("unknown value type 4294967295"));
  CHECK_THAT(parse_error(with_kvs({kv("k", kArray, array_payload(200, {}))})),
             Contains("array 'k' has unknown element type 200"));
  const Sink inner = array_payload(kU8, {int_payload(kU8, 1)});
  const Sink middle = array_payload(kArray, {inner});
  CHECK_THAT(parse_error(with_kvs({kv("deep", kArray, array_payload(kArray, {middle}))})),
             Contains("array 'deep' nests arrays deeper than one level"));
  CHECK_THAT(parse_error(with_kvs(
                 {kv_str("general.name", "a"), kv_int("x", kU8, 1), kv_str("general.name", "b")})),
             Contains("duplicate metadata key 'general.name'"));
  CHECK_THAT(parse_error(with_kvs({kv_int("flag", kBool, 2)})),
             Contains("metadata key 'flag' holds bool byte 2 (not 0 or 1)"));
  CHECK_THAT(
      parse_error(with_kvs({kv_int("big", kU64, -1)})),
      Contains("metadata key 'big' holds u64 value 18446744073709551615, which does not fit"));

  // Every strict prefix of a valid file is truncated somewhere.
  const Bytes good = build(sample_spec()).bytes;
  for (size_t n = 0; n < good.size(); ++n) {
    INFO("prefix of " << n << " bytes");
    CHECK_THROWS_AS(GgufFile::parse(Bytes(good.begin(), good.begin() + n)), DecodeError);
  }
}

TEST_CASE("GGUF alignment errors are named", "[decoder][gguf]") {
  for (int64_t alignment : {int64_t{0}, int64_t{48}, int64_t{-32}, int64_t{1} << 31}) {
    FileSpec spec = one_tensor_spec(0, {16});
    spec.kvs.push_back(kv_int("general.alignment", kI64, alignment));
    CHECK_THAT(parse_error(spec),
               Contains(fmt::format("general.alignment = {} is not a power of two", alignment)));
  }
  FileSpec spec = one_tensor_spec(0, {16});
  spec.kvs.push_back(kv_str("general.alignment", "32"));
  CHECK_THAT(parse_error(spec), Contains("general.alignment has type string, expected an integer"));

  // Alignment 1 and 8 are legal: data directly after the directory.
  for (uint64_t alignment : {1u, 8u}) {
    FileSpec ok = one_tensor_spec(0, {16});
    ok.alignment = alignment;
    ok.kvs.push_back(kv_int("general.alignment", kU32, static_cast<int64_t>(alignment)));
    const Built built = build(ok);
    const GgufFile f = GgufFile::parse(built.bytes);
    CHECK(f.tensors().at(0).data == built.bytes.data() + built.data_start);
  }
}

TEST_CASE("GGUF tensor directory errors are named", "[decoder][gguf]") {
  FileSpec spec = sample_spec();
  spec.tensors[3].name = spec.tensors[1].name;
  CHECK_THAT(parse_error(spec), Contains("duplicate tensor name 'f16'"));
  spec = one_tensor_spec(0, {16});
  spec.tensors[0].name = "";
  CHECK_THAT(parse_error(spec), Contains("tensor 0 has an empty name"));

  CHECK_THAT(parse_error(one_tensor_spec(0, {})),
             Contains("tensor 't' has 0 dimensions (lsa-decode reads 1 to 4)"));
  CHECK_THAT(parse_error(one_tensor_spec(0, {1, 1, 1, 1, 16})),
             Contains("tensor 't' has 5 dimensions"));
  CHECK_THAT(parse_error(one_tensor_spec(0, {16, 0})),
             Contains("tensor 't' has dimension 1 = 0 (must be positive)"));
  CHECK_THAT(parse_error(one_tensor_spec(0, {uint64_t{1} << 63})),
             Contains("tensor 't' has dimension 0 = 9223372036854775808"));
  CHECK_THAT(parse_error(one_tensor_spec(0, {uint64_t{1} << 32, uint64_t{1} << 32})),
             Contains("tensor 't' has too many elements: its element count overflows int64"));
  CHECK_THAT(parse_error(one_tensor_spec(0, {uint64_t{1} << 61, 2})),
             Contains("tensor 't' is too large: its byte size overflows int64"));
  CHECK_THAT(parse_error(one_tensor_spec(0, {uint64_t{1} << 40, uint64_t{1} << 10})),
             Contains("tensor 't' data") && Contains("extends past the end of the file"));

  spec = one_tensor_spec(14, {256, 4});
  spec.tensors[0].name = "blk.0.ffn_up.weight";
  CHECK_THAT(parse_error(spec), Contains("bad.gguf: tensor 'blk.0.ffn_up.weight' has type Q6_K, "
                                         "which lsa-decode does not support"));
  CHECK_THAT(parse_error(one_tensor_spec(30, {16})), Contains("has type BF16, which lsa-decode"));
  CHECK_THAT(parse_error(one_tensor_spec(77, {16})),
             Contains("tensor 't' has unknown type 77, which lsa-decode does not support"));
  CHECK_THAT(parse_error(one_tensor_spec(2, {33, 2})),
             Contains("tensor 't' (Q4_0) has dims[0] = 33, not a multiple of its block size 32"));
  CHECK_THAT(parse_error(one_tensor_spec(8, {16, 2})), Contains("(Q8_0) has dims[0] = 16"));
  CHECK_THAT(parse_error(one_tensor_spec(3, {48})), Contains("(Q4_1) has dims[0] = 48"));

  spec = one_tensor_spec(0, {16});
  spec.tensors[0].offset = 4;
  CHECK_THAT(parse_error(spec),
             Contains("tensor 't' has data offset 4, not a multiple of the alignment 32"));
  spec.tensors[0].offset = 1024;
  Built built = build(spec);
  built.bytes.resize(built.data_start + 64);
  CHECK_THAT(parse_error(built.bytes),
             Contains("tensor 't' data (64 bytes at offset 1024 of the data section") &&
                 Contains("extends past the end of the file"));
  built = build(sample_spec());
  put_u64(built.bytes, built.offset_fields[0], kHuge);
  CHECK_THAT(parse_error(built.bytes), Contains("tensor 'f32' data") && Contains("extends past"));
  put_u64(built.bytes, built.offset_fields[0], ~uint64_t{0} & ~uint64_t{31});
  CHECK_THAT(parse_error(built.bytes), Contains("extends past the end of the file"));
  built = build(sample_spec());
  built.bytes.pop_back();
  CHECK_THAT(parse_error(built.bytes), Contains("tensor 'q8_0' data") && Contains("extends past"));

  spec = sample_spec();
  spec.tensors[2].offset = 0;
  CHECK_THAT(parse_error(spec), Contains("tensors 'f32' and 'blk.0.q4_0' overlap"));
}

namespace {

// Reads everything a successfully parsed (possibly mutated) file offers, so the sanitizers see any
// pointer that escaped the file's bytes.
double exercise(const GgufFile& f) {
  double sum = 0;
  for (std::string_view key : {"general.name", "test.u8", "test.f32", "test.bool", "test.strings",
                               "test.ints", "test.floats", "test.nested", "general.alignment"}) {
    if (!f.has(key)) continue;
    const GgufValue& v = f.value(key);
    if (const auto* s = std::get_if<std::string>(&v.value)) sum += static_cast<double>(s->size());
    try {
      sum += static_cast<double>(f.get_int_array(key).size());
      sum += static_cast<double>(f.get_string_array(key).size());
    } catch (const DecodeError&) {
    }
  }
  std::vector<float> values;
  for (const GgufTensor& t : f.tensors()) {
    values.resize(static_cast<size_t>(t.num_elements()));
    lsa_decode::dequantize(t.type, t.data, values.data(), t.num_elements());
    for (float x : values) sum += std::isfinite(x) ? x : 0.0f;
  }
  return sum;
}

}  // namespace

TEST_CASE("GGUF parser only ever throws DecodeError on mutated files", "[decoder][gguf]") {
  const Built bases[] = {build(sample_spec(3, 32)), build(sample_spec(2, 64))};
  std::mt19937_64 rng(0x6767756675ull);
  const auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  constexpr uint64_t kHugeValues[] = {
      kHuge,       ~uint64_t{0}, uint64_t{1} << 63, uint64_t{1} << 32, (uint64_t{1} << 62) + 1,
      0xffffffffu, 65536};
  constexpr uint32_t kTypeIds[] = {0, 1, 2, 3, 5, 8, 9, 12, 13, 14, 77, 0xffffffffu};
  constexpr int kNumMutants = 24000;
  int num_parsed = 0;
  int num_rejected = 0;
  for (int iter = 0; iter < kNumMutants; ++iter) {
    const Built& base = bases[iter % 2];
    Bytes b = base.bytes;
    const int num_mutations = 1 + static_cast<int>(pick(3));
    for (int m = 0; m < num_mutations; ++m) {
      const size_t at = b.empty() ? 0 : pick(b.size());
      switch (pick(8)) {
        case 0:  // flip one bit
          if (!b.empty()) b[at] ^= static_cast<std::byte>(1u << pick(8));
          break;
        case 1:  // overwrite a byte
          if (!b.empty()) b[at] = static_cast<std::byte>(rng() & 0xff);
          break;
        case 2: {  // insert bytes
          const Bytes extra = random_bytes(1 + pick(16), rng);
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(at), extra.begin(), extra.end());
          break;
        }
        case 3: {  // delete bytes
          const size_t n = std::min(b.size() - at, 1 + pick(16));
          b.erase(b.begin() + static_cast<std::ptrdiff_t>(at),
                  b.begin() + static_cast<std::ptrdiff_t>(at + n));
          break;
        }
        case 4:  // truncate
          b.resize(pick(b.size() + 1));
          break;
        case 5: {  // a count, length or dim set to a huge value
          const size_t field = base.count_fields[pick(base.count_fields.size())];
          if (field + 8 <= b.size()) {
            const uint64_t v =
                pick(4) == 0 ? b.size() - field : kHugeValues[pick(std::size(kHugeValues))];
            put_u64(b, field, v);
          }
          break;
        }
        case 6: {  // a count, length or dim off by a little
          const size_t field = base.count_fields[pick(base.count_fields.size())];
          if (field < b.size()) {
            b[field] = static_cast<std::byte>(
                (std::to_integer<int>(b[field]) + 1 - static_cast<int>(pick(3))) & 0xff);
          }
          break;
        }
        case 7: {  // a type id, dimension count or offset field rewritten
          if (at + 4 <= b.size()) put_u32(b, at & ~size_t{3}, kTypeIds[pick(std::size(kTypeIds))]);
          if (pick(2) == 0) {
            const size_t field = base.offset_fields[pick(base.offset_fields.size())];
            if (field + 8 <= b.size()) put_u64(b, field, 32 * pick(64));
          }
          break;
        }
      }
    }
    // An exact-size heap copy, so AddressSanitizer catches a read one byte past the end.
    const size_t n = b.size();
    std::unique_ptr<std::byte[]> exact(new std::byte[n == 0 ? 1 : n]);
    if (n != 0) std::memcpy(exact.get(), b.data(), n);
    try {
      const GgufFile f = GgufFile::parse({exact.get(), n}, "mutant.gguf");
      exercise(f);
      ++num_parsed;
    } catch (const DecodeError& e) {
      REQUIRE(std::string_view(e.what()).starts_with("mutant.gguf: "));
      ++num_rejected;
    }
  }
  INFO(num_parsed << " parsed, " << num_rejected << " rejected");
  CHECK(num_parsed + num_rejected == kNumMutants);
  CHECK(num_parsed > 100);
  CHECK(num_rejected > kNumMutants / 2);
}

TEST_CASE("GGUF reader reads SmolLM2-135M-Instruct.Q4_1.gguf", "[decoder][gguf][model]") {
  const std::string path = std::string(LSA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) {
    WARN("model file " << path << " is missing (scripts/fetch_model.sh fetches it); skipped");
    return;
  }
  const GgufFile f = GgufFile::open(path);
  CHECK(f.version() == 3);
  CHECK(f.tensors().size() == 272);
  CHECK(f.get_string("general.architecture") == "llama");
  CHECK(f.get_int("llama.block_count") == 30);
  CHECK(f.get_int("llama.embedding_length") == 576);
  CHECK(f.get_string_array("tokenizer.ggml.tokens").size() == 49152);

  const GgufTensor& embd = f.tensor("token_embd.weight");
  CHECK(embd.type == GgmlType::kQ8_0);
  CHECK(embd.dims == std::vector<int64_t>{576, 49152});
  CHECK(embd.num_bytes == int64_t{49152} * 576 / 32 * 34);
  const GgufTensor& q = f.tensor("blk.0.attn_q.weight");
  CHECK(q.type == GgmlType::kQ4_1);
  CHECK(q.dims == std::vector<int64_t>{576, 576});

  // Expected values: the first row of each tensor as dequantized by the Python `gguf` package
  // (GGUFReader(path).tensors[...]; gguf.quants.dequantize(t.data, t.tensor_type)[0]), printed with
  // repr(); every value is exactly representable, so they must match bit for bit. The sums are of
  // the whole row in float64.
  struct Expected {
    const char* name;
    int64_t row_length;
    std::vector<std::pair<int, float>> values;
    double row_sum;
  };
  const Expected expected[] = {
      {"token_embd.weight",
       576,
       {{0, -0.10654449462890625f},
        {1, 0.032978057861328125f},
        {2, 0.048198699951171875f},
        {3, -0.022830963134765625f},
        {4, -0.06849288940429688f},
        {5, -0.04566192626953125f},
        {6, 0.020294189453125f},
        {7, -0.12176513671875f},
        {32, -0.09348678588867188f},
        {33, -0.15135955810546875f},
        {34, 0.011871337890625f},
        {35, 0.0f},
        {575, 0.029754638671875f}},
       -2.2541093826293945},
      {"blk.0.ffn_down.weight",
       1536,
       {{0, -0.330810546875f},
        {1, 0.3460693359375f},
        {2, 0.0753173828125f},
        {3, -0.4661865234375f},
        {4, -0.06005859375f},
        {5, -0.330810546875f},
        {6, 0.0753173828125f},
        {7, 0.210693359375f},
        {32, 0.0416259765625f},
        {33, 0.32763671875f},
        {34, -0.3397216796875f},
        {35, -0.244384765625f},
        {1535, 0.0640869140625f}},
       -17.089996337890625},
  };
  for (const Expected& e : expected) {
    INFO(e.name);
    const GgufTensor& t = f.tensor(e.name);
    REQUIRE(t.dims[0] == e.row_length);
    std::vector<float> row(static_cast<size_t>(e.row_length));
    lsa_decode::dequantize(t.type, t.data, row.data(), e.row_length);
    for (const auto& [i, v] : e.values) {
      INFO("element " << i);
      CHECK(row[static_cast<size_t>(i)] == v);
    }
    double sum = 0;
    for (float x : row) sum += x;
    CHECK(sum == Approx(e.row_sum).margin(1e-9));
  }
}
