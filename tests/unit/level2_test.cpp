// lsa::level2_select (host reference of the level-2 selection) against a brute-force ranking.
#include "lsa/level2.hpp"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace {

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

// One sequence: history length, resident pages, page -> slot table and a logit per chunk.
struct Sequence {
  int64_t num_tokens = 0;
  std::vector<int32_t> pages;
  std::vector<int32_t> slots;
  std::vector<float> logits;
};

enum class Logits { kNormal, kFewValues, kSpecial };

// A random sequence: each page resident with probability `resident`, slots a permutation of a
// larger reserve, logits drawn by `mode` (kFewValues: many ties; kSpecial: NaN, +-inf, +-0 too).
Sequence random_sequence(std::mt19937& rng, lsa::Chunker chunker, int64_t num_tokens,
                         double resident, Logits mode, int64_t extra_logits = 0) {
  Sequence s;
  s.num_tokens = num_tokens;
  const int64_t num_pages = chunker.num_pages(num_tokens);
  std::bernoulli_distribution keep(resident);
  for (int64_t p = 0; p < num_pages; ++p) {
    if (keep(rng)) s.pages.push_back(static_cast<int32_t>(p));
  }
  s.slots.resize(static_cast<size_t>(num_pages));
  std::iota(s.slots.begin(), s.slots.end(), 3);
  std::shuffle(s.slots.begin(), s.slots.end(), rng);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::uniform_int_distribution<int> pick(0, 9);
  s.logits.resize(static_cast<size_t>(chunker.num_chunks(num_tokens) + extra_logits));
  for (float& x : s.logits) {
    x = normal(rng);
    if (mode == Logits::kFewValues) x = std::round(x);
    if (mode == Logits::kSpecial) {
      const float special[] = {kNaN, kInf, -kInf, 0.0f, -0.0f};
      const int r = pick(rng);
      if (r < 5) x = special[r];
    }
  }
  return s;
}

// Every chunk of the history in chunk order, kept when its page is resident and its logit is not
// NaN, stably sorted by logit (descending); the first k positions, -1 padded.
std::vector<int32_t> brute_force(const Sequence& s, lsa::Chunker chunker, int32_t k) {
  struct Entry {
    float logit;
    int32_t position;
  };
  std::vector<Entry> all;
  for (int64_t c = 0; c < chunker.num_chunks(s.num_tokens); ++c) {
    const int64_t page = chunker.page_of_chunk(c);
    if (!std::binary_search(s.pages.begin(), s.pages.end(), static_cast<int32_t>(page))) continue;
    const float logit = s.logits[static_cast<size_t>(c)];
    if (std::isnan(logit)) continue;
    const int64_t in_page = c - page * chunker.page_chunks();
    all.push_back(
        {logit, static_cast<int32_t>(s.slots[static_cast<size_t>(page)] * chunker.page_chunks() +
                                     in_page)});
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Entry& a, const Entry& b) { return a.logit > b.logit; });
  std::vector<int32_t> out(static_cast<size_t>(k), -1);
  for (size_t i = 0; i < out.size() && i < all.size(); ++i) out[i] = all[i].position;
  return out;
}

std::vector<int32_t> select_one(const Sequence& s, lsa::Chunker chunker, int32_t k,
                                lsa::Status expected = lsa::Status::kOk) {
  std::vector<int32_t> out(static_cast<size_t>(k), 0x5A5A5A5A);
  REQUIRE(lsa::level2_select(s.logits, s.num_tokens, s.pages, s.slots, chunker, out) == expected);
  return out;
}

// A batch in HostBatchTable form (and the arrays it points into).
struct Batch {
  explicit Batch(const std::vector<Sequence>& seqs) {
    for (const Sequence& s : seqs) {
      slots_stride = std::max(slots_stride, static_cast<int64_t>(s.slots.size()));
      logits_stride = std::max(logits_stride, static_cast<int64_t>(s.logits.size()));
    }
    offsets.push_back(0);
    for (const Sequence& s : seqs) {
      pages.insert(pages.end(), s.pages.begin(), s.pages.end());
      offsets.push_back(static_cast<int32_t>(pages.size()));
      std::vector<int32_t> row(static_cast<size_t>(slots_stride), -7);
      std::copy(s.slots.begin(), s.slots.end(), row.begin());
      slots.insert(slots.end(), row.begin(), row.end());
      std::vector<float> logit_row(static_cast<size_t>(logits_stride), 1e30f);  // never read
      std::copy(s.logits.begin(), s.logits.end(), logit_row.begin());
      logits.insert(logits.end(), logit_row.begin(), logit_row.end());
      num_tokens.push_back(s.num_tokens);
    }
  }
  lsa::HostBatchTable table() const { return {offsets, pages, slots, slots_stride, num_tokens}; }

