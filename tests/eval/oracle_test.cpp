// The oracle selectors and the attention coverage of lsa-eval, on tiny synthetic attention tables:
// an oracle refresh through a real lsa cache against a brute-force search over page subsets, and
// coverage against hand-computed shares.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <random>
#include <vector>

#include "attention_trace.hpp"
#include "error.hpp"
#include "oracle_scorer.hpp"
#include "support/small_cache.hpp"

namespace {

namespace ld = lsa_decode;

constexpr int64_t kChunkTokens = 4;

// A dense step's attention over `num_pages` pages: small integer masses (so sums are exact and
// ties are common), per layer.
ld::AttentionMass random_mass(std::mt19937& rng, int32_t layers, int32_t num_pages) {
  ld::AttentionMass m;
  m.num_layers = layers;
  m.num_pages = num_pages;
  std::uniform_int_distribution<int> mass(0, 3);
  for (int64_t i = 0; i < int64_t{layers} * num_pages; ++i) {
    m.pages.push_back(static_cast<float>(mass(rng)));
  }
  for (int32_t l = 0; l < layers; ++l) m.self.push_back(static_cast<float>(mass(rng)));
  return m;
}

std::vector<int32_t> iota_pages(int64_t n) {
  std::vector<int32_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[static_cast<size_t>(i)] = static_cast<int32_t>(i);
  return p;
}

// A trace of `steps` dense steps decoding positions first_position, first_position + 1, ...
struct SyntheticRun {
  std::vector<ld::AttentionMass> steps;
  ld::AttentionTrace trace;

  SyntheticRun(uint32_t seed, int64_t first_position, int64_t page_tokens, int64_t num_steps)
      : trace(first_position, page_tokens) {
    std::mt19937 rng(seed);
    for (int64_t s = 0; s < num_steps; ++s) {
      const int64_t pages = (first_position + s + page_tokens - 1) / page_tokens;
      steps.push_back(random_mass(rng, 2, static_cast<int32_t>(pages)));
      trace.add_step(steps.back(), iota_pages(pages));
    }
  }
};

// The best set by brute force: among the subsets of the unforced pages of size `take`, the one of
// largest mass; ties go to the subset whose ascending page list is lexicographically smallest.
std::vector<int32_t> brute_force_best(const std::vector<double>& mass,
                                      const std::vector<int32_t>& unforced, int64_t take) {
  const auto n = static_cast<int64_t>(unforced.size());
  take = std::min(take, n);
  std::vector<int32_t> best;
  double best_mass = -1.0;
  for (uint32_t bits = 0; bits < (1u << n); ++bits) {
    if (__builtin_popcount(bits) != take) continue;
    std::vector<int32_t> set;
    double sum = 0.0;
    for (int64_t i = 0; i < n; ++i) {
      if ((bits >> i) & 1u) {
        set.push_back(unforced[static_cast<size_t>(i)]);
        sum += mass[static_cast<size_t>(unforced[static_cast<size_t>(i)])];
      }
    }
    if (sum > best_mass || (sum == best_mass && set < best)) {
      best_mass = sum;
      best = set;
    }
  }
  return best;
}

}  // namespace

TEST_CASE("eval: oracle refreshes pick the pages a brute-force search picks", "[decoder][eval]") {
  for (const int32_t page_chunks : {1, 2}) {
    const int64_t page_tokens = kChunkTokens * page_chunks;
    for (const int32_t interval : {1, 3, 8}) {
      for (uint32_t seed = 1; seed <= 12; ++seed) {
        // 13..15 pages of history (13 unforced candidates at most: 2^13 subsets), kmax 6.
        const int64_t prefill = page_tokens * 12 + seed % 3 * 2 + 1;
        const int64_t num_steps = 10;
        const int32_t kmax = 6;
        const SyntheticRun run(seed, prefill, page_tokens, num_steps);
        eval_test::SmallCache<ld::OracleScorer> cache(prefill, kmax, interval, num_steps,
                                                      page_chunks);
        std::vector<float> page_mass, weights;
        for (int64_t k = 0; k < num_steps; ++k) {
          INFO("page_chunks " << page_chunks << " interval " << interval << " seed " << seed
                              << " step " << k);
          const int64_t tokens = cache.length();
          const int64_t pages = (tokens + page_tokens - 1) / page_tokens;
          const bool due = cache.refresh_due();
          page_mass.assign(static_cast<size_t>(pages), 0.0f);
          run.trace.add_page_mass(k, interval, page_mass);
          ld::chunk_scores_from_page_mass(page_mass, page_chunks,
                                          (tokens + kChunkTokens - 1) / kChunkTokens, weights);
          const std::vector<int32_t> resident = cache.step(weights);
          if (!due) continue;
          // Brute force from the raw steps: mass of steps [k, k + interval) (clipped to the run)
          // per page, the decoded token counting for its own page.
          std::vector<double> mass(static_cast<size_t>(pages), 0.0);
          for (int64_t s = k; s < std::min(k + interval, num_steps); ++s) {
            const ld::AttentionMass& m = run.steps[static_cast<size_t>(s)];
            const int64_t own = (prefill + s) / page_tokens;
            for (int32_t l = 0; l < m.num_layers; ++l) {
              for (int32_t p = 0; p < std::min<int32_t>(m.num_pages, static_cast<int32_t>(pages));
                   ++p) {
                mass[static_cast<size_t>(p)] += m.page(l, p);
              }
              if (own < pages) mass[static_cast<size_t>(own)] += m.self[static_cast<size_t>(l)];
            }
          }
          // Forced: the sink page, the page of the last chunk and the tail page.
          const int64_t chunks = (tokens + kChunkTokens - 1) / kChunkTokens;
          const int64_t suffix = std::min((chunks - 1) / page_chunks, pages - 1);
          std::vector<int32_t> want = {0}, unforced;
          for (int64_t p = 1; p < pages; ++p) {
            if (p >= suffix) {
              want.push_back(static_cast<int32_t>(p));
            } else {
              unforced.push_back(static_cast<int32_t>(p));
            }
          }
          const int64_t take = kmax - static_cast<int64_t>(want.size());
          for (const int32_t p : brute_force_best(mass, unforced, take)) want.push_back(p);
          std::sort(want.begin(), want.end());
          CHECK(resident == want);
          CHECK(static_cast<int64_t>(resident.size()) == kmax);  // the budget, filled
        }
      }
    }
  }
}

