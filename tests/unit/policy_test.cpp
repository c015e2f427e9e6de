// LookaheadPolicy against a plain reference written from DESIGN.md s.2 and policy_config.hpp:
// kept chunks (threshold / top-k / top-p), page scores (kept count / score mass), forced pages,
// kmax, hysteresis, max_recall_pages, ties, refresh phases.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <set>
#include <span>
#include <vector>

#include "lsa/chunker.hpp"
#include "lsa/lookahead_policy.hpp"
#include "lsa/policy_config.hpp"
#include "support/cache_harness.hpp"

namespace {

using lsa::PageScore;
using lsa::PolicyConfig;
using lsa::Selection;

// The plain reference: what a refresh should choose.
std::vector<int32_t> reference_select(const PolicyConfig& p, int64_t chunk_tokens, int64_t page_chunks,
                                      std::span<const float> scores, int64_t num_tokens,
                                      int64_t first_uncommitted_page, std::span<const int32_t> resident,
                                      bool probabilities) {
  const int64_t page_tokens = chunk_tokens * page_chunks;
  const int64_t num_pages = (num_tokens + page_tokens - 1) / page_tokens;
  const int64_t num_chunks = (num_tokens + chunk_tokens - 1) / chunk_tokens;
  std::vector<int32_t> out;
  if (num_pages <= p.kmax_pages) {  // everything fits
    for (int32_t pg = 0; pg < num_pages; ++pg) out.push_back(pg);
    return out;
  }
  // Forced: pages of the first sink chunks, of the last recent chunks, the tail, unwritten pages.
  std::vector<bool> forced(static_cast<size_t>(num_pages), false);
  for (int64_t c = 0; c < std::min<int64_t>(p.sink_chunks, num_chunks); ++c) forced[c / page_chunks] = true;
  for (int64_t c = std::max<int64_t>(0, num_chunks - p.recent_chunks); c < num_chunks; ++c) {
    forced[c / page_chunks] = true;
  }
  forced[num_pages - 1] = true;
  for (int64_t pg = first_uncommitted_page; pg < num_pages; ++pg) forced[pg] = true;
  int64_t num_forced = 0;
  for (int32_t pg = 0; pg < num_pages; ++pg) {
    if (forced[pg]) {
      out.push_back(pg);
      ++num_forced;
    }
  }
  // Kept chunks. "Better": higher score, then lower index.
  const int64_t n = static_cast<int64_t>(scores.size());
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  });
  std::vector<bool> kept(static_cast<size_t>(n), false);
  if (p.selection == Selection::kThreshold) {
    for (int64_t c = 0; c < n; ++c) kept[c] = scores[c] > p.threshold;
  } else if (p.selection == Selection::kTopK) {
    for (int64_t i = 0; i < std::min<int64_t>(p.top_k_chunks, n); ++i) kept[order[i]] = true;
  } else if (n > 0) {
    const double top = scores[order[0]];
    auto weight = [&](int64_t c) {
      return probabilities ? std::max(0.0, double{scores[c]}) : std::exp(scores[c] - top);
    };
    double total = 0.0;
    for (int64_t c = 0; c < n; ++c) total += weight(c);
    double mass = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      kept[order[i]] = true;
      mass += weight(order[i]);
      if (total <= 0.0 || mass >= p.top_p * total) break;
    }
  }
  // Page scores: kept count or kept score mass; no kept chunk: not a candidate.
  std::vector<float> page_score(static_cast<size_t>(num_pages), -INFINITY);
  for (int64_t pg = 0; pg < num_pages; ++pg) {
    int count = 0;
    float sum = 0.0f;
    for (int64_t c = pg * page_chunks; c < std::min(n, (pg + 1) * page_chunks); ++c) {
      if (!kept[c]) continue;
      ++count;
      sum += scores[c];
    }
    if (count > 0) page_score[pg] = p.page_score == PageScore::kScoreMass ? sum : static_cast<float>(count);
  }
  if (p.hysteresis > 0.0f) {
    for (int32_t r : resident) {
      if (r < num_pages && page_score[r] > -INFINITY) page_score[r] += p.hysteresis;
    }
  }
  std::vector<int32_t> candidates;
  for (int32_t pg = 0; pg < num_pages; ++pg) {
    if (!forced[pg] && page_score[pg] > -INFINITY) candidates.push_back(pg);  // NaN is no candidate
  }
  std::sort(candidates.begin(), candidates.end(), [&](int32_t a, int32_t b) {
    return page_score[a] > page_score[b] || (page_score[a] == page_score[b] && a < b);
  });
  const int64_t budget = std::max<int64_t>(0, p.kmax_pages - num_forced);
  int64_t taken = 0, recalled = 0;
  for (int32_t pg : candidates) {
    if (taken == budget) break;
    const bool is_resident = std::find(resident.begin(), resident.end(), pg) != resident.end();
    if (p.max_recall_pages > 0 && !is_resident) {
      if (recalled == p.max_recall_pages) continue;
      ++recalled;
    }
    out.push_back(pg);
    ++taken;
  }
  return out;
}