  std::vector<int32_t> offsets, pages, slots;
  std::vector<int64_t> num_tokens;
  std::vector<float> logits;
  int64_t slots_stride = 0;
  int64_t logits_stride = 0;
};

}  // namespace

TEST_CASE("level2_select picks what a brute-force ranking picks", "[cpu][level2]") {
  std::mt19937 rng(20240601);
  const lsa::Chunker chunkers[] = {{1, 16}, {2, 4}, {3, 5}, {1, 1}, {4, 1}};
  for (const lsa::Chunker chunker : chunkers) {
    const int64_t page = chunker.page_tokens();
    for (const int64_t num_tokens :
         {int64_t{0}, int64_t{1}, page - 1, page, page + 1, 57 * page + page / 2 + 1}) {
      for (const double resident : {1.0, 0.5, 0.1}) {
        for (const Logits mode : {Logits::kNormal, Logits::kFewValues, Logits::kSpecial}) {
          const Sequence s = random_sequence(rng, chunker, num_tokens, resident, mode, 3);
          for (const int32_t k : {1, 2, 7, 64, 1000}) {
            INFO("chunker " << chunker.chunk_tokens() << "x" << chunker.page_chunks() << " tokens "
                            << num_tokens << " resident " << resident << " mode "
                            << static_cast<int>(mode) << " k " << k);
            REQUIRE(select_one(s, chunker, k) == brute_force(s, chunker, k));
          }
        }
      }
    }
  }
}

TEST_CASE("level2_select writes slot positions best first on a worked example", "[cpu][level2]") {
  // 10 tokens of one-token chunks, 4 per page: pages 0, 1, 2 (2 tokens); pages 0 and 2 resident.
  const lsa::Chunker chunker(1, 4);
  Sequence s;
  s.num_tokens = 10;
  s.pages = {0, 2};
  s.slots = {5, 1, 3};
  s.logits = {0.1f, 0.9f, 0.5f, 0.9f, 9.0f, 9.0f, 9.0f, 9.0f, 0.7f, 0.2f, 100.0f, 100.0f};
  // Chunks 0..3 live at 20..23 (slot 5), chunks 8, 9 at 12, 13 (slot 3); chunks 4..7 are not
  // resident and chunks 10, 11 are past the history. Ties (chunks 1 and 3) go to the lower chunk.
  CHECK(select_one(s, chunker, 4) == std::vector<int32_t>{21, 23, 12, 22});
  CHECK(select_one(s, chunker, 8) == std::vector<int32_t>{21, 23, 12, 22, 13, 20, -1, -1});
  CHECK(select_one(s, chunker, 1) == std::vector<int32_t>{21});
}

TEST_CASE("level2_select breaks ties by the lower chunk, -0 ties with +0", "[cpu][level2]") {
  const lsa::Chunker chunker(1, 8);
  Sequence s;
  s.num_tokens = 40;
  s.pages = {0, 1, 3, 4};
  s.slots = {4, 9, 9, 0, 2};
  s.logits.assign(40, 1.0f);
  // All equal: the first k candidates in chunk order.
  CHECK(select_one(s, chunker, 10) == std::vector<int32_t>{32, 33, 34, 35, 36, 37, 38, 39, 72, 73});
  for (size_t c = 0; c < s.logits.size(); ++c) s.logits[c] = c % 2 == 0 ? 0.0f : -0.0f;
  CHECK(select_one(s, chunker, 3) == std::vector<int32_t>{32, 33, 34});
  s.logits[30] = -kInf;  // page 3, chunk 6: last
  s.logits[26] = kInf;   // page 3, chunk 2: first
  const std::vector<int32_t> all = select_one(s, chunker, 34);
  CHECK(all.front() == 2);
  CHECK(all[30] == 23);  // 30 candidates tie at 0 behind +inf (the last: chunk 39, slot 2)
  CHECK(all[31] == 6);   // then -inf, then padding
  CHECK(all[32] == -1);
  CHECK(all[33] == -1);
}

