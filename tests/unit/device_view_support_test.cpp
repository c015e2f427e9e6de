// What an engine that builds its views on the device relies on: step() without any view format
// decides exactly what a step with views decides, and resident_slots() gives the slots of the
// resident set in one call (DevicePageTable::write reads both).
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "lsa/detail/batch_table_fill.hpp"
#include "support/cache_harness.hpp"

namespace {

using lsa::SeqId;
using lsa::Status;
using lsa::testing::Harness;
using lsa::testing::small_config;

}  // namespace

TEST_CASE("a step without view buffers makes the same decisions as one with them", "[cpu][view]") {
  Harness with(small_config(), 3);
  Harness without(small_config(), 3);
  const std::vector<SeqId> ids = {4, 9};
  for (const SeqId id : ids) {
    REQUIRE(with.add(id) == Status::kOk);
    REQUIRE(without.add(id) == Status::kOk);
    REQUIRE(with.append(id, 40) == Status::kOk);
    REQUIRE(without.append(id, 40) == Status::kOk);
  }
  std::mt19937 rng(5);
  for (int step = 0; step < 100; ++step) {
    std::vector<lsa::Query> queries;
    std::vector<float> q(ids.size());
    for (float& v : q) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
    REQUIRE(with.step(ids, q) == Status::kOk);
    for (size_t b = 0; b < ids.size(); ++b)
      queries.push_back({std::span<const float>(&q[b], 1), {}});
    REQUIRE(without.cache.step(ids, queries, lsa::ViewBuffers{}) == Status::kOk);
    for (const SeqId id : ids) {
      const auto a = with.cache.resident_pages(id);
      const auto b = without.cache.resident_pages(id);
      REQUIRE(std::vector<int32_t>(a.begin(), a.end()) == std::vector<int32_t>(b.begin(), b.end()));
      REQUIRE(with.append(id, 1) == Status::kOk);
      REQUIRE(without.append(id, 1) == Status::kOk);
    }
  }
  REQUIRE(lsa::testing::same_stats(with.cache.stats(), without.cache.stats()));
}

TEST_CASE("resident_slots lists the slots of the resident set, or refuses and writes nothing",
          "[cpu][view]") {
  Harness h(small_config(), 8);
  REQUIRE(h.add(1) == Status::kOk);
  REQUIRE(h.append(1, 50) == Status::kOk);
  REQUIRE(h.step({1}, 1.0f) == Status::kOk);
  const auto resident = h.cache.resident_pages(1);
  REQUIRE(resident.size() > 1);
  std::vector<int32_t> slots(resident.size() + 2, -7);
  REQUIRE(h.cache.resident_slots(1, slots) == static_cast<int64_t>(resident.size()));
  for (size_t i = 0; i < resident.size(); ++i) REQUIRE(slots[i] == h.cache.slot_of(1, resident[i]));
  REQUIRE(slots[resident.size()] == -7);
  std::vector<int32_t> short_buffer(resident.size() - 1, -7);
  REQUIRE(h.cache.resident_slots(1, short_buffer) == -1);
  REQUIRE(short_buffer == std::vector<int32_t>(resident.size() - 1, -7));
  REQUIRE(h.cache.resident_slots(2, slots) == -1);
}

TEST_CASE("fill_batch_table keeps two alternating buffers equal to the cache through random calls",
          "[cpu][view]") {
  // Two buffers alternate as DevicePageTable's do, so each is two steps old when it is refilled;
  // after every fill each row must hold exactly its sequence's resident pages, slots and length.
  lsa::CacheConfig config = small_config();
  config.max_sequences = 4;
  Harness h(config, 21);
  constexpr int64_t kMaxResident = 16;
  constexpr int64_t kMaxPages = 1024;
  struct Buffer {
    std::vector<int64_t> tokens = std::vector<int64_t>(4);
    std::vector<int32_t> counts = std::vector<int32_t>(4);
    std::vector<int32_t> pages = std::vector<int32_t>(4 * kMaxResident);
    std::vector<int32_t> slots = std::vector<int32_t>(4 * kMaxResident);
    std::vector<SeqId> ids = std::vector<SeqId>(4, 0);
    std::vector<uint64_t> versions = std::vector<uint64_t>(4, 0);
    lsa::detail::BatchTableRows rows() {
      return {tokens.data(), counts.data(),   pages.data(), slots.data(),
              ids.data(),    versions.data(), kMaxResident, kMaxPages};
    }
  } buffers[2];
  std::mt19937 rng(13);
  std::vector<SeqId> live;
  int64_t rows_skipped = 0;
  for (int op = 0; op < 3000; ++op) {
    INFO("op " << op);
    const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
    if (live.size() < 2 || kind == 0) {
      const SeqId id = std::uniform_int_distribution<SeqId>(1, 6)(rng);
      if (h.add(id) == Status::kOk) live.push_back(id);
    } else if (kind == 1 && live.size() > 2) {
      const size_t i = std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng);
      REQUIRE(h.remove(live[i]) == Status::kOk);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    } else if (kind == 2) {
      const SeqId id = live[std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng)];
      const int64_t len = h.cache.length(id);
      (void)h.truncate(id, std::uniform_int_distribution<int64_t>(0, len)(rng));
    } else if (kind == 3 && live.size() < 4) {
      const SeqId src = live[std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng)];
      const SeqId dst = std::uniform_int_distribution<SeqId>(1, 6)(rng);
      if (h.fork(src, dst) == Status::kOk) live.push_back(dst);
    } else if (kind < 6) {
      const SeqId id = live[std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng)];
      (void)h.append(id, std::uniform_int_distribution<int32_t>(1, 9)(rng));
    } else {
      std::vector<float> q(live.size());
      for (float& v : q) v = std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
      REQUIRE(h.step(live, q) == Status::kOk);
      Buffer& buffer = buffers[op % 2];
      const std::vector<SeqId> before_ids = buffer.ids;
      const std::vector<uint64_t> before_versions = buffer.versions;
      REQUIRE(lsa::detail::fill_batch_table(h.cache, live, buffer.rows()) == Status::kOk);
      for (size_t b = 0; b < live.size(); ++b) {
        rows_skipped += before_ids[b] == live[b] && before_versions[b] == buffer.versions[b];
        const auto resident = h.cache.resident_pages(live[b]);
        REQUIRE(buffer.tokens[b] == h.cache.length(live[b]));
        REQUIRE(buffer.counts[b] == static_cast<int32_t>(resident.size()));
        for (size_t i = 0; i < resident.size(); ++i) {
          REQUIRE(buffer.pages[b * kMaxResident + i] == resident[i]);
          REQUIRE(buffer.slots[b * kMaxResident + i] == h.cache.slot_of(live[b], resident[i]));
        }
      }
    }
  }
  REQUIRE(rows_skipped > 100);  // unchanged rows were reused, and still matched
  const std::vector<SeqId> unknown = {99};
  REQUIRE(lsa::detail::fill_batch_table(h.cache, unknown, buffers[0].rows()) ==
          Status::kUnknownSequence);
}
