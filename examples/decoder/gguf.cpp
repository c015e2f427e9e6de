// GGUF v2/v3 reader: every count, length, type and offset is checked against the bytes that are
// really there before anything is allocated or dereferenced.
#include "gguf.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <limits>
#include <numeric>
#include <set>
#include <system_error>
#include <utility>

#include "error.hpp"
#include "quant.hpp"

namespace lsa_decode {

namespace {

// GGUF metadata value type ids.
enum ValueType : uint32_t {
  kValueU8 = 0,
  kValueI8 = 1,
  kValueU16 = 2,
  kValueI16 = 3,
  kValueU32 = 4,
  kValueI32 = 5,
  kValueF32 = 6,
  kValueBool = 7,
  kValueString = 8,
  kValueArray = 9,
  kValueU64 = 10,
  kValueI64 = 11,
  kValueF64 = 12,
};

constexpr uint32_t kNumValueTypes = 13;
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMaxAlignment = uint64_t{1} << 30;
constexpr uint64_t kMaxKeyBytes = 65535;  // the GGUF specification's limit on key length
constexpr uint32_t kMaxDims = 4;
// Far above any real vocabulary; a bigger array is a corrupt count, not a model.
constexpr uint64_t kMaxArrayElements = uint64_t{1} << 24;
// Smallest encodings, used to reject counts the remaining bytes cannot hold before reserving.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;                  // key length, 1-byte key, type, u8
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // 1-byte name, one dim

const char* value_type_name(uint32_t type) {
  static constexpr const char* kNames[kNumValueTypes] = {"u8",  "i8",  "u16",  "i16",    "u32",
                                                         "i32", "f32", "bool", "string", "array",
                                                         "u64", "i64", "f64"};
  return type < kNumValueTypes ? kNames[type] : "unknown";
}

// Bytes the smallest value of `type` takes (an empty string, an empty array).
uint64_t min_value_bytes(uint32_t type) {
  switch (type) {
    case kValueU8:
    case kValueI8:
    case kValueBool:
      return 1;
    case kValueU16:
    case kValueI16:
      return 2;
    case kValueU32:
    case kValueI32:
    case kValueF32:
      return 4;
    case kValueString:
    case kValueU64:
    case kValueI64:
    case kValueF64:
      return 8;
    case kValueArray:
      return 4 + 8;
    default:
      return 1;
  }
}

bool is_supported(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
    case GgmlType::kF32:
    case GgmlType::kF16:
    case GgmlType::kQ4_0:
    case GgmlType::kQ4_1:
    case GgmlType::kQ8_0:
      return true;
  }
  return false;
}

// What a metadata value holds, for "has type X, expected Y" messages.
std::string describe(const GgufValue& v) {
  if (const auto* array = std::get_if<GgufValue::Array>(&v.value)) {
    if (array->empty()) return "an empty array";
    return fmt::format("an array of {}", value_type_name(array->front().gguf_type));
  }
  return fmt::format("type {}", value_type_name(v.gguf_type));
}

// Bounds-checked little-endian cursor over the file's bytes; every failure names the file and
// the byte offset. A field is named by `what` and, when not empty, the `subject` it belongs to
// ("value of metadata key" 'general.name'); the two are only joined when something fails.
class Reader {
 public:
  Reader(std::span<const std::byte> bytes, const std::string& name) : bytes_(bytes), name_(name) {}

  size_t pos() const { return pos_; }
  size_t remaining() const { return bytes_.size() - pos_; }

  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw DecodeError(fmt::format("{}: {} (at byte {})", name_, what, at));
  }

  // Fails unless `n` more bytes are there.
  void need(uint64_t n, std::string_view what, std::string_view subject) const {
    if (n > remaining()) {
      fail(pos_, fmt::format("file truncated: {} needs {} bytes but only {} remain",
                             field(what, subject), n, remaining()));
    }
  }

