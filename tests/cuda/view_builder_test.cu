// Device views against the views SparseKVCache::step writes for the same resident sets and slots.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "lsa/cuda/view_builder.hpp"
#include "lsa/fp8.hpp"
#include "lsa/sparse_kv_cache.hpp"
#include "support/gpu.hpp"

namespace {

using lsa::cuda::testing::DeviceArray;

constexpr int32_t kHeads = 4;
constexpr int32_t kHeadDim = 16;

lsa::CacheConfig small_config(int32_t max_sequences, int32_t kmax_pages) {
  lsa::CacheConfig c;
  c.num_layers = 2;
  c.bytes_per_token_per_layer = 8;
  c.chunk_tokens = 2;
  c.page_chunks = 2;
  c.max_sequences = max_sequences;
  c.max_tokens = 4096;
  c.scorer.num_layers = 1;
  c.scorer.num_heads = kHeads;
  c.scorer.head_dim = kHeadDim;
  c.policy.interval = 1;
  c.policy.spread_phase = false;
  c.policy.kmax_pages = kmax_pages;
  c.policy.sink_chunks = 1;
  c.policy.recent_chunks = 2;
  // Every page of every history fits before the first refresh (and validate's kmax rule holds).
  c.num_slots = max_sequences * std::max(40, kmax_pages);
  return c;
}

// A cache with `batch` sequences of random lengths that went through a few refreshing steps.
struct Scenario {
  Scenario(int32_t batch, uint32_t seed, int32_t kmax_pages = 6)
      : cache(small_config(std::max(batch, 1), kmax_pages)), rng(seed) {
    std::uniform_int_distribution<int32_t> length(0, 90);
    for (int32_t b = 0; b < batch; ++b) {
      const lsa::SeqId id = 1000 + 7 * b;
      REQUIRE(cache.add(id) == lsa::Status::kOk);
      ids.push_back(id);
      append(id, length(rng));
    }
    for (int step = 0; step < 3; ++step) {
      lsa::ViewStorage scratch(std::max(batch, 1), 64, 64);
      REQUIRE(this->step(scratch.buffers()) == lsa::Status::kOk);
      for (const lsa::SeqId id : ids) append(id, std::uniform_int_distribution<int32_t>(0, 9)(rng));
    }
  }

  void append(lsa::SeqId id, int32_t n) {
    const lsa::Chunker chunker(cache.config().chunk_tokens, cache.config().page_chunks);
    const int64_t old_len = cache.length(id);
    const int64_t rows = chunker.num_full_chunks(old_len + n) - chunker.num_full_chunks(old_len);
    std::vector<std::byte> keys(static_cast<size_t>(rows) * (kHeadDim + 4));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t r = 0; r < rows; ++r) {
      std::byte* v = keys.data() + r * (kHeadDim + 4);
      for (int i = 0; i < kHeadDim; ++i) v[i] = static_cast<std::byte>(lsa::encode_fp8_e4m3(normal(rng)));
      const float scale = 0.5f;
      std::memcpy(v + kHeadDim, &scale, 4);
    }
    std::vector<lsa::TokenSlot> out(static_cast<size_t>(n));
    REQUIRE(cache.append(id, n, lsa::KeyRows{keys.data(), rows}, out) == lsa::Status::kOk);
  }

  lsa::Status step(const lsa::ViewBuffers& view) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    q.resize(static_cast<size_t>(kHeads) * kHeadDim);
    for (float& x : q) x = normal(rng);
    w.assign(kHeads, 1.0f);
    queries.assign(ids.size(), lsa::Query{q, w});
    return cache.step(ids, queries, view);
  }

  lsa::SparseKVCache<> cache;
  std::mt19937 rng;
  std::vector<lsa::SeqId> ids;
  std::vector<float> q;
  std::vector<float> w;
  std::vector<lsa::Query> queries;
};

