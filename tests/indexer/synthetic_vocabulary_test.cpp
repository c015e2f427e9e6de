// The indexer's synthetic training documents share no word with lsa-eval's needles, so the
// evaluation asks about nothing the indexer was trained on.
#include <catch2/catch.hpp>
#include <set>
#include <string>

#include "eval_tasks.hpp"
#include "synthetic_tasks.hpp"

TEST_CASE("synthetic documents share no word with the eval's needles", "[indexer]") {
  const std::vector<std::string> ours = lsa_indexer::SyntheticVocabulary::all_words();
  REQUIRE(ours.size() > 30);
  std::set<std::string> eval_words;
  for (std::string_view w : lsa_decode::needle_words()) eval_words.insert(std::string(w));
  REQUIRE(eval_words.size() == 40);
  for (const std::string& w : ours) {
    INFO(w);
    CHECK(eval_words.count(w) == 0);
    // Nor as part of a phrase ("barn door") or the other way round.
    for (const std::string& e : eval_words) {
      CHECK(w.find(e) == std::string::npos);
      CHECK(e.find(w) == std::string::npos);
    }
  }
}