  uint64_t read_uint(int num_bytes, std::string_view what, std::string_view subject) {
    need(static_cast<uint64_t>(num_bytes), what, subject);
    uint64_t v = 0;
    for (int i = 0; i < num_bytes; ++i) {
      v |= static_cast<uint64_t>(std::to_integer<uint8_t>(bytes_[pos_ + i])) << (8 * i);
    }
    pos_ += static_cast<size_t>(num_bytes);
    return v;
  }
  uint8_t u8(std::string_view what, std::string_view subject = {}) {
    return static_cast<uint8_t>(read_uint(1, what, subject));
  }
  uint16_t u16(std::string_view what, std::string_view subject = {}) {
    return static_cast<uint16_t>(read_uint(2, what, subject));
  }
  uint32_t u32(std::string_view what, std::string_view subject = {}) {
    return static_cast<uint32_t>(read_uint(4, what, subject));
  }
  uint64_t u64(std::string_view what, std::string_view subject = {}) {
    return read_uint(8, what, subject);
  }

  // A GGUF string: u64 length, then that many bytes.
  std::string string(uint64_t max_bytes, std::string_view what, std::string_view subject = {}) {
    const size_t at = pos_;
    const uint64_t length = u64(what, subject);
    if (length > max_bytes) {
      fail(at, fmt::format("{} is {} bytes long, more than the limit of {}", field(what, subject),
                           length, max_bytes));
    }
    if (length > remaining()) {  // reported at the length field, which is what is wrong
      fail(at, fmt::format("file truncated: {} needs {} bytes but only {} remain",
                           field(what, subject), length, remaining()));
    }
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), static_cast<size_t>(length));
    pos_ += static_cast<size_t>(length);
    return s;
  }

 private:
  static std::string field(std::string_view what, std::string_view subject) {
    return subject.empty() ? std::string(what) : fmt::format("{} '{}'", what, subject);
  }

  std::span<const std::byte> bytes_;
  const std::string& name_;
  size_t pos_ = 0;
};

// Reads one metadata value of GGUF type `type`; `depth` is 1 inside an array.
GgufValue read_value(Reader& in, uint32_t type, const std::string& key, int depth) {
  constexpr std::string_view kWhat = "value of metadata key";
  GgufValue v;
  v.gguf_type = type;
  switch (type) {
    case kValueU8:
      v.value = static_cast<int64_t>(in.u8(kWhat, key));
      break;
    case kValueI8:
      v.value = static_cast<int64_t>(static_cast<int8_t>(in.u8(kWhat, key)));
      break;
    case kValueU16:
      v.value = static_cast<int64_t>(in.u16(kWhat, key));
      break;
    case kValueI16:
      v.value = static_cast<int64_t>(static_cast<int16_t>(in.u16(kWhat, key)));
      break;
    case kValueU32:
      v.value = static_cast<int64_t>(in.u32(kWhat, key));
      break;
    case kValueI32:
      v.value = static_cast<int64_t>(static_cast<int32_t>(in.u32(kWhat, key)));
      break;
    case kValueU64: {
      const size_t at = in.pos();
      const uint64_t u = in.u64(kWhat, key);
      if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        in.fail(at, fmt::format("metadata key '{}' holds u64 value {}, which does not fit in int64",
                                key, u));
      }
      v.value = static_cast<int64_t>(u);
      break;
    }
    case kValueI64:
      v.value = static_cast<int64_t>(in.u64(kWhat, key));
      break;
    case kValueF32:
      v.value = static_cast<double>(std::bit_cast<float>(in.u32(kWhat, key)));
      break;
    case kValueF64:
      v.value = std::bit_cast<double>(in.u64(kWhat, key));
      break;
    case kValueBool: {
      const size_t at = in.pos();
      const uint8_t b = in.u8(kWhat, key);
      if (b > 1) {
        in.fail(at, fmt::format("metadata key '{}' holds bool byte {} (not 0 or 1)", key, b));
      }
      v.value = b == 1;
      break;
    }
    case kValueString:
      v.value = in.string(std::numeric_limits<uint64_t>::max(), kWhat, key);
      break;
    case kValueArray: {
      const size_t type_at = in.pos();
      const uint32_t element_type = in.u32("element type of array", key);
      if (element_type >= kNumValueTypes) {
        in.fail(type_at, fmt::format("array '{}' has unknown element type {}", key, element_type));
      }
      if (element_type == kValueArray && depth >= 1) {
        in.fail(type_at,
                fmt::format("array '{}' nests arrays deeper than one level, which lsa-decode does "
                            "not support",
                            key));
      }
      const size_t count_at = in.pos();
      const uint64_t count = in.u64("element count of array", key);
      const uint64_t min_bytes = min_value_bytes(element_type);
      if (count > in.remaining() / min_bytes) {
        in.fail(count_at,
                fmt::format("file truncated: array '{}' claims {} elements of type {} (each at "
                            "least {} bytes) but only {} bytes remain",
                            key, count, value_type_name(element_type), min_bytes, in.remaining()));
      }
      if (count > kMaxArrayElements) {
        in.fail(count_at, fmt::format("array '{}' claims {} elements, more than the limit of {}",
                                      key, count, kMaxArrayElements));
      }
      GgufValue::Array elements;
      elements.reserve(static_cast<size_t>(count));
      for (uint64_t i = 0; i < count; ++i) {
        elements.push_back(read_value(in, element_type, key, depth + 1));
      }
      v.value = std::move(elements);
      break;
    }
    default:
      in.fail(in.pos() - 4, fmt::format("metadata key '{}' has unknown value type {}", key, type));
  }
  return v;
}