TEST_CASE("level2_select never chooses NaN and pads to k", "[cpu][level2]") {
  const lsa::Chunker chunker(2, 4);
  Sequence s;
  s.num_tokens = 13;  // 7 chunks, the last partial; pages 0 and 1 (3 chunks)
  s.pages = {0, 1};
  s.slots = {1, 0};
  s.logits = {kNaN, 2.0f, kNaN, 1.0f, kNaN, 3.0f, kNaN};
  CHECK(select_one(s, chunker, 5) == std::vector<int32_t>{1, 5, 7, -1, -1});
  s.logits.assign(7, kNaN);
  CHECK(select_one(s, chunker, 2) == std::vector<int32_t>{-1, -1});
  s.pages.clear();
  s.logits.assign(7, 1.0f);
  CHECK(select_one(s, chunker, 3) == std::vector<int32_t>{-1, -1, -1});
}

TEST_CASE("level2_select over a batch selects each row as the one-sequence call", "[cpu][level2]") {
  std::mt19937 rng(7);
  const lsa::Chunker chunker(1, 16);
  std::vector<Sequence> seqs;
  for (const int64_t n : {0, 1, 15, 16, 17, 900, 4000, 33}) {
    seqs.push_back(random_sequence(rng, chunker, n, 0.4, Logits::kSpecial));
  }
  const Batch batch(seqs);
  for (const int32_t k : {1, 9, 300}) {
    std::vector<int32_t> out(seqs.size() * static_cast<size_t>(k) + 1, 0x5A5A5A5A);
    REQUIRE(lsa::level2_select(batch.table(), batch.logits, batch.logits_stride, chunker, k, out) ==
            lsa::Status::kOk);
    for (size_t b = 0; b < seqs.size(); ++b) {
      const std::vector<int32_t> row(out.begin() + static_cast<std::ptrdiff_t>(b * k),
                                     out.begin() + static_cast<std::ptrdiff_t>((b + 1) * k));
      INFO("k " << k << " row " << b);
      CHECK(row == brute_force(seqs[b], chunker, k));
    }
    CHECK(out.back() == 0x5A5A5A5A);
  }
}

