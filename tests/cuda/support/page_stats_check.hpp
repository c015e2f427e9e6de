// Checks device page statistics against the host policy's page scores on the same chunk scores.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <cstdint>
#include <vector>

#include "lsa/cuda/page_stats.hpp"
#include "lsa/detail/page_ranking.hpp"
#include "lsa/policy_config.hpp"

namespace lsa::cuda::testing {

/// REQUIREs that `kept` and `mass` (downloaded PageStats of threshold selection over `scores`)
/// equal what the host policy ranks: kept-chunk counts and score mass, in both page-score modes.
inline void require_page_stats_match_host(const std::vector<float>& scores, float threshold,
                                          bool probabilities, int32_t page_chunks,
                                          const std::vector<int32_t>& kept,
                                          const std::vector<float>& mass) {
  lsa::PolicyConfig policy;
  policy.threshold = threshold;
  lsa::detail::SelectionScratch s;
  const auto num_chunks = static_cast<int64_t>(scores.size());
  const int64_t pages = lsa::cuda::num_stat_pages(num_chunks, page_chunks);
  for (const lsa::PageScore mode : {lsa::PageScore::kKeptChunks, lsa::PageScore::kScoreMass}) {
    policy.page_score = mode;
    lsa::detail::mark_kept_chunks(policy, probabilities, scores, s);
    lsa::detail::score_pages(policy, scores, pages, page_chunks, s);
    for (int64_t page = 0; page < pages; ++page) {
      INFO("page " << page << " kept " << kept[page] << " mass " << mass[page]);
      const float host = s.page_score[page];
      if (host == -INFINITY) {
        REQUIRE(kept[page] == 0);
      } else if (mode == lsa::PageScore::kKeptChunks) {
        REQUIRE(static_cast<float>(kept[page]) == host);
      } else {
        REQUIRE(mass[page] == host);
      }
    }
  }
}

}  // namespace lsa::cuda::testing