uint64_t align_up(uint64_t x, uint64_t alignment) { return (x + alignment - 1) & ~(alignment - 1); }

}  // namespace

std::string ggml_type_name(uint32_t type) {
  static constexpr const char* kNames[] = {
      "F32",   "F16",        "Q4_0",       "Q4_1",       "Q4_2",     "Q4_3",     "Q5_0",
      "Q5_1",  "Q8_0",       "Q8_1",       "Q2_K",       "Q3_K",     "Q4_K",     "Q5_K",
      "Q6_K",  "Q8_K",       "IQ2_XXS",    "IQ2_XS",     "IQ3_XXS",  "IQ1_S",    "IQ4_NL",
      "IQ3_S", "IQ2_S",      "IQ4_XS",     "I8",         "I16",      "I32",      "I64",
      "F64",   "IQ1_M",      "BF16",       "Q4_0_4_4",   "Q4_0_4_8", "Q4_0_8_8", "TQ1_0",
      "TQ2_0", "IQ4_NL_4_4", "IQ4_NL_4_8", "IQ4_NL_8_8", "MXFP4"};
  if (type < std::size(kNames)) return kNames[type];
  return fmt::format("type {}", type);
}

int64_t GgufTensor::num_elements() const {
  return std::accumulate(dims.begin(), dims.end(), int64_t{1}, std::multiplies<>());
}

struct GgufFile::Mapping {
  void* address = nullptr;
  size_t num_bytes = 0;

  Mapping(void* a, size_t n) : address(a), num_bytes(n) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  ~Mapping() {
    if (address != nullptr) ::munmap(address, num_bytes);
  }
};

GgufFile::GgufFile(GgufFile&&) noexcept = default;
GgufFile& GgufFile::operator=(GgufFile&&) noexcept = default;
GgufFile::~GgufFile() = default;