// Host-side buffers of chosen capacities, poisoned so that unwritten entries show. Each holds one
// element past what the view may write (never written by either side), so that no pointer is null
// even for an empty batch.
struct HostView {
  HostView(int32_t batch, int64_t indices_capacity, int32_t slot_width, int32_t table_width)
      : indptr(static_cast<size_t>(batch) + 2, 0x5A5A5A5A),
        indices(static_cast<size_t>(indices_capacity) + 1, 0x5A5A5A5A),
        last_page_len(static_cast<size_t>(batch) + 1, 0x5A5A5A5A),
        slot_lists(static_cast<size_t>(batch) * slot_width + 1, 0x5A5A5A5A),
        block_table(static_cast<size_t>(batch) * table_width + 1, 0x5A5A5A5A),
        slot_width(slot_width),
        table_width(table_width) {}
  lsa::ViewBuffers buffers() {
    return {indptr.data(),     indices.data(), static_cast<int64_t>(indices.size()) - 1,
            last_page_len.data(), slot_lists.data(), slot_width,
            block_table.data(), table_width};
  }
  std::vector<int32_t> indptr, indices, last_page_len, slot_lists, block_table;
  int32_t slot_width;
  int32_t table_width;
};

struct DeviceView {
  explicit DeviceView(const HostView& shape)
      : indptr(shape.indptr.size()),
        indices(shape.indices.size()),
        last_page_len(shape.last_page_len.size()),
        slot_lists(shape.slot_lists.size()),
        block_table(shape.block_table.size()),
        slot_width(shape.slot_width),
        table_width(shape.table_width) {
    for (DeviceArray<int32_t>* a : {&indptr, &indices, &last_page_len, &slot_lists, &block_table}) {
      a->fill_bytes(0x5A);
    }
  }
  lsa::ViewBuffers buffers() {
    return {indptr.get(),     indices.get(), static_cast<int64_t>(indices.size()) - 1,
            last_page_len.get(), slot_lists.get(), slot_width,
            block_table.get(), table_width};
  }
  DeviceArray<int32_t> indptr, indices, last_page_len, slot_lists, block_table;
  int32_t slot_width;
  int32_t table_width;
};

// The device table of the scenario's current state (what an engine's CUDA store would hold).
struct Table {
  explicit Table(const Scenario& s) {
    const lsa::Chunker chunker(s.cache.config().chunk_tokens, s.cache.config().page_chunks);
    int64_t stride = 1;
    for (const lsa::SeqId id : s.ids) stride = std::max(stride, chunker.num_pages(s.cache.length(id)));
    std::vector<int32_t> offsets{0};
    std::vector<int32_t> pages;
    std::vector<int32_t> slots;
    std::vector<int64_t> tokens;
    for (const lsa::SeqId id : s.ids) {
      for (const int32_t p : s.cache.resident_pages(id)) pages.push_back(p);
      offsets.push_back(static_cast<int32_t>(pages.size()));
      for (int64_t p = 0; p < stride; ++p) slots.push_back(s.cache.slot_of(id, p));
      tokens.push_back(s.cache.length(id));
    }
    d_offsets.upload(offsets);
    d_pages.upload(pages);
    d_slots.upload(slots);
    d_tokens.upload(tokens);
    table = {static_cast<int32_t>(s.ids.size()), d_offsets.get(), d_pages.get(), d_slots.get(), stride,
             d_tokens.get()};
  }
  DeviceArray<int32_t> d_offsets, d_pages, d_slots;
  DeviceArray<int64_t> d_tokens;
  lsa::cuda::DeviceBatchTable table;
};

void require_same(const HostView& host, DeviceView& device) {
  REQUIRE(device.indptr.download() == host.indptr);
  REQUIRE(device.indices.download() == host.indices);
  REQUIRE(device.last_page_len.download() == host.last_page_len);
  REQUIRE(device.slot_lists.download() == host.slot_lists);
  REQUIRE(device.block_table.download() == host.block_table);
}

int32_t run_device(const Scenario& s, DeviceView& view) {
  Table t(s);
  DeviceArray<int32_t> status(1);
  const lsa::Chunker chunker(s.cache.config().chunk_tokens, s.cache.config().page_chunks);
  LSA_CUDA_OK(lsa::cuda::build_view(t.table, chunker, view.buffers(), status.get(), nullptr));
  return status.download()[0];
}

}  // namespace

TEST_CASE("build_view writes the views SparseKVCache::step writes", "[gpu][view]") {
  LSA_REQUIRE_GPU();
  uint32_t seed = 11;
  for (const int32_t batch : {0, 1, 3, 8, 33}) {
    for (int rep = 0; rep < 4; ++rep) {
      Scenario s(batch, seed++);
      // Capacities with room to spare, so every padding rule is exercised.
      HostView host(batch, int64_t{batch} * 8 + 5, 9, 64);
      REQUIRE(s.step(host.buffers()) == lsa::Status::kOk);
      DeviceView device(host);
      INFO("batch " << batch << " rep " << rep);
      REQUIRE(run_device(s, device) == static_cast<int32_t>(lsa::Status::kOk));
      require_same(host, device);
    }
  }
}

