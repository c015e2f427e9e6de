// lsa-eval's pooled results: per method and setting, exact match and agreement with dense with
// Wilson intervals, KL and top-1 with intervals over samples, attention coverage (mean, 5th
// percentile); per (task, length) cell, correct / samples.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "eval_runner.hpp"
#include "eval_stats.hpp"

namespace lsa_decode {

struct SampleRecord;

/// One method in one setting, pooled over samples.
struct MethodSummary {
  int64_t samples = 0;
  int64_t correct = 0;        ///< exact matches
  int64_t agree = 0;          ///< answers whose digits equal the dense answer's
  Interval exact;             ///< correct / samples, Wilson
  Interval agreement;         ///< agree / samples, Wilson
  Interval kl;                ///< per-sample mean KL(dense || method) per compared step
  Interval top1;              ///< per-sample share of compared steps whose argmax is dense's
  double logprob = 0.0;       ///< mean over samples of the dense answer's log-probability
  double coverage = NAN;      ///< mean over every (sample, step, layer) coverage value
  double coverage_p5 = NAN;   ///< their 5th percentile
  double resident = 0.0;      ///< mean resident fraction
  int64_t decode_tokens = 0;  ///< session.decode calls
  double decode_seconds = 0.0;

  double tokens_per_second() const {
    return decode_seconds > 0 ? static_cast<double>(decode_tokens) / decode_seconds : NAN;
  }
};

/// Summaries by (method label, setting); setting -1 pools both settings.
using SummaryKey = std::pair<std::string, int>;
/// Correct / total by (method label, setting, task, length).
using CellKey = std::tuple<std::string, int, int, int64_t>;

/// Everything the report tables read.
struct EvalSummary {
  std::map<SummaryKey, MethodSummary> methods;
  std::map<CellKey, std::pair<int64_t, int64_t>> cells;
};

/// Pools the answers of `samples`.
EvalSummary summarize(const std::vector<SampleRecord>& samples);

}  // namespace lsa_decode
