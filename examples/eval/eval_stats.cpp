#include "eval_stats.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace lsa_decode {
namespace {

constexpr double kZ95 = 1.959963984540054;

}  // namespace

Interval wilson_interval(int64_t successes, int64_t n) {
  const auto nn = static_cast<double>(n);
  const double p = static_cast<double>(successes) / nn;
  const double z2 = kZ95 * kZ95;
  const double center = (p + z2 / (2.0 * nn)) / (1.0 + z2 / nn);
  const double half = kZ95 / (1.0 + z2 / nn) * std::sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
  // At 0 and n successes one end is exactly 0 or 1; rounding would leave it a hair inside.
  return {p, successes == 0 ? 0.0 : std::max(0.0, center - half),
          successes == n ? 1.0 : std::min(1.0, center + half)};
}

Interval mean_interval(std::span<const double> values) {
  if (values.empty()) return {NAN, NAN, NAN};
  double sum = 0.0;
  for (const double v : values) sum += v;
  const auto n = static_cast<double>(values.size());
  const double mean = sum / n;
  if (values.size() < 2) return {mean, mean, mean};
  double squares = 0.0;
  for (const double v : values) squares += (v - mean) * (v - mean);
  const double half = kZ95 * std::sqrt(squares / (n - 1.0)) / std::sqrt(n);
  return {mean, mean - half, mean + half};
}

double percentile(std::span<const float> values, double p) {
  if (values.empty()) return NAN;
  std::vector<float> sorted(values.begin(), values.end());
  std::sort(sorted.begin(), sorted.end());
  const double at = p * static_cast<double>(sorted.size() - 1);
  const auto lo = static_cast<size_t>(std::floor(at));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (at - static_cast<double>(lo)) * (sorted[hi] - sorted[lo]);
}

}  // namespace lsa_decode