TEST_CASE("build_view refuses buffers that are too small as step does and writes nothing",
          "[gpu][view]") {
  LSA_REQUIRE_GPU();
  // Every history fits kmax here, so a step refreshes nothing and the host checks the same sets
  // the device table holds.
  Scenario s(5, 99, 64);
  HostView roomy(5, 256, 64, 64);
  REQUIRE(s.step(roomy.buffers()) == lsa::Status::kOk);
  const lsa::Chunker chunker(s.cache.config().chunk_tokens, s.cache.config().page_chunks);
  int64_t nnz = 0;
  int64_t longest = 0;
  int64_t widest = 0;
  for (const lsa::SeqId id : s.ids) {
    nnz += static_cast<int64_t>(s.cache.resident_pages(id).size());
    widest = std::max<int64_t>(widest, static_cast<int64_t>(s.cache.resident_pages(id).size()));
    longest = std::max(longest, chunker.num_pages(s.cache.length(id)));
  }
  REQUIRE(widest > 0);
  struct Shape {
    int64_t indices;
    int32_t slot_width;
    int32_t table_width;
  };
  const Shape shapes[] = {{nnz - 1, 64, 64},
                          {256, static_cast<int32_t>(widest - 1), 64},
                          {256, 64, static_cast<int32_t>(longest - 1)},
                          {nnz, static_cast<int32_t>(widest), static_cast<int32_t>(longest)}};
  for (const Shape& shape : shapes) {
    // A failed step leaves the cache as it was, a successful one changes no resident set.
    HostView host(5, shape.indices, shape.slot_width, shape.table_width);
    const lsa::Status host_status = s.step(host.buffers());
    DeviceView device(host);
    const int32_t device_status = run_device(s, device);
    INFO("indices " << shape.indices << " slot width " << shape.slot_width << " table width "
                    << shape.table_width);
    REQUIRE(device_status == static_cast<int32_t>(host_status));
    require_same(host, device);  // both untouched (poison) on failure, equal on success
  }
}

TEST_CASE("build_view refuses a table with a bad row and writes nothing", "[gpu][view][errors]") {
  LSA_REQUIRE_GPU();
  Scenario s(6, 5);
  HostView untouched(6, 256, 64, 64);  // never written: what every device buffer must still hold
  const lsa::Chunker chunker(s.cache.config().chunk_tokens, s.cache.config().page_chunks);
  Table t(s);
  const std::vector<int32_t> offsets = t.d_offsets.download();
  const std::vector<int32_t> pages = t.d_pages.download();
  REQUIRE(pages.size() > 3);
  const auto last_row = static_cast<size_t>(s.ids.size() - 1);
  const int64_t last_pages = chunker.num_pages(s.cache.length(s.ids.back()));
  // A page past its history in the last row (so every other row is valid and would be written),
  // a negative page, and offsets that decrease (every read stays inside the arrays).
  for (int bad = 0; bad < 3; ++bad) {
    INFO("bad " << bad);
    std::vector<int32_t> p = pages;
    std::vector<int32_t> o = offsets;
    if (bad == 0) p[static_cast<size_t>(o[last_row])] = static_cast<int32_t>(last_pages);
    if (bad == 1) p[static_cast<size_t>(o[last_row])] = -1;
    if (bad < 2 && o[last_row + 1] == o[last_row]) continue;  // an empty last row: nothing to spoil
    if (bad == 2 && o[last_row - 1] < 1) continue;
    if (bad == 2) o[last_row] = o[last_row - 1] - 1;  // row 4 ends before it begins
    t.d_pages.upload(p);
    t.d_offsets.upload(o);
    DeviceView device(untouched);
    DeviceArray<int32_t> status(1);
    LSA_CUDA_OK(lsa::cuda::build_view(t.table, chunker, device.buffers(), status.get(), nullptr));
    REQUIRE(status.download()[0] == static_cast<int32_t>(lsa::Status::kInvalidArgument));
    require_same(untouched, device);
  }
}