// The library's choice.
std::vector<int32_t> lib_select(const PolicyConfig& p, int32_t chunk_tokens, int32_t page_chunks,
                                std::span<const float> scores, int64_t num_tokens, int64_t first_uncommitted,
                                std::span<const int32_t> resident, bool probabilities) {
  lsa::LookaheadPolicy policy(p, lsa::Chunker(chunk_tokens, page_chunks));
  lsa::SelectionInput in;
  in.scores = scores;
  in.num_tokens = num_tokens;
  in.first_uncommitted_page = first_uncommitted;
  in.resident_pages = resident;
  in.probabilities = probabilities;
  lsa::detail::SelectionScratch scratch;
  std::vector<int32_t> out;
  policy.select(in, scratch, out);
  return out;
}

struct Case {
  PolicyConfig p;
  int32_t chunk_tokens = 2, page_chunks = 4;
  std::vector<float> scores;
  int64_t num_tokens = 0, first_uncommitted = 0;
  std::vector<int32_t> resident;
  bool probabilities = false;

  std::vector<int32_t> want() const {
    return reference_select(p, chunk_tokens, page_chunks, scores, num_tokens, first_uncommitted, resident,
                            probabilities);
  }
  std::vector<int32_t> got() const {
    return lib_select(p, chunk_tokens, page_chunks, scores, num_tokens, first_uncommitted, resident, probabilities);
  }
};

// A history of `pages` full pages with the given chunk scores (chunk_tokens 1, page_chunks 4).
Case pages_case(int64_t pages, std::vector<float> scores) {
  Case c;
  c.chunk_tokens = 1;
  c.page_chunks = 4;
  c.num_tokens = pages * 4;
  c.first_uncommitted = pages;
  c.scores = std::move(scores);
  c.scores.resize(static_cast<size_t>(pages * 4), 0.0f);
  c.p.sink_chunks = 1;
  c.p.recent_chunks = 1;
  c.p.threshold = 0.5f;
  return c;
}

}  // namespace