TEST_CASE("level2_select refuses bad arguments and unreadable resident sets", "[cpu][level2]") {
  const lsa::Chunker chunker(1, 4);
  Sequence good;
  good.num_tokens = 10;  // pages 0, 1, 2
  good.pages = {0, 2};
  good.slots = {5, 1, 3};
  good.logits.assign(10, 1.0f);
  using lsa::Status;

  SECTION("one sequence") {
    std::vector<int32_t> none;
    CHECK(lsa::level2_select(good.logits, good.num_tokens, good.pages, good.slots, chunker, none) ==
          Status::kInvalidArgument);
    std::vector<int32_t> out(4);
    CHECK(lsa::level2_select(good.logits, good.num_tokens, good.pages, good.slots,
                             lsa::Chunker(0, 4), out) == Status::kInvalidArgument);
    const auto bad = [&](Sequence s) {
      const std::vector<int32_t> row = select_one(s, chunker, 3, Status::kInvalidArgument);
      CHECK(row == std::vector<int32_t>{-1, -1, -1});
    };
    Sequence s = good;
    s.pages = {0, 3};  // past the history
    bad(s);
    s.pages = {-1, 0};
    bad(s);
    s.pages = {2, 0};  // not ascending
    bad(s);
    s.pages = {2, 2};  // twice
    bad(s);
    s = good;
    s.slots = {5, 1};  // the page table ends before page 2
    bad(s);
    s.slots = {5, 1, -1};  // no slot
    bad(s);
    s.slots = {5, 1, INT32_MAX / 4 + 1};  // positions past int32
    bad(s);
    s = good;
    s.logits.resize(9);  // fewer logits than chunks
    bad(s);
    s = good;
    s.num_tokens = -1;
    s.pages.clear();
    bad(s);
    s = good;
    s.num_tokens = 0;  // every page is outside an empty history
    bad(s);
    s.pages.clear();
    CHECK(select_one(s, chunker, 2) == std::vector<int32_t>{-1, -1});
  }

  SECTION("batch") {
    Sequence broken = good;
    broken.pages = {1, 3};
    const Batch batch({good, broken, good});
    const lsa::HostBatchTable table = batch.table();
    const int32_t k = 3;
    const std::vector<int32_t> poison(9, 0x5A5A5A5A);
    std::vector<int32_t> out = poison;
    // Argument errors write nothing.
    CHECK(lsa::level2_select(table, batch.logits, batch.logits_stride, chunker, 0, out) ==
          Status::kInvalidArgument);
    CHECK(lsa::level2_select(table, batch.logits, -1, chunker, k, out) == Status::kInvalidArgument);
    CHECK(lsa::level2_select(table, std::span(batch.logits).first(batch.logits.size() - 1),
                             batch.logits_stride, chunker, k, out) == Status::kInvalidArgument);
    lsa::HostBatchTable short_table = table;
    short_table.resident_offsets = short_table.resident_offsets.first(3);
    CHECK(lsa::level2_select(short_table, batch.logits, batch.logits_stride, chunker, k, out) ==
          Status::kInvalidArgument);
    short_table = table;
    short_table.page_slots = short_table.page_slots.first(short_table.page_slots.size() - 1);
    CHECK(lsa::level2_select(short_table, batch.logits, batch.logits_stride, chunker, k, out) ==
          Status::kInvalidArgument);
    CHECK(lsa::level2_select(table, batch.logits, batch.logits_stride, chunker, k,
                             std::span(out).first(8)) == Status::kBufferTooSmall);
    CHECK(out == poison);
    // An unreadable row is -1, the others are selected.
    CHECK(lsa::level2_select(table, batch.logits, batch.logits_stride, chunker, k, out) ==
          Status::kInvalidArgument);
    CHECK(out == std::vector<int32_t>{20, 21, 22, -1, -1, -1, 20, 21, 22});
    // Offsets outside the page list, or decreasing.
    std::vector<int32_t> offsets(batch.offsets);
    offsets[2] = 99;
    lsa::HostBatchTable odd = table;
    odd.resident_offsets = offsets;
    out = poison;
    CHECK(lsa::level2_select(odd, batch.logits, batch.logits_stride, chunker, k, out) ==
          Status::kInvalidArgument);
    CHECK(out == std::vector<int32_t>{20, 21, 22, -1, -1, -1, -1, -1, -1});
    // Too few logits per row for a history.
    CHECK(lsa::level2_select(table, std::span(batch.logits).first(27), 9, chunker, k, out) ==
          Status::kInvalidArgument);
    CHECK(out == std::vector<int32_t>(9, -1));
  }
}

TEST_CASE("level2_select refuses strides whose shape products overflow int64", "[cpu][level2]") {
  // num_batch * stride wraps around in int64: (2^62 + 2) * 4 = 8 (mod 2^64), which would pass a
  // check against 8 page slots or 8 logits and then read far outside them.
  using lsa::Status;
  const lsa::Chunker chunker(1, 4);
  const std::vector<int64_t> num_tokens(4, 1);
  const std::vector<int32_t> offsets = {0, 0, 0, 0, 0};
  const std::vector<int32_t> pages;
  const std::vector<int32_t> slots(8, 0);
  const std::vector<float> logits(8, 1.0f);
  const int64_t huge = (int64_t{1} << 62) + 2;
  const std::vector<int32_t> poison(4, 0x5A5A5A5A);
  std::vector<int32_t> out = poison;
  lsa::HostBatchTable table{offsets, pages, slots, huge, num_tokens};
  CHECK(lsa::level2_select(table, logits, 2, chunker, 1, out) == Status::kInvalidArgument);
  CHECK(out == poison);
  table.page_slots_stride = 2;
  CHECK(lsa::level2_select(table, logits, huge, chunker, 1, out) == Status::kInvalidArgument);
  CHECK(out == poison);
  // Shapes that fit still work.
  CHECK(lsa::level2_select(table, logits, 2, chunker, 1, out) == Status::kOk);
  CHECK(out == std::vector<int32_t>(4, -1));
}