TEST_CASE("eval: oracle page mass of steps past the end of the reference run", "[decoder][eval]") {
  const SyntheticRun run(7, 10, 4, 3);
  std::vector<float> a(3, 0.0f), b(3, 0.0f);
  run.trace.add_page_mass(2, 64, a);  // the window holds only the last step
  run.trace.add_page_mass(9, 64, b);  // no step left: the last one stands in
  CHECK(a == b);
  // Nothing past out's size is touched; a trace without steps adds nothing.
  std::vector<float> one(1, 0.0f);
  run.trace.add_page_mass(0, 1, one);
  CHECK(one[0] == run.steps[0].page(0, 0) + run.steps[0].page(1, 0));
  const ld::AttentionTrace empty(10, 4);
  std::vector<float> zero(3, 0.0f);
  empty.add_page_mass(0, 4, zero);
  CHECK(zero == std::vector<float>(3, 0.0f));
}

TEST_CASE("eval: coverage of every page is exactly one, of a subset its share", "[decoder][eval]") {
  const SyntheticRun run(3, 21, 4, 4);  // 6 pages at step 0 (21 tokens), the last partial
  for (int64_t s = 0; s < run.trace.num_steps(); ++s) {
    const ld::AttentionMass& m = run.steps[static_cast<size_t>(s)];
    std::vector<float> all;
    run.trace.coverage(s, iota_pages(m.num_pages), all);
    REQUIRE(all.size() == 2);
    for (const float c : all) CHECK(c == 1.0f);
    // Pages {1, 3} (and an out-of-range page, ignored) of layer l: (self + m1 + m3) / total.
    std::vector<float> some;
    run.trace.coverage(s, std::vector<int32_t>{1, 3, 99}, some);
    for (int32_t l = 0; l < 2; ++l) {
      double total = m.self[static_cast<size_t>(l)];
      for (int32_t p = 0; p < m.num_pages; ++p) total += m.page(l, p);
      const double covered = m.self[static_cast<size_t>(l)] + m.page(l, 1) + m.page(l, 3);
      CHECK(some[static_cast<size_t>(l)] == Approx(covered / total));
    }
  }
  std::vector<float> out;
  CHECK_THROWS_AS(run.trace.coverage(4, iota_pages(6), out), ld::DecodeError);
  CHECK_THROWS_AS(run.trace.coverage(-1, iota_pages(6), out), ld::DecodeError);
}

TEST_CASE("eval: an attention trace takes only dense views", "[decoder][eval]") {
  ld::AttentionTrace trace(9, 4);  // position 9: pages 0, 1 and the partial page 2
  std::mt19937 rng(1);
  const ld::AttentionMass m = random_mass(rng, 2, 3);
  CHECK_THROWS_AS(trace.add_step(m, std::vector<int32_t>{0, 2, 1}), ld::DecodeError);
  CHECK_THROWS_AS(trace.add_step(m, std::vector<int32_t>{0, 1}), ld::DecodeError);
  CHECK_THROWS_AS(trace.add_step(random_mass(rng, 2, 2), iota_pages(3)), ld::DecodeError);
  CHECK(trace.num_steps() == 0);
  trace.add_step(m, iota_pages(3));
  CHECK(trace.num_steps() == 1);
  CHECK_THROWS_AS(ld::AttentionTrace(-1, 4), ld::DecodeError);
  CHECK_THROWS_AS(ld::AttentionTrace(0, 0), ld::DecodeError);
}