TEST_CASE("policy: random selections equal the plain reference (threshold/top-k/top-p, count/mass, "
          "kmax, forced, hysteresis, max_recall_pages)",
          "[cpu][policy][random]") {
  std::mt19937_64 rng(20260);
  auto uni = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  const float levels[] = {-2.0f, -0.5f, 0.0f, 0.25f, 0.5f, 0.51f, 0.75f, 0.9f, 1.0f, 3.0f};
  int nontrivial = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    Case c;
    c.chunk_tokens = static_cast<int32_t>(uni(1, 4));
    c.page_chunks = static_cast<int32_t>(uni(1, 8));
    c.p.selection = static_cast<Selection>(uni(0, 2));
    c.p.page_score = static_cast<PageScore>(uni(0, 1));
    c.p.threshold = levels[uni(2, 6)];
    c.p.top_k_chunks = uni(1, 40);
    c.p.top_p = static_cast<float>(uni(1, 100)) / 100.0f;
    c.p.kmax_pages = static_cast<int32_t>(uni(1, 16));
    c.p.sink_chunks = static_cast<int32_t>(uni(0, 6));
    c.p.recent_chunks = static_cast<int32_t>(uni(0, 12));
    c.p.hysteresis = uni(0, 2) == 0 ? 0.0f : static_cast<float>(uni(1, 8)) / 4.0f;
    c.p.max_recall_pages = static_cast<int32_t>(uni(0, 2) == 0 ? 0 : uni(1, 4));
    c.probabilities = uni(0, 1) == 1;
    const int64_t pt = int64_t{c.chunk_tokens} * c.page_chunks;
    c.num_tokens = uni(0, 40 * pt);
    const int64_t num_pages = (c.num_tokens + pt - 1) / pt;
    c.first_uncommitted = uni(0, 3) == 0 ? uni(0, num_pages) : c.num_tokens / pt;
    // Scores for full chunks (chunk scorer) or every chunk (token scorer); ties on purpose.
    const int64_t chunks = uni(0, 1) ? c.num_tokens / c.chunk_tokens : (c.num_tokens + c.chunk_tokens - 1) / c.chunk_tokens;
    c.scores.resize(static_cast<size_t>(chunks));
    for (float& s : c.scores) {
      s = uni(0, 1) ? levels[uni(0, 9)] : std::uniform_real_distribution<float>(-3.0f, 3.0f)(rng);
      if (c.probabilities) s = std::clamp(s, 0.0f, 1.0f);
    }
    for (int32_t pg = 0; pg < num_pages; ++pg) {
      if (uni(0, 2) == 0) c.resident.push_back(pg);
    }
    const std::vector<int32_t> want = c.want();
    nontrivial += static_cast<int64_t>(want.size()) < num_pages;
    INFO("iteration " << iter << " selection " << int(c.p.selection) << " page_score " << int(c.p.page_score)
                      << " tokens " << c.num_tokens << " chunk_tokens " << c.chunk_tokens << " page_chunks "
                      << c.page_chunks << " kmax " << c.p.kmax_pages);
    REQUIRE(c.got() == want);
  }
  CHECK(nontrivial > 1500);
}

TEST_CASE("policy: threshold keeps chunks strictly above it", "[cpu][policy]") {
  Case c = pages_case(10, {});
  c.p.kmax_pages = 5;  // forced {0, 9}, 3 chosen
  c.scores[4 * 3] = 0.5f;          // page 3: exactly the threshold: not kept
  c.scores[4 * 5] = 0.5001f;       // page 5: kept
  c.scores[4 * 7 + 2] = 0.9f;      // page 7: kept
  CHECK(c.got() == std::vector<int32_t>{0, 9, 5, 7});
  CHECK(c.got() == c.want());
}

TEST_CASE("policy: top-k keeps the k best chunks, ties to the lower chunk", "[cpu][policy]") {
  Case c = pages_case(10, {});
  c.p.selection = Selection::kTopK;
  c.p.top_k_chunks = 3;
  c.p.kmax_pages = 9;  // does not fit 10 pages; room for every candidate
  for (int pg = 1; pg < 9; ++pg) c.scores[4 * pg] = 1.0f;  // 8 tied chunks
  // The 3 kept are chunks of pages 1, 2, 3 (lowest indices); forced pages 0 and 9 first.
  CHECK(c.got() == std::vector<int32_t>{0, 9, 1, 2, 3});
  c.scores[4 * 8] = 1.5f;  // kept: chunks of pages 8, 1, 2; each page has one kept chunk
  CHECK(c.got() == std::vector<int32_t>{0, 9, 1, 2, 8});
  CHECK(c.got() == c.want());
}