GgufFile GgufFile::open(const std::string& path) {
  const auto system_error = [&](std::string_view action, int code) {
    return DecodeError(
        fmt::format("{}: cannot {}: {}", path, action, std::generic_category().message(code)));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw system_error("open", errno);
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  if (::fstat(fd, &st) != 0) throw system_error("stat", errno);
  if (!S_ISREG(st.st_mode)) throw DecodeError(fmt::format("{}: not a regular file", path));
  const auto num_bytes = static_cast<size_t>(st.st_size);
  if (num_bytes == 0) return parse({}, path);  // mmap rejects empty files; parse names the problem

  void* address = ::mmap(nullptr, num_bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  if (address == MAP_FAILED) {
    const int code = errno;
    throw system_error(fmt::format("map {} bytes", num_bytes), code);
  }
  auto mapping = std::make_unique<Mapping>(address, num_bytes);
  GgufFile file = parse({static_cast<const std::byte*>(address), num_bytes}, path);
  file.mapping_ = std::move(mapping);
  return file;
}

GgufFile GgufFile::parse(std::span<const std::byte> bytes, std::string name) {
  GgufFile file;
  file.name_ = std::move(name);
  Reader in(bytes, file.name_);

  // Header.
  if (bytes.size() < 4) {
    in.fail(0, fmt::format("file too small to be GGUF ({} bytes)", bytes.size()));
  }
  const uint32_t magic = in.u32("magic");
  if (magic != 0x46554747u) {  // "GGUF" read as a little-endian u32
    std::string shown;
    for (int i = 0; i < 4; ++i) {
      const auto c = static_cast<unsigned char>(magic >> (8 * i));
      shown += (c >= 0x20 && c < 0x7f) ? fmt::format("{}", static_cast<char>(c))
                                       : fmt::format("\\x{:02x}", c);
    }
    in.fail(0, fmt::format("not a GGUF file: magic is '{}', expected 'GGUF'", shown));
  }
  const uint32_t version = in.u32("version");
  if (version != 2 && version != 3) {
    const bool swapped = version == 0x02000000u || version == 0x03000000u;
    in.fail(4, fmt::format("GGUF version {} is not supported (lsa-decode reads versions 2 and 3{})",
                           version, swapped ? "; this looks like a big-endian file" : ""));
  }
  file.version_ = version;

  const uint64_t num_tensors = in.u64("tensor count");
  if (num_tensors > in.remaining() / kMinTensorInfoBytes) {
    in.fail(8, fmt::format("tensor count {} is impossible: only {} bytes follow the header",
                           num_tensors, in.remaining()));
  }
  const uint64_t num_kv = in.u64("metadata key/value count");
  if (num_kv > in.remaining() / kMinKvBytes) {
    in.fail(16, fmt::format("metadata key/value count {} is impossible: only {} bytes follow the "
                            "header",
                            num_kv, in.remaining()));
  }

  // Metadata.
  for (uint64_t i = 0; i < num_kv; ++i) {
    const size_t key_at = in.pos();
    std::string key = in.string(kMaxKeyBytes, "key of a metadata entry");
    if (key.empty()) in.fail(key_at, fmt::format("metadata entry {} has an empty key", i));
    const uint32_t type = in.u32("value type of metadata key", key);
    GgufValue value = read_value(in, type, key, 0);
    if (file.metadata_.contains(key)) {
      in.fail(key_at, fmt::format("duplicate metadata key '{}'", key));
    }
    file.metadata_.emplace(std::move(key), std::move(value));
  }

  uint64_t alignment = kDefaultAlignment;
  if (const auto it = file.metadata_.find("general.alignment"); it != file.metadata_.end()) {
    const auto* a = std::get_if<int64_t>(&it->second.value);
    if (a == nullptr) {
      in.fail(in.pos(),
              fmt::format("general.alignment has {}, expected an integer", describe(it->second)));
    }
    if (*a <= 0 || static_cast<uint64_t>(*a) > kMaxAlignment ||
        !std::has_single_bit(static_cast<uint64_t>(*a))) {
      in.fail(in.pos(), fmt::format("general.alignment = {} is not a power of two in [1, {}]", *a,
                                    kMaxAlignment));
    }
    alignment = static_cast<uint64_t>(*a);
  }

  // Tensor directory.
  std::set<std::string, std::less<>> names;
  std::vector<size_t> info_offsets;
  file.tensors_.reserve(static_cast<size_t>(num_tensors));
  info_offsets.reserve(static_cast<size_t>(num_tensors));
  for (uint64_t i = 0; i < num_tensors; ++i) {
    const size_t info_at = in.pos();
    GgufTensor t;
    t.name = in.string(kMaxKeyBytes, "name of a tensor");
    if (t.name.empty()) in.fail(info_at, fmt::format("tensor {} has an empty name", i));
    if (names.contains(t.name)) in.fail(info_at, fmt::format("duplicate tensor name '{}'", t.name));

    const size_t dims_at = in.pos();
    const uint32_t num_dims = in.u32("dimension count of tensor", t.name);
    if (num_dims == 0 || num_dims > kMaxDims) {
      in.fail(dims_at, fmt::format("tensor '{}' has {} dimensions (lsa-decode reads 1 to {})",
                                   t.name, num_dims, kMaxDims));
    }
    int64_t num_elements = 1;
    for (uint32_t d = 0; d < num_dims; ++d) {
      const size_t dim_at = in.pos();
      const uint64_t dim = in.u64("a dimension of tensor", t.name);
      if (dim == 0 || dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        in.fail(dim_at, fmt::format("tensor '{}' has dimension {} = {} (must be positive)", t.name,
                                    d, dim));
      }
      if (static_cast<int64_t>(dim) > std::numeric_limits<int64_t>::max() / num_elements) {
        in.fail(dim_at, fmt::format("tensor '{}' has too many elements: its element count "
                                    "overflows int64",
                                    t.name));
      }
      num_elements *= static_cast<int64_t>(dim);
      t.dims.push_back(static_cast<int64_t>(dim));
    }

    const size_t type_at = in.pos();
    const uint32_t type = in.u32("type of tensor", t.name);
    if (!is_supported(type)) {
      const std::string type_name = ggml_type_name(type);  // "type 77" when the id is unknown
      in.fail(type_at,
              fmt::format("tensor '{}' has {}{}, which lsa-decode does not support", t.name,
                          type_name.starts_with("type ") ? "unknown " : "type ", type_name));
    }
    t.type = static_cast<GgmlType>(type);
    const int64_t per_block = block_elements(t.type);
    if (t.dims[0] % per_block != 0) {
      in.fail(dims_at + 4,
              fmt::format("tensor '{}' ({}) has dims[0] = {}, not a multiple of its block size {}",
                          t.name, ggml_type_name(type), t.dims[0], per_block));
    }
    // num_elements / per_block blocks of at most 34 bytes each cannot overflow int64 unless the
    // element count is already beyond any file; check anyway.
    const int64_t num_blocks = num_elements / per_block;
    if (num_blocks > std::numeric_limits<int64_t>::max() / block_bytes(t.type)) {
      in.fail(dims_at,
              fmt::format("tensor '{}' is too large: its byte size overflows int64", t.name));
    }
    t.num_bytes = num_blocks * block_bytes(t.type);

    const size_t offset_at = in.pos();
    t.offset = in.u64("data offset of tensor", t.name);
    if (t.offset % alignment != 0) {
      in.fail(offset_at, fmt::format("tensor '{}' has data offset {}, not a multiple of the "
                                     "alignment {}",
                                     t.name, t.offset, alignment));
    }
    names.insert(t.name);
    info_offsets.push_back(offset_at);
    file.tensors_.push_back(std::move(t));
  }

  // Tensor data: it starts at the first aligned byte after the directory.
  const uint64_t data_start = align_up(in.pos(), alignment);
  const uint64_t data_bytes = data_start <= bytes.size() ? bytes.size() - data_start : 0;
  for (size_t i = 0; i < file.tensors_.size(); ++i) {
    GgufTensor& t = file.tensors_[i];
    const auto num_bytes = static_cast<uint64_t>(t.num_bytes);
    if (t.offset > data_bytes || num_bytes > data_bytes - t.offset) {
      in.fail(info_offsets[i],
              fmt::format("tensor '{}' data ({} bytes at offset {} of the data section, which "
                          "starts at byte {}) extends past the end of the file ({} bytes)",
                          t.name, num_bytes, t.offset, data_start, bytes.size()));
    }
    t.data = bytes.data() + data_start + t.offset;
  }

  // Overlapping tensors would mean a corrupt directory; compare neighbours in offset order.
  std::vector<size_t> order(file.tensors_.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return file.tensors_[a].offset < file.tensors_[b].offset; });
  for (size_t k = 1; k < order.size(); ++k) {
    const GgufTensor& prev = file.tensors_[order[k - 1]];
    const GgufTensor& next = file.tensors_[order[k]];
    if (prev.offset + static_cast<uint64_t>(prev.num_bytes) > next.offset) {
      in.fail(info_offsets[order[k]],
              fmt::format("tensors '{}' and '{}' overlap in the data section (bytes [{}, {}) and "
                          "[{}, {}))",
                          prev.name, next.name, prev.offset, prev.offset + prev.num_bytes,
                          next.offset, next.offset + next.num_bytes));
    }
  }
  return file;
}

bool GgufFile::has(std::string_view key) const { return metadata_.find(key) != metadata_.end(); }

const GgufValue& GgufFile::value(std::string_view key) const {
  const auto it = metadata_.find(key);
  if (it == metadata_.end()) {
    throw DecodeError(fmt::format("{}: metadata key '{}' is missing", name_, key));
  }
  return it->second;
}

namespace {

[[noreturn]] void throw_wrong_type(const std::string& file, std::string_view key,
                                   const GgufValue& v, std::string_view expected) {
  throw DecodeError(
      fmt::format("{}: metadata key '{}' has {}, expected {}", file, key, describe(v), expected));
}

// Converts each element of an array value with `get` (which returns nullptr on a wrong type).
template <typename T, typename Get>
std::vector<T> get_array(const std::string& file, std::string_view key, const GgufValue& v,
                         std::string_view expected, Get get) {
  const auto* array = std::get_if<GgufValue::Array>(&v.value);
  if (array == nullptr) throw_wrong_type(file, key, v, expected);
  std::vector<T> out;
  out.reserve(array->size());
  for (const GgufValue& element : *array) {
    const auto* x = get(element);
    if (x == nullptr) throw_wrong_type(file, key, v, expected);
    out.push_back(static_cast<T>(*x));
  }
  return out;
}

const int64_t* get_integer(const GgufValue& v) { return std::get_if<int64_t>(&v.value); }

}  // namespace

int64_t GgufFile::get_int(std::string_view key) const {
  const GgufValue& v = value(key);
  if (const auto* i = std::get_if<int64_t>(&v.value)) return *i;
  if (const auto* b = std::get_if<bool>(&v.value)) return *b ? 1 : 0;
  throw_wrong_type(name_, key, v, "an integer");
}

double GgufFile::get_float(std::string_view key) const {
  const GgufValue& v = value(key);
  if (const auto* d = std::get_if<double>(&v.value)) return *d;
  throw_wrong_type(name_, key, v, "a float");
}

bool GgufFile::get_bool(std::string_view key) const {
  const GgufValue& v = value(key);
  if (const auto* b = std::get_if<bool>(&v.value)) return *b;
  throw_wrong_type(name_, key, v, "a bool");
}

std::string GgufFile::get_string(std::string_view key) const {
  const GgufValue& v = value(key);
  if (const auto* s = std::get_if<std::string>(&v.value)) return *s;
  throw_wrong_type(name_, key, v, "a string");
}

std::vector<std::string> GgufFile::get_string_array(std::string_view key) const {
  return get_array<std::string>(
      name_, key, value(key), "an array of strings",
      [](const GgufValue& e) { return std::get_if<std::string>(&e.value); });
}

std::vector<int64_t> GgufFile::get_int_array(std::string_view key) const {
  const GgufValue& v = value(key);
  const auto* array = std::get_if<GgufValue::Array>(&v.value);
  if (array == nullptr) throw_wrong_type(name_, key, v, "an array of integers");
  std::vector<int64_t> out;
  out.reserve(array->size());
  for (const GgufValue& e : *array) {
    if (const auto* i = get_integer(e)) {
      out.push_back(*i);
    } else if (const auto* b = std::get_if<bool>(&e.value)) {
      out.push_back(*b ? 1 : 0);
    } else {
      throw_wrong_type(name_, key, v, "an array of integers");
    }
  }
  return out;
}

std::vector<double> GgufFile::get_float_array(std::string_view key) const {
  return get_array<double>(name_, key, value(key), "an array of floats",
                           [](const GgufValue& e) { return std::get_if<double>(&e.value); });
}

const GgufTensor* GgufFile::find_tensor(std::string_view name) const {
  const auto it = std::find_if(tensors_.begin(), tensors_.end(),
                               [&](const GgufTensor& t) { return t.name == name; });
  return it == tensors_.end() ? nullptr : &*it;
}

const GgufTensor& GgufFile::tensor(std::string_view name) const {
  const GgufTensor* t = find_tensor(name);
  if (t == nullptr) throw DecodeError(fmt::format("{}: tensor '{}' is missing", name_, name));
  return *t;
}

}  // namespace lsa_decode
