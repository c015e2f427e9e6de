// The statistics lsa-eval reports with: proportions with Wilson intervals, means with normal
// intervals over samples, percentiles.
#pragma once

#include <cstdint>
#include <span>

namespace lsa_decode {

/// A point estimate and its two-sided 95% interval.
struct Interval {
  double value = 0.0;
  double low = 0.0;
  double high = 0.0;
};

/// The share successes / n with its 95% Wilson score interval (z = 1.959964); n must be > 0.
Interval wilson_interval(int64_t successes, int64_t n);

/// The mean of `values` with the 95% normal interval of the mean (mean +- 1.959964 * s / sqrt(n),
/// s the sample standard deviation; the interval is the mean itself for fewer than 2 values).
Interval mean_interval(std::span<const double> values);

/// The p-quantile of `values` (0 <= p <= 1) by linear interpolation between order statistics
/// (the "type 7" definition of R and numpy); NaN for no values.
double percentile(std::span<const float> values, double p);

}  // namespace lsa_decode