TEST_CASE("policy: top-p keeps the fewest best chunks holding top_p of the mass", "[cpu][policy]") {
  Case c = pages_case(10, {});
  c.p.selection = Selection::kTopP;
  c.p.kmax_pages = 9;
  c.probabilities = true;  // weights as they are
  std::fill(c.scores.begin(), c.scores.end(), 0.0f);
  c.scores[4 * 2] = 0.5f;    // exact binary fractions: the mass sums are exact
  c.scores[4 * 4] = 0.375f;
  c.scores[4 * 6] = 0.125f;
  c.p.top_p = 0.5f;  // 0.5 alone reaches half the mass
  CHECK(c.got() == std::vector<int32_t>{0, 9, 2});
  c.p.top_p = 0.875f;  // 0.5 + 0.375
  CHECK(c.got() == std::vector<int32_t>{0, 9, 2, 4});
  c.p.top_p = 0.9f;
  CHECK(c.got() == std::vector<int32_t>{0, 9, 2, 4, 6});
  CHECK(c.got() == c.want());
  // Logits: softmax weights (equal logits share the mass equally).
  c.probabilities = false;
  std::fill(c.scores.begin(), c.scores.end(), -50.0f);
  c.scores[4 * 3] = 5.0f;
  c.scores[4 * 5] = 5.0f;
  c.p.top_p = 0.5f;
  CHECK(c.got() == std::vector<int32_t>{0, 9, 3});
  c.p.top_p = 0.9f;
  CHECK(c.got() == std::vector<int32_t>{0, 9, 3, 5});
  CHECK(c.got() == c.want());
}

TEST_CASE("policy: kept-chunk count and score mass rank pages differently", "[cpu][policy]") {
  Case c = pages_case(10, {});
  c.p.kmax_pages = 3;  // forced {0, 9}: one chosen page
  c.p.threshold = 0.5f;
  for (int j = 0; j < 3; ++j) c.scores[4 * 2 + j] = 0.6f;  // page 2: three chunks, mass 1.8
  for (int j = 0; j < 2; ++j) c.scores[4 * 6 + j] = 5.0f;  // page 6: two chunks, mass 10
  c.p.page_score = PageScore::kKeptChunks;
  CHECK(c.got() == std::vector<int32_t>{0, 9, 2});
  c.p.page_score = PageScore::kScoreMass;
  CHECK(c.got() == std::vector<int32_t>{0, 9, 6});
  CHECK(c.got() == c.want());
}

TEST_CASE(
    "policy: kmax caps the set, and forced sink/recent/tail/uncommitted pages come first and count",
    "[cpu][policy]") {
  Case c = pages_case(20, {});
  c.p.sink_chunks = 5;    // pages 0, 1
  c.p.recent_chunks = 6;  // chunks 74..79: pages 18, 19
  c.p.kmax_pages = 7;     // 4 forced + 3 chosen
  std::fill(c.scores.begin(), c.scores.end(), 9.0f);  // everything scores high, forced pages too
  CHECK(c.got() == std::vector<int32_t>{0, 1, 18, 19, 2, 3, 4});
  // Unwritten pages (from 15 on) are forced too and eat the budget.
  c.first_uncommitted = 15;
  CHECK(c.got() == std::vector<int32_t>{0, 1, 15, 16, 17, 18, 19});
  c.first_uncommitted = 10;  // more forced pages than kmax: all of them, nothing chosen
  CHECK(c.got().size() == 12);
  CHECK(c.got() == c.want());
  // A partial tail page: the tail is forced even without recent chunks.
  Case t = pages_case(20, {});
  t.p.recent_chunks = 0;
  t.p.kmax_pages = 3;
  t.num_tokens = 4 * 19 + 1;
  t.first_uncommitted = t.num_tokens / 4;
  t.scores.resize(static_cast<size_t>(t.num_tokens));
  t.scores[4 * 7] = 1.0f;
  CHECK(t.got() == std::vector<int32_t>{0, 19, 7});
  CHECK(t.got() == t.want());
}

