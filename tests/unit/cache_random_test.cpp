// The randomized API test (support/random_api.hpp) on the host store, in-memory and file mirrors.
#include <catch2/catch.hpp>

#include "support/random_api.hpp"

using lsa::RecallMode;
using lsa::testing::random_api::run;

TEST_CASE("random API operations against a reference model (sync recall)", "[cpu][random]") {
  run<lsa::HostStore>(RecallMode::kSync, 40, 2500, /*file_mirrors=*/true);  // 100,000 operations
}

TEST_CASE("random API operations against a reference model (async recall)", "[cpu][random][async]") {
  run<lsa::HostStore>(RecallMode::kAsync, 15, 2000, /*file_mirrors=*/true);  // 30,000 operations
}
