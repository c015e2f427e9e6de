// lsa-eval's statistics against known values.
#include <catch2/catch.hpp>
#include <cmath>
#include <vector>

#include "eval_stats.hpp"

namespace ld = lsa_decode;

TEST_CASE("eval: Wilson intervals match known values", "[decoder][eval]") {
  // 0/10: the upper end is z^2 / (n + z^2).
  const ld::Interval none = ld::wilson_interval(0, 10);
  CHECK(none.value == 0.0);
  CHECK(none.low == 0.0);
  CHECK(none.high == Approx(3.841459 / 13.841459).epsilon(1e-6));
  // 5/10 -> [0.2366, 0.7634]; 1/2 -> [0.0945, 0.9055]; 10/10 mirrors 0/10.
  const ld::Interval half = ld::wilson_interval(5, 10);
  CHECK(half.value == 0.5);
  CHECK(half.low == Approx(0.236593).epsilon(1e-5));
  CHECK(half.high == Approx(0.763407).epsilon(1e-5));
  const ld::Interval two = ld::wilson_interval(1, 2);
  CHECK(two.low == Approx(0.094531).epsilon(1e-4));
  CHECK(two.high == Approx(0.905469).epsilon(1e-4));
  const ld::Interval all = ld::wilson_interval(10, 10);
  CHECK(all.high == 1.0);
  CHECK(all.low == Approx(1.0 - none.high).epsilon(1e-9));
  // 45/60: center (p + z^2/2n) / (1 + z^2/n), half-width from the score formula.
  const ld::Interval big = ld::wilson_interval(45, 60);
  CHECK(big.low == Approx(0.627679).epsilon(1e-5));
  CHECK(big.high == Approx(0.842235).epsilon(1e-5));
}

TEST_CASE("eval: mean intervals and percentiles", "[decoder][eval]") {
  const std::vector<double> v = {1.0, 2.0, 3.0, 4.0};
  const ld::Interval m = ld::mean_interval(v);
  CHECK(m.value == 2.5);
  // s = sqrt(5/3), half-width 1.959964 * s / 2.
  CHECK(m.high - m.value == Approx(1.959964 * std::sqrt(5.0 / 3.0) / 2.0).epsilon(1e-6));
  CHECK(m.value - m.low == Approx(m.high - m.value));
  const ld::Interval one = ld::mean_interval(std::vector<double>{0.7});
  CHECK(one.low == 0.7);
  CHECK(one.high == 0.7);
  CHECK(std::isnan(ld::mean_interval(std::vector<double>{}).value));

  const std::vector<float> f = {4.0f, 1.0f, 3.0f, 2.0f};
  CHECK(ld::percentile(f, 0.0) == 1.0);
  CHECK(ld::percentile(f, 1.0) == 4.0);
  CHECK(ld::percentile(f, 0.05) == Approx(1.15));  // numpy.percentile([1,2,3,4], 5)
  CHECK(ld::percentile(f, 0.5) == Approx(2.5));
  CHECK(std::isnan(ld::percentile(std::vector<float>{}, 0.05)));
}