TEST_CASE("policy: a history that fits kmax keeps every page whatever the scores", "[cpu][policy]") {
  for (int64_t pages : {0, 1, 5, 8}) {
    Case c = pages_case(pages, {});
    c.p.kmax_pages = 8;
    std::fill(c.scores.begin(), c.scores.end(), -5.0f);
    std::vector<int32_t> all(static_cast<size_t>(pages));
    std::iota(all.begin(), all.end(), 0);
    CHECK(c.got() == all);
    lsa::LookaheadPolicy policy(c.p, lsa::Chunker(1, 4));
    std::vector<int32_t> out;
    policy.select_unscored(c.num_tokens, c.first_uncommitted, out);
    CHECK(out == all);
    CHECK(policy.fits(c.num_tokens));
  }
  Case c = pages_case(9, {});
  c.p.kmax_pages = 8;
  lsa::LookaheadPolicy policy(c.p, lsa::Chunker(1, 4));
  CHECK_FALSE(policy.fits(c.num_tokens));
  std::vector<int32_t> out;
  policy.select_unscored(c.num_tokens, c.first_uncommitted, out);
  CHECK(out == std::vector<int32_t>{0, 8});  // not fitting: the forced pages only
}

TEST_CASE("policy: hysteresis keeps a resident page within the margin", "[cpu][policy]") {
  Case c = pages_case(10, {});
  c.p.kmax_pages = 3;  // one chosen page
  c.p.page_score = PageScore::kScoreMass;
  c.scores[4 * 3] = 1.0f;   // resident page 3, mass 1.0
  c.scores[4 * 6] = 1.2f;   // challenger page 6, mass 1.2
  c.resident = {0, 3, 9};
  c.p.hysteresis = 0.0f;
  CHECK(c.got() == std::vector<int32_t>{0, 9, 6});
  c.p.hysteresis = 0.1f;  // 1.1 < 1.2: the challenger still wins
  CHECK(c.got() == std::vector<int32_t>{0, 9, 6});
  c.p.hysteresis = 0.5f;  // 1.5 > 1.2: the resident page stays
  CHECK(c.got() == std::vector<int32_t>{0, 9, 3});
  CHECK(c.got() == c.want());
  // No bonus for a resident page with no kept chunk (it is no candidate at all).
  c.scores[4 * 3] = 0.0f;
  CHECK(c.got() == std::vector<int32_t>{0, 9, 6});
}

TEST_CASE("policy: max_recall_pages caps newly recalled pages, and resident pages are free",
          "[cpu][policy]") {
  Case c = pages_case(12, {});
  c.p.kmax_pages = 6;  // forced {0, 11}: 4 chosen
  c.p.page_score = PageScore::kScoreMass;
  // Rank: 2 > 3 > 4 > 5 > 6 > 7 (masses 9..4); 4 and 6 are resident.
  for (int pg = 2; pg <= 7; ++pg) c.scores[4 * pg] = static_cast<float>(11 - pg);
  c.resident = {0, 4, 6, 11};
  c.p.max_recall_pages = 0;  // no cap: the 4 best
  CHECK(c.got() == std::vector<int32_t>{0, 11, 2, 3, 4, 5});
  c.p.max_recall_pages = 1;  // one new page (2), then resident ones (4, 6); 3, 5, 7 skipped
  CHECK(c.got() == std::vector<int32_t>{0, 11, 2, 4, 6});
  c.p.max_recall_pages = 2;
  CHECK(c.got() == std::vector<int32_t>{0, 11, 2, 3, 4, 6});
  CHECK(c.got() == c.want());
}

TEST_CASE("policy: ties are broken by the lower index, deterministically", "[cpu][policy]") {
  Case c = pages_case(16, {});
  c.p.kmax_pages = 6;
  std::fill(c.scores.begin(), c.scores.end(), 0.75f);  // every page scores 4 kept chunks
  const std::vector<int32_t> first = c.got();
  CHECK(first == std::vector<int32_t>{0, 15, 1, 2, 3, 4});
  for (int i = 0; i < 5; ++i) CHECK(c.got() == first);
  // Score mass ties too, -0 and +0 included.
  c.p.page_score = PageScore::kScoreMass;
  c.p.threshold = -1.0f;
  std::fill(c.scores.begin(), c.scores.end(), 0.0f);
  for (int pg = 1; pg < 15; pg += 2) c.scores[4 * pg] = -0.0f;
  CHECK(c.got() == std::vector<int32_t>{0, 15, 1, 2, 3, 4});
  CHECK(c.got() == c.want());
}

TEST_CASE("policy: refresh phases spread over the interval", "[cpu][policy]") {
  PolicyConfig p;
  p.interval = 64;
  lsa::LookaheadPolicy policy(p, lsa::Chunker(4, 16));
  std::set<int32_t> phases;
  for (lsa::SeqId id = 0; id < 1000; ++id) {
    const int32_t f = policy.first_interval(id);
    REQUIRE(f >= 1);
    REQUIRE(f <= 64);
    CHECK(f == policy.first_interval(id));  // a function of the id
    phases.insert(f);
  }
  CHECK(phases.size() >= 48);  // most of the 64 phases used
  for (lsa::SeqId id : {lsa::SeqId{-1}, lsa::SeqId{1} << 62, lsa::SeqId{1000000007}}) {
    CHECK(policy.first_interval(id) >= 1);
    CHECK(policy.first_interval(id) <= 64);
  }
  CHECK(policy.interval() == 64);
  p.spread_phase = false;
  CHECK(lsa::LookaheadPolicy(p, lsa::Chunker(4, 16)).first_interval(7) == 64);
  p.spread_phase = true;
  p.interval = 1;
  CHECK(lsa::LookaheadPolicy(p, lsa::Chunker(4, 16)).first_interval(7) == 1);
}

TEST_CASE("policy: in the cache a sequence refreshes at once, after first_interval(id), then every "
          "interval",
          "[cpu][policy]") {
  const lsa::RecallMode mode = GENERATE(lsa::RecallMode::kSync, lsa::RecallMode::kAsync);
  INFO((mode == lsa::RecallMode::kSync ? "sync" : "async"));
  lsa::CacheConfig c = lsa::testing::small_config();
  c.recall_mode = mode;  // every page stays cached (16 slots, 10 pages): async sets swap at once
  c.max_sequences = 1;
  c.policy.interval = 8;
  c.policy.spread_phase = true;
  c.policy.kmax_pages = 4;
  c.num_slots = 16;
  lsa::LookaheadPolicy policy(c.policy, lsa::Chunker(c.chunk_tokens, c.page_chunks));
  for (lsa::SeqId id : {3, 11, 1000}) {
    lsa::testing::Harness h(c, 2);
    REQUIRE(h.add(id) == lsa::Status::kOk);
    REQUIRE(h.append(id, 40) == lsa::Status::kOk);
    std::vector<int> at;
    for (int step = 0; step < 40; ++step) {
      const int64_t before = h.cache.stats().refreshes;
      const bool due = h.cache.refresh_due(id);
      REQUIRE(h.step({id}) == lsa::Status::kOk);
      CHECK(due == (h.cache.stats().refreshes > before));  // refresh_due says what step() does
      if (h.cache.stats().refreshes > before) at.push_back(step);
    }
    const int f = policy.first_interval(id);
    INFO("id " << id << " first interval " << f);
    std::vector<int> want = {0};
    for (int s = f; s < 40; s += 8) want.push_back(s);
    CHECK(at == want);
  }
}
